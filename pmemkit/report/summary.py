"""report.md: the short text twin of report.html — verdict, headline numbers, links to plots and CSV.

Why short: the full detail (percentile tables, histograms, every observation) lives in report.html
and observations.csv; a Markdown file that scrolls for 1 300 lines hides the answer. Pure: text out.
"""

from __future__ import annotations

from pmemkit.report.headline import headlines
from pmemkit.report.markdown import (
    Predictor,
    RunContents,
    compared_sentence,
    header_lines,
    join,
    phase_rows,
    provenance_rows,
)
from pmemkit.report.plots import Plot
from pmemkit.report.speed import speed_summary
from pmemkit.report.tables import table
from pmemkit.report.verdict import Matrix, Verdict, matrix, verdicts

#: At most this many disagreements are listed here; report.html lists them all.
MAX_DISAGREEMENTS = 60


def _matrix_lines(m: Matrix) -> list[str]:
    """Operations as rows, configurations as columns (Markdown reads better tall than wide)."""
    rows = []
    for column in m.columns:
        cells = []
        for row in m.rows:
            cell = m.cells.get((row, column))
            if cell is None:
                cells.append("")
                continue
            text = f"`{cell.outcome}`"
            if cell.disagree:
                text += " **≠**"
            elif not cell.compared:
                text += " ·"
            cells.append(text)
        rows.append([column, *cells])
    return table(["operation", *m.rows], rows)


def _disagreements(found: list[Verdict]) -> list[str]:
    failed = [v for v in found if v.status == "fail"]
    if not failed:
        return ["The kernel did what the model predicts in every compared cell.", ""]
    rows = [
        [
            v.target,
            v.observation.shown(),
            f"`{v.observation.outcome}`",
            f"`{v.prediction.outcome}`" if v.prediction else "",
            v.prediction.rule if v.prediction else "",
            v.observation.detail,
        ]
        for v in failed[:MAX_DISAGREEMENTS]
    ]
    lines = ["### Where the kernel and the model disagree", ""]
    lines += table(["target", "operation", "kernel", "model", "rule", "kernel said"], rows) + [""]
    if len(failed) > MAX_DISAGREEMENTS:
        lines += [f"… and {len(failed) - MAX_DISAGREEMENTS} more: see report.html.", ""]
    return lines


def render_summary(run: RunContents, predictor: Predictor | None, plots: list[Plot]) -> str:
    """The short report.md; `plots` are those written to plots/ beside it."""
    lines = header_lines(run)
    lines += [
        "",
        "Full report with coloured verdict matrix, plots and every observation: [report.html](report.html); "
        "one row per observation: [observations.csv](observations.csv) (raw: observations.jsonl); "
        "CI formats: `pmemkit report RUN --format ktap|junit`.",
        "",
    ]
    found = verdicts(run, predictor)
    lines += ["## Verdict: the kernel against the model", ""]
    if predictor is not None:
        lines += [compared_sentence(join(run, predictor)), ""]
    if found:
        lines += [
            "Each cell is the kernel's outcome for that operation on that pmem configuration; **≠** marks a "
            "cell where the model predicted otherwise, · one the model does not predict.",
            "",
        ]
        lines += _matrix_lines(matrix(found)) + [""]
        lines += _disagreements(found)
    else:
        lines += ["No observations were recorded.", ""]
    found_headlines = headlines(run)
    speed = speed_summary(run)
    if found_headlines or speed:
        lines += ["## Headline numbers", ""]
        for h in found_headlines:
            lines += [f"- **{h.what}**: {h.text()} — _{h.provenance}_"]
        lines += [speed] if speed else []
        lines += [""]
    if plots:
        lines += ["## Plots", ""]
        for plot in plots:
            lines += [f"- [{plot.title}](plots/{plot.name}) — _{plot.provenance}_"]
        lines += [""]
    lines += ["## Where these results come from", ""]
    lines += table(["", ""], provenance_rows(run)) + [""]
    phases = run.environment.get("boot", {}).get("phases_s", {})
    if phases:
        lines += ["Boot phases (seconds since qemu started, host clock):", ""]
        lines += table(["phase", "reached at (s)", "step (s)"], phase_rows(phases)) + [""]
    return "\n".join(lines) + "\n"
