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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PHASE_PREFIX = "PMEMKIT-PHASE "
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
    timeout_s: float,
    progress: Callable[[str], None] = print,
) -> BootResult:
    """Run qemu until it exits or `timeout_s` passes; then make sure it is gone."""
    start = time.monotonic()
    result = BootResult(returncode=None, timed_out=False, elapsed_s=0.0)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: killed as a whole, never orphaned
    )
    result.phases["qemu"] = 0.0
    stderr_chunks: list[bytes] = []

    def read_console() -> None:
        assert proc.stdout is not None
        with open(console_log, "wb") as log:
            for raw in proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").replace("\r", "")
                message = parse_console_line(line, time.monotonic() - start, result)
                if message:
                    progress(message)

    def read_stderr() -> None:
        assert proc.stderr is not None
        stderr_chunks.append(proc.stderr.read())

    readers = [threading.Thread(target=fn, daemon=True) for fn in (read_console, read_stderr)]
    for thread in readers:
        thread.start()
    try:
        result.returncode = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        result.timed_out = True
        _kill(proc)
    except BaseException:
        _kill(proc)  # Ctrl-C or any error: no stray qemu
        raise
    finally:
        for thread in readers:
            thread.join(timeout=5)
        result.elapsed_s = time.monotonic() - start
        result.stderr = b"".join(stderr_chunks).decode(errors="replace").strip()
    return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
