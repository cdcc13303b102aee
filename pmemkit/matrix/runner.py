"""A matrix directory kept from start to end: matrix.json, one run directory per cell, the report.

Layout: OUT/matrix.json (the cells and where each stands, rewritten atomically as each ends),
OUT/cells/<cell id>/ (a completed cell's run directory, moved in by one rename: its presence is
what `--resume` trusts), OUT/attempts/<cell id>-<n>/ (where a cell runs; a failed or interrupted
attempt stays there to be read), OUT/report.md (the merged report of the completed cells).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmemkit import __version__
from pmemkit.matrix import merge as merging
from pmemkit.matrix.cells import Cell, MatrixError
from pmemkit.matrix.executors import CellJob, CellOutcome
from pmemkit.rundir import OBSERVATIONS, REPORT

ATTEMPTS = "attempts"


class Executor:  # the interface LocalExecutor and DaskExecutor share (typing only)
    def run(
        self, jobs: list[CellJob], progress: Callable[[str, str], None], done: Callable[[CellOutcome], None]
    ) -> None:
        raise NotImplementedError


@dataclass
class MatrixResult:
    out: Path
    report: Path | None
    done: list[str]
    skipped: list[str]
    failed: dict[str, str]


def cell_complete(out: Path, cell_id: str) -> bool:
    """A cell counts as made when its run directory was moved into cells/ with its observations
    and report (only a cell whose run ended without failure is moved there)."""
    run = out / merging.CELLS / cell_id
    return (
        run.is_dir() and not run.is_symlink() and (run / OBSERVATIONS).is_file() and (run / REPORT).is_file()
    )


def _matrix_doc(cells: list[Cell], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": merging.MATRIX_FORMAT,
        "made_by": "matrix",
        "pmemkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": settings,
        "cells": [{"id": c.cell_id(), "cell": c.to_dict(), "status": "pending"} for c in cells],
    }


def read_matrix(out: Path) -> dict[str, Any]:
    try:
        doc = json.loads((out / merging.MATRIX_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MatrixError(f"--resume: {out} holds no {merging.MATRIX_JSON}: not a matrix directory") from None
    except (OSError, ValueError) as exc:
        raise MatrixError(f"--resume: {out / merging.MATRIX_JSON} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("made_by") != "matrix" or not isinstance(doc.get("cells"), list):
        raise MatrixError(f"--resume: {out / merging.MATRIX_JSON} is not a matrix this pmemkit wrote")
    return doc


def resume_cells(out: Path, asked: list[Cell] | None) -> tuple[dict[str, Any], list[Cell]]:
    """The cells of the matrix in OUT; cells asked for on the command line must be the same ones."""
    doc = read_matrix(out)
    cells = [Cell.from_dict(entry.get("cell", {})) for entry in doc["cells"]]
    if asked is not None and {c.cell_id() for c in asked} != {c.cell_id() for c in cells}:
        raise MatrixError(
            f"--resume: the axes given make other cells than {out / merging.MATRIX_JSON} holds; give the "
            "same axes, or none (the matrix's own are used)"
        )
    return doc, cells


class MatrixRun:
    """One `pmemkit matrix` invocation over OUT (fresh, or resumed)."""

    def __init__(self, out: Path, doc: dict[str, Any], cells: list[Cell], say: Callable[[str], None]) -> None:
        self.out = out
        self.doc = doc
        self.cells = {c.cell_id(): c for c in cells}
        self.entries = {e["id"]: e for e in doc["cells"]}
        self.say = say
        self.start = time.monotonic()
        self.counts = {"done": 0, "failed": 0}

    def save(self) -> None:
        merging.write_json(self.out / merging.MATRIX_JSON, self.doc)

    def _attempt_dir(self, cell_id: str) -> Path:
        base = self.out / ATTEMPTS
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = base / f"{cell_id}-{n}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise MatrixError(f"{base}: 999 attempts of cell {cell_id}; clear some")

    def plan(self, resume: bool) -> tuple[list[CellJob], list[str]]:
        """The cells still to run (with a fresh attempt directory each) and those already made."""
        jobs, skipped = [], []
        for cell_id, cell in self.cells.items():
            entry = self.entries[cell_id]
            if resume and cell_complete(self.out, cell_id):
                entry["status"] = "done"
                skipped.append(cell_id)
                continue
            entry.update(status="pending", error=None)
            jobs.append(CellJob(cell_id, cell.to_dict(), self._attempt_dir(cell_id)))
        self.save()
        return jobs, skipped

    def progress(self, cell_id: str, message: str) -> None:
        index = list(self.cells).index(cell_id) + 1
        if message == "started":
            self.entries[cell_id]["status"] = "running"
        self.say(
            f"[{time.monotonic() - self.start:7.1f}s] cell {index}/{len(self.cells)} "
            f"{self.cells[cell_id].label()}: {message}"
        )

    def done(self, outcome: CellOutcome) -> None:
        """A cell ended: move a completed run into cells/, record where it stands, say so."""
        entry = self.entries[outcome.cell_id]
        entry["elapsed_s"] = outcome.elapsed_s
        if outcome.ok and outcome.run_dir is not None:
            target = self.out / merging.CELLS / outcome.cell_id
            target.parent.mkdir(exist_ok=True)
            os.rename(outcome.run_dir, target)  # one rename: a cell is either made or not
            try:
                outcome.run_dir.parent.rmdir()  # the attempt's directory, now empty
            except OSError:
                pass
            entry.update(status="done", run_dir=f"{merging.CELLS}/{outcome.cell_id}", error=None)
            self.counts["done"] += 1
            state = "done"
        else:
            where = outcome.run_dir.relative_to(self.out) if outcome.run_dir else None
            entry.update(status="failed", error=outcome.error, run_dir=str(where) if where else None)
            self.counts["failed"] += 1
            state = f"FAILED ({outcome.error})"
        self.save()
        left = sum(e["status"] in ("pending", "running") for e in self.entries.values())
        self.progress(
            outcome.cell_id,
            f"{state} in {outcome.elapsed_s:.1f} s; {self.counts['done']} done, "
            f"{self.counts['failed']} failed, {left} to go",
        )


def run_matrix(
    out: Path,
    cells: list[Cell],
    executor: Executor,
    resume: bool,
    settings: dict[str, Any],
    say: Callable[[str], None],
    doc: dict[str, Any] | None = None,
) -> MatrixResult:
    """Run the cells not yet made, then write the merged report of every made cell."""
    if doc is None:
        doc = _matrix_doc(cells, settings)
    else:
        doc["settings"] = {**doc.get("settings", {}), **settings}
    matrix = MatrixRun(out, doc, cells, say)
    jobs, skipped = matrix.plan(resume)
    if skipped:
        say(f"--resume: {len(skipped)} cell(s) already made, {len(jobs)} to run")
    try:
        if jobs:
            executor.run(jobs, matrix.progress, matrix.done)
    finally:
        for entry in doc["cells"]:
            if entry["status"] in ("pending", "running"):
                entry["status"] = "interrupted"
        matrix.save()
    made = [cid for cid in matrix.cells if cell_complete(out, cid)]
    report = None
    if made:
        runs = merging.load_runs([out / merging.CELLS / cid for cid in made])
        missing = [
            f"{matrix.cells[e['id']].label()} ({e['status']})" for e in doc["cells"] if e["id"] not in made
        ]
        report = merging.write_report(out, runs, missing)
    failed = {e["id"]: str(e.get("error")) for e in doc["cells"] if e["status"] == "failed"}
    return MatrixResult(out, report, [j.cell_id for j in jobs if j.cell_id in made], skipped, failed)
