"""`pmemkit model diff` and extrapolation past the newest kernel the model knows (issue 10 items 5, 6)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pmemkit.model import ModelError, parse_kernel, predict
from pmemkit.model.diff import diff
from pmemkit.model.kernel import NEWEST, is_extrapolated
from pmemkit.model_cli import model
from pmemkit.scenario import Scenario

PREDICT = ["predict", "--pmem", "nvdimm", "--mode", "fsdax", "--op", "dax-mount"]


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(model, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_diff_6_1_to_7_3_names_the_6_5_gup_and_io_uring_changes() -> None:
    d = diff("6.1", "7.3")
    by = {(c.scenario, c.operation): c for c in d.changes}
    devdax = by[("devdax map=mem, ext4", "iouring-fixed-buffer")]
    assert (devdax.before.outcome, devdax.after.outcome, devdax.changed_by.name) == (
        "EOPNOTSUPP",
        "ok",
        "iouring-devdax",
    )
    pagecache = by[("page cache (root disk ext4)", "longterm-pin")]
    assert (pagecache.before.outcome, pagecache.after.outcome) == ("ok", "EFAULT")
    assert pagecache.changed_by.name == "longterm-pagecache-writable-file"
    assert all(
        c.before.outcome != c.after.outcome or c.before.struct_page != c.after.struct_page for c in d.changes
    )
    assert d.cells > len(d.changes) > 0


def test_diff_across_4_16_names_the_struct_page_requirement() -> None:
    d = diff("4.15", "4.16")
    by = {(c.scenario, c.operation): c for c in d.changes}
    nfit = by[("raw NFIT, ext4", "dax-mount")]
    assert (nfit.before.outcome, nfit.after.outcome) == ("ok", "fallback")
    assert nfit.changed_by.name == "dax-requires-struct-page"
    assert [r.name for r in nfit.also] == ["mount-ext4-auto-disable"]
    # XFS refuses DAX on its (default) reflink filesystem before 6.0 whether or not the device
    # keeps DAX (xfs_fc_fill_super() turns DAX off, then still refuses reflink): no change at 4.16
    assert ("raw NFIT, xfs", "dax-mount") not in by
    for kernel in ("4.15", "4.16"):
        xfs = predict(Scenario(kernel, "nvdimm", "raw", fs="xfs"), "dax-mount")
        assert (xfs.outcome, xfs.rule) == ("EINVAL", "mount-xfs-reflink-refused")
    # without reflink the 4.16 struct page requirement shows: DAX on 4.15, turned off on 4.16
    no_reflink = [
        predict(Scenario(k, "nvdimm", "raw", fs="xfs"), "dax-mount", reflink=False) for k in ("4.15", "4.16")
    ]
    assert [(p.outcome, p.rule) for p in no_reflink] == [
        ("ok", "mount-dax"),
        ("fallback", "mount-xfs-fallback"),
    ]


def test_diff_all_lists_rule_only_changes_of_6_15_and_6_17() -> None:
    d = diff("6.12", "7.3", all_rules=True)
    names = {r.name for c in d.rule_only for r in (c.changed_by, *c.also)}
    assert {"longterm-fsdax-gup-fast", "dax-with-pages-no-pfn-t"} <= names
    assert not diff("6.12", "7.3").rule_only


def test_diff_same_kernel_is_refused() -> None:
    with pytest.raises(ModelError, match="same kernel"):
        diff("6.1", "v6.1")


def test_diff_cli_text_markdown_json() -> None:
    code, text, _ = _run("diff", "--from", "6.1", "--to", "7.3")
    assert (
        code == 0
        and "predictions change from kernel 6.1 to 7.3" in text
        and "changed by: iouring-devdax" in text
    )
    code, md, _ = _run("diff", "--from", "6.1", "--to", "7.3", "--markdown")
    assert code == 0 and "| scenario | operation | from | to | changed by |" in md
    code, out, _ = _run("diff", "--from", "6.1", "--to", "7.3", "--json")
    data = json.loads(out)
    assert data["from"] == "6.1" and data["to"] == "7.3" and data["extrapolated"] is False
    assert any(
        c["changed_by"]["rule"] == "iouring-devdax" and c["changed_by"]["sources"] for c in data["changes"]
    )


@pytest.mark.parametrize(
    "args",
    [
        ("diff", "--from", "6.1", "--to", "6.1"),
        ("diff", "--from", "6.1"),
        ("diff", "--from", "6.1", "--to", "7.3", "--json", "--markdown"),
        ("diff", "--from", "６.1", "--to", "7.3"),
        ("diff", "--from", "6.1", "--to", "7.3", "--stack", "zfs"),
        ("diff", "--bogus"),
    ],
)
def test_diff_errors_are_one_line_exit_2(args: tuple[str, ...]) -> None:
    code, out, err = _run(*args)
    assert code == 2 and out == ""
    assert err.startswith("pmemkit: error: ") and err.count("\n") == 1


def test_newer_kernel_than_the_model_knows_is_extrapolated() -> None:
    newest = f"{NEWEST[0]}.{NEWEST[1]}"
    assert not is_extrapolated(parse_kernel(newest))
    assert not is_extrapolated(parse_kernel(newest + ".9"))
    assert is_extrapolated(parse_kernel(f"{NEWEST[0]}.{NEWEST[1] + 1}"))
    assert is_extrapolated(parse_kernel("99.1"))


def test_predict_json_carries_extrapolated_and_text_warns() -> None:
    code, out, _ = _run(*PREDICT, "--kernel", "99.1", "--json")
    assert code == 0 and json.loads(out)["extrapolated"] is True
    code, out, _ = _run(*PREDICT, "--kernel", "6.1", "--json")
    assert json.loads(out)["extrapolated"] is False
    code, out, _ = _run(*PREDICT, "--kernel", "99.1")
    assert code == 0 and out.splitlines()[0].startswith("warning: kernel 99.1 is newer than the newest")
    code, out, _ = _run(*PREDICT, "--kernel", "6.12")
    assert "warning" not in out


@pytest.mark.parametrize(
    "args",
    [
        ("table", "--kernel", "99.1"),
        ("size", "--kernel", "99.1", "--mode", "fsdax", "--size", "1G"),
        ("explain", *PREDICT[1:], "--kernel", "99.1"),
        ("diff", "--from", "6.1", "--to", "99.1"),
    ],
)
def test_every_text_command_warns_and_json_says_extrapolated(args: tuple[str, ...]) -> None:
    code, out, _ = _run(*args)
    assert code == 0 and "warning: kernel 99.1 is newer than the newest kernel the model knows" in out
    code, out, _ = _run(*args, "--json")
    assert code == 0 and json.loads(out)["extrapolated"] is True and "warning" not in out


@pytest.mark.parametrize("text", ["６１.1", "6.1" + "9" * 5000, "1" * 5000 + ".1", "6.１", "6.1.0-５"])
def test_kernel_spellings_refused_in_one_line(text: str) -> None:
    with pytest.raises(ModelError):
        parse_kernel(text)
    code, out, err = _run(*PREDICT, "--kernel", text)
    assert code == 2 and out == "" and err.startswith("pmemkit: error: ") and err.count("\n") == 1
    assert len(err) < 400


@pytest.mark.parametrize(
    ("spec", "extra", "source", "mode", "map_"),
    [
        ("memmap:512M", (), "memmap", "raw", None),
        ("virtio-pmem:1G", (), "virtio-pmem", "raw", None),
        ("nvdimm:1G", (), "nvdimm", "fsdax", "mem"),
        ("nvdimm:1G,mode=devdax,map=dev", (), "nvdimm", "devdax", "dev"),
        ("nvdimm:1G,mode=devdax", ("--map", "dev"), "nvdimm", "devdax", "dev"),
        ("nvdimm", ("--mode", "raw"), "nvdimm", "raw", None),
    ],
)
def test_pmem_means_the_same_spec_as_in_run(
    spec: str, extra: tuple[str, ...], source: str, mode: str, map_: str | None
) -> None:
    """Issue 9 item 5: `--pmem memmap:512M` answers the model question for that source."""
    code, out, _ = _run("predict", "--kernel", "6.1", "--pmem", spec, *extra, "--op", "dax-mount", "--json")
    assert code == 0, out
    scenario = json.loads(out)["scenario"]
    assert (scenario["source"], scenario["mode"], scenario["map"]) == (source, mode, map_)


@pytest.mark.parametrize(
    "args",
    [
        ("predict", "--kernel", "6.1", "--pmem", "nvdimm", "--op", "dax-mount"),
        ("predict", "--kernel", "6.1", "--pmem", "nvdimm:1G", "--mode", "raw", "--op", "dax-mount"),
        ("predict", "--kernel", "6.1", "--pmem", "nvdimm:1G,map=dev", "--map", "mem", "--op", "dax-mount"),
        ("predict", "--kernel", "6.1", "--pmem", "memmap:2G@", "--op", "dax-mount"),
        ("size", "--kernel", "6.1", "--pmem", "nvdimm:16G", "--size", "1G"),
        ("size", "--kernel", "6.1", "--mode", "fsdax"),
    ],
)
def test_pmem_spec_errors_are_one_line(args: tuple[str, ...]) -> None:
    code, out, err = _run(*args)
    assert code == 2 and out == "" and err.startswith("pmemkit: error: ") and err.count("\n") == 1


def test_size_takes_the_size_from_the_spec() -> None:
    code, out, _ = _run("size", "--kernel", "6.1.150", "--pmem", "nvdimm:16G,mode=fsdax,map=mem", "--json")
    data = json.loads(out)
    assert code == 0 and data["size_bytes"] == 16 << 30 and data["dram_bytes"] == 256 << 20


def test_diff_6_1_to_7_3_lists_what_the_four_kernel_runs_showed() -> None:
    """Debian runs (pmemkit VM, 2026-12-07): 6.12 refuses long-term pins of page-cache files
    (EFAULT), 7.2.13 and 7.3.4 map /dev/mem privately and copies on write (ok, was ENOMEM up to 6.12)."""
    changes = {(c.scenario, c.operation): c for c in diff("6.1", "7.3").changes}
    devmem = changes[("/dev/mem (page-less)", "fork-cow")]
    assert (devmem.before.outcome, devmem.after.outcome, devmem.changed_by.name) == (
        "ENOMEM",
        "ok",
        "private-devmem-7.2",
    )
    # the private /dev/mem mapping itself is made on 6.1 too: the ENOMEM was the fork (traced, issue 14)
    assert ("/dev/mem (page-less)", "map-private") not in changes
    for op in ("longterm-pin", "iouring-fixed-buffer"):
        assert changes[("page cache (root disk ext4)", op)].after.outcome == "EFAULT"
    assert not [c for c in diff("6.1", "6.12").changes if c.operation == "fork-cow"]


@pytest.mark.parametrize(
    ("kernel", "flag", "outcome"),
    [
        ("5.10", (), "EINVAL"),  # pmemkit's mkfs.xfs makes reflink filesystems (observed EINVAL on 5.10.0-46)
        ("5.10", ("--xfs-reflink",), "EINVAL"),
        ("5.10", ("--no-xfs-reflink",), "ok"),
        ("6.1", (), "ok"),  # 35fcd75af3ed (6.0): reflink refused only on a partition
    ],
)
def test_xfs_reflink_is_a_fact_defaulting_to_mkfs(kernel: str, flag: tuple[str, ...], outcome: str) -> None:
    args = ("predict", "--kernel", kernel, "--pmem", "nvdimm:1G", "--fs", "xfs", "--op", "dax-mount", *flag)
    code, out, _ = _run(*args, "--json")
    assert code == 0 and json.loads(out)["outcome"] == outcome
