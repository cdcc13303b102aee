"""Where cells run: `local` (one process per cell on this host) or `dask` (a dask.distributed cluster).

Both start the same cell process (`python -m pmemkit.matrix.cellrun`, or a test's stand-in given
as `command`); the local executor waits for it in a thread per running cell, the dask executor
asks the cluster to run it on a worker and bring the run directory back as files. Neither is a
scheduler of its own: the local one is a ThreadPoolExecutor of `jobs` threads, the other is Dask.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmemkit.vm.errors import VmError

#: The cell process: one `pmemkit.pipeline` run (see cellrun.py).
CELL_COMMAND = (sys.executable, "-m", "pmemkit.matrix.cellrun")
#: Seconds a cell has, after SIGTERM, to stop its guest and write its report before SIGKILL.
STOP_GRACE_S = 30.0
#: The most a run directory brought back from a Dask worker may unpack to.
MAX_ARCHIVE_BYTES = 512 * 2**20
STDERR_TAIL = 20


class ExecutorError(VmError):
    """The executor itself cannot work (dask not installed, scheduler unreachable): exit 3."""


@dataclass(frozen=True)
class CellJob:
    """One cell to run: its id, its spec (Cell.to_dict) and a fresh directory for its run."""

    cell_id: str
    spec: dict[str, Any]
    attempt_dir: Path


@dataclass
class CellOutcome:
    cell_id: str
    ok: bool
    run_dir: Path | None
    error: str | None
    exit_code: int
    elapsed_s: float


Progress = Callable[[str, str], None]  # (cell id, message)
Done = Callable[[CellOutcome], None]


def _argv(command: Sequence[str], spec: dict[str, Any], runs_dir: Path) -> list[str]:
    return [*command, "--spec", json.dumps(spec), "--runs-dir", str(runs_dir)]


def _parse_result(stdout: str, returncode: int, stderr_tail: list[str]) -> dict[str, Any]:
    """The cell process's last stdout line; a process that died without one is said as such."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    why = stderr_tail[-1] if stderr_tail else "no output"
    return {
        "ok": False,
        "error": f"the cell process ended with status {returncode} and no result ({why})",
        "exit_code": 3,
        "run_dir": None,
    }


def run_cell_process(
    command: Sequence[str],
    spec: dict[str, Any],
    runs_dir: Path,
    on_line: Callable[[str], None],
    started: Callable[[subprocess.Popen[str]], None] = lambda p: None,
) -> dict[str, Any]:
    """Run one cell process to its end, passing each stderr line on; returns its result object.

    Its own session: a Ctrl-C typed at the matrix reaches the matrix alone, which then stops each
    cell with SIGTERM (each cell stops its guest and writes its report)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        _argv(command, spec, runs_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    started(proc)
    tail: list[str] = []
    out: list[str] = []
    reader = threading.Thread(
        target=lambda: out.append(proc.stdout.read() if proc.stdout else ""), daemon=True
    )
    reader.start()
    assert proc.stderr is not None
    for line in proc.stderr:
        line = line.rstrip("\n")
        tail = (tail + [line])[-STDERR_TAIL:]
        on_line(line)
    proc.wait()
    reader.join()
    result = _parse_result("".join(out), proc.returncode, tail)
    result["stderr_tail"] = tail
    return result


def _outcome(cell_id: str, result: dict[str, Any], run_dir: Path | None, elapsed: float) -> CellOutcome:
    return CellOutcome(
        cell_id=cell_id,
        ok=bool(result.get("ok")) and run_dir is not None,
        run_dir=run_dir,
        error=None if result.get("ok") else str(result.get("error") or "the cell failed"),
        exit_code=int(result.get("exit_code") or 0),
        elapsed_s=round(elapsed, 2),
    )


class LocalExecutor:
    """`jobs` cells at a time, each a process on this host."""

    def __init__(self, jobs: int, command: Sequence[str] = CELL_COMMAND) -> None:
        self.jobs = jobs
        self.command = list(command)
        self._running: dict[int, subprocess.Popen[str]] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def _one(self, job: CellJob, progress: Progress) -> CellOutcome:
        start = time.monotonic()
        if self._stopping:
            return CellOutcome(job.cell_id, False, None, "not started: the matrix was stopped", 0, 0.0)

        def started(proc: subprocess.Popen[str]) -> None:
            with self._lock:
                self._running[proc.pid] = proc
                late = self._stopping  # began while stop() ran: it ends now too
            if late:
                os.kill(proc.pid, signal.SIGTERM)

        progress(job.cell_id, "started")
        result = run_cell_process(
            self.command, job.spec, job.attempt_dir, lambda line: progress(job.cell_id, line), started
        )
        with self._lock:
            for pid, proc in list(self._running.items()):
                if proc.returncode is not None:
                    del self._running[pid]
        run_dir = Path(result["run_dir"]) if result.get("run_dir") else None
        return _outcome(job.cell_id, result, run_dir, time.monotonic() - start)

    def run(self, jobs: list[CellJob], progress: Progress, done: Done) -> None:
        """Run every job; `done` is called in this (the main) thread as each cell ends. A signal
        raised here (SignalGuard) stops every running cell before it propagates."""
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="cell")
        try:
            futures = [pool.submit(self._one, job, progress) for job in jobs]
            for future in as_completed(futures):
                done(future.result())
        except BaseException:
            self.stop()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every running cell (it stops its guest and writes its report), SIGKILL after grace."""
        with self._lock:
            self._stopping = True
            procs = list(self._running.values())
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- Dask ------------------------------------------------------------------------------------------


def pack_run_dir(run_dir: Path) -> bytes:
    """The run directory as a tar.gz: its regular files and plots/, never a link, never guest/ (the
    guest's own share, already collected into the run directory by the host)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(run_dir.iterdir()):
            if path.is_symlink():
                continue
            if path.is_file():
                tar.add(path, arcname=path.name, recursive=False)
            elif path.is_dir() and path.name == "plots":
                for plot in sorted(path.iterdir()):
                    if plot.is_file() and not plot.is_symlink():
                        tar.add(plot, arcname=f"plots/{plot.name}", recursive=False)
    return buffer.getvalue()


def unpack_run_dir(archive: bytes, target: Path) -> None:
    """Unpack a worker's archive into `target` (made here): regular files and directories only,
    no absolute or `..` names, bounded in size (tarfile's `data` filter, plus a size cap)."""
    target.mkdir(parents=True)
    total = 0
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            if not (member.isfile() or member.isdir()):
                raise ExecutorError(f"a worker's run directory holds {member.name!r}, not a regular file")
            total += member.size
        if total > MAX_ARCHIVE_BYTES:
            raise ExecutorError(
                f"a worker's run directory unpacks to {total} bytes, over {MAX_ARCHIVE_BYTES}"
            )
        tar.extractall(target, members=members, filter="data")


def dask_cell(spec: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """What a Dask worker runs: the cell process in a directory of its own, then the run
    directory as bytes (the worker's copy removed), so no filesystem is shared with the client."""
    work = Path(tempfile.mkdtemp(prefix="pmemkit-cell-"))
    start = time.monotonic()
    try:
        lines: list[str] = []
        result = run_cell_process(command, spec, work / "runs", lines.append)
        result.setdefault("elapsed_s", round(time.monotonic() - start, 2))
        run_dir = result.get("run_dir")
        if run_dir and Path(run_dir).is_dir():
            result["archive"] = pack_run_dir(Path(run_dir))
            result["run_name"] = Path(run_dir).name
        result["host"] = os.uname().nodename
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


class DaskExecutor:
    """Each cell a task on a dask.distributed cluster; the run directory comes back as files.

    Each worker thread runs one guest: start workers with `--nthreads` no more than the guests
    their host holds (each cell checks its host's memory before it boots, and refuses if short).
    """

    def __init__(
        self, scheduler: str, command: Sequence[str] = CELL_COMMAND, timeout_s: float = 30.0
    ) -> None:
        self.scheduler = scheduler
        self.command = list(command)
        self.timeout_s = timeout_s
        self.client: Any = None

    def _client(self) -> Any:
        try:
            from distributed import Client
        except ImportError:
            raise ExecutorError(
                "--executor dask needs dask.distributed: pip install 'pmemkit[dask]'"
            ) from None
        try:
            return Client(self.scheduler, timeout=self.timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExecutorError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None

    def run(self, jobs: list[CellJob], progress: Progress, done: Done) -> None:
        from distributed import as_completed as dask_completed

        client = self._client()
        futures: dict[Any, CellJob] = {}
        try:
            for job in jobs:
                future = client.submit(
                    dask_cell,
                    job.spec,
                    self.command,
                    pure=False,
                    key=f"pmemkit-{job.cell_id}-{os.urandom(4).hex()}",
                )
                futures[future] = job
                progress(job.cell_id, f"submitted to {self.scheduler}")
            for future in dask_completed(list(futures)):
                job = futures[future]
                start = time.monotonic()
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker's failure is this cell's, not the matrix's
                    done(CellOutcome(job.cell_id, False, None, f"the Dask task failed: {exc}", 3, 0.0))
                    continue
                run_dir = None
                if "archive" in result:
                    run_dir = job.attempt_dir / (Path(str(result.get("run_name") or "run")).name or "run")
                    unpack_run_dir(result.pop("archive"), run_dir)
                progress(job.cell_id, f"ran on {result.get('host', '?')}")
                outcome = _outcome(job.cell_id, result, run_dir, time.monotonic() - start)
                outcome.elapsed_s = float(result.get("elapsed_s") or 0.0)
                done(outcome)
        except BaseException:
            client.cancel(list(futures))
            raise
        finally:
            client.close()
