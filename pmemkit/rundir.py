"""The run directory: every file the host reads from or writes into a run, and nothing else does.

Why one module: the guest is untrusted, and its results share sits inside the run. Layout:

    RUN/plan.json, environment.json, guest-console.log, observations.jsonl,
        guest-environment.json, dmesg.txt, report.html, report.md,
        observations.csv, plots/*.png                                written by the host only
    RUN/guest/                                                       the guest's 9p share

The host hands the guest a copy of its plan inside `guest/` and trusts only its own. After the
boot it *collects* the guest's files into RUN/: read without following links (O_NOFOLLOW relative
to a directory fd), regular files only, sizes bounded, damage turned into warnings. Every host
write creates a fresh file under a random name (O_EXCL|O_NOFOLLOW) and renames it into place, so a
planted symlink is replaced, never followed, and a failed write leaves no temp file behind.
Old run directories (the guest share was RUN/ itself) are read the same way.

Stdlib only: `plan.py`, which the guest imports with Debian's python3, uses `write_atomic`.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmemkit.scenario import READABLE_SCHEMAS, SCHEMA_VERSION, Observation, ScenarioError

GUEST_DIR = "guest"
PLAN, ENVIRONMENT, OBSERVATIONS = "plan.json", "environment.json", "observations.jsonl"
GUEST_ENVIRONMENT, DMESG, CONSOLE, REPORT, PLOTS = (
    "guest-environment.json",
    "dmesg.txt",
    "guest-console.log",
    "report.md",
    "plots",
)
MiB = 1 << 20
#: What the host reads of a guest-written file at most: a guest can write gigabytes.
MAX_OBSERVATIONS_BYTES = 64 * MiB
MAX_JSON_BYTES = 8 * MiB
MAX_LOG_BYTES = 16 * MiB
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RunDirError(OSError):
    """A run directory that cannot be used or written; one line naming the path and the cause.

    exit 2: the directory given is wrong (not a run, a regular file, read-only); exit 3: writing
    failed while a run was in progress (disk full, I/O error). An OSError, so callers that already
    handle OSError (the guest's runner) still do.
    """

    def __init__(self, message: str, exit_code: int = 3) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __str__(self) -> str:
        return str(self.args[0])


def _why(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc}" + (f" ({name})" if name else "")


def _short(exc: object, limit: int = 120) -> str:
    """An exception's text, bounded: a message may quote a guest-written megabyte."""
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError:  # 9p and some filesystems refuse fsync on a directory; the rename still stands
        pass


def write_at(dir_fd: int, name: str, data: str | bytes, label: str | None = None) -> None:
    """Write `name` in the directory `dir_fd` as a fresh file: random temp name, fsync, rename.

    The temp file is created with O_EXCL|O_NOFOLLOW, so nothing planted can redirect it, and
    os.replace swaps a planted `name` symlink for the new file without following it.
    """
    payload = data.encode() if isinstance(data, str) else data
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
    except OSError as exc:
        raise RunDirError(f"cannot write {label or name}: {_why(exc)}", _exit_for(exc)) from None
    try:
        try:
            _write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise RunDirError(f"cannot write {label or name}: {_why(exc)}", _exit_for(exc)) from None
    _fsync_dir(dir_fd)


def _exit_for(exc: OSError) -> int:
    """Bad input (2) when the directory itself is unusable; a harness error (3) otherwise."""
    return 2 if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR) else 3


def open_dir(path: Path, follow: bool = True) -> int:
    """A directory fd; `follow=False` for directories inside a run, where a link may be planted."""
    flags = _DIR_FLAGS if not follow else _DIR_FLAGS & ~os.O_NOFOLLOW
    return os.open(path, flags)


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `path` via a fresh temp file and a rename: a crash never leaves a half-written file."""
    path = Path(path)
    try:
        dir_fd = open_dir(path.parent)
    except OSError as exc:
        raise RunDirError(f"cannot write {path}: {_why(exc)}", _exit_for(exc)) from None
    try:
        write_at(dir_fd, path.name, text, str(path))
    finally:
        os.close(dir_fd)


@dataclass
class Read:
    """A file read from a run directory: its bytes (None when absent or refused) and why not."""

    data: bytes | None
    warnings: list[str] = field(default_factory=list)


def read_at(dir_fd: int, name: str, limit: int, label: str | None = None) -> Read:
    """Read at most `limit` bytes of a regular file, never following a link, never blocking on a FIFO."""
    label = label or name
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return Read(None)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Read(None, [f"{label} is a symbolic link: not followed, not read"])
        return Read(None, [f"{label} cannot be read: {_why(exc)}"])
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return Read(None, [f"{label} is not a regular file: not read"])
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        return Read(None, [f"{label} cannot be read: {_why(exc)}"])
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        return Read(
            data[:limit], [f"{label} is larger than {limit // MiB} MiB: only the first part was read"]
        )
    return Read(data)


def parse_json_object(read: Read, label: str, warnings: list[str]) -> dict[str, Any]:
    """The JSON object a file holds, or {} with a warning (invalid UTF-8, bad JSON, not an object)."""
    warnings += read.warnings
    if read.data is None:
        return {}
    try:
        value = json.loads(read.data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        warnings.append(f"{label} is not valid UTF-8 ({exc.reason} at byte {exc.start}): ignored")
        return {}
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        warnings.append(f"{label} is not valid JSON ({_short(exc)}): ignored")
        return {}
    except RecursionError:
        warnings.append(f"{label} is nested too deeply: ignored")
        return {}
    if not isinstance(value, dict):
        warnings.append(f"{label} holds a JSON {type(value).__name__}, not an object: ignored")
        return {}
    return value


def json_object_lines(read: Read, label: str, warnings: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every whole line that is a JSON object; the rest become warnings.

    A last line without its newline is a torn write (the guest died mid-write): skipped.
    """
    warnings += read.warnings
    if not read.data:
        return []
    lines = read.data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail.strip():
        warnings.append(f"{label} line {len(lines) + 1} skipped: incomplete (no newline; a torn write)")
    objects = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            warnings.append(f"{label} line {number} skipped: not valid UTF-8 ({exc.reason})")
            continue
        except (ValueError, RecursionError) as exc:  # bad JSON, or an integer too long to convert
            warnings.append(f"{label} line {number} skipped: {_short(exc)}")
            continue
        if not isinstance(value, dict):
            warnings.append(f"{label} line {number} skipped: a JSON {type(value).__name__}, not an object")
            continue
        objects.append((number, value))
    return objects


def observations_from(
    objects: list[tuple[int, dict[str, Any]]], label: str, warnings: list[str]
) -> list[Observation]:
    result = []
    for number, value in objects:
        try:
            result.append(Observation.from_dict(value))
        except (ScenarioError, TypeError, KeyError, ValueError, AttributeError) as exc:
            warnings.append(f"{label} line {number} skipped: {_short(exc)}")
    return result


@dataclass
class RunFiles:
    """Everything a run directory holds, parsed; what could not be read is in `warnings`."""

    name: str
    plan: dict[str, Any]
    environment: dict[str, Any]
    guest_environment: dict[str, Any]
    observations: list[Observation]
    warnings: list[str] = field(default_factory=list)


def _is_ours_plan(value: dict[str, Any]) -> bool:
    return {"schema", "suites", "pmem"} <= value.keys()


def _is_ours_environment(value: dict[str, Any]) -> bool:
    return {"pmemkit_version", "qemu_argv"} <= value.keys()


def _is_ours_observation(value: dict[str, Any]) -> bool:
    return {"schema", "experiment", "operation", "scenario"} <= value.keys()


class RunDir:
    """An open run directory (held by fd, so renaming its path mid-way changes nothing)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, path: Path, require_run: bool = True) -> RunDir:
        """Open `path`; with `require_run`, refuse a directory pmemkit did not make (exit 2)."""
        path = Path(path)
        try:
            fd = open_dir(path)
        except OSError as exc:
            raise RunDirError(f"{path} cannot be opened as a run directory: {_why(exc)}", 2) from None
        run = cls(path, fd)
        if require_run and not run.is_run():
            run.close()
            raise RunDirError(
                f"{path} is not a pmemkit run directory (no plan.json, environment.json or "
                "observations.jsonl written by pmemkit): nothing written",
                2,
            )
        return run

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def guest_fd(self) -> int | None:
        """The guest share's fd, or None (an old run, or a planted link in its place)."""
        try:
            return os.open(GUEST_DIR, _DIR_FLAGS, dir_fd=self.fd)
        except OSError:
            return None

    def _json(self, dir_fd: int, name: str, label: str, warnings: list[str]) -> dict[str, Any]:
        return parse_json_object(read_at(dir_fd, name, MAX_JSON_BYTES, label), label, warnings)

    def is_run(self) -> bool:
        """pmemkit made this directory: a plan, an environment or an observation of ours is in it."""
        scratch: list[str] = []
        if _is_ours_plan(self._json(self.fd, PLAN, PLAN, scratch)):
            return True
        if _is_ours_environment(self._json(self.fd, ENVIRONMENT, ENVIRONMENT, scratch)):
            return True
        fds = [self.fd]
        guest = self.guest_fd()
        if guest is not None:
            fds.append(guest)
        try:
            for fd in fds:
                head = read_at(fd, OBSERVATIONS, 1 * MiB)
                if head.data:
                    whole = Read(head.data[: head.data.rfind(b"\n") + 1])
                    objects = json_object_lines(whole, OBSERVATIONS, scratch)
                    if objects and _is_ours_observation(objects[0][1]):
                        return True
        finally:
            if guest is not None:
                os.close(guest)
        return False

    def load(self) -> RunFiles:
        """Every file the report needs; a file not yet collected is read from the guest share."""
        warnings: list[str] = []
        plan = self._json(self.fd, PLAN, PLAN, warnings)
        environment = self._json(self.fd, ENVIRONMENT, ENVIRONMENT, warnings)
        for name, value in ((PLAN, plan), (ENVIRONMENT, environment)):
            if not value:
                warnings.append(f"{name} is missing or empty")
        collected = environment.get("collect_warnings")
        if isinstance(collected, list):
            warnings += [f"collecting the guest's files: {w}" for w in collected if isinstance(w, str)]
        guest_env_read = read_at(self.fd, GUEST_ENVIRONMENT, MAX_JSON_BYTES)
        obs_read = read_at(self.fd, OBSERVATIONS, MAX_OBSERVATIONS_BYTES)
        obs_label = OBSERVATIONS
        if obs_read.data is None and not obs_read.warnings:
            guest = self.guest_fd()
            if guest is not None:
                try:
                    obs_label = f"{GUEST_DIR}/{OBSERVATIONS}"
                    obs_read = read_at(guest, OBSERVATIONS, MAX_OBSERVATIONS_BYTES, obs_label)
                    guest_env_read = read_at(guest, GUEST_ENVIRONMENT, MAX_JSON_BYTES)
                finally:
                    os.close(guest)
                if obs_read.data is not None:
                    warnings.append("the guest's files were not collected: read from guest/")
        guest_environment = parse_json_object(guest_env_read, GUEST_ENVIRONMENT, warnings)
        objects = json_object_lines(obs_read, obs_label, warnings)
        self._check_schema(plan, objects)
        observations = observations_from(objects, obs_label, warnings)
        return RunFiles(
            self.path.resolve().name, plan, environment, guest_environment, observations, warnings
        )

    def _check_schema(self, plan: dict[str, Any], objects: list[tuple[int, dict[str, Any]]]) -> None:
        """Refuse (exit 2, naming it) a run written with another schema: its fields mean other things.

        The plan's schema decides; a run without one (a damaged plan) by its first observation's.
        """
        if "schema" in plan:
            schema, where = plan["schema"], PLAN
        else:
            found = [(value["schema"], n) for n, value in objects if "schema" in value][:1]
            if not found:
                return
            schema, where = found[0][0], f"{OBSERVATIONS} line {found[0][1]}"
        if type(schema) is int and schema in READABLE_SCHEMAS:
            return  # an older schema's observations are converted by Observation.from_dict
        older = ", ".join(str(s) for s in READABLE_SCHEMAS if s != SCHEMA_VERSION)
        raise RunDirError(
            f"{self.path} was written with schema {_short(repr(schema), 40)} ({where}); this pmemkit "
            f"reads schema {SCHEMA_VERSION} (and {older}, converted) only: render it with the pmemkit "
            "that made it; nothing written",
            2,
        )

    # -- writing ---------------------------------------------------------------------------------

    def write(self, name: str, data: str | bytes) -> None:
        write_at(self.fd, name, data, str(self.path / name))

    def write_plots(self, plots: dict[str, str | bytes], warnings: list[str]) -> list[str]:
        """Write plots/NAME for each plot; returns the names written. A `plots` that is not a
        directory of ours (a file, a planted link) is left alone and the plots are not written."""
        if not plots:
            return []
        try:
            os.mkdir(PLOTS, 0o755, dir_fd=self.fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RunDirError(f"cannot write {self.path / PLOTS}: {_why(exc)}", _exit_for(exc)) from None
        try:
            plots_fd = os.open(PLOTS, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            warnings.append(f"{PLOTS} is {self._kind(PLOTS)} ({_why(exc)}): plots not written")
            return []
        try:
            for name in sorted(plots):
                write_at(plots_fd, name, plots[name], str(self.path / PLOTS / name))
        finally:
            os.close(plots_fd)
        return sorted(plots)

    def _kind(self, name: str) -> str:
        """What `name` is, without following it: for messages about what was refused."""
        try:
            mode = os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode
        except OSError:
            return "unusable"
        return "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"

    # -- the guest's share -----------------------------------------------------------------------

    def make_guest_share(self, plan_text: str) -> Path:
        """Create RUN/guest/ (fresh: refused if anything is there) with the guest's copy of the plan."""
        try:
            os.mkdir(GUEST_DIR, 0o755, dir_fd=self.fd)
            guest = os.open(GUEST_DIR, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise RunDirError(f"cannot create {self.path / GUEST_DIR}: {_why(exc)}", _exit_for(exc)) from None
        try:
            write_at(guest, PLAN, plan_text, str(self.path / GUEST_DIR / PLAN))
        finally:
            os.close(guest)
        return self.path / GUEST_DIR

    def collect(self) -> list[str]:
        """Copy what the guest wrote into RUN/, checked: whole JSON-object lines, a JSON object,
        a bounded dmesg (or one rebuilt from the console). Returns the warnings."""
        warnings: list[str] = []
        guest = self.guest_fd()
        if guest is None:
            warnings.append(f"{GUEST_DIR}/ is missing or not a directory: nothing collected")
            reads = {n: Read(None) for n in (OBSERVATIONS, GUEST_ENVIRONMENT, DMESG)}
        else:
            try:
                reads = {
                    OBSERVATIONS: read_at(
                        guest, OBSERVATIONS, MAX_OBSERVATIONS_BYTES, "guest/" + OBSERVATIONS
                    ),
                    GUEST_ENVIRONMENT: read_at(
                        guest, GUEST_ENVIRONMENT, MAX_JSON_BYTES, "guest/" + GUEST_ENVIRONMENT
                    ),
                    DMESG: read_at(guest, DMESG, MAX_LOG_BYTES, "guest/" + DMESG),
                }
            finally:
                os.close(guest)
        objects = json_object_lines(reads[OBSERVATIONS], f"{GUEST_DIR}/{OBSERVATIONS}", warnings)
        lines = "".join(json.dumps(value, sort_keys=True) + "\n" for _, value in objects)
        guest_env = parse_json_object(reads[GUEST_ENVIRONMENT], f"{GUEST_DIR}/{GUEST_ENVIRONMENT}", warnings)
        warnings += reads[DMESG].warnings
        dmesg = reads[DMESG].data.decode("utf-8", errors="replace") if reads[DMESG].data else None
        writes = [(OBSERVATIONS, lines)]
        if guest_env:
            writes.append((GUEST_ENVIRONMENT, json.dumps(guest_env, indent=2, default=str) + "\n"))
        writes.append((DMESG, dmesg if dmesg is not None else self.dmesg_from_console()))
        faults = []
        for name, text in writes:  # each one tried: a full disk may still take the small ones
            try:
                self.write(name, text)
            except RunDirError as exc:
                faults.append(exc)
        if faults:
            raise faults[0]
        return warnings

    def dmesg_from_console(self) -> str:
        """A guest that died before saving dmesg still left its kernel lines on the console."""
        console = read_at(self.fd, CONSOLE, MAX_LOG_BYTES)
        text = console.data.decode("utf-8", errors="replace") if console.data else ""
        kernel = [line for line in text.splitlines() if line.startswith("[")]
        header = "# reconstructed from guest-console.log: the guest ended before saving dmesg\n"
        return header + "\n".join(kernel) + "\n"


def _made_runs_dir(runs_dir: Path) -> Path:
    """`--runs-dir` made if missing; a file in its place or an uncreatable one is bad input (exit 2)."""
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"--runs-dir {runs_dir} exists and is not a directory", 2) from None
    except OSError as exc:
        raise RunDirError(f"--runs-dir {runs_dir} cannot be created: {_why(exc)}", 2) from None
    return runs_dir


def make_run_dir(runs_dir: Path) -> Path:
    """`runs/<YYYYmmdd-HHMMSS>`, with a suffix when two runs start in the same second.

    A `--runs-dir` that is a file, read-only or not creatable is bad input: one line, exit 2.
    """
    runs_dir = _made_runs_dir(runs_dir)
    if not runs_dir.is_dir():
        raise RunDirError(f"--runs-dir {runs_dir} exists and is not a directory", 2)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ["", *[f"-{i}" for i in range(1, 100)]]:
        path = runs_dir / f"{stamp}{suffix}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(
                f"--runs-dir {runs_dir}: cannot create a run directory: {_why(exc)}", 2
            ) from None
    raise RunDirError(f"cannot create a run directory under {runs_dir}: 100 runs in this second", 3)


def check_runs_dir(runs_dir: Path) -> None:
    """Before anything slow starts: `--runs-dir` is (or can be made) a directory pmemkit can write
    in, on a filesystem with user xattrs. A probe file is created and removed to find out."""
    runs_dir = _made_runs_dir(runs_dir)
    probe = runs_dir / f".pmemkit-probe-{secrets.token_hex(8)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise RunDirError(f"--runs-dir {runs_dir} is not writable: {_why(exc)}", 2) from None
    os.close(fd)
    try:
        check_user_xattrs(probe)
    finally:
        probe.unlink(missing_ok=True)


def check_user_xattrs(path: Path) -> None:
    """The guest's share is exported with security_model=mapped-xattr, which needs user xattrs."""
    try:
        os.setxattr(path, "user.pmemkit.probe", b"1")
        os.removexattr(path, "user.pmemkit.probe")
    except OSError as exc:
        raise RunDirError(
            f"{path}: this filesystem has no user extended attributes ({_why(exc)}), which the guest's "
            "results share needs (9p security_model=mapped-xattr): use a --runs-dir on ext4, xfs or btrfs",
            2,
        ) from None
