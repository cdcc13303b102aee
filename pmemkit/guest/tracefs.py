"""Count kernel tracepoint events around an operation (e.g. which DAX faults were 2 MiB PMD faults).

Why: whether a fault was served with a PMD is the kernel's decision, invisible from user space;
`fs_dax:dax_pmd_fault_done` reports each attempt with its result (NOPAGE = PMD mapped,
FALLBACK = retried as 4 KiB faults). Reading it beats guessing from latencies.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from pmemkit.guest.safety import vm_token
from pmemkit.guest.syscalls import mount

TRACING = Path("/sys/kernel/tracing")


def tracing_dir() -> Path | None:
    """The tracefs mount inside pmemkit's VM (mounted on first use); None elsewhere.

    Enabling events clears the trace buffer: on somebody's own machine that would destroy their
    tracing session, so pmemkit never touches tracefs outside its VM.
    """
    if not vm_token():
        return None
    if (TRACING / "trace").exists():
        return TRACING
    if TRACING.is_dir():
        try:
            mount("nodev", str(TRACING), "tracefs")
        except OSError:
            return None
        return TRACING if (TRACING / "trace").exists() else None
    return None


class TraceEvent:
    """`with TraceEvent("fs_dax", "dax_pmd_fault_done") as ev: ...; ev.results()`.

    `available` is False (and results empty) when tracefs or the event does not exist.
    """

    def __init__(self, system: str, event: str) -> None:
        self.event = event
        root = tracing_dir()
        self.root = root
        self.enable = root / "events" / system / event / "enable" if root else None
        self.lines: list[str] = []

    @property
    def available(self) -> bool:
        return self.enable is not None and self.enable.exists()

    def __enter__(self) -> TraceEvent:
        if self.available:
            assert self.root is not None and self.enable is not None
            (self.root / "trace").write_text("")  # clear the buffer
            self.enable.write_text("1")
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.available:
            return
        assert self.root is not None and self.enable is not None
        self.enable.write_text("0")
        text = (self.root / "trace").read_text(errors="replace")
        self.lines = [line for line in text.splitlines() if f"{self.event}:" in line]
        (self.root / "trace").write_text("")

    def results(self) -> Counter[str]:
        """Count of the last word of each event line (for dax_pmd_fault_done: NOPAGE, FALLBACK…)."""
        return Counter(line.split()[-1] for line in self.lines if line.split())


def pid_smaps(address: int, pid: int | None = None) -> dict[str, int]:
    """The /proc/PID/smaps entry of the mapping containing `address` (sizes in kB, as printed)."""
    path = f"/proc/{pid or os.getpid()}/smaps"
    entry: dict[str, int] = {}
    inside = False
    with open(path) as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and not head[0].endswith(":"):
                lo, _, hi = head[0].partition("-")
                try:
                    inside = int(lo, 16) <= address < int(hi, 16)
                except ValueError:
                    inside = False
                continue
            if inside and head[0].endswith(":") and len(head) >= 2 and head[1].isdigit():
                entry[head[0][:-1]] = int(head[1])
    return entry
