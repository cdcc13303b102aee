"""Block stacks (md RAID0/RAID1, dm-linear, dm-stripe over two devices): rules, boundaries, CLI.

Issue 5, "The RAID case": does the stacked device advertise DAX, does mount -o dax work on it,
what follows for the mapping operations, and sector-to-sector I/O through the stack
(`stack-copy`) works with or without struct page.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pmemkit.model import (
    MODEL_OPERATIONS,
    STACKS,
    ModelError,
    StackPrediction,
    backing,
    build_table,
    parse_kernel,
    predict,
    render_json,
    render_markdown,
    render_text,
    rule_by_name,
)
from pmemkit.model.rules import SEED
from pmemkit.model_cli import model
from pmemkit.scenario import OPERATIONS, SOURCES, Scenario, is_outcome

MD = ("md-raid0", "md-raid1")
DM = ("dm-linear", "dm-stripe")

# "kernel stack source mode map fs op outcome operation-rule stack-dax-rule" (map "-" = none)
CASES = [
    # md never passes DAX: ext4 refuses (>= 4.16), XFS falls back, whatever the members are
    "6.1 md-raid0 memmap raw - ext4 dax-mount EINVAL mount-ext4-refused md-no-dax",
    "6.1 md-raid1 nvdimm fsdax mem ext4 dax-mount EINVAL mount-ext4-refused md-no-dax",
    "6.1 md-raid1 nvdimm fsdax dev xfs dax-mount fallback mount-xfs-fallback md-no-dax",
    "6.0 md-raid0 memmap raw - xfs dax-mount fallback mount-xfs-fallback md-no-dax",
    # ... but before 6.0 XFS turns DAX off and then still refuses its default reflink filesystem
    # (5.10's xfs_fc_fill_super(); observed EINVAL on Debian 5.10.0-46, --suite raid)
    "5.10.0-46-amd64 md-raid0 memmap raw - xfs dax-mount EINVAL mount-xfs-reflink-refused md-no-dax",
    "5.10.0-46-amd64 md-raid1 memmap raw - xfs dax-mount EINVAL mount-xfs-reflink-refused md-no-dax",
    "5.10.0-46-amd64 md-raid0 nvdimm fsdax mem xfs dax-mount EINVAL mount-xfs-reflink-refused md-no-dax",
    "5.10.0-46-amd64 md-raid1 nvdimm fsdax mem xfs dax-mount EINVAL mount-xfs-reflink-refused md-no-dax",
    "5.10.0-46-amd64 md-raid1 nvdimm fsdax mem xfs odirect-read-into-dax n/a fs-not-mounted md-no-dax",
    "4.15 md-raid0 nvdimm fsdax mem ext4 dax-mount EINVAL mount-ext4-refused-early md-no-dax",
    # 4.16-4.20 ext4 turned DAX off instead of failing (24f3478d664b; 361d24d40657 restored the
    # failure in 5.0): issue 10 item 2
    "4.16 md-raid0 nvdimm fsdax mem ext4 dax-mount fallback mount-ext4-auto-disable md-no-dax",
    "5.0 md-raid0 nvdimm fsdax mem ext4 dax-mount EINVAL mount-ext4-refused md-no-dax",
    # ext4 refuses the mount, so nothing can be mapped: n/a (the guest runs no experiment on a
    # refused mount, guest/runner.py _run_device); XFS falls back and gives page-cache answers
    "6.12 md-raid0 memmap raw - ext4 pagecache-bypass n/a fs-not-mounted md-no-dax",
    "6.12 md-raid0 memmap raw - xfs pagecache-bypass fallback bypass-none md-no-dax",
    "6.12 md-raid0 memmap raw - xfs map-sync EOPNOTSUPP mapsync-no-dax md-no-dax",
    "6.12 md-raid1 memmap raw - xfs pmd-fault fallback pmd-no-dax md-no-dax",
    "4.19 md-raid1 memmap raw - ext4 pmd-fault fallback pmd-no-dax md-no-dax",
    "6.1 md-raid1 nvdimm fsdax mem ext4 odirect-read-into-dax n/a fs-not-mounted md-no-dax",
    "6.1 md-raid1 nvdimm fsdax mem xfs odirect-read-into-dax ok odirect-ram md-no-dax",
    # dm DAX arrived in 4.8
    "4.7 dm-linear nvdimm fsdax mem ext4 dax-mount EINVAL mount-ext4-refused-early dm-dax-absent-before-4.8",
    "4.7 dm-stripe nvdimm fsdax mem xfs dax-mount EINVAL mount-xfs-reflink-refused dm-dax-absent-before-4.8",
    "4.8 dm-linear nvdimm fsdax mem ext4 dax-mount ok mount-dax dm-linear-dax",
    "4.8 dm-stripe nvdimm fsdax mem ext4 dax-mount ok mount-dax dm-stripe-dax",
    # dm passes through what the members have: pages, page-less (before 4.16) or nothing
    "6.1 dm-linear memmap raw - ext4 dax-mount ok mount-dax dm-linear-dax",
    "6.1 dm-stripe nvdimm fsdax dev xfs dax-mount ok mount-dax dm-stripe-dax",
    "4.15 dm-linear nvdimm raw - ext4 dax-mount ok mount-dax dm-linear-dax",
    "4.15 dm-linear nvdimm raw - ext4 odirect-read-into-dax EFAULT odirect-pageless dm-linear-dax",
    "4.16 dm-linear nvdimm raw - ext4 dax-mount fallback mount-ext4-auto-disable dm-linear-dax",
    "5.0 dm-linear nvdimm raw - ext4 dax-mount EINVAL mount-ext4-refused dm-linear-dax",
    "6.1 dm-stripe nvdimm raw - xfs dax-mount fallback mount-xfs-fallback dm-stripe-dax",
    "6.1 dm-linear nvdimm sector - ext4 dax-mount EINVAL mount-ext4-refused dm-linear-dax",
    "6.11-rc2 dm-linear memmap raw - ext4 dax-mount EINVAL mount-ext4-refused dm-linear-dax",
    "6.11-rc4 dm-linear memmap raw - ext4 dax-mount ok mount-dax dm-linear-dax",
    "6.1 dm-linear nvdimm fsdax mem ext4 pagecache-bypass ok bypass-dax dm-linear-dax",
    "6.1 dm-stripe nvdimm fsdax mem ext4 map-sync ok mapsync-dax dm-stripe-dax",
    "6.1 dm-linear virtio-pmem raw - ext4 map-sync EOPNOTSUPP mapsync-async-region dm-linear-dax",
    "6.1 dm-stripe nvdimm fsdax mem ext4 pmd-fault ok pmd-ok dm-stripe-dax",
    "6.1 dm-linear nvdimm fsdax dev ext4 odirect-write-from-dax ok odirect-pages dm-linear-dax",
    "6.1 dm-linear nvdimm fsdax mem ext4 longterm-pin EOPNOTSUPP longterm-fsdax-foll-longterm dm-linear-dax",
    # stack-copy: block I/O through the stack, with or without struct page
    "6.1 md-raid0 nvdimm raw - ext4 stack-copy ok stack-copy-block-io md-no-dax",
    "6.1 md-raid1 nvdimm fsdax mem ext4 stack-copy ok stack-copy-block-io md-no-dax",
    "6.1 dm-linear nvdimm sector - ext4 stack-copy ok stack-copy-block-io dm-linear-dax",
    "4.7 dm-stripe memmap raw - ext4 stack-copy ok stack-copy-block-io dm-dax-absent-before-4.8",
    "6.12 dm-stripe nvdimm raw - ext4 stack-copy ok stack-copy-block-io dm-stripe-dax",
]


@pytest.mark.parametrize("case", CASES)
def test_stack_rule_and_boundary(case: str) -> None:
    kernel, stack, source, mode, map_, fs, op, outcome, rule, stack_rule = case.split()
    scenario = Scenario(kernel, source, mode, None if map_ == "-" else map_, fs=fs)
    p = predict(scenario, op, stack)
    assert (p.outcome, p.rule) == (outcome, rule)
    chain = backing(scenario, stack)
    assert chain.stack_dax is not None and chain.stack_dax.name == stack_rule
    assert parse_kernel(kernel) in rule_by_name(stack_rule).range
    assert p.stack == stack
    assert p.stack_dax == (chain.facts["fs_dax"] in ("pages", "pageless"))


@pytest.mark.parametrize(
    ("kernel", "stack"),
    [("5.10.0-46-amd64", "md-raid0"), ("5.10.0-46-amd64", "md-raid1"), ("4.7", "dm-stripe")],
)
def test_xfs_without_reflink_falls_back_on_a_stack_without_dax(kernel: str, stack: str) -> None:
    """Before 6.0 only the reflink refusal turns XFS's 'Turning off DAX' into EINVAL: without
    reflink the mount falls back to the page cache, and the mapping operations are answered."""
    scenario = Scenario(kernel, "nvdimm", "fsdax", "mem", fs="xfs")
    with_reflink = predict(scenario, "dax-mount", stack)
    without = predict(scenario, "dax-mount", stack, reflink=False)
    assert (with_reflink.outcome, with_reflink.rule) == ("EINVAL", "mount-xfs-reflink-refused")
    assert (without.outcome, without.rule) == ("fallback", "mount-xfs-fallback")
    assert predict(scenario, "pagecache-bypass", stack).outcome == "n/a"
    assert predict(scenario, "pagecache-bypass", stack, reflink=False).outcome == "fallback"


@pytest.mark.parametrize("stack", MD + DM)
def test_stacks_over_devdax_do_not_exist(stack: str) -> None:
    p = predict(Scenario("6.1", "nvdimm", "devdax", "mem"), "stack-copy", stack)
    assert (p.outcome, p.rule) == ("n/a", "stack-needs-block-device")
    assert p.stack_dax is False


def test_bare_devdax_has_no_block_path_to_copy() -> None:
    p = predict(Scenario("6.1", "nvdimm", "devdax", "dev"), "stack-copy")
    assert (p.outcome, p.rule) == ("n/a", "stack-copy-devdax")


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(("source", "mode", "map_"), [("nvdimm", "raw", None), ("memmap", "raw", None)])
def test_stack_copy_ok_with_or_without_struct_page(
    stack: str, source: str, mode: str, map_: str | None
) -> None:
    p = predict(Scenario("6.1", source, mode, map_), "stack-copy", stack)
    assert p.outcome == "ok"
    # struct page is reported from the members: NFIT raw has none, memmap raw has a DRAM memmap
    assert p.struct_page == (source == "memmap")
    assert "no struct page needed" in p.explanation
    assert "only when user space maps" in p.explanation
    assert p.status == "I" and "inferred; to be confirmed by the VM" in p.explanation


def test_struct_page_comes_from_the_members_not_the_stack() -> None:
    bare = backing(Scenario("6.1", "nvdimm", "fsdax", "dev"))
    for stack in MD + DM:
        chain = backing(Scenario("6.1", "nvdimm", "fsdax", "dev"), stack)
        assert chain.memmap_location == bare.memmap_location == "pmem"
        assert chain.facts["member_fs_dax"] == "pages"


def test_no_stack_is_the_old_model() -> None:
    for op in OPERATIONS:
        p = predict(Scenario("6.1", "nvdimm", "raw", fs="ext4"), op)
        assert p.stack == "none"
        assert backing(Scenario("6.1", "nvdimm", "raw")).stack_dax is None


def test_stack_explanation_names_the_stack_rule() -> None:
    p = predict(Scenario("6.1", "memmap", "raw"), "dax-mount", "md-raid0")
    assert "Stack (md-raid0 over two such devices)" in p.explanation
    assert "hidden behind the RAID abstraction" in p.explanation
    assert "drivers/md/md.c md_alloc(): no alloc_dax(), no dax_operations" in p.sources
    assert isinstance(p, StackPrediction)
    assert p.to_dict()["stack"] == "md-raid0" and p.to_dict()["stack_dax"] is False


def test_stack_rules_cite_dm_sources() -> None:
    for name in ("dm-linear-dax", "dm-stripe-dax"):
        sources = " ".join(rule_by_name(name).sources)
        assert "dm_table_supports_dax" in sources and "direct_access" in sources
        assert "(4.8)" in sources
        assert rule_by_name(name).since == "4.8"
    assert rule_by_name("md-no-dax").status == "I"


def test_unknown_stack_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="unknown stack 'raid5'"):
        predict(Scenario("6.1", "nvdimm", "raw"), "dax-mount", "raid5")
    with pytest.raises(ModelError):
        build_table("6.1", stack="lvm")


def _with_stack(scenario: Scenario, stack: str | None):
    """The scenario carrying its own `stack` field (pmemkit.scenario may or may not have it yet)."""
    if "stack" not in {f.name for f in dataclasses.fields(Scenario)}:
        pytest.skip("pmemkit.scenario.Scenario has no stack field yet")
    return dataclasses.replace(scenario, stack=stack)  # type: ignore[call-arg]


def test_scenario_stack_field_is_honoured() -> None:
    base = Scenario("6.1", "memmap", "raw", fs="ext4")
    p = predict(_with_stack(base, "md-raid1"), "dax-mount")  # type: ignore[arg-type]
    assert (p.stack, p.outcome, p.stack_dax) == ("md-raid1", "EINVAL", False)
    assert predict(_with_stack(base, None), "dax-mount").stack == "none"  # type: ignore[arg-type]
    same = predict(_with_stack(base, "dm-linear"), "dax-mount", "dm-linear")  # type: ignore[arg-type]
    assert (same.stack, same.outcome) == ("dm-linear", "ok")
    with pytest.raises(ModelError, match="contradicts"):
        predict(_with_stack(base, "dm-linear"), "dax-mount", "md-raid0")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="unknown stack"):
        predict(_with_stack(base, "raid5"), "dax-mount")  # type: ignore[arg-type]


def test_stack_copy_is_a_model_operation() -> None:
    assert "stack-copy" in MODEL_OPERATIONS
    assert set(OPERATIONS) <= set(MODEL_OPERATIONS)
    assert len(MODEL_OPERATIONS) == len(set(MODEL_OPERATIONS))


@pytest.mark.parametrize("stack", ["md-raid1", "dm-stripe"])
def test_table_with_stack(stack: str) -> None:
    table = build_table("6.1", "ext4", stack)
    assert table.stack == stack and table.stack_dax is not None
    text = render_text(table)
    assert f"{stack} advertises DAX" in text
    assert "stack-copy" in text
    md = render_markdown(table)
    assert f"stack {stack} over two devices per column" in md
    data = json.loads(render_json(table))
    assert data["stack"] == stack
    by_label = {c["label"]: c for c in data["columns"]}
    assert by_label["devdax map=mem"]["stack_dax"] == "n/a"
    expected = "no" if stack.startswith("md") else "yes"
    assert by_label["fsdax map=mem"]["stack_dax"] == expected
    assert by_label["raw NFIT"]["stack_dax"] == "no"
    assert "stack-copy" in data["operations"]


def test_table_without_stack_has_no_stack_row() -> None:
    table = build_table("6.1")
    assert table.stack_dax is None
    assert "advertises DAX" not in render_text(table)
    assert json.loads(render_json(table))["stack"] == "none"


# ---- properties --------------------------------------------------------------------------------

NAMED = ["4.7", "4.8", "4.15", "4.16", "4.18", "5.17", "6.1", "6.1.0-50-amd64", "6.11-rc2", "6.12", "6.17"]
NOT_COPY = [op for op in MODEL_OPERATIONS if op != "stack-copy"]
kernels = st.one_of(
    st.sampled_from(NAMED),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.integers(4, 6), st.integers(0, 20), st.integers(0, 300)),
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    mode = draw(st.sampled_from(["raw", "fsdax", "devdax", "sector"]))
    return Scenario(
        kernel=draw(kernels),
        source=draw(st.sampled_from(SOURCES)),
        mode=mode,
        map=draw(st.sampled_from(["mem", "dev"])) if mode in ("fsdax", "devdax") else None,
        force_raw=draw(st.booleans()) if mode == "raw" else False,
        fs=draw(st.sampled_from([None, "ext4", "xfs"])),
        align=draw(st.sampled_from([None, 4096, 2 << 20])),
    )


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.sampled_from(MD))
def test_md_never_dax_mounts_ext4_since_4_16(scenario: Scenario, stack: str) -> None:
    scenario = Scenario(**{**scenario.to_dict(), "fs": "ext4"})
    if parse_kernel(scenario.kernel) < parse_kernel("4.16"):
        return
    p = predict(scenario, "dax-mount", stack)
    assert p.outcome != "ok"
    assert p.stack_dax is False


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.sampled_from(DM), st.sampled_from(NOT_COPY))
def test_dm_since_4_8_predicts_like_the_bare_device(scenario: Scenario, stack: str, op: str) -> None:
    if parse_kernel(scenario.kernel) < parse_kernel("4.8") or scenario.mode == "devdax":
        return
    assert predict(scenario, op, stack).outcome == predict(scenario, op).outcome


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.sampled_from(STACKS), st.sampled_from(MODEL_OPERATIONS))
def test_stack_prediction_is_well_formed(scenario: Scenario, stack: str, op: str) -> None:
    p = predict(scenario, op, stack)
    assert is_outcome(p.outcome)
    assert p.struct_page == (p.memmap_location != "none")
    assert parse_kernel(scenario.kernel) in rule_by_name(p.rule).range
    assert SEED in p.explanation
    if stack in MD:
        assert p.stack_dax is False


# ---- CLI ---------------------------------------------------------------------------------------


def run(args: list[str]):
    return CliRunner().invoke(model, args, prog_name="pmemkit model")


BASE = ["--kernel", "6.1", "--pmem", "nvdimm", "--mode", "fsdax", "--map", "mem", "--fs", "ext4"]


@pytest.mark.parametrize("stack", STACKS)
def test_predict_accepts_stack_and_json_has_same_fields_plus_stack(stack: str) -> None:
    plain = json.loads(run(["predict", *BASE, "--op", "dax-mount", "--json"]).stdout)
    result = run(["predict", *BASE, "--op", "dax-mount", "--stack", stack, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(plain) <= set(data)
    assert data["stack"] == stack
    assert data["outcome"] == ("EINVAL" if stack.startswith("md") else "ok")
    assert data["stack_dax"] is (not stack.startswith("md"))


def test_predict_text_names_the_stack() -> None:
    result = run(["predict", *BASE, "--op", "stack-copy", "--stack", "md-raid1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok")
    assert "md-raid1 over 2 x nvdimm fsdax map=mem ext4" in result.stdout
    assert "md-raid1 advertises DAX: no" in result.stdout
    assert "stack-copy-block-io [I]" in result.stdout


def test_explain_shows_the_stack_step() -> None:
    args = ["explain", *BASE, "--op", "dax-mount", "--stack", "dm-linear"]
    result = run(args)
    assert result.exit_code == 0, result.output
    assert "dm-linear passes DAX: passthrough" in result.stdout
    data = json.loads(run([*args, "--json"]).stdout)
    assert data["stack"] == "dm-linear"
    assert [s["question"] for s in data["steps"]] == [
        "exists in this kernel",
        "struct page",
        "mapping",
        "dm-linear passes DAX",
        "dax-mount",
    ]
    assert data["steps"][3]["rule"] == "dm-linear-dax"


def test_explain_without_stack_is_unchanged() -> None:
    data = json.loads(run(["explain", *BASE, "--op", "dax-mount", "--json"]).stdout)
    assert data["stack"] == "none"
    assert len(data["steps"]) == 4


@pytest.mark.parametrize("fmt", [[], ["--markdown"], ["--json"]])
def test_table_accepts_stack(fmt: list[str]) -> None:
    result = run(["table", "--kernel", "6.1", "--stack", "md-raid0", *fmt])
    assert result.exit_code == 0, result.output
    if fmt == ["--json"]:
        assert json.loads(result.stdout)["stack"] == "md-raid0"
    else:
        assert "md-raid0 advertises DAX" in result.stdout


@pytest.mark.parametrize("command", ["predict", "explain", "table"])
def test_help_mentions_stack(command: str) -> None:
    result = run([command, "--help"])
    assert result.exit_code == 0
    assert "--stack" in result.stdout and "md-raid0" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["predict", *BASE, "--op", "dax-mount", "--stack", "raid5"],
        ["explain", *BASE, "--op", "dax-mount", "--stack", "lvm"],
        ["table", "--kernel", "6.1", "--stack", "md-raid6"],
        ["predict", *BASE, "--op", "dax-mount", "--stack"],
        ["predict", *BASE, "--op", "teleport", "--stack", "dm-linear"],
    ],
)
def test_bad_stack_is_one_line_exit_2(args: list[str]) -> None:
    result = run(args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pmemkit: error: ")
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("kernel", "stack", "mode", "outcome", "rule"),
    [
        ("6.1", "md-raid0", "fsdax", "fallback", "queue-dax-no"),
        ("6.1", "md-raid1", "raw", "fallback", "queue-dax-no"),
        ("6.1", "dm-linear", "fsdax", "ok", "queue-dax-yes"),
        ("6.1", "dm-stripe", "raw", "fallback", "queue-dax-no"),
        ("4.17", "dm-linear", "raw", "ok", "queue-dax-raw-nfit-4.16"),
        ("4.18", "dm-linear", "raw", "fallback", "queue-dax-no"),
        ("4.7", "dm-linear", "fsdax", "fallback", "queue-dax-no"),
    ],
)
def test_stack_queue_dax_is_predicted(kernel: str, stack: str, mode: str, outcome: str, rule: str) -> None:
    """raid.py's `stack-queue-dax` observation (queue/dax of the stacked device) is asked of the model."""
    p = predict(
        Scenario(kernel, "nvdimm", mode, "mem" if mode == "fsdax" else None), "stack-queue-dax", stack
    )
    assert (p.outcome, p.rule) == (outcome, rule)
