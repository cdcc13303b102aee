"""Transparent huge pages: set to one documented policy inside pmemkit's VM, recorded everywhere.

Why (issue 15 item 6): first-touch faults of anonymous memory swung between runs (2.5 µs vs 31 µs
p50) with THP, which was recorded but left as the kernel's default (Debian: enabled=always, so an
anonymous fault may or may not get a 2 MiB page depending on alignment and free memory). pmemkit's
policy, set in the guest before any experiment:

- `enabled = madvise`, `defrag = madvise`: anonymous memory gets huge pages only where an
  experiment asks with `madvise(MADV_HUGEPAGE)`, and says so in its metrics (`thp_applied`). The
  first-touch baseline does not ask (every fault a 4 KiB page, the same each run); the bandwidth
  baseline does (steady-state copies through 2 MiB mappings, as DAX files and device-dax get).
- DAX is not governed by this knob: mm/huge_memory.c at 6.1 (`hugepage_vma_check`) returns
  `in_pf` for a DAX vma before it reads the sysfs mode, so DAX PMD faults happen whatever
  `enabled` says (only VM_NOHUGEPAGE, prctl(PR_SET_THP_DISABLE) and the firmware's
  TRANSPARENT_HUGEPAGE_NEVER_DAX stop them).

Nothing is restored: the guest is thrown away after the run. Outside pmemkit's VM (`--target
local`) the machine's THP is somebody's own setting: pmemkit never changes it, and records it as
found with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

POLICY: dict[str, str] = {"enabled": "madvise", "defrag": "madvise"}
NOT_SET_LOCAL = (
    "not set: outside pmemkit's VM (--target local) this machine's THP is left as found and recorded"
)

_RECORD: dict[str, Any] | None = None


def _selected(text: str) -> str | None:
    start, end = text.find("["), text.find("]")
    if 0 <= start < end:
        return text[start + 1 : end].strip() or None
    return text.strip() or None


def apply_policy(root: Path, in_vm: bool) -> dict[str, Any]:
    """Write POLICY under `root` when `in_vm`; returns what was asked, found after, and why.

    A kernel without THP (no `root`) or a write the kernel refuses is recorded, not raised: the
    run goes on, and the provenance says the mode was not controlled.
    """
    record: dict[str, Any] = {"policy": dict(POLICY), "set_by_pmemkit": False}
    if not in_vm:
        record["why"] = NOT_SET_LOCAL
        return record
    if not root.is_dir():
        record["why"] = f"not set: {root} does not exist (kernel without THP)"
        return record
    errors = []
    for name, value in POLICY.items():
        try:
            (root / name).write_text(value)
        except OSError as exc:
            errors.append(f"{name}={value}: {exc.strerror}")
    after = {}
    for name in POLICY:
        try:
            after[name] = _selected((root / name).read_text(errors="replace"))
        except OSError:
            after[name] = None
    record["set_by_pmemkit"] = not errors and after == POLICY
    record["why"] = (
        "set by pmemkit in its VM before the experiments (anonymous memory gets huge pages only "
        "where an experiment asks with MADV_HUGEPAGE; DAX PMD faults do not depend on it)"
        if record["set_by_pmemkit"]
        else f"asked for {POLICY}, the kernel kept {after}: {'; '.join(errors) or 'refused'}"
    )
    return record


def controlled(root: Path, in_vm: bool) -> dict[str, Any]:
    """The policy applied once per process (the first call sets it), then the same record."""
    global _RECORD
    if _RECORD is None:
        _RECORD = apply_policy(root, in_vm)
    return dict(_RECORD)


def forget() -> None:
    """Tests: the next `controlled` call applies the policy again."""
    global _RECORD
    _RECORD = None
