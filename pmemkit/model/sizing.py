"""What a namespace's memmap costs: bytes of struct page, where, data offset, usable capacity.

Follows drivers/nvdimm/pfn_devs.c nd_pfn_init() for pfn/dax devices (x86-64, 4 KiB pages):
    npfns   = (size - 8K) / 4K
    map=dev: dataoff = ALIGN(start + 8K + MAX_STRUCT_PAGE_SIZE * npfns, align) - start
    map=mem: dataoff = ALIGN(start + 8K, align) - start
with align >= 2 MiB (memremap_compat_align() / the 2 MiB default) and the namespace start
assumed aligned. MAX_STRUCT_PAGE_SIZE is what map=dev *reserves* (64 B, 128 B on early 6.1);
the memmap actually built in DRAM for map=mem uses sizeof(struct page) = 64 B on a non-KMSAN
x86-64 kernel. Not modelled: BTT metadata, pre-5.3 128 MiB section padding (start_pad/end_trunc).

`dram_bytes` is a MemFree drop, not a MemTotal drop: the memmap of ZONE_DEVICE memory is built
by vmemmap_populate() -> vmemmap_alloc_block(), which takes ordinary pages from the page
allocator once the system is up (mm/sparse-vmemmap.c), so those pages count as used, not as
removed from MemTotal (issue 10 item 6).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pmemkit.model.errors import ModelError
from pmemkit.model.kernel import Kernel, KernelRange, is_extrapolated, parse_kernel
from pmemkit.model.predict import TWO_MIB, backing, check_align
from pmemkit.scenario import Scenario

PAGE = 4096
INFO_BLOCK = 8192  # SZ_8K: the pfn info block (and label space) before the data
SIZEOF_STRUCT_PAGE = 64  # x86-64 without KMSAN: the bytes each DRAM memmap entry costs
VMEMMAP_KEPT_PER_COMPOUND = 2  # Documentation/mm/vmemmap_dedup.rst (device-dax, >= 5.19)


@dataclass(frozen=True)
class ReserveRule:
    """MAX_STRUCT_PAGE_SIZE for a kernel range, with its citation (one edit if the VM disagrees)."""

    bytes_per_page: int
    range: KernelRange
    source: str
    status: str = "V"


#: First match wins; the last entry is the default.
STRUCT_PAGE_RESERVE: tuple[ReserveRule, ...] = (
    ReserveRule(
        128,
        KernelRange("6.1-rc1", "6.1.12"),
        "commit 'libnvdimm/pfn_dev: increase MAX_STRUCT_PAGE_SIZE' (6.1, for KMSAN); undone by "
        "'nvdimm: Support sizeof(struct page) > MAX_STRUCT_PAGE_SIZE' (6.2, 6.1 stable ~6.1.12; "
        "the exact stable release is inferred, to be confirmed)",
        status="I",
    ),
    ReserveRule(64, KernelRange(), "drivers/nvdimm/nd.h MAX_STRUCT_PAGE_SIZE (64)"),
)
#: Device-DAX vmemmap savings: compound devmaps alone (5.17, "device-dax: compound devmap support")
#: save nothing; the tail vmemmap page reuse is 4917f55b4ef9 (posted 2022-04-20, merged for 5.19).
VMEMMAP_DEDUP = KernelRange("5.19")
MEMFREE_SOURCE = (
    "mm/sparse-vmemmap.c vmemmap_alloc_block(): memmap pages from the page allocator (a MemFree drop)"
)
VMEMMAP_DEDUP_SOURCE = (
    "commit 4917f55b4ef9 'mm/sparse-vmemmap: improve memory savings for compound devmaps' (5.19; "
    "compound devmaps alone, 5.17, save nothing); Documentation/mm/vmemmap_dedup.rst; no altmap: "
    "map=dev keeps its full memmap"
)


def reserve_rule(kernel: Kernel) -> ReserveRule:
    """Which MAX_STRUCT_PAGE_SIZE applies to this kernel."""
    for rule in STRUCT_PAGE_RESERVE:
        if kernel in rule.range:
            return rule
    raise LookupError(kernel)  # unreachable: the default has no bounds


def align_up(value: int, align: int) -> int:
    return -(-value // align) * align


@dataclass
class SizeReport:
    """The `pmemkit model size` answer; every *_bytes field is an exact integer."""

    kernel: str
    source: str
    mode: str
    map: str | None
    size_bytes: int
    align_bytes: int
    memmap_location: str
    struct_page_bytes: int  # per 4 KiB page, as used for memmap_bytes
    memmap_bytes: int  # the struct page array (map=dev: what nd_pfn_init reserves in pmem)
    data_offset_bytes: int
    usable_bytes: int
    dram_bytes: int  # expected MemFree drop when the namespace is enabled (MemTotal is unchanged)
    vmemmap_dedup_saved_bytes: int = 0
    extrapolated: bool = False  # kernel newer than the newest the model knows (kernel.NEWEST)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def memmap_size(
    kernel: str,
    mode: str,
    size: int,
    map: str | None = None,
    align: int | None = None,
    source: str = "nvdimm",
    force_raw: bool = False,
) -> SizeReport:
    """Size the memmap of one namespace; ModelError for nonsense (size not a multiple of align)."""
    check_align(align)
    align_bytes = align or TWO_MIB
    if size <= 0 or size % align_bytes:
        raise ModelError(
            f"size {size} is not a positive multiple of the alignment {align_bytes}: "
            "round the size to the alignment (e.g. 1G with --align 2M)"
        )
    chain = backing(Scenario(kernel, source, mode, map, force_raw, None, align))
    if chain.available.answer == "no":
        raise ModelError(
            f"{chain.scenario.label()} does not exist on kernel {kernel} "
            f"({chain.available.name}: {chain.available.why}); pick a newer --kernel"
        )
    k = parse_kernel(kernel)
    location = chain.memmap_location
    report = SizeReport(
        kernel=str(k),
        source=source,
        mode=mode,
        map=chain.scenario.map,
        size_bytes=size,
        align_bytes=align_bytes,
        memmap_location=location,
        struct_page_bytes=0,
        memmap_bytes=0,
        data_offset_bytes=0,
        usable_bytes=size,
        dram_bytes=0,
        extrapolated=is_extrapolated(k),
        sources=list(chain.struct_page.sources) if chain.struct_page else [],
    )
    if source == "ramdax":
        report.notes.append(
            "ramdax: the driver keeps 128 KiB at the end of the memmap= range for its labels; the "
            "namespace size given here is what remains (drivers/nvdimm/ramdax.c, 6.19)"
        )
    if mode in ("fsdax", "devdax"):
        _pfn_device(report, k)
    elif mode == "kmem":
        _memmap_in_dram(
            report,
            size,
            "kmem: the range is onlined as System RAM, so MemTotal grows by it (less the devdax "
            "info block, not modelled) and its hotplug memmap comes from DRAM (inferred)",
        )
    elif location == "dram":  # raw namespace on a ND_REGION_PAGEMAP region: no info block
        _memmap_in_dram(
            report,
            size,
            "raw namespace: memmap in DRAM, no info block, full size usable; MemFree drops by "
            "the memmap, MemTotal does not",
        )
    elif mode == "sector":
        report.notes.append("BTT metadata overhead is not modelled; usable_bytes is the raw size")
    return report


def _memmap_in_dram(report: SizeReport, size: int, note: str) -> None:
    """kmem and raw-on-pagemap alike: a DRAM memmap for every page, nothing taken from the pmem."""
    report.struct_page_bytes = SIZEOF_STRUCT_PAGE
    report.memmap_bytes = report.dram_bytes = size // PAGE * SIZEOF_STRUCT_PAGE
    report.sources.append(MEMFREE_SOURCE)
    report.notes.append(note)


def _pfn_device(report: SizeReport, kernel: Kernel) -> None:
    """Fill in a pfn (fsdax) or dax (devdax) device per nd_pfn_init()."""
    size, align = report.size_bytes, max(report.align_bytes, TWO_MIB)
    npfns = (size - INFO_BLOCK) // PAGE
    report.sources.append("drivers/nvdimm/pfn_devs.c nd_pfn_init()")
    if report.map == "dev":
        rule = reserve_rule(kernel)
        report.struct_page_bytes = rule.bytes_per_page
        report.memmap_bytes = rule.bytes_per_page * npfns
        report.data_offset_bytes = align_up(INFO_BLOCK + report.memmap_bytes, align)
        report.sources.append(rule.source + (" [inferred]" if rule.status == "I" else ""))
        report.notes.append("map=dev: memmap reserved in pmem; DRAM cost ~0")
    else:
        report.struct_page_bytes = SIZEOF_STRUCT_PAGE
        report.memmap_bytes = size // PAGE * SIZEOF_STRUCT_PAGE
        report.data_offset_bytes = align_up(INFO_BLOCK, align)
        report.dram_bytes = report.memmap_bytes
        report.sources.append(MEMFREE_SOURCE)
        report.notes.append(
            "map=mem: memmap allocated from DRAM at namespace enable (1.5625 %): MemFree drops, "
            "MemTotal does not (vmemmap pages come from the page allocator)"
        )
        if report.mode == "devdax" and kernel in VMEMMAP_DEDUP and report.align_bytes >= TWO_MIB:
            per_compound = report.align_bytes // PAGE * SIZEOF_STRUCT_PAGE // PAGE
            saved_pages = max(per_compound - VMEMMAP_KEPT_PER_COMPOUND, 0)
            compounds = (size - report.data_offset_bytes) // report.align_bytes
            report.vmemmap_dedup_saved_bytes = compounds * saved_pages * PAGE
            report.dram_bytes -= report.vmemmap_dedup_saved_bytes
            report.sources.append(VMEMMAP_DEDUP_SOURCE)
            report.notes.append(
                f"devdax vmemmap dedup: {VMEMMAP_KEPT_PER_COMPOUND} of {per_compound} vmemmap "
                "pages kept per compound page"
            )
    if report.data_offset_bytes >= size:
        raise ModelError(
            f"namespace of {size} bytes is too small for its info block and memmap "
            f"({report.data_offset_bytes} bytes): use a larger --size or map=mem"
        )
    report.usable_bytes = size - report.data_offset_bytes
