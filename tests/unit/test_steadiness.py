"""pmemkit.measure.steadiness, scripts/host-steadiness.py and the bench's probes around a guest run.

Synthetic batch timings pin the windows, factors and episodes; the scripts run for at most 0.5 s.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pmemkit.measure import steadiness
from pmemkit.measure.errors import MeasureError
from pmemkit.measure.steadiness import Episode, Steadiness, probe, summarise

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
MS = 1_000_000


def series(*blocks: tuple[float, int]) -> tuple[list[int], list[int]]:
    """Back-to-back batches: each block is (seconds, batch duration in ns), starting at t = 7 s
    (not 0: windows count from the first batch, wherever the clock stands)."""
    starts: list[int] = []
    durations: list[int] = []
    t = 7 * 1_000_000_000
    for seconds, d in blocks:
        end = t + round(seconds * 1e9)
        while t < end:
            starts.append(t)
            durations.append(d)
            t += d
    return starts, durations


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_steady_series_is_steady_with_no_episode():
    """3.90625 / 4 ms, half a second each, for 10 s: windows at 1.0x and 1.024x alternately."""
    starts, durations = series(*[(0.5, 3_906_250), (0.5, 4 * MS)] * 10)
    s = summarise(starts, durations)
    assert s.verdict == "steady" and s.episodes == () and s.slow == 0
    assert s.windows == 20 and s.batches == len(durations) == 2530 and s.fastest_ns == 3_906_250
    assert s.factors == (1.0, 1.024) * 10 and s.worst == 1.024 and s.median == pytest.approx(1.012)
    line = s.describe()
    assert line.startswith("host steadiness: steady: 20 windows of 0.5 s, none ran >= 1.25x"), line
    assert "0 episodes" in line and "longest" not in line and "fastest batch (3.91 ms)" in line


def test_a_one_second_block_at_twice_the_time_is_one_episode():
    """3 s at 5 ms, 1 s at 10 ms, 6 s at 5 ms: windows 6 and 7 at 2.0x, one episode at 3.0 s, 1.0 s."""
    starts, durations = series((3.0, 5 * MS), (1.0, 10 * MS), (6.0, 5 * MS))
    s = summarise(starts, durations)
    assert s.factors == (1.0,) * 6 + (2.0, 2.0) + (1.0,) * 12
    assert s.episodes == (Episode(start_s=3.0, windows=2, window_s=0.5, peak=2.0),)
    assert s.episodes[0].length_s == 1.0
    assert s.verdict == "unsteady" and s.slow == 2 and s.slow_fraction == pytest.approx(0.1)
    assert s.worst == 2.0 and s.median == 1.0
    line = s.describe()
    assert line.startswith("host steadiness: unsteady: 20 windows of 0.5 s, 2 (10 %) ran >= 1.25x"), line
    assert "worst 2.00x; 1 episode, longest 1.0 s" in line
    # one-second windows: the block is window 3 alone
    s1 = summarise(starts, durations, window_s=1.0)
    assert s1.windows == 10 and s1.episodes == (Episode(3.0, 1, 1.0, 2.0),)


def test_episodes_are_split_by_a_fast_window_and_by_a_gap_and_report_their_peak():
    slow = 6_250_000  # 1.25x: at the threshold, so slow
    starts, durations = series((1.0, 5 * MS), (0.5, 10 * MS), (0.5, slow), (0.5, 5 * MS), (0.5, slow))
    more_starts, more_durations = series((0.5, slow))  # after 1 s with no batch (windows 6, 7)
    starts += [x + 4_000_000_000 for x in more_starts]
    durations += more_durations
    s = summarise(starts, durations)
    assert s.factors == (1.0, 1.0, 2.0, 1.25, 1.0, 1.25, None, None, 1.25) and s.windows == 7
    assert [(e.start_s, e.windows, e.peak) for e in s.episodes] == [
        (1.0, 2, 2.0),
        (2.5, 1, 1.25),
        (4.0, 1, 1.25),
    ]
    assert s.longest_s == 1.0
    assert "3 episodes, longest 1.0 s" in s.describe()


def test_the_threshold_is_honoured_and_reaching_it_counts_as_slow():
    starts, durations = series((2.0, 8 * MS), (1.0, 10 * MS), (2.0, 8 * MS))  # 1.25x for 1 s
    at = summarise(starts, durations, threshold=1.25)
    assert at.verdict == "unsteady" and at.slow == 2 and at.episodes[0].peak == 1.25
    above = summarise(starts, durations, threshold=1.3)
    assert above.verdict == "steady" and above.episodes == ()
    assert ">= 1.3x" in above.describe()


def test_to_dict_is_json_with_the_summary_keys():
    starts, durations = series((3.0, 5 * MS), (1.0, 10 * MS), (1.0, 5 * MS))
    d = json.loads(json.dumps(summarise(starts, durations, source="synthetic").to_dict()))
    assert d["verdict"] == "unsteady" and d["windows"] == 10 and d["slow_windows"] == 2
    assert d["slow_fraction"] == 0.2 and d["worst_factor"] == 2.0 and d["median_factor"] == 1.0
    assert d["episodes"] == [{"start_s": 3.0, "length_s": 1.0, "windows": 2, "peak": 2.0}]
    assert d["factors"][6] == 2.0 and len(d["factors"]) == 10 and d["longest_episode_s"] == 1.0
    assert d["fastest_batch_ns"] == 5 * MS and d["threshold"] == 1.25 and d["source"] == "synthetic"
    assert d["describe"].startswith("host steadiness: unsteady")


def test_on_cpu_share_tells_a_slow_cpu_from_a_busy_host():
    """A slow block on CPU all its time is an episode; on CPU half its time, other work ran."""
    starts, durations = series((3.0, 5 * MS), (1.0, 10 * MS), (1.0, 5 * MS))
    fast = len(series((3.0, 5 * MS))[0])
    slow_cpu = list(durations)  # the CPU itself ran slower: on CPU throughout
    episode = summarise(starts, durations, cpu_ns=slow_cpu)
    assert episode.on_cpu == 1.0 and episode.on_cpu_slow == 1.0
    assert episode.describe().endswith("; probe on CPU 100 % of the time (100 % in slow windows)")
    busy_cpu = [5 * MS if d == 10 * MS else d for d in durations]  # waited half of each slow batch
    busy = summarise(starts, durations, cpu_ns=busy_cpu)
    assert busy.on_cpu_slow == 0.5 and busy.on_cpu == pytest.approx(
        (fast + 100 + 200) * 5 * MS / ((fast + 200) * 5 * MS + 100 * 10 * MS)
    )
    assert busy.describe().endswith(
        "(50 % in slow windows: waiting for a CPU accounts for 2.00x of their slowdown)"
    )
    assert busy.to_dict()["on_cpu_slow"] == 0.5
    calm = summarise(*series((2.0, 5 * MS)), cpu_ns=[4 * MS] * 400)
    assert calm.on_cpu == 0.8 and calm.on_cpu_slow is None
    assert calm.describe().endswith("; probe on CPU 80 % of the time")
    assert "on CPU" not in summarise(starts, durations).describe()


@pytest.mark.parametrize(
    ("starts", "durations", "kwargs", "says"),
    [
        ([], [], {}, "no batches"),
        ([0, 1], [5], {}, "2 start times but 1 durations"),
        ([0], [0], {}, "positive integer ns"),
        ([0], [5.5], {}, "positive integer ns"),
        ([0.5], [5], {}, "integer ns"),
        ([0], [5], {"window_s": 0}, "window must be a positive number"),
        ([0], [5], {"window_s": math.inf}, "window must be a positive number"),
        ([0], [5], {"threshold": 1.0}, "threshold must be above 1"),
        ([0], [5], {"threshold": 0.8}, "threshold must be above 1"),
        ([0], [5], {"threshold": math.nan}, "threshold must be a number"),
        ([0, 5], [5, 5], {"cpu_ns": [5]}, "1 CPU times but 2 durations"),
        ([0], [5], {"cpu_ns": [-1]}, "non-negative integer ns"),
    ],
)
def test_bad_input_is_a_measure_error(starts, durations, kwargs, says):
    with pytest.raises(MeasureError, match=says):
        summarise(starts, durations, **kwargs)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((0,), "seconds must be a positive number"),
        ((-1,), "seconds must be a positive number"),
        ((math.nan,), "seconds must be a positive number"),
        ((True,), "seconds must be a positive number"),
        ((1.0, 2.0), "longer than the probe"),
        ((1.0, 0.5, 1.0), "threshold must be above 1"),
    ],
)
def test_probe_refuses_bad_input_before_it_runs(args, says, monkeypatch):
    monkeypatch.setattr(steadiness, "work_unit", lambda: pytest.fail("ran despite bad input"))
    with pytest.raises(MeasureError, match=says):
        probe(*args)


def test_probe_times_the_interpreter_loop_for_the_time_asked():
    s = probe(0.3, window_s=0.1)
    assert s.windows == 3 and s.batches >= 3 and s.fastest_ns > 0
    assert all(f >= 1.0 for f in s.measured)
    assert "perf_counter_ns" in s.source and f"{s.batches} batches" in s.source
    assert s.on_cpu is not None and 0.2 < s.on_cpu <= 1.01
    assert steadiness.work_unit(2048) == 1024


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "host-steadiness.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "args",
    [("--seconds", "0"), ("--seconds", "abc"), ("--threshold", "1"), ("--seconds", "1", "--window", "2")],
)
def test_script_bad_input_is_one_error_line_and_exit_2(args):
    done = _run(*args)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("host-steadiness: error: ") and done.stdout == ""


def test_script_json_is_the_summary():
    done = _run("--seconds", "0.5", "--json")
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    assert d["windows"] == 1 and d["window_s"] == 0.5 and d["verdict"] in ("steady", "unsteady")
    for key in (
        "slow_fraction",
        "worst_factor",
        "median_factor",
        "episodes",
        "factors",
        "describe",
        "on_cpu",
    ):
        assert key in d


def test_script_reader_leaving_early_is_no_traceback():
    """`host-steadiness.py --fail-unsteady | head -1`: the pipe closes; exit status 0 or 1, no traceback."""
    script = [sys.executable, str(SCRIPTS / "host-steadiness.py"), "--seconds", "0.5", "--fail-unsteady"]
    with subprocess.Popen(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        child.stdout.close()
        stderr = child.stderr.read()
        child.wait(timeout=30)
    assert child.returncode in (0, 1) and stderr == "", stderr


def _canned(factors: tuple[float | None, ...], episodes: tuple[Episode, ...] = ()) -> Steadiness:
    return Steadiness(0.5, 1.25, 100, 2 * MS, factors, episodes, "canned")


def test_script_exit_status_is_1_only_when_unsteady_and_asked(monkeypatch, capsys):
    script = _script("host-steadiness")
    unsteady = _canned((1.0, 2.0, 1.0), (Episode(0.5, 1, 0.5, 2.0),))
    monkeypatch.setattr(script, "probe", lambda *a: unsteady)
    assert script.main(["--seconds", "1"]) == 0
    assert script.main(["--seconds", "1", "--fail-unsteady"]) == 1
    out = capsys.readouterr().out
    assert "0.0 s   1.00  2.00* 1.00" in out and "    0.5 s    0.5 s  2.00x" in out
    monkeypatch.setattr(script, "probe", lambda *a: _canned((1.0, 1.1)))
    assert script.main(["--seconds", "1", "--fail-unsteady"]) == 0
    assert "episodes: none" in capsys.readouterr().out


def test_script_timeline_puts_20_windows_a_line_and_marks_gaps():
    script = _script("host-steadiness")
    lines = script.timeline(_canned((1.0,) * 20 + (None, 1.5)))
    assert len(lines) == 2 and lines[0].count("1.00") == 20
    assert lines[1] == "   10.0 s      -  1.50*"


def test_bench_probes_the_host_before_and_after_the_guest_run_never_during(monkeypatch, tmp_path):
    bench = _script("bench-fio-parity")
    events: list[str] = []
    (tmp_path / "20261207-130000").mkdir()

    def fake_probe(seconds: float) -> Steadiness:
        events.append(f"probe {seconds:g}")
        return _canned((1.0, 2.0), (Episode(0.5, 1, 0.5, 2.0),))

    def fake_run(cmd, check):
        events.append("guest")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(steadiness, "probe", fake_probe)
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    run, lines = bench.make_run(tmp_path, "quick", "fio", None, 3.0)
    assert events == ["probe 3", "guest", "probe 3"] and run.name == "20261207-130000"
    assert [line.split(", host steadiness: ")[0] for line in lines] == [
        "before the guest run",
        "after the guest run",
    ]
    assert all("unsteady: 2 windows of 0.5 s" in line for line in lines)
    events.clear()
    assert bench.make_run(tmp_path, "quick", "fio", None, 0.0)[1] == [] and events == ["guest"]


def test_bench_prints_the_steadiness_lines_beside_its_provenance(recorded_run, capsys):
    bench = _script("bench-fio-parity")
    bench.print_parity(recorded_run, ["before the guest run, host steadiness: steady: X"])
    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("timing helper: "))
    assert out[at + 1] == "before the guest run, host steadiness: steady: X"
