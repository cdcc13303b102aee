"""Timing loops: time each call of a function, and calibrate what the loop itself costs.

`time_calls` times one call repeated unchanged: warm-up calls untimed, then each repetition
bracketed by two reads of `pmemkit.measure.clock.now_ns`, one sample per call. `calibrate_overhead`
(and through it fiocheck's loop-cost figure) is its one user. The experiments' latency loops do not
call it: they bracket each operation inline with the same clock (most iterations differ: the next
page to fault, the next offset or chunk; odirect's per-size loop also checks each call's byte
count); the overhead figure they carry, if any, is `clock.timer_overhead_ns` or their own loop
timed again on faulted pages, never this loop's calibrated cost.

`calibrate_overhead` runs that same loop around a no-op, in several batches, and reports the
median of the batch medians. That figure differs from `clock.timer_overhead_ns` on purpose:

- `timer_overhead_ns` is the *minimum* gap between two back-to-back clock reads: a lower bound on
  the clock alone, the best case that almost never happens twice, and it excludes everything else
  a timed sample includes.
- `calibrate_overhead` measures what a timed sample of *nothing* typically reads in the real loop:
  both clock reads, the Python call of `fn`, the subtraction and the list append. That is the
  amount by which each sample of real work is inflated, so it is the figure to report beside a
  distribution (and the one to subtract, when a report says it subtracted one). The median is
  robust to the interrupts, preemptions and (under TCG) translation-block flushes that make the
  tail; several batches guard against a one-off disturbance such as a frequency change in one.

Pure-ish: no I/O, but it calls the clock and the given function. `clock` parameters let tests
inject a fake clock; None means `pmemkit.measure.clock.now_ns`, looked up at call time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pmemkit.measure import clock as _clock
from pmemkit.measure.errors import MeasureError

Clock = Callable[[], int]


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MeasureError(f"{name} must be an integer >= {minimum}, not {value!r}")


def time_calls(
    fn: Callable[[], object], repetitions: int, warmup: int = 0, *, clock: Clock | None = None
) -> list[int]:
    """Call `fn()` `warmup` times untimed, then `repetitions` times timed; one ns sample per call.

    Samples are raw (no overhead subtracted), in call order. Raises MeasureError for
    repetitions < 1 or warmup < 0; exceptions from `fn` propagate.
    """
    _check_count("repetitions", repetitions, 1)
    _check_count("warmup", warmup, 0)
    read = clock if clock is not None else _clock.now_ns
    for _ in range(warmup):
        fn()
    samples: list[int] = []
    append = samples.append
    for _ in range(repetitions):
        start = read()
        fn()
        append(read() - start)
    return samples


def _noop() -> None:
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
    method: str = field(default="median of per-batch medians of time_calls(no-op)")

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

    Each batch is `time_calls(no-op, repetitions, warmup)`; its median sample is the batch's
    figure, and the (lower) median of those figures is `overhead_ns`.
    """
    _check_count("batches", batches, 1)
    _check_count("repetitions", repetitions, 1)
    _check_count("warmup", warmup, 0)
    medians: list[int] = []
    smallest: int | None = None
    for _ in range(batches):
        samples = time_calls(_noop, repetitions, warmup, clock=clock)
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
