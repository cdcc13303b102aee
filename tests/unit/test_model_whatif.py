"""`pmemkit model whatif` (issue 13): the 2015 designs priced on a recorded default run.

The fixture `fixtures/run-6.1-default` is a real `make run` (Debian 6.1.0-57, TCG, the six default
devices, 351 observations) with the latency histograms trimmed out of its metrics.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmemkit import rundir
from pmemkit.model.whatif import SUBSECTION, TITLES, whatif
from pmemkit.model_cli import model
from pmemkit.pipeline import render_report
from pmemkit.report.markdown import render
from pmemkit.report.rundir import contents_of, default_predictor
from pmemkit.report.whatif import whatif_section
from pmemkit.rundir import RunDir
from pmemkit.scenario import Observation, Scenario

FIXTURE = Path(__file__).parent / "fixtures" / "run-6.1-default"
TIB = 1 << 40
GIB = 1 << 30


def run(args: list[str]):
    return CliRunner().invoke(model, args, prog_name="pmemkit model")


def one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pmemkit: error:") and needle in lines[0], lines


@pytest.fixture(scope="module")
def data() -> dict:
    result = run(["whatif", str(FIXTURE), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def files() -> rundir.RunFiles:
    with rundir.RunDir.open(FIXTURE) as r:
        return r.load()


def _design(data: dict, key: str) -> dict:
    return next(d for d in data["designs"] if d["key"] == key)


def _failing(data: dict, key: str, operation: str) -> list[dict]:
    return [e for e in _design(data, key)["failing_operations"] if e["operation"] == operation]


def test_text_sets_the_three_designs_side_by_side() -> None:
    result = run(["whatif", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("device "))
    positions = [header.index(TITLES[k]) for k in ("pageless", "on-demand", "enable-mem", "enable-dev")]
    assert positions == sorted(positions)
    assert "nvdimm:512M fsdax map=dev " in result.output and "kernel 6.1.0-57-amd64" in result.output


def test_json_carries_per_design_bytes_and_failing_operations_with_sources(data: dict) -> None:
    assert [d["key"] for d in data["designs"]] == ["pageless", "on-demand", "enable-mem", "enable-dev"]
    for design in data["designs"]:
        assert isinstance(design["dram_bytes"], int) and isinstance(design["pmem_bytes"], int)
        assert design["failing_operations"], design["key"]
        for entry in design["failing_operations"]:
            assert entry["sources"] and all(isinstance(s, str) and s for s in entry["sources"])
            assert entry["outcome"].startswith("E") or entry["outcome"] in ("fallback", "short")
    pageless, mem, dev = (_design(data, k) for k in ("pageless", "enable-mem", "enable-dev"))
    assert pageless["dram_bytes"] == pageless["pmem_bytes"] == 0
    # six 512 MiB devices: map=mem pays DRAM for all but the raw NFIT one (devdax less: vmemmap dedup)
    assert mem["dram_bytes"] == 4 * (8 << 20) + 2121728 and mem["pmem_bytes"] == 0
    # map=dev: the three pfn/dax namespaces reserve on pmem, the raw memmap=/virtio ones stay in DRAM
    assert dev["pmem_bytes"] == 3 * 8388480 and dev["dram_bytes"] == 2 * (8 << 20)


def test_pageless_failures_come_from_the_dev_mem_control(data: dict) -> None:
    for op in ("odirect-read-into-dax", "futex-shared", "vmsplice", "iouring-fixed-buffer"):
        entries = [e for e in _failing(data, "pageless", op) if e["changed"]]
        assert entries, op
        for e in entries:
            assert e["outcome"] == "EFAULT" and e["status"] == "observed"
            assert "/dev/mem" in e["sources"][0] and e["sources"][0].startswith("this run:")
    # the merged design is what the run measured: O_DIRECT into the DAX mapping works there
    assert not _failing(data, "enable-mem", "odirect-read-into-dax")


def test_a_control_answer_of_another_mechanism_is_not_taken(data: dict) -> None:
    """/dev/mem refuses a private mapping (ENOMEM, VM_PFNMAP): page-less DAX fork is the rule's EFAULT."""
    forks = [e for e in _failing(data, "pageless", "fork-cow") if e["observed"] == "ok"]
    assert forks and all(e["outcome"] == "EFAULT" and e["status"] == "I" for e in forks)
    assert any("not taken from the control" in s and "ENOMEM" in s for s in forks[0]["sources"])


def test_without_the_control_the_pageless_answers_are_the_rules(files: rundir.RunFiles) -> None:
    kept = [o for o in files.observations if o.scenario.mode != "devmem"]
    result = whatif("6.1.0-57-amd64", files.plan, kept, "x")
    pageless = next(d for d in result.designs if d.key == "pageless")
    odirect = [e for e in pageless.failing if e.operation == "odirect-read-into-dax"]
    assert odirect and all(e.status == "V" and "odirect-pageless" in e.sources[0] for e in odirect)


def test_on_demand_gives_the_page_less_nvdimm_dax(data: dict) -> None:
    """A raw NFIT namespace has no struct page, so no DAX (observed); pages at mmap would change that."""
    on_demand = _design(data, "on-demand")
    mounts = [
        e
        for e in on_demand["operations"]
        if e["operation"] == "dax-mount" and e["observed"] not in ("ok", "n/a")
    ]
    assert mounts and all(e["outcome"] == "ok" and e["changed"] and e["status"] == "I" for e in mounts)
    assert any("nvdimm raw" in t for e in mounts for t in e["targets"])
    assert _failing(data, "enable-mem", "dax-mount")  # the merged design keeps the observed refusal
    # what the merged design refuses for block ownership (long-term pins of fsdax) stays refused
    assert any(e["outcome"] == "EOPNOTSUPP" for e in _failing(data, "on-demand", "longterm-pin"))


def test_on_demand_memmap_is_the_largest_recorded_range_in_sub_sections(data: dict) -> None:
    for device in data["devices"]:
        peak = max(device["mapped_ranges"])
        assert peak == 4 << 20  # first-touch, mmap-readwrite and pagecache-bypass map 4 MiB
        assert device["costs"]["on-demand"]["dram_bytes"] == -(-peak // SUBSECTION) * (32 << 10)
        assert device["costs"]["pageless"] == {
            **device["costs"]["pageless"],
            "dram_bytes": 0,
            "pmem_bytes": 0,
        }


def test_fault_estimate_is_built_from_the_run_measurements(data: dict, files: rundir.RunFiles) -> None:
    anon = next(
        o for o in files.observations if o.operation == "first-touch-write" and o.scenario.mode == "anonymous"
    )
    per_page = anon.metrics["latency"]["p50"] - anon.metrics["loop_overhead"]["p50"]
    bw = next(
        o for o in files.observations if o.operation == "mmap-bandwidth" and o.scenario.mode == "anonymous"
    )
    rows = [r for r in bw.metrics["rows"] if r["pattern"] == "seq-write"]
    rate = max(rows, key=lambda r: r["block_bytes"])["bytes_per_s"]
    est = data["fault_estimate"]
    assert est["measured"]["anon_first_touch_ns_per_page"] == per_page
    assert est["per_2mib_ns"] == pytest.approx(8 * per_page + (32 << 10) / rate * 1e9)
    assert "Not priced" in est["assumption"] and "lower bound" in est["assumption"].lower()
    fsdax = next(d for d in est["per_device"] if d["device"] == "nvdimm:512M fsdax map=mem")
    assert 0 < fsdax["added_fraction"] < 1 and fsdax["mmap_ns"] == pytest.approx(2 * est["per_2mib_ns"])
    raw_nfit = next(d for d in est["per_device"] if d["device"] == "nvdimm:512M raw")
    assert "measured_fault_ns_per_2mib" not in raw_nfit  # its files were page cache: no DAX fault to compare
    # enable writes the whole memmap (64 B per 4 KiB page) at the measured bandwidth; raw NFIT has none
    assert fsdax["enable_ns"] == pytest.approx((512 << 20) // 4096 * 64 / rate * 1e9)
    assert raw_nfit["enable_ns"] is None


def _bytes_in(cell: str) -> tuple[int, int]:
    """(DRAM, pmem) from a cost cell `DRAM 8 MiB (8388608 B), pmem 0 B`."""
    found = re.fullmatch(r"DRAM (?:.* \()?(\d+) B\)?, pmem (?:.* \()?(\d+) B\)?", cell.strip())
    assert found, cell
    return int(found.group(1)), int(found.group(2))


def test_report_of_a_default_run_has_the_section_matching_model_size(tmp_path: Path, data: dict) -> None:
    copy = tmp_path / "run"
    shutil.copytree(FIXTURE, copy)
    report, count = render_report(copy)
    assert count == 351 and report.name == "report.html"
    assert "What if: the 2015 designs priced on this run" in report.read_text()  # a folded section
    with RunDir.open(copy) as opened:  # its Markdown, as report.html's sections are made from it
        contents = contents_of(opened.load())
    text = render(contents, default_predictor(contents.warnings))
    section = text[text.index("## What if: the 2015 designs priced on this run") :]
    rows = {
        cells[0]: cells[1:]
        for line in section.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.strip("|").split(" | ")])
    }
    for device in data["devices"]:
        cells = rows[device["label"]]
        for index, key in ((2, "enable-mem"), (3, "enable-dev")):
            size = run(["size", *device["costs"][key]["command"], "--json"])
            assert size.exit_code == 0, size.output
            answer = json.loads(size.output)
            pmem = answer["memmap_bytes"] if answer["memmap_location"] == "pmem" else 0
            assert _bytes_in(cells[index]) == (answer["dram_bytes"], pmem), (device["label"], key)
        assert _bytes_in(cells[0]) == (0, 0)


def test_devices_6tib_prices_each_design() -> None:
    result = run(["whatif", "--devices", "6TiB", "--kernel", "6.1.192", "--json"])
    assert result.exit_code == 0, result.output
    (device,) = json.loads(result.output)["devices"]
    costs = device["costs"]
    assert device["hypothetical"] and device["size_bytes"] == 6 * TIB
    assert costs["pageless"]["dram_bytes"] == 0
    assert costs["enable-mem"]["dram_bytes"] == 96 * GIB  # 64 B per 4 KiB page
    assert (
        costs["enable-dev"]["dram_bytes"] == 0
        and costs["enable-dev"]["pmem_bytes"] == (6 * TIB - 8192) // 4096 * 64
    )
    assert costs["on-demand"]["dram_bytes"] == 96 * GIB  # worst case: all of it mapped
    fewer = json.loads(run(["whatif", "--devices", "6TiB", "--mapped", "1TiB", "--json"]).output)
    assert fewer["devices"][0]["costs"]["on-demand"]["dram_bytes"] == 16 * GIB


def test_devices_beside_a_run_use_the_run_kernel(data: dict) -> None:
    result = run(["whatif", str(FIXTURE), "--devices", "nvdimm:1T,mode=devdax,map=dev", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["kernel"] == "6.1.0-57-amd64" and len(out["devices"]) == len(data["devices"]) + 1
    extra = out["devices"][-1]
    assert extra["label"] == "nvdimm:1T devdax map=dev" and extra["costs"]["enable-dev"]["pmem_bytes"] > 0
    # the run's totals are not changed by a hypothetical device
    assert _design(out, "enable-mem")["dram_bytes"] == _design(data, "enable-mem")["dram_bytes"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["whatif"], "give a run directory"),
        (["whatif", "--devices", "6XB"], "cannot read device size"),
        (["whatif", "--devices", "1K"], "below the minimum"),
        (["whatif", "--devices", "fpga:1G"], "unknown pmem source"),
        (["whatif", "--devices", "1G", "--mapped", "0"], "--mapped"),
        (["whatif", "--devices", "1G", "--kernel", "banana"], "banana"),
        (["whatif", "--devices", "1G", "--json", "--markdown"], "exclude each other"),
        (["whatif", "/nonexistent/run"], "cannot be opened"),
        (["whatif", "--bogus"], "No such option"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    one_line_error(run(args), needle)


def test_a_run_is_priced_for_its_own_kernel_only() -> None:
    one_line_error(run(["whatif", str(FIXTURE), "--kernel", "6.12"]), "contradicts the run's kernel")
    assert run(["whatif", str(FIXTURE), "--kernel", "6.1.0-57-amd64", "--json"]).exit_code == 0


def test_without_a_run_nothing_is_measured_and_nothing_is_called_observed() -> None:
    result = run(["whatif", "--devices", "1T", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["fault_estimate"]["per_2mib_ns"] is None and out["run"] is None
    for design in out["designs"]:
        assert all(e["status"] != "observed" and e["observed"] is None for e in design["operations"])


def test_a_directory_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    one_line_error(run(["whatif", str(tmp_path)]), "not a pmemkit run directory")


def test_a_run_without_pmem_devices_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(FIXTURE, copy)
    plan = json.loads((copy / "plan.json").read_text())
    (copy / "plan.json").write_text(json.dumps({**plan, "pmem": [], "placements": []}))
    one_line_error(run(["whatif", str(copy)]), "names no pmem device")


def test_the_report_section_is_empty_without_pmem_and_renders_with_it(files: rundir.RunFiles) -> None:
    assert whatif_section({"pmem": []}, files.observations, files.guest_environment, "x") == []
    lines = whatif_section(files.plan, files.observations, files.guest_environment, "x")
    assert lines[0] == "## What if: the 2015 designs priced on this run"
    assert any(line.startswith("### Page metadata per device") for line in lines)


def test_a_run_without_pmem_spec_provenance_joins_devices_by_scenario(files: rundir.RunFiles) -> None:
    """Older runs carry no `pmem_spec`: the devices are found by source, mode and map instead."""
    bare = [
        dataclasses.replace(o, provenance={k: v for k, v in o.provenance.items() if k != "pmem_spec"})
        for o in files.observations
    ]
    result = whatif("6.1.0-57-amd64", files.plan, bare, "old")
    by_label = {d.label: d for d in result.devices}
    assert by_label["nvdimm:512M fsdax map=dev"].names == ["/dev/pmem2"]
    assert by_label["memmap:512M raw"].names == ["/dev/pmem5"]
    assert all(max(d.mapped_ranges) == 4 << 20 for d in result.devices)


def test_a_stack_that_hides_dax_keeps_hiding_it_under_every_design(files: rundir.RunFiles) -> None:
    """md registers no DAX whatever its members have: no design's pages change a mount on md."""
    sc = Scenario("6.1.0-57-amd64", "memmap", "raw", fs="xfs", stack="md-raid0")
    md = Observation("raid", "dax-mount", "fallback", sc, "/dev/md0", detail="Turning off DAX.")
    result = whatif("6.1.0-57-amd64", files.plan, [*files.observations, md], "x")
    for design in result.designs:
        (entry,) = [e for e in design.operations if any("/dev/md0" in t for t in e.targets)]
        assert entry.outcome == "fallback" and not entry.changed, design.key
