"""The guard in front of every destructive step: prove a device is emulated pmem that pmemkit owns.

pmemkit formats, namespaces and overwrites devices. Nothing destructive runs unless this module
clears the device (DESIGN.md, "Safety rules"):
- inside pmemkit's VM (the image's marker matches the kernel command line's `pmemkit.vm=`), a
  `/dev/pmemN` or `/dev/daxX.Y` on an nd region (legacy `memmap=` range listed as
  `Persistent Memory (legacy)` in /proc/iomem, a QEMU NVDIMM, or virtio-pmem), not mounted, not
  held by md/dm;
- outside the VM, only a device the user named with `--device` and `--destroy-data`, never a
  mounted or held one, and never one with a partition table or filesystem unless `--force` too.
Every refusal names the rule that refused and how to proceed.

All reads go through `root` so tests can point it at a fake /proc, /sys and /etc tree.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

MARKER = "etc/pmemkit-vm"
CMDLINE_KEY = "pmemkit.vm="


class SafetyError(Exception):
    """A destructive step was refused; the message says which rule and what to do instead."""


@dataclass(frozen=True)
class Clearance:
    """Proof that a device may be overwritten, and which rule granted it (kept in provenance)."""

    device: str
    rule: str
    reason: str


def vm_token(root: Path = Path("/")) -> str | None:
    """The pmemkit VM token if this is pmemkit's own VM (marker file == kernel command line)."""
    try:
        marker = (root / MARKER).read_text().strip()
        cmdline = (root / "proc/cmdline").read_text().split()
    except OSError:
        return None
    for word in cmdline:
        if word.startswith(CMDLINE_KEY) and marker and word[len(CMDLINE_KEY) :] == marker:
            return marker
    return None


def _sysfs_dir(device: str, root: Path) -> Path | None:
    try:  # a real node: follow its device number (covers /dev/mapper names and aliases)
        st = os.stat(device)
        if root == Path("/") and os.major(st.st_rdev):
            kind = "block" if (st.st_mode & 0o170000) == 0o060000 else "char"
            path = root / "sys/dev" / kind / f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            if path.exists():
                return path.resolve()
    except OSError:
        pass
    name = os.path.basename(device)
    # device-dax devices sit on the dax bus; on some kernels there is no /sys/class/dax.
    for path in (
        root / "sys/class/block" / name,
        root / "sys/class/dax" / name,
        root / "sys/bus/dax/devices" / name,
    ):
        if path.exists():
            return path
    return None


def _dev_number(sysdir: Path) -> str | None:
    try:
        return (sysdir / "dev").read_text().strip()
    except OSError:
        return None


def mounted_at(device: str, root: Path = Path("/")) -> list[str]:
    """Mount points of `device` (matched by major:minor, so symlinks and aliases count too)."""
    sysdir = _sysfs_dir(device, root)
    number = _dev_number(sysdir) if sysdir else None
    points = []
    try:
        lines = (root / "proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return points
    for line in lines:
        fields = line.split()
        if len(fields) < 10:
            continue
        sep = fields.index("-") if "-" in fields else -1
        source = fields[sep + 2] if sep > 0 and len(fields) > sep + 2 else ""
        if (number and fields[2] == number) or source == device:
            points.append(fields[4])
    return points


def holders(device: str, root: Path = Path("/")) -> list[str]:
    """md/dm devices stacked on `device`: formatting it would corrupt them."""
    sysdir = _sysfs_dir(device, root)
    if sysdir is None or not (sysdir / "holders").is_dir():
        return []
    return sorted(p.name for p in (sysdir / "holders").iterdir())


def legacy_pmem_ranges(root: Path = Path("/")) -> list[tuple[int, int]]:
    """`Persistent Memory (legacy)` ranges of /proc/iomem: the memmap= pmem (inclusive ends)."""
    ranges = []
    try:
        lines = (root / "proc/iomem").read_text().splitlines()
    except OSError:
        return ranges
    for line in lines:
        span, _, name = line.strip().partition(" : ")
        if name.strip() == "Persistent Memory (legacy)":
            lo, _, hi = span.partition("-")
            ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def _nd_provider(sysdir: Path) -> tuple[str | None, Path | None]:
    """The nd bus provider (e820, ACPI.NFIT, virtio…) above a device, and its namespace dir."""
    real = sysdir.resolve()
    namespace = None
    for parent in [real, *real.parents]:
        if parent.name.startswith("namespace") and namespace is None:
            namespace = parent
        if parent.name.startswith("ndbus"):
            try:
                return (parent / "provider").read_text().strip(), namespace
            except OSError:
                return None, namespace
    return None, namespace


def emulated_pmem_reason(device: str, root: Path = Path("/")) -> str:
    """Why `device` is emulated pmem of this VM, or raise SafetyError saying why it is not."""
    name = os.path.basename(device)
    sysdir = _sysfs_dir(device, root)
    if sysdir is not None and sysdir.name.startswith(("md", "dm-")):
        return _stack_reason(device, sysdir, root)
    if not (name.startswith("pmem") or name.startswith("dax")):
        raise SafetyError(
            f"refused {device}: rule 'pmem-only' — pmemkit only formats /dev/pmemN and /dev/daxX.Y"
        )
    if sysdir is None:
        raise SafetyError(f"refused {device}: rule 'pmem-only' — no such device in /sys/class")
    provider, namespace = _nd_provider(sysdir)
    if provider is None:
        raise SafetyError(
            f"refused {device}: rule 'nd-region' — it is not on an nvdimm (nd) bus, so it is not "
            "pmem that pmemkit's VM emulates"
        )
    if provider == "e820":
        try:
            start = int((namespace / "resource").read_text().strip(), 0) if namespace else None
        except (OSError, ValueError):
            start = None
        if start is None or not any(lo <= start <= hi for lo, hi in legacy_pmem_ranges(root)):
            raise SafetyError(
                f"refused {device}: rule 'legacy-range' — its start is not inside a "
                "'Persistent Memory (legacy)' range of /proc/iomem"
            )
        return "legacy memmap= pmem (Persistent Memory (legacy) in /proc/iomem)"
    return f"emulated pmem on nd bus provider {provider}"


def _stack_reason(device: str, sysdir: Path, root: Path) -> str:
    """An md/dm device qualifies only when every member is emulated pmem of this VM."""
    slaves = sorted(p.name for p in (sysdir / "slaves").iterdir()) if (sysdir / "slaves").is_dir() else []
    if not slaves:
        raise SafetyError(f"refused {device}: rule 'stack-members' — it has no member devices to check")
    for slave in slaves:
        if not slave.startswith("pmem"):
            raise SafetyError(f"refused {device}: rule 'stack-members' — member {slave} is not pmem")
        emulated_pmem_reason(f"/dev/{slave}", root)
    return f"{sysdir.name} stacked only on emulated pmem ({', '.join(slaves)})"


def clear_for_destruction(
    device: str,
    *,
    root: Path = Path("/"),
    destroy_data: bool = False,
    force: bool = False,
) -> Clearance:
    """Clear `device` for formatting or overwriting, or raise SafetyError with rule and remedy."""
    points = mounted_at(device, root)
    if points:
        raise SafetyError(
            f"refused {device}: rule 'not-mounted' — it is mounted at {', '.join(points)}; unmount it first"
        )
    held = holders(device, root)
    if held:
        raise SafetyError(
            f"refused {device}: rule 'not-held' — {', '.join(held)} is built on it; "
            "stop that md/dm device first"
        )
    if vm_token(root):
        reason = emulated_pmem_reason(device, root)
        return Clearance(device, "pmemkit-vm", f"inside pmemkit's VM; {reason}")
    if not destroy_data:
        raise SafetyError(
            f"refused {device}: rule 'outside-vm' — this is not pmemkit's VM; to overwrite a "
            "device you chose, name it and add --destroy-data (pmemkit prepare DEVICE --destroy-data)"
        )
    signature = existing_signature(device)
    if signature and not force:
        raise SafetyError(
            f"refused {device}: rule 'foreign-data' — it holds {signature}; add --force to destroy it"
        )
    return Clearance(
        device, "user-named", "named with --device --destroy-data" + (" --force" if force else "")
    )


def existing_signature(device: str) -> str | None:
    """A partition table or filesystem on `device` (via `blkid -p`), or None when blank."""
    try:
        out = subprocess.run(
            ["blkid", "-p", "-o", "export", device], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SafetyError(
            f"refused {device}: rule 'foreign-data' — cannot check it for data ({exc}); "
            "install util-linux's blkid"
        ) from exc
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    if "PTTYPE" in fields:
        return f"a {fields['PTTYPE']} partition table"
    if "TYPE" in fields:
        return f"a {fields['TYPE']} filesystem"
    return None


def iomem_claims(lo: int, hi: int, root: Path = Path("/")) -> list[str]:
    """Names of /proc/iomem entries nested inside [lo, hi]: a driver that claimed the range."""
    claims = []
    try:
        lines = (root / "proc/iomem").read_text().splitlines()
    except OSError:
        return claims
    for line in lines:
        if not line.startswith(" "):
            continue
        span, _, name = line.strip().partition(" : ")
        a, _, b = span.partition("-")
        try:
            start, end = int(a, 16), int(b, 16)
        except ValueError:
            continue
        if lo <= start and end <= hi:
            claims.append(name.strip())
    return claims


def clear_devmem_range(start: int, size: int, root: Path = Path("/")) -> Clearance:
    """Clear writes to physical memory via /dev/mem: only an unclaimed legacy pmem range, in the VM."""
    where = f"/dev/mem at {start:#x}+{size:#x}"
    if not vm_token(root):
        raise SafetyError(
            f"refused {where}: rule 'pmemkit-vm' — physical memory is only written inside pmemkit's VM"
        )
    ranges = legacy_pmem_ranges(root)
    inside = [(lo, hi) for lo, hi in ranges if lo <= start and start + size - 1 <= hi]
    if not inside:
        raise SafetyError(
            f"refused {where}: rule 'legacy-range' — not inside a 'Persistent Memory (legacy)' range"
        )
    claims = iomem_claims(*inside[0], root=root)
    if claims:
        raise SafetyError(f"refused {where}: rule 'unclaimed' — already claimed by {', '.join(claims)}")
    return Clearance(where, "pmemkit-vm", "unclaimed legacy pmem range inside pmemkit's VM")
