"""`pmemkit compare` and the machine's speed: a run taken while the whole VM ran slower is told apart
from a run whose pmem got slower, through the speed reference every `time_each` records."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmemkit.cli import main
from pmemkit.compare import SPEED_DIFFERED, Metric, compare_metric, compare_runs, load, render_text
from pmemkit.measure.timing import forget_calibrations, time_each

RUNS = Path(__file__).parent / "fixtures" / "compare"
CALLER = "fio/fio-odirect-randread pmemkit_caller"


def _latency(value, lo, hi, ref=None):
    return Metric("k", "latency p50", "ns", value, lo, hi, 1000, ref)


def test_a_slower_machine_explains_a_slower_burst():
    a = _latency(100.0, 95.0, 105.0, ref=1000.0)
    row = compare_metric(a, _latency(190.0, 180.0, 200.0, ref=1900.0))
    assert row.verdict == SPEED_DIFFERED and row.speed == pytest.approx(1.9)
    assert row.adjusted == pytest.approx((1.0, 180 / 105 / 1.9, 200 / 95 / 1.9))
    assert row.within() is False and row.within_adjusted() is True


def test_a_difference_larger_than_the_speed_difference_stays_significant():
    a = _latency(100.0, 95.0, 105.0, ref=1000.0)
    row = compare_metric(a, _latency(300.0, 290.0, 310.0, ref=1900.0))
    assert row.verdict == "significant" and row.adjusted[0] == pytest.approx(300 / 1.9 / 100)


def test_a_difference_against_the_speed_s_direction_stays_significant():
    a = _latency(100.0, 95.0, 105.0, ref=1000.0)
    row = compare_metric(a, _latency(60.0, 55.0, 65.0, ref=1900.0))  # B faster on a slower machine
    assert row.verdict == "significant" and row.adjusted is not None


def test_speed_within_tolerance_or_missing_leaves_the_plain_test():
    a = _latency(100.0, 95.0, 105.0, ref=1000.0)
    close = compare_metric(a, _latency(190.0, 180.0, 200.0, ref=1040.0))
    assert close.verdict == "significant" and close.adjusted is None and close.speed == pytest.approx(1.04)
    missing = compare_metric(_latency(100.0, 95.0, 105.0), _latency(190.0, 180.0, 200.0, ref=1900.0))
    assert missing.verdict == "significant" and missing.speed is None and missing.adjusted is None
    same = compare_metric(a, _latency(101.0, 96.0, 106.0, ref=1900.0))
    assert same.verdict == "not significant"  # not significant stays so, whatever the speed


def test_time_each_records_a_speed_reference_before_and_after_its_samples():
    forget_calibrations()
    ticks = iter(range(0, 10**9, 7))
    timed = time_each(lambda i: None, 3, key="speed-test", clock=lambda: next(ticks))
    meta = timed.metadata()
    assert meta["speed_reference_ns"] == [7, 7] and "before and after" in meta["speed_reference_method"]
    assert timed.summary()["timing"]["speed_reference_ns"] == [7, 7]
    forget_calibrations()


def test_a_long_burst_takes_a_short_reference_between_chunks_outside_the_samples():
    forget_calibrations()
    ticks = iter(range(0, 10**9, 7))
    seen = []
    timed = time_each(seen.append, 130, key="speed-chunks", clock=lambda: next(ticks))
    assert seen == list(range(130)) and timed.samples_ns.tolist() == [7] * 130  # the op's samples alone
    assert timed.speed_chunks_ns == (7, 7)  # after samples 64 and 128, none after the last
    meta = timed.metadata()
    assert meta["speed_reference_chunks_ns"] == [7, 7] and meta["speed_reference_median_ns"] == 7
    short = time_each(lambda i: None, 64, key="speed-chunks", clock=lambda: next(ticks))
    assert short.speed_chunks_ns == ()  # one chunk: only the references before and after
    forget_calibrations()


def test_compare_reads_the_burst_s_median_reference_first():
    from pmemkit.compare import _speed_ref

    assert _speed_ref({"timing": {"speed_reference_ns": [1000, 3000]}}) == 2000
    both = {"timing": {"speed_reference_ns": [1000, 3000], "speed_reference_median_ns": 1100}}
    assert _speed_ref(both) == 1100
    assert _speed_ref({"timing": {"speed_reference_ns": [0, 3000]}}) is None
    assert _speed_ref({"p50": 5}) is None


def _slowed(src: Path, dst: Path, latency_factor: float, speed_ns: float) -> Path:
    """A copy of a recorded run whose caller-side p50s (and CIs) are scaled, with a speed reference."""
    shutil.copytree(src, dst)
    out = []
    for line in (dst / "observations.jsonl").read_text().splitlines():
        o = json.loads(line)
        caller = (
            (o.get("metrics") or {}).get("pmemkit_caller") if isinstance(o.get("metrics"), dict) else None
        )
        if caller:
            caller["p50"] *= latency_factor
            for bound in ("lo", "hi"):
                caller["ci"]["p50"][bound] *= latency_factor
            caller["timing"] = {"speed_reference_ns": [speed_ns, speed_ns]}
        out.append(json.dumps(o) + "\n")
    (dst / "observations.jsonl").write_text("".join(out))
    return dst


def test_two_recorded_runs_one_taken_on_a_machine_twice_as_slow(tmp_path):
    a = _slowed(RUNS / "fio-a", tmp_path / "a", 1.0, 1000)
    b = _slowed(RUNS / "fio-a", tmp_path / "b", 2.0, 2000)
    c = compare_runs(load(a), load(b))
    rows = [r for r in c.rows if r.key.endswith(CALLER)]
    assert len(rows) == 2 and all(r.verdict == SPEED_DIFFERED for r in rows)
    summary = c.summary()
    assert summary["latency_speed_differed"] == 2 and summary["latency_with_speed_reference"] == 2
    assert "2 where the machine's speed differed as much" in render_text(c).splitlines()[-1]
    js = json.loads(CliRunner().invoke(main, ["compare", str(a), str(b), "--json"]).output)
    row = next(r for r in js["rows"] if r["metric"].endswith(CALLER))
    assert row["speed_b_over_a"] == 2.0 and row["speed_adjusted_ratio"] == pytest.approx(1.0)
    assert "inferred" in js["speed_test"]
    # the same slowdown without a slower machine is a real difference
    d = _slowed(RUNS / "fio-a", tmp_path / "d", 2.0, 1000)
    assert all(
        r.verdict == "significant" for r in compare_runs(load(a), load(d)).rows if r.key.endswith(CALLER)
    )


def _contents(path: Path):
    from pmemkit.report.rundir import contents_of

    return contents_of(load(path))


def test_the_report_names_the_bursts_a_slow_machine_took(tmp_path):
    from pmemkit.report.html import render_html
    from pmemkit.report.speed import bursts, speed_lines

    run = tmp_path / "run"
    _slowed(RUNS / "fio-a", run, 1.0, 1000)
    lines = (run / "observations.jsonl").read_text().splitlines()
    # the second caller-side burst was taken while the loop ran 1.8x slower
    seen = 0
    for i, line in enumerate(lines):
        o = json.loads(line)
        caller = (
            (o.get("metrics") or {}).get("pmemkit_caller") if isinstance(o.get("metrics"), dict) else None
        )
        if caller:
            seen += 1
            if seen == 2:
                caller["timing"]["speed_reference_ns"] = [1700, 1900]
                lines[i] = json.dumps(o)
    (run / "observations.jsonl").write_text("\n".join(lines) + "\n")
    found = bursts(_contents(run))
    assert [round(b.factor, 2) for b in found] == [1.8, 1.0]
    text = "\n".join(speed_lines(_contents(run)))
    assert "**1 of 2 bursts (50 %) ran at least 1.25× slower than the fastest**" in text
    assert "1800 ns" in text and "1.80×" in text and "not corrected" in text
    html = render_html(_contents(run), None, [])
    assert '<details id="speed"><summary>Machine speed during the latency bursts' in html
    from pmemkit.report.summary import render_summary

    summary = render_summary(_contents(run), None, [])
    assert "**The machine's speed during the latency bursts**: 1 of 2 bursts (50 %)" in summary
    assert "worst 1.80×" in summary


def test_a_run_without_speed_references_has_no_speed_section():
    from pmemkit.report.speed import speed_lines

    assert speed_lines(_contents(RUNS / "fio-a")) == []
    from pmemkit.report.speed import speed_summary

    assert speed_summary(_contents(RUNS / "fio-a")) == ""
