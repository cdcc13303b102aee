"""The plan a host hands to a guest: which pmem devices the VM has and which suites to run.

Stdlib only: the guest reads it with Debian's python3, the host writes it. `plan.json` in a run
directory is exactly `Plan.to_dict()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmemkit.rundir import write_atomic
from pmemkit.scenario import SCHEMA_VERSION, PmemConfig, ScenarioError

__all__ = ["Plan", "write_atomic"]


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
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "suites": list(self.suites),
            "pmem": [p.to_dict() for p in self.pmem],
            "filesystems": list(self.filesystems),
            "accel": self.accel,
            "vm_token": self.vm_token,
            "pmemkit_version": self.pmemkit_version,
            "inject_fault": self.inject_fault,
            "profile": self.profile,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("schema") != SCHEMA_VERSION:
            raise ScenarioError(f"plan schema {data.get('schema')!r} is not {SCHEMA_VERSION}")
        return cls(
            suites=list(data["suites"]),
            pmem=[PmemConfig.from_dict(p) for p in data["pmem"]],
            filesystems=list(data.get("filesystems", ["ext4", "xfs"])),
            accel=data.get("accel", "tcg"),
            vm_token=data.get("vm_token", ""),
            pmemkit_version=data.get("pmemkit_version", ""),
            inject_fault=data.get("inject_fault"),
            profile=data.get("profile", "quick"),
        )

    def params(self) -> dict[str, Any]:
        """What every experiment receives besides its target."""
        return {"profile": self.profile}

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls.from_dict(json.loads(Path(path).read_text()))
