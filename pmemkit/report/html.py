"""report.html: one self-contained page per run (inline CSS, inline PNG, a few lines of JS, no network).

Why this order: the first screen answers the question pmemkit exists for (does this kernel treat
each kind of pmem as the model says?) with the verdict matrix; then the headline numbers, the
plots, the detailed sections folded, and every observation last, filterable. Everything from the
run (the guest's words included) is escaped. Pure: text out.

Sections after the plots are a list: `SECTIONS` holds the built-in ones; another module adds its
own with `@section` (a function of the run and its verdicts returning a `Section` or None).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass

import markdown as md

from pmemkit.report.headline import headlines
from pmemkit.report.markdown import (
    Joined,
    Predictor,
    RunContents,
    detail_sections,
    join,
    kernel_title,
    observation_place,
    phase_rows,
    provenance_rows,
)
from pmemkit.report.plots import Plot
from pmemkit.report.verdict import OUTCOME_CLASSES, Matrix, Verdict, matrix, summary_line, verdicts

EMULATION_TEXT = (
    "Emulated pmem: every device in this run is host DRAM presented by QEMU (memmap= legacy ranges, "
    "QEMU NVDIMMs, virtio-pmem). Outcomes show what the real Linux kernel decided; timings are those of "
    "DRAM under QEMU and say nothing about Optane or CXL media."
)


@dataclass(frozen=True)
class Section:
    """One block of the page: an anchor id, a heading and its (already escaped) HTML body."""

    id: str
    title: str
    body: str
    folded: bool = False

    def html(self) -> str:
        title = html.escape(self.title)
        if self.folded:
            return f'<details id="{self.id}"><summary>{title}</summary>\n{self.body}\n</details>'
        return f'<section id="{self.id}"><h2>{title}</h2>\n{self.body}\n</section>'


SectionFn = Callable[[RunContents, list[Verdict]], Section | None]
#: Sections shown after the detailed tables and before the observation table, in order.
SECTIONS: list[SectionFn] = []


def section(fn: SectionFn) -> SectionFn:
    """Register a report section (e.g. a what-if analysis): it is called with every run."""
    SECTIONS.append(fn)
    return fn


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.2em 2em;color:#222;max-width:1600px}
h1{font-size:1.35em;margin:.6em 0 .2em} h2{font-size:1.15em;margin:1.2em 0 .4em}
.emu{display:inline-block;background:#fff3cd;border:1px solid #e0b84c;border-radius:4px;padding:0 .4em;
 font-size:.75em;font-weight:600;vertical-align:middle}
.note{color:#555;font-size:.9em;margin:.2em 0}
.failed{color:#a00;font-weight:700} .warn{color:#8a5a00;font-size:.9em}
.wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ccc;padding:2px 5px;text-align:left;
 vertical-align:top}
table.matrix td{text-align:center;font-size:11px;padding:1px 3px;white-space:nowrap}
table.matrix th.op{vertical-align:bottom;padding:2px 1px}
table.matrix th.op span{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;font-weight:500}
table.matrix th.cfg{white-space:nowrap;font-weight:500;position:sticky;left:0;background:#fff;z-index:1}
.c-ok{background:#c9e7c9}.c-refused{background:#f3aaa3}.c-fallback{background:#fbd98b}
.c-na{background:#dcdcdc}
.c-skipped{background:repeating-linear-gradient(45deg,#eee,#eee 3px,#fff 3px,#fff 6px)}
td.disagree{outline:3px solid #b00000;outline-offset:-3px;font-weight:700}
td.nopred{font-style:italic;color:#555}
.legend span{display:inline-block;padding:0 .5em;margin-right:.4em;border:1px solid #bbb;font-size:12px}
figure{margin:1em 0;max-width:100%} figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.85em;color:#444}
.headline td:first-child{font-weight:600}
details{margin:.4em 0} summary{cursor:pointer;font-weight:600}
pre{background:#f6f6f6;padding:.4em;overflow-x:auto;font-size:11px}
#obs-filter{font-size:14px;padding:3px;width:24em;max-width:90%}
"""

SCRIPT = """
(function(){
  var box=document.getElementById('obs-filter'), shown=document.getElementById('obs-shown');
  var rows=Array.prototype.slice.call(document.querySelectorAll('#obs-table tbody tr'));
  box.addEventListener('input',function(){
    var words=box.value.toLowerCase().split(/\\s+/).filter(Boolean), n=0;
    rows.forEach(function(r){
      var text=r.textContent.toLowerCase();
      var keep=words.every(function(w){return text.indexOf(w)>=0;});
      r.hidden=!keep; if(keep){n++;}
    });
    shown.textContent=String(n);
  });
})();
"""

_CSS_CLASS = {
    "ok": "c-ok",
    "refused": "c-refused",
    "fallback": "c-fallback",
    "n/a": "c-na",
    "skipped": "c-skipped",
}
_LEGEND = {
    "ok": "ok",
    "refused": "refused (errno)",
    "fallback": "fallback / short",
    "n/a": "n/a",
    "skipped": "skipped (did not run)",
}


def e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[object]], attrs: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return (
        f'<div class="wrap"><table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def matrix_html(m: Matrix) -> str:
    """Configurations (rows) × operations (columns); each cell the kernel's outcome, coloured by class."""
    head = '<th class="cfg">pmem configuration</th>' + "".join(
        f'<th class="op"><span>{e(c)}</span></th>' for c in m.columns
    )
    body = []
    for row in m.rows:
        cells = [f'<th class="cfg">{e(row)}</th>']
        for column in m.columns:
            cell = m.cells.get((row, column))
            if cell is None:
                cells.append("<td></td>")
                continue
            classes = [_CSS_CLASS[cell.css]]
            text = e(cell.outcome)
            if cell.disagree:
                classes.append("disagree")
                text += " ≠"
            elif not cell.compared:
                classes.append("nopred")
            cells.append(f'<td class="{" ".join(classes)}" title="{e(cell.title())}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = (
        f'<div class="wrap"><table class="matrix" id="verdict-matrix"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    legend = "".join(f'<span class="{_CSS_CLASS[c]}">{e(_LEGEND[c])}</span>' for c in OUTCOME_CLASSES)
    legend += (
        '<span class="disagree" style="outline:3px solid #b00000">≠ the model predicted otherwise</span>'
    )
    legend += '<span class="nopred"><i>italic</i>: the model makes no prediction</span>'
    return (
        table
        + f'<p class="legend note">{legend} — hover a cell for both outcomes and the kernel\'s words.</p>'
    )


def _disagreements(found: list[Verdict]) -> str:
    failed = [v for v in found if v.status == "fail"]
    if not failed:
        return '<p class="note">The kernel did what the model predicts in every compared cell.</p>'
    rows = [
        [
            v.target,
            v.observation.shown(),
            v.observation.outcome,
            v.prediction.outcome if v.prediction else "",
            v.prediction.rule if v.prediction else "",
            v.observation.detail,
        ]
        for v in failed
    ]
    return "<h3>Where the kernel and the model disagree</h3>" + _table(
        ["target", "operation", "kernel", "model", "rule", "kernel said"], rows
    )


def verdict_section(run: RunContents, found: list[Verdict], predictor: Predictor | None) -> str:
    if not found:
        return '<section id="verdict"><h2>Verdict</h2><p>No observations were recorded.</p></section>'
    note = summary_line(found) if predictor is not None else "the model could not be asked (see warnings)"
    return (
        '<section id="verdict"><h2>Verdict: what this kernel did, against the model</h2>'
        f'<p class="note">{e(note)}.</p>{matrix_html(matrix(found))}{_disagreements(found)}</section>'
    )


def headline_section(run: RunContents) -> str:
    found = headlines(run)
    if not found:
        return ""
    rows = "".join(
        f"<tr><td>{e(h.what)}</td><td>{'<br>'.join(f'{e(k)}: <b>{e(v)}</b>' for k, v in h.values)}</td>"
        f'<td class="note">{e(h.provenance)}</td></tr>'
        for h in found
    )
    return (
        '<section id="headline"><h2>Headline numbers</h2><div class="wrap"><table class="headline">'
        f"<thead><tr><th>measure</th><th>per kind of target</th><th>provenance</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def plots_section(plots: list[Plot]) -> str:
    if not plots:
        return ""
    figures = "".join(
        f'<figure id="plot-{e(p.name)}"><img alt="{e(p.title)}" '
        f'src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
        f"<figcaption><b>{e(p.title)}</b> — {e(p.provenance)} (also plots/{e(p.name)})</figcaption></figure>"
        for p in plots
    )
    return f'<section id="plots"><h2>Plots</h2>{figures}</section>'


def _markdown_html(lines: list[str]) -> str:
    """A section's Markdown as HTML; the text is escaped first (the guest's words may hold markup)."""
    text = html.escape("\n".join(lines), quote=False)
    return md.markdown(text, extensions=["tables", "fenced_code"], output_format="html")


def _split(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Markdown lines → (heading, body lines) at each `## ` heading."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("## "):
            out.append((line[3:].strip(), []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            out.append(("", [line]))
    return out


def detail_html(run: RunContents, joined: list[Joined]) -> list[Section]:
    found = []
    for index, lines in enumerate(detail_sections(run, joined)):
        for sub, (title, body) in enumerate(_split(lines)):
            found.append(
                Section(f"detail-{index}-{sub}", title or "details", _markdown_html(body), folded=True)
            )
    return found


def provenance_html(run: RunContents) -> Section:
    body = _table(["", ""], [[k, str(v).replace("`", "")] for k, v in provenance_rows(run)])
    phases = run.environment.get("boot", {}).get("phases_s", {})
    if phases:
        body += "<p>Boot phases (seconds since qemu started, host clock)</p>"
        body += _table(["phase", "reached at (s)", "step (s)"], phase_rows(phases))
    return Section("provenance", "Where these results come from", body, folded=True)


def observations_html(run: RunContents, found: list[Verdict]) -> str:
    rows = []
    for v in found:
        obs = v.observation
        css = _CSS_CLASS.get("ok" if obs.outcome == "ok" else "refused", "")
        model = v.prediction.outcome if v.prediction else ""
        rows.append(
            "<tr>"
            + "".join(f"<td>{e(x)}</td>" for x in observation_place(obs))
            + f'<td class="{css if obs.outcome != "ok" else ""}">{e(obs.outcome)}</td><td>{e(model)}</td>'
            + f"<td>{e(obs.detail)}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "device",
            "source",
            "mode",
            "map",
            "fs",
            "experiment",
            "operation",
            "outcome",
            "model",
            "detail",
        )
    )
    return (
        f'<section id="observations"><h2>All observations ({len(found)})</h2>'
        '<p><label>Filter rows (every word must appear): <input id="obs-filter" type="search" '
        f'placeholder="e.g. xfs EFAULT"></label> <span class="note"><span id="obs-shown">{len(found)}</span> '
        "shown; the same rows are in observations.csv</span></p>"
        f'<div class="wrap"><table id="obs-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        "</tbody></table></div></section>"
    )


def render_html(run: RunContents, predictor: Predictor | None, plots: list[Plot]) -> str:
    """The whole page."""
    title = f"pmemkit run {run.name}{kernel_title(run)}"
    found = verdicts(run, predictor)
    status = (
        f'<p class="failed">Status: FAILED — {e(run.failure)}. '
        "What the guest observed before that is below.</p>"
        if run.failure
        else '<p class="note">Status: completed.</p>'
    )
    warnings = "".join(f'<p class="warn">warning: {e(w)}</p>' for w in run.warnings)
    sections = [provenance_html(run), *detail_html(run, join(run, predictor))]
    sections += [s for fn in SECTIONS if (s := fn(run, found)) is not None]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{e(title)} — emulated pmem is DRAM</title><style>{CSS}</style></head><body>",
        f'<header><h1>{e(title)} <span class="emu" title="{e(EMULATION_TEXT)}">'
        "emulated pmem is DRAM</span></h1>",
        f'<p class="note">{e(EMULATION_TEXT)}</p>{status}{warnings}</header>',
        verdict_section(run, found, predictor),
        headline_section(run),
        plots_section(plots),
        '<section id="details"><h2>Details</h2>' + "".join(s.html() for s in sections) + "</section>",
        observations_html(run, found),
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


from pmemkit.report.crash import crash_section  # noqa: E402 (issue 12: the crash suite's section)

section(crash_section)

from pmemkit.report.speed import speed_section  # noqa: E402 (issue 15: the machine's speed per burst)

section(speed_section)
