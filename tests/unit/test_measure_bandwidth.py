import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmemkit.measure.bandwidth import (
    bandwidth,
    bytes_per_s,
    gib_per_s,
    mb_per_s,
    mib_per_s,
    ratio,
    within,
)
from pmemkit.measure.errors import MeasureError


def test_rates_by_hand():
    assert bytes_per_s(4096, 1000) == 4.096e9  # 4 KiB in 1 µs
    assert gib_per_s(1 << 30, 1_000_000_000) == 1.0
    assert mib_per_s(1 << 30, 1_000_000_000) == 1024.0
    assert mb_per_s(1 << 30, 1_000_000_000) == pytest.approx(1073.741824)
    assert gib_per_s(1 << 30, 500_000_000) == 2.0
    assert bytes_per_s(0, 5) == 0.0


def test_bandwidth_record_is_consistent():
    rec = bandwidth(3 << 30, 1_500_000_000)
    assert rec["bytes"] == 3 << 30 and rec["elapsed_ns"] == 1_500_000_000
    assert rec["gib_per_s"] == 2.0
    assert rec["mib_per_s"] == 2048.0
    assert rec["bytes_per_s"] == pytest.approx(rec["mb_per_s"] * 1e6)


@pytest.mark.parametrize(
    "nbytes, elapsed",
    [(1, 0), (1, -5), (-1, 10), (1, float("nan")), (float("inf"), 10), (True, 10), (1, None), ("1", 10)],
)
def test_bad_inputs_are_measure_errors(nbytes, elapsed):
    with pytest.raises(MeasureError):
        bytes_per_s(nbytes, elapsed)


def test_ratio_handles_zero_and_none():
    assert ratio(2, 4) == 0.5
    assert ratio(0, 5) == 0.0
    assert ratio(5, 0) is None
    assert ratio(0, 0) is None
    assert ratio(None, 1) is None and ratio(1, None) is None and ratio(None, None) is None
    assert ratio(float("nan"), 1) is None and ratio(1, float("inf")) is None
    assert ratio(3, 3.0) == 1.0


def test_within_tolerance():
    assert within(105, 100) is True
    assert within(90, 100) is True
    assert within(111, 100) is False
    assert within(1.2, 1.0, tolerance=0.25) is True
    assert within(None, 100) is None and within(1, 0) is None


@given(st.floats(min_value=1e-6, max_value=1e12), st.floats(min_value=1e-6, max_value=1e12))
def test_property_ratio_inverts(a, b):
    assert math.isclose(ratio(a, b) * ratio(b, a), 1.0, rel_tol=1e-9)
