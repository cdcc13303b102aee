"""pmemkit's compiled timing helper (`native/prtime.c`): each pread's own latency, timed in C.

Why: a Python loop around `os.preadv` measures what a Python caller sees, the syscall plus the
interpreter's cost per call (about 3 µs under TCG, issue 15); the raw_syscalls tracepoints
(`guest.syscalltrace`) keep the interpreter out but add 3–5 µs of their own per call under TCG.
fio's psync `clat` is a C loop with a clock read either side of `pread`, and so is `prtime`:
`clock_gettime(CLOCK_MONOTONIC)` immediately before and after each pread, the clock's own cost
measured once and reported (never subtracted), optionally pinned to one CPU.

Where the binary comes from, in order (`find_helper`):

1. `$PMEMKIT_PRTIME`, an explicit binary (to try a build in the guest with `pmemkit exec
   --copy-in` before the image is rebuilt);
2. the image's `/usr/local/lib/pmemkit/prtime`, compiled on the host with `gcc -O2 -static` by
   `vm/build-image.sh`, with `prtime.json` beside it (the binary's sha256, the compiler's version,
   the source's sha256); the source is part of the image key (`vm/image.py`), so a change rebuilds;
3. on a machine with gcc (`run --target local`), compiled once into
   `$PMEMKIT_CACHE/native/<source sha256[:16]>/prtime`.

With none of them the caller falls back to the tracepoint method and says so (`why`).
`parse_output` (pure) reads the helper's text output; `run` starts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pmemkit.guest import GuestError

SOURCE = Path(__file__).resolve().parent / "native" / "prtime.c"
IMAGE_BINARY = Path("/usr/local/lib/pmemkit/prtime")
IMAGE_INFO = IMAGE_BINARY.with_name("prtime.json")
ENV = "PMEMKIT_PRTIME"
FORMAT = 1
#: Compiler flags, the same on the host cache and in the image build (vm/build-image.sh).
CFLAGS = ("-O2", "-static")
TIMEOUT_S = 300.0
METHOD = (
    "prtime: clock_gettime(CLOCK_MONOTONIC) around each pread(2) in a C loop (pmemkit/guest/native/prtime.c)"
)


class PrtimeError(GuestError):
    """The helper's output is not what its format promises, or the helper failed."""


@dataclass(frozen=True)
class Helper:
    """A usable helper binary and where it came from (JSON-ready for provenance)."""

    path: str
    origin: str  # "env", "image" or "host-cache"
    sha256: str
    compiler: str
    source_sha256: str | None

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PrtimeRun:
    """One helper run: the per-pread samples (ns, in offset order) and the header it printed."""

    samples_ns: list[int]
    clock_overhead_median_ns: int
    clock_overhead_min_ns: int
    cpu: int | None
    direct: bool
    bs: int
    warmup: int
    short: int

    def header(self) -> dict[str, Any]:
        """Everything but the samples (for an observation's metrics)."""
        data = asdict(self)
        del data["samples_ns"]
        data["count"] = len(self.samples_ns)
        return data


def _int(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PrtimeError(f"prtime output: {key} is not an integer: {value[:40]!r}") from None


def parse_output(text: str) -> PrtimeRun:
    """The helper's stdout (see prtime.c): header lines, `samples`, one integer per line."""
    head, sep, body = text.partition("\nsamples\n")
    if not sep:
        raise PrtimeError("prtime output has no 'samples' line")
    fields: dict[str, str] = {}
    for line in head.splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    if fields.get("prtime") != str(FORMAT):
        raise PrtimeError(f"prtime output format {fields.get('prtime')!r}, this pmemkit reads {FORMAT}")
    needed = (
        "clock_overhead_median_ns",
        "clock_overhead_min_ns",
        "cpu",
        "direct",
        "bs",
        "warmup",
        "count",
        "short",
    )
    missing = [k for k in needed if k not in fields]
    if missing:
        raise PrtimeError(f"prtime output lacks {', '.join(missing)}")
    values = {k: _int(fields[k], k) for k in needed}
    samples = [_int(line, "a sample") for line in body.split()]
    if len(samples) != values["count"]:
        raise PrtimeError(f"prtime printed {len(samples)} samples, its header says {values['count']}")
    if any(s < 0 for s in samples):
        raise PrtimeError("prtime printed a negative latency: CLOCK_MONOTONIC went backwards?")
    return PrtimeRun(
        samples_ns=samples,
        clock_overhead_median_ns=values["clock_overhead_median_ns"],
        clock_overhead_min_ns=values["clock_overhead_min_ns"],
        cpu=None if values["cpu"] < 0 else values["cpu"],
        direct=bool(values["direct"]),
        bs=values["bs"],
        warmup=values["warmup"],
        short=values["short"],
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version_line(binary: Path) -> str:
    """`prtime 1 <compiler __VERSION__>` from the binary itself; raises PrtimeError if it does not run."""
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise PrtimeError(f"{binary} does not run: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise PrtimeError(f"{binary} --version hung") from exc
    words = done.stdout.split(maxsplit=2)
    if done.returncode != 0 or words[:2] != ["prtime", str(FORMAT)]:
        raise PrtimeError(f"{binary} is not a prtime of format {FORMAT}: {done.stdout.strip()[:80]!r}")
    return done.stdout.strip()


def _from_env(value: str) -> Helper:
    binary = Path(value).resolve()
    version = _version_line(binary)
    return Helper(str(binary), "env", sha256_of(binary), version.split(maxsplit=2)[-1], None)


def _from_image() -> Helper:
    version = _version_line(IMAGE_BINARY)
    try:
        info = json.loads(IMAGE_INFO.read_text())
    except (OSError, ValueError):
        info = {}
    sha = sha256_of(IMAGE_BINARY)
    if info.get("sha256") not in (None, sha):
        raise PrtimeError(f"{IMAGE_BINARY}'s sha256 differs from the one the image build recorded")
    compiler = info.get("compiler") or version.split(maxsplit=2)[-1]
    return Helper(str(IMAGE_BINARY), "image", sha, compiler, info.get("source_sha256"))


def cache_root() -> Path:
    """`$PMEMKIT_CACHE`, else `~/.cache/pmemkit` (as `vm.layers.cache_root`; guest/ does not import vm/)."""
    env = os.environ.get("PMEMKIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pmemkit"


def compiler_version(cc: str = "gcc") -> str | None:
    """The first line of `cc --version`, or None when there is no such compiler."""
    if shutil.which(cc) is None:
        return None
    done = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.splitlines()[0].strip() if done.returncode == 0 and done.stdout else None


def build_host(cache: Path | None = None, cc: str = "gcc") -> Helper:
    """Compile the source once per source hash into the cache (a fresh name renamed into place)."""
    compiler = compiler_version(cc)
    if compiler is None:
        raise PrtimeError(f"no {cc} on this machine to build the timing helper")
    source_sha = sha256_of(SOURCE)
    folder = (cache or cache_root()) / "native" / source_sha[:16]
    binary = folder / "prtime"
    if not binary.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            out = Path(work) / "prtime"
            for flags in (CFLAGS, CFLAGS[:1]):  # static needs libc.a (libc6-dev); else dynamic
                done = subprocess.run(
                    [cc, *flags, "-o", str(out), str(SOURCE)], capture_output=True, text=True, timeout=120
                )
                if done.returncode == 0:
                    break
            else:
                raise PrtimeError(f"{cc} could not build {SOURCE.name}: {done.stderr.strip()[-200:]}")
            out.rename(binary)
    _version_line(binary)
    return Helper(str(binary), "host-cache", sha256_of(binary), compiler, source_sha)


def find_helper(*, build: bool = True) -> tuple[Helper | None, str]:
    """The helper to use and "" — or None and why not (then the caller uses the tracepoints)."""
    try:
        if os.environ.get(ENV):
            return _from_env(os.environ[ENV]), ""
        if IMAGE_BINARY.exists():
            return _from_image(), ""
        if not build:
            return None, f"no timing helper at {IMAGE_BINARY}, and building one was not asked for"
        return build_host(), ""
    except (PrtimeError, OSError, subprocess.SubprocessError) as exc:
        return None, f"no timing helper at {IMAGE_BINARY} (an older image?) and none built here: {exc}"


def run(
    helper: Helper,
    path: str,
    offsets: Sequence[int],
    bs: int,
    *,
    direct: bool = True,
    cpu: int | None = None,
    warmup: int = 0,
    timeout_s: float = TIMEOUT_S,
) -> PrtimeRun:
    """One helper run over `offsets` (bytes); PrtimeError with the helper's own line when it fails."""
    argv = [helper.path, "-b", str(bs), "-w", str(warmup)]
    if direct:
        argv.append("-d")
    if cpu is not None:
        argv += ["-c", str(cpu)]
    argv.append(path)
    stdin = "".join(f"{int(o)}\n" for o in offsets)
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PrtimeError(f"prtime did not finish within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise PrtimeError(
            done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        )
    result = parse_output(done.stdout)
    if len(result.samples_ns) != len(offsets):
        raise PrtimeError(f"prtime timed {len(result.samples_ns)} preads, {len(offsets)} were given")
    return result
