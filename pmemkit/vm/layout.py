"""Where each emulated pmem device sits in the guest's physical memory, checked before any boot.

Why a separate step: a `memmap=` range outside guest RAM, overlapping another or unaligned gives
no `/dev/pmem` at all (or a guest that cannot boot) minutes later; here it is a one-line error
before qemu starts. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def slots(self) -> int:
        return len(self.dimms)

    @property
    def has_nvdimm(self) -> bool:
        return any(d.source == "nvdimm" for d in self.dimms)


def _aligned(value: int, align: int) -> bool:
    return value % align == 0


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
    return VmLayout(ram=ram, memmaps=tuple(memmaps), dimms=dimms)
