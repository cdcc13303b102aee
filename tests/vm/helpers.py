"""What every VM test needs once: start `pmemkit` as a child, find its one run directory, read its
observations, find its qemu, and never leave the child or its qemu behind.

Why the care with children: `pmemkit` starts qemu in a session of its own (vm/boot.py), so
nothing ends qemu but pmemkit itself. A child started with `subprocess.run` is SIGKILLed on a
timeout and simply orphaned when pytest dies of SIGTERM; either way its qemu runs on, holding
gigabytes and a core. Here each child gets its own session too and is registered; on a timeout,
an exception, a test's teardown or a SIGTERM/SIGHUP to pytest it is sent SIGTERM (pmemkit then
ends its qemu and writes its report), given `GRACE_S`, then its process group is SIGKILLed and any
qemu still naming the child's directory is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from pmemkit.scenario import Observation

#: Seconds a child has after SIGTERM to end its qemu and write its report before it is SIGKILLed.
GRACE_S = 30.0
#: Signals to pytest that end its pmemkit children first (SIGINT already unwinds as KeyboardInterrupt).
ENDING = (signal.SIGTERM, signal.SIGHUP)

_live: dict[int, tuple[subprocess.Popen[Any], Path]] = {}
_lock = threading.RLock()  # re-entered by the signal handler if it lands inside `start`


def pmemkit_argv(command: str, runs: Path, *args: str) -> list[str]:
    """`python -m pmemkit COMMAND --accel tcg --runs-dir RUNS ARGS…`: how every VM test starts it."""
    return [sys.executable, "-m", "pmemkit", command, "--accel", "tcg", "--runs-dir", str(runs), *args]


def qemu_of(where: Path) -> list[psutil.Process]:
    """Every qemu on the machine whose command line names `where` (a run or runs directory)."""
    where = str(where)
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and "qemu-system" in cmdline[0] and any(where in a for a in cmdline):
            found.append(proc)
    return found


def start(argv: list[str], where: Path, **popen: Any) -> subprocess.Popen[Any]:
    """Popen `argv` in its own session, registered so that it and the qemu naming `where` end with
    the test (`end_all`) or with pytest."""
    with _lock:
        proc = subprocess.Popen(argv, start_new_session=True, **popen)
        _live[proc.pid] = (proc, Path(where).resolve())
    return proc


def end(proc: subprocess.Popen[Any], where: Path, grace_s: float | None = None) -> None:
    """SIGTERM (pmemkit's own clean-up), then after `grace_s` SIGKILL to its process group; then
    SIGKILL to any qemu still naming `where` (also when the child had ended by itself).

    Never blocks on the Popen's own wait: a signal handler may run this while the interrupted main
    thread is inside `proc.wait()`, holding the lock that call takes."""
    if proc.returncode is None and not _ended(proc.pid, 0):  # not reaped: the pid is still the child's
        os.kill(proc.pid, signal.SIGTERM)
        if not _ended(proc.pid, GRACE_S if grace_s is None else grace_s):
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # it leads its own group: all of it goes
            except (ProcessLookupError, PermissionError):
                pass
            _ended(proc.pid, 10)
    proc.poll()  # reap it when nobody else is waiting for it
    for qemu in qemu_of(where):
        try:
            qemu.kill()
        except psutil.Error:
            pass


def _ended(pid: int, timeout_s: float) -> bool:
    """Whether `pid` has exited (a zombie counts) within `timeout_s`; it is not reaped here."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def end_all() -> None:
    """End every registered child and its qemu (a test's teardown, or pytest being stopped)."""
    with _lock:
        live = list(_live.values())
        _live.clear()
    for proc, where in live:
        end(proc, where)


@contextmanager
def started(argv: list[str], where: Path, **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """`start`, and `end` on any exception (a timeout, KeyboardInterrupt, a failed assertion)."""
    proc = start(argv, where, **popen)
    try:
        yield proc
    except BaseException:
        end(proc, where)
        raise
    finally:
        with _lock:
            _live.pop(proc.pid, None)


def run(argv: list[str], where: Path, timeout: float, **popen: Any) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(argv, capture_output=True, text=True, timeout=timeout)`, except that a timeout
    or an interruption ends the child's qemu too (see the module's docstring)."""
    with started(argv, where, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen) as proc:
        stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def only_run_dir(runs: Path, result: subprocess.CompletedProcess[str] | None = None) -> Path:
    """The one run directory under `runs` (resolved); fails naming what is there and the child's
    last stderr."""
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, (dirs, result.stderr[-3000:] if result is not None else None)
    return dirs[0].resolve()


def run_once(
    argv: list[str], runs: Path, timeout: float, **popen: Any
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run pmemkit once (a module fixture's one boot): its result and its one run directory."""
    result = run(argv, runs, timeout, **popen)
    return result, only_run_dir(runs, result)


def records(run_dir: Path) -> list[dict[str, Any]]:
    """Every observation of RUN/observations.jsonl as the JSON object it was written as."""
    lines = (run_dir / "observations.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def observations(run_dir: Path, experiment: str | None = None) -> list[Observation]:
    """The run's observations (only `experiment`'s when given)."""
    found = [Observation.from_dict(record) for record in records(run_dir)]
    return [o for o in found if experiment is None or o.experiment == experiment]


def _on_signal(signum: int, frame: Any) -> None:
    """pytest is being stopped: end the children first, then die of the signal as it would have."""
    for sig in ENDING:
        signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the clean-up short
    try:
        end_all()
    finally:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the signal is delivered in here


def install_signal_handlers() -> dict[int, Any]:
    """Make SIGTERM/SIGHUP to this (pytest's) process end its pmemkit children first; returns the
    old handlers for `restore_signal_handlers`."""
    return {sig: signal.signal(sig, _on_signal) for sig in ENDING}


def restore_signal_handlers(old: dict[int, Any]) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)
