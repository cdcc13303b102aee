"""Is this machine steady enough to benchmark on? Slow episodes seen by a timed interpreter loop.

Why: pmemkit's host here is itself a VM (a Firecracker-style microVM on shared AMD EPYC, 2 vCPUs).
It has "slow episodes": windows of 0.5-2 s in which front-end-heavy code (a Python interpreter
loop, QEMU's TCG-translated code) runs 1.5-2.1x slower while `vmstat` steal stays 0. Inside the
guest they slow a CPU loop and O_DIRECT preads alike, so latency numbers differ between runs. This
module measures them on the host, before and after a benchmark, so a run can say whether the
machine was steady while it ran (pyperf's `pyperf system` checks are in the same spirit).

`summarise` is pure: batch start times and durations (ns) in, a `Steadiness` out. It groups the
batches into windows by start time, takes each window's median batch over the fastest batch of the
whole series (the window's slowdown factor), and finds the episodes: runs of consecutive windows
whose factor is >= the threshold. `probe` runs a fixed interpreter work unit for a while, times
each batch with `time.perf_counter_ns`, and summarises.

Given each batch's thread CPU time too, it says how much of the wall time the probe was on a CPU,
overall and in the slow windows: a slow window on CPU ~100 % of its time is the CPU itself running
slower (a slow episode); below that, waiting for a CPU (other work on the host) accounts for
wall / CPU time of its slowdown and the CPU's own slowness for the rest.
On the development host, 10 s of batches gave 99.6 % overall and 99.3 % in batches >= 1.5x the
fastest: its episodes are not descheduling.

The factors are relative to the series' own fastest batch, so a probe shorter than an episode and
wholly inside one reads steady (a 1 s probe here: fastest 2.61 ms, every window 1.6x it, against
2.07 ms at other times). The fastest batch's time is in `describe()` to compare across runs on one
machine; probe for several seconds (the episodes seen here last 0.5-6 s).
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pmemkit.measure.errors import MeasureError

NS_PER_S = 1_000_000_000
DEFAULT_WINDOW_S = 0.5
DEFAULT_THRESHOLD = 1.25
#: Iterations of the work unit per timed batch: the fastest batch took 2.1 ms (CPython 3.11.7) on
#: pmemkit's development host, an AMD EPYC microVM, and about 4.2 ms in its slow episodes; a few
#: ms anywhere, so a 0.5 s window holds a hundred-odd batches and the clock's resolution is moot.
UNIT_ITERATIONS = 20_000
#: Below this share of wall time on a CPU in the slow windows, `describe` says how much of their
#: slowdown waiting for a CPU (other work on the host) accounts for: wall / CPU time.
BUSY_ON_CPU = 0.9
#: Batches run and thrown away before timing starts (the dict's first fill, caches).
WARMUP_BATCHES = 5


@dataclass(frozen=True)
class Episode:
    """A run of consecutive slow windows: where it starts (s from the first batch), how many
    windows it spans and its slowest window's factor."""

    start_s: float
    windows: int
    window_s: float
    peak: float

    @property
    def length_s(self) -> float:
        return self.windows * self.window_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_s": round(self.start_s, 6),
            "length_s": round(self.length_s, 6),
            "windows": self.windows,
            "peak": round(self.peak, 4),
        }


@dataclass(frozen=True)
class Steadiness:
    """Per-window slowdown factors of a timed series and what they add up to.

    `factors[i]` is window i's median batch / the fastest batch of the series, or None when no
    batch started in that window (the process did not run: a gap, which also ends an episode).
    `on_cpu` and `on_cpu_slow` are thread CPU time / wall time over all batches and over the slow
    windows' batches (None when CPU time was not given, or no window was slow).
    """

    window_s: float
    threshold: float
    batches: int
    fastest_ns: int
    factors: tuple[float | None, ...]
    episodes: tuple[Episode, ...]
    source: str = ""
    on_cpu: float | None = None
    on_cpu_slow: float | None = None

    @property
    def measured(self) -> tuple[float, ...]:
        return tuple(f for f in self.factors if f is not None)

    @property
    def windows(self) -> int:
        """Windows with at least one batch (empty ones are not counted)."""
        return len(self.measured)

    @property
    def slow(self) -> int:
        return sum(f >= self.threshold for f in self.measured)

    @property
    def slow_fraction(self) -> float:
        return self.slow / self.windows

    @property
    def worst(self) -> float:
        return max(self.measured)

    @property
    def median(self) -> float:
        return statistics.median(self.measured)

    @property
    def longest_s(self) -> float:
        return max((e.length_s for e in self.episodes), default=0.0)

    @property
    def verdict(self) -> str:
        """ "steady" when no window reached the threshold, "unsteady" otherwise."""
        return "steady" if self.slow == 0 else "unsteady"

    def describe(self) -> str:
        """One line: the verdict, its threshold, how many windows were slow, the worst, the episodes."""
        slow = f"{self.slow} ({_pct(self.slow_fraction)})" if self.slow else "none"
        episodes = f"{len(self.episodes)} episode{'' if len(self.episodes) == 1 else 's'}"
        if self.episodes:
            episodes += f", longest {self.longest_s:.1f} s"
        line = (
            f"host steadiness: {self.verdict}: {self.windows} windows of {self.window_s:g} s, "
            f"{slow} ran >= {self.threshold:g}x slower than the fastest batch "
            f"({self.fastest_ns / 1e6:.2f} ms), "
            f"median {self.median:.2f}x, worst {self.worst:.2f}x; {episodes}"
        )
        if self.on_cpu is not None:
            line += f"; probe on CPU {_pct(self.on_cpu)} of the time"
            if self.on_cpu_slow is not None:
                line += f" ({_pct(self.on_cpu_slow)} in slow windows"
                if self.on_cpu_slow < BUSY_ON_CPU:
                    line += f": waiting for a CPU accounts for {1 / self.on_cpu_slow:.2f}x of their slowdown"
                line += ")"
        return line

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the summary, the per-window timeline and the episodes."""
        return {
            "verdict": self.verdict,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "windows": self.windows,
            "slow_windows": self.slow,
            "slow_fraction": round(self.slow_fraction, 4),
            "median_factor": round(self.median, 4),
            "worst_factor": round(self.worst, 4),
            "longest_episode_s": round(self.longest_s, 6),
            "batches": self.batches,
            "fastest_batch_ns": self.fastest_ns,
            "factors": [None if f is None else round(f, 4) for f in self.factors],
            "episodes": [e.to_dict() for e in self.episodes],
            "on_cpu": None if self.on_cpu is None else round(self.on_cpu, 4),
            "on_cpu_slow": None if self.on_cpu_slow is None else round(self.on_cpu_slow, 4),
            "source": self.source,
            "describe": self.describe(),
        }


def _pct(x: float) -> str:
    return f"{x:.0%}".replace("%", " %")


def _positive(name: str, value: float, fix: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise MeasureError(f"{name} must be a positive number, not {value!r}: {fix}")
    return float(value)


def check_window(window_s: float) -> float:
    return _positive("window", window_s, "give it in seconds, e.g. 0.5")


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise MeasureError(f"threshold must be a number above 1, not {threshold!r}: e.g. 1.25")
    if threshold <= 1:
        raise MeasureError(
            f"threshold must be above 1, not {threshold!r}: it is a slowdown factor over the "
            "fastest batch, and every window's median is at least 1x, e.g. 1.25"
        )
    return float(threshold)


def summarise(
    starts_ns: Sequence[int],
    durations_ns: Sequence[int],
    window_s: float = DEFAULT_WINDOW_S,
    threshold: float = DEFAULT_THRESHOLD,
    source: str = "",
    cpu_ns: Sequence[int] | None = None,
) -> Steadiness:
    """Batches (start, duration in ns) grouped into windows of `window_s` by start time (from the
    earliest start), each window's median batch over the fastest batch overall, and the runs of
    consecutive windows whose factor is >= `threshold`; with `cpu_ns` (each batch's thread CPU
    time), the share of wall time on a CPU, overall and in the slow windows. Raises MeasureError
    for no batches, a length mismatch, a non-positive duration, a negative CPU time, or a bad
    window or threshold."""
    window_s = check_window(window_s)
    threshold = check_threshold(threshold)
    if len(starts_ns) != len(durations_ns):
        raise MeasureError(
            f"{len(starts_ns)} start times but {len(durations_ns)} durations: one of each per batch"
        )
    if not durations_ns:
        raise MeasureError("no batches to summarise: time at least one")
    for d in durations_ns:
        if isinstance(d, bool) or not isinstance(d, int) or d <= 0:
            raise MeasureError(f"batch durations must be positive integer ns, not {d!r}")
    for s in starts_ns:
        if isinstance(s, bool) or not isinstance(s, int):
            raise MeasureError(f"batch start times must be integer ns, not {s!r}")
    if cpu_ns is not None:
        if len(cpu_ns) != len(durations_ns):
            raise MeasureError(f"{len(cpu_ns)} CPU times but {len(durations_ns)} durations: one of each")
        for c in cpu_ns:
            if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                raise MeasureError(f"batch CPU times must be non-negative integer ns, not {c!r}")
    window_ns = window_s * NS_PER_S
    first = min(starts_ns)
    index = [int((s - first) // window_ns) for s in starts_ns]
    by_window: dict[int, list[int]] = {}
    for i, d in zip(index, durations_ns, strict=True):
        by_window.setdefault(i, []).append(d)
    fastest = min(durations_ns)
    factors: list[float | None] = [None] * (max(by_window) + 1)
    for i, ds in by_window.items():
        factors[i] = statistics.median(ds) / fastest
    episodes: list[Episode] = []
    run_start: int | None = None
    for i, f in enumerate([*factors, None]):  # the trailing None closes a run at the end
        if f is not None and f >= threshold:
            if run_start is None:
                run_start = i
        elif run_start is not None:
            peak = max(f for f in factors[run_start:i] if f is not None)
            episodes.append(Episode(run_start * window_s, i - run_start, window_s, peak))
            run_start = None
    on_cpu = on_cpu_slow = None
    if cpu_ns is not None:
        on_cpu = sum(cpu_ns) / sum(durations_ns)
        slow_windows = {i for i, f in enumerate(factors) if f is not None and f >= threshold}
        slow = [(c, d) for i, c, d in zip(index, cpu_ns, durations_ns, strict=True) if i in slow_windows]
        on_cpu_slow = sum(c for c, _ in slow) / sum(d for _, d in slow) if slow else None
    return Steadiness(
        window_s,
        threshold,
        len(durations_ns),
        fastest,
        tuple(factors),
        tuple(episodes),
        source,
        on_cpu,
        on_cpu_slow,
    )


def work_unit(iterations: int = UNIT_ITERATIONS) -> int:
    """The timed unit: dict stores and integer arithmetic in the interpreter's loop."""
    d: dict[int, int] = {}
    for i in range(iterations):
        d[i & 1023] = i * 3 + (i >> 2)
    return len(d)


def probe(
    seconds: float, window_s: float = DEFAULT_WINDOW_S, threshold: float = DEFAULT_THRESHOLD
) -> Steadiness:
    """Run the interpreter work unit back to back for `seconds`, time each batch, and summarise.

    Why an interpreter loop and not a tight C loop: on pmemkit's development host (a microVM on
    shared AMD EPYC, 2 vCPUs) a tight ALU loop in C runs at nearly the same speed through the slow
    episodes, while a Python interpreter loop and QEMU's TCG-translated code (front-end heavy:
    many branches, indirect jumps, a large instruction footprint) run 1.5-2.1x slower in them.
    This loop of dict stores measured per-0.5 s-window medians of 1.05-1.15x the fastest batch
    most of the time and 1.9-2.3x in about a third of the windows over 40 s, with `vmstat` steal
    at 0. Interleaved batch by batch with a tight C loop (gcc -O2 via ctypes, a multiply-xor
    recurrence, about 2 ms a batch) for 30 s: this loop had 25 of 60 windows >= 1.25x (worst
    2.40x), the C loop none (median 1.03x, worst 1.19x in the same episodes). The guest's latency
    numbers follow the same episodes, so this is the code to time.

    Occupies one core for `seconds`: do not run it while a guest runs. The work unit is fixed
    (`UNIT_ITERATIONS`), not calibrated, so the fastest batch's time compares across runs.
    """
    seconds = _positive("seconds", seconds, "probe for at least a few windows, e.g. 20")
    window_s = check_window(window_s)
    threshold = check_threshold(threshold)
    if window_s > seconds:
        raise MeasureError(f"window {window_s:g} s is longer than the probe's {seconds:g} s: shorten it")
    for _ in range(WARMUP_BATCHES):
        work_unit()
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    starts: list[int] = []
    durations: list[int] = []
    cpu: list[int] = []
    begin = t = clock()
    deadline = begin + int(seconds * NS_PER_S)
    while t < deadline:
        c = cpu_clock()
        work_unit()
        c_end = cpu_clock()
        end = clock()
        starts.append(t)
        durations.append(end - t)
        cpu.append(c_end - c)
        t = end
    source = (
        f"{platform.python_implementation()} {platform.python_version()} interpreter loop of "
        f"{UNIT_ITERATIONS} dict stores per batch, timed with time.perf_counter_ns (CPU time: "
        f"time.thread_time_ns), {len(durations)} batches over {(t - begin) / NS_PER_S:.1f} s"
    )
    return summarise(starts, durations, window_s, threshold, source, cpu)
