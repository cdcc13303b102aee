"""Observations written as they happen, so a guest that crashes mid-run loses nothing before it.

Each append rewrites `observations.jsonl` through a temporary file and a rename (DESIGN.md: never
a half-written result); the files are small, so rewriting is cheap even over 9p. A line on stdout
(the serial console) per observation lets the host show progress.
"""

from __future__ import annotations

from pathlib import Path

from pmemkit.plan import write_atomic
from pmemkit.scenario import Observation


class ObservationWriter:
    """Append-only JSON Lines of Observations with atomic rewrites."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lines: list[str] = []

    def add(self, observation: Observation) -> None:
        self.lines.append(observation.to_json())
        write_atomic(self.path, "\n".join(self.lines) + "\n")
        print(
            f"PMEMKIT-OBS {len(self.lines)} {observation.scenario.label()} "
            f"{observation.operation}: {observation.outcome}",
            flush=True,
        )

    def __len__(self) -> int:
        return len(self.lines)
