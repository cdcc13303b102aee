"""What pmem this kernel has: nd buses, regions, namespaces and their devices, from the kernel itself.

Sources: `ndctl list -BRNDv` (topology, modes, DIMM handles), sysfs (the device's real parent —
pfn, btt, dax or the bare namespace — and `queue/dax`), pyudev (block and dax device enumeration)
and /proc/iomem (legacy `memmap=` ranges). Read-only: probing never changes anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pmemkit.guest import GuestError
from pmemkit.guest.safety import legacy_pmem_ranges, vm_token

SYS = Path("/sys")


@dataclass
class Namespace:
    """One nd namespace as the kernel sees it, with the device that represents it."""

    dev: str
    region: str
    provider: str  # nd bus provider: e820 (memmap=), ACPI.NFIT (QEMU nvdimm), virtio-pmem …
    mode: str  # the kernel's truth: raw | fsdax | devdax | sector (from the device's parent)
    map: str | None
    size: int
    blockdev: str | None = None
    chardev: str | None = None
    resource: int | None = None
    dimm_handles: list[int] = field(default_factory=list)
    queue_dax: bool | None = None
    ndctl_mode: str | None = None  # what ndctl calls it (it says fsdax for raw-with-pages)

    @property
    def path(self) -> str | None:
        name = self.blockdev or self.chardev
        return f"/dev/{name}" if name else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def run_ndctl(*args: str) -> Any:
    """`ndctl ARGS` parsed as JSON (ndctl prints nothing when the list is empty)."""
    if shutil.which("ndctl") is None:
        raise GuestError("ndctl is not installed: the guest image must include ndctl")
    proc = subprocess.run(["ndctl", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise GuestError(f"ndctl {' '.join(args)} failed: {msg[-1] if msg else proc.returncode}")
    text = proc.stdout.strip()
    return json.loads(text) if text else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def kernel_mode(device: str) -> str:
    """raw | fsdax | devdax | sector, from what sysfs says the device hangs off."""
    cls = "dax" if device.startswith("dax") else "block"
    real = str((SYS / "class" / cls / device).resolve())
    if cls == "dax" or "/dax" in real.split("/ndbus")[-1]:
        return "devdax"
    if "/pfn" in real:
        return "fsdax"
    if "/btt" in real:
        return "sector"
    return "raw"


def _queue_dax(blockdev: str | None) -> bool | None:
    if not blockdev:
        return None
    value = _read(SYS / "block" / blockdev / "queue" / "dax")
    return None if value is None else value == "1"


def namespaces() -> list[Namespace]:
    """Every enabled namespace with a device, from ndctl's topology plus sysfs."""
    found: list[Namespace] = []
    for bus in _as_list(run_ndctl("list", "-B", "-R", "-N", "-D", "-v")):
        handles = {d["dev"]: d.get("handle") for d in _as_list(bus.get("dimms"))}
        for region in _as_list(bus.get("regions")):
            dimm_handles = [
                handles[m["dimm"]] for m in _as_list(region.get("mappings")) if m.get("dimm") in handles
            ]
            for ns in _as_list(region.get("namespaces")):
                device = ns.get("blockdev") or ns.get("chardev") or _first_daxdev(ns)
                if not device:
                    continue
                resource = _read(SYS / "bus/nd/devices" / ns["dev"] / "resource")
                found.append(
                    Namespace(
                        dev=ns["dev"],
                        region=region["dev"],
                        provider=bus.get("provider", "?"),
                        mode=kernel_mode(device),
                        map=ns.get("map"),
                        size=int(ns.get("size", 0)),
                        blockdev=ns.get("blockdev"),
                        chardev=ns.get("chardev") or _first_daxdev(ns),
                        resource=int(resource, 0) if resource else None,
                        dimm_handles=[h for h in dimm_handles if h is not None],
                        queue_dax=_queue_dax(ns.get("blockdev")),
                        ndctl_mode=ns.get("mode"),
                    )
                )
    return found


def _first_daxdev(ns: dict[str, Any]) -> str | None:
    region = ns.get("daxregion") or {}
    devices = _as_list(region.get("devices"))
    return devices[0].get("chardev") if devices else None


def udev_devices() -> dict[str, list[dict[str, Any]]]:
    """pmem block devices and dax character devices as udev enumerates them."""
    try:
        import pyudev
    except ImportError:
        return {"block": [], "dax": [], "error": ["pyudev is not installed"]}
    ctx = pyudev.Context()
    block = [
        {"name": d.sys_name, "devpath": d.device_path, "queue_dax": _queue_dax(d.sys_name)}
        for d in ctx.list_devices(subsystem="block")
        if d.sys_name.startswith("pmem")
    ]
    dax = [{"name": d.sys_name, "devpath": d.device_path} for d in ctx.list_devices(subsystem="dax")]
    return {"block": block, "dax": dax}


def probe() -> dict[str, Any]:
    """Everything above in one JSON-able dict (what `pmemkit probe --json` prints)."""
    result: dict[str, Any] = {
        "kernel": os.uname().release,
        "pmemkit_vm": vm_token() is not None,
        "legacy_ranges": [[hex(lo), hex(hi)] for lo, hi in legacy_pmem_ranges()],
        "udev": udev_devices(),
    }
    try:
        result["namespaces"] = [asdict(ns) for ns in namespaces()]
    except GuestError as exc:
        result["namespaces"] = []
        result["error"] = str(exc)
    return result
