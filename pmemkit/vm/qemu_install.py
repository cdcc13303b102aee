"""A QEMU new enough for CXL pmem, checked before a CXL boot and fetched on demand into the cache.

Why: Debian 12's QEMU 7.2 boots the CXL machine, but data written to its CXL pmem reads back as
zeros once the guest's page cache is bypassed (issue 16); QEMU 10.0.2 from bookworm-backports
reads it back. The host's own qemu and apt sources are never changed: the packages come through a
private apt configuration (`apt/qemu-cxl/`, as kernels do, vm/kernel_apt.py) and are unpacked with
`dpkg-deb -x` into `qemu/<version>/root/`; a small wrapper script there points the binary at its
own firmware (`-L`), its own modules (QEMU_MODULE_DIR; the host's 7.2 modules refuse to load) and,
when the host lacks any, its own libraries (LD_LIBRARY_PATH).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from pmemkit.vm import kernel_apt, layers
from pmemkit.vm.errors import HostToolMissing, ImageBuildError

#: The oldest QEMU whose CXL pmem pmemkit saw read back what was written (10.0.2; 7.2 gives zeros).
#: Versions between them were not tried, so they are refused too.
MIN_CXL_QEMU = (10, 0)
#: Where Debian 12 hosts get one: the QEMU packages from backports, their libraries from bookworm.
SUITES = ("bookworm-backports", "bookworm")
QEMU_SUITE = "bookworm-backports"
APT_NAME = "qemu-cxl"
PACKAGES = ("qemu-system-x86", "qemu-system-data", "qemu-system-common", "seabios")
BINARY = "qemu-system-x86_64"
FIX = (
    f"install qemu-system-x86 >= {MIN_CXL_QEMU[0]}.{MIN_CXL_QEMU[1]} (Debian 12: from bookworm-backports) "
    "or let pmemkit fetch it into its cache"
)
_VERSION = re.compile(r"version (\d+)\.(\d+)(?:\.(\d+))?")

Progress = Callable[[str], None]


def parse_version(text: str) -> tuple[int, int, int] | None:
    """`QEMU emulator version 10.0.2 (Debian …)` → (10, 0, 2); None when it names no version."""
    match = _VERSION.search(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def qemu_version(binary: str) -> tuple[int, int, int] | None:
    """The version `binary --version` prints (None when it cannot be run or says none)."""
    try:
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(proc.stdout)


def new_enough(version: tuple[int, int, int] | None) -> bool:
    return version is not None and version[:2] >= MIN_CXL_QEMU


def shown(version: tuple[int, int, int] | None) -> str:
    return "none" if version is None else ".".join(map(str, version))


def base_dir() -> Path:
    return layers.cache_root() / "qemu"


def installed() -> list[tuple[tuple[int, int, int], Path]]:
    """(version, wrapper) of every complete QEMU in the cache, newest first; a `.partial-*` folder
    (a fetch still going on, or one a kill cut short) is never one, even with its wrapper written."""
    found = []
    base = base_dir()
    if base.is_dir():
        for wrapper in base.glob(f"*/bin/{BINARY}"):
            if wrapper.parent.parent.name.startswith("."):
                continue
            version = qemu_version(str(wrapper))
            if new_enough(version):
                assert version is not None
                found.append((version, wrapper))
    return sorted(found, reverse=True)


def cxl_qemu(host_qemu: str | None, progress: Progress = print, fetch: bool = True) -> str:
    """The qemu binary for a CXL boot: the host's when new enough, else the cache's, else one
    fetched now (`fetch`); otherwise HostToolMissing (exit 4) in one line naming what to install."""
    clean_stale_partials()  # what a fetch killed before its rename left behind
    host_version = qemu_version(host_qemu) if host_qemu else None
    if new_enough(host_version):
        assert host_qemu is not None
        return host_qemu
    have = installed()
    if have:
        return str(have[0][1])
    needed = f"{MIN_CXL_QEMU[0]}.{MIN_CXL_QEMU[1]}"
    why = (
        f"CXL pmem needs QEMU >= {needed} (the host's is {shown(host_version)}; "
        "7.2 reads CXL pmem back as zeros)"
    )
    if not fetch:
        raise HostToolMissing(f"{why}: {FIX}")
    progress(
        f"[qemu] {why}: fetching QEMU from {QEMU_SUITE} into {base_dir()} (the host's qemu is left alone)"
    )
    try:
        wrapper = install(progress)
    except (ImageBuildError, OSError) as exc:
        raise HostToolMissing(f"{why}; fetching it failed ({exc}): {FIX}") from None
    return str(wrapper)


def _run(argv: list[str], cwd: Path | None = None) -> str:
    return kernel_apt._apt(argv) if cwd is None else _run_in(argv, cwd)


def _run_in(argv: list[str], cwd: Path) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=cwd)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ImageBuildError(f"`{' '.join(argv[:4])} …` failed: {last}")
    return proc.stdout


def missing_libraries(ldd_output: str) -> list[str]:
    """`libfoo.so.1 => not found` lines of ldd → the library names."""
    return [line.split()[0] for line in ldd_output.splitlines() if "not found" in line]


def host_has(package: str) -> bool:
    """True when the host's dpkg has `package` installed."""
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.endswith(" installed")


def install(progress: Progress = print) -> Path:
    """Download and unpack the QEMU packages (and any library the host lacks); returns the wrapper."""
    conf, _mirrors = kernel_apt.write_apt_config(APT_NAME, SUITES)
    with kernel_apt._locked(conf.parent / "lock.pmemkit"):
        progress(f"[qemu] fetching the package lists of {', '.join(SUITES)} (private apt config {conf})")
        _run(["apt-get", "-q", "-c", str(conf), "update"])
        cache = ["apt-cache", "-c", str(conf)]
        show = _run([*cache, "show", f"qemu-system-x86/{QEMU_SUITE}"])
        version = next(
            (ln.split(":", 1)[1].strip() for ln in show.splitlines() if ln.startswith("Version:")), None
        )
        if version is None:
            raise ImageBuildError(f"{QEMU_SUITE} has no qemu-system-x86")
        dest = base_dir() / re.sub(r"[^A-Za-z0-9.+~-]", "_", version.split(":", 1)[-1])
        wrapper = dest / "bin" / BINARY
        if wrapper.is_file():
            return wrapper
        base_dir().mkdir(parents=True, exist_ok=True)
        clean_stale_partials()
        stage = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{os.getpid()}-", dir=base_dir()))
        try:
            _build(stage, conf, version, kernel_apt.parse_depends(show), progress)
            os.replace(stage, dest)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    progress(f"[qemu] QEMU {version} ready: {wrapper}")
    return wrapper


#: A fetch stages into `.partial-<pid>-<random>/` and renames it into place when complete.
PARTIAL = ".partial-"
#: Slack for comparing a folder's mtime with a process's start time (psutil's is boot-time based).
CLOCK_SLACK_S = 2.0


def clean_stale_partials() -> list[Path]:
    """Remove the `.partial-*` folders no running fetch owns: its pid is gone, or the pid now
    belongs to a process that started after the folder was last changed (a reused pid), or the
    name carries no pid and the folder is older than this process. A symlink or any other
    non-folder is left alone, and nothing is followed through a link (`shutil.rmtree` neither
    follows links inside nor removes a link given to it). Returns what was removed."""
    import psutil

    base = base_dir()
    try:
        entries = [e for e in os.scandir(base) if e.name.startswith(PARTIAL)]
    except OSError:
        return []
    own_start = psutil.Process().create_time()
    removed = []
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        owner = entry.name[len(PARTIAL) :].split("-", 1)[0]
        if owner.isdigit():
            try:
                if psutil.Process(int(owner)).create_time() <= mtime + CLOCK_SLACK_S:
                    continue  # its owner (this process, or a fetch still going on) made it
            except psutil.NoSuchProcess:
                pass
            except psutil.Error:
                continue  # cannot tell: leave it
        elif mtime + CLOCK_SLACK_S >= own_start:
            continue
        try:
            shutil.rmtree(entry.path)
        except OSError:
            continue  # removed by someone else meanwhile, or not ours to remove: the next run tries
        removed.append(Path(entry.path))
    return removed


def _build(
    stage: Path, conf: Path, version: str, depends: list[tuple[str, str | None]], progress: Progress
) -> None:
    debs, root = stage / "debs", stage / "root"
    debs.mkdir()
    root.mkdir()
    wanted = [f"{name}/{QEMU_SUITE}" for name in PACKAGES]
    progress(f"[qemu] downloading {' '.join(PACKAGES)} ({version})")
    _run(["apt-get", "-q", "-c", str(conf), "download", *wanted], cwd=debs)
    _unpack(debs, root, progress)
    binary = root / "usr" / "bin" / BINARY
    libdirs = [root / "usr/lib/x86_64-linux-gnu", root / "lib/x86_64-linux-gnu"]
    missing = missing_libraries(_run(["ldd", str(binary)]))
    if missing:
        libs = sorted({n for n, _ in depends if n.startswith("lib") and not host_has(n)})
        progress(f"[qemu] the host lacks {', '.join(missing)}: downloading {' '.join(libs) or '(nothing)'}")
        if libs:
            _run(["apt-get", "-q", "-c", str(conf), "download", *libs], cwd=debs)
            _unpack(debs, root, progress)
        env = {**os.environ, "LD_LIBRARY_PATH": ":".join(map(str, libdirs))}
        proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=60, env=env)
        still = missing_libraries(proc.stdout)
        if still:
            raise ImageBuildError(
                f"QEMU {version} still lacks {', '.join(still)} after its libraries were unpacked"
            )
    _write_wrapper(stage, version, with_libs=bool(missing))
    write_meta(stage, version, debs)


def write_meta(stage: Path, version: str, debs: Path) -> None:
    """meta.json: where this QEMU came from, each .deb with its size and sha256 (provenance)."""
    packages = [
        {"file": deb.name, "size": deb.stat().st_size, "sha256": layers.file_sha256(deb)}
        for deb in sorted(debs.glob("*.deb"))
    ]
    meta = {"qemu_version": version, "suite": QEMU_SUITE, "lists_from": list(SUITES), "debs": packages}
    (stage / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _unpack(debs: Path, root: Path, progress: Progress) -> None:
    for deb in sorted(debs.glob("*.deb")):
        progress(f"[qemu] unpacking {deb.name}")
        _run(["dpkg-deb", "-x", str(deb), str(root)])


def wrapper_text(version: str, with_libs: bool) -> str:
    """The wrapper: paths relative to its own folder, so the folder can be renamed into place."""
    lines = [
        "#!/bin/sh",
        f"# Written by pmemkit: QEMU {version} from Debian {QEMU_SUITE}, unpacked (not installed).",
        'R="$(cd "$(dirname "$0")/.." && pwd)/root"',
        'export QEMU_MODULE_DIR="$R/usr/lib/x86_64-linux-gnu/qemu"',
    ]
    if with_libs:
        lines.append('export LD_LIBRARY_PATH="$R/usr/lib/x86_64-linux-gnu:$R/lib/x86_64-linux-gnu"')
    lines.append(f'exec "$R/usr/bin/{BINARY}" -L "$R/usr/share/qemu" -L "$R/usr/share/seabios" "$@"')
    return "\n".join(lines) + "\n"


def _write_wrapper(stage: Path, version: str, with_libs: bool) -> None:
    (stage / "bin").mkdir()
    wrapper = stage / "bin" / BINARY
    wrapper.write_text(wrapper_text(version, with_libs))
    wrapper.chmod(0o755)


#: Suites that stream through the mapping (bandwidth, fio): minutes per filesystem on emulated CXL
#: memory (mmap 115 s, fio 36 s for cxl:512M ext4 under TCG on QEMU 10.0.2, one run).
STREAMING_SUITES = ("mmap", "fio")


def cxl_speed_warning(suites: list[str]) -> str:
    """One line telling what CXL emulation costs, and which planned suites it makes impractical.

    Why: QEMU emulates every access to CXL memory (2.26 s for 4 MiB of numpy writes and a read-back
    under TCG, measured on QEMU 10.0.2); the default timeout is scaled for DRAM-backed pmem.
    """
    slow = [s for s in suites if s in STREAMING_SUITES]
    line = (
        "note: QEMU emulates every access to CXL memory (about 2 MB/s under TCG): timings are the emulator's"
    )
    if slow:
        line += f"; the {', '.join(slow)} suite(s) take minutes per filesystem (raise --timeout if killed)"
    return line
