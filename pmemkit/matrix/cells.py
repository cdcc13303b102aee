"""A matrix's cells: the cross product of its axes, each cell one `pmemkit run`'s inputs.

Why a module of its own: the cell is the unit the executors ship, `--resume` recognises and the
merged report is keyed by, so its spelling (`Cell.to_dict`, `Cell.cell_id`) is written once.

Axis values are separated by `,`; `+` joins what goes into one cell (a pmem group's devices, or
several filesystems or suites run in the same boot): `--suite smoke+mmap,fio` is two cells.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmemkit import units
from pmemkit.scenario import FILESYSTEMS, PmemConfig

#: The matrix defaults: one small cell per kernel, the smoke suite on one memmap range and ext4.
DEFAULT_PMEM = "memmap:512M"
DEFAULT_FS = "ext4"
DEFAULT_SUITE = "smoke"
MAX_CELLS = 1000


class MatrixError(units.InputError):
    """A matrix the user must correct (bad axis, bad matrix file, a --resume that does not match)."""


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: a kernel series and what `pmemkit run` takes besides."""

    kernel: str
    pmem: tuple[str, ...]  # PmemConfig specs, as `--pmem` spells them
    filesystems: tuple[str, ...]
    suites: tuple[str, ...]
    profile: str = "quick"
    memory: int | None = None
    timeout_s: float | None = None
    accel: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "pmem": list(self.pmem),
            "filesystems": list(self.filesystems),
            "suites": list(self.suites),
            "profile": self.profile,
            "memory": self.memory,
            "timeout_s": self.timeout_s,
            "accel": self.accel,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Cell:
        """A cell as matrix.json or an executor's message carries it (checked again: it may be edited)."""
        try:
            cell = cls(
                kernel=str(value["kernel"]),
                pmem=tuple(str(p) for p in value["pmem"]),
                filesystems=tuple(str(f) for f in value["filesystems"]),
                suites=tuple(str(s) for s in value["suites"]),
                profile=str(value.get("profile", "quick")),
                memory=None if value.get("memory") is None else int(value["memory"]),
                timeout_s=None if value.get("timeout_s") is None else float(value["timeout_s"]),
                accel=str(value.get("accel", "auto")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MatrixError(f"a cell of the matrix is not in the shape pmemkit writes: {exc}") from None
        for spec in cell.pmem:
            PmemConfig.parse(spec)
        return cell

    def label(self) -> str:
        """What sets it apart, for progress lines: `6.1 memmap:512M ext4 smoke`."""
        return " ".join([self.kernel, "+".join(self.pmem), "+".join(self.filesystems), "+".join(self.suites)])

    def cell_id(self) -> str:
        """A directory name that is the same for the same cell on any machine, any day.

        Readable part plus a hash of everything, so two cells never share a name.
        """
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        readable = "_".join(
            [self.kernel, "+".join(self.pmem), "+".join(self.filesystems), "+".join(self.suites)]
        )
        readable = re.sub(r"[^A-Za-z0-9.+=-]+", "-", readable.replace(":", "-").replace(",", "-"))[:80]
        return f"{readable}_{digest}"


def _values(text: str, option: str) -> list[tuple[str, ...]]:
    """`a+b,c` -> [(a, b), (c,)]: the axis values, each a group of one or more names."""
    groups = []
    for value in units.parse_list(text, option):
        group = tuple(part.strip() for part in value.split("+"))
        if any(not part for part in group):
            raise MatrixError(f"{option} {units.shown(value)}: an empty name around `+`")
        groups.append(group)
    return groups


def pmem_groups(specs: list[str]) -> list[tuple[str, ...]]:
    """Each `--pmem` value is one group; `+` joins its devices. Specs are checked and normalised."""
    groups = []
    for text in specs:
        parts = [p.strip() for p in text.split("+")]
        if not text or any(not p for p in parts):
            raise MatrixError(f"--pmem {units.shown(text)}: an empty device around `+`")
        groups.append(tuple(PmemConfig.parse(p).spec() for p in parts))
    return groups


@dataclass(frozen=True)
class Axes:
    """The four axes and the settings every cell shares."""

    kernels: list[str]
    pmem: list[tuple[str, ...]]
    filesystems: list[tuple[str, ...]]
    suites: list[tuple[str, ...]]
    profile: str = "quick"
    memory: int | None = None
    timeout_s: float | None = None
    accel: str = "auto"

    def cells(self) -> list[Cell]:
        """The cross product, kernel-major, each cell once (a repeated axis value is one cell)."""
        product = itertools.product(self.kernels, self.pmem, self.filesystems, self.suites)
        cells = list(
            dict.fromkeys(
                Cell(k, p, f, s, self.profile, self.memory, self.timeout_s, self.accel)
                for k, p, f, s in product
            )
        )
        if len(cells) > MAX_CELLS:
            raise MatrixError(f"the matrix has {len(cells)} cells; at most {MAX_CELLS} in one matrix")
        return cells


def axes_from_options(
    kernel: str | None,
    pmem: list[str],
    fs: str | None,
    suite: str | None,
    profile: str,
    memory: int | None,
    timeout_s: float | None,
    accel: str,
) -> Axes:
    """The axes from the command line, with the defaults for those not given."""
    from pmemkit.guest.experiments import get
    from pmemkit.vm.kernels import DEFAULT_KERNEL, parse_series

    kernels = [k[0] if len(k) == 1 else "+".join(k) for k in _values(kernel or DEFAULT_KERNEL, "--kernel")]
    for k in kernels:
        if "+" in k:
            raise MatrixError(f"--kernel {units.shown(k)}: a cell boots one kernel; separate kernels by `,`")
    kernels = [parse_series(k) for k in kernels]  # an unknown series is one line, exit 2, before anything
    fs_groups = _values(fs or DEFAULT_FS, "--fs")
    for group in fs_groups:
        for name in group:
            if name not in FILESYSTEMS:
                raise MatrixError(f"--fs {units.shown(name)}: not one of {', '.join(FILESYSTEMS)}")
    suite_groups = _values(suite or DEFAULT_SUITE, "--suite")
    for group in suite_groups:
        for name in group:
            get(name)  # an unknown suite fails here (UnknownExperiment), before anything starts
    return Axes(
        kernels=kernels,
        pmem=pmem_groups(pmem or [DEFAULT_PMEM]),
        filesystems=fs_groups,
        suites=suite_groups,
        profile=profile,
        memory=memory,
        timeout_s=timeout_s,
        accel=accel,
    )


def _as_text(value: Any, key: str, joiner: str = ",") -> str:
    """A matrix file's axis: a string, or a list whose items are strings or lists (one cell's group)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        parts = []
        for item in value:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, list) and item and all(isinstance(i, str) for i in item):
                parts.append("+".join(item))
            else:
                raise MatrixError(f"matrix file: {key} holds {units.shown(repr(item))}: give names or lists")
        return joiner.join(parts)
    raise MatrixError(f"matrix file: {key} must be a string or a non-empty list")


MATRIX_KEYS = {"kernel", "pmem", "fs", "suite", "profile", "memory", "timeout", "accel"}


def read_matrix_file(path: Path) -> dict[str, Any]:
    """A TOML matrix file as the options it stands for (`kernel`, `pmem`, `fs`, `suite`, …).

    ```toml
    kernel = ["6.1", "6.12"]
    pmem = [["memmap:512M"], ["nvdimm:512M,mode=fsdax", "nvdimm:512M,mode=devdax"]]
    fs = ["ext4", ["ext4", "xfs"]]
    suite = ["smoke", "mmap"]
    ```
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MatrixError(f"matrix file {path}: cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MatrixError(f"matrix file {path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - MATRIX_KEYS)
    if unknown:
        raise MatrixError(
            f"matrix file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(MATRIX_KEYS))}"
        )
    out: dict[str, Any] = {}
    for key in ("kernel", "fs", "suite"):
        if key in data:
            out[key] = _as_text(data[key], key)
    if "pmem" in data:
        pmem = data["pmem"]
        if isinstance(pmem, str):
            pmem = [pmem]
        if not isinstance(pmem, list) or not pmem:
            raise MatrixError(f"matrix file {path}: pmem must be a non-empty list of groups")
        out["pmem"] = [_as_text(g, "pmem", "+") if isinstance(g, list) else _as_text(g, "pmem") for g in pmem]
    for key in ("profile", "memory", "timeout", "accel"):
        if key in data:
            if not isinstance(data[key], str | int | float) or isinstance(data[key], bool):
                raise MatrixError(f"matrix file {path}: {key} must be a string or a number")
            out[key] = str(data[key])
    return out
