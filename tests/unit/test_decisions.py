"""guest/decisions.py without a kernel: return values read per type, traces parsed into call trees,
the refusing function found by following the error down, and kallsyms deciding what is probeable."""

from __future__ import annotations

import pytest

from pmemkit.guest import decisions
from pmemkit.guest.decisions import (
    Candidate,
    Probeable,
    Watch,
    candidates,
    decider,
    interpret,
    parse_trace,
    split_marked,
)

PID = 245


def line(event: str, rest: str, pid: int = PID, ts: float = 52.0) -> str:
    return f"         python3-{pid}     [000] ..... {ts:12.6f}: {event}: {rest}"


def ret(function: str, raw: str, caller: str = "caller+0x1a/0x80", **kw: object) -> str:
    return line(f"r_{function}", f"({caller} <- {function}) raw={raw}", **kw)  # type: ignore[arg-type]


def ent(function: str, **kw: object) -> str:
    return line(f"e_{function}", f"({function}+0x0/0x120)", **kw)  # type: ignore[arg-type]


EVENTS = {f"{k}_{f}": (f, k) for f in ("a", "b", "c", "check_vma_flags", "io_pin_pages") for k in "er"}


@pytest.mark.parametrize(
    ("raw", "returns", "expected"),
    [
        (0xFFFFFFFFFFFFFFF2, "int", (14, "-EFAULT", True)),
        (0xDEADBEEFFFFFFFF2, "int", (14, "-EFAULT", True)),  # upper half of %ax is not the int's
        (0x0000000000000002, "int", (None, "2", False)),
        (0xFFFFFFFFFFFFFFA1, "long", (95, "-EOPNOTSUPP", True)),
        (0x00000000FFFFFFF2, "long", (None, str(0xFFFFFFF2), False)),  # a long is all 64 bits
        (0xFFFFFFFFFFFFFFA1, "pointer", (95, "ERR_PTR(-EOPNOTSUPP)", True)),
        (0xFFFF888004A3B000, "pointer", (None, "pointer", False)),
        (0, "pointer", (None, "NULL", False)),
        (0x1234567800000000, "bool", (None, "false", True)),  # only the low byte is the bool
        (0x1234567800000001, "bool", (None, "true", False)),
    ],
)
def test_interpret_reads_each_return_type(raw: int, returns: str, expected: tuple) -> None:
    assert interpret(raw, returns) == expected


def test_parse_trace_builds_call_order_depth_and_filters_the_pid() -> None:
    text = "\n".join(
        [
            "# tracer: nop",
            ent("a"),
            ent("b"),
            ent("check_vma_flags"),
            ret("check_vma_flags", "0xfffffffffffffff2"),
            ent("check_vma_flags", pid=999),  # another task: ignored
            ret("b", "0xfffffffffffffff2"),
            ret("a", "0xfffffffffffffff2"),
        ]
    )
    calls = parse_trace(text, EVENTS, {"check_vma_flags": "int", "b": "long"}, PID)
    assert [(c.function, c.depth, c.parent) for c in calls] == [
        ("a", 0, None),
        ("b", 1, 0),
        ("check_vma_flags", 2, 1),
    ]
    assert all(c.errno == 14 for c in calls)
    assert calls[2].raw == 0xFFFFFFFFFFFFFFF2


def test_decider_follows_the_error_down_not_an_earlier_swallowed_one() -> None:
    text = "\n".join(
        [
            ent("a"),
            ent("c"),
            ret("c", "0xfffffffffffffffe"),  # -ENOENT, swallowed by a
            ent("b"),
            ent("check_vma_flags"),
            ret("check_vma_flags", "0xffffffffffffffa1"),
            ret("b", "0xffffffffffffffa1"),
            ret("a", "0xffffffffffffffa1"),
        ]
    )
    calls = parse_trace(text, EVENTS, {}, PID)
    node = decider(calls, 95)
    assert node is not None and node.function == "check_vma_flags" and node.meaning == "-EOPNOTSUPP"


def test_decider_takes_a_bool_child_that_said_no() -> None:
    text = "\n".join([ent("a"), ent("b"), ret("b", "0x0"), ret("a", "0xffffffffffffffea")])
    calls = parse_trace(text, EVENTS, {"b": "bool"}, PID)
    node = decider(calls, 22)
    assert node is not None and node.function == "b" and node.meaning == "false"


def test_decider_without_refusals_is_none() -> None:
    calls = parse_trace("\n".join([ent("a"), ret("a", "0x0")]), EVENTS, {}, PID)
    assert decider(calls, 14) is None


def test_pointer_refusal_is_the_decider_over_its_caller() -> None:
    """6.1's io_uring: pin_user_pages succeeds, io_pin_pages returns ERR_PTR(-EOPNOTSUPP)."""
    text = "\n".join(
        [
            ent("a"),
            ent("io_pin_pages"),
            ent("b"),
            ret("b", "0x200"),
            ret("io_pin_pages", "0xffffffffffffffa1"),
            ret("a", "0xffffffffffffffa1"),
        ]
    )
    calls = parse_trace(text, EVENTS, {"io_pin_pages": "pointer", "b": "long"}, PID)
    node = decider(calls, 95)
    assert node is not None and node.function == "io_pin_pages" and node.meaning == "ERR_PTR(-EOPNOTSUPP)"


def test_kallsyms_clones_and_missing_functions() -> None:
    text = "\n".join(
        [
            "ffffffff81234560 t check_vma_flags",
            "ffffffff81234990 t io_pin_pages.isra.0",
            "ffffffff81235000 t xdp_umem_reg.part.0",
            "ffffffff81236000 d pmem_should_map_pages",  # data, not text
            "ffffffffc0001000 t dax_mmap\t[device_dax]",
        ]
    )
    found = Probeable.from_kallsyms(
        text, ["check_vma_flags", "io_pin_pages", "xdp_umem_reg", "pmem_should_map_pages", "dax_mmap"]
    )
    assert found.symbols == {
        "check_vma_flags": "check_vma_flags",
        "io_pin_pages": "io_pin_pages.isra.0",
        "dax_mmap": "dax_mmap",
    }
    assert found.missing["xdp_umem_reg"].startswith("only a partial clone")
    assert "not in kallsyms" in found.missing["pmem_should_map_pages"]


def test_candidates_put_the_models_first_and_probe_stand_ins() -> None:
    cited = [{"function": "pmem_should_map_pages", "returns": "bool", "callers": ["nd_pmem_probe"]}]
    names = [c.function for c in candidates("longterm-pin", cited)]
    assert names[0] == "pmem_should_map_pages"
    assert "nd_pmem_probe" in names and "xdp_umem_pin_pages" in names and "check_vma_flags" in names
    assert len(names) == len(set(names))


def test_unprobeable_cited_function_names_its_nearest_probeable_caller() -> None:
    cands = [
        Candidate("xdp_umem_reg", "int", ("xdp_umem_create", "xsk_setsockopt")),
        Candidate("xsk_setsockopt"),
    ]
    probe = Probeable({"xsk_setsockopt": "xsk_setsockopt"}, {"xdp_umem_reg": "x", "xdp_umem_create": "y"})
    calls = parse_trace(
        "\n".join(
            [
                line("e_xsk_setsockopt", "(x)"),
                line("r_xsk_setsockopt", "(y <- xsk_setsockopt) raw=0xfffffffffffffff2"),
            ]
        ),
        {"e_xsk_setsockopt": ("xsk_setsockopt", "e"), "r_xsk_setsockopt": ("xsk_setsockopt", "r")},
        {},
        PID,
    )
    watch = Watch(cands, probe, calls)
    assert watch.unprobeable() == {"xdp_umem_reg": "xsk_setsockopt"}
    record = watch.decided_by("EFAULT")
    assert record["function"] == "xsk_setsockopt" and record["stand_in_for"] == ["xdp_umem_reg"]
    assert record["returned"] == "-EFAULT" and record["raw"] == "0xfffffffffffffff2"


def test_decided_by_says_why_there_is_none() -> None:
    watch = Watch([Candidate("a")], Probeable({"a": "a"}, {}), [])
    assert watch.decided_by("EFAULT")["why_none"] == "no probed function was called"


@pytest.mark.parametrize(
    ("outcome", "refused"),
    [
        ("EFAULT", True),
        ("fallback", True),
        ("ok", False),
        ("n/a", False),
        ("short", False),
        ("skipped:x", False),
        ("E99", False),
    ],
)
def test_refused(outcome: str, refused: bool) -> None:
    assert decisions.refused(outcome) is refused


def test_attribute_all_leaves_observations_alone_when_off() -> None:
    class Obs:
        outcome = "EFAULT"
        operation = "vmsplice"
        metrics: dict = {}

    obs = Obs()
    again = lambda: pytest.fail("no rerun when tracing is off")  # noqa: E731
    assert decisions.attribute_all([(obs, again)], {"profile": "quick"}) == [obs]
    assert "decided_by" not in obs.metrics


def test_split_marked_separates_the_reruns() -> None:
    text = "\n".join(
        [
            line("e_a", "(a+0x0/0x10)"),  # before any marker: dropped
            line("tracing_mark_write", "pmemkit-decide 0"),
            ent("a"),
            ret("a", "0xfffffff2"),
            line("tracing_mark_write", "pmemkit-decide 1"),
            ent("b"),
            ret("b", "0xffffffea"),
        ]
    )
    segments = split_marked(text)
    assert sorted(segments) == [0, 1]
    assert [c.function for c in parse_trace(segments[0], EVENTS, {}, PID)] == ["a"]
    assert [(c.function, c.errno) for c in parse_trace(segments[1], EVENTS, {}, PID)] == [("b", 22)]


def test_nullable_pointer_null_is_a_refusal_plain_pointer_null_is_not() -> None:
    assert interpret(0, "nullable") == (None, "NULL", True)
    assert interpret(0, "pointer") == (None, "NULL", False)
    assert interpret(0xFFFF888004A3B000, "nullable") == (None, "pointer", False)


def test_decider_follows_a_translated_errno_below_the_observed_one() -> None:
    """6.1 fork of a COW'd private /dev/mem map: copy_mm -ENOMEM <- dup_mm NULL <- track_pfn_copy -EINVAL."""
    events = {f"{k}_{f}": (f, k) for f in ("copy_mm", "dup_mm", "track_pfn_copy", "other") for k in "er"}
    text = "\n".join(
        [
            ent("copy_mm"),
            ent("dup_mm"),
            ent("other"),
            ret("other", "0xfffffffffffffffe"),  # an earlier child refusal, not the last one
            ent("track_pfn_copy"),
            ret("track_pfn_copy", "0xffffffea"),
            ret("dup_mm", "0x0"),
            ret("copy_mm", "0xfffffff4"),
        ]
    )
    calls = parse_trace(text, events, {"dup_mm": "nullable"}, PID)
    node = decider(calls, 12)
    assert node is not None and node.function == "track_pfn_copy" and node.meaning == "-EINVAL"
    watch = Watch([Candidate("copy_mm")], Probeable({"copy_mm": "copy_mm"}, {}), calls)
    assert "not the observed ENOMEM" in watch.decided_by("ENOMEM")["note"]


def test_a_probed_call_in_between_that_did_not_refuse_does_not_cut_the_chain() -> None:
    """6.12: get_user_pages_fast -> gup_fast_fallback (an int; read as a long it looked positive)
    -> check_vma_flags: the chain still reaches check_vma_flags."""
    text = "\n".join(
        [
            ent("a"),
            ent("b"),
            ent("check_vma_flags"),
            ret("check_vma_flags", "0xfffffff2"),
            ret("b", "0xfffffff2"),
            ret("a", "0xfffffff2"),
        ]
    )
    calls = parse_trace(text, EVENTS, {"b": "long"}, PID)
    assert not calls[1].refused  # 0x00000000fffffff2 as a long is a count
    node = decider(calls, 14)
    assert node is not None and node.function == "check_vma_flags"


def test_generic_return_types_follow_the_source() -> None:
    """linux-source-6.12 mm/gup.c: static int gup_fast_fallback();
    linux-source-6.1 io_uring/rsrc.c: struct page **io_pin_pages()."""
    types = {c.function: c.returns for fam in decisions.FAMILIES.values() for c in fam}
    assert types["gup_fast_fallback"] == "int" and types["io_pin_pages"] == "pointer"
    assert types["madvise_dontneed_free_valid_vma"] == "bool" and types["__get_user_pages"] == "long"
