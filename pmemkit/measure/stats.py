"""Summaries of latency samples: percentiles, min/max/mean, a log2 histogram, timer overhead.

This is the results contract (ARCHITECTURE.md, Contracts) in code: a distribution of latency samples (ns)
becomes count, min, p50, p90, p99, p99.9, p99.99, max, mean plus a log-bucket histogram; the raw
samples travel only when asked (`keep_samples=True`, the CLI's `--keep-samples`).

Conventions, all of which the JSON carries so a report can state them:

- **Unit**: nanoseconds. Integer samples (what `perf_counter_ns` gives) yield integer min, max
  and percentiles; float samples yield floats. `mean` is always a float.
- **Percentile method: nearest-rank** (`"nearest-rank"`). The p-th percentile of n sorted
  samples x[1..n] is x[r] with r = ceil(p/100 * n), at least 1, computed in exact rational
  arithmetic (so p99.9 of 1000 samples is x[999], never x[1000] by a rounding slip). Every
  reported percentile is therefore a latency that was actually observed, as in fio's completion
  latency percentiles, and never an interpolation between two. It is numpy's
  `method="inverted_cdf"` without its floating-point slip: numpy computes 99.9/100 * 1000 as
  999.0000000000001 and so returns x[1000] for p99.9 of 1000 samples; exact ranks do not.
- **Histogram**: log2-spaced buckets [lo_ns, hi_ns), lo inclusive, hi exclusive: [0, 1), [1, 2),
  [2, 4), [4, 8), ... Buckets run from the first non-empty one to the last non-empty one; empty
  buckets *between* them are kept (count 0) so gaps stay visible, empty buckets outside that span
  are omitted. Counts sum to `count`.
- **What a report may print** (issue 15): a percentile is reportable only when the sample count
  supports it, `MIN_SAMPLES`: p90 needs 10 samples, p99 100, p99.9 1 000, p99.99 10 000 (below
  that the "percentile" is just the maximum, or close to it). The JSON still carries every
  nearest-rank value (it is data), plus `reportable` naming the ones a table may show;
  `reportable_value` is what every renderer asks.
- **Confidence intervals**: p50 and p99 carry a distribution-free **order-statistic** interval
  (`CI_METHOD`): the ranks l < u with P(l <= B <= u - 1) >= 95 % for B ~ Binomial(n, p), so
  [x(l), x(u)] covers the true quantile with at least 95 % probability whatever the distribution,
  assuming independent samples (timed loops under TCG are not perfectly independent: the interval
  is then a little optimistic). When n is too small for a two-sided 95 % interval (p99 needs
  about 300 samples) the missing side is None and the CI is reported as not available.
- **Timer overhead**: `overhead_ns` is the calibrated cost of the timing loop itself (see
  `pmemkit.measure.timing.calibrate_overhead`), reported beside the distribution. It is subtracted
  from the samples only when the caller says so (`subtract=True`); then every sample becomes
  max(sample - overhead, 0), `overhead_subtracted` is true and `clamped_to_zero` counts the samples
  that the clamp touched. `overhead_note()` turns that into the sentence a report prints.

Pure: numpy and the stdlib only, no I/O. Uses only numpy APIs present in numpy 1.24 (the guest's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from pmemkit.measure.errors import MeasureError

PERCENTILE_METHOD = "nearest-rank"
#: Smallest sample count at which a percentile is printed (below it is the maximum, or nearly).
MIN_SAMPLES = {"p50": 1, "p90": 10, "p99": 100, "p99.9": 1000, "p99.99": 10000}
#: The percentiles that carry a confidence interval, its level and how it is computed.
CI_PERCENTILES = ("p50", "p99")
CI_LEVEL = 0.95
CI_METHOD = "order-statistic (binomial, distribution-free)"
#: Percentile names in report order; the number after `p` is the percentile.
PERCENTILES = ("p50", "p90", "p99", "p99.9", "p99.99")
_INT64_MAX = int(np.iinfo(np.int64).max)

Number = int | float


def _number(value: Any) -> Number:
    """A numpy scalar or Python number as a plain Python int or float (JSON-ready)."""
    return value.item() if hasattr(value, "item") else value


def as_samples(samples_ns: Iterable[Number] | np.ndarray) -> np.ndarray:
    """Check and convert samples to a 1-D int64 (integers) or float64 (floats) array.

    Raises MeasureError for no samples, more than one dimension, non-numbers, NaN/inf, negative
    values or integers beyond int64.
    """
    if not isinstance(samples_ns, np.ndarray) and not isinstance(samples_ns, Sequence):
        samples_ns = list(samples_ns)
    try:
        arr = np.asarray(samples_ns)
    except (ValueError, TypeError) as exc:  # ragged nesting and the like
        raise MeasureError(f"latency samples must be a flat sequence of numbers: {exc}") from exc
    if arr.ndim != 1:
        raise MeasureError(f"latency samples must be a flat sequence of numbers, not {arr.ndim}-D data")
    if arr.size == 0:
        raise MeasureError("no latency samples to summarise: run at least one repetition")
    kind = arr.dtype.kind
    if kind in "iu":
        if kind == "u" and int(arr.max()) > _INT64_MAX:
            raise MeasureError("latency sample beyond int64 range: samples are nanoseconds")
        arr = arr.astype(np.int64, copy=False)
    elif kind == "f":
        arr = arr.astype(np.float64, copy=False)
        if not bool(np.all(np.isfinite(arr))):
            raise MeasureError("latency samples contain NaN or infinity: check the timing loop")
    else:
        raise MeasureError(
            f"latency samples must be integers or floats (ns), not {arr.dtype}; "
            "integers beyond int64 are not latencies"
        )
    if arr.min() < 0:
        raise MeasureError(
            f"negative latency sample ({_number(arr.min())} ns): the clock is not monotonic "
            "or an overhead was subtracted without clamping"
        )
    return arr


def nearest_rank_index(percentile: str | float | Fraction, count: int) -> int:
    """0-based index into the sorted samples of the nearest-rank `percentile` (0 < p <= 100)."""
    p = Fraction(str(percentile)) if not isinstance(percentile, Fraction) else percentile
    if not 0 < p <= 100:
        raise MeasureError(f"percentile must be in (0, 100], not {percentile}")
    if count < 1:
        raise MeasureError("no latency samples to summarise: run at least one repetition")
    rank = math.ceil(p * count / 100)
    return max(rank, 1) - 1


def percentile_value(sorted_samples: np.ndarray, name: str) -> Number:
    """The nearest-rank percentile `name` (e.g. `"p99.9"`) of already sorted samples."""
    if not name.startswith("p"):
        raise MeasureError(f"percentile names look like p50 or p99.9, not {name!r}")
    return _number(sorted_samples[nearest_rank_index(name[1:], len(sorted_samples))])


def supports(name: str, count: int) -> bool:
    """Whether `count` samples support printing percentile `name` (see `MIN_SAMPLES`)."""
    needed = MIN_SAMPLES.get(name)
    if needed is None:
        p = Fraction(name[1:]) if name.startswith("p") else Fraction(0)
        needed = math.ceil(100 / (100 - p)) if 0 < p < 100 else 1
    return count >= needed


def reportable_percentiles(count: int) -> tuple[str, ...]:
    """The names in `PERCENTILES` that `count` samples support."""
    return tuple(name for name in PERCENTILES if supports(name, count))


def withheld_text(name: str, count: int) -> str:
    """What a table prints instead of an unsupported percentile: `— (n=16)`."""
    return f"— (n={count})"


def order_statistic_ranks(
    percentile: str | float, count: int, level: float = CI_LEVEL
) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the distribution-free CI of a quantile; None for a side n cannot reach.

    B ~ Binomial(n, p): l is the largest rank with P(B <= l - 1) <= alpha/2, u the smallest with
    P(B >= u) <= alpha/2, so P(x(l) <= q_p <= x(u)) >= level. Computed exactly in log space.
    """
    if count < 1:
        raise MeasureError("no latency samples to summarise: run at least one repetition")
    if not 0 < level < 1:
        raise MeasureError(f"confidence level must be in (0, 1), not {level}")
    p = float(Fraction(str(percentile).removeprefix("p"))) / 100
    if not 0 < p < 1:
        raise MeasureError(f"a confidence interval needs 0 < percentile < 100, not {percentile}")
    k = np.arange(count + 1, dtype=np.float64)
    steps = np.log((count - k[:-1]) / (k[:-1] + 1)) + math.log(p / (1 - p))
    logpmf = np.concatenate(([count * math.log1p(-p)], count * math.log1p(-p) + np.cumsum(steps)))
    pmf = np.exp(logpmf - logpmf.max())
    cdf = np.cumsum(pmf / pmf.sum())  # cdf[j] = P(B <= j)
    alpha = (1 - level) / 2
    below = np.flatnonzero(cdf <= alpha)  # candidate l - 1 values
    lower = int(below[-1]) + 1 if below.size else None  # l = (l - 1) + 1
    tail = 1 - np.concatenate(([0.0], cdf[:-1]))  # tail[u] = P(B >= u)
    above = np.flatnonzero(tail[1:] <= alpha) + 1
    upper = int(above[0]) if above.size and above[0] <= count else None
    return lower, upper


def percentile_ci(sorted_samples: np.ndarray, name: str, level: float = CI_LEVEL) -> dict[str, Any]:
    """The order-statistic CI of percentile `name` as {lo, hi, level, method}; lo/hi None when unreachable."""
    lower, upper = order_statistic_ranks(name[1:], len(sorted_samples), level)
    return {
        "lo": None if lower is None else _number(sorted_samples[lower - 1]),
        "hi": None if upper is None else _number(sorted_samples[upper - 1]),
        "level": level,
        "method": CI_METHOD,
    }


def ci_half_width(value: Number | None, ci: dict[str, Any] | None) -> float | None:
    """The CI's larger distance from `value`, as a fraction of it (0.05 = ±5 %); None if unknown."""
    if value is None or not ci or ci.get("lo") is None or ci.get("hi") is None or not value:
        return None
    return max(float(value) - float(ci["lo"]), float(ci["hi"]) - float(value)) / float(value)


def reportable_value(summary: dict[str, Any], name: str) -> Number | None:
    """The percentile `name` of a summary dict if its count supports it (`MIN_SAMPLES`), else None."""
    count = summary.get("count")
    if not isinstance(count, int) or not supports(name, count):
        return None
    value = summary.get(name)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def bootstrap_ratio_ci(
    a: Iterable[Number] | np.ndarray,
    b: Iterable[Number] | np.ndarray,
    *,
    level: float = CI_LEVEL,
    resamples: int = 2000,
    seed: int = 15,
) -> dict[str, Any]:
    """median(a) / median(b) with a percentile-bootstrap CI (each side resampled on its own).

    For two independent sets of raw samples (two tools, two runs). Seeded: the same inputs give the
    same interval. Returns {ratio, lo, hi, level, method, resamples}.
    """
    x, y = as_samples(a).astype(np.float64), as_samples(b).astype(np.float64)
    if float(np.median(y)) == 0:
        raise MeasureError("cannot take a ratio to a median of 0 ns")
    rng = np.random.default_rng(seed)
    mx = np.median(x[rng.integers(0, x.size, (resamples, x.size))], axis=1)
    my = np.median(y[rng.integers(0, y.size, (resamples, y.size))], axis=1)
    ratios = mx / np.where(my == 0, np.nan, my)
    ratios = ratios[np.isfinite(ratios)]
    alpha = (1 - level) / 2
    return {
        "ratio": float(np.median(x) / np.median(y)),
        "lo": float(np.quantile(ratios, alpha)),
        "hi": float(np.quantile(ratios, 1 - alpha)),
        "level": level,
        "method": "percentile bootstrap of the ratio of medians",
        "resamples": resamples,
    }


def rounds_ratio_ci(ratios: Iterable[float], *, level: float = CI_LEVEL) -> dict[str, Any]:
    """The geometric mean of per-round ratios with a Student-t CI on their logarithms.

    For interleaved rounds (A B A B ...): each round's ratio already pairs the two tools under the
    same drift, so the rounds are the independent units. Needs >= 2 positive ratios.
    """
    logs = np.log(np.asarray([float(r) for r in ratios], dtype=np.float64))
    if logs.size < 2 or not bool(np.all(np.isfinite(logs))):
        raise MeasureError("a ratio CI over rounds needs at least two positive, finite per-round ratios")
    mean = float(logs.mean())
    half = _t_quantile(level, logs.size - 1) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    return {
        "ratio": math.exp(mean),
        "lo": math.exp(mean - half),
        "hi": math.exp(mean + half),
        "level": level,
        "method": f"Student t on log per-round ratios, {logs.size} rounds",
        "rounds": int(logs.size),
    }


#: Two-sided 95 % Student t quantiles by degrees of freedom (1..30); larger df use the normal 1.96.
_T95 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def _t_quantile(level: float, df: int) -> float:
    if abs(level - 0.95) > 1e-9:
        raise MeasureError("only 95 % Student t intervals are tabulated")
    return _T95[df - 1] if df <= len(_T95) else 1.96


def agrees(ci: dict[str, Any], tolerance: float = 0.10) -> bool | None:
    """True when a ratio's whole CI lies within 1 ± tolerance; None when the CI is incomplete."""
    if ci.get("lo") is None or ci.get("hi") is None:
        return None
    return (1 - tolerance) <= float(ci["lo"]) and float(ci["hi"]) <= (1 + tolerance)


@dataclass(frozen=True)
class HistogramBucket:
    """Samples in [lo_ns, hi_ns): lo inclusive, hi exclusive."""

    lo_ns: int
    hi_ns: int
    count: int

    def to_dict(self) -> dict[str, int]:
        return {"lo_ns": self.lo_ns, "hi_ns": self.hi_ns, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistogramBucket:
        return cls(lo_ns=int(data["lo_ns"]), hi_ns=int(data["hi_ns"]), count=int(data["count"]))


def _bucket_bounds(index: int) -> tuple[int, int]:
    """Bucket 0 is [0, 1); bucket i >= 1 is [2**(i-1), 2**i)."""
    return (0 if index == 0 else 1 << (index - 1)), 1 << index


def log2_histogram(samples_ns: Iterable[Number] | np.ndarray) -> list[HistogramBucket]:
    """Log2-spaced histogram of the samples; see the module docstring for the bucket convention."""
    arr = as_samples(samples_ns)
    top = int(math.ceil(_number(arr.max())))
    # Edges 1, 2, 4, ..., 2**(bits-1): every sample is < 2**bits. Powers of two are exact in
    # both int64 and float64, so the comparison never rounds a sample into the wrong bucket.
    bits = max(top.bit_length(), 1)
    edges = np.array([1 << k for k in range(bits)], dtype=arr.dtype)
    index = np.searchsorted(edges, arr, side="right")
    counts = np.bincount(index, minlength=bits + 1)
    nonzero = np.flatnonzero(counts)
    first, last = int(nonzero[0]), int(nonzero[-1])
    return [HistogramBucket(*_bucket_bounds(i), int(counts[i])) for i in range(first, last + 1)]


@dataclass(frozen=True)
class OverheadAdjusted:
    """Samples with a stated timer overhead subtracted (clamped at 0), and what was done."""

    samples_ns: np.ndarray
    overhead_ns: int
    clamped: int  # samples that were below the overhead and became 0


def subtract_overhead(samples_ns: Iterable[Number] | np.ndarray, overhead_ns: Number) -> OverheadAdjusted:
    """Subtract `overhead_ns` from every sample, clamping at 0; count the clamped samples."""
    if overhead_ns is None or not math.isfinite(overhead_ns) or overhead_ns < 0:
        raise MeasureError(f"timer overhead must be a non-negative number of ns, not {overhead_ns!r}")
    arr = as_samples(samples_ns)
    if isinstance(overhead_ns, float) and not overhead_ns.is_integer():
        arr = arr.astype(np.float64)
    else:
        overhead_ns = int(overhead_ns)
    shifted = arr - np.asarray(overhead_ns, dtype=arr.dtype)
    clamped = int(np.count_nonzero(shifted < 0))
    return OverheadAdjusted(np.maximum(shifted, 0), overhead_ns, clamped)


@dataclass(frozen=True)
class LatencySummary:
    """One latency distribution, summarised. `to_dict()` is the JSON form (plain types only)."""

    count: int
    min_ns: Number
    max_ns: Number
    mean_ns: float
    percentiles: dict[str, Number]  # keys from PERCENTILES, values in ns
    histogram: tuple[HistogramBucket, ...]
    samples_ns: tuple[Number, ...] | None = None  # only when kept; after any overhead subtraction
    ci: dict[str, dict[str, Any]] = field(default_factory=dict)  # CI_PERCENTILES -> percentile_ci
    overhead_ns: Number | None = None  # None: not measured
    overhead_subtracted: bool = False
    clamped_to_zero: int = 0
    method: str = PERCENTILE_METHOD
    unit: str = "ns"

    def percentile(self, name: str) -> Number | None:
        """`summary.percentile("p99.9")`; None if this summary does not carry that percentile."""
        return self.percentiles.get(name)

    def reportable(self, name: str) -> Number | None:
        """The percentile if `count` supports printing it (`MIN_SAMPLES`), else None."""
        return self.percentiles.get(name) if supports(name, self.count) else None

    def overhead_note(self) -> str:
        """The sentence a report prints beside this distribution about the timer's own cost."""
        if self.overhead_ns is None:
            return "timer overhead not measured"
        if not self.overhead_subtracted:
            return f"timer overhead {self.overhead_ns} ns, not subtracted"
        note = f"timer overhead {self.overhead_ns} ns subtracted"
        if self.clamped_to_zero:
            note += f" ({self.clamped_to_zero} of {self.count} samples clamped to 0)"
        return note

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "unit": self.unit,
            "percentile_method": self.method,
            "count": self.count,
            "min": self.min_ns,
            "max": self.max_ns,
            "mean": self.mean_ns,
        }
        data.update(self.percentiles)
        data["reportable"] = list(reportable_percentiles(self.count))
        if self.ci:
            data["ci"] = {name: dict(ci) for name, ci in self.ci.items()}
        data["histogram"] = [b.to_dict() for b in self.histogram]
        data["overhead_ns"] = self.overhead_ns
        data["overhead_subtracted"] = self.overhead_subtracted
        data["clamped_to_zero"] = self.clamped_to_zero
        if self.samples_ns is not None:
            data["samples"] = list(self.samples_ns)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencySummary:
        """Read `to_dict()` output back; tolerant of summaries lacking newer optional keys."""
        if data.get("unit", "ns") != "ns":
            raise MeasureError(f"latency summary unit {data.get('unit')!r} is not ns")
        samples = data.get("samples")
        return cls(
            count=int(data["count"]),
            min_ns=data["min"],
            max_ns=data["max"],
            mean_ns=float(data["mean"]),
            percentiles={name: data[name] for name in PERCENTILES if name in data},
            histogram=tuple(HistogramBucket.from_dict(b) for b in data.get("histogram", [])),
            samples_ns=None if samples is None else tuple(samples),
            ci={str(k): dict(v) for k, v in (data.get("ci") or {}).items() if isinstance(v, dict)},
            overhead_ns=data.get("overhead_ns"),
            overhead_subtracted=bool(data.get("overhead_subtracted", False)),
            clamped_to_zero=int(data.get("clamped_to_zero", 0)),
            method=data.get("percentile_method", PERCENTILE_METHOD),
        )


def summarize_latency(
    samples_ns: Iterable[Number] | np.ndarray,
    *,
    keep_samples: bool = False,
    overhead_ns: Number | None = None,
    subtract: bool = False,
) -> LatencySummary:
    """Summarise latency samples (ns) as a `LatencySummary`; see the module docstring.

    `overhead_ns` is recorded beside the distribution; with `subtract=True` it is also subtracted
    from every sample (clamped at 0) before anything is computed. Raises MeasureError for empty
    or invalid samples, or `subtract=True` without an overhead.
    """
    clamped = 0
    if subtract:
        if overhead_ns is None:
            raise MeasureError("cannot subtract the timer overhead: none was given (overhead_ns)")
        adjusted = subtract_overhead(samples_ns, overhead_ns)
        arr, overhead_ns, clamped = adjusted.samples_ns, adjusted.overhead_ns, adjusted.clamped
    else:
        arr = as_samples(samples_ns)
    ordered = np.sort(arr)
    lo, hi = _number(ordered[0]), _number(ordered[-1])
    # np.mean accumulates integers in float64; clamp so rounding can never put mean outside [min, max].
    mean = min(max(float(np.mean(arr, dtype=np.float64)), float(lo)), float(hi))
    return LatencySummary(
        count=int(arr.size),
        min_ns=lo,
        max_ns=hi,
        mean_ns=mean,
        percentiles={name: percentile_value(ordered, name) for name in PERCENTILES},
        histogram=tuple(log2_histogram(arr)),
        samples_ns=tuple(arr.tolist()) if keep_samples else None,
        ci={name: percentile_ci(ordered, name) for name in CI_PERCENTILES},
        overhead_ns=overhead_ns,
        overhead_subtracted=subtract,
        clamped_to_zero=clamped,
    )


def summarize(
    samples_ns: Iterable[Number] | np.ndarray,
    *,
    keep_samples: bool = False,
    overhead_ns: Number | None = None,
    subtract: bool = False,
) -> dict[str, Any]:
    """`summarize_latency(...).to_dict()`: the JSON-ready dict of the results contract.

    Keys: unit ("ns"), percentile_method ("nearest-rank"), count, min, max, mean, p50, p90, p99,
    p99.9, p99.99, reportable (the percentiles the count supports), ci ({p50, p99}: {lo, hi, level,
    method}), histogram (list of {lo_ns, hi_ns, count}), overhead_ns, overhead_subtracted,
    clamped_to_zero, and samples (in the order given) only when `keep_samples`.
    """
    return summarize_latency(
        samples_ns, keep_samples=keep_samples, overhead_ns=overhead_ns, subtract=subtract
    ).to_dict()
