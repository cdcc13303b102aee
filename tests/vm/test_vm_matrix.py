"""`pmemkit matrix` with two real cells (TCG, kernel 6.1, smoke suite, 256M devices, ext4): one boot
per cell, both at once (--jobs 2). No timing is asserted (scripts/bench-matrix.py measures it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm import helpers

pytestmark = pytest.mark.vm

CELLS = ["--pmem", "memmap:256M", "--pmem", "nvdimm:256M,mode=fsdax", "--fs", "ext4", "--suite", "smoke"]


def test_two_real_cells_at_once_and_merge_gives_the_same_report(tmp_path: Path) -> None:
    out = tmp_path / "matrix"
    argv = [
        sys.executable,
        "-m",
        "pmemkit",
        "matrix",
        *CELLS,
        "--accel",
        "tcg",
        "--jobs",
        "2",
        "--out",
        str(out),
    ]
    result = helpers.run(argv, out, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((out / "matrix.json").read_text())
    assert [e["status"] for e in doc["cells"]] == ["done", "done"]
    argvs = []
    for entry in doc["cells"]:
        run = out / entry["run_dir"]
        env = json.loads((run / "environment.json").read_text())
        assert env["failure"] is None and env["accel"] == "tcg"
        assert any(record["experiment"] == "smoke" for record in helpers.records(run))
        argvs.append(env["qemu_argv"])
    assert "2 at a time" in result.stderr  # both guests ran at once
    report = (out / "report.md").read_text()
    assert "# pmemkit matrix: 2 cells, 1 kernel(s), 2 configuration(s)" in report
    assert "memmap:256M" in report and "nvdimm:256M,mode=fsdax" in report
    # Separately made runs (here: the two cells' run directories, each on its own) merge into the same report.
    merged = tmp_path / "merged"
    cells = sorted((out / "cells").iterdir(), reverse=True)
    subprocess.run(
        [sys.executable, "-m", "pmemkit", "merge", *map(str, cells), "--out", str(merged)],
        check=True,
        timeout=120,
    )
    assert (merged / "report.md").read_text() == report
