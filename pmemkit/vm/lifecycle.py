"""SIGINT, SIGTERM and SIGHUP become one exception; child process groups never outlive pmemkit.

Why: qemu runs in its own session (so a Ctrl-C typed in the terminal cannot kill it half-way
through a write), which also means nothing ends it unless pmemkit does. A signal therefore has to
unwind through the same code as any other failure: end qemu's whole group, remove its scratch
files, keep and report the partial results, then exit 128 + the signal's number.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from types import FrameType, TracebackType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 3.0  # qemu exits within a second of SIGTERM; past this it gets SIGKILL
KILL_WAIT_S = 5.0


class Interrupted(BaseException):
    """A handled signal arrived. A BaseException, like KeyboardInterrupt, so `except Exception`
    in the middle of the work cannot swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signal.Signals(signum)
        super().__init__(f"interrupted by {self.signum.name}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a death by this signal: 130, 143, 129."""
        return 128 + int(self.signum)


#: True in the pmemkit program itself (cli's `main` run with its own argv), false for any in-process
#: caller (a test runner, a library user): see `on_the_way_out`.
_program_exits = False


def program_exits_on_signal() -> None:
    """Say that this process is the pmemkit command, which exits once a handled signal has unwound."""
    global _program_exits
    _program_exits = True


def on_the_way_out() -> None:
    """After the first handled signal the pmemkit command only cleans up and exits 128+n: ignore any
    later SIGINT/SIGTERM/SIGHUP from here to the exit. Why: a closing terminal sends SIGHUP more
    than once (to the foreground job, then again when its session leader exits); restoring the
    default handler after the clean-up would let the second one kill pmemkit before it prints its
    line and exits 129. An in-process caller gets its old handlers back instead (SignalGuard)."""
    if _program_exits and threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. Zombies do not count: a grandchild reparented
    to an init that reaps slowly (or never, in some containers) is dead all the same."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def end_group(
    proc: subprocess.Popen[Any], grace_s: float = GRACE_S, kill_wait_s: float = KILL_WAIT_S
) -> bool:
    """End the process group led by `proc` (SIGTERM, then SIGKILL after `grace_s`) and reap its
    leader; True when no process of the group is left."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, kill_wait_s)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader: a zombie would keep the group "alive"
            if proc.returncode is not None and not _group_alive(proc.pid):
                return True
            time.sleep(0.02)
    proc.poll()
    return proc.returncode is not None and not _group_alive(proc.pid)


class ProcessGroups:
    """The child process groups (each led by a process started with start_new_session=True) that
    must be ended whatever way pmemkit leaves."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[Any]] = {}
        self._lock = threading.Lock()

    def add(self, proc: subprocess.Popen[Any]) -> None:
        with self._lock:
            self._procs[proc.pid] = proc

    def discard(self, proc: subprocess.Popen[Any]) -> None:
        with self._lock:
            self._procs.pop(proc.pid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._procs)

    def end_all(self, grace_s: float = GRACE_S) -> list[int]:
        """End every registered group; return the leaders' pids of those that were still running."""
        with self._lock:
            procs = list(self._procs.values())
            self._procs.clear()
        ended = []
        for proc in procs:
            if proc.poll() is None or _group_alive(proc.pid):
                ended.append(proc.pid)
            end_group(proc, grace_s)
        return ended


class SignalGuard:
    """While entered: the first SIGINT/SIGTERM/SIGHUP raises Interrupted (now, or when `release()`
    is called if it came while held); later ones are ignored so the cleanup they asked for can
    finish. On exit: registered child groups are ended, then the old handlers restored.

    Handlers can only be installed from the main thread; elsewhere the guard installs none and
    only ends the child groups on exit.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = HANDLED, children: ProcessGroups | None = None):
        self.signals = signals
        self.children = children if children is not None else ProcessGroups()
        self.received: signal.Signals | None = None
        self.stage = "starting"  # what was going on, for the message when a signal stops it
        self._raised = False
        self._held = False
        self._old: dict[signal.Signals, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._held = True  # a signal during the cleanup below must not cut it short
        try:
            self.children.end_all()
        finally:
            for sig, old in self._old.items():
                signal.signal(sig, old)
            self._old.clear()
            if self.received is not None:
                on_the_way_out()
        if exc_type is None and self.received is not None and not self._raised:
            self._raised = True
            raise Interrupted(self.received)  # held and never released: still not lost

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signal.Signals(signum)
        if not self._held:
            self._raised = True
            raise Interrupted(signum)

    def hold(self) -> None:
        """Record signals from now on instead of raising them (short sections that must not be cut)."""
        self._held = True

    def release(self) -> None:
        """Raise again on signals; one that arrived while held is raised now."""
        self._held = False
        if self.received is not None and not self._raised:
            self._raised = True
            raise Interrupted(self.received)
