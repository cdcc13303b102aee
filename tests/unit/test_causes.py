"""Who refused (issue 14): the traced refusing function beside the model's cited one, per refused cell.

A differing cause is a model disagreement even when the errno matches; a cited function that is not
probeable is matched at its nearest probeable caller; cells that were not traced say so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pmemkit.model.kernel import parse_kernel
from pmemkit.model.rules import DECIDERS, RULES, cited_decider, decision_candidates, rule_by_name
from pmemkit.plan import Plan
from pmemkit.report.causes import DIFFERS, MATCHES, NO_CITATION, NOT_TRACEABLE, cause_of, cause_section
from pmemkit.report.markdown import RunContents, join, model_section, render
from pmemkit.report.rundir import default_predictor
from pmemkit.scenario import Observation, Scenario, ScenarioError

K = "6.1.0-57-amd64"
PREDICT = default_predictor()
assert PREDICT is not None
DEVMEM = Scenario(K, "memmap", "devmem")
FSDAX = Scenario(K, "memmap", "raw", fs="ext4")
PAGECACHE = Scenario(K, "baseline", "pagecache", fs="ext4")
XFS_RAW = Scenario(K, "nvdimm", "raw", fs="xfs")  # raw NFIT: no struct page, XFS turns DAX off


def traced(function: str | None, returned: str = "-EFAULT", **extra: Any) -> dict[str, Any]:
    return {"function": function, "returned": returned, "raw": "0xfffffffffffffff2", "type": "int", **extra}


def obs(
    scenario: Scenario, op: str, outcome: str, decided_by: dict[str, Any] | None, mapping: str
) -> Observation:
    metrics: dict[str, Any] = {"mapping": mapping}
    if decided_by is not None:
        metrics["decided_by"] = decided_by
    return Observation("kapi", op, outcome, scenario, "/dev/x", metrics=metrics)


#: The fixture: what a traced 6.1 run could show. The long-term pin's cause matches; the io_uring
#: refusal of a page-cache file is traced to check_vma_flags while the model cites io_pin_pages
#: (errno equal, cause different); the madvise cell's cited function is not probeable and its
#: nearest caller refused; the futex cell was not traced.
FIXTURE = [
    obs(FSDAX, "longterm-pin", "EOPNOTSUPP", traced("check_vma_flags", "-EOPNOTSUPP"), "dax"),
    obs(
        PAGECACHE, "iouring-fixed-buffer", "EOPNOTSUPP", traced("check_vma_flags", "-EOPNOTSUPP"), "pagecache"
    ),
    obs(
        DEVMEM,
        "madvise",
        "EINVAL",
        traced(
            "madvise_dontneed_free",
            "-EINVAL",
            not_probeable={"madvise_dontneed_free_valid_vma": "not in kallsyms (inlined or absent)"},
        ),
        "pageless",
    ),
    obs(DEVMEM, "futex-shared", "EFAULT", None, "pageless"),
    obs(DEVMEM, "vmsplice", "EFAULT", traced(None, why_none="no probed function was called"), "pageless"),
    obs(
        DEVMEM,
        "fork-cow",
        "ENOMEM",
        traced(
            "track_pfn_copy", "-EINVAL", not_probeable={"get_pat_info": "not in kallsyms (inlined or absent)"}
        ),
        "pageless",
    ),
    Observation(
        "prepare",
        "dax-mount",
        "fallback",
        XFS_RAW,
        "/dev/pmem0",
        metrics={"decided_by": traced("xfs_fs_fill_super", "0")},
    ),
    obs(FSDAX, "futex-shared", "ok", None, "dax"),
]


def _run() -> RunContents:
    return RunContents("r", {}, {}, {"kernel": K}, list(FIXTURE))


def _verdicts() -> dict[tuple[str, str], str]:
    out = {}
    for o in FIXTURE:
        assert PREDICT is not None
        cause = cause_of(o, PREDICT(o))
        if cause is not None:
            out[(o.scenario.mode, o.operation)] = cause.verdict
    return out


def test_each_refused_cell_gets_its_verdict() -> None:
    assert _verdicts() == {
        ("raw", "longterm-pin"): MATCHES,
        ("pagecache", "iouring-fixed-buffer"): DIFFERS,
        ("devmem", "madvise"): MATCHES,  # at its caller: the cited function is not probeable
        ("devmem", "futex-shared"): NOT_TRACEABLE,
        ("devmem", "vmsplice"): NOT_TRACEABLE,
        ("devmem", "fork-cow"): MATCHES,  # at track_pfn_copy: get_pat_info is inlined
        ("raw", "dax-mount"): NO_CITATION,  # a fallback is a refusal; mount-xfs-fallback cites none
    }


def test_a_differing_cause_is_a_disagreement_even_when_the_errno_matches() -> None:
    run = _run()
    joined = join(run, PREDICT)
    iouring = next(j for j in joined if j.observation.operation == "iouring-fixed-buffer")
    assert (
        iouring.prediction is not None
        and iouring.prediction.outcome == "EOPNOTSUPP" == iouring.observation.outcome
    )
    assert not iouring.agree
    assert sum(not j.agree for j in joined if j.prediction is not None) == 1
    text = "\n".join(model_section(run, joined))
    assert "7 agree, 1 disagree" in text


def test_the_report_shows_cited_beside_traced() -> None:
    text = render(_run(), PREDICT)
    section = text[text.index("## Who refused") :]
    assert "7 refused cells: 3 cause matches, 1 cause differs, 2 not traceable, 1 no citation" in section
    row = next(line for line in section.splitlines() if "iouring-fixed-buffer" in line)
    assert (
        "`io_pin_pages`" in row and "`check_vma_flags` → `-EOPNOTSUPP`" in row and "**cause differs**" in row
    )


def test_no_refusal_no_section() -> None:
    run = RunContents("r", {}, {}, {"kernel": K}, [FIXTURE[-1]])
    assert cause_section((j.observation, j.prediction) for j in join(run, PREDICT)) == []


def test_an_untraced_run_has_no_section() -> None:
    untraced = [o for o in FIXTURE if "decided_by" not in o.metrics]
    assert any(o.outcome == "EFAULT" for o in untraced)
    run = RunContents("r", {}, {}, {"kernel": K}, untraced)
    assert "## Who refused" not in render(run, PREDICT)


def test_deciders_name_real_refusing_rules_and_types() -> None:
    names = {r.name for r in RULES}
    for rule, deciders in DECIDERS.items():
        assert rule in names, rule
        assert rule_by_name(rule).answer not in ("ok", "n/a"), rule
        for d in deciders:
            assert d.returns in ("int", "long", "pointer", "bool") and d.source and d.status in ("V", "I")


@pytest.mark.parametrize(
    ("rule", "kernel", "function"),
    [
        ("iouring-file-backed-refused", "6.1.0-57-amd64", "io_pin_pages"),
        ("iouring-file-backed-refused", "5.10.0-46-amd64", "io_sqe_buffer_register"),
        ("longterm-fsdax-foll-longterm", "6.12.118+deb13-amd64", "check_vma_flags"),
        ("gup-devmem", "7.3.4+deb13-amd64", "check_vma_flags"),
    ],
)
def test_cited_function_per_kernel_range(rule: str, kernel: str, function: str) -> None:
    cited = cited_decider(rule, parse_kernel(kernel))
    assert cited is not None and cited.function == function


def test_decision_candidates_cover_the_refused_kapi_operations() -> None:
    plan = decision_candidates()
    for op in ("futex-shared", "vmsplice", "iouring-fixed-buffer", "longterm-pin", "madvise", "fork-cow"):
        assert plan[op], op
    assert {"function": "io_pin_pages", "returns": "pointer", "callers": ["io_sqe_buffer_register"]} in plan[
        "iouring-fixed-buffer"
    ]


def test_plan_carries_decisions_and_refuses_a_bad_shape() -> None:
    plan = Plan(suites=["kapi"], pmem=[], decisions={"operations": decision_candidates()})
    data = json.loads(json.dumps(plan.to_dict()))
    again = Plan.from_dict(data)
    assert again.decisions == plan.decisions and again.params()["decisions"] == plan.decisions
    assert "decisions" not in Plan(suites=["kapi"], pmem=[]).params()
    with pytest.raises(ScenarioError, match="decisions"):
        Plan.from_dict({**data, "decisions": {"operations": {"vmsplice": "check_vma_flags"}}})


@pytest.mark.parametrize(("flag", "traced"), [((), False), (("--trace-decisions",), True)])
def test_run_trace_decisions_reaches_the_options(
    monkeypatch, tmp_path, flag: tuple[str, ...], traced: bool
) -> None:
    """Off by default; on, the model's cited functions travel to the guest through the plan."""
    import dataclasses

    from click.testing import CliRunner

    import pmemkit.pipeline as pipeline
    import pmemkit.vm.layout as layout_mod
    from pmemkit.cli import main
    from tests.unit.test_cli import HOST_24G

    seen = []

    class Booted(Exception):
        pass

    def stub(options, progress=None):  # type: ignore[no-untyped-def]
        seen.append(options)
        raise Booted()

    monkeypatch.setattr(pipeline, "run", stub)
    monkeypatch.setattr(layout_mod, "read_host", lambda scratch, accel: dataclasses.replace(HOST_24G))
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["run", "--suite", "kapi", "--fs", "ext4", *flag])
    assert isinstance(result.exception, Booted), result.output
    (options,) = seen
    if traced:
        assert options.decisions == {"operations": decision_candidates()}
    else:
        assert options.decisions is None


def test_tracing_decisions_widens_the_default_timeout() -> None:
    from pmemkit.scenario import PmemConfig
    from pmemkit.vm.run import RunOptions

    pmem = [PmemConfig.from_dict({"source": "memmap", "size": 512 << 20})]
    off = RunOptions(pmem=pmem, suites=["kapi"], filesystems=["ext4"])
    on = RunOptions(pmem=pmem, suites=["kapi"], filesystems=["ext4"], decisions={"operations": {}})
    assert on.default_timeout() > off.default_timeout()


def test_the_full_profile_gets_a_default_timeout_for_its_longer_suites() -> None:
    """The bench's full fio run on the default six devices (nine targets) was killed at 555 s on a
    quiet host while its ninth target ran; the full profile's budget covers 9 x 61 s and more."""
    from pmemkit.scenario import PmemConfig
    from pmemkit.vm.run import RunOptions

    specs = [("memmap", None), ("nvdimm", "fsdax"), ("nvdimm", "fsdax"), ("nvdimm", "devdax")]
    specs += [("nvdimm", "raw"), ("virtio-pmem", None)]
    pmem = [PmemConfig.from_dict({"source": s, "size": 512 << 20, "mode": m}) for s, m in specs]
    quick = RunOptions(pmem=pmem, suites=["fio"])
    full = RunOptions(pmem=pmem, suites=["fio"], profile="full")
    assert quick.default_timeout() == 555.0  # what killed it
    assert full.default_timeout() >= 9 * 61 * 3  # room for a loaded host
