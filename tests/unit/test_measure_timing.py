import itertools

import pytest

from pmemkit.measure import clock
from pmemkit.measure.errors import MeasureError
from pmemkit.measure.timing import OverheadCalibration, calibrate_overhead, time_calls


def _fake_clock(step):
    counter = itertools.count(0, step)
    return lambda: next(counter)


def test_time_calls_with_fake_clock_gives_one_sample_per_call():
    calls = []
    samples = time_calls(lambda: calls.append(1), 5, warmup=3, clock=_fake_clock(7))
    assert samples == [7] * 5
    assert len(calls) == 8  # warm-up calls run, untimed


def test_time_calls_reads_the_clock_around_each_call_only():
    reads = []

    def fake():
        reads.append(len(reads))
        return reads[-1] * 10

    assert time_calls(lambda: None, 3, warmup=2, clock=fake) == [10, 10, 10]
    assert len(reads) == 6  # two reads per timed call, none for warm-up


def test_time_calls_uses_the_shared_clock_by_default(monkeypatch):
    monkeypatch.setattr(clock, "now_ns", _fake_clock(11))
    assert time_calls(lambda: None, 2) == [11, 11]


def test_time_calls_real_clock_sanity():
    samples = time_calls(lambda: sum(range(10)), 50, warmup=5)
    assert len(samples) == 50
    assert all(isinstance(s, int) and s >= 0 for s in samples)


@pytest.mark.parametrize("repetitions, warmup", [(0, 0), (-1, 0), (1, -1), (1.5, 0), (True, 0), (1, None)])
def test_time_calls_rejects_bad_counts(repetitions, warmup):
    with pytest.raises(MeasureError):
        time_calls(lambda: None, repetitions, warmup)


def test_time_calls_propagates_exceptions():
    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        time_calls(boom, 1)


def test_calibrate_overhead_with_fake_clock():
    cal = calibrate_overhead(batches=3, repetitions=10, warmup=2, clock=_fake_clock(5))
    assert cal == OverheadCalibration(
        overhead_ns=5, batch_medians_ns=(5, 5, 5), min_ns=5, batches=3, repetitions=10, warmup=2
    )
    assert cal.to_dict()["overhead_ns"] == 5 and "median" in cal.to_dict()["method"]


def test_calibrate_overhead_takes_median_of_batch_medians():
    # Each batch of 3 timed calls sees gaps from this script: medians 4, 100, 6 -> median 6.
    gaps = iter([4, 4, 900, 100, 100, 100, 1, 6, 6])
    # A clock that alternates: a start read returns t, the end read returns t + the next gap.
    state = {"start": True, "t": 0}

    def scripted():
        if state["start"]:
            state["start"] = False
            return state["t"]
        state["start"] = True
        state["t"] += next(gaps)
        return state["t"]

    cal = calibrate_overhead(batches=3, repetitions=3, warmup=0, clock=scripted)
    assert cal.batch_medians_ns == (4, 100, 6)
    assert cal.overhead_ns == 6
    assert cal.min_ns == 1


def test_calibrate_overhead_real_clock_sanity():
    cal = calibrate_overhead(batches=3, repetitions=200, warmup=10)
    assert len(cal.batch_medians_ns) == 3
    assert 0 <= cal.min_ns <= cal.overhead_ns
    assert cal.overhead_ns in cal.batch_medians_ns


def test_calibrate_overhead_rejects_bad_counts():
    with pytest.raises(MeasureError):
        calibrate_overhead(batches=0)


def test_time_each_passes_the_index_and_keeps_results():
    from pmemkit.measure.timing import forget_calibrations, time_each

    forget_calibrations()
    seen = []
    timed = time_each(
        lambda i: seen.append(i) or i * 2, 4, warmup=6, key="t", collect=True, clock=_fake_clock(3)
    )
    assert seen == [0, 1, 2, 3, 0, 1, 0, 1, 2, 3]  # warm-up indices wrap modulo the sample count
    assert timed.samples_ns.tolist() == [3, 3, 3, 3] and timed.results == (0, 2, 4, 6)
    meta = timed.metadata()
    assert meta["samples"] == 4 and meta["warmup"] == 6 and meta["overhead_ns"] == 3
    assert meta["overhead_calibrated_for"] == "t" and meta["overhead_subtracted"] is False
    summary = timed.summary()
    assert summary["overhead_ns"] == 3 and summary["timing"]["loop"].endswith("time_each")
    forget_calibrations()


def test_time_each_calibrates_once_per_key(monkeypatch):
    from pmemkit.measure import timing

    timing.forget_calibrations()
    calls = []
    real = timing.calibrate_overhead
    monkeypatch.setattr(timing, "calibrate_overhead", lambda **kw: calls.append(1) or real(**kw))
    for _ in range(3):
        timing.time_each(lambda i: None, 2, key="dev-a", clock=_fake_clock(1))
    timing.time_each(lambda i: None, 2, key="dev-b", clock=_fake_clock(1))
    assert len(calls) == 2
    with pytest.raises(MeasureError):
        timing.time_each(lambda i: None, 0, key="dev-a")
    with pytest.raises(MeasureError):
        timing.overhead_for("")
    timing.forget_calibrations()
