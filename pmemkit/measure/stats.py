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
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from pmemkit.measure.errors import MeasureError

PERCENTILE_METHOD = "nearest-rank"
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
    overhead_ns: Number | None = None  # None: not measured
    overhead_subtracted: bool = False
    clamped_to_zero: int = 0
    method: str = PERCENTILE_METHOD
    unit: str = "ns"

    def percentile(self, name: str) -> Number | None:
        """`summary.percentile("p99.9")`; None if this summary does not carry that percentile."""
        return self.percentiles.get(name)

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
    p99.9, p99.99, histogram (list of {lo_ns, hi_ns, count}), overhead_ns, overhead_subtracted,
    clamped_to_zero, and samples (in the order given) only when `keep_samples`.
    """
    return summarize_latency(
        samples_ns, keep_samples=keep_samples, overhead_ns=overhead_ns, subtract=subtract
    ).to_dict()
