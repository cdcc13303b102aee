"""The run's headline numbers: a handful of figures a person reads before any table.

Why a module: report.html and report.md both open with them, so they are computed once. Each
number is a range over the targets of one kind (DAX, page cache, anonymous), with the sample
count and the provenance it was measured under; formatting is `report.latency`'s.
Pure: observations in, rows out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pmemkit.report.latency import format_bytes_per_s, format_duration_ns, format_ratio
from pmemkit.report.markdown import Joined, RunContents, anon_rates, anon_ratio, provenance_caption
from pmemkit.scenario import Observation


@dataclass(frozen=True)
class Headline:
    """One headline: what, the figure per kind of target, and where it comes from."""

    what: str
    values: list[tuple[str, str]]  # (kind of target, figure)
    provenance: str

    def text(self) -> str:
        return "; ".join(f"{kind} {value}" for kind, value in self.values)


def _num(value: Any) -> float | None:
    """A finite number, or None (a percentile withheld for too few samples, a damaged value)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _kind(obs: Observation) -> str:
    return Joined(obs, None).kind


def _by_kind(pairs: list[tuple[Observation, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for obs, value in pairs:
        out.setdefault(_kind(obs), []).append(value)
    return out


def _span(values: list[float], fmt: Any) -> str:
    lo, hi = min(values), max(values)
    text = fmt(lo) if lo == hi else f"{fmt(lo)} – {fmt(hi)}"
    return text + (f" ({len(values)} targets)" if len(values) > 1 else "")


def _ok(run: RunContents, operation_prefix: str) -> list[Observation]:
    return [
        o
        for o in run.observations
        if o.outcome == "ok" and isinstance(o.metrics, dict) and str(o.operation).startswith(operation_prefix)
    ]


def fault_latency(run: RunContents) -> Headline | None:
    found = [(o, o.metrics["latency"]) for o in _ok(run, "first-touch-write") if "latency" in o.metrics]
    if not found:
        return None
    pairs = [(o, v) for o, lat in found if (v := _num(lat.get("p50"))) is not None]
    if not pairs:
        return None
    groups = _by_kind(pairs)
    counts = sorted({int(lat.get("count", 0)) for _, lat in found})
    return Headline(
        "first-touch write fault, p50",
        [(kind, _span(v, format_duration_ns)) for kind, v in groups.items()],
        f"{provenance_caption(run)}; {', '.join(map(str, counts))} samples (4 KiB pages) per target",
    )


def odirect_latency(run: RunContents, size: int = 4096) -> Headline | None:
    pairs, counts = [], set()
    for o in _ok(run, "odirect-latency-"):
        for r in o.metrics.get("rows", []):
            value = _num(r.get("latency", {}).get("p50"))
            if r.get("io_bytes") == size and r.get("direction") == "read-into" and value is not None:
                pairs.append((o, value))
                counts.add(int(r["latency"].get("count", 0)))
    if not pairs:
        return None
    return Headline(
        f"O_DIRECT {size >> 10} KiB read into the mapping, p50",
        [(kind, _span(v, format_duration_ns)) for kind, v in _by_kind(pairs).items()],
        f"{provenance_caption(run)}; {', '.join(map(str, sorted(counts)))} samples per target",
    )


def bandwidth(run: RunContents, pattern: str = "seq-read", block: int = 1 << 20) -> Headline | None:
    found = _ok(run, "mmap-bandwidth")
    rates, ratios = [], []
    baselines = anon_rates(found)
    for o in found:
        for r in o.metrics.get("rows", []):
            value = _num(r.get("bytes_per_s"))
            if r.get("pattern") == pattern and r.get("block_bytes") == block and value:
                rates.append((o, value))
                ratio, _ = anon_ratio(r, baselines)
                if o.scenario.mode != "anonymous" and (ratio := _num(ratio)) is not None:
                    ratios.append(ratio)
    if not rates:
        return None
    values = [(kind, _span(v, format_bytes_per_s)) for kind, v in _by_kind(rates).items()]
    if ratios:
        values.append(("÷ anonymous", _span(ratios, format_ratio)))
    return Headline(
        f"{pattern} bandwidth through the mapping, {block >> 10} KiB blocks",
        values,
        f"{provenance_caption(run)}; per target, passes interleaved with an anonymous twin (fastest pass "
        "of each side) where recorded",
    )


def fio_agreement(run: RunContents) -> Headline | None:
    p50 = []
    measured: set[str] = set()  # what pmemkit's figure is: the helper's, the tracepoints' or the caller's
    for o in _ok(run, "fio-odirect-randread"):
        comparison = o.metrics.get("comparison", {})
        if isinstance(comparison.get("pmemkit_latency"), str):
            measured.add(comparison["pmemkit_latency"])
        if (value := _num(comparison.get("p50", {}).get("ratio"))) is not None:
            p50.append(value)
    if not p50:  # no bandwidth ratio: not measured alike (markdown.RANDREAD_BW_DROPPED)
        return None
    values = [("p50 latency pmemkit ÷ fio", _span(p50, format_ratio))]
    return Headline(
        "pmemkit beside fio, O_DIRECT 4 KiB random read (target ±10 %)",
        values,
        f"{provenance_caption(run)}; same file, same boot, same CPU, rounds interleaved; pmemkit's figure: "
        f"{'; '.join(sorted(measured)) or 'not recorded'}; "
        "fio's: clat (it also spans fio's own work per I/O)",
    )


def headlines(run: RunContents) -> list[Headline]:
    found = [
        fault_latency(run),
        odirect_latency(run),
        bandwidth(run, block=4096),
        bandwidth(run),
        fio_agreement(run),
    ]
    return [h for h in found if h is not None]
