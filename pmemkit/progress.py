"""Progress of a long run on stderr: a live bar on a terminal, the plain timestamped lines otherwise.

Why two: a person at a terminal wants to see where the run is (boot phase, which target and
experiment, how many observations) without 351 lines scrolling by; CI logs and files want the
plain line log, which stays exactly as it was. The run's modules only ever call `progress(text)`;
this module reads those texts (the messages `vm/boot.py`, `vm/layers.py` and the guest's steps
produce) to move the bars. `rich` is imported only when stderr is a terminal.
"""

from __future__ import annotations

import re
import sys
import time
from types import TracebackType
from typing import Any, TextIO

PHASES = ("qemu", "kernel", "initrd", "init", "python", "done")
_PHASE = re.compile(r"^guest phase: (\S+) at")
_EXPERIMENT = re.compile(r"^(?P<target>.+): experiment (?P<name>\S+)$")
_OBSERVED = re.compile(r"^observed (\d+) ")
_BUILDING = re.compile(r"^building (\S+) layer (\S+)")
_READY = re.compile(r"^(\S+) layer ready in")


class LineProgress:
    """The plain line log: `[  12.3s] message` on stderr (CI, files, pipes)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        stream = self.stream or sys.stderr
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", file=stream, flush=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class BarProgress:
    """Bars on a terminal: image/kernel layer builds, the guest's boot phases, the experiments
    (target and experiment as the description, observations counted). Every message but the
    per-observation ones is still printed above the bars, with its time."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.start = time.monotonic()
        self.tasks: dict[str, Any] = {}
        self.observations = 0
        self.experiments = 0

    def __enter__(self) -> BarProgress:
        self.bars.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bars.stop()

    def _task(self, key: str, description: str, total: float | None) -> Any:
        if key not in self.tasks:
            self.tasks[key] = self.bars.add_task(description, total=total, status="")
        return self.tasks[key]

    def __call__(self, message: str) -> None:
        if m := _OBSERVED.match(message):
            self.observations = int(m.group(1))
            if "experiments" in self.tasks:
                self.bars.update(self.tasks["experiments"], status=f"{self.observations} observations")
            return  # counted, not printed: the line log of a terminal run stays readable
        stamp = f"[{time.monotonic() - self.start:6.1f}s]"
        self.bars.console.print(f"{stamp} {message}", highlight=False, markup=False)
        if m := _BUILDING.match(message):
            self._task(f"layer-{m.group(1)}", f"building the {m.group(1)} layer", None)
        elif m := _READY.match(message):
            key = f"layer-{m.group(1)}"
            if key in self.tasks:
                self.bars.update(self.tasks[key], total=1, completed=1, status="ready")
        elif m := _PHASE.match(message):
            task = self._task("boot", "guest boot", len(PHASES))
            name = m.group(1)
            done = PHASES.index(name) + 1 if name in PHASES else None
            if done is not None:
                self.bars.update(task, completed=done, status=name)
            if name == "done" and "experiments" in self.tasks:
                done_all = self.experiments
                self.bars.update(self.tasks["experiments"], total=done_all, completed=done_all)
        elif m := _EXPERIMENT.match(message):
            task = self._task("experiments", "suites on targets", None)
            self.experiments += 1
            self.bars.update(
                task,
                completed=self.experiments,
                description=f"{m.group('target')}: {m.group('name')}",
                status=f"{self.observations} observations",
            )


def make_progress(stream: TextIO | None = None) -> LineProgress | BarProgress:
    """Bars when `stream` (default stderr) is a terminal, the plain line log otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        try:
            return BarProgress()
        except ImportError:  # rich is a dependency; a broken install still gets the line log
            pass
    return LineProgress(stream)
