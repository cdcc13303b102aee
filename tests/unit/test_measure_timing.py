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
