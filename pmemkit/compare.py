"""`pmemkit compare RUN_A RUN_B`: every metric both runs measured, side by side (pyperf compare_to).

Why: a benchmark is believable when running it twice gives the same numbers, and a change is real
when the difference exceeds the noise. For each latency distribution present in both runs (same
experiment, operation, variant, target and place in the metrics) this prints the two p50s, the
ratio B / A with its 95 % CI and "significant" or "not significant"; bandwidths are listed with
their ratio and no verdict (a bandwidth row carries no CI).

The test, said plainly: each p50 carries its 95 % order-statistic CI (`measure.stats`); the
ratio's CI is the conservative interval [lo_B / hi_A, hi_B / lo_A]; the difference is
**significant when that interval excludes 1**, i.e. when the two p50 CIs do not overlap (a test
at well under 5 % for independent runs). A p50 without a two-sided CI (too few samples, or a
summary from before CIs were recorded) gets "n/a".

The machine's speed, said plainly: those CIs describe one burst of samples, so they cannot see the
machine itself running slower while the burst was taken (on the shared 2-core development VM the
whole guest runs 1.5-2x slower for 0.5-2 s at a time). Every `time_each` summary records a speed
reference (a timed no-op of the same loop just before and after its samples and between chunks of a
long burst; `timing.speed_reference_median_ns`, or for summaries recorded before the chunks the mean
of `timing.speed_reference_ns`). When both runs have it, `speed` is B's reference over A's; outside
1 ± 5 % (`SPEED_TOLERANCE`) the row also gets a **speed-adjusted** ratio and CI (the ratio divided
by `speed`, inferred: it assumes the operation slowed as the loop did). A significant difference in
the same direction as the speed's is then called "machine speed differed" instead of "significant"
unless its whole adjusted CI still lies beyond ±10 %: the runs differ, but the machine ran at a
different speed while the two bursts were taken, so the difference cannot be put on what was
measured. (Across the 161 p50s of two quick runs on the development VM, the log of the latency ratio
followed the log of the speed ratio with a correlation of 0.80 and a slope of 0.75.)
Metrics from fio or the compiled helper carry no reference and keep the plain test.

Runs whose provenance differs in a way that makes the comparison meaningless — a different guest
kernel release, different pmem devices (source, mode, map), a different accelerator — are
refused (`ProvenanceMismatch`, exit 2 in the CLI) unless `force`; a different profile is only noted.

Reads through `rundir.RunDir` (no link followed, bounded); prints nothing itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmemkit.rundir import RunDir, RunFiles
from pmemkit.scenario import Observation

SIGNIFICANCE_TEST = (
    "significant when the ratio's conservative 95 % CI [lo_B/hi_A, hi_B/lo_A] excludes 1 "
    "(the two p50 order-statistic CIs do not overlap)"
)
SPEED_TEST = (
    "where both p50s carry a speed reference differing by more than 5 %, the ratio is also divided by "
    "B's reference / A's (inferred: the operation slowed as the timing loop did); a significant "
    "difference in the speed's direction is called 'machine speed differed' unless its whole adjusted "
    "CI lies beyond ±10 %"
)
TOLERANCE = 0.10
#: Speed references within 1 ± this of each other are taken as the same speed (the reference's own
#: run-to-run spread at a steady speed is a few %).
SPEED_TOLERANCE = 0.05
SPEED_DIFFERED = "machine speed differed"


class CompareError(ValueError):
    """Bad input to compare (a run that cannot be read, nothing in common)."""


class ProvenanceMismatch(CompareError):
    """The two runs differ in kernel, pmem devices or accelerator: their numbers are not comparable."""


@dataclass(frozen=True)
class Metric:
    """One number of one run: a latency p50 (with its CI) or a bandwidth."""

    key: str
    kind: str  # "latency p50" | "bandwidth"
    unit: str
    value: float
    lo: float | None = None
    hi: float | None = None
    count: int | None = None
    #: The burst's speed reference (ns, `_speed_ref`: the median over the burst), None without one.
    speed_ref: float | None = None


@dataclass(frozen=True)
class Row:
    key: str
    kind: str
    unit: str
    a: Metric
    b: Metric
    ratio: float | None
    lo: float | None
    hi: float | None
    verdict: str  # "significant" | "not significant" | SPEED_DIFFERED | "n/a"
    speed: float | None = None  # B's speed reference / A's, when both have one
    adjusted: tuple[float, float, float] | None = None  # ratio, lo, hi divided by `speed` (inferred)

    def within(self, tolerance: float = TOLERANCE) -> bool | None:
        return None if self.ratio is None else abs(self.ratio - 1) <= tolerance

    def within_adjusted(self, tolerance: float = TOLERANCE) -> bool | None:
        """`within` on the speed-adjusted ratio where there is one, else on the ratio."""
        return abs(self.adjusted[0] - 1) <= tolerance if self.adjusted else self.within(tolerance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.key,
            "kind": self.kind,
            "unit": self.unit,
            "a": self.a.value,
            "a_ci": [self.a.lo, self.a.hi],
            "a_count": self.a.count,
            "b": self.b.value,
            "b_ci": [self.b.lo, self.b.hi],
            "b_count": self.b.count,
            "ratio": self.ratio,
            "ratio_ci": [self.lo, self.hi],
            "verdict": self.verdict,
            "within_10pct": self.within(),
            "speed_b_over_a": self.speed,
            "speed_adjusted_ratio": self.adjusted[0] if self.adjusted else None,
            "speed_adjusted_ci": list(self.adjusted[1:]) if self.adjusted else None,
        }


@dataclass
class Comparison:
    a: str
    b: str
    rows: list[Row]
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    only_a: int = 0
    only_b: int = 0

    def summary(self) -> dict[str, Any]:
        """Counts a benchmark engineer reads first: how many latency p50s moved, and how many within ±10 %."""
        latency = [r for r in self.rows if r.kind == "latency p50"]
        return {
            "metrics_compared": len(self.rows),
            "latency_metrics": len(latency),
            "latency_significant": sum(r.verdict == "significant" for r in latency),
            "latency_within_10pct": sum(bool(r.within()) for r in latency),
            "latency_within_10pct_and_not_significant": sum(
                bool(r.within()) and r.verdict == "not significant" for r in latency
            ),
            "latency_with_speed_reference": sum(r.speed is not None for r in latency),
            "latency_speed_differed": sum(r.verdict == SPEED_DIFFERED for r in latency),
            "latency_within_10pct_speed_adjusted": sum(bool(r.within_adjusted()) for r in latency),
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "test": SIGNIFICANCE_TEST,
            "speed_test": SPEED_TEST,
            "provenance": self.provenance,
            "notes": self.notes,
            "summary": self.summary(),
            "rows": [r.to_dict() for r in self.rows],
        }


# --- reading runs ------------------------------------------------------------------------------


def load(path: Path) -> RunFiles:
    """A run directory's parsed files; RunDirError (exit 2) for a path that is not a run."""
    with RunDir.open(Path(path)) as run:
        return run.load()


def _is_latency(value: Any) -> bool:
    return (
        isinstance(value, dict) and "percentile_method" in value and isinstance(value.get("p50"), int | float)
    )


def _row_label(row: dict[str, Any]) -> str:
    """What tells rows of one table apart: their string/int fields other than numbers measured."""
    keep = ("direction", "io_bytes", "pattern", "block_bytes", "chunk_bytes", "view", "path")
    return ",".join(f"{k}={row[k]}" for k in keep if k in row)


def _walk(metrics: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(place, dict) for every latency summary and bandwidth row in an observation's metrics."""
    for name, value in metrics.items():
        place = f"{prefix}{name}"
        if _is_latency(value):
            yield place, value
        elif isinstance(value, list):
            for row in value:
                if isinstance(row, dict):
                    label = f"{place}[{_row_label(row)}]"
                    if isinstance(row.get("bytes_per_s"), int | float):
                        yield label, row
                    yield from _walk({k: v for k, v in row.items() if _is_latency(v)}, f"{label}.")


def _observation_key(o: Observation) -> str:
    name = o.operation + (f":{o.variant}" if o.variant else "")
    return f"{o.scenario.label()} ({o.device}) {o.experiment}/{name}"


def metrics_of(run: RunFiles) -> dict[str, Metric]:
    """Every comparable number of a run, by key; an observation not `ok` contributes nothing."""
    found: dict[str, Metric] = {}
    for o in run.observations:
        if o.outcome != "ok" or not isinstance(o.metrics, dict):
            continue
        base = _observation_key(o)
        for place, value in _walk(o.metrics, ""):
            key = f"{base} {place}"
            if _is_latency(value):
                ci = (value.get("ci") or {}).get("p50") or {}
                found[key] = Metric(
                    key,
                    "latency p50",
                    "ns",
                    float(value["p50"]),
                    _float(ci.get("lo")),
                    _float(ci.get("hi")),
                    value.get("count"),
                    _speed_ref(value),
                )
            else:
                found[key] = Metric(key, "bandwidth", "B/s", float(value["bytes_per_s"]))
    return found


def _speed_ref(summary: dict[str, Any]) -> float | None:
    """A summary's speed reference (ns): the median over its burst, else the mean of before and after."""
    timing = summary.get("timing")
    if isinstance(timing, dict) and (median := _float(timing.get("speed_reference_median_ns"))):
        return median if median > 0 else None
    refs = timing.get("speed_reference_ns") if isinstance(timing, dict) else None
    if not isinstance(refs, list) or not refs:
        return None
    values = [_float(r) for r in refs]
    if any(v is None or v <= 0 for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def provenance_of(run: RunFiles) -> dict[str, Any]:
    """What must match for two runs to be comparable, and what is only noted."""
    kernels = sorted(
        {str(o.provenance.get("kernel")) for o in run.observations if o.provenance.get("kernel")}
    )
    pmem = run.plan.get("pmem") if isinstance(run.plan.get("pmem"), list) else []
    devices = sorted(
        f"{d.get('source')}:{d.get('mode') or '-'}:{d.get('map') or '-'}" for d in pmem if isinstance(d, dict)
    )
    accel = run.plan.get("accel") or run.environment.get("accel")
    return {"kernel": kernels, "pmem": devices, "accel": accel, "profile": run.plan.get("profile")}


MUST_MATCH = ("kernel", "pmem", "accel")


def check_provenance(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The meaningful differences, each as `name: A vs B`; empty when the runs are comparable."""
    return [
        f"{name}: {_shown(a.get(name))} vs {_shown(b.get(name))}"
        for name in MUST_MATCH
        if a.get(name) != b.get(name)
    ]


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


# --- comparing ---------------------------------------------------------------------------------


def compare_metric(a: Metric, b: Metric) -> Row:
    """The ratio B / A, its conservative CI and the verdict (see the module docstring)."""
    ratio = b.value / a.value if a.value else None
    lo = hi = None
    verdict = "n/a"
    speed = b.speed_ref / a.speed_ref if a.speed_ref and b.speed_ref else None
    adjusted = None
    if a.kind == "latency p50" and None not in (a.lo, a.hi, b.lo, b.hi) and a.lo and a.hi:
        lo, hi = b.lo / a.hi, b.hi / a.lo  # type: ignore[operator]
        verdict = "significant" if lo > 1 or hi < 1 else "not significant"
        if speed is not None and abs(speed - 1) > SPEED_TOLERANCE and ratio is not None:
            adjusted = (ratio / speed, lo / speed, hi / speed)
            same_way = (ratio - 1) * (speed - 1) > 0
            beyond = adjusted[1] > 1 + TOLERANCE or adjusted[2] < 1 - TOLERANCE
            if verdict == "significant" and same_way and not beyond:
                verdict = SPEED_DIFFERED
    return Row(a.key, a.kind, a.unit, a, b, ratio, lo, hi, verdict, speed, adjusted)


def compare_runs(run_a: RunFiles, run_b: RunFiles, *, force: bool = False) -> Comparison:
    """Compare two loaded runs; ProvenanceMismatch unless `force` when they are not comparable."""
    prov_a, prov_b = provenance_of(run_a), provenance_of(run_b)
    differences = check_provenance(prov_a, prov_b)
    notes = []
    if differences and not force:
        raise ProvenanceMismatch(
            "the runs are not comparable (" + "; ".join(differences) + "): use --force to compare anyway"
        )
    if differences:
        notes.append("compared with --force although " + "; ".join(differences))
    if prov_a.get("profile") != prov_b.get("profile"):
        notes.append(
            f"profiles differ ({prov_a.get('profile')} vs {prov_b.get('profile')}): sample counts differ"
        )
    ma, mb = metrics_of(run_a), metrics_of(run_b)
    common = [k for k in ma if k in mb and ma[k].kind == mb[k].kind]
    if not common:
        raise CompareError(f"the runs {run_a.name} and {run_b.name} have no metric in common")
    rows = [compare_metric(ma[k], mb[k]) for k in sorted(common)]
    return Comparison(
        run_a.name,
        run_b.name,
        rows,
        {"a": prov_a, "b": prov_b},
        notes,
        only_a=len(set(ma) - set(mb)),
        only_b=len(set(mb) - set(ma)),
    )


# --- rendering ---------------------------------------------------------------------------------


def _value(metric: Metric) -> str:
    from pmemkit.report.latency import format_bytes_per_s, format_duration_ns

    text = format_duration_ns(metric.value) if metric.unit == "ns" else format_bytes_per_s(metric.value)
    if metric.lo is not None and metric.hi is not None:
        text += f" [{format_duration_ns(metric.lo)}, {format_duration_ns(metric.hi)}]"
    return text


def _ratio(row: Row) -> str:
    if row.ratio is None:
        return "—"
    text = f"{row.ratio:.3f}×"
    if row.lo is not None and row.hi is not None:
        text += f" [{row.lo:.3f}, {row.hi:.3f}]"
    return text


def _summary_line(c: Comparison) -> str:
    s = c.summary()
    return (
        f"{s['metrics_compared']} metrics in both runs; latency p50s: {s['latency_metrics']}, "
        f"{s['latency_within_10pct']} within ±10 % ({s['latency_within_10pct_and_not_significant']} of them "
        f"not significant), {s['latency_significant']} significant, "
        f"{s['latency_speed_differed']} where the machine's speed differed as much "
        f"({s['latency_within_10pct_speed_adjusted']} within ±10 % once adjusted for speed, inferred; "
        f"{s['latency_with_speed_reference']} carry a speed reference); "
        f"only in A: {s['only_in_a']}, only in B: {s['only_in_b']}"
    )


def _speed(row: Row) -> str:
    if row.speed is None:
        return "—"
    text = f"{row.speed:.2f}×"
    if row.adjusted:
        text += f" → {row.adjusted[0]:.3f}× [{row.adjusted[1]:.3f}, {row.adjusted[2]:.3f}]"
    return text


def render_text(c: Comparison) -> str:
    lines = [f"A: {c.a}", f"B: {c.b}", f"test: {SIGNIFICANCE_TEST}", f"speed: {SPEED_TEST}", *c.notes, ""]
    for r in c.rows:
        speed = f" (speed {_speed(r)})" if r.speed is not None else ""
        lines.append(f"{r.key} ({r.kind}): {_value(r.a)} -> {_value(r.b)}: {_ratio(r)} {r.verdict}{speed}")
    lines += ["", _summary_line(c)]
    return "\n".join(lines) + "\n"


def render_markdown(c: Comparison) -> str:
    from pmemkit.report.tables import table

    rows = [[r.key, r.kind, _value(r.a), _value(r.b), _ratio(r), r.verdict, _speed(r)] for r in c.rows]
    lines = [
        f"## pmemkit compare: {c.a} → {c.b}",
        "",
        f"Ratio B / A with its 95 % CI; {SIGNIFICANCE_TEST}. Speed: {SPEED_TEST}.",
        *[f"Note: {n}" for n in c.notes],
        "",
        *table(
            ["metric", "kind", "A", "B", "B / A [95 % CI]", "verdict", "speed B / A → adjusted ratio"], rows
        ),
        "",
        _summary_line(c) + ".",
    ]
    return "\n".join(lines) + "\n"


def render_json(c: Comparison) -> str:
    return json.dumps(c.to_dict(), indent=2, sort_keys=True) + "\n"
