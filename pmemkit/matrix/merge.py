"""Run directories made anywhere (a matrix, `pmemkit run`, another machine, another day) → one
matrix directory: each run's identity read from its own files, duplicates and unreadable schemas
refused in one line before anything is written.

Why the identity comes from the run's files and not from where it lies: `pmemkit merge` of runs
made separately must give the same merged report as the matrix that could have made them.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmemkit import __version__, rundir
from pmemkit.matrix.cells import MatrixError
from pmemkit.report.markdown import RunContents

#: matrix.json's own format (not the observations' schema, which each run carries).
MATRIX_FORMAT = 1
MATRIX_JSON = "matrix.json"
REPORT = "report.md"
CELLS = "cells"


@dataclass(frozen=True)
class RunIdentity:
    """What makes a run one cell of a matrix: the kernel it booted and what it was asked to do."""

    kernel_release: str
    kernel_choice: str
    pmem: tuple[str, ...]
    filesystems: tuple[str, ...]
    suites: tuple[str, ...]
    profile: str

    def configuration(self) -> str:
        """Everything but the kernel: the rows of the merged report are compared across kernels."""
        parts = [" + ".join(self.pmem), "+".join(self.filesystems), "+".join(self.suites), self.profile]
        return " · ".join(parts)

    def shown(self) -> str:
        return f"kernel {self.kernel_release} ({self.kernel_choice}), {self.configuration()}"

    def cell_id(self) -> str:
        parts = [self.kernel_release, "+".join(self.pmem), "+".join(self.filesystems), "+".join(self.suites)]
        text = "_".join(parts)
        return re.sub(r"[^A-Za-z0-9.+=-]+", "-", text.replace(":", "-").replace(",", "-"))[:120]


def version_key(release: str) -> tuple[Any, ...]:
    """`6.12.118+deb13-amd64` → (6, 12, 118, …): kernels in version order, not string order."""
    return tuple(int(n) for n in re.findall(r"\d+", release)[:4]) + (release,)


def _pmem_spec(value: Any) -> str:
    from pmemkit.scenario import PmemConfig

    try:
        return PmemConfig(
            source=value["source"],
            size=int(value["size"]),
            start=value.get("start"),
            mode=value.get("mode"),
            map=value.get("map"),
        ).spec()
    except (TypeError, KeyError, ValueError):
        return json.dumps(value, sort_keys=True)


def identity_of(contents: RunContents) -> RunIdentity:
    plan, env, guest = contents.plan, contents.environment, contents.guest_environment
    kernel = env.get("kernel") if isinstance(env.get("kernel"), dict) else {}
    release = str(guest.get("kernel") or kernel.get("kernel_release") or "unknown")
    choice = str(kernel.get("kernel_choice") or kernel.get("kernel_package") or "?")

    def names(key: str) -> tuple[str, ...]:
        value = plan.get(key)
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    pmem = tuple(_pmem_spec(p) for p in plan.get("pmem", []) if isinstance(p, dict))
    return RunIdentity(
        release, choice, pmem, names("filesystems"), names("suites"), str(plan.get("profile", "quick"))
    )


@dataclass
class LoadedRun:
    path: Path
    contents: RunContents
    identity: RunIdentity


def load_run(path: Path) -> LoadedRun:
    """One run directory read through `rundir` (refuses a non-run or an unreadable schema, exit 2)."""
    from pmemkit.report.rundir import contents_of

    with rundir.RunDir.open(path) as run:
        files = run.load()
    contents = contents_of(files)
    contents.name = ""  # where a run lies is not part of what it says: the report must not differ by it
    return LoadedRun(Path(path), contents, identity_of(contents))


def load_runs(paths: list[Path]) -> list[LoadedRun]:
    """Every run, refusing the same directory twice and two runs of the same cell (one line each)."""
    seen: dict[Path, Path] = {}
    for path in paths:
        real = Path(path).resolve()
        if real in seen:
            raise MatrixError(f"{path} is given twice (as {seen[real]} too): each run directory once")
        seen[real] = Path(path)
    runs = [load_run(p) for p in paths]
    by_identity: dict[RunIdentity, LoadedRun] = {}
    for run in runs:
        other = by_identity.get(run.identity)
        if other is not None:
            raise MatrixError(
                f"{other.path} and {run.path} are the same cell ({run.identity.shown()}): merge one of them"
            )
        by_identity[run.identity] = run
    return sorted(runs, key=lambda r: (version_key(r.identity.kernel_release), r.identity.configuration()))


def copy_run_dir(source: Path, target: Path) -> None:
    """A run directory's own files (regular files and plots/, no links, not guest/) into `target`."""
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.is_symlink():
            continue
        if path.is_file():
            shutil.copy2(path, target / path.name)
        elif path.is_dir() and path.name == "plots":
            (target / "plots").mkdir()
            for plot in sorted(path.iterdir()):
                if plot.is_file() and not plot.is_symlink():
                    shutil.copy2(plot, target / "plots" / plot.name)


def default_out(prefix: str) -> Path:
    return Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def fresh_out(out: Path) -> Path:
    """The matrix directory: made now, or an existing empty one; anything else is refused (exit 2)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MatrixError(f"--out {out} exists and is not an empty directory: give a new one (or --resume)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MatrixError(f"--out {out}: cannot be made: {exc.strerror or exc}") from None
    return out


def write_json(path: Path, value: dict[str, Any]) -> None:
    rundir.write_atomic(path, json.dumps(value, indent=2) + "\n")


def write_report(out: Path, runs: list[LoadedRun], missing: list[str] | None = None) -> Path:
    """The merged report of these runs, written to OUT/report.md (fresh file renamed in)."""
    from pmemkit.matrix.report import render_matrix

    rundir.write_atomic(out / REPORT, render_matrix([(r.identity, r.contents) for r in runs], missing))
    return out / REPORT


def merge(paths: list[Path], out: Path) -> tuple[Path, list[LoadedRun]]:
    """`pmemkit merge`: check every run first, then copy them into OUT/cells/ and write
    matrix.json and the merged report."""
    runs = load_runs(paths)
    fresh_out(out)
    cells = []
    for run in runs:
        cell_dir = out / CELLS / run.identity.cell_id()
        copy_run_dir(run.path, cell_dir)
        cells.append(
            {
                "id": run.identity.cell_id(),
                "kernel": run.identity.kernel_release,
                "configuration": run.identity.configuration(),
                "status": "failed" if run.contents.failure else "done",
                "error": run.contents.failure,
                "run_dir": f"{CELLS}/{run.identity.cell_id()}",
                "merged_from": str(run.path.resolve()),
            }
        )
    write_json(
        out / MATRIX_JSON,
        {
            "format": MATRIX_FORMAT,
            "made_by": "merge",
            "pmemkit_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cells": cells,
        },
    )
    return write_report(out, runs), runs
