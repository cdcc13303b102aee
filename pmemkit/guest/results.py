"""Observations written as they happen, so a guest that crashes mid-run loses nothing before it.

Each observation is one whole line appended with one write and an fsync (O(1) per line over 9p,
where rewriting the file grew with every line). A write that fails part-way (disk full) is cut
back to the last whole line, so the file never holds a torn line in the middle; a crash mid-write
can leave only a torn *last* line, which the host skips with a warning. A line on stdout (the
serial console) per observation lets the host show progress.
"""

from __future__ import annotations

import os
from pathlib import Path

from pmemkit.scenario import Observation


class ObservationWriter:
    """Append-only JSON Lines of Observations, one whole line per write."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        self.fd = os.open(self.path, flags, 0o644)
        self.size = 0
        self.count = 0

    def add(self, observation: Observation) -> None:
        line = (observation.to_json() + "\n").encode()
        try:
            written = os.write(self.fd, line)
            if written != len(line):  # a short write: the rest will not fit either
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(self.fd)
        except OSError:
            try:
                os.ftruncate(self.fd, self.size)  # back to the last whole line
            except OSError:
                pass
            raise
        self.size += len(line)
        self.count += 1
        print(
            f"PMEMKIT-OBS {self.count} {observation.scenario.label()} "
            f"{observation.operation}: {observation.outcome}",
            flush=True,
        )

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __len__(self) -> int:
        return self.count
