"""The report's plots, drawn with matplotlib (Agg, no display) as PNG, each with its provenance line.

Why matplotlib: log axes, legends and layout are solved problems there; nothing is drawn by hand.
Pure: observations in, PNG bytes out (no file I/O; `pmemkit.rundir` writes them). Every plot says
under its title where its numbers come from (kernel, accelerator, profile, sample counts, emulated
pmem is DRAM); a plot with no data is not drawn at all.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pmemkit.report.latency import format_duration_ns
from pmemkit.report.markdown import (
    PHASE_ORDER,
    RunContents,
    anon_rates,
    anon_ratio,
    provenance_caption,
    target_label,
)
from pmemkit.scenario import Observation

WIDTH_IN, DPI = 9.0, 90


@dataclass
class Plot:
    """One plot: file name (plots/NAME), title, provenance line, and its figure, rasterised to PNG
    only when asked (`png`): the report checks a run's shape by rendering it without drawing."""

    name: str
    title: str
    provenance: str
    figure: Figure = field(repr=False)
    key: str = field(default="", repr=False)  # everything the figure was made from, see `_key`
    _png: bytes | None = field(default=None, repr=False)

    @property
    def png(self) -> bytes:
        """The PNG; one drawn before from the same inputs is reused (re-rendering a run, or trying
        a damaged run's parts one at a time, draws the same plots again)."""
        if self._png is None:
            self._png = _DRAWN.get(self.key) if self.key else None
        if self._png is None:
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", metadata={"Software": None})
            self._png = buf.getvalue()
            if self.key:
                _DRAWN[self.key] = self._png
                while len(_DRAWN) > MAX_DRAWN:
                    del _DRAWN[next(iter(_DRAWN))]
        return self._png


#: PNGs by the inputs they were drawn from (oldest dropped first).
_DRAWN: dict[str, bytes] = {}
MAX_DRAWN = 32


def _key(name: str, provenance: str, found: list[Observation], extra: Any = None) -> str:
    """Every input a plot function reads: its name, its provenance line and the observations'
    fields it draws from (a plot function reads nothing else but constants)."""
    parts = [
        (o.operation, o.scenario.label(), o.scenario.mode, o.scenario.stack, o.device, o.metrics)
        for o in found
    ]
    return repr((name, provenance, parts, extra))


def _ok(run: RunContents, predicate: Callable[[Observation], bool]) -> list[Observation]:
    return [o for o in run.observations if o.outcome == "ok" and isinstance(o.metrics, dict) and predicate(o)]


def _figure(
    title: str, provenance: str, height: float = 4.2, left_in: float = 0.85, bottom_in: float = 0.6
) -> tuple[Figure, Any]:
    """A figure with fixed margins in inches (a layout engine costs more than the drawing)."""
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    fig.subplots_adjust(
        left=left_in / WIDTH_IN, right=1 - 0.25 / WIDTH_IN, top=1 - 0.85 / height, bottom=bottom_in / height
    )
    ax = fig.add_subplot()
    ax.set_prop_cycle(color=colormaps["tab20"].colors)  # up to 20 targets, no colour repeated
    fig.suptitle(title, fontsize=11, fontweight="bold", y=1 - 0.08 / height, va="top")
    ax.set_title(textwrap.fill(provenance, 130), fontsize=7.5, color="#444")
    return fig, ax


def _log_axis(ax: Any, which: str, unit: str) -> None:
    """A log axis labelled in readable units (`10 µs`, `4 KiB`), not 10^x (mathtext costs the most)."""
    base = 2 if unit == "bytes" else 10
    (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=base)
    axis = ax.xaxis if which == "x" else ax.yaxis
    fmt = format_duration_ns if unit == "ns" else _bytes
    if unit == "ns":  # 1-2-5 steps: a range under one decade still gets labelled ticks
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: fmt(value)))
    axis.set_minor_formatter(NullFormatter())


def _bytes(value: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g} B"


def _legend(ax: Any, **kwargs: Any) -> None:
    """A legend only when something is labelled (matplotlib warns on an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _cdf(latency: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Cumulative fraction at each log2 bucket's upper edge, from the summary's histogram."""
    buckets = [b for b in latency.get("histogram", []) if b.get("count") is not None]
    total = sum(int(b["count"]) for b in buckets)
    xs, ys, seen = [], [], 0
    if total <= 0:
        return xs, ys
    xs.append(float(buckets[0]["lo_ns"]) or 1.0)
    ys.append(0.0)
    for b in buckets:
        seen += int(b["count"])
        xs.append(float(b["hi_ns"]))
        ys.append(seen / total)
    return xs, ys


def latency_cdf(run: RunContents, operation: str, what: str) -> Plot | None:
    """CDF of one latency per target on a log axis (from the log2-bucket histograms the guest keeps)."""
    found = _ok(run, lambda o: o.operation == operation and isinstance(o.metrics.get("latency"), dict))
    if not found:
        return None
    counts = sorted({int(o.metrics["latency"].get("count", 0)) for o in found})
    provenance = f"{provenance_caption(run)}; samples per target: {', '.join(map(str, counts))}; log2 buckets"
    title = f"{what}: latency CDF per target"
    fig, ax = _figure(title, provenance, 4.6)
    drawn = 0
    for o in found:
        xs, ys = _cdf(o.metrics["latency"])
        if xs:
            ax.step(xs, ys, where="post", label=target_label(o), linewidth=1.2)
            drawn += 1
    if not drawn:
        return None
    _log_axis(ax, "x", "ns")
    ax.set_xlabel("latency (log scale; bucket upper edges)")
    ax.set_ylabel("fraction of samples ≤ x")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, fontsize=6.5, loc="lower right")
    name = f"{operation}-cdf.png"
    return Plot(name, title, provenance, fig, _key(name, provenance, found))


def odirect_by_size(run: RunContents) -> Plot | None:
    """O_DIRECT p50 latency against I/O size, one line per target and direction (log-log)."""
    found = _ok(run, lambda o: o.operation.startswith("odirect-latency-") and bool(o.metrics.get("rows")))
    if not found:
        return None
    counts = sorted({int(r["latency"].get("count", 0)) for o in found for r in o.metrics["rows"]})
    provenance = (
        f"{provenance_caption(run)}; p50 of {', '.join(map(str, counts))} samples per point; "
        "file on the root disk, buffer in the target's mapping"
    )
    title = "O_DIRECT latency by I/O size (p50)"
    fig, ax = _figure(title, provenance, 4.6, left_in=1.2)
    colors = colormaps["tab20"].colors  # a dark/light pair per target: read dark, write light
    for k, o in enumerate(found):
        for side, (direction, style) in enumerate((("read-into", "-"), ("write-from", "--"))):
            rows = sorted(
                (r for r in o.metrics["rows"] if r.get("direction") == direction), key=lambda r: r["io_bytes"]
            )
            points = [(r["io_bytes"], r["latency"].get("p50")) for r in rows]
            points = [(x, y) for x, y in points if isinstance(y, int | float)]
            if points:
                ax.plot(
                    [x for x, _ in points],
                    [y for _, y in points],
                    style,
                    color=colors[(2 * k + side) % len(colors)],
                    marker="o",
                    markersize=3,
                    label=f"{target_label(o)} {direction}",
                    linewidth=1,
                )
    _log_axis(ax, "x", "bytes")
    _log_axis(ax, "y", "ns")
    ax.set_xlabel("I/O size (log2 scale)")
    ax.set_ylabel("p50 latency (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, fontsize=6, ncols=2)
    return Plot(
        "odirect-latency-by-size.png",
        title,
        provenance,
        fig,
        _key("odirect-latency-by-size.png", provenance, found),
    )


def bandwidth_vs_anon(run: RunContents) -> Plot | None:
    """Bandwidth through each mapping as a multiple of anonymous memory's, per access pattern."""
    found = _ok(run, lambda o: o.operation == "mmap-bandwidth" and bool(o.metrics.get("rows")))
    anon = anon_rates(found)
    interleaved = {
        (r["pattern"], r["block_bytes"]) for o in found for r in o.metrics["rows"] if "ratio_vs_anon" in r
    }
    keys = set(anon) | interleaved
    if not found or not keys:
        return None
    block = max(b for _, b in keys)
    patterns = sorted({p for p, b in keys if b == block and "numpy.memmap" not in p})
    others = [o for o in found if o.scenario.mode != "anonymous"]
    if not others:
        return None
    provenance = (
        f"{provenance_caption(run)}; memcpy of {block >> 10} KiB blocks; 1.0 = anonymous memory in the "
        "same VM (an anonymous twin interleaved in the same loop, fastest pass of each side, where recorded)"
    )
    title = f"Bandwidth through the mapping vs anonymous memory ({block >> 10} KiB blocks)"
    fig, ax = _figure(title, provenance, 1.6 + 0.16 * len(others) * max(1, len(patterns)), left_in=2.6)
    height = 0.8 / len(patterns)
    for i, pattern in enumerate(patterns):
        ys, xs = [], []
        for k, o in enumerate(others):
            row = next(
                (r for r in o.metrics["rows"] if (r["pattern"], r["block_bytes"]) == (pattern, block)),
                None,
            )
            ratio = anon_ratio(row, anon)[0] if row is not None else None
            if ratio is not None:
                ys.append(k + i * height)
                xs.append(ratio)
        ax.barh(ys, xs, height=height, label=pattern)
    ax.set_yticks(
        [k + 0.4 - height / 2 for k in range(len(others))], [target_label(o) for o in others], fontsize=7
    )
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("bandwidth ÷ anonymous memory's (same pattern, same block)")
    ax.grid(True, axis="x", alpha=0.3)
    _legend(ax, fontsize=7)
    return Plot(
        "bandwidth-vs-anonymous.png",
        title,
        provenance,
        fig,
        _key("bandwidth-vs-anonymous.png", provenance, found),
    )


def d2d_throughput(run: RunContents) -> Plot | None:
    """Device-to-device copy throughput per path and chunk size."""
    found = _ok(run, lambda o: o.operation.startswith("d2d-") and bool(o.metrics.get("rows")))
    if not found:
        return None
    provenance = f"{provenance_caption(run)}; one copy per chunk size, checksummed"
    title = "Device-to-device copy throughput per path"
    fig, ax = _figure(title, provenance, 1.8 + 0.35 * len(found), left_in=2.6)
    chunks = sorted({r["chunk_bytes"] for o in found for r in o.metrics["rows"]})
    height = 0.8 / max(1, len(chunks))
    for i, chunk in enumerate(chunks):
        ys, xs = [], []
        for k, o in enumerate(found):
            for r in o.metrics["rows"]:
                if r["chunk_bytes"] == chunk:
                    ys.append(k + i * height)
                    xs.append(r["bytes_per_s"] / (1 << 20))
        ax.barh(ys, xs, height=height, label=f"{chunk >> 10} KiB chunks")
    ax.set_yticks(
        [k + 0.4 - height / 2 for k in range(len(found))],
        [f"{o.operation.removeprefix('d2d-')} ({o.device})" for o in found],
        fontsize=7,
    )
    ax.invert_yaxis()
    ax.set_xlabel("MiB/s")
    ax.grid(True, axis="x", alpha=0.3)
    _legend(ax, fontsize=7)
    return Plot("d2d-throughput.png", title, provenance, fig, _key("d2d-throughput.png", provenance, found))


def stack_cost(run: RunContents) -> Plot | None:
    """O_DIRECT copy through an md/dm stack as a multiple of the bare device's throughput."""
    found = _ok(run, lambda o: o.operation == "stack-copy" and "ratio_write" in o.metrics)
    if not found:
        return None
    provenance = f"{provenance_caption(run)}; 1.0 = the same copy on the bare pmem device"
    title = "Copy through a RAID / device-mapper stack vs the bare device"
    fig, ax = _figure(title, provenance, 1.8 + 0.4 * len(found), left_in=2.0)
    for i, key in enumerate(("ratio_write", "ratio_read")):
        xs = [float(o.metrics.get(key) or 0.0) for o in found]
        ax.barh([k + i * 0.4 for k in range(len(found))], xs, height=0.4, label=key.removeprefix("ratio_"))
    ax.set_yticks(
        [k + 0.2 for k in range(len(found))],
        [f"{o.scenario.stack} ({o.device})" for o in found],
        fontsize=7,
    )
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("throughput ÷ bare device's")
    _legend(ax, fontsize=7)
    return Plot("stack-vs-bare.png", title, provenance, fig, _key("stack-vs-bare.png", provenance, found))


def boot_phases(run: RunContents) -> Plot | None:
    """How long each boot phase took, as one stacked bar (host clock, seconds since qemu started)."""
    phases = run.environment.get("boot", {}).get("phases_s", {})
    if not isinstance(phases, dict) or len(phases) < 2:
        return None
    names = [p for p in PHASE_ORDER if p in phases] + [p for p in phases if p not in PHASE_ORDER]
    env = run.environment
    provenance = (
        f"{provenance_caption(run)}; host clock; boot wall time {env.get('boot', {}).get('elapsed_s', '?')} s"
    )
    title = "Boot phases (seconds since qemu started)"
    fig, ax = _figure(title, provenance, 2.8, bottom_in=1.4)
    for previous, name in zip(names, names[1:], strict=False):
        start, end = float(phases[previous]), float(phases[name])
        ax.barh([0], [end - start], left=[start], label=f"{previous} → {name}: {end - start:.1f} s")
    ax.set_yticks([])  # the title says the unit; an axis label would sit under the legend
    _legend(ax, fontsize=7, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.5))
    return Plot("boot-phases.png", title, provenance, fig, _key("boot-phases.png", provenance, [], phases))


def render_plots(run: RunContents) -> list[Plot]:
    """Every plot this run has data for, in the order the report shows them."""
    drawn = [
        latency_cdf(run, "first-touch-write", "First-touch write faults"),
        latency_cdf(run, "first-touch-read", "First-touch read faults"),
        odirect_by_size(run),
        bandwidth_vs_anon(run),
        d2d_throughput(run),
        stack_cost(run),
        boot_phases(run),
    ]
    return [p for p in drawn if p is not None]
