"""Read the kernel messages an operation produced, so each observation can quote the kernel's reason.

Why /dev/kmsg with a seek to its end rather than diffing `dmesg`: it returns exactly the records
logged after the seek, without depending on ring-buffer size or line counts.
"""

from __future__ import annotations

import os


class KernelLog:
    """`with KernelLog() as log: ...; log.read()` returns the messages logged inside the block."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> KernelLog:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = None  # no kmsg (not Linux, no permission): messages are simply not quoted
        return self

    def read(self) -> list[str]:
        """Messages since entering (text only, without the `prio,seq,time;` prefix)."""
        messages: list[str] = []
        if self.fd is None:
            return messages
        while True:
            try:
                record = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:  # EPIPE: records were overwritten; keep what we have
                continue
            if not record:
                break
            _, _, text = record.partition(";")
            messages.append(text.splitlines()[0] if text else "")
        return messages

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
