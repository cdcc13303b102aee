"""Progress: the plain line log off a terminal, bars on one (rich), driven by the run's own messages."""

from __future__ import annotations

import io
import re

from rich.console import Console

from pmemkit.progress import BarProgress, LineProgress, make_progress

MESSAGES = [
    "building image layer 0123abcd (log: /x/build.log)",
    "image layer ready in 300 s: /x",
    "guest phase: initrd at 10.1 s",
    "guest phase: init at 23.9 s",
    "guest phase: python at 27.0 s",
    "memmap raw ext4: experiment mmap",
    "observed 1 memmap raw ext4 first-touch-write: ok",
    "observed 2 memmap raw ext4 first-touch-read: ok",
    "memmap raw ext4: experiment odirect",
    "observed 3 memmap raw ext4 odirect-read-into-dax: ok",
    "guest phase: done at 230.3 s",
]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_every_message_is_one_timestamped_line():
    out = io.StringIO()
    progress = make_progress(out)
    assert isinstance(progress, LineProgress)
    with progress:
        for message in MESSAGES:
            progress(message)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(MESSAGES)
    assert all(re.fullmatch(r"\[ *\d+\.\ds\] .+", line) for line in lines)
    assert lines[6].endswith("] observed 1 memmap raw ext4 first-touch-write: ok")


def test_on_a_terminal_the_bars_follow_the_run():
    assert isinstance(make_progress(Tty()), BarProgress)
    out = io.StringIO()
    progress = BarProgress(Console(file=out, force_terminal=True, width=150))
    with progress:
        for message in MESSAGES:
            progress(message)
    tasks = {t.description: t for t in progress.bars.tasks}
    assert tasks["building the image layer"].finished
    assert tasks["guest boot"].completed == 6 and tasks["guest boot"].finished
    (experiments,) = [t for d, t in tasks.items() if d.startswith("memmap raw ext4: ")]
    assert experiments.description == "memmap raw ext4: odirect"
    assert experiments.completed == 2 and experiments.finished
    assert experiments.fields["status"] == "3 observations"
    text = out.getvalue()
    assert "experiment odirect" in text and "guest phase: init at 23.9 s" in text
    assert "observed 2" not in text  # counted in the bar, not printed line by line
