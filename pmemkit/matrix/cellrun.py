"""One cell in a process of its own: `python -m pmemkit.matrix.cellrun --spec JSON --runs-dir DIR`.

Why a process per cell: `pmemkit.pipeline.run` handles SIGINT/SIGTERM/SIGHUP (ending qemu, writing
the report), which only the main thread of a process can; and a cell so run shares nothing with
another but the read-only image cache (its own run directory, its own scratch backing files, made
by `vm.run` with mkdtemp). Progress goes to stderr line by line; the last line on stdout is one
JSON object: {"ok", "run_dir", "error", "exit_code", "elapsed_s"}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXIT_INTERNAL = 3


def _watch_parent(parent: int) -> None:
    """End this cell (as a SIGTERM would: qemu stopped, report written) when the matrix that
    started it is gone, e.g. killed with SIGKILL: no orphan guest keeps running."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _only_run_dir(runs_dir: Path) -> Path | None:
    """The run directory `pipeline.run` made in this attempt's own runs directory (None: none yet)."""
    try:
        found = [p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return None
    return found[0] if len(found) == 1 else None


def run_cell(spec: dict[str, Any], runs_dir: Path) -> dict[str, Any]:
    """Carry out one cell through the pipeline's public entry points; never raises for an expected
    failure (it is the result's `error` and `exit_code`, the way `pmemkit run` would exit)."""
    from pmemkit import pipeline, units
    from pmemkit.matrix.cells import Cell
    from pmemkit.scenario import PmemConfig
    from pmemkit.vm.errors import VmError
    from pmemkit.vm.kernels import KernelSpec
    from pmemkit.vm.run import RunOptions

    start = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    result: dict[str, Any] = {"ok": False, "run_dir": None, "error": None, "exit_code": 0}
    try:
        cell = Cell.from_dict(spec)
        options = RunOptions(
            pmem=[PmemConfig.parse(p) for p in cell.pmem],
            suites=list(cell.suites),
            filesystems=list(cell.filesystems),
            accel=cell.accel,
            timeout_s=cell.timeout_s,
            memory=cell.memory,
            runs_dir=runs_dir,
            profile=cell.profile,
            kernel=KernelSpec(series=cell.kernel),
        )
        outcome = pipeline.run(pipeline.check(options), progress)
        result.update(ok=True, run_dir=str(outcome.run_dir), observations=outcome.observations)
    except units.InputError as exc:
        result.update(error=str(exc), exit_code=2)
    except VmError as exc:
        result.update(error=str(exc), exit_code=exc.exit_code)
    except OSError as exc:  # RunDirError (disk full, read-only) and the like
        result.update(error=str(exc), exit_code=getattr(exc, "exit_code", EXIT_INTERNAL))
    if result["run_dir"] is None:
        made = _only_run_dir(runs_dir)
        result["run_dir"] = None if made is None else str(made)
    result["elapsed_s"] = round(time.monotonic() - start, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pmemkit.matrix.cellrun")
    parser.add_argument("--spec", required=True, help="the cell as JSON (Cell.to_dict)")
    parser.add_argument("--runs-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    _watch_parent(os.getppid())
    try:
        spec = json.loads(args.spec)
    except ValueError as exc:
        print(json.dumps({"ok": False, "error": f"--spec is not JSON: {exc}", "exit_code": 2}))
        return 2
    result = run_cell(spec, args.runs_dir)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else int(result["exit_code"] or EXIT_INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
