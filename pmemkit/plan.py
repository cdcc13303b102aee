"""The plan a host hands to a guest: which pmem devices the VM has and which suites to run.

Stdlib only: the guest reads it with Debian's python3, the host writes it. `plan.json` in a run
directory is exactly `Plan.to_dict()`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmemkit.rundir import write_atomic
from pmemkit.scenario import SCHEMA_VERSION, PmemConfig, ScenarioError, check_schema

__all__ = ["Placement", "Plan", "check_crash_request", "check_placements", "write_atomic"]

#: plan.json carries the run's schema (scenario.SCHEMA_VERSION), which the report checks; `placements`
#: (where the host put each device) are required on top, so a guest never re-derives an NVDIMM slot, a
#: memmap start or a virtio-pmem device's place. A plan is read only by the guest of the run that
#: wrote it, so a plan without them is refused rather than versioned.
PLACEMENT_FIELDS = {
    "memmap": "memmap_start",
    "nvdimm": "nfit_handle",
    "virtio-pmem": "pci_address",
    "cxl": "cxl_serial",
}


@dataclass(frozen=True)
class Placement:
    """Where the host put one planned pmem device: the guest finds the device by this record alone.

    Decided once, by `vm.layout.plan_layout`; qemu's command line and the guest's matching both read
    it. memmap: the range's physical start (the e820 namespace's `resource`); nvdimm: the DIMM slot
    given to `-device nvdimm,slot=` and the NFIT handle QEMU derives from it; virtio-pmem: the PCI
    address given to `-device virtio-pmem-pci,addr=`, spelt as sysfs shows it; cxl: the serial
    number given to `-device cxl-type3,sn=`.
    """

    index: int  # position in Plan.pmem
    source: str
    memmap_start: int | None = None
    nvdimm_slot: int | None = None
    nfit_handle: int | None = None
    pci_address: str | None = None  # e.g. "0000:00:10.0"
    cxl_serial: int | None = None  # cxl: the Type-3 device's `sn=`, which `cxl list -M` shows as serial

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Placement:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScenarioError(f"plan placement has unknown field(s) {unknown}")
        return cls(**data)


def check_placements(pmem: list[PmemConfig], placements: list[Placement]) -> None:
    """One placement per device, in plan order, carrying the field its source is found by."""
    if len(placements) != len(pmem):
        raise ScenarioError(f"plan has {len(pmem)} pmem device(s) but {len(placements)} placement(s)")
    for i, (cfg, place) in enumerate(zip(pmem, placements, strict=True)):
        key = PLACEMENT_FIELDS[cfg.source]
        if place.index != i or place.source != cfg.source or getattr(place, key) is None:
            raise ScenarioError(f"plan placement {i} {place.to_dict()} does not place {cfg.spec()} ({key})")
        if cfg.source == "memmap" and place.memmap_start != cfg.start:
            raise ScenarioError(f"plan places {cfg.spec()} at {place.memmap_start:#x}, not at its start")


def _decisions(value: Any) -> dict[str, Any] | None:
    """plan.json's `decisions`, checked for shape (a dict of operation -> list of dicts) or None."""
    if value is None:
        return None
    operations = value.get("operations") if isinstance(value, dict) else None
    if not isinstance(operations, dict) or not all(
        isinstance(c, list) and all(isinstance(x, dict) for x in c) for c in operations.values()
    ):
        raise ScenarioError("plan.json `decisions` must be {'operations': {operation: [candidate, ...]}}")
    return value


@dataclass
class Plan:
    """Everything the guest needs to know, and nothing it could find out itself."""

    suites: list[str]
    pmem: list[PmemConfig]
    filesystems: list[str] = field(default_factory=lambda: ["ext4", "xfs"])
    accel: str = "tcg"
    vm_token: str = ""
    pmemkit_version: str = ""
    inject_fault: str | None = None  # tests of failure handling: "panic" or "hang" mid-run
    profile: str = "quick"  # experiment sizes and repetitions: quick | full
    placements: list[Placement] = field(default_factory=list)
    schema: int = SCHEMA_VERSION
    #: --trace-decisions: {"operations": {operation: [the model's cited functions]}} (guest/decisions.py
    #: runs each refused operation once more under kprobes); None: off.
    decisions: dict[str, Any] | None = None
    #: `pmemkit exec` / `pmemkit shell`: what the guest runs instead of the suites (mode, argv,
    #: copied-in files, terminal); None for a suite run, whose plan.json then has no such key.
    session: dict[str, Any] | None = None
    #: `--suite crash` (issue 12): which of its two boots this plan is for, and in the second
    #: ("verify") what the first recorded per (device, fs, way); None for every other run.
    crash: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # No default: the placements are the ones `vm.layout.plan_layout` gave qemu, handed in by the
        # caller; a plan that would make anyone derive them a second time is refused here.
        check_placements(self.pmem, self.placements)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema": self.schema,
            "suites": list(self.suites),
            "pmem": [p.to_dict() for p in self.pmem],
            "filesystems": list(self.filesystems),
            "accel": self.accel,
            "vm_token": self.vm_token,
            "pmemkit_version": self.pmemkit_version,
            "inject_fault": self.inject_fault,
            "profile": self.profile,
            "placements": [p.to_dict() for p in self.placements],
            "decisions": self.decisions,
        }
        if self.session is not None:
            data["session"] = dict(self.session)
        if self.crash is not None:
            data["crash"] = dict(self.crash)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        check_schema(
            data,
            "plan.json",
            "it was written by another pmemkit version; start the run again with `pmemkit run`",
        )
        if data.get("pmem") and not data.get("placements"):
            raise ScenarioError(
                "plan.json places none of its pmem devices: it was written by a pmemkit that left the "
                "guest to guess where they are; start the run again with `pmemkit run`"
            )
        pmem = [PmemConfig.from_dict(p) for p in data["pmem"]]
        placements = [Placement.from_dict(p) for p in data.get("placements") or []]
        check_placements(pmem, placements)  # before construction: a guest never fills them in itself
        return cls(
            suites=list(data["suites"]),
            pmem=pmem,
            filesystems=list(data.get("filesystems", ["ext4", "xfs"])),
            accel=data.get("accel", "tcg"),
            vm_token=data.get("vm_token", ""),
            pmemkit_version=data.get("pmemkit_version", ""),
            inject_fault=data.get("inject_fault"),
            profile=data.get("profile", "quick"),
            placements=placements,
            decisions=_decisions(data.get("decisions")),
            session=_session(data.get("session")),
            crash=check_crash_field(data.get("crash")),
        )

    def params(self) -> dict[str, Any]:
        """What every experiment receives besides its target."""
        params: dict[str, Any] = {"profile": self.profile}
        if self.decisions is not None:
            params["decisions"] = self.decisions
        return params

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _session(value: Any) -> dict[str, Any] | None:
    """plan.json's `session`, an object or absent; anything else is a plan this pmemkit did not write."""
    if value is None or isinstance(value, dict):
        return value
    raise ScenarioError(f"plan.json's session is a JSON {type(value).__name__}, not an object")


# ---- crash (issue 12 items 4-5): two boots on the same NVDIMM backing files ----------------------
CRASH_SUITE = "crash"
#: The three ways the first boot writes a new DAX file (guest/experiments/crash.py).
CRASH_WAYS = ("map-sync", "msync", "no-sync")
#: Boot 1 sets the NVDIMMs up, writes and is SIGKILLed; boot 2 mounts what is there and checks it.
CRASH_PHASES = ("write", "verify")
#: A record of what boot 1 wrote: bounded, so a plan stays small (4 MiB files of 4 KiB blocks).
CRASH_MAX_BLOCKS = 4096
CRASH_FILE_PREFIX = "pmemkit-crash-"
_RECORD_FIELDS = {"pmem_index": int, "fs": str, "way": str, "file": str, "size": int, "block": int}


#: Sources whose backing file (and NVDIMM label area) outlive qemu; memmap= and CXL are not kept.
CRASH_SOURCES = ("nvdimm", "virtio-pmem")


def crash_filesystems(pmem: list[PmemConfig], filesystems: list[str]) -> list[str]:
    """The filesystem of each device of a crash run: --fs in turn (device i gets fs i mod len)."""
    return [filesystems[i % len(filesystems)] for i in range(len(pmem))]


def check_crash_request(suites: list[str], pmem: list[PmemConfig], filesystems: list[str]) -> None:
    """Refuse (ScenarioError: one line, exit 2) a `--suite crash` run pmemkit cannot carry out,
    before anything slow: it runs alone, on NVDIMMs (fsdax) and virtio-pmem devices only (their
    backing files and label areas are what survives the kill; memmap= ranges are guest RAM), one
    filesystem per device, --fs taken in turn, each filesystem on at least one device.
    """
    if CRASH_SUITE not in suites:
        return
    if list(suites) != [CRASH_SUITE]:
        others = ", ".join(s for s in suites if s != CRASH_SUITE)
        raise ScenarioError(
            f"--suite crash runs alone (two boots on the same NVDIMM backing files, the first killed "
            f"with SIGKILL): run {others} in a run of its own"
        )
    example = "--pmem nvdimm:512M --pmem nvdimm:512M --fs ext4,xfs"
    if not pmem or any(p.source not in CRASH_SOURCES for p in pmem):
        wrong = ", ".join(p.spec() for p in pmem if p.source not in CRASH_SOURCES) or "no --pmem device"
        raise ScenarioError(
            f"--suite crash needs NVDIMMs or virtio-pmem devices only (their backing files and label "
            f"areas are kept between the two boots; memmap= is guest RAM, lost with the guest): {wrong} "
            f"is not one; e.g. {example}"
        )
    not_fsdax = [p.spec() for p in pmem if p.mode not in (None, "fsdax")]
    if not_fsdax:
        raise ScenarioError(
            f"--suite crash writes files on a DAX filesystem: {', '.join(not_fsdax)} is not mode=fsdax"
        )
    if len(pmem) < len(filesystems):
        raise ScenarioError(
            f"--suite crash puts one filesystem on each device (--fs in turn): --fs "
            f"{','.join(filesystems)} needs at least {len(filesystems)} device(s), not {len(pmem)}; "
            f"e.g. {example}"
        )


def refuse_crash_local(suites: list[str]) -> None:
    """`run --target local` cannot kill and reboot this machine: the crash suite is refused (exit 2)."""
    if CRASH_SUITE in suites:
        raise ScenarioError(
            "--suite crash boots pmemkit's VM twice on the same NVDIMM backing files and kills the "
            "first boot with SIGKILL: it does not run with --target local"
        )


def crash_record(value: Any) -> dict[str, Any]:
    """One record of what boot 1 wrote, checked for shape and bounds (ScenarioError otherwise)."""
    if not isinstance(value, dict):
        raise ScenarioError("plan.json crash record is not an object")
    record: dict[str, Any] = {}
    for key, kind in _RECORD_FIELDS.items():
        item = value.get(key)
        if type(item) is not kind:
            raise ScenarioError(f"plan.json crash record's {key} is not a {kind.__name__}")
        record[key] = item
    name = record["file"]
    if (
        record["way"] not in CRASH_WAYS
        or not name.startswith(CRASH_FILE_PREFIX)
        or "/" in name
        or len(name) > 80
    ):
        raise ScenarioError(f"plan.json crash record names way {record['way']!r}, file {name[:80]!r}")
    sums = value.get("checksums")
    blocks = -(-record["size"] // record["block"]) if record["block"] > 0 else -1
    if (
        not isinstance(sums, list)
        or not 0 < blocks <= CRASH_MAX_BLOCKS
        or len(sums) != blocks
        or not all(type(c) is int and 0 <= c < 1 << 32 for c in sums)
    ):
        raise ScenarioError("plan.json crash record's checksums are not one crc32 per block")
    record["checksums"] = list(sums)
    return record


def check_crash_field(value: Any) -> dict[str, Any] | None:
    """plan.json's `crash`: absent, {"phase": "write"} or {"phase": "verify", "written": [record…]}."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("phase") not in CRASH_PHASES:
        raise ScenarioError(f"plan.json's crash must name a phase ({' or '.join(CRASH_PHASES)})")
    if value["phase"] == "write":
        return {"phase": "write"}
    written = value.get("written")
    if not isinstance(written, list) or len(written) > 64:
        raise ScenarioError("plan.json's crash verify phase needs `written`: a list of records")
    return {"phase": "verify", "written": [crash_record(r) for r in written]}
