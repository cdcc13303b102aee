"""Issue 15 items 1 and 5 / done-when 3: d2d, raid and mmap bandwidth time through `time_each`; the
bandwidth ratio to anonymous memory is taken interleaved, and the report says why a DAX row is under
0.9 × anonymous. Issue 12 Why #5: the report shows the PMD fault results as the tracepoint printed them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pmemkit.guest.experiments import Target, get
from pmemkit.report.headline import bandwidth as bandwidth_headline
from pmemkit.report.markdown import anon_ratio, bandwidth_section, latency_section
from pmemkit.scenario import Observation, Scenario
from tests.unit.test_report import _contents

LOOP = "pmemkit.measure.timing.time_each"


def _files(tmp_path, size):
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes()
    src.write_bytes(data)
    dst.write_bytes(b"")
    return src, dst, data


@pytest.mark.parametrize("path", ["copy_file_range", "sendfile", "splice", "buffered", "odirect_via"])
def test_every_d2d_copy_path_is_one_time_each_sample_per_chunk(path, tmp_path):
    import mmap

    from pmemkit.guest.experiments import d2d

    size, chunk = 256 << 10, 64 << 10
    src, dst, data = _files(tmp_path, size)
    buffer = mmap.mmap(-1, chunk)
    view = memoryview(buffer)
    fn = d2d._odirect_via(view) if path == "odirect_via" else getattr(d2d, f"_{path}")
    fs, fd = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY)
    try:
        timed, moved = d2d._copy(fn, fs, fd, size, chunk, "d2d-test")
    finally:
        os.close(fs)
        os.close(fd)
        view.release()
        buffer.close()
    assert moved == size and dst.read_bytes() == data  # every chunk at its own offset
    assert timed.count == size // chunk and timed.metadata()["loop"] == LOOP
    summary = timed.summary()
    assert summary["count"] == size // chunk and summary["timing"]["overhead_calibrated_for"] == "d2d-test"


def test_raid_roundtrip_latency_goes_through_time_each(tmp_path, monkeypatch):
    from pmemkit.guest.experiments import raid

    monkeypatch.setattr(raid.os, "O_DIRECT", 0)  # the loop, not the device, is under test here
    device = tmp_path / "device.img"
    device.write_bytes(bytes(3 << 20))
    result = raid._odirect_roundtrip(str(device), 3 << 20, "raid-test")
    for direction in ("write", "read"):
        latency = result[direction]["latency"]
        assert latency["count"] == 3 and latency["timing"]["loop"] == LOOP
        assert result[direction]["moved_bytes"] == 3 << 20
    assert result["verified"] is True


def _target(kind, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    scenario = Scenario(kernel=os.uname().release, source="baseline", mode=kind)
    provenance = {"accel": "host", "kernel": os.uname().release}
    return Target(kind, str(tmp_path), kind, scenario, str(scratch), provenance, {"profile": "quick"})


def test_kapi_wake_latency_says_why_it_is_not_time_each(tmp_path):
    obs = {o.operation: o for o in get("kapi")(_target("anon", tmp_path), {"profile": "quick"})}
    timing = obs["futex-shared"].metrics["wake_latency"]["timing"]
    assert "two processes" in timing["why_not_time_each"] and timing["overhead_subtracted"] is False


def test_bandwidth_rows_carry_an_interleaved_anonymous_twin(tmp_path):
    from pmemkit.guest.experiments.mmap import PROFILES

    passes = PROFILES["quick"]["bw_passes"]
    obs = {o.operation: o for o in get("mmap")(_target("pagecache", tmp_path), {"profile": "quick"})}
    bw = obs["mmap-bandwidth"]
    plain = [r for r in bw.metrics["rows"] if "numpy.memmap" not in r["view"]]
    assert len(plain) == 4 * len(PROFILES["quick"]["block_sizes"])
    for row in plain:
        twin = row["anon_interleaved"]
        assert twin["timing"]["samples"] == row["timing"]["samples"] == passes
        assert twin["thp"].startswith("madvise(MADV_HUGEPAGE)")
        assert len(row["ratio_vs_anon_rounds"]) == passes
        best = row["pass_bytes_per_s_max"] / twin["pass_bytes_per_s_max"]  # fastest pass of each side
        assert row["ratio_vs_anon"] == pytest.approx(best)
        assert row["ratio_vs_anon_median"] == pytest.approx(float(np.median(row["ratio_vs_anon_rounds"])))
        ci = row["ratio_vs_anon_ci"]
        assert ci["lo"] <= row["ratio_vs_anon_median"] <= ci["hi"] and ci["level"] == 0.95
    assert "interleaved" in bw.detail and "anon_twin" in bw.metrics["smaps_kb"]
    anon = {o.operation: o for o in get("mmap")(_target("anon", tmp_path), {"profile": "quick"})}
    assert all("ratio_vs_anon" not in r for r in anon["mmap-bandwidth"].metrics["rows"])
    assert "no MADV_HUGEPAGE" in anon["first-touch-write"].metrics["thp_applied"]


def _bw_obs(rows, mode="fsdax", metrics=None, device="/dev/pmem0"):
    sc = Scenario(kernel="6.1.0-57-amd64", source="nvdimm", mode=mode, fs="ext4" if mode == "fsdax" else None)
    base = {"rows": rows, "mapping": "dax" if mode == "fsdax" else "anon", **(metrics or {})}
    return Observation("mmap", "mmap-bandwidth", "ok", sc, device, detail="d", metrics=base)


def _row(block, rate, ratio=None, rounds=None, pattern="seq-read"):
    row = {"pattern": pattern, "block_bytes": block, "bytes_per_s": rate, "view": "ndarray"}
    if ratio is not None:
        rounds = rounds or [ratio]
        ci = {"lo": min(rounds), "hi": max(rounds), "level": 0.95, "method": "order statistic"}
        median = float(np.median(rounds))
        row.update(ratio_vs_anon=ratio, ratio_vs_anon_median=median, ratio_vs_anon_rounds=rounds)
        row["ratio_vs_anon_ci"] = ci
    return row


def test_the_interleaved_ratio_wins_over_the_anonymous_target():
    rates = {("seq-read", 4096): 4e8}
    assert anon_ratio(_row(4096, 1e8, 0.97, [0.95, 0.97, 1.0]), rates) == (0.97, "interleaved twin")
    assert anon_ratio(_row(4096, 1e8), rates) == (0.25, "anonymous target, not interleaved")
    assert anon_ratio(_row(1 << 20, 1e8), rates)[0] is None


def test_bandwidth_section_counts_the_bar_and_explains_rows_under_it():
    anon = _bw_obs([_row(4096, 4e8), _row(1 << 20, 4e9)], mode="anonymous", device="anonymous memory")
    good = _bw_obs([_row(4096, 3.9e8, 0.98, [0.97, 0.98, 1.01]), _row(1 << 20, 4e9, 1.0, [0.99, 1.0, 1.02])])
    noisy = _bw_obs([_row(4096, 3e8, 0.7, [0.4, 0.7, 1.05])], device="/dev/pmem2")
    slow = _bw_obs([_row(1 << 20, 2e9, 0.5, [0.5, 0.48, 0.52])], device="/dev/pmem4")
    text = "\n".join(bandwidth_section(_contents(observations=[anon, good, noisy, slow])))
    assert "DAX rows at or above 0.9 × anonymous memory: 2 of 4:" in text
    noisy_line = next(line for line in text.splitlines() if line.startswith("- ") and "pmem2" in line)
    assert "0.700×" in noisy_line and "not distinguishable" in noisy_line and "CI 0.40–1.05" in noisy_line
    assert "median 0.70" in noisy_line
    slow_line = next(line for line in text.splitlines() if line.startswith("- ") and "pmem4" in line)
    assert "below 0.9 with 95 % confidence (rounds' median 0.50, CI 0.48–0.52" in slow_line
    assert "| 0.70× | 0.70× (0.40–1.05, n=3) | interleaved twin |" in text
    text = "\n".join(bandwidth_section(_contents(observations=[anon, good])))
    assert "2 of 2 (every one)." in text


def test_the_bandwidth_headline_uses_the_interleaved_ratio_at_4k():
    anon = _bw_obs([_row(4096, 4e8)], mode="anonymous", device="anonymous memory")
    dax = _bw_obs([_row(4096, 1e8, 0.96, [0.95, 0.96, 0.99])])
    found = bandwidth_headline(_contents(observations=[anon, dax]), block=4096)
    assert found is not None and ("÷ anonymous", "0.96×") in found.values  # not 0.25 from the anon target


def test_the_fault_section_shows_what_the_tracepoint_printed():
    from pmemkit.guest.vmfault import summarize_lines
    from pmemkit.measure.stats import summarize
    from tests.unit.test_vmfault import K61, NOPAGE, ZERO_RESULT

    trace = summarize_lines([NOPAGE, ZERO_RESULT], K61)
    sc = Scenario(kernel=K61, source="nvdimm", mode="fsdax", fs="ext4")
    metrics = {
        "latency": summarize([3000, 4000]),
        "pmd_fault_events": trace["counts"],
        "pmd_fault_trace": trace,
    }
    fault = Observation("mmap", "first-touch-write", "ok", sc, "/dev/pmem0", metrics=metrics)
    text = "\n".join(latency_section(_contents(observations=[fault])))
    row = [line for line in text.splitlines() if line.startswith("| nvdimm")][-1]  # the PMD table's
    assert "'NOPAGE': 1, '0': 1" in row and "(empty: result 0): 1" in row


def test_a_pmd_fault_counts_as_mapped_when_any_result_has_nopage(tmp_path):
    from types import SimpleNamespace

    from pmemkit.guest.experiments.mmap import _pmd_outcome

    target = _target("fs", tmp_path)
    traced = SimpleNamespace(available=True)
    mapped = _pmd_outcome(target, traced, {"NOPAGE|COMPLETED": 1, "0": 3}, 1024, {"printed": {}})
    assert mapped.outcome == "ok" and mapped.metrics["pmd_fault_events"]["0"] == 3
    retried = _pmd_outcome(
        target, traced, {"0": 2, "FALLBACK": 1}, 1024, {"printed": {"(empty: result 0)": 2}}
    )
    assert retried.outcome == "fallback" and "(empty: result 0)" in retried.detail
