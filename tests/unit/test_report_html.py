"""report.html, report.md (the short twin), observations.csv and the plots, from a recorded run and
from small made-up ones."""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json
import re
import subprocess
import sys

from PIL import Image

from pmemkit.pipeline import render_report
from pmemkit.report import html as report_html
from pmemkit.report.html import Section, render_html
from pmemkit.report.markdown import RunContents
from pmemkit.report.plots import render_plots
from pmemkit.report.summary import render_summary
from pmemkit.scenario import Observation, Prediction, Scenario

IMG = re.compile(r'<img [^>]*src="([^"]*)"')


def _images(page: str) -> list[Image.Image]:
    """Every <img> of the page, decoded (each must be an inline base64 PNG)."""
    out = []
    for src in IMG.findall(page):
        assert src.startswith("data:image/png;base64,"), src[:60]
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        image.load()
        out.append(image)
    return out


def test_the_recorded_default_run_renders_every_file(recorded_run):
    path, count = render_report(recorded_run)
    assert path == recorded_run / "report.html" and count == 351
    page = path.read_text()
    # the first thing in the body is the title with the kernel and the warning, then the matrix
    body = page[page.index("<body>") :]
    assert (
        body.index("kernel 6.1.0-57-amd64")
        < body.index("emulated pmem is DRAM")
        < body.index("verdict-matrix")
    )
    assert body.index("verdict-matrix") < body.index('id="headline"') < body.index('id="plots"')
    assert body.index('id="plots"') < body.index('id="obs-table"')
    matrix = page[
        page.index('id="verdict-matrix"') : page.index("</table>", page.index('id="verdict-matrix"'))
    ]
    assert matrix.count("<tr>") == 1 + 14  # header + the run's 14 configurations
    observed = [json.loads(line) for line in (recorded_run / "observations.jsonl").read_text().splitlines()]
    errno = sum(o["outcome"].startswith("E") for o in observed)
    assert errno == 46 and matrix.count('class="c-refused') == errno  # one observation per cell here
    assert "memmap devmem" in matrix and "virtio-pmem raw xfs" in matrix
    # self-contained: no fetch of anything (no src/href but data: URIs and in-page anchors)
    for ref in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert ref.startswith("data:") or ref.startswith("#"), ref
    assert "<script src" not in page and "@import" not in page
    images = _images(page)
    assert re.findall(r'id="plot-([^"]+)"', page) == [
        "first-touch-write-cdf.png",
        "first-touch-read-cdf.png",
        "odirect-latency-by-size.png",
        "bandwidth-vs-anonymous.png",
        "boot-phases.png",
    ]  # the default run has no d2d or stack pair: those plots are drawn only with data
    assert len(images) == 5
    assert all(im.format == "PNG" and im.width > 300 and im.height > 100 for im in images)
    for name in re.findall(r'id="plot-([^"]+)"', page):
        assert (recorded_run / "plots" / name).read_bytes().startswith(b"\x89PNG")
    assert page.count("<tr>", page.index('id="obs-table"')) == 1 + 351


def test_report_md_is_the_short_twin(rendered_run):
    text = (rendered_run / "report.md").read_text()
    assert len(text.splitlines()) < 400
    assert text.startswith("# pmemkit run 20261207-031959 — kernel 6.1.0-57-amd64\n")
    assert "Emulated pmem" in text and "[report.html](report.html)" in text
    assert "[observations.csv](observations.csv)" in text
    assert "351 (scenario × operation) cells compared: 351 agree, 0 disagree" in text
    assert "## Headline numbers" in text and "first-touch write fault, p50" in text
    assert "(plots/first-touch-write-cdf.png)" in text
    assert "| odirect-read-into:read-only |" in text  # a matrix row


def test_observations_csv_has_one_row_per_jsonl_line(rendered_run):
    lines = (rendered_run / "observations.jsonl").read_text().splitlines()
    with open(rendered_run / "observations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(lines) == 351
    for line, row in zip(lines, rows, strict=True):
        data = json.loads(line)
        assert (row["operation"], row["outcome"], row["device"]) == (
            data["operation"],
            data["outcome"],
            data["device"],
        )
        assert row["scenario.source"] == data["scenario"]["source"]
        assert row["provenance.kernel"] == "6.1.0-57-amd64"
    faults = [r for r in rows if r["operation"] == "first-touch-write"]
    assert len(faults) == 12 and all(float(r["metrics.latency.p50"]) > 0 for r in faults)


def _obs(op: str, outcome: str, detail: str = "", **metrics) -> Observation:
    sc = Scenario(kernel="6.1.0-57-amd64", source="nvdimm", mode="fsdax", map="mem", fs="ext4")
    return Observation("kapi", op, outcome, sc, "/dev/pmem0", detail=detail, metrics=metrics)


def _run(observations: list[Observation]) -> RunContents:
    return RunContents(
        name="r1",
        plan={},
        environment={"accel": "tcg"},
        guest_environment={"kernel": "6.1.0-57-amd64"},
        observations=observations,
    )


def _predict(outcome: str):
    def predictor(obs: Observation) -> Prediction:
        return Prediction(obs.scenario, obs.operation, outcome, True, "dram", "rule-x", ["mm/gup.c"], ">=6.1")

    return predictor


def test_a_disagreement_is_marked_in_the_matrix_and_listed():
    run = _run([_obs("vmsplice", "EFAULT", "vmsplice: Bad address"), _obs("mremap", "ok")])
    predictor = _predict("ok")
    page = render_html(run, predictor, [])
    cells = re.findall(r'<td class="([^"]*)" title="[^"]*">([^<]*)</td>', page)
    assert ("c-refused disagree", "EFAULT ≠") in cells and ("c-ok", "ok") in cells
    assert "Where the kernel and the model disagree" in page and "vmsplice: Bad address" in page
    text = render_summary(run, predictor, [])
    assert (
        "`EFAULT` **≠**" in text
        and "| nvdimm fsdax map=mem ext4 (/dev/pmem0) | vmsplice | `EFAULT` |" in text
    )


def test_the_guests_words_are_escaped_everywhere():
    hostile = '<script>alert("x")</script><img src=http://example.com/a.png>'
    page = render_html(_run([_obs("vmsplice", "EFAULT", hostile)]), _predict("EFAULT"), [])
    assert "<script>alert" not in page and "<img src=http" not in page
    assert "&lt;script&gt;alert" in page and "&lt;img src=http" in page
    assert page.count("<script>") == 1  # the page's own filter


def test_a_section_can_be_hooked_in(monkeypatch):
    monkeypatch.setattr(report_html, "SECTIONS", [])

    @report_html.section
    def what_if(run, found):
        return Section("what-if", "What if", f"<p>{len(found)} verdicts seen</p>")

    page = render_html(_run([_obs("mremap", "ok")]), None, [])
    assert '<section id="what-if"><h2>What if</h2>' in page and "1 verdicts seen" in page
    assert page.index('id="what-if"') < page.index('id="obs-table"')


def _pair(op: str, rows: list[dict]) -> Observation:
    sc = Scenario(kernel="6.1.0-57-amd64", source="nvdimm", mode="fsdax", map="mem", fs="ext4")
    return Observation("d2d", op, "ok", sc, "/dev/pmem0 → /dev/pmem1", metrics={"rows": rows})


def test_d2d_and_stack_plots_are_drawn_with_provenance():
    rows = [{"chunk_bytes": c, "bytes_per_s": 1e8 * (i + 1)} for i, c in enumerate((4096, 1 << 20))]
    stack = Scenario(kernel="6.1.0-57-amd64", source="memmap", mode="raw", stack="raid1", fs=None)
    copy = Observation(
        "raid", "stack-copy", "ok", stack, "/dev/md0", metrics={"ratio_write": 0.5, "ratio_read": 0.9}
    )
    plots = {p.name: p for p in render_plots(_run([_pair("d2d-copy-file-range", rows), copy]))}
    assert set(plots) == {"d2d-throughput.png", "stack-vs-bare.png"}
    for plot in plots.values():
        assert "emulated pmem (DRAM)" in plot.provenance and "6.1.0-57-amd64" in plot.provenance
        image = Image.open(io.BytesIO(plot.png))
        assert image.format == "PNG" and image.width > 300


def test_no_plot_is_drawn_by_hand_and_the_guest_never_loads_matplotlib():
    assert importlib.util.find_spec("pmemkit.report.svg") is None
    code = (
        "import sys, pmemkit.guest.runner, pmemkit.guest.experiments; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'markdown', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pmemkit_run_prints_where_report_html_is(tmp_path, monkeypatch):
    """`make run` is `pmemkit run`: its last line and its progress name report.html (VM faked)."""
    from click.testing import CliRunner

    from pmemkit.cli import main
    from tests.unit.test_rundir import SMALL_RUN, _fake_vm

    _fake_vm(
        monkeypatch,
        tmp_path,
        lambda share: (share / "observations.jsonl").write_text(_obs("mremap", "ok").to_json() + "\n"),
    )
    result = CliRunner().invoke(main, [*SMALL_RUN, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, (result.output, result.exception)
    (run,) = (tmp_path / "runs").iterdir()
    assert result.stdout.splitlines()[-1] == f"1 observations; report: {run / 'report.html'}"
    assert f"] report: {run / 'report.html'}" in result.stderr
    assert (run / "report.html").is_file() and (run / "observations.csv").is_file()
