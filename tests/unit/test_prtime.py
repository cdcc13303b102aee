"""The compiled timing helper (pmemkit/guest/native/prtime.c) and the fio check's use of it (issue 15)."""

from __future__ import annotations

import os
import shutil

import pytest

from pmemkit.guest import prtime
from pmemkit.guest.experiments import fiocheck
from tests.unit.direct_io import direct_io_works

GOOD = (
    "prtime 1\nclock CLOCK_MONOTONIC\nclock_overhead_median_ns 31\nclock_overhead_min_ns 20\n"
    "clock_pairs 1001\ncpu 0\ndirect 1\nbs 4096\nwarmup 0\ncount 3\nshort 1\nsamples\n1200\n1300\n1250\n"
)
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on this host")


def test_parse_output_reads_the_header_and_the_samples_in_order():
    run = prtime.parse_output(GOOD)
    assert run.samples_ns == [1200, 1300, 1250]
    assert (run.clock_overhead_median_ns, run.clock_overhead_min_ns, run.cpu) == (31, 20, 0)
    assert run.direct is True and run.bs == 4096 and run.short == 1
    assert run.header() == {
        "clock_overhead_median_ns": 31,
        "clock_overhead_min_ns": 20,
        "cpu": 0,
        "direct": True,
        "bs": 4096,
        "warmup": 0,
        "short": 1,
        "count": 3,
    }
    assert prtime.parse_output(GOOD.replace("cpu 0", "cpu -1")).cpu is None  # not pinned


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD.replace("samples\n", "sample\n"), "no 'samples' line"),
        (GOOD.replace("count 3", "count 4"), "printed 3 samples, its header says 4"),
        (GOOD.replace("prtime 1", "prtime 2"), "format '2'"),
        (GOOD.replace("short 1\n", ""), "lacks short"),
        (GOOD.replace("\n1300\n", "\n13x0\n"), "a sample is not an integer"),
        (GOOD.replace("\n1300\n", "\n-5\n"), "negative latency"),
    ],
)
def test_parse_output_refuses_what_its_format_does_not_promise(text, match):
    with pytest.raises(prtime.PrtimeError, match=match):
        prtime.parse_output(text)


@pytest.fixture
def helper(tmp_path_factory, monkeypatch):
    if shutil.which("gcc") is None:
        pytest.skip("no gcc on this host")
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("PMEMKIT_CACHE", str(cache))
    return prtime.build_host()


@needs_gcc
def test_the_helper_builds_once_per_source_and_times_every_pread(helper, tmp_path):
    assert helper.origin == "host-cache" and helper.compiler.startswith("gcc")
    assert helper.source_sha256 == prtime.sha256_of(prtime.SOURCE)
    assert helper.path.endswith(f"native/{helper.source_sha256[:16]}/prtime")
    mtime = os.stat(helper.path).st_mtime_ns
    again = prtime.build_host()
    assert again == helper and os.stat(helper.path).st_mtime_ns == mtime  # reused, not rebuilt
    data = tmp_path / "data"
    data.write_bytes(os.urandom(64 << 10))
    offsets = [4096 * (i * 7 % 16) for i in range(50)] + [(64 << 10) - 100]  # the last one is short
    run = prtime.run(helper, str(data), offsets, 4096, direct=False, cpu=min(os.sched_getaffinity(0)))
    assert len(run.samples_ns) == len(offsets) and all(s > 0 for s in run.samples_ns)
    assert run.short == 1 and run.cpu == min(os.sched_getaffinity(0)) and run.direct is False
    assert 0 < run.clock_overhead_min_ns <= run.clock_overhead_median_ns < 100_000


@needs_gcc
def test_a_failing_helper_says_why_in_one_line(helper, tmp_path):
    with pytest.raises(prtime.PrtimeError, match="open: No such file"):
        prtime.run(helper, str(tmp_path / "missing"), [0], 4096, direct=False)
    data = tmp_path / "data"
    data.write_bytes(b"x" * 4096)
    with pytest.raises(prtime.PrtimeError, match="bad -c"):
        prtime.run(helper, str(data), [0], 4096, direct=False, cpu=1 << 20)


def test_find_helper_refuses_a_binary_that_is_not_prtime(monkeypatch, tmp_path):
    fake = tmp_path / "fake"
    fake.write_text("#!/bin/sh\necho something else\n")
    fake.chmod(0o755)
    monkeypatch.setenv(prtime.ENV, str(fake))
    helper, why = prtime.find_helper()
    assert helper is None and "is not a prtime of format 1" in why


@needs_gcc
def test_find_helper_takes_an_explicit_binary_first(helper, monkeypatch):
    monkeypatch.setenv(prtime.ENV, helper.path)
    found, why = prtime.find_helper()
    assert why == "" and found is not None and found.origin == "env" and found.sha256 == helper.sha256


def test_the_image_key_covers_the_helper_source(monkeypatch, tmp_path):
    """A change to prtime.c changes the image id, so the image is rebuilt with the new helper."""
    from pmemkit.vm import image

    root = tmp_path / "repo"
    (root / "vm").mkdir(parents=True)
    for name in image.RECIPE_FILES:
        (root / "vm" / name).write_text(name)
    (root / "pmemkit/guest/native").mkdir(parents=True)
    source = root / image.NATIVE_FILES[0]
    source.write_text("int main(void) { return 0; }\n")
    monkeypatch.setattr(image, "repo_root", lambda: root)
    first = image.recipe_hash(root / "vm")
    source.write_text("int main(void) { return 1; }\n")
    assert image.recipe_hash(root / "vm") != first
    assert "pmemkit/guest/native/prtime.c" in image.NATIVE_FILES


def test_ratio_ci_gives_a_verdict_only_from_three_rounds_and_only_inside_the_band():
    fio = [[10_000 + (i % 7) * 10 for i in range(300)] for _ in range(3)]
    same = [[x for x in r] for r in fio]
    slower = [[int(x * 1.3) for x in r] for r in fio]
    agree = fiocheck.ratio_ci(same, fio)
    assert agree is not None and agree["agrees"] is True and agree["lo"] <= 1.0 <= agree["hi"]
    assert "Student-t" in agree["method"] and len(agree["per_round"]) == 3
    differ = fiocheck.ratio_ci(slower, fio)
    assert differ is not None and differ["agrees"] is False and differ["lo"] > 1.1
    two = fiocheck.ratio_ci(same[:2], fio[:2])
    assert two is not None and two["agrees"] is None and "too few rounds" in two["method"]
    # a CI straddling the band's edge is not agreement: the whole interval must lie within 0.9…1.1
    drift = [[int(x * f) for x in r] for r, f in zip(fio, (1.0, 1.12, 0.97), strict=True)]
    edge = fiocheck.ratio_ci(drift, fio)
    assert edge is not None and edge["hi"] > 1.1 and edge["agrees"] is False
    assert fiocheck.ratio_ci([[]], [[]]) is None


def _target(tmp_path):
    from pmemkit.guest.experiments import Target
    from pmemkit.scenario import Scenario

    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    scenario = Scenario(kernel=os.uname().release, source="baseline", mode="pagecache")
    return Target("pagecache", str(tmp_path), "pagecache", scenario, str(scratch), {"accel": "host"}, {})


@needs_gcc
def test_fio_check_takes_the_own_latency_from_the_helper_pinned_beside_fio(helper, tmp_path, monkeypatch):
    """Issue 15: the helper's per-pread samples against fio's clat, the same CPU, the same count."""
    if shutil.which("fio") is None or not direct_io_works(tmp_path):
        pytest.skip("fio or O_DIRECT missing on this host")
    small = {"file_bytes": 4 << 20, "ios": 64, "rounds": 3, "loops": 1, "seq_rounds": 0, "null": 0}
    monkeypatch.setitem(fiocheck.PROFILES, "quick", small)
    before = os.sched_getaffinity(0)
    obs = list(fiocheck.run(_target(tmp_path), {"profile": "quick"}))
    assert os.sched_getaffinity(0) == before  # the pin is undone
    (rand,) = obs
    assert rand.outcome == "ok", rand.detail
    parity, timing = rand.metrics["parity"], rand.provenance["timing"]
    assert parity["own_method"] == "helper" and parity["pmemkit_latency"].startswith("own (prtime")
    assert timing["helper"]["sha256"] == helper.sha256 and timing["helper"]["compiler"].startswith("gcc")
    assert timing["clock_overhead_subtracted"] is False and len(timing["clock_overhead_median_ns"]) == 3
    assert timing["cpu"]["cpu"] == min(before) and timing["cpu"]["vcpus"] == os.cpu_count()
    count = small["ios"] * small["rounds"]
    assert rand.metrics["pmemkit_own"]["count"] == rand.metrics["fio_clat"]["count"] == count
    assert rand.metrics["pmemkit_caller"]["count"] == count
    assert parity["p50"]["agrees"] in (True, False) and "tracer_floor" not in parity
    overhead = parity["caller_overhead_p50_ns"]
    assert overhead == rand.metrics["pmemkit_caller"]["p50"] - rand.metrics["pmemkit_own"]["p50"]
    assert "C helper" in rand.detail and "caller overhead" in rand.detail


def test_fio_check_alternates_the_tools_in_abba_order(tmp_path, monkeypatch):
    """fio first in even rounds, pmemkit first in odd ones; pmemkit always replays round 0's offsets."""
    from pathlib import Path

    import numpy as np

    from pmemkit.guest import fio as fiolib
    from pmemkit.measure.timing import time_each

    fixture = Path(__file__).parent / "fixtures" / "fio-3.33-odirect-randread.json"
    result = fiolib.parse(fixture.read_text())
    events: list[tuple[str, tuple[int, ...]]] = []
    offsets = [0, 4096, 8192, 12288]

    def fio_round(path, size, ios, prefix, cpu):
        events.append(("fio", ()))
        return result, [10_000 + i for i in range(len(offsets))], offsets

    def pmemkit_round(target, path, offs, helper, cpu):
        events.append(("pmemkit", tuple(offs)))
        timed = time_each(lambda i: 4096, len(offsets), 0, key="abba", collect=True)
        return {"caller": timed, "own": [10_000] * len(offsets), "helper_run": None, "trace": {}, "short": 0}

    monkeypatch.setattr(fiocheck, "_fio_round", fio_round)
    monkeypatch.setattr(fiocheck, "_pmemkit_round", pmemkit_round)
    monkeypatch.setattr(prtime, "find_helper", lambda **_: (None, "no helper in this test"))
    monkeypatch.setattr(fiocheck, "_floor", lambda: {"getppid_p50_ns": None, "count": 0})
    profile = {"file_bytes": 1 << 20, "ios": 4, "rounds": 4, "loops": 1, "seq_rounds": 0, "null": 0}
    cpu = {"cpu": 0, "vcpus": 1, "allowed_before": [0]}
    obs = fiocheck._randread(_target(tmp_path), str(tmp_path / "f"), profile, str(tmp_path), cpu)
    abba = ["fio", "pmemkit", "pmemkit", "fio"] * 2
    assert [who for who, _ in events] == abba
    assert all(offs == tuple(offsets) for who, offs in events if who == "pmemkit")
    assert obs.outcome == "ok" and obs.metrics["parity"]["order"].startswith("ABBA")
    assert np.isclose(obs.metrics["parity"]["p50"]["ratio"], 10_000 / 10_001.5)  # fio median 10 001.5


def _bench_script():
    """scripts/bench-fio-parity.py loaded as a module (it is a script, not part of the package)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench-fio-parity.py"
    spec = importlib.util.spec_from_file_location("bench_fio_parity", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_line_names_the_method_the_ratio_and_the_verdict():
    """scripts/bench-fio-parity.py prints one line per target; its verdict is what it counts."""
    bench = _bench_script()
    metrics = {
        "pmemkit_own": {"p50": 15_000},
        "pmemkit_caller": {"p50": 20_000},
        "fio_clat": {"p50": 16_000},
        "parity": {
            "rounds": 5,
            "ios_per_round": 4096,
            "own_method": "helper",
            "p50": {"ratio": 0.9375, "lo": 0.91, "hi": 0.97, "agrees": True},
            "caller_overhead_p50_ns": 5_000.0,
        },
    }
    line, verdict = bench.parity_line("memmap raw ext4 (/dev/pmem0)", metrics)
    assert verdict is True
    expected = ("5×4096", "helper", "15.00µs", "16.00µs", "0.938 [0.910, 0.970]", "agrees")
    expected += ("20.00µs", "5.00µs")  # caller-side p50, caller overhead
    for text in expected:
        assert text in line, (text, line)
    outside = {"ratio": 0.5, "lo": 0.45, "hi": 0.55, "agrees": False}
    parity = {**metrics["parity"], "own_method": "tracepoints", "p50": outside}
    line, verdict = bench.parity_line("t", {**metrics, "parity": parity})
    assert verdict is False and "traced" in line and "differs" in line
    wide = {"ratio": 0.95, "lo": 0.5, "hi": 1.6, "agrees": False}  # reaches past the band: unclear
    line, verdict = bench.parity_line("t", {**metrics, "parity": {**parity, "p50": wide}})
    assert verdict is False and "unclear" in line and "differs" not in line


def test_bench_second_comparison_takes_fio_null_engine_cost_off_clat():
    """own / (clat - null): 15 / (16 - 1) = 1.0; the CI scaled alike; no null run, no estimate."""
    bench = _bench_script()
    metrics = {
        "fio_clat": {"p50": 16_000},
        "fio_null_p50_ns": 1_000.0,
        "parity": {"p50": {"ratio": 0.9375, "lo": 0.875, "hi": 1.0, "agrees": False}},
    }
    text, within = bench.net_of_fio_cost(metrics)
    assert within is True and "1.000 [0.933, 1.067]" in text and "1.00µs" in text, text
    wide = {**metrics, "parity": {"p50": {"ratio": 0.9375, "lo": 0.5, "hi": 1.0, "agrees": False}}}
    text, within = bench.net_of_fio_cost(wide)
    assert within is False and "not within" in text
    text, within = bench.net_of_fio_cost({**metrics, "fio_null_p50_ns": None})
    assert within is None and "no fio null-engine run" in text
    text, within = bench.net_of_fio_cost({**metrics, "fio_null_p50_ns": 20_000.0})  # null above clat
    assert within is None
    measured = {"ratio": 0.97, "lo": 0.93, "hi": 1.02, "agrees": True}  # null run in every round
    text, within = bench.net_of_fio_cost({**metrics, "parity": {**metrics["parity"], "net_p50": measured}})
    assert within is True and "every round" in text and "0.970 [0.930, 1.020]" in text, text


def test_net_ratio_takes_each_round_s_null_engine_cost_off_its_clat():
    """Per round median(own) / (median(clat) - median(null)); CI over rounds; none from 2 rounds."""
    own = [[15_000] * 5, [15_200] * 5, [14_900] * 5]
    clat = [[17_000] * 5, [17_100] * 5, [16_800] * 5]
    null = [[2_000] * 5, [1_900] * 5, [1_900] * 5]
    net = fiocheck.net_ratio_ci(own, clat, null)
    assert net is not None and net["rounds"] == 3
    assert net["per_round"] == pytest.approx([1.0, 1.0, 14_900 / 14_900])
    assert net["agrees"] is True and net["lo"] <= 1.0 <= net["hi"]
    assert "null-engine" in net["method"]
    assert fiocheck.net_ratio_ci(own[:2], clat[:2], null[:2]) is None
    far = fiocheck.net_ratio_ci([[8_000] * 5] * 3, clat, null)  # the helper at about half: outside
    assert far is not None and far["agrees"] is False and far["hi"] < 0.9


@needs_gcc
def test_the_helper_source_compiles_without_warnings(tmp_path):
    import subprocess

    done = subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_path / "p"), str(prtime.SOURCE)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_round_speeds_name_the_rounds_taken_at_matching_machine_speed():
    from pmemkit.guest.experiments.fiocheck import round_speeds

    speeds = [
        {"fio": [1000, 1000], "own": [1050, 1050]},  # 1.05: matched
        {"fio": [1000, 1000], "own": [2500, 2300]},  # 2.4: pmemkit's side ran on a slower machine
        {"fio": [1200, 1000], "own": [1100, 1100]},  # 1.0: matched
        {"fio": [], "own": [1000, 1000]},  # no reference: neither matched nor mismatched
    ]
    out = round_speeds(speeds, {"per_round": [0.91, 1.7, 0.93, 0.9]})
    assert out["own_over_fio_per_round"] == pytest.approx([1.05, 2.4, 1.0, None])
    assert out["matched_rounds"] == [0, 2] and out["matched_rounds_p50_ratios"] == [0.91, 0.93]
    assert round_speeds([], None)["matched_rounds"] == []


def test_bench_prints_each_round_s_machine_speed_beside_its_ratio():
    bench = _bench_script()
    metrics = {
        "parity": {
            "p50": {"per_round": [0.91, 0.37, 0.93]},
            "speed": {
                "own_over_fio_per_round": [1.02, 0.69, None],
                "matched_rounds_p50_ratios": [0.91],
            },
        }
    }
    line = bench.speed_line(metrics)
    assert line.startswith("machine speed own/fio → p50 ratio, per round: 1.02→0.910 0.69→0.370 —→0.930;")
    assert line.endswith("at the same speed (±10 %): 1 of 3, ratios 0.910")
    assert bench.speed_line({"parity": {"p50": {}}}) == ""  # a run from before the references
