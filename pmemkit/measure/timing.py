"""The one timing loop every pmemkit latency goes through, and what that loop itself costs.

`time_each(op, samples, warmup, key=...)` is the loop: `op(i)` is called `warmup` times untimed,
then `samples` times, each call bracketed by two reads of `pmemkit.measure.clock.now_ns`; one
sample per call, in call order. `op` takes the iteration index because most timed iterations
differ (the next page to fault, the next offset, the next pass); an experiment only describes what
to time. The result, `Timed`, carries the samples, the optional return values of `op` (to check
byte counts after the loop, outside the timed path) and the metadata a report prints beside them:
warm-up, sample count, the clock, and the loop's calibrated overhead.

The overhead is calibrated once per `key` (an experiment passes its target's device, so once per
target) by `overhead_for`: the same indexed loop around a no-op `op`, several batches, the median
of the batch medians (`calibrate_overhead`). That figure differs from `clock.timer_overhead_ns` on
purpose:

- `timer_overhead_ns` is the *minimum* gap between two back-to-back clock reads: a lower bound on
  the clock alone, the best case that almost never happens twice, and it excludes everything else
  a timed sample includes.
- the calibrated overhead is what a timed sample of *nothing* typically reads in the real loop:
  both clock reads, the Python call of `op`, the subtraction and the append. That is the amount by
  which each sample of real work is inflated, so it is the figure to report beside a distribution
  (it is recorded, never silently subtracted). The median is robust to the interrupts, preemptions
  and (under TCG) translation-block flushes that make the tail; several batches guard against a
  one-off disturbance.

The machine's speed is not constant, so every `time_each` also takes a **speed reference** just
before and just after its samples (`speed_reference_ns`: the median of 200 timed no-op calls of
the same loop, about a millisecond under TCG). On a shared host the whole VM can run 1.5-2x slower
for 0.5-2 s at a time (measured on the 2-core development VM: a Python loop on the host and a C
loop inside the guest both slow down, `steal` stays 0), so a burst of samples taken in such an
episode reads up to twice the latency of the same burst a second later. The reference does not
correct anything here; it is recorded (`Timed.metadata`) so that `pmemkit compare` can tell a
difference between two runs from a difference in the machine's speed while each burst was taken.

`time_calls(fn, repetitions, warmup)` is the same loop for an argument-less `fn`, kept for callers
that time one call repeated unchanged.

Pure-ish: no I/O, but it calls the clock and the given function. `clock` parameters let tests
inject a fake clock; None means `pmemkit.measure.clock.now_ns`, looked up at call time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pmemkit.measure import clock as _clock
from pmemkit.measure.errors import MeasureError

Clock = Callable[[], int]


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MeasureError(f"{name} must be an integer >= {minimum}, not {value!r}")


def _reader(clock: Clock | None) -> Clock:
    return clock if clock is not None else _clock.now_ns


def time_calls(
    fn: Callable[[], object], repetitions: int, warmup: int = 0, *, clock: Clock | None = None
) -> list[int]:
    """Call `fn()` `warmup` times untimed, then `repetitions` times timed; one ns sample per call.

    Samples are raw (no overhead subtracted), in call order. Raises MeasureError for
    repetitions < 1 or warmup < 0; exceptions from `fn` propagate.
    """
    _check_count("repetitions", repetitions, 1)
    _check_count("warmup", warmup, 0)
    read = _reader(clock)
    for _ in range(warmup):
        fn()
    samples: list[int] = []
    append = samples.append
    for _ in range(repetitions):
        start = read()
        fn()
        append(read() - start)
    return samples


def _indexed_samples(
    op: Callable[[int], object],
    samples: int,
    warmup: int,
    read: Clock,
    results: list[object] | None,
    *,
    between: Callable[[], object] | None = None,
    every: int = 0,
) -> list[int]:
    """The loop itself: `op(i)` for i < warmup untimed, then for i < samples timed (one sample each).

    Warm-up indices wrap modulo `samples`, so an `op` indexing a list of `samples` offsets stays in
    range. Kept minimal: every line inside the timed bracket is part of the calibrated overhead.
    With `every` > 0, `between()` is called untimed after every `every` samples (the speed
    reference inside a long burst); the timed bracket is the same either way.
    """
    for i in range(warmup):
        op(i % samples)
    out: list[int] = []
    append = out.append
    step = every if every > 0 and between is not None else samples
    for low in range(0, samples, step):
        if low and between is not None:
            between()
        high = min(low + step, samples)
        if results is None:
            for i in range(low, high):
                start = read()
                op(i)
                append(read() - start)
        else:
            keep = results.append
            for i in range(low, high):
                start = read()
                value = op(i)
                append(read() - start)
                keep(value)
    return out


def _noop_indexed(i: int) -> None:
    return None


@dataclass(frozen=True)
class OverheadCalibration:
    """What timing a no-op in the `time_calls` loop costs, in ns."""

    overhead_ns: int  # median of the batch medians (lower median for an even count)
    batch_medians_ns: tuple[int, ...]
    min_ns: int  # smallest single sample seen, for comparison with clock.timer_overhead_ns
    batches: int
    repetitions: int
    warmup: int
    method: str = field(default="median of per-batch medians of time_each(no-op)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "overhead_ns": self.overhead_ns,
            "batch_medians_ns": list(self.batch_medians_ns),
            "min_ns": self.min_ns,
            "batches": self.batches,
            "repetitions": self.repetitions,
            "warmup": self.warmup,
            "method": self.method,
        }


def calibrate_overhead(
    batches: int = 5,
    repetitions: int = 1000,
    warmup: int = 100,
    *,
    clock: Clock | None = None,
) -> OverheadCalibration:
    """Measure the cost of the `time_calls` loop around a no-op; see the module docstring.

    Each batch is the `time_each` loop around a no-op `op(i)` (`repetitions` samples after `warmup`
    untimed calls); its median sample is the batch's figure, and the (lower) median of those
    figures is `overhead_ns`.
    """
    _check_count("batches", batches, 1)
    _check_count("repetitions", repetitions, 1)
    _check_count("warmup", warmup, 0)
    medians: list[int] = []
    smallest: int | None = None
    for _ in range(batches):
        samples = _indexed_samples(_noop_indexed, repetitions, warmup, _reader(clock), None)
        medians.append(int(statistics.median_low(samples)))
        low = min(samples)
        smallest = low if smallest is None else min(smallest, low)
    return OverheadCalibration(
        overhead_ns=int(statistics.median_low(medians)),
        batch_medians_ns=tuple(medians),
        min_ns=int(smallest or 0),
        batches=batches,
        repetitions=repetitions,
        warmup=warmup,
    )


#: Calibrations done so far in this process, by key (a target's device): one per target.
_CALIBRATIONS: dict[str, OverheadCalibration] = {}
#: The calibration run per target: 5 batches of 1 000 no-op samples (about 10 ms natively, well
#: under a second under TCG), enough that the median of medians is stable to a few ns.
CALIBRATION = {"batches": 5, "repetitions": 1000, "warmup": 100}


def overhead_for(key: str, *, clock: Clock | None = None) -> OverheadCalibration:
    """The loop's calibrated overhead for `key`, measured on first use and reused after (once per target)."""
    if not isinstance(key, str) or not key:
        raise MeasureError(f"an overhead calibration key must be a non-empty string, not {key!r}")
    found = _CALIBRATIONS.get(key)
    if found is None:
        found = calibrate_overhead(**CALIBRATION, clock=clock)
        _CALIBRATIONS[key] = found
    return found


#: The speed reference around every timed loop: the calibration's no-op loop, short (about 1 ms
#: under TCG, tens of µs natively), so it can be taken twice per `time_each` call.
REFERENCE = {"repetitions": 200, "warmup": 20}
#: Inside a burst, a shorter reference after every `every` samples: the machine's speed changes
#: within 100 ms bursts too (measured: slow runs of one 1.3 ms batch up to 14 s on the dev VM).
CHUNK_REFERENCE = {"repetitions": 32, "warmup": 4, "every": 64}
REFERENCE_METHOD = (
    "median of 200 timed no-op calls of time_each's loop just before and after the samples, and of 32 "
    "after every 64 samples (untimed, between samples); speed_reference_median_ns is the median of all"
)


def speed_reference_ns(
    *,
    clock: Clock | None = None,
    repetitions: int = REFERENCE["repetitions"],
    warmup: int = REFERENCE["warmup"],
) -> int:
    """What a timed no-op reads right now (ns): the loop's current speed, for `Timed.speed_reference_ns`."""
    taken = _indexed_samples(_noop_indexed, repetitions, warmup, _reader(clock), None)
    return int(statistics.median_low(taken))


def forget_calibrations() -> None:
    """Drop every cached calibration (tests; a new run in the same process)."""
    _CALIBRATIONS.clear()


@dataclass(frozen=True)
class Timed:
    """What `time_each` returns: the samples (ns, raw, call order) and how they were taken."""

    samples_ns: np.ndarray
    warmup: int
    overhead: OverheadCalibration
    key: str
    results: tuple[object, ...] | None = None
    #: `speed_reference_ns()` just before and just after the samples (None when not taken).
    speed_reference_ns: tuple[int, int] | None = None
    #: The shorter references taken between chunks of a long burst, in order.
    speed_chunks_ns: tuple[int, ...] = ()

    @property
    def count(self) -> int:
        return int(self.samples_ns.size)

    @property
    def total_ns(self) -> int:
        """Sum of the timed samples: the time spent inside the brackets (bandwidth over passes)."""
        return int(self.samples_ns.sum())

    def metadata(self) -> dict[str, Any]:
        """JSON-ready: which loop, how many samples after how many warm-up calls, and its overhead."""
        return {
            "loop": "pmemkit.measure.timing.time_each",
            "clock": "time.perf_counter_ns",
            "samples": self.count,
            "warmup": self.warmup,
            "overhead_ns": self.overhead.overhead_ns,
            "overhead_method": self.overhead.method,
            "overhead_calibrated_for": self.key,
            "overhead_subtracted": False,
            **(
                {
                    "speed_reference_ns": list(self.speed_reference_ns),
                    "speed_reference_chunks_ns": list(self.speed_chunks_ns),
                    "speed_reference_median_ns": statistics.median(
                        [*self.speed_reference_ns, *self.speed_chunks_ns]
                    ),
                    "speed_reference_method": REFERENCE_METHOD,
                }
                if self.speed_reference_ns
                else {}
            ),
        }

    def summary(self, *, keep_samples: bool = False) -> dict[str, Any]:
        """The results-contract summary of the samples, with CIs and this loop's metadata under `timing`."""
        from pmemkit.measure.stats import summarize

        data = summarize(self.samples_ns, keep_samples=keep_samples, overhead_ns=self.overhead.overhead_ns)
        data["timing"] = self.metadata()
        return data


def time_each(
    op: Callable[[int], object],
    samples: int,
    warmup: int = 0,
    *,
    key: str = "default",
    collect: bool = False,
    clock: Clock | None = None,
) -> Timed:
    """Time `op(i)` for i in range(samples) after `warmup` untimed calls; see the module docstring.

    `key` names what the overhead is calibrated for (once per key, `overhead_for`); `collect`
    keeps each call's return value in `Timed.results` (checked by the caller after the loop).
    Raises MeasureError for samples < 1 or warmup < 0; exceptions from `op` propagate.
    """
    _check_count("samples", samples, 1)
    _check_count("warmup", warmup, 0)
    calibration = overhead_for(key, clock=clock)
    results: list[object] | None = [] if collect else None
    chunks: list[int] = []
    chunk = CHUNK_REFERENCE

    def between() -> None:
        chunks.append(
            speed_reference_ns(clock=clock, repetitions=chunk["repetitions"], warmup=chunk["warmup"])
        )

    before = speed_reference_ns(clock=clock)
    taken = _indexed_samples(
        op, samples, warmup, _reader(clock), results, between=between, every=chunk["every"]
    )
    after = speed_reference_ns(clock=clock)
    return Timed(
        samples_ns=np.asarray(taken, dtype=np.int64),
        warmup=warmup,
        overhead=calibration,
        key=key,
        results=None if results is None else tuple(results),
        speed_reference_ns=(before, after),
        speed_chunks_ns=tuple(chunks),
    )
