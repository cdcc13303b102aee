"""Plots as self-contained SVG text: fault-latency histograms and bandwidth bars.

Why SVG by hand: the design card fixes the dependencies (no plotting library), and an SVG needs
no renderer to be written, opens in any browser and diffs as text. Pure: data in, text out.
Every plot carries its provenance line (kernel, accelerator, emulated pmem) in the image itself.
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH = 760
LABEL_W = 260
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"
BAR = "#3b6ea5"
REF = "#c0392b"


def _fmt_ns(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


def _header(title: str, subtitle: str, height: int) -> list[str]:
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' {FONT}>",
        f"<rect width='{WIDTH}' height='{height}' fill='white'/>",
        f"<text x='10' y='22' font-size='13' font-weight='bold'>{escape(title)}</text>",
        f"<text x='10' y='40' font-size='11' fill='#555'>{escape(subtitle)}</text>",
    ]


def histograms_svg(series: list[tuple[str, dict[str, Any]]], title: str, subtitle: str) -> str:
    """Small multiples: one row of log2-bucket bars per labelled latency summary, shared x axis."""
    buckets = sorted({(b["lo_ns"], b["hi_ns"]) for _, s in series for b in s.get("histogram", [])})
    if not buckets:
        return ""
    row_h, top = 54, 56
    plot_w = WIDTH - LABEL_W - 20
    col_w = plot_w / len(buckets)
    height = top + row_h * len(series) + 40
    out = _header(title, subtitle, height)
    for row, (label, summary) in enumerate(series):
        y0 = top + row * row_h
        counts = {(b["lo_ns"], b["hi_ns"]): b["count"] for b in summary.get("histogram", [])}
        total = sum(counts.values()) or 1
        p50 = summary.get("p50")
        out.append(f"<text x='10' y='{y0 + 22}' font-size='10'>{escape(label[:46])}</text>")
        out.append(
            f"<text x='10' y='{y0 + 37}' font-size='10' fill='#555'>p50 {_fmt_ns(p50 or 0)}, "
            f"n={summary.get('count', 0)}</text>"
        )
        out.append(
            f"<line x1='{LABEL_W}' y1='{y0 + row_h - 6}' x2='{WIDTH - 20}' y2='{y0 + row_h - 6}' "
            "stroke='#999'/>"
        )
        for i, key in enumerate(buckets):
            share = counts.get(key, 0) / total
            h = share * (row_h - 12)
            if h <= 0:
                continue
            x = LABEL_W + i * col_w
            out.append(
                f"<rect x='{x + 1:.1f}' y='{y0 + row_h - 6 - h:.1f}' width='{col_w - 2:.1f}' "
                f"height='{h:.1f}' fill='{BAR}'><title>{escape(label)}: {share:.1%} in "
                f"[{_fmt_ns(key[0])}, {_fmt_ns(key[1])})</title></rect>"
            )
    axis_y = top + row_h * len(series) + 12
    for i, (lo, _) in enumerate(buckets):
        if i % max(1, -(-len(buckets) // 7)) == 0:  # at most 7 labels: they must not overlap
            out.append(
                f"<text x='{LABEL_W + i * col_w:.1f}' y='{axis_y}' font-size='9' fill='#333'>"
                f"{escape(_fmt_ns(lo))}</text>"
            )
    out.append(
        f"<text x='{LABEL_W}' y='{axis_y + 16}' font-size='10' fill='#555'>latency bucket (log2), "
        "bar = share of samples in that row</text>"
    )
    return "\n".join(out + ["</svg>"]) + "\n"


def bars_svg(
    rows: list[tuple[str, float]], reference: float | None, title: str, subtitle: str, unit_label: str
) -> str:
    """Horizontal bars (e.g. bandwidth in GiB/s) with an optional reference line (anonymous memory)."""
    if not rows:
        return ""
    row_h, top = 22, 56
    plot_w = WIDTH - LABEL_W - 90
    peak = max([v for _, v in rows] + [reference or 0]) or 1
    height = top + row_h * len(rows) + 40
    out = _header(title, subtitle, height)
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        w = value / peak * plot_w
        out.append(f"<text x='10' y='{y + 15}' font-size='10'>{escape(label[:46])}</text>")
        out.append(f"<rect x='{LABEL_W}' y='{y + 4}' width='{w:.1f}' height='{row_h - 8}' fill='{BAR}'/>")
        out.append(
            f"<text x='{LABEL_W + w + 4:.1f}' y='{y + 15}' font-size='10'>{value:.3g} {unit_label}</text>"
        )
    if reference:
        x = LABEL_W + reference / peak * plot_w
        out.append(
            f"<line x1='{x:.1f}' y1='{top - 4}' x2='{x:.1f}' y2='{top + row_h * len(rows)}' "
            f"stroke='{REF}' stroke-dasharray='4 3'/>"
        )
        out.append(
            f"<text x='{x + 3:.1f}' y='{top + row_h * len(rows) + 14}' font-size='10' fill='{REF}'>"
            f"anonymous memory {reference:.3g} {unit_label}</text>"
        )
    return "\n".join(out + ["</svg>"]) + "\n"
