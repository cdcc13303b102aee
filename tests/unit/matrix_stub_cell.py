"""A stand-in for `python -m pmemkit.matrix.cellrun` in the matrix unit tests (no VM).

It makes the cell's run directory from a recorded real run of the cell's kernel
(tests/unit/fixtures/matrix/<kernel>/, see its README) and renders its report with the real
renderer; it says so in its progress. Environment: PMEMKIT_STUB_LOG (a file each invocation
appends its kernel to), PMEMKIT_STUB_DELAY (seconds to wait before finishing),
PMEMKIT_STUB_FAIL (a kernel whose cell fails).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "matrix"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--runs-dir", required=True, type=Path)
    args = parser.parse_args()
    spec = json.loads(args.spec)
    kernel = spec["kernel"]
    log = os.environ.get("PMEMKIT_STUB_LOG")
    if log:
        with open(log, "a") as f:
            f.write(kernel + "\n")
    print(f"stub cell: copying the recorded run of kernel {kernel}", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get("PMEMKIT_STUB_DELAY", "0")))
    from pmemkit.pipeline import render_report
    from pmemkit.rundir import make_run_dir

    run_dir = make_run_dir(args.runs_dir)
    for name in ("plan.json", "environment.json", "guest-environment.json", "observations.jsonl"):
        shutil.copy(FIXTURES / kernel / name, run_dir / name)
    render_report(run_dir)
    if os.environ.get("PMEMKIT_STUB_FAIL") == kernel:
        print(
            json.dumps({"ok": False, "run_dir": str(run_dir), "error": "stub: told to fail", "exit_code": 6})
        )
        return 6
    print(json.dumps({"ok": True, "run_dir": str(run_dir), "error": None, "exit_code": 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
