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
#: A CXL device's label storage area (its own small file-backed memdev, `lsa=`).
CXL_LSA_SIZE = 256 << 10
#: The CXL host bridge's id and its first bus number (buses below it belong to pcie.0).
CXL_BRIDGE = "cxl.1"
CXL_BUS_NR = 12
#: On the q35 CXL machine every other PCI device sits at an explicit slot of pcie.0: one qemu
#: places by itself can land behind the CXL host bridge, which refuses it (seen in the issue's
#: by-hand run). virtio-blk numbering follows PCI order, so the root disk stays /dev/vda.
CXL_MACHINE_SLOTS = {"root": "0x02", "modules": "0x03", "source": "0x04", "results": "0x05", "cxl": "0x08"}
#: QEMU models the CXL window as MMIO, so a device's DMA into CXL pmem (an O_DIRECT read from the
#: root disk into a DAX mapping) goes through a bounce buffer, 4 KiB by default: the request cannot
#: be mapped ("virtio: bogus descriptor or out of resources"), the virtio device is marked broken
#: and the guest hangs ("task kworker blocked for more than 120 seconds"; both seen on the first
#: CXL smoke run). QEMU 9.1's per-device limit only applies to the PCI bus-master address space,
#: which a virtio device uses only with iommu_platform=on (else it DMAs through the global one),
#: and that only as a modern device (disable-legacy=on).
CXL_BOUNCE_BUFFER = "x-max-bounce-buffer-size=16M,disable-legacy=on,iommu_platform=on"


def accel_args(accel: str) -> list[str]:
    """TCG with `-cpu max` (clwb, clflushopt, avx2); KVM with `-cpu host`."""
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    if accel == "tcg":
        return ["-accel", "tcg", "-cpu", "max"]
    raise ValueError(f"accel must be kvm or tcg, not {accel!r}")


def machine_args(layout: VmLayout) -> list[str]:
    """`pc` (q35 gave no measurable boot gain); NVDIMMs need `nvdimm=on` for the NFIT table; CXL
    needs q35 with `cxl=on` and one fixed memory window that targets pmemkit's one host bridge."""
    if layout.has_cxl:
        window = f"cxl-fmw.0.targets.0={CXL_BRIDGE},cxl-fmw.0.size={layout.cxl_window // MiB}M"
        return ["-machine", f"q35,cxl=on,{window}", "-smp", "1"]
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


def root_drive_args(rootfs: Path, addr: str | None = None) -> list[str]:
    """The image read-only to every VM: `snapshot=on` sends guest writes to a throwaway overlay.

    `addr`: an explicit slot on pcie.0 (the CXL machine), else qemu places it.
    """
    return _drive(f"file={rootfs},format=raw,snapshot=on", "root", addr)


def modules_drive_args(modules_disk: Path, addr: str | None = None) -> list[str]:
    """The kernel layer's modules disk (/dev/vdb, after the root): read-only, mounted at /lib/modules."""
    return _drive(f"file={modules_disk},format=raw,readonly=on", "modules", addr)


def _drive(spec: str, name: str, addr: str | None) -> list[str]:
    if addr is None:
        return ["-drive", f"{spec},if=virtio"]
    return [
        "-drive",
        f"{spec},if=none,id=drive-{name}",
        "-device",
        f"virtio-blk-pci,drive=drive-{name},{_on_pcie0(addr)}",
    ]


def _on_pcie0(addr: str) -> str:
    """An explicit slot on pcie.0, with room to bounce DMA into the CXL window (see above)."""
    return f"bus=pcie.0,addr={addr},{CXL_BOUNCE_BUFFER}"


def share_args(tag: str, path: Path, readonly: bool, addr: str | None = None) -> list[str]:
    """A 9p share; the source checkout read-only, the guest's results directory read-write.

    The writable share uses `security_model=mapped-xattr`: what the guest creates is stored as a
    regular file (or directory) with its mode kept in user xattrs, so a symlink, device node or
    FIFO the guest makes is a plain file on the host, never a host-visible link. The read-only
    share lets the guest create nothing, so `none` (host modes as they are) suffices there.
    """
    model = "none" if readonly else "mapped-xattr"
    if addr is not None:  # the same share as an fsdev and a device at an explicit slot
        fsdev = f"local,id={tag},path={path},security_model={model}" + (",readonly=on" if readonly else "")
        return ["-fsdev", fsdev, "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag},{_on_pcie0(addr)}"]
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


def pmem_device_args(
    index: int, cfg: PmemConfig, backing: Path, placement: Placement, pmem_on: bool = False
) -> list[str]:
    """One NVDIMM (with a label area, so ndctl can make namespaces) or one virtio-pmem device.

    The plan's placement fixes where the guest finds it: an NVDIMM's explicit `slot` (its NFIT
    handle follows from it), a virtio-pmem device's PCI address. There is no default: a device
    qemu placed by itself would be one the guest has to guess. `pmem_on`: the backend's `pmem=on`
    (QEMU built with libpmem; `--suite crash` asks for it and records what QEMU said).
    """
    if placement.source != cfg.source:
        raise ValueError(f"placement {placement.to_dict()} is not one of {cfg.spec()}")
    mem_id = f"pmem{index}"
    obj = f"memory-backend-file,id={mem_id},share=on,mem-path={backing},size={backing_size(cfg)}"
    if pmem_on:
        obj += ",pmem=on"
    if cfg.source == "nvdimm" and placement.nvdimm_slot is not None:
        dev = f"nvdimm,memdev={mem_id},id=nv{index},label-size={LABEL_SIZE},slot={placement.nvdimm_slot}"
    elif cfg.source == "virtio-pmem" and placement.pci_address:
        slot_function = placement.pci_address.split(":", 2)[2]  # "10.0", as QEMU's addr= reads it
        dev = f"virtio-pmem-pci,memdev={mem_id},id=vpmem{index},addr={slot_function}"
    else:
        raise ValueError(f"{cfg.spec()} is not a memory device with a placement ({placement.to_dict()})")
    return ["-object", obj, "-device", dev]


def cxl_bridge_args() -> list[str]:
    """pmemkit's one CXL host bridge (`pxb-cxl`), at a fixed slot of pcie.0."""
    return [
        "-device",
        f"pxb-cxl,bus_nr={CXL_BUS_NR},id={CXL_BRIDGE},bus=pcie.0,addr={CXL_MACHINE_SLOTS['cxl']}",
    ]


def cxl_device_args(index: int, cfg: PmemConfig, backing: Path, lsa: Path, placement: Placement) -> list[str]:
    """Root port `index` on the CXL host bridge and a Type-3 device behind it whose persistent
    capacity is a file-backed memdev (`share=on`: writes reach the file) with its own LSA file.

    `persistent-memdev=` (QEMU 8.0 and later): the older `memdev=` spelling is QEMU 7.2's, whose
    CXL pmem reads back zeros once the guest's page cache is bypassed (issue 16).
    """
    if placement.source != "cxl" or placement.cxl_serial is None or cfg.source != "cxl":
        raise ValueError(f"{cfg.spec()} is not a CXL device with a placement ({placement.to_dict()})")
    mem, lsa_id, port = f"cxl-mem{index}", f"cxl-lsa{index}", f"cxl-rp{index}"
    return [
        "-object",
        f"memory-backend-file,id={mem},share=on,mem-path={backing},size={cfg.size}",
        "-object",
        f"memory-backend-file,id={lsa_id},share=on,mem-path={lsa},size={CXL_LSA_SIZE}",
        "-device",
        f"cxl-rp,port={index},bus={CXL_BRIDGE},id={port},chassis=0,slot={index}",
        "-device",
        f"cxl-type3,bus={port},persistent-memdev={mem},lsa={lsa_id},id=cxl-pmem{index},sn={placement.cxl_serial}",
    ]


def cxl_file_names(index: int) -> tuple[str, str]:
    """Names of CXL device `index`'s backing file and LSA file in the run's scratch directory."""
    return f"cxl{index}.img", f"cxl{index}-lsa.img"


def make_cxl_files(scratch: Path, layout: VmLayout) -> list[tuple[Path, Path]]:
    """Fresh sparse backing and LSA files for every CXL device of `layout` in the run's scratch
    directory (removed with it on every exit); fresh each run, so no stale labels or regions."""
    files = []
    for index, cfg in enumerate(layout.cxl):
        pair = tuple(scratch / name for name in cxl_file_names(index))
        for path, size in zip(pair, (cfg.size, CXL_LSA_SIZE), strict=True):
            with open(path, "wb") as f:
                f.truncate(size)
        files.append((pair[0], pair[1]))
    return files


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
    cxl_files: list[tuple[Path, Path]] = field(default_factory=list)  # (backing, LSA) per CXL device
    pmem_on: bool = False  # `pmem=on` on every NVDIMM/virtio-pmem backend (see pmem_device_args)

    def cmdline(self) -> str:
        return kernel_cmdline(self.layout, self.vm_token, self.extra_cmdline)

    def argv(self) -> list[str]:
        argv = [self.qemu, "-name", "pmemkit-guest"]
        argv += accel_args(self.accel)
        argv += machine_args(self.layout)
        argv += memory_args(self.layout)
        argv += console_args()
        argv += kernel_args(self.vmlinux, self.initrd, self.cmdline())
        slot = CXL_MACHINE_SLOTS.get if self.layout.has_cxl else (lambda _name: None)
        argv += root_drive_args(self.rootfs, slot("root"))
        if self.modules_disk is not None:
            argv += modules_drive_args(self.modules_disk, slot("modules"))
        argv += share_args(SOURCE_SHARE_TAG, self.source_dir, readonly=True, addr=slot("source"))
        argv += share_args(RESULTS_SHARE_TAG, self.results_dir, readonly=False, addr=slot("results"))
        if len(self.backing_files) != len(self.layout.dimms):
            raise ValueError("one backing file per NVDIMM/virtio-pmem device is needed")
        devices = zip(self.layout.dimms, self.layout.dimm_placements, self.backing_files, strict=True)
        for index, (cfg, placement, backing) in enumerate(devices):
            argv += pmem_device_args(index, cfg, backing, placement, self.pmem_on)
        if len(self.cxl_files) != len(self.layout.cxl):
            raise ValueError("one (backing, LSA) file pair per CXL device is needed")
        if self.layout.has_cxl:
            argv += cxl_bridge_args()
        cxl = zip(self.layout.cxl, self.layout.cxl_placements, self.cxl_files, strict=True)
        for index, (cfg, placement, (backing, lsa)) in enumerate(cxl):
            argv += cxl_device_args(index, cfg, backing, lsa, placement)
        return argv
