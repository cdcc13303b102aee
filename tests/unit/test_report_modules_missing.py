"""A machine without the report's modules (matplotlib, markdown): `pmemkit report RUN` and
`run --target local` keep the run as it is and say in one line (exit 4) how to render it elsewhere;
both count the observations the way the renderer does (what parsed), never by lines."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pmemkit.guest.experiments
import pmemkit.guest.probe
import pmemkit.guest.runner
import pmemkit.guest.safety
from pmemkit import local, pipeline
from pmemkit.guest.probe import Namespace

ROOT = Path(__file__).resolve().parents[2]
#: `pmemkit report RUN` in a fresh interpreter where importing matplotlib and markdown fails, as on
#: a bare machine running pmemkit from source (pmemkit's own guest).
BLOCKED = (
    "import sys\n"
    "sys.modules['matplotlib'] = None\n"
    "sys.modules['markdown'] = None\n"
    "from pmemkit.cli import main\n"
    "sys.argv = ['pmemkit', 'report', sys.argv[1]]\n"
    "main()\n"
)


def _digests(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir())}


def test_report_without_the_modules_is_one_line_exit_4_and_writes_nothing(recorded_run: Path) -> None:
    before = _digests(recorded_run)
    argv = [sys.executable, "-c", BLOCKED, str(recorded_run)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("pmemkit: error: report not rendered: matplotlib markdown not installed here")
    assert f"render them with `pmemkit report {recorded_run}` on a machine that has them" in line
    parsed = len([x for x in (recorded_run / "observations.jsonl").read_text().splitlines() if x.strip()])
    assert f"the {parsed} observation(s) are kept in {recorded_run}" in line
    assert _digests(recorded_run) == before  # the observations kept, nothing written beside them


def test_missing_modules_and_a_rendered_report_give_the_same_count(recorded_run: Path, monkeypatch) -> None:
    with (recorded_run / "observations.jsonl").open("a") as f:
        f.write("\n{not json}\n")  # a blank and a broken line: neither is an observation
    lines = len((recorded_run / "observations.jsonl").read_text().splitlines())
    monkeypatch.setattr(pipeline, "missing_report_modules", lambda: ["markdown"])
    with pytest.raises(pipeline.ReportModulesMissing) as caught:
        pipeline.render_report(recorded_run)
    assert caught.value.exit_code == 4 and caught.value.missing == ("markdown",)
    assert not (recorded_run / "report.md").exists()
    monkeypatch.undo()
    _, rendered = pipeline.render_report(recorded_run)
    assert caught.value.observations == rendered == lines - 2


def test_missing_report_modules_treats_a_blocked_import_as_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "markdown", None)  # find_spec raises ValueError for it
    assert pipeline.missing_report_modules() == ["markdown"]


def test_a_local_run_without_the_modules_counts_what_parsed(tmp_path: Path, monkeypatch) -> None:
    """run_local up to the runner (stubbed: no device is touched); its observations file holds two
    observations and a line that is none. The local result must count 2, as the renderer would."""
    recorded = ROOT / "tests/unit/fixtures/run-6.1-default/observations.jsonl"
    record = json.loads(recorded.read_text().splitlines()[0])

    def ran(plan, out_dir, devices, *, destroy_data, force):
        lines = [json.dumps(record), json.dumps(record), "{half a line"]
        (out_dir / "observations.jsonl").write_text("\n".join(lines) + "\n")
        return 0

    found = Namespace("namespace0.0", "region0", "e820", "raw", None, 256 << 20, "pmem0", None, resource=1)
    monkeypatch.setattr(pmemkit.guest.experiments, "load_all", lambda: None)
    monkeypatch.setattr(local.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(pmemkit.guest.probe, "namespaces", lambda: [found])
    monkeypatch.setattr(pmemkit.guest.safety, "clear_for_destruction", lambda *a, **k: None)
    monkeypatch.setattr(pmemkit.guest.runner, "local_run", ran)
    monkeypatch.setattr(pipeline, "missing_report_modules", lambda: ["matplotlib", "markdown"])
    result = local.run_local(
        ["/dev/pmem0"], ["smoke"], ["ext4"], tmp_path, "quick", destroy_data=True, force=False, progress=print
    )
    assert result.report is None and result.report_missing == ("matplotlib", "markdown")
    assert result.observations == 2
    assert not (result.run_dir / "report.md").exists()
