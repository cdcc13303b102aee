#!/usr/bin/env python3
"""Fuzz pmemkit's CLI in-process: hostile argument lists for `run`, `model predict`, `model size`, `report`.

Why: the contract is "bad input = one line `pmemkit: error: …`, exit 2, never a traceback", and
only generated input finds the corners (huge digit strings, Unicode digits, NaN, empty lists,
repeated keys, control characters, `-`-names, non-UTF-8 bytes). Each input runs through click's
CliRunner with `pmemkit.pipeline.run` replaced by a stub that raises `ValidationPassed`, so a valid
`run` stops right after validation and never builds an image or boots a VM. A per-input timer
(SIGALRM) turns a hang into a counted failure. Everything happens in a temporary sandbox (cwd,
PMEMKIT_CACHE); `report` and `--runs-dir` only get paths inside it or paths that do not exist.

Usage: .venv/bin/python scripts/fuzz-cli.py --count 10000 --seed 1
Exit status: 0 when no input gave a traceback, a hang or a broken error line; 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

COMMANDS = ("run", "model predict", "model size", "report")


class ValidationPassed(Exception):
    """Raised by the VM stub: `run` accepted its input and would now boot."""


class Hang(BaseException):
    """Raised by the per-input timer; a BaseException so no `except Exception` in pmemkit eats it."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


# --- hostile values ---------------------------------------------------------------------------

NON_UTF8 = b"\xff\xfe\xc3(".decode("utf-8", "surrogateescape")
UNICODE_DIGITS = ["５１２", "٦١", "६१", "𝟔𝟏", "６１.1", "١٢", "²", "Ⅻ", "½"]
HOSTILE = [
    "",
    " ",
    ",",
    ",,",
    "-",
    "--",
    "--bogus",
    "-x",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    "-1",
    "0",
    "00",
    "0x10",
    "1_000",
    "1.5",
    "\x00",
    "\n",
    "a\nb",
    "\x1b[31mred",
    "\t",
    "\u2028",
    "\u200b1",
    NON_UTF8,
    "A" * 10000,
    "9" * 20,
    "9" * 400,
    "9" * 5000,
    "1" + "0" * 4400,
    "18446744073709551616",
    "%s%n",
    "{}",
    "[]",
    "../../etc",
    "/",
]
UNITS = ["", "K", "M", "G", "T", "P", "E", "KiB", "MB", "GiB", "B", "b", "iB", "X"]
KERNELS = ["6.1", "6.1.5", "6.11-rc2", "6.1.0-50-amd64", "4.15", "3.19", "99.99", "6", "6.", ".1", "v6.1"]


def digits(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.15:
        return rng.choice(UNICODE_DIGITS)
    if pick < 0.3:
        return "9" * rng.choice([17, 30, 400, 5000])
    return str(rng.choice([0, 1, 2, 3, 16, 64, 100, 256, 512, 1000, 1024, 4096, 1 << 20, 1 << 40]))


def size_text(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(HOSTILE)
    return digits(rng) + rng.choice(UNITS)


def seconds_text(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return rng.choice(HOSTILE)
    return rng.choice([digits(rng), f"{rng.uniform(-10, 1e6):.3f}", "600", "2.5", "1e3", "604801"])


def names(rng: random.Random, known: list[str]) -> str:
    items = [
        rng.choice(known + HOSTILE[:12] + ["nosuch", "ext4", "xfs", "smoke"])
        for _ in range(rng.randint(0, 4))
    ]
    sep = rng.choice([",", ", ", ",,", ";"])
    return sep.join(items)


def pmem_spec(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return rng.choice(HOSTILE)
    source = rng.choice(["memmap", "nvdimm", "virtio-pmem", "floppy", "", "MEMMAP"])
    text = f"{source}:{size_text(rng)}"
    if rng.random() < 0.3:
        text += "@" + (size_text(rng) if rng.random() < 0.7 else "")
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(["mode", "map", "mode", "colour", ""])
        value = rng.choice(["fsdax", "devdax", "raw", "sector", "mem", "dev", "", "weird", *HOSTILE[:6]])
        text += f",{key}={value}" if rng.random() < 0.9 else f",{key}"
    return text


def kernel_text(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(HOSTILE)
    if pick < 0.5:
        return f"{digits(rng)}.{digits(rng)}" + rng.choice(["", ".5", "-rc2", "-50-amd64"])
    return rng.choice(KERNELS)


def pick_option(rng: random.Random, table: dict[str, Callable[[random.Random], str] | None]) -> list[str]:
    name = rng.choice(list(table))
    make = table[name]
    if make is None:
        return [name]
    return [name, make(rng)]


def choice_of(*values: str) -> Callable[[random.Random], str]:
    return lambda rng: (
        rng.choice([*values, *rng.sample(HOSTILE, 2)]) if rng.random() < 0.3 else rng.choice(values)
    )


# --- argv generators per command --------------------------------------------------------------


def run_argv(rng: random.Random, sandbox: Path) -> list[str]:
    table: dict[str, Callable[[random.Random], str] | None] = {
        "--pmem": pmem_spec,
        "--suite": lambda r: names(r, ["smoke", "mmap", "odirect", "fio", "kapi", "d2d", "raid"]),
        "--fs": lambda r: names(r, ["ext4", "xfs"]),
        "--accel": choice_of("auto", "kvm", "tcg"),
        "--timeout": seconds_text,
        "--memory": size_text,
        "--profile": choice_of("quick", "full"),
        "--inject-fault": choice_of("panic", "hang"),
        "--runs-dir": lambda r: str(sandbox / "runs" / r.choice(["a", "b", "deep/er"])),
        "--json": None,
    }
    argv: list[str] = []
    if rng.random() < 0.3:  # a plausible run, so some inputs get through to the (stubbed) VM
        argv += ["--pmem", rng.choice(VALID_PMEM), "--suite", rng.choice(["smoke", "smoke,mmap", "kapi"])]
        argv += ["--fs", rng.choice(["ext4", "xfs", "ext4,xfs"]), "--timeout", rng.choice(["60", "2.5"])]
        argv += ["--memory", rng.choice(["2G", "3G", "2560M"])]
    for _ in range(rng.randint(0, 6 if not argv else 2)):
        argv += pick_option(rng, table)
    if rng.random() < 0.1:
        argv.append(rng.choice(HOSTILE))
    return ["run", *argv]


MODEL_MODES = ("raw", "fsdax", "devdax", "sector")
VALID_PMEM = [
    "memmap:512M",
    "memmap:256M@1G",
    "nvdimm:512M,mode=fsdax",
    "nvdimm:256M,mode=devdax,map=dev",
    "virtio-pmem:256M",
    "nvdimm:1G,mode=raw",
]


def predict_argv(rng: random.Random, sandbox: Path) -> list[str]:
    table: dict[str, Callable[[random.Random], str] | None] = {
        "--kernel": kernel_text,
        "--pmem": choice_of("memmap", "nvdimm", "virtio-pmem", "memmap:512M"),
        "--mode": choice_of(*MODEL_MODES),
        "--map": choice_of("mem", "dev"),
        "--fs": choice_of("ext4", "xfs", "btrfs"),
        "--force-raw": None,
        "--align": size_text,
        "--op": choice_of("dax-mount", "map-sync", "pmd-fault", "longterm-pin", "stack-copy", "fork-cow"),
        "--stack": choice_of("none", "md-raid0", "md-raid1", "dm-linear", "dm-stripe"),
        "--json": None,
    }
    argv = ["model", "predict"]
    if rng.random() < 0.7:  # mostly complete, so parsing reaches the model
        argv += ["--kernel", kernel_text(rng), "--pmem", table["--pmem"](rng), "--mode", table["--mode"](rng)]
        argv += ["--op", table["--op"](rng)]
    for _ in range(rng.randint(0, 4)):
        argv += pick_option(rng, table)
    return argv


def size_argv(rng: random.Random, sandbox: Path) -> list[str]:
    table: dict[str, Callable[[random.Random], str] | None] = {
        "--kernel": kernel_text,
        "--mode": choice_of(*MODEL_MODES),
        "--map": choice_of("mem", "dev"),
        "--size": size_text,
        "--align": size_text,
        "--pmem": choice_of("memmap", "nvdimm", "virtio-pmem"),
        "--force-raw": None,
        "--json": None,
    }
    argv = ["model", "size"]
    if rng.random() < 0.7:
        argv += ["--kernel", kernel_text(rng), "--mode", table["--mode"](rng), "--size", size_text(rng)]
    for _ in range(rng.randint(0, 4)):
        argv += pick_option(rng, table)
    return argv


def report_argv(rng: random.Random, sandbox: Path) -> list[str]:
    dirs = sorted(p.name for p in (sandbox / "rundirs").iterdir())
    pick = rng.random()
    if pick < 0.7:
        target = str(sandbox / "rundirs" / rng.choice(dirs))
    elif pick < 0.85:
        target = str(sandbox / "missing" / rng.choice(HOSTILE[:20]))
    else:
        target = rng.choice(HOSTILE)
    argv = ["report", target]
    if rng.random() < 0.5:
        argv.append("--json")
    if rng.random() < 0.1:
        argv.append(rng.choice(HOSTILE))
    return argv


GENERATORS = {"run": run_argv, "model predict": predict_argv, "model size": size_argv, "report": report_argv}


def make_rundirs(root: Path) -> None:
    """Run directories with hostile contents: invalid UTF-8, JSON lists, NaN, huge numbers, a `plots` file."""
    from pmemkit.scenario import Observation, Scenario

    good = Observation(
        "smoke", "dax-mount", "ok", Scenario("6.1.0-50-amd64", "memmap", "raw", fs="ext4"), "/dev/pmem0"
    ).to_json()
    cases: dict[str, dict[str, bytes]] = {
        "empty": {},
        "good": {"observations.jsonl": (good + "\n").encode(), "plan.json": b"{}", "environment.json": b"{}"},
        "bad-utf8": {"observations.jsonl": b"\xff\xfe\n", "environment.json": b'{"a": "\xff"}'},
        "json-lists": {"observations.jsonl": b"[]\n[1,2]\n", "plan.json": b"[]", "environment.json": b"[1]"},
        "nan-huge": {
            "observations.jsonl": good.replace('"metrics": {}', '"metrics": {"x": NaN, "y": 1e999}').encode()
            + b"\n"
            + ("9" * 5000).encode(),
            "environment.json": b'{"failure": 12345678901234567890}',
        },
        "truncated": {"observations.jsonl": good[: len(good) // 2].encode(), "plan.json": b'{"suites": '},
        "wrong-types": {
            "observations.jsonl": good.replace('"outcome": "ok"', '"outcome": 5').encode(),
            "environment.json": b'{"failure": ["x"], "boot": 5}',
        },
    }
    for name, files in cases.items():
        path = root / name
        path.mkdir(parents=True)
        for file, data in files.items():
            (path / file).write_bytes(data)
    plots = root / "plots-file"
    plots.mkdir()
    (plots / "observations.jsonl").write_text(good + "\n")
    (plots / "plots").write_text("not a directory\n")


def brief(argv: list[str]) -> str:
    """The argument list with each argument cut to 60 characters (a 5 000-digit input stays readable)."""
    return (
        "[" + ", ".join(repr(a) if len(a) <= 60 else repr(a[:60]) + f"…({len(a)} chars)" for a in argv) + "]"
    )


def inside(path_text: str, sandbox: Path) -> bool:
    """True when a path argument cannot make `report` write outside the sandbox."""
    try:
        path = Path(path_text)
        if not path.exists():
            return True
        return path.resolve().is_relative_to(sandbox.resolve())
    except (OSError, ValueError):
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000, help="inputs in all (spread over the commands)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per input before a hang")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="comma-separated subset")
    parser.add_argument("--show", type=int, default=5, help="failing inputs printed per command and kind")
    args = parser.parse_args()
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    for c in commands:
        if c not in GENERATORS:
            parser.error(f"unknown command {c!r}: use {', '.join(COMMANDS)}")

    sandbox = Path(tempfile.mkdtemp(prefix="pmemkit-fuzz-"))
    os.environ["PMEMKIT_CACHE"] = str(sandbox / "cache")
    os.chdir(sandbox)
    make_rundirs(sandbox / "rundirs")

    from click.testing import CliRunner

    import pmemkit.pipeline as pipeline
    from pmemkit.cli import main as cli

    def stub(options: object, progress: object = None) -> None:
        raise ValidationPassed()

    pipeline.run = stub  # type: ignore[assignment]
    signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(args.seed)
    runner = CliRunner()
    counts: dict[str, Counter[str]] = {c: Counter() for c in commands}
    examples: dict[tuple[str, str], list[str]] = defaultdict(list)
    distinct: Counter[tuple[str, str]] = Counter()  # tracebacks by command, type and place
    started = time.monotonic()

    for n in range(args.count):
        command = commands[n % len(commands)]
        argv = GENERATORS[command](rng, sandbox)
        if command == "report" and not inside(argv[1], sandbox):
            argv[1] = str(sandbox / "missing" / "x")
        tally = counts[command]
        tally["inputs"] += 1
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, args.time_limit)
        try:
            result = runner.invoke(cli, argv, catch_exceptions=True)
        except Hang:
            tally["hangs"] += 1
            examples[(command, "hang")].append(brief(argv))
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.monotonic() - t0
        if elapsed > args.time_limit:
            tally["hangs"] += 1
            examples[(command, "hang")].append(brief(argv))
            continue
        exc = result.exception
        if isinstance(exc, ValidationPassed):
            tally["validated (stub reached)"] += 1
            continue
        if exc is not None and not isinstance(exc, SystemExit):
            tally["tracebacks"] += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            kind = f"{type(exc).__name__} at {where.filename}:{where.lineno}"
            distinct[(command, kind)] += 1
            if distinct[(command, kind)] == 1:
                examples[(command, "traceback")].append(f"{brief(argv)}\n      {kind}: {str(exc)[:160]}")
            continue
        stderr = [line for line in result.stderr.splitlines() if line.strip()]
        if result.exit_code == 0:
            tally["exit 0"] += 1
        elif result.exit_code == 2 and len(stderr) == 1 and stderr[0].startswith("pmemkit: error: "):
            tally["refused in one line (exit 2)"] += 1
        elif result.exit_code not in (0, 2) and len(stderr) == 1 and stderr[0].startswith("pmemkit: error: "):
            tally[f"one-line error, exit {result.exit_code}"] += 1
        else:
            tally["broken error lines"] += 1
            examples[(command, "broken error line")].append(
                f"{brief(argv)}\n      exit {result.exit_code}: {result.stderr[:300]!r}"
            )

    print(f"fuzz-cli: seed {args.seed}, {args.count} inputs, {time.monotonic() - started:.1f} s")
    total = Counter()
    for command in commands:
        tally = counts[command]
        total.update(tally)
        print(
            f"  {command:14} inputs {tally['inputs']:6}  tracebacks {tally['tracebacks']:4}"
            f"  hangs {tally['hangs']:3}  broken error lines {tally['broken error lines']:3}  | "
            + ", ".join(
                f"{k} {v}"
                for k, v in sorted(tally.items())
                if k not in ("inputs", "tracebacks", "hangs", "broken error lines")
            )
        )
    print(
        f"  {'total':14} inputs {total['inputs']:6}  tracebacks {total['tracebacks']:4}"
        f"  hangs {total['hangs']:3}  broken error lines {total['broken error lines']:3}"
    )
    for (command, kind), items in sorted(examples.items()):
        label = "distinct tracebacks (by type and place)" if kind == "traceback" else f"{kind}s"
        print(f"\n{label} in {command} ({len(items)}; first {min(len(items), args.show)}):")
        for item in items[: args.show]:
            print(f"  {item}")
    os.chdir("/")
    shutil.rmtree(sandbox, ignore_errors=True)
    bad = total["tracebacks"] + total["hangs"] + total["broken error lines"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
