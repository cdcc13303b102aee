"""Issue 9's first done-when: a new experiment is one new module, and it runs in the VM and appears in
the report with its metrics and the model join, with no edit to report/, guest/runner.py or cli.py.

One boot (ext4 on one small memmap device) from a copy of this checkout that differs only by one
added file, pmemkit/guest/experiments/toy.py. The copy's report/, runner and CLI are this checkout's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pmemkit.report.markdown import render
from pmemkit.report.rundir import contents_of, default_predictor
from pmemkit.rundir import RunDir
from tests.vm.helpers import pmemkit_argv, records, run_once

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
TOY = '''\
"""A toy experiment, added by tests/vm/test_vm_toy_experiment.py: one module, nothing else."""

import os
import time

from pmemkit.guest.experiments import register


@register("toy", kinds=("fs",))
def run(target, params):
    path = os.path.join(target.path, "toy.dat")
    start = time.perf_counter_ns()
    with open(path, "wb") as f:
        written = f.write(b"t" * 12345)
    yield target.observation(
        "toy",
        "toy-write",
        "ok",
        detail="wrote a small file on the DAX mount",
        metrics={"toy_written_bytes": written, "toy_elapsed_ns": time.perf_counter_ns() - start,
                 "toy_answer": 42, "units": {"toy_answer": "questions"}},
    )
'''


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    work = tmp_path_factory.mktemp("toy")
    checkout = work / "checkout"
    for part in ("pmemkit", "vm"):  # same vm/ recipe: the cached image is reused
        shutil.copytree(ROOT / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    toy = checkout / "pmemkit" / "guest" / "experiments" / "toy.py"
    assert not toy.exists()  # the experiment must really be new to the checkout
    toy.write_text(TOY)
    runs = work / "runs"
    argv = pmemkit_argv("run", runs, "--suite", "toy", "--pmem", "memmap:512M", "--fs", "ext4", "--json")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    return run_once(argv, runs, timeout=1500, cwd=checkout, env=env)


def test_toy_runs_in_the_vm(toy_run) -> None:
    result, run_dir = toy_run
    assert result.returncode == 0, result.stderr[-3000:]
    toys = [record for record in records(run_dir) if record["experiment"] == "toy"]
    assert len(toys) == 1, toys
    (toy,) = toys
    assert toy["operation"] == "toy-write" and toy["outcome"] == "ok"
    assert toy["metrics"]["toy_written_bytes"] == 12345
    assert toy["scenario"]["fs"] == "ext4" and toy["provenance"]["repetitions"] == 1


def test_toy_appears_in_the_report_with_metrics_and_model_join(toy_run) -> None:
    _, run_dir = toy_run
    # the detailed sections are report.html's (folded); read them as the Markdown they are made from
    with RunDir.open(run_dir) as run:
        contents = contents_of(run.load())
    report = render(contents, default_predictor(contents.warnings))
    assert "<summary>toy</summary>" in (run_dir / "report.html").read_text()
    start = report.index("\n## toy\n")
    section = report[start : report.index("\n## ", start + 1)]
    header = next(line for line in section.splitlines() if line.startswith("| target"))
    for column in ("toy_written_bytes (B)", "toy_elapsed_ns (ns)", "toy_answer (questions)"):
        assert f"| {column} |" in header, header
    row = next(line for line in section.splitlines() if "| toy-write |" in line)
    assert "| 12345 |" in row and "| 42 |" in row and "`ok`" in row
    assert "no prediction" in row  # the model has no rule for a toy: said, not hidden
    model = report[report.index("\n## Model vs kernel\n") :]
    model = model[: model.index("\n## ", 1)]
    assert "`toy-write`" in model.split("have no prediction")[1]
