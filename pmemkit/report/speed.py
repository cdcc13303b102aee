"""The machine's speed while each latency burst was taken: which p50s a slow moment inflated.

Why a section of its own: a p50's CI describes one burst of samples and cannot see the machine
itself running slower while the burst was taken. On the shared 2-core development VM the whole
guest runs 1.5-2x slower for 0.5-2 s at a time (a Python loop on the host and a C loop in the
guest both slow down; `steal` stays 0), so one burst can read twice the latency of the same burst a
second later. Every `time_each` records a speed reference (a timed no-op of its own loop just
before and after the samples, `timing.speed_reference_ns`); this section sets each burst's
reference beside the run's fastest and names the bursts taken while the loop ran at least
`SLOW` times slower. It corrects nothing: the p50s stay as measured.

Pure: Markdown lines out, and the same lines as a report.html section (`speed_section`, hooked in
with `html.section`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pmemkit.compare import metrics_of
from pmemkit.report.markdown import RunContents
from pmemkit.report.tables import table

if TYPE_CHECKING:
    from pmemkit.report.html import Section
    from pmemkit.report.verdict import Verdict

#: A burst whose reference is at least this many times the run's fastest is called slow.
SLOW = 1.25
#: At most this many slow bursts are listed, slowest first.
LISTED = 25


@dataclass(frozen=True)
class Burst:
    """One latency p50 and the speed reference around its burst, relative to the run's fastest."""

    key: str
    p50_ns: float
    reference_ns: float
    factor: float


def bursts(run: RunContents) -> list[Burst]:
    """Every latency p50 of the run that carries a speed reference, slowest machine first."""
    found = [m for m in metrics_of(run).values() if m.kind == "latency p50" and m.speed_ref]
    if not found:
        return []
    fastest = min(m.speed_ref for m in found)  # type: ignore[type-var]
    out = [Burst(m.key, m.value, m.speed_ref, m.speed_ref / fastest) for m in found]  # type: ignore[operator]
    return sorted(out, key=lambda b: (-b.factor, b.key))


def _slow_and_median(found: list[Burst]) -> tuple[list[Burst], float]:
    """The bursts at least `SLOW` times the fastest, and the median burst's factor."""
    factors = sorted(b.factor for b in found)
    return [b for b in found if b.factor >= SLOW], factors[len(factors) // 2]


def speed_lines(run: RunContents) -> list[str]:
    """The section's Markdown lines (`## title` first); empty when no p50 carries a speed reference."""
    found = bursts(run)
    if not found:
        return []
    slow, median = _slow_and_median(found)
    refs = sorted(b.reference_ns for b in found)
    lines = [
        "## Machine speed during the latency bursts",
        "",
        f"Before and after each of the {len(found)} latency bursts timed by `time_each`, its loop timed 200 "
        "no-op calls, and 32 after every 64 samples of a longer burst (the speed reference, the median "
        f"per burst): {refs[0]:.0f} ns at the fastest, {refs[-1]:.0f} ns at the slowest, "
        f"median {median:.2f}× the fastest. **{len(slow)} of {len(found)} bursts "
        f"({100 * len(slow) / len(found):.0f} %) ran at least {SLOW}× slower than the fastest**; their p50s "
        "probably read high by about that factor (inferred: it assumes the operation slowed as the loop "
        "did). The p50s in this report are as measured, not corrected. A shared host can run the whole VM "
        "1.5-2× slower for 0.5-2 s at a time without any `steal`; `pmemkit compare` uses these references "
        "to tell such a moment from a change in what was measured. Latencies from fio and `prtime` carry "
        "no reference.",
        "",
    ]
    if slow:
        rows = [
            [b.key, f"{b.p50_ns / 1000:.2f} µs", f"{b.reference_ns:.0f} ns", f"{b.factor:.2f}×"] for b in slow
        ]
        more = len(rows) - LISTED
        lines += table(["burst (metric)", "p50 as measured", "speed reference", "× fastest"], rows[:LISTED])
        if more > 0:
            lines += ["", f"… and {more} more slow burst(s) (observations.jsonl has every reference)."]
        lines.append("")
    return lines


def speed_summary(run: RunContents) -> str:
    """One line for report.md: how many bursts a slow moment of the machine took; "" without references."""
    found = bursts(run)
    if not found:
        return ""
    slow, median = _slow_and_median(found)
    return (
        f"- **The machine's speed during the latency bursts**: {len(slow)} of {len(found)} bursts "
        f"({100 * len(slow) / len(found):.0f} %) were taken while pmemkit's timing loop ran at least {SLOW}× "
        f"slower than its fastest in this run (median {median:.2f}×, worst {found[0].factor:.2f}×); "
        "their p50s probably read high by about that factor. report.html lists them "
        '("Machine speed during the latency bursts").'
    )


def speed_section(run: RunContents, found: list[Verdict]) -> Section | None:
    """report.html's machine-speed section (folded like the other details); None without references."""
    lines = speed_lines(run)
    if not lines:
        return None
    from pmemkit.report.html import Section, _markdown_html

    return Section("speed", lines[0][3:], _markdown_html(lines[1:]), folded=True)
