"""The qemu-system-x86_64 command line, built from small pieces that each know one thing.

Why pieces: a single function growing every flag becomes unreadable and untestable (the lesson of
virtme-ng's run.py). Each piece returns a list of arguments and is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pmemkit.plan import Placement
from pmemkit.scenario import PmemConfig
from pmemkit.vm.layout import MiB, VmLayout

SOURCE_SHARE_TAG = "pmemkit_src"
RESULTS_SHARE_TAG = "pmemkit_out"
LABEL_SIZE = 128 << 10  # room for ndctl's namespace labels on each NVDIMM


def accel_args(accel: str) -> list[str]:
    """TCG with `-cpu max` (clwb, clflushopt, avx2); KVM with `-cpu host`."""
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    if accel == "tcg":
        return ["-accel", "tcg", "-cpu", "max"]
    raise ValueError(f"accel must be kvm or tcg, not {accel!r}")


def machine_args(layout: VmLayout) -> list[str]:
    """`pc` (q35 gave no measurable boot gain); NVDIMMs need `nvdimm=on` for the NFIT table."""
    return ["-machine", "pc,nvdimm=on" if layout.has_nvdimm else "pc", "-smp", "1"]


def memory_args(layout: VmLayout) -> list[str]:
    """Guest RAM, plus hotplug slots and maxmem when memory devices (NVDIMM, virtio-pmem) exist."""
    spec = f"{layout.ram // MiB}M"
    if layout.slots:
        device_bytes = sum(backing_size(d) for d in layout.dimms)
        maxmem = -(-(layout.ram + device_bytes) // MiB)  # whole MiB, rounded up
        spec += f",slots={layout.slots},maxmem={maxmem}M"
    return ["-m", spec]


def console_args() -> list[str]:
    """No display, no default devices; the serial console on stdio; a panic or reboot exits."""
    return ["-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]


def kernel_args(vmlinux: Path, initrd: Path, cmdline: str) -> list[str]:
    """Direct boot; an ELF vmlinux boots through PVH (no in-guest decompression)."""
    return ["-kernel", str(vmlinux), "-initrd", str(initrd), "-append", cmdline]


def root_drive_args(rootfs: Path) -> list[str]:
    """The image read-only to every VM: `snapshot=on` sends guest writes to a throwaway overlay."""
    return ["-drive", f"file={rootfs},format=raw,if=virtio,snapshot=on"]


def modules_drive_args(modules_disk: Path) -> list[str]:
    """The kernel layer's modules disk (/dev/vdb, after the root): read-only, mounted at /lib/modules."""
    return ["-drive", f"file={modules_disk},format=raw,if=virtio,readonly=on"]


def share_args(tag: str, path: Path, readonly: bool) -> list[str]:
    """A 9p share; the source checkout read-only, the guest's results directory read-write.

    The writable share uses `security_model=mapped-xattr`: what the guest creates is stored as a
    regular file (or directory) with its mode kept in user xattrs, so a symlink, device node or
    FIFO the guest makes is a plain file on the host, never a host-visible link. The read-only
    share lets the guest create nothing, so `none` (host modes as they are) suffices there.
    """
    model = "none" if readonly else "mapped-xattr"
    spec = f"local,path={path},mount_tag={tag},security_model={model},id={tag}"
    if readonly:
        spec += ",readonly=on"
    return ["-virtfs", spec]


def backing_size(cfg: PmemConfig) -> int:
    """Bytes of a memory device's backing file.

    QEMU keeps an NVDIMM's label area at the end of its backend and maps only the rest, and places
    the next DIMM right after: without the extra 128 KiB every later region starts misaligned and
    ndctl refuses fsdax namespaces ("misaligned to 16M"), as measured in the guest.
    """
    return cfg.size + (LABEL_SIZE if cfg.source == "nvdimm" else 0)


def pmem_device_args(index: int, cfg: PmemConfig, backing: Path, placement: Placement) -> list[str]:
    """One NVDIMM (with a label area, so ndctl can make namespaces) or one virtio-pmem device.

    The plan's placement fixes where the guest finds it: an NVDIMM's explicit `slot` (its NFIT
    handle follows from it), a virtio-pmem device's PCI address. There is no default: a device
    qemu placed by itself would be one the guest has to guess.
    """
    if placement.source != cfg.source:
        raise ValueError(f"placement {placement.to_dict()} is not one of {cfg.spec()}")
    mem_id = f"pmem{index}"
    obj = f"memory-backend-file,id={mem_id},share=on,mem-path={backing},size={backing_size(cfg)}"
    if cfg.source == "nvdimm" and placement.nvdimm_slot is not None:
        dev = f"nvdimm,memdev={mem_id},id=nv{index},label-size={LABEL_SIZE},slot={placement.nvdimm_slot}"
    elif cfg.source == "virtio-pmem" and placement.pci_address:
        slot_function = placement.pci_address.split(":", 2)[2]  # "10.0", as QEMU's addr= reads it
        dev = f"virtio-pmem-pci,memdev={mem_id},id=vpmem{index},addr={slot_function}"
    else:
        raise ValueError(f"{cfg.spec()} is not a memory device with a placement ({placement.to_dict()})")
    return ["-object", obj, "-device", dev]


#: Measured under TCG: qemu start → guest init 6.2 s without these, 4.7–5.3 s with them. loglevel=6
#: keeps the "Linux version" banner (KERN_NOTICE) the host times but drops the info chatter on the
#: emulated serial port. mitigations=off changes syscall costs: every report shows this command line.
FAST_BOOT_ARGS = (
    "loglevel=6",
    "mitigations=off",
    "audit=0",
    "tsc=reliable",
    "no_timer_check",
    "8250.nr_uarts=1",
    "cryptomgr.notests",
)


def kernel_cmdline(layout: VmLayout, vm_token: str, extra: list[str] | None = None) -> str:
    """Serial console, panic ends the VM, the pmemkit marker, and one `memmap=` per legacy range.

    `nokaslr` with memmap=: KASLR may otherwise place the kernel inside the range.
    """
    args = ["console=ttyS0", "panic=-1", "rw", f"pmemkit.vm={vm_token}", *FAST_BOOT_ARGS]
    if layout.memmaps:
        args.append("nokaslr")
        args += [r.kernel_arg() for r in layout.memmaps]
    return " ".join(args + (extra or []))


@dataclass
class QemuCommand:
    """Everything needed to start one guest; `argv()` joins the pieces."""

    qemu: str
    accel: str
    layout: VmLayout
    vmlinux: Path
    initrd: Path
    rootfs: Path
    source_dir: Path
    results_dir: Path
    vm_token: str
    backing_files: list[Path] = field(default_factory=list)
    extra_cmdline: list[str] = field(default_factory=list)
    modules_disk: Path | None = None

    def cmdline(self) -> str:
        return kernel_cmdline(self.layout, self.vm_token, self.extra_cmdline)

    def argv(self) -> list[str]:
        argv = [self.qemu, "-name", "pmemkit-guest"]
        argv += accel_args(self.accel)
        argv += machine_args(self.layout)
        argv += memory_args(self.layout)
        argv += console_args()
        argv += kernel_args(self.vmlinux, self.initrd, self.cmdline())
        argv += root_drive_args(self.rootfs)
        if self.modules_disk is not None:
            argv += modules_drive_args(self.modules_disk)
        argv += share_args(SOURCE_SHARE_TAG, self.source_dir, readonly=True)
        argv += share_args(RESULTS_SHARE_TAG, self.results_dir, readonly=False)
        if len(self.backing_files) != len(self.layout.dimms):
            raise ValueError("one backing file per NVDIMM/virtio-pmem device is needed")
        devices = zip(self.layout.dimms, self.layout.dimm_placements, self.backing_files, strict=True)
        for index, (cfg, placement, backing) in enumerate(devices):
            argv += pmem_device_args(index, cfg, backing, placement)
        return argv
