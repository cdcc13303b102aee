"""Turn the plan's pmem configs into devices: NVDIMM namespaces via ndctl, filesystems, DAX mounts.

Every destructive step (labels, namespaces, mkfs) runs only after `safety` cleared its target.
The DAX mount is itself an observation: the kernel may refuse it (EINVAL, "DAX unsupported by
block device") or mount without DAX (XFS "Turning off DAX"), and the dmesg line is kept.
"""

from __future__ import annotations

import glob
import os
import subprocess
import time
from dataclasses import dataclass

from pmemkit.guest import GuestError
from pmemkit.guest.kmsg import KernelLog
from pmemkit.guest.probe import Namespace, namespaces, run_ndctl
from pmemkit.guest.safety import Clearance, SafetyError, clear_for_destruction, vm_token
from pmemkit.guest.syscalls import errno_name, files_are_dax, mount, umount
from pmemkit.plan import Placement
from pmemkit.scenario import PmemConfig

MOUNT_ROOT = "/mnt/pmemkit"
DAX_MOUNT_OPTIONS = "dax=always"
#: XFS allocates 2 MiB-aligned extents (which PMD faults need) only with a 2 MiB stripe unit; an
#: extent size hint alone aligns file offsets, not blocks (measured in pmemkit's VM on 6.1: every
#: PMD fault fell back with plain mkfs.xfs and with `-d extszinherit=512`). The usual DAX advice
#: `-d su=2m,sw=1` fails below ~1 GiB ("Log size must be at least 64MB"): two AGs and a 64 MiB log
#: with a 4 KiB log stripe make it work from 300 MiB (XFS's minimum) up to 2 TiB.
XFS_DAX_OPTIONS = ("-d", "su=2m,sw=1,agcount=2,extszinherit=512", "-l", "size=64m,su=4k")
#: ext4: 4 KiB blocks (it picks 1 KiB below 512 MiB, and DAX refuses those) and a 2 MiB RAID stripe
#: (512 blocks), which makes mballoc align allocations for PMD faults; without it a 256 MiB memmap
#: ext4 in pmemkit's VM fell back to 4 KiB faults.
EXT4_DAX_OPTIONS = ("-b", "4096", "-E", "stride=512,stripe_width=512")
MKFS_OPTIONS = {"ext4": " ".join(EXT4_DAX_OPTIONS), "xfs": " ".join(XFS_DAX_OPTIONS)}


@dataclass
class PreparedDevice:
    """A plan's pmem config matched, through the host's placement of it, to the kernel's namespace."""

    index: int
    config: PmemConfig
    namespace: Namespace
    placement: Placement | None = None


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise GuestError(f"{' '.join(argv)} failed: {lines[-1] if lines else proc.returncode}")
    return proc.stdout


def _nfit_regions_by_handle() -> dict[int, str]:
    """NFIT handle → region, from one `ndctl list` (QEMU gives the NVDIMM in slot N handle N+1)."""
    topology = run_ndctl("list", "-B", "-R", "-D", "-i")
    found: dict[int, str] = {}
    for bus in topology if isinstance(topology, list) else [topology]:
        if not bus or bus.get("provider") != "ACPI.NFIT":
            continue
        handles = {d["dev"]: d.get("handle") for d in bus.get("dimms", [])}
        for region in bus.get("regions", []):
            for mapping in region.get("mappings", []):
                handle = handles.get(mapping.get("dimm"))
                if handle is not None:
                    found[handle] = region["dev"]
    return found


def setup_nvdimms(handles: list[tuple[int, PmemConfig]]) -> dict[int, str]:
    """Fresh labels on every NVDIMM, then one namespace per DIMM in its config's mode.

    `handles` pairs each planned NVDIMM's NFIT handle (from the plan's placement) with its config.
    Batched (three ndctl calls for all DIMMs, then one per namespace): every ndctl start costs
    a fraction of a second under TCG. Returns NFIT handle → region.
    """
    if not handles:
        return {}
    if not vm_token():
        raise SafetyError(
            "refused NVDIMM setup: rule 'pmemkit-vm' — labels and namespaces are only rewritten "
            "inside pmemkit's VM"
        )
    regions = _nfit_regions_by_handle()
    missing = [handle for handle, _ in handles if handle not in regions]
    if missing:
        raise GuestError(
            f"no NVDIMM region for NFIT handle(s) {missing} (the kernel has {sorted(regions)}): "
            "is the VM's -device nvdimm present?"
        )
    for action in ("disable-region", "init-labels", "enable-region"):
        argv = ["ndctl", action, "-b", "ACPI.NFIT", "all"]
        _run(argv[:2] + ["-f"] + argv[2:] if action == "init-labels" else argv)
    placed: dict[int, str] = {}
    for handle, cfg in handles:
        region = regions[handle]
        argv = ["ndctl", "create-namespace", "-r", region, "-m", cfg.mode or "fsdax"]
        if cfg.map:
            argv += ["--map", cfg.map]
        _run(argv)
        placed[handle] = region
    return placed


def load_legacy_pmem(expected: int, timeout_s: float = 30.0) -> None:
    """Load nd_e820 (the initrd leaves it out, so the page-less control can run first) and wait for
    a /dev/pmem per legacy range."""
    if expected == 0:
        return
    _run(["modprobe", "nd_e820"])
    pattern = "/sys/devices/platform/e820_pmem/ndbus*/region*/namespace*/block/pmem*"
    deadline = time.monotonic() + timeout_s
    while len(glob.glob(pattern)) < expected:
        if time.monotonic() > deadline:
            raise GuestError(
                f"nd_e820 loaded but {expected} legacy pmem device(s) did not appear in {timeout_s:.0f} s"
            )
        time.sleep(0.1)


def match_devices(configs: list[PmemConfig], placements: list[Placement]) -> list[PreparedDevice]:
    """Create the planned NVDIMM namespaces, then find every planned device where the host put it."""
    handles = [(p.nfit_handle, configs[p.index]) for p in placements if p.nfit_handle is not None]
    nvdimm_regions = setup_nvdimms(handles)
    current = namespaces()
    return match_namespaces(configs, placements, current, nvdimm_regions, region_sysfs_paths(current))


def region_sysfs_paths(current: list[Namespace]) -> dict[str, str]:
    """Region → its real sysfs path, which runs through the PCI device of a virtio-pmem region."""
    return {ns.region: os.path.realpath(f"/sys/bus/nd/devices/{ns.region}") for ns in current}


def match_namespaces(
    configs: list[PmemConfig],
    placements: list[Placement],
    current: list[Namespace],
    nvdimm_regions: dict[int, str],
    region_paths: dict[str, str],
) -> list[PreparedDevice]:
    """Pure: each placement to the one namespace at it — a memmap range by its start, an NVDIMM by the
    region of its NFIT handle, a virtio-pmem device by its PCI address in the region's sysfs path.

    Nothing is counted or ordered here: what the host decided is all the guest uses.
    """
    prepared = []
    for place in placements:
        cfg = configs[place.index]
        if place.memmap_start is not None:
            where = f"legacy pmem at {place.memmap_start:#x}"
            hits = [ns for ns in current if ns.provider == "e820" and ns.resource == place.memmap_start]
        elif place.nfit_handle is not None:
            region = nvdimm_regions.get(place.nfit_handle)
            where = f"NFIT handle {place.nfit_handle} ({region or 'no region'})"
            hits = [ns for ns in current if region is not None and ns.region == region]
        elif place.pci_address is not None:
            where = f"virtio-pmem at PCI {place.pci_address}"
            hits = [ns for ns in current if f"/{place.pci_address}/" in region_paths.get(ns.region, "")]
        else:
            raise GuestError(f"{cfg.spec()}: the plan does not say where it was placed ({place.to_dict()})")
        if len(hits) != 1:
            seen = [f"{ns.dev} on {ns.region} ({ns.provider}, at {ns.resource or 0:#x})" for ns in current]
            raise GuestError(f"{cfg.spec()}: {len(hits)} namespaces at {where}; the kernel has {seen}")
        prepared.append(PreparedDevice(place.index, cfg, hits[0], place))
    return prepared


def mkfs(device: str, fs: str, *, destroy_data: bool = False, force: bool = False) -> Clearance:
    """Make a filesystem for DAX (options above) once safety has cleared the device.

    Inside pmemkit's VM emulated pmem is cleared; elsewhere only with `destroy_data` (and `force`
    over existing data), as `safety.clear_for_destruction` rules. Returns the clearance.
    """
    clearance = clear_for_destruction(device, destroy_data=destroy_data, force=force)
    if fs == "ext4":
        _run(["mkfs.ext4", "-q", "-F", *EXT4_DAX_OPTIONS, device])
    elif fs == "xfs":
        _run(["mkfs.xfs", "-q", "-f", *XFS_DAX_OPTIONS, device])
    else:
        raise GuestError(f"unknown filesystem {fs!r}: use ext4 or xfs")
    return clearance


@dataclass
class MountResult:
    """The kernel's answer to `mount -o dax=always`: outcome name, where, and its messages."""

    outcome: str  # ok | fallback | errno name
    mountpoint: str | None
    messages: list[str]
    detail: str


def mount_dax(device: str, fs: str) -> MountResult:
    """Mount with dax=always; `fallback` when the kernel mounted but files are not DAX."""
    mountpoint = os.path.join(MOUNT_ROOT, f"{os.path.basename(device)}-{fs}")
    os.makedirs(mountpoint, exist_ok=True)
    with KernelLog() as log:
        try:
            mount(device, mountpoint, fs, DAX_MOUNT_OPTIONS)
        except OSError as exc:
            messages = log.read()
            return MountResult(errno_name(exc.errno), None, messages, _reason(messages, exc.strerror))
        messages = log.read()
    if files_are_dax(mountpoint):
        return MountResult("ok", mountpoint, messages, "mounted with DAX (statx: STATX_ATTR_DAX)")
    return MountResult("fallback", mountpoint, messages, _reason(messages, "mounted, but files are not DAX"))


def _reason(messages: list[str], default: str) -> str:
    """The kernel's own words where it gave any ("DAX unsupported by block device" …)."""
    relevant = [m for m in messages if "dax" in m.lower() or "DAX" in m]
    return relevant[0] if relevant else default


def unmount(mountpoint: str) -> None:
    try:
        umount(mountpoint)
    except OSError as exc:
        raise GuestError(f"cannot unmount {mountpoint}: {exc.strerror}") from exc
