"""`pmemkit exec` and `pmemkit shell`, host side: what the guest is asked to run, the files staged for
it, and the relays that turn its console back into the user's stdout, stderr and terminal.

Why relays on the console: the guest (`pmemkit.guest.session`) frames the command's output as
`PMEMKIT-OUT1/2 <base64>` lines and its status as `PMEMKIT-EXIT <n>`, and brackets the shell
between `PMEMKIT-SHELL-BEGIN` and `PMEMKIT-SHELL-END`. `vm.boot` hands every console chunk and
line to a relay; everything else it does (log, phases, timeout, signals, ending qemu) stays the
same as for `run`. The guest is untrusted: a frame that does not decode is dropped with a count,
the status is a number 0–255 or nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pmemkit import rundir, units
from pmemkit.vm.errors import VmConfigError

OUT_PREFIX = {"PMEMKIT-OUT1 ": 1, "PMEMKIT-OUT2 ": 2}
EXIT_PREFIX = "PMEMKIT-EXIT "
SHELL_BEGIN = b"PMEMKIT-SHELL-BEGIN"
SHELL_END = b"PMEMKIT-SHELL-END"
COPY_IN_SHARE = "copy-in"
#: All --copy-in files together: a test binary is megabytes; the share sits on the host's disk.
MAX_COPY_IN_BYTES = 256 << 20
#: Typed on the host during `pmemkit shell`: ends the session (the guest is stopped, exit 130).
ESCAPE_BYTE = b"\x1d"  # Ctrl-]
EOF_BYTE = b"\x04"  # Ctrl-D


@dataclass(frozen=True)
class CopyIn:
    """A host file the user named with --copy-in: where it is, the name and mode it gets in the guest."""

    source: Path
    name: str
    mode: int
    size: int


def check_copy_ins(paths: tuple[Path, ...] | list[Path]) -> list[CopyIn]:
    """Every --copy-in is a readable regular file with a usable, distinct name; bad input is exit 2
    before anything boots."""
    found: list[CopyIn] = []
    total = 0
    for path in paths:
        named = units.shown(str(path))
        try:
            st = os.stat(path)
        except OSError as exc:
            raise VmConfigError(f"--copy-in {named}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise VmConfigError(f"--copy-in {named} is not a regular file (name a directory's files singly)")
        if not os.access(path, os.R_OK):
            raise VmConfigError(f"--copy-in {named} is not readable")
        name = Path(path).name
        if name.startswith(".") or not name.isprintable() or len(name) > 200:
            raise VmConfigError(f"--copy-in {named}: the name must be printable and not start with '.'")
        if any(c.name == name for c in found):
            raise VmConfigError(f"--copy-in {named}: two files named {name!r}; rename one")
        total += st.st_size
        if total > MAX_COPY_IN_BYTES:
            raise VmConfigError(f"--copy-in files exceed {MAX_COPY_IN_BYTES >> 20} MiB together")
        found.append(CopyIn(Path(path), name, stat.S_IMODE(st.st_mode) & 0o755, st.st_size))
    return found


@dataclass
class SessionSpec:
    """What the guest runs instead of the suites: `exec` (argv) or `shell`, and what it is given."""

    mode: str  # exec | shell
    argv: list[str] = field(default_factory=list)
    copy_ins: list[CopyIn] = field(default_factory=list)
    no_mount: bool = False
    term: str | None = None
    rows: int = 0
    cols: int = 0

    def plan_field(self) -> dict[str, Any]:
        """plan.json's `session` (the guest's instructions, and the run's record of what ran)."""
        return {
            "mode": self.mode,
            "argv": list(self.argv),
            "copy_in": [{"name": c.name, "mode": c.mode, "size": c.size} for c in self.copy_ins],
            "no_mount": self.no_mount,
            "term": self.term,
            "rows": self.rows,
            "cols": self.cols,
        }

    def stage(self, share: Path) -> None:
        """Copy each --copy-in file into RUN/guest/copy-in/ as a fresh file of the host's (rundir's
        write rules: a random temp name, O_EXCL|O_NOFOLLOW, renamed into place)."""
        if not self.copy_ins:
            return
        try:
            share_fd = rundir.open_dir(share, follow=False)
            try:
                os.mkdir(COPY_IN_SHARE, 0o755, dir_fd=share_fd)
                dir_fd = os.open(COPY_IN_SHARE, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=share_fd)
            finally:
                os.close(share_fd)
        except OSError as exc:
            raise rundir.RunDirError(f"cannot create {share / COPY_IN_SHARE}: {exc.strerror}") from None
        try:
            for item in self.copy_ins:
                try:
                    with open(item.source, "rb") as f:
                        data = f.read(MAX_COPY_IN_BYTES + 1)
                except OSError as exc:
                    raise VmConfigError(f"--copy-in {shown(item)}: {exc.strerror}") from None
                if len(data) > MAX_COPY_IN_BYTES:
                    raise VmConfigError(f"--copy-in {shown(item)} grew past the limit")
                rundir.write_at(dir_fd, item.name, data, str(share / COPY_IN_SHARE / item.name))
        finally:
            os.close(dir_fd)


class ExecRelay:
    """Splits the guest's framed console lines back into the user's stdout and stderr, and keeps the
    command's exit status."""

    interactive = False

    def __init__(self, stdout: IO[bytes] | None = None, stderr: IO[bytes] | None = None) -> None:
        self.streams = {1: stdout or sys.stdout.buffer, 2: stderr or sys.stderr.buffer}
        self.status: int | None = None
        self.bad_frames = 0

    def raw(self, chunk: bytes) -> None:
        """Chunks are not shown as they are: only whole framed lines are the command's."""

    def line(self, text: str) -> bool:
        """True when `text` was the command's (output or status), so it is no progress line."""
        for prefix, stream in OUT_PREFIX.items():
            if text.startswith(prefix):
                try:
                    data = base64.b64decode(text[len(prefix) :].strip(), validate=True)
                except (binascii.Error, ValueError):
                    self.bad_frames += 1
                    return True
                out = self.streams[stream]
                try:
                    out.write(data)
                    out.flush()
                except OSError:
                    pass  # a closed pipe on our side must not stop the console from being drained
                return True
        if text.startswith(EXIT_PREFIX):
            word = text[len(EXIT_PREFIX) :].strip()
            if word.isdigit() and int(word) <= 255 and self.status is None:
                self.status = int(word)
            return True
        return False

    def feed(self, stdin: IO[bytes]) -> None:
        """Nothing is typed into `exec`: its command's stdin is /dev/null in the guest."""


class ShellRelay:
    """The guest's serial line as the user's terminal between the shell markers: bytes the user types
    go to the guest, bytes of the shell come back unchanged; everything before (boot, mounts) is
    progress on stderr as for `run`."""

    interactive = True

    def __init__(
        self,
        out: IO[bytes] | None = None,
        stdin_fd: int | None = None,
        on_begin: Callable[[], None] | None = None,
    ) -> None:
        self.on_begin = on_begin  # e.g. put the user's terminal in raw mode, once the shell is there
        self.out = out or sys.stdout.buffer
        self.stdin_fd = 0 if stdin_fd is None else stdin_fd
        self.state = "before"  # before | shell | after
        self.pending = b""
        self.status: int | None = None
        self.escaped = False
        self.in_shell = False
        self.begun = threading.Event()  # set when the shell starts: from then on typing goes to it

    def raw(self, chunk: bytes) -> None:
        self.pending += chunk
        if self.state == "before":
            at = self.pending.find(SHELL_BEGIN)
            if at < 0:
                self.pending = self.pending[-len(SHELL_BEGIN) :]
                return
            end = self.pending.find(b"\n", at)
            if end < 0:
                return  # the marker's line is not complete yet
            self.pending = self.pending[end + 1 :]
            self.state = "shell"
            if self.on_begin is not None:
                self.on_begin()
            self.begun.set()
        if self.state == "shell":
            at = self.pending.find(SHELL_END)
            if at >= 0:
                shown, self.pending = self.pending[:at], b""
                self.state = "after"
            else:
                cut = len(self.pending) - _marker_prefix_len(self.pending, SHELL_END)
                shown, self.pending = self.pending[:cut], self.pending[cut:]
            self._show(shown.rstrip(b"\r\n") if self.state == "after" else shown)
        if self.state == "after":
            self.pending = b""

    def _show(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.out.write(data)
            self.out.flush()
        except OSError:
            pass

    def line(self, text: str) -> bool:
        """While the shell runs, its lines are the user's: no progress line is made of them.

        Lines keep their own state (`in_shell`): a chunk can hold the last mount line, the begin
        marker and the prompt, and the mount line is still progress."""
        if text.startswith(SHELL_BEGIN.decode()):
            self.in_shell = True
            return True
        if text.startswith(SHELL_END.decode()):
            self.in_shell = False
            word = text[len(SHELL_END) :].strip()
            if word.lstrip("-").isdigit():
                self.status = int(word)
            return True
        return self.in_shell

    def feed(self, stdin: IO[bytes]) -> None:
        """Copy what the user types to the guest once its shell is there (typed during the boot, it
        waits in your terminal); Ctrl-] ends the session here. The end of your input (a pipe that
        closed) becomes a Ctrl-D, which ends the guest's shell: a serial line has no end of file."""
        self.begun.wait()
        while True:
            try:
                data = os.read(self.stdin_fd, 1024)
            except OSError:
                return
            if not data:
                data = EOF_BYTE
            if ESCAPE_BYTE in data:
                self.escaped = True
                os.kill(os.getpid(), 2)  # SIGINT: the guard ends qemu, the command exits 130
                return
            try:
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError):
                return
            if data == EOF_BYTE:
                return


def shown(item: CopyIn) -> str:
    return units.shown(str(item.source))


def _marker_prefix_len(data: bytes, marker: bytes) -> int:
    """How many trailing bytes of `data` could start `marker` at a line start (held back, not shown)."""
    line_start = data.rfind(b"\n") + 1
    tail = data[line_start:].lstrip(b"\r")
    if tail and marker.startswith(tail):
        return len(data) - line_start
    return 0
