"""Render latency distributions as Markdown: a percentile table and a text histogram per summary.

Pure: takes summaries (`pmemkit.measure.stats.LatencySummary` or its `to_dict()` form) and returns
text. Numbers carry units: one unit per table (ns, µs, ms or s, chosen so the smallest p50 reads
as at least 1, or forced by the caller), named in every column header. Every table and histogram
block takes a `caption` — the provenance the caller wants printed with it (kernel, accelerator,
pmem configuration, repetitions, ...) — rendered as a `Table: ...` line after a blank line, which
pandoc reads as a caption and GitHub shows as a paragraph.

Honest statistics (issue 15): a percentile is printed only when its sample count supports it
(`measure.stats.MIN_SAMPLES`: p99 >= 100, p99.9 >= 1 000, p99.99 >= 10 000), otherwise the cell
reads `— (n=COUNT)`; p50 and p99 are followed by their 95 % order-statistic confidence interval and
its half-width in per cent (`ci_cell`). `percentile_cell` and `ci_cell` are the functions any
other renderer (HTML, plots) should call so every table follows the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pmemkit.measure.stats import (
    CI_LEVEL,
    CI_METHOD,
    CI_PERCENTILES,
    MIN_SAMPLES,
    PERCENTILES,
    LatencySummary,
    ci_half_width,
    withheld_text,
)

#: (name, ns per unit), smallest first.
DURATION_UNITS = (("ns", 1), ("µs", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000))
_BINARY_RATE_UNITS = ("B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s", "PiB/s")
_DECIMAL_RATE_UNITS = ("B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s")
MISSING = "—"

SummaryLike = LatencySummary | Mapping[str, Any]
Summaries = Mapping[str, SummaryLike] | Iterable[tuple[str, SummaryLike]]


def _three_figures(value: float) -> str:
    """About three significant figures without exponent notation: 1.23, 12.3, 123, 12345."""
    size = abs(value)
    if size >= 99.95:
        return f"{value:.0f}"
    if size >= 9.995:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _is_integral(value: float | int) -> bool:
    return isinstance(value, int) or float(value).is_integer()


def format_duration_ns(ns: float | int | None) -> str:
    """A duration in the most readable unit: `850 ns`, `1.23 µs`, `45.6 ms`, `2.00 s`; None: `—`."""
    if ns is None or (isinstance(ns, float) and not math.isfinite(ns)):
        return MISSING
    size = abs(ns)
    if size < 999.5:
        return f"{int(ns)} ns" if _is_integral(ns) else f"{_three_figures(ns)} ns"
    for name, scale in DURATION_UNITS[1:]:
        if size / scale < 999.5 or name == "s":
            return f"{_three_figures(ns / scale)} {name}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_bytes_per_s(rate: float | int | None, *, binary: bool = True) -> str:
    """A rate in readable units: binary `MiB/s`, `GiB/s` (fio's main figure) or decimal `MB/s`."""
    if rate is None or (isinstance(rate, float) and not math.isfinite(rate)):
        return MISSING
    units = _BINARY_RATE_UNITS if binary else _DECIMAL_RATE_UNITS
    base = 1024 if binary else 1000
    value, unit = float(rate), units[0]
    for unit in units:
        if abs(value) < 999.5 or unit == units[-1]:
            break
        value /= base
    if unit == "B/s" and _is_integral(rate):
        return f"{int(rate)} B/s"
    return f"{_three_figures(value)} {unit}"


def format_ratio(ratio: float | None) -> str:
    """`0.97×` for a ratio from `pmemkit.measure.bandwidth.ratio`; `—` when it is None."""
    if ratio is None or not math.isfinite(ratio):
        return MISSING
    return f"{ratio:.2f}×"


def _as_summary(summary: SummaryLike) -> LatencySummary:
    return summary if isinstance(summary, LatencySummary) else LatencySummary.from_dict(dict(summary))


def _pairs(summaries: Summaries) -> list[tuple[str, LatencySummary]]:
    items = summaries.items() if isinstance(summaries, Mapping) else summaries
    return [(str(label), _as_summary(s)) for label, s in items]


def choose_unit(values_ns: Iterable[float | int | None]) -> tuple[str, int]:
    """The largest duration unit in which the smallest positive value is still >= 1 (ns if none)."""
    positive = [v for v in values_ns if v is not None and v > 0]
    if not positive:
        return DURATION_UNITS[0]
    smallest = min(positive)
    chosen = DURATION_UNITS[0]
    for name, scale in DURATION_UNITS:
        if smallest >= scale:
            chosen = (name, scale)
    return chosen


def _unit_by_name(unit: str) -> tuple[str, int]:
    aliases = {"us": "µs", "μs": "µs"}
    unit = aliases.get(unit, unit)
    for name, scale in DURATION_UNITS:
        if name == unit:
            return name, scale
    raise ValueError(f"unknown duration unit {unit!r}: use auto, ns, us, ms or s")


def _in_unit(value: float | int | None, scale: int) -> str:
    if value is None:
        return MISSING
    if scale == 1 and _is_integral(value):
        return str(int(value))
    return _three_figures(value / scale)


def _overhead_cell(summary: LatencySummary) -> str:
    if summary.overhead_ns is None:
        return "not measured"
    text = f"{format_duration_ns(summary.overhead_ns)}, "
    text += "subtracted" if summary.overhead_subtracted else "not subtracted"
    if summary.overhead_subtracted and summary.clamped_to_zero:
        text += f" ({summary.clamped_to_zero} clamped to 0)"
    return text


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _caption_lines(caption: str | None, prefix: str = "Table") -> list[str]:
    if not caption:
        return []
    return ["", f"{prefix}: {' '.join(caption.split())}"]


def percentile_cell(summary: SummaryLike, name: str, scale: int = 1) -> str:
    """Percentile `name` in units of `scale` ns if the count supports it, else `— (n=COUNT)`."""
    s = _as_summary(summary)
    if s.reportable(name) is None:
        return withheld_text(name, s.count) if s.percentile(name) is not None or s.count else MISSING
    return _in_unit(s.percentile(name), scale)


def ci_cell(summary: SummaryLike, name: str, scale: int = 1) -> str:
    """`lo–hi (±x.x %)` of the percentile's CI in units of `scale` ns; `—` when it was not computed or
    the count does not support the percentile; a missing side is written `?` (too few samples)."""
    s = _as_summary(summary)
    ci = s.ci.get(name)
    if not ci or s.reportable(name) is None:
        return MISSING
    if ci.get("lo") is None and ci.get("hi") is None:
        return withheld_text(name, s.count)
    lo = "?" if ci.get("lo") is None else _in_unit(ci["lo"], scale)
    hi = "?" if ci.get("hi") is None else _in_unit(ci["hi"], scale)
    width = ci_half_width(s.percentile(name), ci)
    return f"{lo}–{hi} ({'±' + format(width * 100, '.1f') + ' %' if width is not None else 'one-sided'})"


def ci_note() -> str:
    """The sentence a report prints under a table with CI columns: level and method, and the count rule."""
    rule = ", ".join(f"{name} >= {n}" for name, n in MIN_SAMPLES.items() if n > 1)
    return (
        f"CI: {CI_LEVEL:.0%} {CI_METHOD} interval of the percentile; a percentile is shown only when "
        f"the sample count supports it ({rule}), otherwise — and the count."
    )


def render_percentile_table(summaries: Summaries, *, caption: str | None = None, unit: str = "auto") -> str:
    """A Markdown table, one row per labelled summary: count, min, percentiles (p50 and p99 with their
    CI), max, mean, overhead.

    `unit` is `auto` (see `choose_unit`, applied to the p50s) or one of ns, us/µs, ms, s. The
    percentile method is named in the header of the label column; `ci_note()` ends the caption so
    the CI method and the count rule travel with the table.
    """
    pairs = _pairs(summaries)
    if not pairs:
        return "\n".join(["No latency distributions were recorded.", *_caption_lines(caption)]) + "\n"
    if unit == "auto":
        name, scale = choose_unit(s.percentile("p50") for _, s in pairs)
    else:
        name, scale = _unit_by_name(unit)
    methods = sorted({s.method for _, s in pairs})
    headers = [f"latency ({', '.join(methods)})", "count", f"min ({name})"]
    for p in PERCENTILES:
        headers.append(f"{p} ({name})")
        if p in CI_PERCENTILES:
            headers.append(f"{p} {CI_LEVEL:.0%} CI ({name})")
    headers += [f"max ({name})", f"mean ({name})", "timer overhead"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, s in pairs:
        row = [label, str(s.count), _in_unit(s.min_ns, scale)]
        for p in PERCENTILES:
            row.append(percentile_cell(s, p, scale))
            if p in CI_PERCENTILES:
                row.append(ci_cell(s, p, scale))
        row += [_in_unit(s.max_ns, scale), _in_unit(s.mean_ns, scale), _overhead_cell(s)]
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    full = (f"{caption.rstrip('. ')}. " if caption else "") + ci_note()
    return "\n".join(lines + _caption_lines(full)) + "\n"


def histogram_lines(summary: SummaryLike, *, width: int = 40, bar: str = "#") -> list[str]:
    """The histogram of one summary as aligned text lines: `[lo, hi)  ####  count  percent`.

    Bar length is proportional to the bucket count (the fullest bucket gets `width` characters);
    a non-empty bucket always gets at least one character, an empty one none.
    """
    if width < 1 or len(bar) != 1:
        raise ValueError("histogram width must be >= 1 and bar a single character")
    s = _as_summary(summary)
    if not s.histogram:
        return ["(no histogram)"]
    fullest = max(b.count for b in s.histogram) or 1
    total = sum(b.count for b in s.histogram) or 1
    los = [format_duration_ns(b.lo_ns) for b in s.histogram]
    his = [format_duration_ns(b.hi_ns) for b in s.histogram]
    lo_w, hi_w = max(map(len, los)), max(map(len, his))
    count_w = max(len(str(b.count)) for b in s.histogram)
    lines = []
    for b, lo, hi in zip(s.histogram, los, his, strict=True):
        length = 0 if b.count == 0 else max(1, round(b.count * width / fullest))
        share = 100.0 * b.count / total
        lines.append(
            f"[{lo:>{lo_w}}, {hi:>{hi_w}})  {bar * length:<{width}}  {b.count:>{count_w}}  {share:5.1f}%"
        )
    return lines


def render_histograms(
    summaries: Summaries, *, caption: str | None = None, width: int = 40, bar: str = "#"
) -> str:
    """One fenced text histogram per labelled summary, each headed by its label, count and overhead."""
    out: list[str] = []
    for label, s in _pairs(summaries):
        out += [f"**{label}** — {s.count} samples; {s.overhead_note()}", "", "```text"]
        out += histogram_lines(s, width=width, bar=bar)
        out += ["```", *_caption_lines(caption, "Histogram"), ""]
    if not out:
        return (
            "\n".join(["No latency distributions were recorded.", *_caption_lines(caption, "Histogram")])
            + "\n"
        )
    return "\n".join(out[:-1]) + "\n"


def render_latency(
    summaries: Summaries, *, caption: str | None = None, unit: str = "auto", width: int = 40
) -> str:
    """The percentile table followed by each summary's histogram, all carrying `caption`."""
    pairs = _pairs(summaries)
    table = render_percentile_table(pairs, caption=caption, unit=unit)
    if not pairs:
        return table
    return table + "\n" + render_histograms(pairs, caption=caption, width=width)


def _ratio_ci_cell(ci: Mapping[str, Any] | None) -> str:
    if not ci or ci.get("ratio") is None:
        return MISSING
    text = format_ratio(ci["ratio"])
    if ci.get("lo") is not None and ci.get("hi") is not None:
        text += f" [{ci['lo']:.2f}, {ci['hi']:.2f}]"
    return text


def _verdict_cell(ci: Mapping[str, Any] | None, rounds: int | None) -> str:
    if not ci:
        return MISSING
    verdict = ci.get("agrees")
    if verdict is None:
        return f"no verdict ({rounds or '?'} round(s); needs 3)"
    return "agrees" if verdict else "does not agree"


def fio_parity_rows(pairs: Iterable[tuple[str, Mapping[str, Any]]]) -> list[list[str]]:
    """Rows of the fio parity table from (target label, metrics of a `fio-odirect-randread` observation).

    Columns as `FIO_PARITY_HEADERS`: pmemkit's I/O own latency p50 with its CI and how it was
    measured (`own_method`: the compiled helper, or the raw_syscalls tracepoints where there was
    none; an older observation without the field was traced), fio's clat p50 with its CI, their
    ratio with its CI, the verdict (whole CI within 0.9…1.1), pmemkit's caller-side p50 and the
    caller overhead (caller-side p50 minus own p50).
    """
    rows = []
    for label, m in pairs:
        parity = m.get("parity")
        if not isinstance(parity, Mapping):
            continue
        own, caller, fio = m.get("pmemkit_own"), m.get("pmemkit_caller"), m.get("fio_clat")
        scale = 1_000
        rows.append(
            [
                label,
                f"{parity.get('rounds')} × {parity.get('ios_per_round')}",
                f"{percentile_cell(own, 'p50', scale)} {ci_cell(own, 'p50', scale)}" if own else "not taken",
                OWN_METHODS.get(parity.get("own_method", "tracepoints") if own else None, MISSING),
                f"{percentile_cell(fio, 'p50', scale)} {ci_cell(fio, 'p50', scale)}" if fio else MISSING,
                _ratio_ci_cell(parity.get("p50")),
                _verdict_cell(parity.get("p50"), parity.get("rounds")),
                percentile_cell(caller, "p50", scale) if caller else MISSING,
                _in_unit(parity.get("caller_overhead_p50_ns"), scale),
                _speed_cell(parity),
            ]
        )
    return rows


def _speed_cell(parity: Mapping[str, Any]) -> str:
    """How many rounds ran both sides at the same machine speed, and those rounds' own ratios."""
    speed = parity.get("speed")
    if not isinstance(speed, Mapping):
        return MISSING
    ratios = speed.get("matched_rounds_p50_ratios") or []
    known = sum(x is not None for x in speed.get("own_over_fio_per_round") or [])
    shown = ", ".join(f"{x:.3f}" for x in ratios)
    return f"{len(ratios)} of {known}" + (f" ({shown})" if shown else "")


#: How pmemkit's own latency was measured, as the parity table says it.
OWN_METHODS = {"helper": "C helper (prtime)", "tracepoints": "raw_syscalls tracepoints"}
FIO_PARITY_HEADERS = [
    "target",
    "rounds × I/Os",
    "pmemkit own p50 (µs) [95% CI]",
    "own measured by",
    "fio clat p50 (µs) [95% CI]",
    "pmemkit / fio [95% CI]",
    "±10 %",
    "pmemkit caller-side p50 (µs)",
    "caller overhead p50 (µs)",
    "rounds at the same machine speed (their ratios)",
]
FIO_PARITY_NOTE = (
    "O_DIRECT 4 KiB random reads, fio psync and pmemkit interleaved (fio, pmemkit, fio, pmemkit, ...) on "
    "the same file, the same offsets (fio's own, from its per-I/O log), the same I/O count and the same "
    "CPU. pmemkit's own latency is timed by its compiled helper (prtime: clock_gettime(CLOCK_MONOTONIC) "
    "around each pread in a C loop, as fio's psync loop does; the clock's cost is reported, not "
    "subtracted), or, where there is no helper, by the kernel's raw_syscalls sys_enter→sys_exit "
    "interval (which adds microseconds per call under TCG); the caller-side figure is the same preads "
    "timed from Python, and the difference of the p50s is the caller overhead. Ratio CI: percentile "
    "bootstrap of the ratio of medians over all "
    "rounds' I/Os, widened to the Student-t interval over per-round ratios; 'agrees' when the whole CI "
    "lies within 0.9…1.1 (needs >= 3 rounds). The last column counts the rounds whose two sides ran at "
    "the same machine speed (time_each's speed reference before and after each side's run within "
    "±10 %): a round outside it was taken while the shared host ran slower for one side, which "
    "explains a round's ratio that stands apart; those rounds stay in the verdict."
)


def render_fio_parity(pairs: Iterable[tuple[str, Mapping[str, Any]]], *, caption: str | None = None) -> str:
    """The fio parity table (Markdown) with its note; empty string when no observation carries parity."""
    rows = fio_parity_rows(pairs)
    if not rows:
        return ""
    lines = ["| " + " | ".join(FIO_PARITY_HEADERS) + " |", "|" + "---|" * len(FIO_PARITY_HEADERS)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    note = FIO_PARITY_NOTE + (f" {caption}" if caption else "")
    return "\n".join(lines + _caption_lines(note)) + "\n"
