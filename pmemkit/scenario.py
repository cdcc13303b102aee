"""The shared vocabulary of pmemkit: pmem configurations, scenarios, outcomes, observations.

Every room speaks these types, so the model's predictions and the guest's observations can be
joined by the report. Stdlib only: this module must import on the host, in the guest (Debian's
python3 3.11 without the venv) and in pure tests alike.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pmemkit import units

SCHEMA_VERSION = 2
#: Schemas this pmemkit reads. Schema 1 put an observation's variant after a colon in its
#: operation (`odirect-read-into-dax:read-only`); Observation.from_dict splits it into the
#: `variant` field, the one place that spelling is still read.
READABLE_SCHEMAS = (1, 2)

SOURCES = ("memmap", "nvdimm", "virtio-pmem", "cxl")
#: Sources whose namespace the guest creates with ndctl (mode= and map= apply to them).
NAMESPACE_SOURCES = ("nvdimm", "cxl")
#: Modes a CXL pmem region's namespace is created in (the issue's spec: no sector mode).
CXL_MODES = ("fsdax", "devdax", "raw")
MODES = ("raw", "fsdax", "devdax", "sector")
MAPS = ("mem", "dev")
FILESYSTEMS = ("ext4", "xfs")

#: Operations the model predicts and the experiments observe (names are the contract).
OPERATIONS = (
    "dax-mount",
    "pagecache-bypass",
    "odirect-read-into-dax",
    "odirect-write-from-dax",
    "map-sync",
    "map-private",
    "pmd-fault",
    "futex-shared",
    "vmsplice",
    "longterm-pin",
    "iouring-fixed-buffer",
    "fork-cow",
    "splice",
    "copy-file-range",
    "sendfile",
    "stack-copy",
)

#: Outcome names that are not errno names. `short`: the kernel moved fewer bytes than asked and
#: reported no error (a short read or write); never `ok`, and not an errno the kernel returned.
PLAIN_OUTCOMES = ("ok", "fallback", "n/a", "short")
_ERRNO_RE = re.compile(r"^E[A-Z0-9]+$")


class ScenarioError(units.InputError):
    """Bad input to the shared vocabulary (a size, a pmem spec, an outcome)."""


def is_outcome(name: str) -> bool:
    """True for `ok`, `fallback`, `n/a`, `skipped:<why>` or an errno name such as `EFAULT`."""
    return (
        name in PLAIN_OUTCOMES
        or bool(_ERRNO_RE.match(name))
        or (name.startswith("skipped:") and len(name) > len("skipped:"))
    )


def check_outcome(name: str) -> str:
    """Return `name` if it is a valid outcome, else raise ScenarioError."""
    if not is_outcome(name):
        raise ScenarioError(
            f"invalid outcome {name!r}: use ok, fallback, n/a, skipped:<why> or an errno name"
        )
    return name


def parse_size(text: str | int, what: str = "size", minimum: int = 0, maximum: int = units.MAX_SIZE) -> int:
    """Parse `512M`, `1G`, `16GiB`, `4096` or `2MB` into bytes (binary units, ASCII, at most 1P).

    The one size reader (`pmemkit.units.parse_size`), raising ScenarioError for this room.
    """
    try:
        return units.parse_size(text, what, minimum, maximum)
    except units.InputError as exc:
        raise ScenarioError(str(exc)) from None


format_size = units.format_size

PMEM_FORM = (
    "memmap:SIZE[@START], nvdimm:SIZE[,mode=fsdax|devdax|raw|sector][,map=mem|dev], virtio-pmem:SIZE "
    "or cxl:SIZE[,mode=fsdax|devdax|raw][,map=mem|dev]"
)


@dataclass(frozen=True)
class PmemConfig:
    """One emulated pmem device of a VM: a `memmap=` range, a QEMU NVDIMM, a virtio-pmem device or
    a CXL Type-3 device's persistent capacity.

    `start` only applies to memmap (None: the VM harness places it); `mode`/`map` only to nvdimm
    and cxl, whose namespace the guest creates with ndctl (for cxl after `cxl create-region`).
    """

    source: str
    size: int
    start: int | None = None
    mode: str | None = None
    map: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ScenarioError(f"unknown pmem source {self.source!r}: use one of {', '.join(SOURCES)}")
        if self.size <= 0:
            raise ScenarioError("pmem size must be positive")
        if self.source != "memmap" and self.start is not None:
            raise ScenarioError(f"@START only applies to memmap, not {self.source}")
        if self.source not in NAMESPACE_SOURCES and (self.mode or self.map):
            raise ScenarioError(f"mode= and map= only apply to nvdimm and cxl, not {self.source}")
        if self.source == "cxl" and self.mode is not None and self.mode not in CXL_MODES:
            raise ScenarioError(f"cxl namespaces take mode={'|'.join(CXL_MODES)}, not {self.mode!r}")
        if self.mode is not None and self.mode not in MODES:
            raise ScenarioError(f"unknown namespace mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.map is not None and self.map not in MAPS:
            raise ScenarioError(f"unknown map {self.map!r}: use mem or dev")
        if self.map is not None and self.mode not in ("fsdax", "devdax"):
            raise ScenarioError("map= only applies to mode=fsdax or mode=devdax")

    @classmethod
    def parse(cls, spec: str) -> PmemConfig:
        """Read `memmap:SIZE[@START]`, `nvdimm:SIZE[,mode=M][,map=mem|dev]`, `virtio-pmem:SIZE`,
        `cxl:SIZE[,mode=M][,map=mem|dev]`.

        Refused: an empty SIZE or START (`memmap:2G@`), an option without a value (`mode=`) or
        given twice, an unknown option, sizes the one size reader refuses.
        """
        what = f"--pmem {units.shown(spec)}"
        if not isinstance(spec, str) or len(spec) > 4 * units.MAX_TEXT:
            raise ScenarioError(f"{what} is too long: expected {PMEM_FORM}")
        source, sep, rest = spec.strip(" \t").partition(":")
        if not sep or not rest:
            raise ScenarioError(f"cannot read {what}: expected {PMEM_FORM}")
        if source not in SOURCES:
            raise ScenarioError(f"unknown pmem source {units.shown(source)}: use one of {', '.join(SOURCES)}")
        parts = rest.split(",")
        size_text, at, start_text = parts[0].partition("@")
        if not size_text:
            raise ScenarioError(f"{what} has no SIZE: expected {PMEM_FORM}")
        if at and not start_text:
            raise ScenarioError(f"{what} has @ but no START: write memmap:SIZE@START, e.g. memmap:512M@1G")
        try:
            options = units.parse_options(parts[1:], ("mode", "map"), what)
        except units.InputError as exc:
            raise ScenarioError(str(exc)) from None
        mode = options.get("mode")
        if source in NAMESPACE_SOURCES and mode is None:
            mode = "fsdax"
        map_ = options.get("map")
        if source in NAMESPACE_SOURCES and mode in ("fsdax", "devdax") and map_ is None:
            map_ = "mem"
        try:
            size = units.parse_size(size_text, "SIZE")
            start = units.parse_size(start_text, "START") if at else None
        except units.InputError as exc:
            raise ScenarioError(f"{exc} (in {what})") from None
        return cls(source=source, size=size, start=start, mode=mode, map=map_)

    def spec(self) -> str:
        """The `--pmem` spelling of this config (round-trips through parse)."""
        text = f"{self.source}:{format_size(self.size)}"
        if self.start is not None:
            text += f"@{format_size(self.start)}"
        if self.mode:
            text += f",mode={self.mode}"
        if self.map:
            text += f",map={self.map}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PmemConfig:
        return cls(**data)


@dataclass(frozen=True)
class Scenario:
    """What the kernel decides about: a kernel, a pmem source, a namespace mode and its map, a fs."""

    kernel: str
    source: str
    mode: str
    map: str | None = None
    force_raw: bool = False
    fs: str | None = None  # None: the model assumes ext4
    align: int | None = None  # ndctl --align for fsdax/devdax; range alignment for memmap
    stack: str | None = None  # md-raid0 | md-raid1 | dm-linear | dm-stripe over two such devices

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def label(self) -> str:
        """A short human label, e.g. `nvdimm fsdax map=dev ext4`."""
        bits = [self.source, self.mode]
        if self.map:
            bits.append(f"map={self.map}")
        if self.force_raw:
            bits.append("force_raw")
        if self.stack:
            bits.append(f"under {self.stack}")
        if self.fs:
            bits.append(self.fs)
        return " ".join(bits)


@dataclass
class Observation:
    """One thing the real kernel did, with the provenance that makes it a trustworthy number."""

    experiment: str
    operation: str
    outcome: str
    scenario: Scenario
    device: str = ""
    detail: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION
    #: How this operation was tried (`read-only`, `unfaulted`, `after-fork`); None: the plain way.
    #: A field, so the report and the model group by (operation, variant) without parsing names.
    variant: str | None = None

    def __post_init__(self) -> None:
        check_outcome(self.outcome)

    def shown(self) -> str:
        """The operation as tables show it: `operation` or `operation:variant` (as schema 1 did).

        Always a str: a damaged record's operation may be any JSON value, and tables sort these.
        """
        return f"{self.operation}:{self.variant}" if self.variant else str(self.operation)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scenario"] = self.scenario.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Observation:
        check_schema(data, "observation", "re-run with this pmemkit version", READABLE_SCHEMAS)
        fields = dict(data)
        fields["scenario"] = Scenario.from_dict(fields["scenario"])
        if fields["schema"] == 1:  # `op:variant` -> (op, variant); read as the current schema
            fields["schema"] = SCHEMA_VERSION
            if isinstance(fields.get("operation"), str) and ":" in fields["operation"]:
                fields["operation"], fields["variant"] = fields["operation"].split(":", 1)
        return cls(**fields)


def check_schema(
    data: dict[str, Any], what: str, remedy: str, readable: tuple[int, ...] = (SCHEMA_VERSION,)
) -> None:
    """Refuse a record written with a schema not in `readable`, in one line naming both: its fields
    may mean other things (shared by observations and plan.json)."""
    schema = data.get("schema")
    if type(schema) is not int or schema not in readable:
        raise ScenarioError(f"{what} schema {schema!r} is not {SCHEMA_VERSION}: {remedy}")


@dataclass
class Prediction:
    """What the model says the kernel will do for a scenario and operation, and why."""

    scenario: Scenario
    operation: str
    outcome: str
    struct_page: bool
    memmap_location: str
    rule: str
    sources: list[str]
    kernel_range: str
    explanation: str = ""
    status: str = "V"  # V: read in source or commit text; I: inferred, for the VM to confirm

    def __post_init__(self) -> None:
        check_outcome(self.outcome)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scenario"] = self.scenario.to_dict()
        return data
