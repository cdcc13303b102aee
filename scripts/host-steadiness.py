#!/usr/bin/env python3
"""Is this machine steady enough to benchmark on? Times an interpreter loop for a while and says.

    scripts/host-steadiness.py                    # 20 s, windows of 0.5 s, slow at >= 1.25x
    scripts/host-steadiness.py --seconds 40 --json
    scripts/host-steadiness.py --fail-unsteady && make bench

Prints one summary line (pmemkit.measure.steadiness.Steadiness.describe), then each window's
slowdown factor (its median batch over the fastest batch; `*` marks a slow window, `-` a window
with no batch) and the episodes (runs of consecutive slow windows). Occupies one core while it
runs: do not run it beside a guest or a benchmark. A measurement, not a test: exit 0 whether steady
or not, 1 with --fail-unsteady on an unsteady machine, 2 on bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pmemkit.measure.errors import MeasureError  # noqa: E402
from pmemkit.measure.steadiness import (  # noqa: E402
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW_S,
    Steadiness,
    probe,
)

PROG = "host-steadiness"
PER_LINE = 20


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one `host-steadiness: error: ...` line and exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def timeline(result: Steadiness, per_line: int = PER_LINE) -> list[str]:
    """The factors, `per_line` windows a line, each line led by its start time in seconds."""
    cells = [
        "    - " if f is None else f"{f:5.2f}{'*' if f >= result.threshold else ' '}" for f in result.factors
    ]
    return [
        f"{i * result.window_s:7.1f} s  " + "".join(cells[i : i + per_line]).rstrip()
        for i in range(0, len(cells), per_line)
    ]


def report(result: Steadiness) -> list[str]:
    lines = [result.describe(), f"probe: {result.source}; host load average at the end: {loadavg()}"]
    lines.append(
        f"timeline (median batch / fastest batch {result.fastest_ns / 1e6:.2f} ms, per {result.window_s:g} s "
        f"window; * >= {result.threshold:g}x, - no batch):"
    )
    lines += timeline(result)
    if result.episodes:
        lines.append("episodes (start, length, peak):")
        lines += [f"{e.start_s:7.1f} s  {e.length_s:5.1f} s  {e.peak:.2f}x" for e in result.episodes]
    else:
        lines.append("episodes: none")
    return lines


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to probe (default 20)")
    parser.add_argument(
        "--window",
        type=float,
        default=DEFAULT_WINDOW_S,
        help=f"window in seconds (default {DEFAULT_WINDOW_S})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"a window is slow at this factor over the fastest batch or more (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead")
    parser.add_argument("--fail-unsteady", action="store_true", help="exit 1 when any window is slow")
    args = parser.parse_args(argv)
    try:
        result = probe(args.seconds, args.window, args.threshold)
    except MeasureError as e:
        fail(str(e))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    text = json.dumps({**result.to_dict(), "loadavg_end": os.getloadavg()}, indent=2)
    try:
        print(text if args.json else "\n".join(report(result)), flush=True)
    except BrokenPipeError:  # `| head -1`: the reader left; the verdict's exit status still stands
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if args.fail_unsteady and result.verdict != "steady" else 0


if __name__ == "__main__":
    sys.exit(main())
