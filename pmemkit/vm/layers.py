"""Cached build layers: built beside the old one, swapped in atomically, checked on every use.

Why: a guest image (and each kernel) takes minutes to build and is trusted by every later run. A
build that is interrupted, killed, or runs out of space must leave the previous layer usable and
nothing behind (no process, no mount, no half folder); a layer truncated or corrupted later must be
noticed and rebuilt rather than booted. Stdlib only: this runs before anything else is known.

Layout: ``$PMEMKIT_CACHE/<kind>/<key>/`` (default cache ``~/.cache/pmemkit``), e.g.
``images/<recipe hash>`` or ``kernels/<key>``. Beside it: ``.<key>.lock`` (flock held while
building), ``<key>.build.log`` (the last build's output) and, only while a build runs,
``<key>.partial-<pid>``. ``<key>/manifest.json`` is a JSON object: the build's free-form metadata
(whatever the command wrote into its own ``manifest.json``, e.g. ``kernel_release``) plus
``"layer": {"kind", "key", "format"}`` and ``"files": {relative path: {"size", "sha256",
"mtime_ns"}}`` for every regular file of the layer.

API (all errors are `LayerError`, an `ImageBuildError`: one line naming the path and the fix)::

    layer = ensure_layer(
        "kernels", key,                                  # $PMEMKIT_CACHE/kernels/<key>
        lambda out: ["bash", script, str(out), ver],     # argv; OUT does not exist yet: create it
        required=("vmlinux", "initrd.img", "modules.raw", "config"),
        progress=print,               # one-line messages (building, broken → rebuilding, ready)
        progress_prefix="[kernel",    # command output lines starting so are passed to progress
        preflight=check_tools,        # called only when a build is needed (may raise)
        rebuild=False,                # True: build a new one beside the cached one and swap
    )
    layer.path / "vmlinux"; layer.meta["kernel_release"]; layer.file("config")
    layer.verify(quick=True)   # -> list of one-line problems; sizes (+ sha256 of files whose
                               #    mtime changed), cheap enough for every use
    layer.verify(quick=False)  # -> the same with every file's sha256 (`pmemkit image --verify`)
    find_layer("kernels", key, required=...)   # -> Layer if present and quick-verified, else None
    problems("kernels", key, required=..., quick=False)  # why a layer is unusable ([] if fine)
    prune("kernels", keep={key, ...})  # -> Pruned(removed=[(path, bytes)], freed=bytes): other
                                       #    keys' layers, logs, locks and stale partials go
    cache_root()                       # $PMEMKIT_CACHE or ~/.cache/pmemkit

The command runs in a new session (its own process group) with stdout+stderr to the build log. On
any exit before the swap (failure, exception, SIGINT/SIGTERM/SIGHUP, which are turned into
`BuildInterrupted` while building, exit code 128+signal) every process of that session is killed,
everything mounted under the partial folder is lazily unmounted (deepest first), and only then is
the partial folder removed. A partial folder that still has a mount under it is never removed.
A pmemkit killed by SIGKILL leaves its partial folder; the next build of that key or `prune`
removes it (unmounting first).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmemkit.vm.errors import ImageBuildError

MANIFEST = "manifest.json"
FORMAT = 1
#: Errors of the cache's file system that the user fixes by pointing PMEMKIT_CACHE elsewhere.
CACHE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EDQUOT}
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LayerError(ImageBuildError):
    """A layer could not be built, found or trusted; the message says why and what to do."""


class LayerCacheError(LayerError):
    """The cache itself cannot be used (read-only, full, not ours)."""


class BuildInterrupted(LayerError):
    """A signal ended a build; the partial build was cleaned up, the previous layer kept."""

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")


def cache_root() -> Path:
    """`$PMEMKIT_CACHE`, else `~/.cache/pmemkit`."""
    env = os.environ.get("PMEMKIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pmemkit"


def cache_error(exc: OSError, path: Path | str) -> LayerError:
    """One line for an OSError on the cache, with the fix when the file system is the cause."""
    what = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno in CACHE_ERRNOS:
        hint = "free space (pmemkit image --prune) or " if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        return LayerCacheError(
            f"cannot write the pmemkit cache at {path}: {what}; {hint}point PMEMKIT_CACHE=DIR to a "
            "writable directory with a few GB free"
        )
    return LayerError(f"pmemkit cache at {path}: {what}")


@dataclass(frozen=True)
class Layer:
    """One cached layer: `path` holds its files and `manifest.json`."""

    kind: str
    key: str
    path: Path
    required: tuple[str, ...] = ()

    def file(self, name: str) -> Path:
        return self.path / name

    def manifest(self) -> dict[str, Any]:
        """The parsed manifest; a `LayerError` (never a JSON traceback) when it is not usable."""
        manifest, problem = _read_manifest(self.path)
        if manifest is None:
            raise LayerError(f"{self.kind} layer {self.path}: {problem}; rebuild it")
        return manifest

    @property
    def meta(self) -> dict[str, Any]:
        """The manifest without the bookkeeping: what the build command reported."""
        return {k: v for k, v in self.manifest().items() if k not in ("files", "layer")}

    def verify(self, quick: bool = True) -> list[str]:
        """Problems, one line each, that make this layer untrustworthy ([] = fine)."""
        return _verify(self.path, self.required, quick)


def recipe_digest(recipe: Path, files: Sequence[str]) -> str:
    """sha256 over the named recipe files' names and contents, 16 hex digits: a layer's cache key.

    One function for every layer kind, so a root and a kernel layer are keyed the same way.
    """
    digest = hashlib.sha256()
    for name in files:
        path = recipe / name
        if not path.is_file():
            raise ImageBuildError(f"recipe file {path} is missing: the checkout is incomplete")
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def layer_dir(kind: str, key: str) -> Path:
    _check_name(kind)
    _check_name(key)
    return cache_root() / kind / key


def problems(kind: str, key: str, required: Sequence[str] = (), quick: bool = True) -> list[str]:
    """Why the layer `kind/key` cannot be used ([] when it can); a missing layer is one problem."""
    path = layer_dir(kind, key)
    if not path.is_dir():
        return [f"{path} does not exist"]
    return _verify(path, tuple(required), quick)


def find_layer(kind: str, key: str, required: Sequence[str] = ()) -> Layer | None:
    """The layer if it exists and passes the quick check, else None (never builds)."""
    path = layer_dir(kind, key)
    if path.is_dir() and not _verify(path, tuple(required), True):
        return Layer(kind, key, path, tuple(required))
    return None


def ensure_layer(
    kind: str,
    key: str,
    command: Callable[[Path], Sequence[str]],
    *,
    required: Sequence[str] = (),
    rebuild: bool = False,
    progress: Callable[[str], None] = print,
    progress_prefix: str = "[",
    preflight: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
) -> Layer:
    """The cached layer `kind/key`, built first when missing, broken, or `rebuild` is asked.

    `command(out)` gives the argv that builds the layer into `out` (which does not exist yet);
    it may write a `manifest.json` object of metadata there. The old layer stays in place until
    the new one is complete and hashed.
    """
    required = tuple(required)
    final = layer_dir(kind, key)
    if not rebuild:
        layer = find_layer(kind, key, required)
        if layer is not None:  # the common case; needs no lock, so a read-only cache still works
            return layer
    kind_dir = final.parent
    try:
        kind_dir.mkdir(parents=True, exist_ok=True)
        lock = open(kind_dir / f".{key}.lock", "a")  # noqa: SIM115 - held for the whole build
    except OSError as exc:
        raise cache_error(exc, kind_dir) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build of the same key waits here
        _remove_stale_partials(kind_dir, key)
        why = ["a rebuild was asked for"] if rebuild else problems(kind, key, required)
        if not why:
            return Layer(kind, key, final, required)  # built by whoever held the lock before us
        if final.exists() and not rebuild:
            more = f" (+{len(why) - 1} more)" if len(why) > 1 else ""
            progress(f"cached {kind} layer {key} is broken: {why[0]}{more}; rebuilding it")
        if preflight is not None:
            preflight()
        _build(kind, key, final, command, required, progress, progress_prefix, env)
        return Layer(kind, key, final, required)


@dataclass
class Pruned:
    """What `prune` removed: (path, bytes) per entry."""

    removed: list[tuple[Path, int]] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.removed)


def prune(kind: str, keep: Iterable[str]) -> Pruned:
    """Remove `kind`'s layers other than `keep`, their logs and locks, and every stale partial.

    A key whose lock is held (a build is running) is left alone.
    """
    keep = set(keep)
    kind_dir = cache_root() / kind
    result = Pruned()
    if not kind_dir.is_dir():
        return result
    keys = {_key_of(entry.name) for entry in kind_dir.iterdir()} - {None}
    for key in sorted(k for k in keys if k is not None):
        try:
            with _try_lock(kind_dir, key) as locked:
                if not locked:
                    continue
                result.removed += _remove_stale_partials(kind_dir, key)
                if key in keep:
                    continue
                for path in (kind_dir / key, kind_dir / f"{key}.build.log"):
                    if path.exists() or path.is_symlink():
                        size = _du(path)
                        _remove(path)
                        result.removed.append((path, size))
                # The empty lock file stays: unlinking it could let two builders lock different files.
        except OSError as exc:
            raise cache_error(exc, kind_dir) from None
    return result


# --- building -----------------------------------------------------------------------------------


def _build(
    kind: str,
    key: str,
    final: Path,
    command: Callable[[Path], Sequence[str]],
    required: tuple[str, ...],
    progress: Callable[[str], None],
    prefix: str,
    env: dict[str, str] | None,
) -> None:
    work = final.with_name(f"{key}.partial-{os.getpid()}")
    log_path = final.with_name(f"{key}.build.log")
    argv = [str(a) for a in command(work)]
    progress(f"building {kind} layer {key} (log: {log_path})")
    start = time.monotonic()
    try:
        log = open(log_path, "w")  # noqa: SIM115 - closed only after the build's session is dead
    except OSError as exc:
        raise cache_error(exc, log_path) from None
    build = _Running()
    swapped = False
    with log, _signals_as_exceptions() as guard:
        try:
            try:
                build.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    start_new_session=True,  # one session (and process group) to kill on any exit
                    env=env,
                )
            except OSError as exc:
                why = os.strerror(exc.errno or 0)
                raise LayerError(f"cannot start the {kind} build {argv[0]}: {why}") from None
            build.pump = _LogPump(build.proc, log, prefix)
            while True:  # wait here, not in a read: a signal must reach us even when output is quiet
                for line in build.pump.take():
                    progress(line)
                try:
                    rc = build.proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    continue
            build.stop()  # a process the build left behind must not outlive it
            for line in build.pump.take():
                progress(line)
            if build.pump.error is not None:
                raise cache_error(build.pump.error, log_path)
            if rc != 0:
                raise LayerError(_failure_line(kind, rc, log_path))
            if not work.is_dir():
                raise LayerError(f"{kind} build exited 0 but made no folder {work}; log: {log_path}")
            _unmount_under(work)  # a successful build must leave no mount either
            try:
                _write_manifest(work, kind, key, required)
            except OSError as exc:
                raise cache_error(exc, work) from None
            with guard.deferred():  # the swap is never cut in half by a signal
                _swap(work, final)
                swapped = True
        except BaseException as exc:
            with guard.deferred(swallow=True):
                notes = _cleanup(build, work)
            if isinstance(exc, BuildInterrupted):
                if swapped:
                    old = f"the new layer {final} was already in place"
                elif final.is_dir():
                    old = f"the previous layer {final} is kept"
                else:
                    old = "no layer was cached"
                name = signal.Signals(exc.signum).name
                raise BuildInterrupted(
                    exc.signum, f"{kind} build of {key} interrupted by {name}: {notes}; {old}"
                ) from None
            if notes != "cleaned up":
                progress(f"{kind} build of {key}: {notes}")
            raise
    progress(f"{kind} layer ready in {time.monotonic() - start:.0f} s: {final}")


class _LogPump:
    """Copies the build's output to its log in a thread; lines starting with `prefix` are kept."""

    def __init__(self, proc: subprocess.Popen[str], log: Any, prefix: str) -> None:
        self.proc, self.log, self.prefix = proc, log, prefix
        self.lines: list[str] = []
        self.error: OSError | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self.error is None:
                try:
                    self.log.write(line)
                    self.log.flush()
                except OSError as exc:
                    self.error = exc
            if line.startswith(self.prefix):
                with self.lock:
                    self.lines.append(line.rstrip())

    def take(self) -> list[str]:
        with self.lock:
            lines, self.lines = self.lines, []
        return lines

    def finish(self) -> None:
        """After the session is dead nobody holds the pipe: the thread ends at EOF."""
        self.thread.join(timeout=10)


def _failure_line(kind: str, rc: int, log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    tail = lines[-1] if lines else "(no output)"
    hint = ""
    if any("No space left on device" in line for line in lines[-40:]):
        hint = "; the disk is full: free space (pmemkit image --prune) or set PMEMKIT_CACHE=DIR"
    return f"{kind} build failed (exit {rc}): {tail}{hint} — full log: {log_path}"


@dataclass
class _Running:
    """The build's process and its output pump, so cleanup can end both in the right order."""

    proc: subprocess.Popen[str] | None = None
    pump: _LogPump | None = None

    def stop(self) -> list[int]:
        """Kill the whole session, then let the pump reach EOF; returns pids that would not die."""
        if self.proc is None:
            return []
        survivors = _kill_session(self.proc)
        if self.pump is not None:
            self.pump.finish()
        if self.proc.stdout is not None and not (self.pump and self.pump.thread.is_alive()):
            self.proc.stdout.close()
        return survivors


def _cleanup(build: _Running, work: Path) -> str:
    """Kill the build's session, unmount under `work`, remove it; say honestly what is left."""
    left = []
    survivors = build.stop()
    if survivors:
        left.append(f"processes {survivors} did not die")
    mounts = _unmount_under(work)
    if mounts:
        left.append(f"still mounted: {', '.join(mounts)} (folder {work} kept)")
    elif work.exists():
        try:
            shutil.rmtree(work)
        except OSError as exc:
            left.append(f"could not remove {work}: {os.strerror(exc.errno or 0)}")
    return "; ".join(left) if left else "cleaned up"


def _session_members(sid: int) -> list[int]:
    """Processes whose session or process group is `sid` (the build leader's pid)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session
        if len(fields) > 3 and fields[0] != "Z" and sid in (int(fields[2]), int(fields[3])):
            members.append(int(entry))
    return members


def _kill_session(proc: subprocess.Popen[str], grace_s: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process of the build's session; returns survivors' pids."""
    sid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        members = _session_members(sid)
        if not members:
            return []
        for pid in members:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or it stays a zombie member of its session
            if not _session_members(sid):
                return []
            time.sleep(0.05)
    return _session_members(sid)


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field_):
        if field_[i] == "\\" and len(field_[i + 1 : i + 4]) == 3 and field_[i + 1 : i + 4].isdigit():
            out.append(chr(int(field_[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` (from /proc/self/mountinfo), deepest and newest first."""
    base = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for order, line in enumerate(lines):
        parts = line.split()
        if len(parts) < 5:
            continue
        point = _unescape(parts[4])
        if point == base or point.startswith(base.rstrip("/") + "/"):
            found.append((point.count("/"), order, point))
    return [p for _, _, p in sorted(found, reverse=True)]


def _umount_lazy(point: str) -> None:
    if shutil.which("umount"):
        subprocess.run(["umount", "-l", "--", point], capture_output=True, check=False)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(point.encode(), 2)  # MNT_DETACH


def _unmount_under(path: Path) -> list[str]:
    """Lazily unmount everything under `path`; returns what is still mounted afterwards."""
    for _ in range(3):  # stacked mounts on one point need one umount each
        points = mounts_under(path)
        if not points:
            return []
        for point in points:
            _umount_lazy(point)
    return mounts_under(path)


# --- manifests and verification -----------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """A file's sha256 in hex, read in 1 MiB chunks: manifests, and kernel layer keys."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(work: Path, kind: str, key: str, required: tuple[str, ...]) -> None:
    meta: dict[str, Any] = {}
    if (work / MANIFEST).exists():
        loaded, problem = _read_json_object(work / MANIFEST)
        if loaded is None:
            raise LayerError(f"the {kind} build wrote a bad {work / MANIFEST}: {problem}")
        meta = {k: v for k, v in loaded.items() if k not in ("files", "layer")}
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(work.rglob("*")):
        rel = path.relative_to(work).as_posix()
        if rel == MANIFEST or path.is_dir() and not path.is_symlink():
            continue
        if path.is_symlink() or not path.is_file():
            raise LayerError(f"the {kind} build left {path}, which is not a regular file")
        st = path.stat()
        files[rel] = {"size": st.st_size, "sha256": file_sha256(path), "mtime_ns": st.st_mtime_ns}
    missing = [name for name in required if name != MANIFEST and name not in files]
    if missing:
        raise LayerError(f"the {kind} build made no {', '.join(missing)} in {work}")
    manifest = {**meta, "layer": {"kind": kind, "key": key, "format": FORMAT}, "files": files}
    tmp = work / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.rename(work / MANIFEST)


def _read_json_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except OSError as exc:
        return None, f"{path.name} is unreadable ({os.strerror(exc.errno or 0)})"
    except (ValueError, RecursionError):  # JSONDecodeError and invalid UTF-8 are ValueErrors
        return None, f"{path.name} is not valid JSON (truncated?)"
    if not isinstance(data, dict):
        return None, f"{path.name} is not a JSON object"
    return data, ""


def _read_manifest(path: Path) -> tuple[dict[str, Any] | None, str]:
    manifest, problem = _read_json_object(path / MANIFEST)
    if manifest is None:
        return None, problem
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
        for v in files.values()
    ):
        return None, f"{MANIFEST} lists no file sizes and hashes (made by an older pmemkit?)"
    return manifest, ""


def _verify(path: Path, required: tuple[str, ...], quick: bool) -> list[str]:
    manifest, problem = _read_manifest(path)
    if manifest is None:
        return [problem]
    files: dict[str, dict[str, Any]] = manifest["files"]
    found = [
        f"{name} is not listed in {MANIFEST}" for name in required if name != MANIFEST and name not in files
    ]
    for rel, entry in files.items():
        target = path / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            found.append(f"{MANIFEST} names {rel!r}, outside the layer")
            continue
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            found.append(f"{rel} is missing")
            continue
        except OSError as exc:
            found.append(f"{rel} is unreadable ({os.strerror(exc.errno or 0)})")
            continue
        if not os.path.isfile(target) or os.path.islink(target):
            found.append(f"{rel} is not a regular file")
        elif st.st_size != entry["size"]:
            found.append(f"{rel} has {st.st_size} bytes, the manifest says {entry['size']} (truncated?)")
        elif not quick or st.st_mtime_ns != entry.get("mtime_ns"):
            try:
                if file_sha256(target) != entry["sha256"]:
                    found.append(f"{rel} does not match its sha256 in {MANIFEST} (corrupted)")
            except OSError as exc:
                found.append(f"{rel} is unreadable ({os.strerror(exc.errno or 0)})")
    return found


# --- swapping, locks, removal -------------------------------------------------------------------

_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap(work: Path, final: Path) -> None:
    """Put `work` in place of `final`; the old layer is removed only after the new one is in."""
    try:
        if final.exists() or final.is_symlink():
            if _exchange(work, final):
                old = work  # now holds the old layer
            else:
                old = final.with_name(f"{final.name}.old-{os.getpid()}")
                final.rename(old)
                work.rename(final)
        else:
            work.rename(final)
            return
    except OSError as exc:
        raise cache_error(exc, final) from None
    try:
        _remove(old)
    except (OSError, LayerError):
        pass  # named .partial-/.old-: the next build of this key or `prune` removes it


def _remove(path: Path) -> None:
    """Remove a file or folder, unmounting under it first; refuse if a mount remains."""
    if path.is_dir() and not path.is_symlink():
        left = _unmount_under(path)
        if left:
            raise LayerError(f"{path} still has mounts ({', '.join(left)}); unmount them and retry")
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _key_of(name: str) -> str | None:
    """The layer key an entry of a kind folder belongs to."""
    if name.startswith(".") and name.endswith(".lock"):
        return name[1:-5] or None
    for marker in (".partial-", ".old-", ".build.log"):
        if marker in name:
            return name.split(marker)[0] or None
    return None if name.startswith(".") else name


def _remove_stale_partials(kind_dir: Path, key: str) -> list[tuple[Path, int]]:
    """Partial and old folders of `key`; call only while holding `key`'s lock."""
    removed = []
    for entry in kind_dir.glob(f"{key}.*"):
        if ".partial-" in entry.name or ".old-" in entry.name:
            size = _du(entry)
            _remove(entry)
            removed.append((entry, size))
    return removed


@contextmanager
def _try_lock(kind_dir: Path, key: str) -> Iterator[bool]:
    lock_path = kind_dir / f".{key}.lock"
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _du(path: Path) -> int:
    """Bytes allocated on disk (sparse files count what they use), without crossing mounts."""
    try:
        if path.is_symlink() or not path.is_dir():
            return path.lstat().st_blocks * 512
        dev = path.stat().st_dev
        total = 0
        for root, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if os.lstat(os.path.join(root, d)).st_dev == dev]
            for name in names:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
        return total
    except OSError:
        return 0


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\0" in name:
        raise LayerError(f"bad layer name {name!r}: a non-empty name without '/' or a leading '.'")


# --- signals ------------------------------------------------------------------------------------


class _SignalGuard:
    """While building, SIGINT/SIGTERM/SIGHUP raise BuildInterrupted; `deferred()` postpones that."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending: int | None = None

    def handler(self, signum: int, _frame: object) -> None:
        if self.depth:
            self.pending = self.pending or signum
            return
        raise BuildInterrupted(signum)

    @contextmanager
    def deferred(self, swallow: bool = False) -> Iterator[None]:
        """Signals inside are remembered and raised on leaving (or dropped when `swallow`)."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if swallow:
            self.pending = None
        elif not self.depth and self.pending is not None:
            signum, self.pending = self.pending, None
            raise BuildInterrupted(signum)


@contextmanager
def _signals_as_exceptions() -> Iterator[_SignalGuard]:
    guard = _SignalGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard  # signals cannot be caught here; exceptions still clean up
        return
    previous = {sig: signal.signal(sig, guard.handler) for sig in _SIGNALS}
    try:
        yield guard
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
