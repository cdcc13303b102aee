"""Turn the plan's pmem configs into devices: NVDIMM namespaces via ndctl, filesystems, DAX mounts.

Every destructive step (labels, namespaces, mkfs) runs only after `safety` cleared its target.
The DAX mount is itself an observation: the kernel may refuse it (EINVAL, "DAX unsupported by
block device") or mount without DAX (XFS "Turning off DAX"), and the dmesg line is kept.
"""

from __future__ import annotations

import glob
import os
import stat
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from pmemkit.guest import GuestError
from pmemkit.guest.cxl import setup_cxl
from pmemkit.guest.kmsg import KernelLog
from pmemkit.guest.probe import Namespace, namespaces, run_ndctl
from pmemkit.guest.safety import (
    Clearance,
    SafetyError,
    clear_for_destruction,
    run_tool,
    vm_token,
)
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
    placement: Placement  # where the host put it (plan.json), the one fact it was found by
    setup: dict[str, Any] | None = None  # cxl: memdev, regions, decoder, ways and every step's output


RUN_TIMEOUT_S = 300


def _run(argv: list[str], timeout: float = RUN_TIMEOUT_S) -> str:
    """Run a tool to completion, bounded in time, with no terminal to prompt on.

    A missing tool is ToolMissing (naming its package), a hang or failure one GuestError line.
    """
    try:
        proc = run_tool(argv, timeout)
    except subprocess.TimeoutExpired as exc:
        raise GuestError(f"{' '.join(argv)} did not finish within {timeout:.0f} s; it was killed") from exc
    except OSError as exc:
        raise GuestError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise GuestError(f"{' '.join(argv)} failed: {lines[-1].strip() if lines else proc.returncode}")
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
    serials = [(p.cxl_serial, configs[p.index]) for p in placements if p.cxl_serial is not None]
    cxl_devices = {d.serial: d for d in setup_cxl(serials)}
    cxl_regions = {s: d.nd_region for s, d in cxl_devices.items() if d.nd_region}
    current = namespaces()
    prepared = match_namespaces(
        configs, placements, current, nvdimm_regions, region_sysfs_paths(current), cxl_regions
    )
    for device in prepared:
        if device.placement.cxl_serial in cxl_devices:
            device.setup = cxl_devices[device.placement.cxl_serial].record()
    return prepared


def find_existing(configs: list[PmemConfig], placements: list[Placement]) -> list[PreparedDevice]:
    """The NVDIMM namespaces an earlier boot made, found where the host put them, creating nothing.

    Why: the second boot of `--suite crash` must see the labels, namespace and filesystem the first
    boot left on the same backing files, so it runs no init-labels, create-namespace or mkfs.
    """
    regions = _nfit_regions_by_handle()
    handles = {p.nfit_handle: regions[p.nfit_handle] for p in placements if p.nfit_handle in regions}
    current = namespaces()
    return match_namespaces(configs, placements, current, handles, region_sysfs_paths(current))


def region_sysfs_paths(current: list[Namespace]) -> dict[str, str]:
    """Region → its real sysfs path, which runs through the PCI device of a virtio-pmem region."""
    return {ns.region: os.path.realpath(f"/sys/bus/nd/devices/{ns.region}") for ns in current}


def match_namespaces(
    configs: list[PmemConfig],
    placements: list[Placement],
    current: list[Namespace],
    nvdimm_regions: dict[int, str],
    region_paths: dict[str, str],
    cxl_regions: dict[int, str] | None = None,
) -> list[PreparedDevice]:
    """Pure: each placement to the one namespace at it — a memmap range by its start, an NVDIMM by the
    region of its NFIT handle, a virtio-pmem device by its PCI address in the region's sysfs path,
    a CXL device by the nd region its serial's CXL region became.

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
        elif place.cxl_serial is not None:
            region = (cxl_regions or {}).get(place.cxl_serial)
            where = f"CXL memdev serial {place.cxl_serial:#x} ({region or 'no region'})"
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
    over existing data), as `safety.clear_for_destruction` rules. mkfs gets the node safety
    checked (links resolved), after `--`, and only if it is still that node. Returns the clearance.
    """
    if fs not in MKFS_OPTIONS:
        raise GuestError(f"unknown filesystem {fs!r}: use ext4 or xfs")
    clearance = clear_for_destruction(device, destroy_data=destroy_data, force=force)
    target = _still_block_node(clearance)
    if fs == "ext4":
        _run(["mkfs.ext4", "-q", "-F", *EXT4_DAX_OPTIONS, "--", target])
    else:
        _run(["mkfs.xfs", "-q", "-f", *XFS_DAX_OPTIONS, "--", target])
    return clearance


def _still_block_node(clearance: Clearance) -> str:
    """The cleared path, provided it is still the block device that was checked (same device
    number, no link swapped in since)."""
    path = clearance.path or clearance.device
    try:
        st = os.stat(path)
    except OSError:
        st = None
    same = (
        st is not None
        and stat.S_ISBLK(st.st_mode)
        and os.path.realpath(path) == path
        and (clearance.rdev is None or st.st_rdev == clearance.rdev)
    )
    if not same:
        raise SafetyError(
            f"refused {clearance.device}: rule 'block-only' — {path} changed after it was checked"
        )
    return path


@dataclass
class MountResult:
    """The kernel's answer to `mount -o dax=always`: outcome name, where, and its messages."""

    outcome: str  # ok | fallback | errno name
    mountpoint: str | None
    messages: list[str]
    detail: str


def mount_dax(device: str, fs: str) -> MountResult:
    """Mount with dax=always; `fallback` when the kernel mounted but files are not DAX.

    When the kernel refuses, the mount point directories this call created are removed again, so
    nothing is left in MOUNT_ROOT that a caller is not told about (the outcome is then an errno
    name and `mountpoint` None).
    """
    mountpoint = os.path.join(MOUNT_ROOT, f"{os.path.basename(os.path.realpath(device))}-{fs}")
    if os.path.ismount(mountpoint):
        raise GuestError(f"{mountpoint} is already a mount point; unmount it first")
    created = _make_dirs(mountpoint)
    with KernelLog() as log:
        try:
            mount(device, mountpoint, fs, DAX_MOUNT_OPTIONS)
        except OSError as exc:
            messages = log.read()
            _remove_dirs(created)
            return MountResult(errno_name(exc.errno), None, messages, _reason(messages, exc.strerror))
        messages = log.read()
    try:
        dax = files_are_dax(mountpoint)
    except OSError as exc:  # e.g. mounted read-only: no probe file, so no answer; leave nothing mounted
        try:
            umount(mountpoint)
        except OSError as undo:
            raise GuestError(
                f"{device} is mounted at {mountpoint} but cannot be probed ({exc.strerror}) "
                f"nor unmounted ({undo.strerror}); unmount it by hand"
            ) from exc
        _remove_dirs(created)
        detail = f"mounted, but probing DAX failed: {exc.strerror}"
        return MountResult(errno_name(exc.errno), None, messages, detail)
    if dax:
        return MountResult("ok", mountpoint, messages, "mounted with DAX (statx: STATX_ATTR_DAX)")
    return MountResult("fallback", mountpoint, messages, _reason(messages, "mounted, but files are not DAX"))


def _make_dirs(path: str) -> list[str]:
    """mkdir -p, returning the directories it made (shallowest first); on failure it removes them
    again and raises GuestError."""
    missing = []
    here = path
    while not os.path.isdir(here):
        missing.append(here)
        here = os.path.dirname(here)
    created: list[str] = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)
        except OSError as exc:
            _remove_dirs(created)
            raise GuestError(f"cannot make mount point {directory}: {exc.strerror}") from exc
        created.append(directory)
    return created


def _remove_dirs(created: list[str]) -> None:
    """Remove directories `_make_dirs` made, deepest first, if they are still empty."""
    for directory in reversed(created):
        try:
            os.rmdir(directory)
        except OSError:
            return


#: Words of the line that decided a refusal or fallback, as opposed to the banner before it
#: ("DAX enabled. Warning: EXPERIMENTAL" is printed before 5.10's xfs refuses DAX on reflink).
_DECISIVE = ("cannot", "unsupported", "not supported", "turning off", "disabl", "refus", "invalid", "fail")


def _reason(messages: list[str], default: str) -> str:
    """The kernel's own words that decided the outcome ("DAX and reflink cannot be used together!"),
    else its last line about DAX, else `default`."""
    relevant = [m for m in messages if "dax" in m.lower()]
    decisive = [m for m in relevant if any(word in m.lower() for word in _DECISIVE)]
    return (decisive or relevant or [default])[-1]


def unmount(mountpoint: str) -> None:
    """Unmount, then remove the (now empty) mount point pmemkit made for it."""
    try:
        umount(mountpoint)
    except OSError as exc:
        raise GuestError(f"cannot unmount {mountpoint}: {exc.strerror}") from exc
    try:
        os.rmdir(mountpoint)
    except OSError:
        pass  # not empty or already gone: left as it is, never removed recursively
