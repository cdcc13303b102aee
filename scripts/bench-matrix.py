#!/usr/bin/env python3
"""Two matrix cells at once vs the same two cells one after the other, side by side.

Why a script and not a test: it measures wall time on a shared machine, which no test may assert.
Each round runs the two cells as two `pmemkit run`s in a row (serial) and as one
`pmemkit matrix --jobs 2` (parallel), in alternating order, and prints both times, their ratio and
the load average around them (other work on the host slows the parallel side most: it needs both
cores); at the end the median ratio, which decides the exit status (0: at most 0.65).

    .venv/bin/python scripts/bench-matrix.py [--rounds N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GROUPS = ["memmap:256M", "nvdimm:256M,mode=fsdax"]
COMMON = ["--fs", "ext4", "--suite", "smoke", "--accel", "tcg"]
TARGET = 0.65


def pmemkit(*args: str) -> float:
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pmemkit", *args], capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(
            f"bench-matrix: `pmemkit {' '.join(args)}` failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return elapsed


def one_round(work: Path, n: int) -> dict[str, float]:
    """Serial then parallel in even rounds, parallel then serial in odd ones: a load that drifts
    over a round (other users of the host) then favours neither side over several rounds."""
    load_before = os.getloadavg()[0]
    pmem = [arg for group in GROUPS for arg in ("--pmem", group)]

    def run_serial() -> float:
        return sum(
            pmemkit("run", "--pmem", g, *COMMON, "--runs-dir", str(work / f"serial-{n}")) for g in GROUPS
        )

    def run_parallel() -> float:
        return pmemkit("matrix", *pmem, *COMMON, "--jobs", "2", "--out", str(work / f"matrix-{n}"))

    if n % 2 == 0:
        serial, parallel = run_serial(), run_parallel()
    else:
        parallel, serial = run_parallel(), run_serial()
    return {
        "serial_s": round(serial, 1),
        "parallel_s": round(parallel, 1),
        "ratio": round(parallel / serial, 3),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the runs here (default: a temp dir, removed)"
    )
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="pmemkit-bench-matrix-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"cells: kernel 6.1 (default), {' | '.join(GROUPS)}; {' '.join(COMMON)}; host {os.cpu_count()} CPUs",
        flush=True,
    )
    rounds = []
    try:
        for n in range(args.rounds):
            r = one_round(work, n)
            rounds.append(r)
            print(
                f"round {n + 1}: serial (2 x pmemkit run) {r['serial_s']} s, "
                f"parallel (pmemkit matrix --jobs 2) {r['parallel_s']} s, ratio {r['ratio']} "
                f"(target <= {TARGET}); load average "
                f"{r['load_before']} -> {r['load_after']}",
                flush=True,
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    ratios = sorted(r["ratio"] for r in rounds)
    middle = len(ratios) // 2
    median = ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2
    total = round(sum(r["parallel_s"] for r in rounds) / sum(r["serial_s"] for r in rounds), 3)
    met = sum(r <= TARGET for r in ratios)
    print(
        f"median ratio {median:.3f}, total parallel / total serial {total}; "
        f"target met in {met} of {len(rounds)} round(s)"
    )
    print(
        json.dumps(
            {"rounds": rounds, "target": TARGET, "median_ratio": round(median, 3), "total_ratio": total}
        )
    )
    return 0 if median <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
