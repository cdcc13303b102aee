import json
import math
import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmemkit.measure.errors import MeasureError
from pmemkit.measure.stats import (
    PERCENTILES,
    LatencySummary,
    log2_histogram,
    nearest_rank_index,
    subtract_overhead,
    summarize,
    summarize_latency,
)


def _reference_percentile(samples, p):
    """Nearest rank, written the textbook way: x[ceil(p/100 * n)] of the sorted samples (1-based)."""
    ordered = sorted(samples)
    rank = math.ceil(Fraction(p) * len(ordered) / 100)
    return ordered[max(rank, 1) - 1]


# --- hand-computed percentiles -------------------------------------------------------------------


def test_percentiles_of_one_to_ten_by_hand():
    s = summarize(list(range(10, 0, -1)))  # order must not matter
    # n=10: p50 -> rank ceil(5)=5; p90 -> 9; p99 -> ceil(9.9)=10; p99.9 -> ceil(9.99)=10
    assert (s["p50"], s["p90"], s["p99"], s["p99.9"], s["p99.99"]) == (5, 9, 10, 10, 10)
    assert (s["min"], s["max"], s["count"]) == (1, 10, 10)
    assert s["mean"] == 5.5


def test_percentiles_of_one_to_thousand_by_hand():
    samples = list(range(1, 1001))
    random.Random(4).shuffle(samples)
    s = summarize(samples)
    # n=1000: p50 -> 500; p90 -> 900; p99 -> 990; p99.9 -> exactly 999 (no float slip to 1000);
    # p99.99 -> ceil(999.9) = 1000
    assert (s["p50"], s["p90"], s["p99"], s["p99.9"], s["p99.99"]) == (500, 900, 990, 999, 1000)
    assert s["mean"] == 500.5


def test_percentiles_of_ten_thousand_by_hand():
    s = summarize(np.arange(1, 10001, dtype=np.int64))
    assert (s["p99.9"], s["p99.99"]) == (9990, 9999)


def test_small_odd_inputs_by_hand():
    s = summarize([3, 1, 2])
    # n=3: p50 -> ceil(1.5)=2 -> 2; p90 -> ceil(2.7)=3 -> 3
    assert (s["p50"], s["p90"], s["p99"]) == (2, 3, 3)
    one = summarize([42])
    assert all(one[k] == 42 for k in ("min", "max", *PERCENTILES))
    assert one["mean"] == 42.0


def test_percentiles_are_observed_values_not_interpolated():
    s = summarize([100, 200])
    assert s["p50"] == 100 and s["p90"] == 200  # linear interpolation would give 150 and 190


def test_method_matches_numpy_inverted_cdf_where_no_rank_is_exact():
    rng = np.random.default_rng(7)
    for n in (1, 3, 7, 999, 1001):  # p/100 * n is never an integer for these n
        data = rng.integers(0, 10**6, size=n)
        s = summarize(data)
        for name in PERCENTILES:
            expected = np.percentile(data, float(name[1:]), method="inverted_cdf")
            assert s[name] == int(expected), (n, name)


def test_exact_rank_where_numpy_float_slips():
    # 99.9 / 100 * 1000 is 999.0000000000001 in floats, so numpy's inverted_cdf takes x[1000];
    # nearest rank in exact arithmetic is x[999]. This is why stats.py does not call np.percentile.
    data = np.arange(1, 1001)
    assert summarize(data)["p99.9"] == 999
    assert int(np.percentile(data, 99.9, method="inverted_cdf")) in (999, 1000)


def test_nearest_rank_index_bounds():
    assert nearest_rank_index("100", 7) == 6
    assert nearest_rank_index("0.0001", 7) == 0
    with pytest.raises(MeasureError):
        nearest_rank_index(0, 7)
    with pytest.raises(MeasureError):
        nearest_rank_index(101, 7)


# --- types, JSON, samples ------------------------------------------------------------------------


def test_json_plain_types_and_documented_keys():
    s = summarize(np.array([5, 7, 9], dtype=np.uint32))
    text = json.dumps(s)  # numpy scalars would fail here
    assert json.loads(text) == s
    assert s["unit"] == "ns" and s["percentile_method"] == "nearest-rank"
    assert isinstance(s["min"], int) and isinstance(s["p50"], int) and isinstance(s["mean"], float)
    assert "samples" not in s
    assert s["overhead_ns"] is None and s["overhead_subtracted"] is False


def test_float_samples_give_float_percentiles():
    s = summarize([0.5, 1.5, 2.5])
    assert s["p50"] == 1.5 and isinstance(s["p50"], float)
    assert s["histogram"][0] == {"lo_ns": 0, "hi_ns": 1, "count": 1}


def test_keep_samples_keeps_them_in_order():
    s = summarize([30, 10, 20], keep_samples=True)
    assert s["samples"] == [30, 10, 20]
    assert LatencySummary.from_dict(s).samples_ns == (30, 10, 20)


def test_from_dict_round_trip_and_tolerates_older_dicts():
    summary = summarize_latency([1, 2, 3, 400], overhead_ns=2, subtract=True, keep_samples=True)
    assert LatencySummary.from_dict(summary.to_dict()) == summary
    old = {"count": 2, "min": 1, "max": 2, "mean": 1.5, "p50": 1, "p90": 2, "p99": 2, "p99.9": 2}
    back = LatencySummary.from_dict(old)
    assert back.percentile("p99.99") is None and back.overhead_ns is None and back.histogram == ()
    with pytest.raises(MeasureError):
        LatencySummary.from_dict({**old, "unit": "us"})


def test_generator_input_is_accepted():
    assert summarize(x for x in (4, 5, 6))["p50"] == 5


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        [],
        np.array([], dtype=np.int64),
        iter(()),
        [1, -1],
        [1.0, float("nan")],
        [float("inf")],
        ["1"],
        [[1, 2], [3, 4]],
        [[1, 2], [3]],
        [True, False],
        [2**70],
    ],
)
def test_bad_input_is_a_measure_error(bad):
    with pytest.raises(MeasureError):
        summarize(bad)


def test_empty_input_message_and_type():
    with pytest.raises(ValueError, match="no latency samples"):
        summarize([])


def test_subtract_without_overhead_is_refused():
    with pytest.raises(MeasureError, match="overhead"):
        summarize([1, 2], subtract=True)
    with pytest.raises(MeasureError):
        subtract_overhead([1, 2], -1)


# --- histogram ------------------------------------------------------------------------------------


def test_histogram_by_hand():
    buckets = log2_histogram([0, 1, 3, 3, 100])
    assert [b.to_dict() for b in buckets] == [
        {"lo_ns": 0, "hi_ns": 1, "count": 1},
        {"lo_ns": 1, "hi_ns": 2, "count": 1},
        {"lo_ns": 2, "hi_ns": 4, "count": 2},
        {"lo_ns": 4, "hi_ns": 8, "count": 0},  # interior empty buckets are kept
        {"lo_ns": 8, "hi_ns": 16, "count": 0},
        {"lo_ns": 16, "hi_ns": 32, "count": 0},
        {"lo_ns": 32, "hi_ns": 64, "count": 0},
        {"lo_ns": 64, "hi_ns": 128, "count": 1},
    ]


def test_histogram_omits_outer_empty_buckets_and_handles_powers_of_two():
    buckets = log2_histogram([1024, 2047, 2048])
    assert [(b.lo_ns, b.hi_ns, b.count) for b in buckets] == [(1024, 2048, 2), (2048, 4096, 1)]
    top = log2_histogram([2**63 - 1])
    assert [(b.lo_ns, b.hi_ns, b.count) for b in top] == [(2**62, 2**63, 1)]
    assert [(b.lo_ns, b.hi_ns) for b in log2_histogram([0])] == [(0, 1)]


# --- overhead ------------------------------------------------------------------------------------


def test_overhead_subtracted_and_recorded():
    summary = summarize_latency([100, 150, 90, 400], overhead_ns=100, subtract=True, keep_samples=True)
    assert summary.samples_ns == (0, 50, 0, 300)
    assert summary.overhead_subtracted and summary.clamped_to_zero == 1  # only 90 was below 100
    assert summary.min_ns == 0 and summary.max_ns == 300
    assert summary.overhead_note() == "timer overhead 100 ns subtracted (1 of 4 samples clamped to 0)"


def test_overhead_recorded_but_not_subtracted():
    summary = summarize_latency([100, 150], overhead_ns=100)
    assert summary.min_ns == 100 and not summary.overhead_subtracted
    assert summary.overhead_note() == "timer overhead 100 ns, not subtracted"
    assert summarize_latency([1]).overhead_note() == "timer overhead not measured"


def test_fractional_overhead_gives_float_samples():
    adjusted = subtract_overhead([10, 20], 2.5)
    assert adjusted.samples_ns.tolist() == [7.5, 17.5] and adjusted.clamped == 0


# --- properties ----------------------------------------------------------------------------------

int_samples = st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300)
float_samples = st.lists(
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False), min_size=1, max_size=300
)
any_samples = st.one_of(int_samples, float_samples)


@settings(max_examples=150, deadline=None)
@given(any_samples)
def test_property_order_statistics(samples):
    s = summarize(samples)
    assert s["count"] == len(samples)
    assert s["min"] == min(samples) and s["max"] == max(samples)
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["p99.9"] <= s["p99.99"] <= s["max"]
    assert s["min"] <= s["mean"] <= s["max"]
    for name in PERCENTILES:
        assert s[name] == _reference_percentile(samples, name[1:])


@settings(max_examples=150, deadline=None)
@given(any_samples)
def test_property_histogram_covers_every_sample(samples):
    s = summarize(samples)
    buckets = s["histogram"]
    assert sum(b["count"] for b in buckets) == s["count"]
    assert buckets[0]["count"] > 0 and buckets[-1]["count"] > 0
    for left, right in zip(buckets, buckets[1:], strict=False):
        assert left["hi_ns"] == right["lo_ns"]  # contiguous
    for b in buckets:
        assert b["hi_ns"] == (2 * b["lo_ns"] if b["lo_ns"] else 1)  # log2 spaced
    for x in samples:
        inside = [b for b in buckets if b["lo_ns"] <= x < b["hi_ns"]]
        assert len(inside) == 1 and inside[0]["count"] > 0


@settings(max_examples=100, deadline=None)
@given(int_samples, st.integers(min_value=0, max_value=10**12))
def test_property_overhead_subtraction(samples, overhead):
    summary = summarize_latency(samples, overhead_ns=overhead, subtract=True, keep_samples=True)
    assert summary.samples_ns == tuple(max(x - overhead, 0) for x in samples)
    assert summary.clamped_to_zero == sum(1 for x in samples if x < overhead)
    assert summary.overhead_subtracted and summary.overhead_ns == overhead
    assert json.loads(json.dumps(summary.to_dict())) == summary.to_dict()


# --- issue 15: honest sample sizes and confidence intervals ---------------------------------


def test_order_statistic_ranks_match_the_textbook_table():
    from pmemkit.measure.stats import order_statistic_ranks

    assert order_statistic_ranks("50", 16) == (4, 13)  # 97.9 % coverage
    assert order_statistic_ranks("50", 100) == (40, 61)
    assert order_statistic_ranks("50", 5) == (None, None)  # 0.5**5 > 2.5 %: no 95 % interval
    assert order_statistic_ranks("99", 300)[1] is None  # 0.99**300 = 4.9 % > 2.5 %
    assert order_statistic_ranks("99", 512) == (502, 512)


def test_order_statistic_ci_covers_the_true_median_about_95_percent_of_the_time():
    import numpy as np

    from pmemkit.measure.stats import percentile_ci

    rng = np.random.default_rng(3)
    true_median = np.log(2)  # of Exp(1)
    hits = 0
    for _ in range(400):
        ci = percentile_ci(np.sort(rng.exponential(1.0, 200)), "p50")
        hits += ci["lo"] <= true_median <= ci["hi"]
    assert 0.92 <= hits / 400 <= 0.995


def test_summary_names_its_reportable_percentiles_and_carries_cis():
    s = summarize(list(range(1, 17)))
    assert s["reportable"] == ["p50", "p90"]
    assert s["ci"]["p50"] == {"lo": 4, "hi": 13, "level": 0.95, "method": s["ci"]["p50"]["method"]}
    assert "order-statistic" in s["ci"]["p50"]["method"]
    assert s["ci"]["p99"]["hi"] is None
    back = LatencySummary.from_dict(s)
    assert back.ci["p50"]["lo"] == 4 and back.reportable("p99") is None and back.reportable("p50") == 8


def test_reportable_value_hides_what_the_count_cannot_support():
    from pmemkit.measure.stats import reportable_value, supports

    assert supports("p99", 100) and not supports("p99", 99)
    assert supports("p99.9", 1000) and not supports("p99.99", 9999)
    assert reportable_value(summarize(list(range(16))), "p99") is None
    assert reportable_value(summarize(list(range(100))), "p99") == 98


def test_ratio_cis():
    import numpy as np

    from pmemkit.measure.stats import agrees, bootstrap_ratio_ci, rounds_ratio_ci

    same = rounds_ratio_ci([1.01, 0.99, 1.0, 1.02, 0.98])
    assert same["lo"] < 1 < same["hi"] and agrees(same) is True
    apart = rounds_ratio_ci([1.3, 1.28, 1.31])
    assert apart["lo"] > 1.2 and agrees(apart) is False
    with pytest.raises(MeasureError):
        rounds_ratio_ci([1.0])
    rng = np.random.default_rng(1)
    a, b = rng.normal(1200, 50, 2000), rng.normal(1000, 50, 2000)
    boot = bootstrap_ratio_ci(a, b)
    assert boot["lo"] < 1.2 < boot["hi"] and boot["hi"] - boot["lo"] < 0.02
    assert boot == bootstrap_ratio_ci(a, b)  # seeded
    assert agrees({"lo": None, "hi": 1.0}) is None
