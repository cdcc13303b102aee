#!/usr/bin/env python3
"""Benchmark, not a test: pmemkit beside fio on every DAX target, and run-to-run repeatability.

    scripts/bench-fio-parity.py                  # full-profile fio suite on the default six devices
    scripts/bench-fio-parity.py --run RUN_DIR    # print the ratios of a run already made
    scripts/bench-fio-parity.py --repeat         # also: two quick default runs and `pmemkit compare`

Prints, per target, pmemkit's I/O own latency p50 (its compiled helper, prtime: clock_gettime
around each pread in C; the raw_syscalls tracepoints where the helper was missing, said in the
"own by" column) and fio's clat p50 for O_DIRECT 4 KiB random reads, interleaved rounds on the same
CPU, with the ratio's 95 % CI and whether it lies within 0.9…1.1; then how many DAX targets agree,
the helper's sha256 and compiler, and the host's load average (a loaded host makes ratios noisy).
Beside them, the host's steadiness right before and right after each guest run (a short probe of
pmemkit.measure.steadiness, --steadiness-seconds, 0 to skip; never while the guest runs): slow
episodes of the host slow the guest's reads about twofold and widen the ratios' intervals.
Under each target, a second comparison named as such: the ratio against fio's clat less fio's own
per-I/O cost (its null engine's clat p50, full profile), since fio's clat spans fio's bookkeeping
around the read and the helper's span is the read alone.
With --repeat, the compare summary of two runs of the same configuration. Exit status 0 whatever
the numbers (it measures, it does not assert); non-zero only when a run itself failed.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PMEM = [
    "memmap:512M",
    "nvdimm:512M,mode=fsdax,map=mem",
    "nvdimm:512M,mode=fsdax,map=dev",
    "nvdimm:512M,mode=devdax",
    "nvdimm:512M,mode=raw",
    "virtio-pmem:512M",
]


def pmemkit(*args: str) -> list[str]:
    exe = ROOT / ".venv" / "bin" / "pmemkit"
    return [str(exe) if exe.exists() else "pmemkit", *args]


def newest_run(runs_dir: Path) -> Path:
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    if not runs:
        raise SystemExit(f"bench: no run directory under {runs_dir}")
    return runs[-1]


def host_steadiness(seconds: float, when: str) -> list[str]:
    """A short host probe right `when` ("before"/"after") a guest run, never during one (it keeps
    one core busy): its one-line summary, or nothing when `seconds` is 0."""
    if seconds <= 0:
        return []
    from pmemkit.measure.steadiness import probe

    print(f"bench: {seconds:g} s host steadiness probe {when} the guest run", flush=True)
    return [f"{when} the guest run, {probe(seconds).describe()}"]


def make_run(
    runs_dir: Path, profile: str, suites: str | None, timeout: str | None, steadiness_s: float = 0.0
) -> tuple[Path, list[str]]:
    args = ["run", "--profile", profile, "--runs-dir", str(runs_dir)]
    for spec in DEFAULT_PMEM:
        args += ["--pmem", spec]
    if suites:
        args += ["--suite", suites]
    if timeout:
        args += ["--timeout", timeout]
    steadiness = host_steadiness(steadiness_s, "before")
    print("bench: " + " ".join(pmemkit(*args)), flush=True)
    done = subprocess.run(pmemkit(*args), check=False)
    steadiness += host_steadiness(steadiness_s, "after")
    run = newest_run(runs_dir)
    if done.returncode != 0:
        print(f"bench: pmemkit run exited {done.returncode}; ratios below are what {run} kept", flush=True)
    return run, steadiness


def _us(ns: float | None) -> str:
    return "—" if ns is None else f"{ns / 1000:.2f}µs"


OWN_BY = {"helper": "helper", "tracepoints": "traced"}


def _not_within(ci: dict) -> str:
    """ "differs" when the whole CI lies outside 0.9…1.1, "unclear" when it only reaches past it."""
    lo, hi = ci.get("lo"), ci.get("hi")
    if lo is not None and hi is not None and (hi < 0.9 or lo > 1.1):
        return "differs"
    return "unclear"


def parity_line(label: str, metrics: dict) -> tuple[str, bool | None]:
    """One target's line of the table and its verdict (True agrees, False differs, None no verdict)."""
    p = metrics["parity"]
    ratio = p.get("p50") or {}
    own = (metrics.get("pmemkit_own") or {}).get("p50")
    own_by = OWN_BY.get(p.get("own_method", "tracepoints")) if own is not None else "—"
    verdict = ratio.get("agrees")
    words = {True: "agrees", False: _not_within(ratio), None: "no verdict"}[verdict]
    line = (
        f"{label:44} {p['rounds']:>3}×{p['ios_per_round']:<5} {own_by:>7} {_us(own):>10} "
        f"{_us(metrics['fio_clat']['p50']):>10} "
        f"{ratio.get('ratio', 0):>8.3f} [{ratio.get('lo', 0):.3f}, {ratio.get('hi', 0):.3f}]  {words:10}"
        f"{_us(metrics['pmemkit_caller']['p50']):>10} {_us(p.get('caller_overhead_p50_ns')):>9}"
    )
    return line, verdict


def net_of_fio_cost(metrics: dict) -> tuple[str, bool | None]:
    """The second, named comparison: pmemkit's own p50 against fio's clat p50 less fio's own cost
    per I/O (its `null` engine's clat on the same job shape, full profile only). fio's clat spans
    fio's own bookkeeping around the engine call; the helper's span is the read alone.

    Runs that measured the null engine in every round carry `parity.net_p50` (per-round ratios,
    Student-t CI over the rounds): that is printed as measured. Older runs have one null run per
    target: their ratio and CI are scaled by clat / (clat - null) and labelled an estimate. Either
    way it stands beside the verdict, never in its place. Returns the text and whether the CI lies
    within 0.9...1.1 (None when there is no null run)."""
    null = metrics.get("fio_null_p50_ns")
    net = (metrics.get("parity") or {}).get("net_p50")
    if null and net:
        within = bool(net.get("agrees"))
        return (
            f"fio null-engine p50 {_us(null)}, every round: own / (clat - null) {net['ratio']:.3f} "
            f"[{net['lo']:.3f}, {net['hi']:.3f}] {'within' if within else 'not within'} 0.9...1.1",
            within,
        )
    clat = (metrics.get("fio_clat") or {}).get("p50")
    ratio = (metrics.get("parity") or {}).get("p50") or {}
    if not null or not clat or clat <= null or ratio.get("lo") is None or ratio.get("hi") is None:
        return "no fio null-engine run (full profile only)", None
    scale = clat / (clat - null)
    lo, mid, hi = ratio["lo"] * scale, ratio["ratio"] * scale, ratio["hi"] * scale
    within = 0.9 <= lo and hi <= 1.1
    text = (
        f"fio null-engine p50 {_us(null)}, one run (estimate): own / (clat - null) {mid:.3f} "
        f"[{lo:.3f}, {hi:.3f}] {'within' if within else 'not within'} 0.9...1.1"
    )
    return text, within


def speed_line(metrics: dict) -> str:
    """The machine's speed around pmemkit's side of each round over that around fio's, and the
    rounds where the two matched (within ±10 %) with their p50 ratios; empty for older runs."""
    parity = metrics.get("parity") or {}
    speed = parity.get("speed")
    if not speed:
        return ""
    per_round = (parity.get("p50") or {}).get("per_round") or []
    pairs = " ".join(
        f"{s:.2f}→{r:.3f}" if s is not None else f"—→{r:.3f}"
        for s, r in zip(speed["own_over_fio_per_round"], per_round, strict=False)
    )
    matched = speed.get("matched_rounds_p50_ratios") or []
    return (
        f"machine speed own/fio → p50 ratio, per round: {pairs}; at the same speed (±10 %): "
        f"{len(matched)} of {len(speed['own_over_fio_per_round'])}"
        + (f", ratios {', '.join(f'{r:.3f}' for r in matched)}" if matched else "")
    )


def print_parity(run: Path, steadiness: list[str] | tuple[str, ...] = ()) -> None:
    from pmemkit.compare import load

    files = load(run)
    print(f"\nfio parity, {run} (host load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    head = (
        f"{'target':44} {'rounds':>9} {'own by':>7} {'own p50':>10} {'fio clat':>10} {'ratio [95% CI]':>24}"
    )
    print(head + "  verdict   caller p50  overhead")
    dax = agree = net_agree = 0
    helpers = set()
    for o in files.observations:
        if o.operation == "fio-mmap-seqread" and o.outcome == "ok":
            m = o.metrics
            ci = m.get("bw_ratio_ci") or {}
            span = f"[{ci['lo']:.2f}, {ci['hi']:.2f}]" if ci else "[no CI]"
            where = f"{o.scenario.label()} ({o.device})"
            print(f"  mmap seq-read {where}: pmemkit/fio bandwidth {m['bw_ratio']:.2f} {span}")
            continue
        if o.operation != "fio-odirect-randread" or o.outcome != "ok" or "parity" not in o.metrics:
            continue
        helper = (o.provenance.get("timing") or {}).get("helper")
        if helper:
            helpers.add(f"{helper['origin']} {helper['sha256'][:16]} ({helper['compiler']})")
        line, verdict = parity_line(f"{o.scenario.label()} ({o.device})", o.metrics)
        print(line)
        net, net_within = net_of_fio_cost(o.metrics)
        print(f"  {net}")
        if speed := speed_line(o.metrics):
            print(f"  {speed}")
        if o.metrics.get("mapping", "dax") == "dax" and o.scenario.mode != "pagecache":
            dax += 1
            agree += verdict is True
            net_agree += net_within is True
    print(f"DAX targets within ±10 % (whole 95 % CI in 0.9…1.1): {agree} of {dax}")
    print(
        "  and once fio's own per-I/O cost (its null engine's p50) is taken off fio's clat: "
        f"{net_agree} of {dax}"
    )
    print("timing helper: " + ("; ".join(sorted(helpers)) if helpers else "none (own latency traced)"))
    for line in steadiness:
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="print the ratios of this run directory; boot nothing")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--profile", default="full", choices=("quick", "full"))
    parser.add_argument("--timeout", help="seconds before the guest is killed (pmemkit run --timeout)")
    parser.add_argument("--repeat", action="store_true", help="also two quick default runs + pmemkit compare")
    parser.add_argument(
        "--steadiness-seconds",
        type=float,
        default=10.0,
        help="host steadiness probe before and after each guest run, in seconds (default 10; 0 skips it)",
    )
    args = parser.parse_args()
    if not math.isfinite(args.steadiness_seconds) or not (
        args.steadiness_seconds == 0 or args.steadiness_seconds >= 0.5
    ):
        parser.error(
            f"--steadiness-seconds must be 0 (skip) or at least 0.5, not {args.steadiness_seconds:g}"
        )
    if args.run:
        print_parity(args.run)
        return 0
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    steady = args.steadiness_seconds
    print_parity(*make_run(args.runs_dir / "fio", args.profile, "fio", args.timeout, steady))
    if args.repeat:
        first, first_steadiness = make_run(args.runs_dir / "repeat-a", "quick", None, args.timeout, steady)
        second, second_steadiness = make_run(args.runs_dir / "repeat-b", "quick", None, args.timeout, steady)
        print(f"\nrepeatability: pmemkit compare {first} {second}")
        done = subprocess.run(pmemkit("compare", str(first), str(second)), capture_output=True, text=True)
        print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip())
        for run, lines in ((first, first_steadiness), (second, second_steadiness)):
            for line in lines:
                print(f"{run.parent.name}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
