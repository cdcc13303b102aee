"""Where each emulated pmem device sits in the guest's physical memory, checked before any boot.

Why a separate step: a `memmap=` range outside guest RAM, overlapping another or unaligned gives
no `/dev/pmem` at all (or a guest that cannot boot) minutes later; here it is a one-line error
before qemu starts. `plan_layout` and `check_fits_host` are pure; `read_host` is the one place
that reads the host's figures (memory, disk, limits, CPU) they are checked against.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import resource
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemkit.plan import Placement
from pmemkit.scenario import PmemConfig, format_size
from pmemkit.vm.errors import VmConfigError

MiB = 1 << 20
GiB = 1 << 30
#: memmap= ranges must be 2 MiB aligned on >= 5.3 (sub-section hotplug), else no /dev/pmem.
MEMMAP_ALIGN = 2 * MiB
#: First default memmap start; below it live the kernel, initrd and DMA zones.
DEFAULT_MEMMAP_START = 1 * GiB
MIN_MEMMAP_START = 256 * MiB
#: Gap left between default-placed ranges: adjacent e820 ranges would merge into one region.
MEMMAP_GAP = 128 * MiB
#: On QEMU's `pc` machine, RAM above 3 GiB may be relocated above 4 GiB (PCI hole).
LOW_RAM_LIMIT = 3 * GiB
#: Ordinary RAM the guest needs for itself (kernel, python3 + numpy, map=mem memmaps).
MIN_SYSTEM_RAM = 768 * MiB
DEFAULT_RAM = 2 * GiB
#: ndctl wants 16 MiB-aligned namespaces for fsdax/devdax; QEMU DIMMs are 2 MiB aligned at least.
DIMM_ALIGN = 16 * MiB
MIN_DIMM_SIZE = 64 * MiB
#: virtio-pmem devices sit at fixed PCI slots from 0x10 up, so the guest finds each by its address;
#: the devices QEMU places itself (9p shares, the root disk) take the free slots below.
VIRTIO_PMEM_FIRST_SLOT = 0x10
VIRTIO_PMEM_MAX = 0x20 - VIRTIO_PMEM_FIRST_SLOT
#: A CXL Type-3 device's capacity is counted in 256 MiB units (CXL 2.0 8.2.9.5.1.1, "capacity
#: multiplier"); QEMU refuses other sizes and the kernel's HPA allocations use the same granule.
CXL_ALIGN = 256 * MiB
#: Root ports pmemkit puts on its one CXL host bridge (one Type-3 device each).
CXL_MAX = 4
#: Serial numbers (`-device cxl-type3,sn=`) from here up, in plan order: the guest finds each
#: memdev by it in `cxl list -M`.
CXL_FIRST_SERIAL = 0x504D0001
#: The smallest CXL fixed memory window pmemkit declares (the size the issue's by-hand run used).
CXL_MIN_WINDOW = 4 * GiB


@dataclass(frozen=True)
class MemmapRange:
    """One `memmap=SIZE!START` range: RAM the kernel treats as legacy persistent memory."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def kernel_arg(self) -> str:
        return f"memmap={format_size(self.size)}!{format_size(self.start)}"


@dataclass(frozen=True)
class VmLayout:
    """Guest RAM, the memmap ranges, and the memory-device pmem (NVDIMM, virtio-pmem)."""

    ram: int
    memmaps: tuple[MemmapRange, ...]
    dimms: tuple[PmemConfig, ...]
    placements: tuple[Placement, ...] = ()  # one per planned device, in plan order
    pmem: tuple[PmemConfig, ...] = ()  # the planned devices, every memmap start made explicit
    cxl: tuple[PmemConfig, ...] = ()  # CXL Type-3 devices (PCIe, on the q35 machine's CXL host bridge)

    @property
    def dimm_placements(self) -> tuple[Placement, ...]:
        """The placements of the memory devices, in the order of `dimms` (qemu's -device order)."""
        return tuple(p for p in self.placements if p.source in ("nvdimm", "virtio-pmem"))

    @property
    def cxl_placements(self) -> tuple[Placement, ...]:
        """The placements of the CXL devices, in the order of `cxl` (root port N holds device N)."""
        return tuple(p for p in self.placements if p.source == "cxl")

    @property
    def has_cxl(self) -> bool:
        return bool(self.cxl)

    @property
    def cxl_window(self) -> int:
        """Bytes of the CXL fixed memory window: every device's region fits in it (0 without CXL)."""
        if not self.cxl:
            return 0
        return max(CXL_MIN_WINDOW, -(-sum(c.size for c in self.cxl) // GiB) * GiB)

    @property
    def slots(self) -> int:
        return len(self.dimms)

    @property
    def has_nvdimm(self) -> bool:
        return any(d.source == "nvdimm" for d in self.dimms)


def _aligned(value: int, align: int) -> bool:
    return value % align == 0


def place_devices(pmem: list[PmemConfig]) -> tuple[Placement, ...]:
    """The one decision of where the guest will find each device (memmap starts already resolved).

    NVDIMMs get consecutive DIMM slots in plan order (virtio-pmem takes none) and QEMU's NFIT handle
    for a slot, slot + 1 (hw/acpi/nvdimm.c, nvdimm_slot_to_handle); virtio-pmem devices get
    consecutive PCI slots from VIRTIO_PMEM_FIRST_SLOT; CXL devices consecutive serial numbers from
    CXL_FIRST_SERIAL.
    """
    placements: list[Placement] = []
    nvdimms = virtio = cxl = 0
    for index, cfg in enumerate(pmem):
        if cfg.source == "memmap":
            if cfg.start is None:
                raise ValueError(f"{cfg.spec()}: its start must be resolved (plan_layout) before placing it")
            placements.append(Placement(index, cfg.source, memmap_start=cfg.start))
        elif cfg.source == "nvdimm":
            placements.append(Placement(index, cfg.source, nvdimm_slot=nvdimms, nfit_handle=nvdimms + 1))
            nvdimms += 1
        elif cfg.source == "cxl":
            placements.append(Placement(index, cfg.source, cxl_serial=CXL_FIRST_SERIAL + cxl))
            cxl += 1
        else:
            if virtio >= VIRTIO_PMEM_MAX:
                raise VmConfigError(f"{cfg.spec()}: at most {VIRTIO_PMEM_MAX} virtio-pmem devices per VM")
            address = f"0000:00:{VIRTIO_PMEM_FIRST_SLOT + virtio:02x}.0"
            placements.append(Placement(index, cfg.source, pci_address=address))
            virtio += 1
    return tuple(placements)


def plan_layout(pmem: list[PmemConfig], ram: int | None = None) -> VmLayout:
    """Place memmap ranges (defaulting from 1 GiB upward), size guest RAM, validate everything."""
    memmaps: list[MemmapRange] = []
    next_start = DEFAULT_MEMMAP_START
    for cfg in pmem:
        if cfg.source != "memmap":
            continue
        if not _aligned(cfg.size, MEMMAP_ALIGN):
            raise VmConfigError(
                f"{cfg.spec()}: size must be a multiple of 2M (sub-section alignment); e.g. 512M"
            )
        start = cfg.start if cfg.start is not None else next_start
        if not _aligned(start, MEMMAP_ALIGN):
            raise VmConfigError(f"{cfg.spec()}: start must be 2M aligned; e.g. @1G")
        if start < MIN_MEMMAP_START:
            raise VmConfigError(
                f"{cfg.spec()}: start below {format_size(MIN_MEMMAP_START)} would cover the "
                "kernel's own memory; use @1G or leave @START out"
            )
        rng = MemmapRange(start, cfg.size)
        for other in memmaps:
            if rng.start < other.end + MEMMAP_GAP and other.start < rng.end + MEMMAP_GAP:
                raise VmConfigError(
                    f"{cfg.spec()}: overlaps or touches memmap range at {format_size(other.start)} "
                    f"(leave {format_size(MEMMAP_GAP)} between ranges, or they merge into one region)"
                )
        memmaps.append(rng)
        next_start = -(-(rng.end + MEMMAP_GAP) // MEMMAP_GAP) * MEMMAP_GAP

    for rng in memmaps:
        if rng.end > LOW_RAM_LIMIT:
            raise VmConfigError(
                f"memmap range {format_size(rng.size)}@{format_size(rng.start)} ends at "
                f"{format_size(rng.end)}, above the {format_size(LOW_RAM_LIMIT)} where QEMU's pc "
                "machine keeps guest RAM contiguous: use a smaller size or a lower start"
            )
    pmem_in_ram = sum(r.size for r in memmaps)
    if ram is None:
        highest = max((r.end for r in memmaps), default=0)
        ram = max(DEFAULT_RAM, highest + 256 * MiB, pmem_in_ram + MIN_SYSTEM_RAM)
        ram = min(ram, LOW_RAM_LIMIT) if highest <= LOW_RAM_LIMIT else ram
    for rng in memmaps:
        if rng.end > ram:
            raise VmConfigError(
                f"memmap range {format_size(rng.size)}@{format_size(rng.start)} does not fit in "
                f"guest RAM of {format_size(ram)}: raise --memory or shrink the range"
            )
    if ram - pmem_in_ram < MIN_SYSTEM_RAM:
        raise VmConfigError(
            f"memmap ranges take {format_size(pmem_in_ram)} of {format_size(ram)} guest RAM, leaving "
            f"less than the {format_size(MIN_SYSTEM_RAM)} the guest needs: raise --memory"
        )

    dimms = tuple(c for c in pmem if c.source in ("nvdimm", "virtio-pmem"))
    for cfg in dimms:
        if cfg.size < MIN_DIMM_SIZE or not _aligned(cfg.size, DIMM_ALIGN):
            raise VmConfigError(
                f"{cfg.spec()}: size must be at least {format_size(MIN_DIMM_SIZE)} and a multiple "
                "of 16M (namespace alignment); e.g. 512M"
            )
    cxl = tuple(c for c in pmem if c.source == "cxl")
    check_cxl(pmem, cxl)
    starts = iter(memmaps)
    resolved = [dataclasses.replace(c, start=next(starts).start) if c.source == "memmap" else c for c in pmem]
    return VmLayout(
        ram=ram,
        memmaps=tuple(memmaps),
        dimms=dimms,
        placements=place_devices(resolved),
        pmem=tuple(resolved),
        cxl=cxl,
    )


def check_cxl(pmem: Sequence[PmemConfig], cxl: Sequence[PmemConfig]) -> None:
    """CXL devices: 256 MiB units, at most CXL_MAX, and alone in their VM.

    Why alone: they need the q35 machine, where RAM below 4 GiB, the PCI slots and the NVDIMM
    slots are laid out differently from the `pc` machine the other sources' placements assume;
    mixing was not tried.
    """
    if not cxl:
        return
    others = sorted({c.source for c in pmem if c.source != "cxl"})
    if others:
        raise VmConfigError(
            f"cxl devices run on their own q35 machine: mixing them with {', '.join(others)} in one "
            "VM is not supported; run them separately"
        )
    if len(cxl) > CXL_MAX:
        raise VmConfigError(f"at most {CXL_MAX} cxl devices per VM (one root port each), not {len(cxl)}")
    for cfg in cxl:
        if cfg.size < CXL_ALIGN or not _aligned(cfg.size, CXL_ALIGN):
            raise VmConfigError(
                f"{cfg.spec()}: a CXL device's size must be a multiple of 256M (its capacity unit); e.g. 512M"
            )


# --- Plausibility against the host, before anything starts ----------------------------------------

TiB = 1 << 40
#: QEMU's own memory beside guest RAM (TCG translation cache, device models), kept free on the host.
QEMU_OVERHEAD = 512 * MiB
#: TCG's `-cpu max` models 40 physical address bits (measured with QEMU 7.2 here: maxmem=1020G
#: gives "Address space limit 0xffffffffff < 0x1ff3fffffff phys-bits too low (40)").
TCG_PHYS_BITS = 40
#: i440fx (`pc`) keeps all RAM below 4 GiB up to 3.5 GiB; from 3.5 GiB on, 3 GiB below and the rest above.
PC_LOWMEM_LIMIT = 0xE0000000
PC_LOWMEM_SPLIT = 3 * GiB
#: The 64-bit PCI window QEMU places after device memory on `pc` (2 GiB; measured boundaries agree).
PCI_HOLE64 = 2 * GiB
#: With an AMD vCPU (TCG's `max` is one), an address space reaching the HyperTransport range moves
#: everything above 4 GiB to 1 TiB (hw/i386/pc.c, pc_memory_init): under 40 bits it can never fit.
AMD_HT_START = 0xFD00000000
AMD_ABOVE_1TB_START = TiB


@dataclass(frozen=True)
class HostLimits:
    """The host's figures a run must fit in; read by `read_host`, or given by a test."""

    mem_available: int
    scratch_dir: Path
    disk_free: int
    scratch_in_memory: bool  # tmpfs/ramfs: backing files take host RAM, not disk
    file_size_limit: int | None  # RLIMIT_FSIZE in bytes; None = unlimited
    phys_bits: int  # physical address bits of the vCPU qemu will model
    amd_vcpu: bool  # the AMD 1 TiB relocation applies


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def max_guest_address(ram: int, device_bytes: int, slots: int, amd_vcpu: bool) -> int:
    """Highest guest-physical address QEMU's `pc` machine uses for this RAM and memory devices.

    Mirrors QEMU 7.2's pc_max_used_gpa(): RAM above 4 GiB, then device memory (maxmem - ram, plus
    1 GiB per slot for DIMM alignment, from a 1 GiB boundary), then the 64-bit PCI hole; checked
    against measured refusals (2G + 1 slot: maxmem 1007G fits, 1009G does not; 4G + 2 slots:
    1007G fits, 1008G does not).
    """
    below = ram if ram < PC_LOWMEM_LIMIT else PC_LOWMEM_SPLIT
    above = ram - below
    maxmem = _round_up(ram + device_bytes, MiB)

    def highest(above_start: int) -> int:
        end = above_start + above
        if slots and maxmem > ram:
            end = _round_up(end, GiB) + (maxmem - ram) + slots * GiB
        return _round_up(end, GiB) + PCI_HOLE64 - 1

    top = highest(4 * GiB)
    if amd_vcpu and top >= AMD_HT_START:
        top = highest(AMD_ABOVE_1TB_START)
    return top


def _largest_devices(ram: int, slots: int, host: HostLimits) -> int:
    """The most memory-device bytes that still fit the address space with this RAM (0 if none)."""
    limit = (1 << host.phys_bits) - 1
    lo, hi = 0, 1 << 52
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if max_guest_address(ram, mid, slots, host.amd_vcpu) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo // MiB * MiB


def check_fits_host(layout: VmLayout, backing_sizes: Sequence[int], host: HostLimits) -> None:
    """Refuse, in one line naming the limit and the host's figure, a VM this host cannot run.

    Why before anything starts: otherwise qemu fails after the image build and boot have begun
    (or gets SIGBUS when a sparse backing file cannot grow on a full disk).
    """
    backing = sum(backing_sizes)
    in_memory = layout.ram + (backing if host.scratch_in_memory else 0)
    room = host.mem_available - QEMU_OVERHEAD
    if in_memory > room:
        what = "guest RAM" + (" and the in-memory backing files" if host.scratch_in_memory else "")
        raise VmConfigError(
            f"{what} ({_human(in_memory)}) would not fit the host's available memory: MemAvailable is "
            f"{_human(host.mem_available)}, less {format_size(QEMU_OVERHEAD)} for qemu itself; use a "
            "smaller --memory or smaller pmem devices"
        )
    limit = (1 << host.phys_bits) - 1
    top = max_guest_address(layout.ram, backing, layout.slots, host.amd_vcpu)
    if top > limit:
        fits = _largest_devices(layout.ram, layout.slots, host)
        raise VmConfigError(
            f"guest RAM {_human(layout.ram)} and {_human(backing)} of nvdimm/virtio-pmem need "
            f"guest-physical addresses up to {_human(top + 1)}, beyond the {_human(limit + 1)} of the "
            f"vCPU's {host.phys_bits} phys-bits (qemu would refuse to start): with this RAM at most "
            f"{_human(fits)} of memory devices fit"
        )
    if backing > host.disk_free:
        raise VmConfigError(
            f"nvdimm/virtio-pmem backing files take up to {_human(backing)} in {host.scratch_dir}, "
            f"which has {_human(host.disk_free)} free: shrink the devices or point PMEMKIT_CACHE at a "
            "bigger disk"
        )
    largest = max(backing_sizes, default=0)
    if host.file_size_limit is not None and largest > host.file_size_limit:
        raise VmConfigError(
            f"a backing file of {_human(largest)} exceeds this process's file size limit "
            f"(ulimit -f) of {_human(host.file_size_limit)}: raise it or shrink the device"
        )


def _human(n: int) -> str:
    """Bytes in the largest binary unit, two decimals at most: 22.94G."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.2f}".rstrip("0").rstrip(".") + unit
    return f"{n}B"


def _existing(path: Path) -> Path:
    """The path itself or its nearest existing ancestor (the scratch dir is made by `run`)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _in_memory_fs(path: Path) -> bool:
    """True when `path` lives on tmpfs or ramfs (longest matching mount point in /proc/mounts)."""
    best, fstype = "", ""
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount = fields[1].replace("\\040", " ")
                inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fstype = mount, fields[2]
    except OSError:
        return False
    return fstype in ("tmpfs", "ramfs")


def _host_cpu(accel: str) -> tuple[int, bool]:
    """Phys-bits and AMD-ness of the vCPU: TCG's `max` is AMD with 40 bits; KVM's `host` is the host's.

    `auto` may end on either, so it takes the stricter of the two.
    """
    tcg = (TCG_PHYS_BITS, True)
    if accel == "tcg":
        return tcg
    bits, amd = 36, False  # QEMU's fallback when the host does not say
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    amd = "AuthenticAMD" in line
                elif line.startswith("address sizes"):
                    bits = int(line.split(":")[1].split()[0])
                    break
    except (OSError, ValueError, IndexError):
        pass
    if accel == "kvm":
        return bits, amd
    return min(bits, TCG_PHYS_BITS), True


def read_host(scratch_dir: Path, accel: str) -> HostLimits:
    """The host's figures now: MemAvailable (psutil), free disk and fs kind at scratch, ulimit -f, CPU."""
    import psutil

    where = _existing(scratch_dir)
    usage = os.statvfs(where)
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    bits, amd = _host_cpu(accel)
    return HostLimits(
        mem_available=psutil.virtual_memory().available,
        scratch_dir=scratch_dir,
        disk_free=usage.f_bavail * usage.f_frsize,
        scratch_in_memory=_in_memory_fs(where),
        file_size_limit=None if soft == resource.RLIM_INFINITY else soft,
        phys_bits=bits,
        amd_vcpu=amd,
    )


def probe_file_size(directory: Path, size: int) -> None:
    """Refuse a backing file the filesystem cannot hold (EFBIG): truncate a fresh sparse file, remove it.

    Why a probe: a filesystem's largest file (16 TiB on ext4 with 4 KiB blocks, 4 GiB on vfat)
    is not reported by any call; the kernel answers exactly. Call only after check_fits_host
    (ulimit -f is checked there: exceeding it would raise SIGXFSZ). Other errors (no such
    directory, read-only cache) are left to the run, which reports them itself.
    """
    where = _existing(directory)
    try:
        fd, name = tempfile.mkstemp(prefix=".pmemkit-size-probe-", dir=where)
    except OSError:
        return
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        if exc.errno in (errno.EFBIG, errno.EINVAL):
            raise VmConfigError(
                f"a backing file of {_human(size)} is larger than the filesystem at {where} allows "
                f"({errno.errorcode[exc.errno]}): shrink the device or point PMEMKIT_CACHE elsewhere"
            ) from None
    finally:
        os.close(fd)
        os.unlink(name)
