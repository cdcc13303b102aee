"""Start qemu, stream its serial console, time the boot phases, and never leave it running.

Why a reader thread and a deadline: a guest that hangs must be killed after its timeout, and a
guest that crashes must still leave its console log and whatever results it wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from pmemkit.vm.lifecycle import Interrupted, ProcessGroups, SignalGuard, end_group

PHASE_PREFIX = "PMEMKIT-PHASE "
READ_CHUNK = 65536


class ConsoleRelay(Protocol):
    """Who else reads the console (`pmemkit exec`, `pmemkit shell`: `pmemkit.vm.session`).

    `raw` gets every chunk as it arrives (a shell prompt ends in no newline), `line` every whole
    line and says whether it was the relay's (then it makes no progress line); an `interactive`
    relay gets qemu's stdin, and `feed` runs in a thread of its own to write into it.
    """

    interactive: bool

    def raw(self, chunk: bytes) -> None: ...

    def line(self, text: str) -> bool: ...

    def feed(self, stdin: IO[bytes]) -> None: ...


KERNEL_BANNER = "Linux version "


@dataclass
class BootResult:
    """How the guest ended, and when each phase was reached (seconds since qemu started)."""

    returncode: int | None
    timed_out: bool
    elapsed_s: float
    phases: dict[str, float] = field(default_factory=dict)
    guest_rc: int | None = None
    panic: str | None = None
    fatal: str | None = None
    stderr: str = ""
    interrupted: str | None = None  # the signal (SIGTERM, …) that stopped the boot
    console_error: str | None = None  # why guest-console.log is incomplete, if it is
    qemu_left: int | None = None  # the process group that survived SIGKILL (stuck in the kernel)
    #: `kill_on`: seconds since qemu started when its line was seen and qemu was sent SIGKILL
    killed_at: float | None = None

    @property
    def finished(self) -> bool:
        """The guest ran its plan to the end and powered off."""
        return "done" in self.phases and not self.timed_out


def parse_console_line(line: str, now: float, result: BootResult) -> str | None:
    """Update `result` from one console line; return the text of a progress line, if any."""
    if KERNEL_BANNER in line and "kernel" not in result.phases:
        result.phases["kernel"] = now
    if "Kernel panic" in line and result.panic is None:
        result.panic = line.strip()
    if "PMEMKIT-FATAL" in line and result.fatal is None:
        result.fatal = line.split("PMEMKIT-FATAL", 1)[1].strip()
    if line.startswith(PHASE_PREFIX):
        words = line[len(PHASE_PREFIX) :].split()
        if words:
            name = words[0]
            result.phases.setdefault(name, now)
            for word in words[1:]:
                if word.startswith("rc="):
                    try:
                        result.guest_rc = int(word[3:])
                    except ValueError:
                        pass
            return f"guest phase: {name} at {now:.1f} s"
    if line.startswith("PMEMKIT-STEP "):
        return line[len("PMEMKIT-STEP ") :].strip()
    if line.startswith("PMEMKIT-OBS "):
        return "observed " + line[len("PMEMKIT-OBS ") :].strip()
    return None


def boot(
    argv: list[str],
    console_log: Path,
    timeout_s: float | None,
    progress: Callable[[str], None] = print,
    guard: SignalGuard | None = None,
    relay: ConsoleRelay | None = None,
    kill_on: str | None = None,
) -> BootResult:
    """Run qemu until it exits, `timeout_s` passes (None: no limit, for an interactive shell) or
    `guard` catches a signal; then make sure its whole process group is gone. A signal ends the
    boot like a timeout: the result says which. A `relay` also reads the console (and, when
    interactive, writes qemu's stdin). `kill_on`: a console line holding this text makes the
    console reader send qemu's process group SIGKILL at once (`--suite crash`: a power cut after
    the guest's writes); the guest's text can do nothing else."""
    start = time.monotonic()
    result = BootResult(returncode=None, timed_out=False, elapsed_s=0.0)
    if guard is not None:
        guard.hold()  # between Popen and registering the child, a signal must not lose it
        if guard.received is not None:
            result.interrupted = guard.received.name  # it came before qemu started: start none
            return result
    children = guard.children if guard is not None else ProcessGroups()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if relay is not None and relay.interactive else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: killed as a whole, never orphaned
    )
    children.add(proc)
    result.phases["qemu"] = 0.0
    stderr_chunks: list[bytes] = []
    readers = [
        threading.Thread(
            target=_read_console,
            args=(proc, console_log, start, result, progress, relay, kill_on),
            daemon=True,
        ),
        threading.Thread(target=lambda: stderr_chunks.append(_read_all(proc.stderr)), daemon=True),
    ]
    feeder = None
    if relay is not None and proc.stdin is not None:
        feeder = threading.Thread(target=relay.feed, args=(proc.stdin,), daemon=True)  # never joined:
        feeder.start()  # it may be blocked reading the user's terminal when qemu has gone
    for thread in readers:
        thread.start()
    try:
        if guard is not None:
            guard.release()  # a signal held since hold() is raised here, inside the try
        result.returncode = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        result.timed_out = True
    except Interrupted as exc:
        result.interrupted = exc.signum.name
    finally:
        if guard is not None:
            guard.hold()  # the cleanup and the report after it run to the end
        if not end_group(proc):  # a signal, a timeout or any error: no stray qemu
            result.qemu_left = proc.pid
        children.discard(proc)
        for thread in readers:
            thread.join(timeout=5)
        result.returncode = proc.returncode
        result.elapsed_s = time.monotonic() - start
        result.stderr = b"".join(stderr_chunks).decode(errors="replace").strip()
    return result


def _read_all(stream: IO[bytes] | None) -> bytes:
    assert stream is not None
    return stream.read()


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """What the console has so far, as soon as it has it (a line iterator would hold back a prompt)."""
    fd = stream.fileno()
    while True:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def _read_console(
    proc: subprocess.Popen[bytes],
    console_log: Path,
    start: float,
    result: BootResult,
    progress: Callable[[str], None],
    relay: ConsoleRelay | None = None,
    kill_on: str | None = None,
) -> None:
    """Save the console and parse it as it comes, line by line. A full or failing disk stops the
    saving, never the parsing: the run must still see its phase markers, end, and report."""

    def kill_at_marker(line: str) -> None:
        if kill_on is not None and result.killed_at is None and kill_on in line:
            result.killed_at = round(time.monotonic() - start, 3)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # qemu leads its own group (start_new_session)
            except ProcessLookupError:
                pass  # it had already gone

    assert proc.stdout is not None
    log: IO[bytes] | None = None
    try:
        fd = os.open(console_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        log = os.fdopen(fd, "wb")
    except OSError as exc:
        result.console_error = f"{console_log.name} could not be opened: {exc.strerror or exc}"
    saved = 0
    partial = b""
    for raw in _chunks(proc.stdout):
        if relay is not None:
            try:
                relay.raw(raw)
            except OSError:
                pass  # the user's terminal went away: the console is still drained and parsed
        if log is not None:
            try:
                log.write(raw)
                log.flush()
                saved += len(raw)
            except OSError as exc:
                result.console_error = (
                    f"{console_log.name} stopped after {saved} bytes: {exc.strerror or exc}"
                )
                log = _close_quietly(log)
        *lines, partial = (partial + raw).split(b"\n")
        for whole in lines:
            kill_at_marker(whole.decode(errors="replace"))
            _parse_line(whole + b"\n", time.monotonic() - start, result, progress, relay)
    if partial:
        _parse_line(partial, time.monotonic() - start, result, progress, relay)
    if log is not None:
        try:
            log.close()
        except OSError as exc:
            result.console_error = f"{console_log.name} could not be completed: {exc.strerror or exc}"


def _parse_line(
    raw: bytes,
    now: float,
    result: BootResult,
    progress: Callable[[str], None],
    relay: ConsoleRelay | None,
) -> None:
    """One console line: the relay's if it claims it, else phases, panics and a progress line."""
    line = raw.decode(errors="replace").replace("\r", "")
    if relay is not None and relay.line(line.rstrip("\n")):
        return  # the user's bytes: a shell line saying "Kernel panic" is no panic of the guest's
    message = parse_console_line(line, now, result)
    if message:
        try:
            progress(message)
        except OSError:
            pass  # a closed or full stderr must not stop the console from being drained


def _close_quietly(log: IO[bytes]) -> None:
    try:
        log.close()
    except OSError:
        pass  # the buffered bytes that failed to flush are lost; the error is already recorded
    return None
