"""The rule table: every decision the model makes, as data, each with its kernel range and source.

How to read it. A prediction is three questions answered in order, then the operation:

1. `available`   — does this namespace mode / pmem source exist in this kernel at all?
2. `struct-page` — does the namespace get a `struct page` array, and where does it live
                   (`dram`, `pmem`, `none`)?  This is the seed mail's question.
3. `fs-dax`      — what a user gets when mapping it: `pages` (DAX with struct page), `pageless`
                   (DAX without struct page, allowed before 4.16), `none` (no DAX: page cache),
                   `chardev` (device-dax, mapped directly, no filesystem).
3b. `stack-dax`  — only when the namespace sits under a block stack (md RAID0/RAID1, dm-linear,
                   dm-stripe over two such devices): does the stacked device pass DAX through
                   (`passthrough`: it has DAX exactly when its members do) or hide it (`none`)?
                   The operation rules then see the stacked device's `fs_dax`, so the whole
                   operation chain is reused unchanged; `struct page` stays the members'.
4. the operation (`dax-mount`, `longterm-pin`, ..., `stack-copy`) → an outcome name.

For each question the *first* rule whose kernel range and `when` match decides. `when` maps a
fact name to the allowed values (see FACTS). Rules are plain records: when the VM disagrees with
a prediction, change that one record (its answer, range or `when`) and its `sources`/`status`.

Status: "V" = read in kernel source, a commit or a document, or observed in the pmemkit VM;
"I" = inferred, to be confirmed by the VM (the reference's [I] cells).

The thread through all of it is Ingo Molnar's rule from the seed mail (SEED below): a page that
user space can reach through the MMU needs `struct page`; a page hidden behind the block layer
does not. Operations that hand a user mapping to the rest of the kernel (get_user_pages: O_DIRECT,
futexes, vmsplice, RDMA/io_uring pins) are exactly the ones that need the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property

from pmemkit.model.kernel import Kernel, KernelRange, parse_kernel
from pmemkit.scenario import OPERATIONS

SEED = (
    "seed mail, LKML 2015-05-07, Ingo Molnar, 'Re: [PATCH v2 00/10] evacuate struct page from "
    "the block layer': 'if a page is visible to user-space via the MMU then it needs struct page "
    "backing'"
)
VM61 = "pmemkit VM: Debian 6.1.0-50 (6.1.176) under QEMU, reference/vm-facts.md"
DAX_RST = "Documentation/filesystems/dax.rst"
REQ_PAGE = "commit 'dax: require 'struct page' by default for filesystem dax' (4.16)"
SHOULD_MAP = "drivers/nvdimm/namespace_devs.c pmem_should_map_pages()"
DM_TABLE = (
    "drivers/md/dm-table.c dm_table_supports_dax(), device_not_dax_capable(), "
    "dm_table_set_restrictions() (queue DAX flag of the dm device)"
)
DM_DAX_4_8 = (
    "commits 545ed20e6df6 'dm: add infrastructure for DAX support', 84b22f8378cf 'dm linear: "
    "add DAX support', beec25b4573b 'dm stripe: add DAX support' (4.8)"
)
DM_DAX_CHECKS = (
    "Ross Zwisler, 'dm: prevent DAX mounts if not supported' and 'dax: check for "
    "QUEUE_FLAG_DAX in bdev_dax_supported()' (2018, 4.18)"
)
DM_DAX_CAPABLE = (
    "Christoph Hellwig, 'dax: remove dax_capable' (~5.17): device_not_dax_capable() tests "
    "dev->dax_dev, which fs_dax_get_by_bdev() returns only when the member queue has DAX"
)

QUESTIONS = ("available", "struct-page", "fs-dax", "stack-dax")

#: Block stacks the model knows, each built over two devices of the same source and mode.
STACKS = ("none", "md-raid0", "md-raid1", "dm-linear", "dm-stripe")
MD = ("md-raid0", "md-raid1")
DM = ("dm-linear", "dm-stripe")
STACKED = MD + DM

#: The yardsticks of one boot (guest/runner.py): anonymous memory, a page-cache file on the root
#: disk, and the page-less `/dev/mem` mapping of a memmap= range before any driver claims it.
BASELINE_MODES = ("anonymous", "pagecache", "devmem")
#: Sources the model knows beyond pmemkit.scenario.SOURCES (kernels pmemkit cannot yet emulate).
EXTRA_SOURCES = ("ramdax",)
#: Modes the model knows beyond pmemkit.scenario.MODES: `kmem` is a devdax namespace handed to
#: the page allocator as System RAM (daxctl reconfigure-device --mode=system-ram, dax/kmem).
EXTRA_MODES = ("kmem",)

#: The mapping-kind suffixes the experiments put in operation names (odirect-read-into-anon, ...).
MAPPING_FAMILIES = ("odirect-read-into", "odirect-write-from", "buffered-read-into", "odirect-latency")
#: O_DIRECT variants of odirect-read-into-* (the buffer read-only, not yet faulted, after fork).
ODIRECT_VARIANTS = ("read-only", "unfaulted", "after-fork")
#: The copy paths of the d2d experiment, between the two block devices and between two files.
D2D_PATHS = ("odirect-anon", "copy-file-range", "sendfile", "splice", "buffered")
D2D_BLOCKDEV = tuple(f"d2d-blockdev-{p}" for p in D2D_PATHS)
D2D_FILES = tuple(f"d2d-fs-dax-{p}" for p in D2D_PATHS) + ("d2d-fs-dax-odirect-dax-buffer",)
#: Touching the mapping: every experiment that maps, faults, reads and writes it.
ACCESS_OPS = (
    "first-touch-read",
    "first-touch-write",
    "mmap-readwrite",
    "mmap-bandwidth",
    "fio-mmap-seqread",
    "buffered-read-into-dax",
)
#: I/O on a file of the scenario's filesystem with an ordinary (anonymous) buffer.
FILE_IO_OPS = ("odirect-read-dax-file", "odirect-write-dax-file", "fio-odirect-randread")
#: Operations only the model knows so far; they join scenario.OPERATIONS once it names them.
EXTRA_OPERATIONS = (
    "stack-copy",
    "stack-queue-dax",
    *ACCESS_OPS,
    *FILE_IO_OPS,
    "odirect-latency-dax",
    *(f"odirect-read-into-dax:{v}" for v in ODIRECT_VARIANTS),
    "durability-msync",
    "durability-map-sync",
    "madvise",
    "mremap",
    *D2D_BLOCKDEV,
    *D2D_FILES,
)
# ---- poison (issue 12 item 1): memory failure on DAX pages; additive block ----------------------
#: The poison experiment's operations (guest/experiments/poison.py).
POISON_OPERATIONS = ("hwpoison-soft-offline", "hwpoison-sigbus", "hwpoison-addr-lsb", "hwpoison-recover")
EXTRA_OPERATIONS += POISON_OPERATIONS
# ---- end poison -----------------------------------------------------------------------------------
# ---- peers (issue 12 item 2): the peer tests' cases; additive block ------------------------------
#: The peers experiment's operations (guest/experiments/peers.py); variants after a colon.
PEER_FS_OPERATIONS = (
    "odirect-dax-to-dax",
    "odirect-dax-to-dax:subpage",
    "zero-page-after-pwrite",
    "punch-while-mapped",
    "exec-from-dax",
    "private-pmd-cow-race",
    *(f"odirect-pin-blockmap:{c}" for c in ("punch", "zero", "collapse", "truncate")),
)
PEER_MAP_OPERATIONS = ("mremap-partial-pmd", "odirect-write-from-dax:unfaulted", "buffered-write-from-dax")
PEER_OPERATIONS = PEER_MAP_OPERATIONS + PEER_FS_OPERATIONS
EXTRA_OPERATIONS += PEER_OPERATIONS
# ---- end peers ------------------------------------------------------------------------------------
# ---- crash (issue 12 items 4-5): what survives a SIGKILL of qemu; additive block -------------------
#: The crash suite's operations (guest/experiments/crash.py): the write of each way in boot 1, the
#: remount (journal/log recovery) and each way's verdict in boot 2. Ways are variants.
CRASH_WAYS = ("map-sync", "msync", "no-sync")
CRASH_WRITE_OPERATIONS = tuple(f"crash-write:{w}" for w in CRASH_WAYS)
CRASH_VERIFY_OPERATIONS = tuple(f"crash-verify:{w}" for w in CRASH_WAYS)
CRASH_OPERATIONS = (*CRASH_WRITE_OPERATIONS, "crash-remount", *CRASH_VERIFY_OPERATIONS)
EXTRA_OPERATIONS += CRASH_OPERATIONS
# ---- end crash ------------------------------------------------------------------------------------
MODEL_OPERATIONS = OPERATIONS + tuple(op for op in EXTRA_OPERATIONS if op not in OPERATIONS)
#: Operations that need the filesystem mounted (all but the mount itself and block-device I/O).
NEEDS_MOUNT = tuple(
    op for op in MODEL_OPERATIONS if op not in ("dax-mount", "stack-copy", "stack-queue-dax", *D2D_BLOCKDEV)
)
#: Fact names a rule's `when` may test, with their possible values.
FACTS: dict[str, tuple[object, ...]] = {
    "source": ("memmap", "nvdimm", "virtio-pmem", "baseline", "ramdax"),
    "mode": ("raw", "fsdax", "devdax", "sector", *EXTRA_MODES, *BASELINE_MODES),
    "baseline": (True, False),
    "reflink": (True, False),
    "aligned_128m": (True, False),
    "mount_refused": (True, False),
    "map": ("mem", "dev", None),
    "fs": ("ext4", "xfs"),
    "force_raw": (True, False),
    "aligned_2m": (True, False),
    "memmap": ("dram", "pmem", "none"),
    "fs_dax": ("pages", "pageless", "none", "chardev", "anonymous", "devmem"),
    "stack": STACKS,
}
ANSWERS: dict[str, tuple[str, ...]] = {
    "available": ("yes", "no"),
    "struct-page": ("dram", "pmem", "none"),
    "fs-dax": ("pages", "pageless", "none", "chardev", "anonymous", "devmem"),
    "stack-dax": ("passthrough", "none"),
}

MAPPED = ("pages", "pageless", "chardev")  # a user mapping of pmem exists (DAX)
WITH_PAGES = ("pages", "chardev")  # DAX mapping whose pages have struct page
FILE_MAPPED = ("pages", "pageless", "none")  # a file of a mounted filesystem (DAX or page cache)
RAM_BACKED = ("none", "anonymous")  # ordinary DRAM pages: page cache or anonymous memory


@dataclass(frozen=True)
class Rule:
    """One cited decision. `asks` names the question(s) or operation(s) it answers."""

    name: str
    asks: tuple[str, ...]
    answer: str
    why: str
    sources: tuple[str, ...]
    when: dict[str, tuple[object, ...]] = field(default_factory=dict)
    since: str | None = None
    before: str | None = None
    status: str = "V"

    @property
    def range(self) -> KernelRange:
        return KernelRange(self.since, self.before)

    @cached_property
    def _bounds(self) -> tuple[Kernel | None, Kernel | None]:
        """The range's ends, parsed once (a model table walk asks each rule thousands of times)."""
        return (
            parse_kernel(self.since) if self.since else None,
            parse_kernel(self.before) if self.before else None,
        )

    def matches(self, kernel: Kernel, facts: dict[str, object]) -> bool:
        """True when the kernel is in range and every `when` fact has an allowed value."""
        if not all(facts.get(key) in allowed for key, allowed in self.when.items()):
            return False
        since, before = self._bounds
        return (since is None or not kernel < since) and (before is None or kernel < before)

    def condition(self) -> str:
        """The `when` clause for people: `mode=fsdax|devdax, memmap=none`."""
        parts = []
        for key, allowed in self.when.items():
            parts.append(f"{key}=" + "|".join(str(v).lower() for v in allowed))
        return ", ".join(parts) or "always"


def R(  # noqa: N802 - a terse name on purpose: the table below calls it ~80 times
    name: str,
    asks: str | tuple[str, ...],
    answer: str,
    why: str,
    *sources: str,
    status: str = "V",
    since: str | None = None,
    before: str | None = None,
    **when: object,
) -> Rule:
    """Terse constructor for the table below: `when` facts as keywords, scalars allowed."""
    cond = {k: v if isinstance(v, tuple) else (v,) for k, v in when.items()}
    return Rule(
        name,
        (asks,) if isinstance(asks, str) else asks,
        answer,
        why,
        tuple(sources),
        cond,
        since,
        before,
        status,
    )


ODIRECT = ("odirect-read-into-dax", "odirect-write-from-dax")
#: Every operation that hands the mapping to O_DIRECT as its buffer.
ODIRECT_ALL = (
    *ODIRECT,
    "odirect-latency-dax",
    *(f"odirect-read-into-dax:{v}" for v in ODIRECT_VARIANTS),
    "d2d-fs-dax-odirect-dax-buffer",
)
FUTEX_VMSPLICE = ("futex-shared", "vmsplice")
SPLICE_SENDFILE = ("splice", "sendfile")

# Each entry: R(name, asks, answer, why, *sources, status="V"|"I", since=, before=, **when).
RULES: tuple[Rule, ...] = (
    # ---- 1. available: does the thing exist in this kernel? ---------------------------------
    R(
        "baseline-available",
        "available",
        "yes",
        "The baselines exist on every kernel: anonymous memory, a page-cache file on the root disk, "
        "and /dev/mem mapping a memmap= range that no driver has claimed (the page-less control).",
        "mm/mmap.c do_mmap()",
        "drivers/char/mem.c mmap_mem()",
        mode=BASELINE_MODES,
    ),
    R(
        "ramdax-6.19",
        "available",
        "no",
        "RAM carve-outs presented as NVDIMM DIMM devices (drivers/nvdimm/ramdax.c) arrive in 6.19; "
        "version inferred from the libnvdimm-for-next queue, to be confirmed.",
        "drivers/nvdimm/ramdax.c (6.19, issue 10 item 10)",
        "Mike Rapoport, 'nvdimm: allow creating DIMM devices on top of E820_TYPE_PRAM regions' "
        "(ramdax, queued in nvdimm.git libnvdimm-for-next for the 6.19 merge window): memmap= and "
        "DT pmem-region ranges become DIMMs with label space (128 KiB at the end of the range), "
        "fsdax and devdax namespaces",
        status="I",
        before="6.19",
        source="ramdax",
    ),
    R(
        "no-pmem-driver",
        "available",
        "no",
        "Before 4.1 there is no pmem block driver and no memmap=nn!ss: nothing to map "
        "(version inferred, to be confirmed).",
        "commit 'pmem: Add a driver for persistent memory' (4.1)",
        status="I",
        before="4.1",
    ),
    R(
        "nfit-needs-libnvdimm",
        "available",
        "no",
        "ACPI NFIT namespaces (QEMU -device nvdimm) need libnvdimm, merged in 4.2.",
        "commit 'libnvdimm, nfit: initial libnvdimm infrastructure and NFIT support' (4.2)",
        before="4.2",
        source="nvdimm",
    ),
    R(
        "btt-needs-libnvdimm",
        "available",
        "no",
        "Sector mode (BTT) is part of libnvdimm, merged in 4.2.",
        "drivers/nvdimm/btt.c (4.2)",
        before="4.2",
        mode="sector",
    ),
    R(
        "pfn-device-4.3",
        "available",
        "no",
        "fsdax mode is the pfn device, added with ZONE_DEVICE in 4.3.",
        "commit 'mm: ZONE_DEVICE for \"device memory\"' (4.3)",
        "drivers/nvdimm/pfn_devs.c",
        before="4.3",
        mode="fsdax",
    ),
    R(
        "map-dev-needs-altmap",
        "available",
        "no",
        "map=dev stores the memmap in pmem through vmem_altmap, added in 4.5.",
        "include/linux/memremap.h struct vmem_altmap (4.5)",
        before="4.5",
        map="dev",
    ),
    R(
        "devdax-4.7",
        "available",
        "no",
        "Device-DAX (/dev/daxX.Y) arrived around 4.7 (version inferred, to be confirmed).",
        "drivers/dax/ (device-dax, ~4.7)",
        status="I",
        before="4.7",
        mode="devdax",
    ),
    R(
        "kmem-5.1",
        "available",
        "no",
        "dax/kmem (a device-DAX namespace onlined as System RAM) arrived in 5.1.",
        "commit c221c0b0308f 'device-dax: \"Hotplug\" persistent memory for use like normal RAM' (5.1)",
        "drivers/dax/kmem.c dev_dax_kmem_probe()",
        before="5.1",
        mode="kmem",
    ),
    R(
        "virtio-pmem-5.3",
        "available",
        "no",
        "The virtio-pmem driver was merged in 5.3.",
        "commit 'virtio-pmem: Add virtio pmem driver' (5.3)",
        before="5.3",
        source="virtio-pmem",
    ),
    R(
        "pagemap-needs-2m-alignment",
        "available",
        "no",
        "From 5.7 a raw namespace whose memmap the pmem driver builds (memmap= and virtio-pmem "
        "regions, ND_REGION_PAGEMAP) must be 2 MiB (sub-section) aligned: otherwise the driver "
        "says '<range> misaligned, unable to map' and fails with -EOPNOTSUPP, and there is no "
        "/dev/pmem. force_raw skips the check (pmem_should_map_pages() is false).",
        "commit 6acd7d5ef264 (5.7), per issue 10 item 9",
        "linux-source-6.1 drivers/nvdimm/namespace_devs.c nvdimm_namespace_common_probe(): "
        "pmem_should_map_pages() && !IS_ALIGNED(start | end + 1, memremap_compat_align()) -> -EOPNOTSUPP",
        "linux-source-6.1 mm/memremap.c memremap_compat_align() = SUBSECTION_SIZE (2 MiB on x86-64)",
        since="5.7",
        source=("memmap", "virtio-pmem"),
        mode="raw",
        force_raw=False,
        aligned_2m=False,
    ),
    R(
        "pagemap-needs-2m-alignment-5.3",
        "available",
        "no",
        "5.3-5.6: sub-section hotplug already maps 2 MiB units, so a raw pagemap namespace that is "
        "not 2 MiB aligned still cannot be mapped (message and errno before 6acd7d5ef264 "
        "inferred, to be confirmed).",
        "mm/memory_hotplug.c sub-section hotplug (5.3)",
        status="I",
        since="5.3",
        before="5.7",
        source=("memmap", "virtio-pmem"),
        mode="raw",
        force_raw=False,
        aligned_2m=False,
    ),
    R(
        "pagemap-needs-128m-section",
        "available",
        "no",
        "Before sub-section hotplug (5.3) devm_memremap_pages() mapped whole 128 MiB memory "
        "sections: a raw pagemap namespace (memmap=) not 128 MiB aligned cannot be mapped and "
        "gets no /dev/pmem. Inferred from the section size, to be confirmed by the VM.",
        "kernel/memremap.c devm_memremap_pages() (SECTION_SIZE alignment, 4.3-5.2)",
        "reference/kernel-page-backing.md timeline 4.3 (128 MiB sections)",
        status="I",
        since="4.3",
        before="5.3",
        source="memmap",
        mode="raw",
        force_raw=False,
        aligned_128m=False,
    ),
    R(
        "stack-needs-block-device",
        "available",
        "no",
        "md and dm stack block devices; device-DAX is a character device (/dev/daxX.Y) with no "
        "block device behind it, so mdadm/dmsetup cannot take it as a member: there is no stack.",
        "drivers/dax/device.c (character device only)",
        "drivers/md/dm-table.c dm_get_device() (lookup_bdev: block devices only)",
        stack=STACKED,
        mode=("devdax", "kmem"),
    ),
    R(
        "available",
        "available",
        "yes",
        "The mode and source exist in this kernel.",
        "drivers/nvdimm/ (libnvdimm: pmem, pfn, dax and btt drivers)",
    ),
    # ---- 2. struct-page: does the namespace get a memmap, and where? ------------------------
    R(
        "baseline-ram-pages",
        "struct-page",
        "dram",
        "Anonymous memory and the page cache are ordinary RAM: every page has its struct page in "
        "the boot-time memmap.",
        "mm/page_alloc.c (boot memmap of System RAM)",
        mode=("anonymous", "pagecache"),
    ),
    R(
        "devmem-no-pages",
        "struct-page",
        "none",
        "A memmap= range is not System RAM (e820 type 12) and, before nd_pmem claims it, no "
        "dev_pagemap covers it: /dev/mem maps it with remap_pfn_range() as VM_IO|VM_PFNMAP, pfns "
        "with no struct page. The seed mail's 'user-visible page without struct page', on purpose.",
        "drivers/char/mem.c mmap_mem() remap_pfn_range()",
        "mm/memory.c remap_pfn_range_notrack(): VM_IO | VM_PFNMAP",
        SEED,
        mode="devmem",
    ),
    R(
        "before-zone-device",
        "struct-page",
        "none",
        "Before ZONE_DEVICE (4.3) pmem never had struct page: the DAX of 4.0-4.2 was the seed "
        "mail's 'partial mistake', user-visible pages with no struct page behind them.",
        "commit 'mm: ZONE_DEVICE for \"device memory\"' (4.3)",
        SEED,
        before="4.3",
    ),
    R(
        "btt-no-pages",
        "struct-page",
        "none",
        "A sector (BTT) namespace is reached only through the block layer, sector by sector: "
        "hidden from the MMU, so by the seed's rule it needs no struct page, and gets none.",
        SHOULD_MAP + ": not for BTT",
        SEED,
        mode="sector",
    ),
    R(
        "kmem-hotplug-memmap",
        "struct-page",
        "dram",
        "dax/kmem onlines the range with add_memory_driver_managed(): memory hotplug builds its "
        "memmap in DRAM like any hot-added RAM (unless memmap_on_memory, off by default, puts it "
        "in the range itself). Inferred from the source, to be confirmed.",
        "drivers/dax/kmem.c dev_dax_kmem_probe() add_memory_driver_managed()",
        "mm/memory_hotplug.c add_memory_resource(), memmap_on_memory (default off)",
        status="I",
        mode="kmem",
    ),
    R(
        "pfn-map-dev",
        "struct-page",
        "pmem",
        "A pfn/dax device with map=dev reserves room for the memmap at the start of the namespace "
        "itself (PFN_MODE_PMEM, vmem_altmap): struct page exists, stored in pmem, no DRAM cost.",
        "drivers/nvdimm/pfn_devs.c nd_pfn_init() PFN_MODE_PMEM",
        mode=("fsdax", "devdax"),
        map="dev",
    ),
    R(
        "pfn-map-mem",
        "struct-page",
        "dram",
        "A pfn/dax device with map=mem allocates the memmap from DRAM when the namespace is "
        "enabled (PFN_MODE_RAM): 64 B per 4 KiB page, 1.5625 % of the namespace.",
        "drivers/nvdimm/pfn_devs.c nd_pfn_init() PFN_MODE_RAM",
        "mm/memremap.c devm_memremap_pages()",
        mode=("fsdax", "devdax"),
        map="mem",
    ),
    R(
        "force-raw-legacy",
        "struct-page",
        "none",
        "force_raw=1 overrides the default dev_pagemap of legacy/virtio regions: the raw "
        "namespace then has no struct page, like a raw NFIT namespace.",
        "commit 'libnvdimm/pmem: Honor force_raw for legacy pmem regions' (5.1, stable)",
        SHOULD_MAP + ": force_raw",
        since="5.1",
        mode="raw",
        force_raw=True,
    ),
    R(
        "raw-pagemap-region",
        "struct-page",
        "dram",
        "Legacy e820 pmem (memmap=nn!ss) and virtio-pmem regions carry ND_REGION_PAGEMAP, so "
        "pmem_should_map_pages() holds and even a raw namespace gets a DRAM memmap (sysfs mode "
        "'memory'). Confirmed on Debian 6.1: queue/dax=1, ndctl shows fsdax map=mem.",
        "commit 'libnvdimm, pmem: direct map legacy pmem by default' (4.3)",
        SHOULD_MAP,
        "drivers/nvdimm/e820.c, drivers/nvdimm/virtio_pmem.c: ND_REGION_PAGEMAP",
        VM61,
        mode="raw",
        source=("memmap", "virtio-pmem"),
    ),
    R(
        "raw-nfit-no-pages",
        "struct-page",
        "none",
        "ACPI NFIT regions (QEMU -device nvdimm) do not set ND_REGION_PAGEMAP, so a raw NFIT "
        "namespace has no struct page (reference [I]; confirmed on Debian 6.1: queue/dax=0).",
        SHOULD_MAP + ": ND_REGION_PAGEMAP",
        "drivers/acpi/nfit/core.c",
        VM61,
        mode="raw",
        source="nvdimm",
    ),
    R(
        "raw-ramdax-no-pages",
        "struct-page",
        "none",
        "A ramdax region presents RAM carve-outs as NVDIMM DIMMs with labels, like NFIT; a raw "
        "namespace on it is assumed to lack ND_REGION_PAGEMAP and so struct page. Inferred, to be "
        "confirmed (pmemkit cannot boot 6.19 yet).",
        "drivers/nvdimm/ramdax.c (6.19)",
        SHOULD_MAP + ": ND_REGION_PAGEMAP",
        status="I",
        mode="raw",
        source="ramdax",
    ),
    # ---- 3. fs-dax: what a mapping of it is --------------------------------------------------
    R(
        "baseline-anonymous",
        "fs-dax",
        "anonymous",
        "An anonymous mapping: DRAM pages with struct page, no file behind them.",
        "mm/mmap.c do_mmap() (MAP_ANONYMOUS)",
        mode="anonymous",
    ),
    R(
        "baseline-pagecache",
        "fs-dax",
        "none",
        "A file on the root disk (ext4 on virtio-blk): mapped through the page cache, the same "
        "semantics a pmem filesystem gets when DAX is refused or turned off.",
        "mm/filemap.c filemap_fault()",
        mode="pagecache",
    ),
    R(
        "baseline-devmem",
        "fs-dax",
        "devmem",
        "/dev/mem maps the range as a VM_IO|VM_PFNMAP vma: user-visible, page-less, and refused "
        "by every get_user_pages() caller.",
        "drivers/char/mem.c mmap_mem()",
        "mm/gup.c check_vma_flags(): VM_IO | VM_PFNMAP -> -EFAULT",
        mode="devmem",
    ),
    R(
        "kmem-system-ram",
        "fs-dax",
        "anonymous",
        "With dax/kmem the pmem is System RAM: the page allocator hands it out as ordinary "
        "anonymous and page-cache pages, with struct page, never as a DAX mapping (no /dev/daxX.Y "
        "left to map). Operations behave as on anonymous memory. Inferred from the source, to be "
        "confirmed.",
        "drivers/dax/kmem.c (IORESOURCE_SYSTEM_RAM, 'System RAM (kmem)')",
        "Documentation/ABI/testing/sysfs-bus-dax, daxctl reconfigure-device --mode=system-ram",
        status="I",
        mode="kmem",
    ),
    R(
        "devdax-chardev-refcounted-6.15",
        "fs-dax",
        "chardev",
        "From 6.15 DAX pages are refcounted like ordinary folios (Alistair Popple, 'fs/dax: "
        "properly refcount fs dax pages'; device-DAX maps with vmf_insert_folio_*): device-DAX "
        "behaves as before, now with normal page references. Version inferred, to be confirmed.",
        "drivers/dax/device.c dax_mmap(), vmf_insert_folio_pmd() (6.15)",
        "Alistair Popple, 'fs/dax: properly refcount fs dax pages' series (6.15)",
        status="I",
        since="6.15",
        mode="devdax",
    ),
    R(
        "devdax-chardev",
        "fs-dax",
        "chardev",
        "Device-DAX is a character device mapped directly by mmap(): always user-visible, "
        "always with struct page.",
        "drivers/dax/device.c dax_mmap()",
        mode="devdax",
    ),
    R(
        "btt-no-dax",
        "fs-dax",
        "none",
        "BTT does sector-atomic I/O through a translation table; it offers no direct access, so "
        "a filesystem on it is page-cache only ('DAX unsupported by block device' on 6.1).",
        "drivers/nvdimm/btt.c (no dax_operations)",
        VM61,
        mode="sector",
    ),
    R(
        "pfn-map-dax-regression-6.11",
        "fs-dax",
        "none",
        "6.11-rc1..rc3 set the queue DAX flag only for pfn devices: raw memmap= namespaces kept "
        "their struct pages but lost DAX.",
        "commit 'nvdimm/pmem: Set dax flag for all 'PFN_MAP' cases' (6.11-rc4)",
        since="6.11-rc1",
        before="6.11-rc4",
        mode="raw",
        source="memmap",
        memmap="dram",
    ),
    R(
        "pfn-map-dax-regression-6.11-virtio",
        "fs-dax",
        "none",
        "Same 6.11-rc1..rc3 regression for raw virtio-pmem (same PFN_MAP path); inferred, to be "
        "confirmed by the VM.",
        "commit 'nvdimm/pmem: Set dax flag for all 'PFN_MAP' cases' (6.11-rc4)",
        status="I",
        since="6.11-rc1",
        before="6.11-rc4",
        mode="raw",
        source="virtio-pmem",
        memmap="dram",
    ),
    R(
        "dax-with-pages",
        "fs-dax",
        "pages",
        "With a memmap the pmem driver sets the queue DAX flag (PFN_MAP -> QUEUE_FLAG_DAX up to "
        "6.10, BLK_FEAT_DAX from 6.11): mount -o dax maps pmem pages, backed by struct page, "
        "straight into user space, as the seed mail asked.",
        "drivers/nvdimm/pmem.c pmem_attach_disk()",
        "commit 'pmem: only set QUEUE_FLAG_DAX for fsdax mode' (4.18)",
        VM61,
        before="6.17",
        memmap=("dram", "pmem"),
    ),
    R(
        "dax-with-pages-no-pfn-t",
        "fs-dax",
        "pages",
        "Around 6.17 pfn_t, PFN_DEV/PFN_MAP, FS_DAX_LIMITED and the devmap page-table bits were "
        "removed: DAX pages are plain ZONE_DEVICE folios, so struct page is now the only way DAX works. "
        "Behaviour unchanged (every DAX cell of the Debian 7.2.13 and 7.3.4 runs agreed); the 6.17 "
        "bound is inferred, to be confirmed.",
        "drivers/nvdimm/pmem.c pmem_attach_disk() (BLK_FEAT_DAX)",
        "pmemkit VM runs, Debian 7.2.13+deb14 and 7.3.4+deb13: 124 DAX cells each, all as predicted",
        "reference/kernel-page-backing.md timeline ~6.17 (pfn_t removal)",
        status="I",
        since="6.17",
        memmap=("dram", "pmem"),
    ),
    R(
        "pageless-dax-before-4.16",
        "fs-dax",
        "pageless",
        "Before 4.16 a filesystem could DAX-map a device without struct page: user-visible pages "
        "with nothing behind them; O_DIRECT, RDMA, splice and sendfile on such mappings failed.",
        DAX_RST + " 'Shortcomings'",
        REQ_PAGE,
        SEED,
        before="4.16",
        memmap="none",
    ),
    R(
        "dax-requires-struct-page",
        "fs-dax",
        "none",
        "Since 4.16 filesystem DAX requires struct page: the kernel enforces the seed mail's rule "
        "by refusing DAX on page-less devices (raw NFIT, force_raw) instead of mapping them.",
        REQ_PAGE,
        SEED,
        VM61,
        since="4.16",
        memmap="none",
    ),
    # ---- 3b. stack-dax: does a block stack over two such devices pass DAX through? ---------
    R(
        "md-no-dax",
        "stack-dax",
        "none",
        "md (RAID0, RAID1) registers no dax_device and never sets the queue DAX flag, so /dev/mdX "
        "reads queue/dax=0 whatever its members are, and a filesystem on it gets no DAX (ext4: "
        "'DAX unsupported by block device', XFS turns DAX off). The pmem is hidden behind the "
        "RAID abstraction and reached only by sector I/O: the seed mail's 'hidden' case. "
        "Inferred from the absence of DAX hooks in drivers/md; to be confirmed by the VM.",
        "drivers/md/md.c md_alloc(): no alloc_dax(), no dax_operations",
        "drivers/md/raid0.c, drivers/md/raid1.c: no direct_access",
        SEED,
        status="I",
        stack=MD,
    ),
    R(
        "dm-dax-absent-before-4.8",
        "stack-dax",
        "none",
        "Before 4.8 device-mapper had no DAX: dm-linear and dm-stripe gained .direct_access and "
        "the dm device its DAX flag in 4.8, so an older dm device never advertises DAX.",
        DM_DAX_4_8,
        "DepSurf: dm-table.c device_supports_dax() absent in 4.4, present in 4.8",
        before="4.8",
        stack=DM,
    ),
    R(
        "dm-linear-dax",
        "stack-dax",
        "passthrough",
        "dm-linear implements .direct_access (linear_dax_direct_access() remaps the page offset to "
        "the member and calls dax_direct_access() on it). dm_table_set_restrictions() sets the "
        "queue DAX flag of the dm device only when dm_table_supports_dax() holds: every target "
        "has .direct_access and no member fails device_not_dax_capable() (4.8: member queue has "
        "DAX; 4.18: bdev_dax_supported(); ~5.17: member has a dax_device). Both members are "
        "alike, so the stack has DAX exactly when they do, with their struct pages behind it. "
        "(4.16-4.17 over raw NFIT: pmem still set QUEUE_FLAG_DAX, so queue/dax may read 1 while "
        "the mount refuses DAX; the model predicts the mount.)",
        "drivers/md/dm-linear.c linear_dax_direct_access(), target_type .direct_access",
        DM_TABLE,
        DM_DAX_4_8,
        DM_DAX_CHECKS,
        DM_DAX_CAPABLE,
        since="4.8",
        stack="dm-linear",
    ),
    R(
        "dm-stripe-dax",
        "stack-dax",
        "passthrough",
        "dm-stripe implements .direct_access (stripe_dax_direct_access() maps the page offset to "
        "the chunk's member); dm_table_supports_dax() then requires every member to be DAX "
        "capable, as for dm-linear. Before 'dm table: fix DAX iterate_devices based device "
        "capability checks' (5b0fab508992, 5.12, stable) only the first stripe was checked; "
        "both members are alike here, so the answer is the same: DAX passes through.",
        "drivers/md/dm-stripe.c stripe_dax_direct_access(), target_type .direct_access",
        DM_TABLE,
        DM_DAX_4_8,
        "commit 5b0fab508992 'dm table: fix DAX iterate_devices based device capability checks' (5.12)",
        DM_DAX_CHECKS,
        DM_DAX_CAPABLE,
        since="4.8",
        stack="dm-stripe",
    ),
    # ---- 4. operations -----------------------------------------------------------------------
    # fs_dax here is the mapping the operation works on: pages/pageless/chardev (DAX), none (the
    # page cache: the baseline file, or a pmem filesystem whose DAX was refused or turned off),
    # anonymous, devmem (the page-less /dev/mem control).
    R(
        "fs-not-mounted",
        NEEDS_MOUNT,
        "n/a",
        "The DAX mount was refused, so there is no file to map or copy: the operation cannot be attempted.",
        "fs/ext4/super.c ext4_fill_super(), fs/xfs/xfs_super.c xfs_fs_fill_super()",
        mount_refused=True,
    ),
    R(
        "mount-baseline",
        ("dax-mount", "stack-copy", "stack-queue-dax", *D2D_BLOCKDEV, *D2D_FILES),
        "n/a",
        "A baseline (anonymous memory, the root disk's page cache, /dev/mem) is not a pmem block "
        "device: nothing to mount with -o dax, stack or copy device to device.",
        "pmemkit guest/runner.py baselines",
        baseline=True,
    ),
    R(
        "iouring-absent",
        "iouring-fixed-buffer",
        "ENOSYS",
        "io_uring arrived in 5.1; io_uring_setup() does not exist before.",
        "commit 'Add io_uring IO interface' (5.1)",
        before="5.1",
    ),
    R(
        "mount-kmem",
        ("dax-mount", "stack-copy", "stack-queue-dax", *D2D_BLOCKDEV, *D2D_FILES),
        "n/a",
        "A namespace onlined as System RAM (dax/kmem) has no block device and no character device "
        "left: nothing to mount or copy device to device.",
        "drivers/dax/kmem.c",
        mode="kmem",
    ),
    R(
        "mount-chardev",
        ("dax-mount", "stack-queue-dax", *D2D_BLOCKDEV, *D2D_FILES),
        "n/a",
        "Device-DAX is a character device: there is no block device to copy and no filesystem to mount.",
        "drivers/dax/device.c",
        fs_dax="chardev",
    ),
    R(
        "mount-xfs-reflink-refused",
        "dax-mount",
        "EINVAL",
        "Before 6.0 XFS refuses -o dax on a reflink filesystem ('DAX and reflink cannot be used "
        "together!'), and mkfs.xfs makes reflink filesystems by default (bookworm's xfsprogs 6.1, "
        "which pmemkit's mkfs uses without -m reflink=0). The refusal sits in the same -o dax "
        "block as the block-device check and runs after it whatever that check found: a device "
        "without DAX (md RAID, BTT, page-less raw) first gets 'DAX unsupported by block device. "
        "Turning off DAX.' and is then refused all the same (observed EINVAL on Debian 5.10.0-46, "
        "md-raid0/raid1 over memmap and NVDIMM members).",
        "linux-source-5.10 (5.10.262) fs/xfs/xfs_super.c xfs_fc_fill_super(): inside "
        "'if (mp->m_flags & XFS_MOUNT_DAX_ALWAYS)', bdev_dax_supported() false -> 'Turning off "
        "DAX.' (xfs_mount_set_dax_mode(XFS_DAX_NEVER)), then unconditionally "
        "xfs_sb_version_hasreflink() -> 'DAX and reflink cannot be used together!', -EINVAL",
        "commit 35fcd75af3ed 'xfs: fail dax mount if reflink is enabled on a partition' (6.0) lifted it",
        "linux-source-6.1 fs/xfs/xfs_super.c xfs_setup_dax_always(): 'DAX unsupported by block "
        "device. Turning off DAX.' returns first, then reflink refused only on a partition ('DAX "
        "and reflink cannot work with multi-partitions!')",
        "pmemkit guest/prepare.py XFS_DAX_OPTIONS (no -m reflink=0)",
        "pmemkit VM run, Debian 5.10.0-46 (5.10.262), --suite d2d,raid: md0 'DAX unsupported by "
        "block device. Turning off DAX.' then 'DAX and reflink cannot be used together!', EINVAL",
        before="6.0",
        fs="xfs",
        reflink=True,
        fs_dax=FILE_MAPPED,
    ),
    R(
        "mount-dax",
        "dax-mount",
        "ok",
        "The block device offers DAX, so mount -o dax succeeds (on Debian 6.1: memmap raw, NVDIMM "
        "fsdax map=mem and map=dev, virtio-pmem).",
        "fs/ext4/super.c, fs/xfs/xfs_super.c",
        VM61,
        fs_dax=("pages", "pageless"),
    ),
    R(
        "mount-ext4-refused",
        "dax-mount",
        "EINVAL",
        "From 5.0 ext4 refuses mount -o dax on a device without DAX ('DAX unsupported by block "
        "device.'): every page-less device since 4.16, because DAX now needs struct page.",
        "fs/ext4/super.c ext4_fill_super(): 'DAX unsupported by block device.'",
        "patchwork 10631361 (ext4 fails the mount again, 5.0; opengcs#375, pmem-csi#225: 4.19 "
        "mounted, 5.0.6 refused)",
        REQ_PAGE,
        VM61,
        since="5.0",
        fs_dax="none",
        fs="ext4",
    ),
    R(
        "mount-ext4-auto-disable",
        "dax-mount",
        "fallback",
        "4.16-4.20: ext4 turned DAX off instead of failing the mount (24f3478d664b 'ext4: auto "
        "disable dax instead of failing mount'), until failing returned (361d24d40657, 5.0). "
        "Bounds inferred from the commits and user reports, to be confirmed.",
        "commit 24f3478d664b 'ext4: auto disable dax instead of failing mount' (4.16)",
        "commit 361d24d40657 (failing the mount returned, 5.0)",
        "intel/pmem-csi#225 (4.19.5 mounted with dax, 5.0.6 refused)",
        status="I",
        since="4.16",
        before="5.0",
        fs_dax="none",
        fs="ext4",
    ),
    R(
        "mount-ext4-refused-early",
        "dax-mount",
        "EINVAL",
        "Before 4.16 only BTT lacked DAX; ext4 failing the mount there is inferred, to be "
        "confirmed by the VM (older ext4 printed 'Turning off DAX' on some paths).",
        "fs/ext4/super.c ext4_fill_super()",
        status="I",
        before="4.16",
        fs_dax="none",
        fs="ext4",
    ),
    R(
        "mount-xfs-fallback",
        "dax-mount",
        "fallback",
        "XFS mounts anyway and prints 'DAX unsupported by block device. Turning off DAX.': the "
        "kernel silently gives page-cache I/O instead of DAX.",
        "fs/xfs/xfs_super.c xfs_setup_dax_always()",
        VM61,
        fs_dax="none",
        fs="xfs",
    ),
    R(
        "access-mapping",
        ACCESS_OPS,
        "ok",
        "Mapping, faulting, reading and writing the memory needs no get_user_pages(): the CPU "
        "reaches it through the page tables whether or not it has struct page, and a buffered "
        "read copies into it with copy_to_user(). Observed ok on Debian 6.1 for every kind.",
        "mm/memory.c handle_mm_fault()",
        "lib/usercopy.c / arch copy_to_user()",
        "pmemkit VM run, Debian 6.1.0-57 (6.1.192): first-touch, bandwidth, buffered-read-into-*",
    ),
    R(
        "bypass-anonymous",
        "pagecache-bypass",
        "n/a",
        "Anonymous memory has no file and no page cache to bypass.",
        "mm/mmap.c do_mmap() (MAP_ANONYMOUS)",
        fs_dax="anonymous",
    ),
    R(
        "bypass-devmem",
        "pagecache-bypass",
        "ok",
        "/dev/mem maps the physical range directly (remap_pfn_range): no page cache at all; "
        "inferred, to be confirmed by the VM.",
        "drivers/char/mem.c mmap_mem()",
        status="I",
        fs_dax="devmem",
    ),
    R(
        "bypass-dax",
        "pagecache-bypass",
        "ok",
        "A DAX mapping puts pmem pages in the page tables directly: no page-cache copy.",
        DAX_RST,
        VM61,
        fs_dax=MAPPED,
    ),
    R(
        "bypass-none",
        "pagecache-bypass",
        "fallback",
        "Without DAX the file is mapped through the page cache: DRAM copies of pmem.",
        DAX_RST,
        VM61,
        fs_dax="none",
    ),
    R(
        "odirect-read-only-buffer",
        "odirect-read-into-dax:read-only",
        "EFAULT",
        "An O_DIRECT read writes into the buffer, so it pins it with FOLL_WRITE; check_vma_flags() "
        "refuses a vma without VM_WRITE with -EFAULT, whatever backs it (observed on Debian 6.1 for "
        "DAX, page cache and anonymous buffers).",
        "linux-source-6.1 mm/gup.c check_vma_flags(): write && !(vm_flags & VM_WRITE) -> -EFAULT",
        "pmemkit VM run, Debian 6.1.0-57: odirect-read-into-*:read-only -> EFAULT",
    ),
    R(
        "odirect-devmem",
        ODIRECT_ALL,
        "EFAULT",
        "/dev/mem is a VM_IO|VM_PFNMAP vma: get_user_pages() refuses it with -EFAULT, so O_DIRECT "
        "through it fails: the seed mail's rule observed (Debian 6.1: preadv 'Bad address').",
        "linux-source-6.1 mm/gup.c check_vma_flags(): VM_IO | VM_PFNMAP -> -EFAULT",
        "pmemkit VM run, Debian 6.1.0-57: odirect-read-into-pageless -> EFAULT",
        SEED,
        fs_dax="devmem",
    ),
    R(
        "odirect-ram",
        ODIRECT_ALL,
        "ok",
        "Page-cache and anonymous pages are ordinary RAM with struct page: get_user_pages() pins "
        "them and the block layer DMAs into/out of them (observed on Debian 6.1).",
        "mm/gup.c",
        "block/bio.c bio_iov_iter_get_pages()",
        "pmemkit VM run, Debian 6.1.0-57: odirect-*-anon, odirect-*-pagecache-mmap -> ok",
        fs_dax=RAM_BACKED,
    ),
    R(
        "odirect-before-gup-dax",
        ODIRECT_ALL,
        "EFAULT",
        "Before 4.5 get_user_pages() could not resolve DAX PTEs (no pfn_t/devmap yet), so "
        "O_DIRECT with a DAX buffer fails; inferred, to be confirmed by the VM.",
        "mm/gup.c get_user_pages() DAX support with pfn_t (4.5)",
        status="I",
        before="4.5",
        fs_dax=MAPPED,
    ),
    R(
        "odirect-pageless",
        ODIRECT_ALL,
        "EFAULT",
        "O_DIRECT pins the user buffer with get_user_pages(), which needs struct page: a page-less "
        "DAX mapping fails with EFAULT (as the /dev/mem mapping of pmem does on 6.1). The seed's "
        "rule in its plainest form.",
        DAX_RST + " 'Shortcomings'",
        "mm/gup.c",
        VM61 + " (/dev/mem control)",
        SEED,
        fs_dax="pageless",
    ),
    R(
        "odirect-pages",
        ODIRECT_ALL,
        "ok",
        "The DAX pages have struct page, so get_user_pages() pins them and the block layer DMAs "
        "into/out of pmem like any RAM (verified on Debian 6.1 for every DAX mode).",
        "mm/gup.c",
        "block/bio.c bio_iov_iter_get_pages()",
        VM61,
        SEED,
        fs_dax=WITH_PAGES,
    ),
    R(
        "file-io-no-file",
        FILE_IO_OPS,
        "n/a",
        "No file of a filesystem: device-DAX, anonymous memory and /dev/mem have none to do O_DIRECT on.",
        "drivers/dax/device.c dax_fops (no read_iter)",
        fs_dax=("chardev", "anonymous", "devmem"),
    ),
    R(
        "file-io",
        FILE_IO_OPS,
        "ok",
        "O_DIRECT on a file of the filesystem with an anonymous buffer: DAX files copy through the "
        "kernel mapping (dax_iomap_rw), page-cache files go to the block device; the buffer is "
        "ordinary RAM either way (observed ok on Debian 6.1, DAX and fallback alike).",
        "fs/dax.c dax_iomap_rw()",
        "fs/iomap/direct-io.c",
        "pmemkit VM run, Debian 6.1.0-57: odirect-read-dax-file, fio-odirect-randread -> ok",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "mapsync-unknown-flag",
        ("map-sync", "durability-map-sync"),
        "EINVAL",
        "MAP_SHARED_VALIDATE and MAP_SYNC arrived in 4.15; before, the map type is invalid.",
        "mm/mmap.c do_mmap(): unknown MAP_TYPE -> -EINVAL",
        "commit 'mm: Define MAP_SYNC and VM_SYNC flags' (4.15)",
        before="4.15",
    ),
    R(
        "mapsync-anonymous",
        ("map-sync", "durability-map-sync"),
        "EINVAL",
        "An anonymous mapping knows only MAP_SHARED and MAP_PRIVATE: MAP_SHARED_VALIDATE is an "
        "invalid map type there.",
        "linux-source-6.1 mm/mmap.c do_mmap(): anonymous switch (flags & MAP_TYPE) default -> -EINVAL",
        fs_dax="anonymous",
    ),
    R(
        "mapsync-devmem",
        ("map-sync", "durability-map-sync"),
        "EOPNOTSUPP",
        "/dev/mem does not declare MAP_SYNC support, so MAP_SHARED_VALIDATE with MAP_SYNC is "
        "refused as an unknown flag.",
        "linux-source-6.1 mm/mmap.c do_mmap(): flags & ~flags_mask -> -EOPNOTSUPP",
        "drivers/char/mem.c mem_fops (no mmap_supported_flags)",
        fs_dax="devmem",
    ),
    R(
        "mapsync-devdax",
        ("map-sync", "durability-map-sync"),
        "ok",
        "Device-DAX accepts MAP_SYNC: its mappings have no filesystem metadata to sync.",
        "drivers/dax/device.c (6.1 mmap_supported_flags = MAP_SYNC; 6.12 fop_flags = FOP_MMAP_SYNC)",
        VM61,
        fs_dax="chardev",
    ),
    R(
        "mapsync-async-region",
        ("map-sync", "durability-map-sync"),
        "EOPNOTSUPP",
        "virtio-pmem is an ND_REGION_ASYNC region: CPU cache flushes do not make data durable, so "
        "filesystems refuse MAP_SYNC on it (dax_synchronous() is false).",
        "include/linux/dax.h dax_synchronous()",
        "drivers/nvdimm/virtio_pmem.c ND_REGION_ASYNC",
        "vm-facts.md: virtio-pmem MAP_SYNC -> EOPNOTSUPP",
        source="virtio-pmem",
        fs_dax="pages",
    ),
    R(
        "mapsync-dax",
        ("map-sync", "durability-map-sync"),
        "ok",
        "A DAX file on a synchronous region supports MAP_SYNC: page faults commit metadata first.",
        "fs/ext4/file.c, fs/xfs/xfs_file.c (VM_SYNC)",
        VM61,
        fs_dax="pages",
    ),
    R(
        "mapsync-pageless",
        ("map-sync", "durability-map-sync"),
        "ok",
        "On 4.15 a page-less DAX file still took MAP_SYNC (DAX did not need pages yet); "
        "inferred, to be confirmed by the VM.",
        "fs/ext4/file.c (4.15)",
        status="I",
        fs_dax="pageless",
    ),
    R(
        "mapsync-no-dax",
        ("map-sync", "durability-map-sync"),
        "EOPNOTSUPP",
        "MAP_SYNC is only supported on DAX files; a page-cache file refuses it.",
        "fs/ext4/file.c ext4_file_mmap(): !IS_DAX && VM_SYNC -> -EOPNOTSUPP",
        "vm-facts.md: EOPNOTSUPP on dax=never",
        fs_dax="none",
    ),
    R(
        "msync-no-fsync",
        "durability-msync",
        "EINVAL",
        "msync(MS_SYNC) of a shared file mapping calls vfs_fsync_range(), which returns -EINVAL "
        "when the file has no ->fsync: device-DAX and /dev/mem have none. Inferred from the "
        "source, to be confirmed by the VM (the experiment does not run it there yet).",
        "linux-source-6.1 mm/msync.c, fs/sync.c vfs_fsync_range(): !f_op->fsync -> -EINVAL",
        "drivers/dax/device.c dax_fops, drivers/char/mem.c mem_fops (no fsync)",
        status="I",
        fs_dax=("chardev", "devmem"),
    ),
    R(
        "msync",
        "durability-msync",
        "ok",
        "msync of a file mapping writes it back (page cache) or flushes the CPU caches of the DAX "
        "range (dax_writeback_mapping_range); with no file (anonymous) it is a no-op.",
        "mm/msync.c",
        "fs/dax.c dax_writeback_mapping_range()",
        "pmemkit VM run, Debian 6.1.0-57: durability-msync -> ok",
    ),
    R(
        "private-devdax",
        "map-private",
        "EINVAL",
        "Device-DAX refuses MAP_PRIVATE: it cannot copy-on-write into a page cache it lacks.",
        "drivers/dax/device.c check_vma(): 'attempted private mapping'",
        VM61,
        fs_dax="chardev",
    ),
    R(
        "private-devmem",
        "fork-cow",
        "ENOMEM",
        "The private writable /dev/mem mapping is made; what fails with ENOMEM (observed on Debian "
        "5.10, 6.1 and 6.12) is the fork() after the parent wrote the first page: copy_page_range() "
        "calls track_pfn_copy(), whose get_pat_info() cannot read the cache mode of a copy-on-write "
        "pfnmap whose first page is now an anonymous copy (-EINVAL); dup_mmap() fails, dup_mm() "
        "returns NULL and copy_mm() turns that into -ENOMEM. Traced on 6.1 (--trace-decisions); "
        "earlier runs reported it as the mmap's failure because kapi named the wrong step.",
        "linux-source-6.1 (6.1.192) arch/x86/mm/pat/memtype.c get_pat_info(): is_cow_mapping() && "
        "pgprot -> -EINVAL ('If we need the cachemode as well, we're out of luck for now and have "
        "to fail fork()'), track_pfn_copy(); mm/memory.c copy_page_range(); kernel/fork.c copy_mm(): "
        "!dup_mm() -> -ENOMEM",
        "linux-source-6.12 arch/x86/mm/pat/memtype.c get_pat_info(), track_pfn_copy() (the same)",
        "pmemkit VM runs, Debian 5.10.0-46, 6.1.0-57, 6.12.118: /dev/mem fork-cow -> 'Cannot "
        "allocate memory'",
        "pmemkit VM run, Debian 6.1.0-57, --trace-decisions: kernel_clone -ENOMEM <- copy_process "
        "ERR_PTR(-ENOMEM) <- dup_mmap -EINVAL <- copy_page_range -EINVAL <- track_pfn_copy -EINVAL "
        "(get_pat_info, copy_mm, dup_mm inlined)",
        before="7.2",
        fs_dax="devmem",
    ),
    R(
        "private-devmem-map",
        "map-private",
        "ok",
        "mmap(MAP_PRIVATE) of /dev/mem itself succeeds: in the traced 6.1 run no mmap function "
        "refused and the fork after it failed (kapi's fork-cow maps exactly this way). No experiment "
        "maps /dev/mem privately on its own yet, so only 6.1 is observed; other kernels inferred.",
        "linux-source-6.1 drivers/char/mem.c mmap_mem(): remap_pfn_range() of a private vma "
        "(remap_pfn_range_notrack() sets vm_pgoff for a COW mapping)",
        "pmemkit VM run, Debian 6.1.0-57, --trace-decisions: fork-cow on /dev/mem, vm_mmap_pgoff() "
        "returned the mapping",
        status="I",
        fs_dax="devmem",
    ),
    R(
        "private-devmem-7.2",
        ("map-private", "fork-cow"),
        "ok",
        "On Debian 7.2.13 (sid) and 7.3.4 the private /dev/mem mapping is made and copy-on-write "
        "after fork works (the child wrote its copy, the parent kept its value; observed in four "
        "runs). The change lies between 6.12 and 7.2; the model puts it at 7.2, the first kernel "
        "observed. A "
        "candidate is the PAT/pfnmap tracking rework of remap_pfn_range() (6.17-6.18); inferred, "
        "to be confirmed by a kernel in between.",
        "pmemkit VM runs, Debian 7.2.13+deb14 (1 run) and 7.3.4+deb13 (3 runs): /dev/mem fork-cow -> ok",
        "David Hildenbrand, pfnmap tracking rework of remap_pfn_range() (mm/memory.c, "
        "arch/x86/mm/pat/memtype.c, 6.17-6.18; candidate, inferred)",
        status="I",
        since="7.2",
        fs_dax="devmem",
    ),
    R(
        "private-file",
        "map-private",
        "ok",
        "A private mapping of a (DAX or not) file, or of anonymous memory, is allowed; writes "
        "copy-on-write into DRAM.",
        "fs/dax.c dax_fault_cow()",
        fs_dax=("pages", "pageless", "none", "anonymous"),
    ),
    R(
        "pmd-no-dax",
        "pmd-fault",
        "fallback",
        "Without DAX no DAX PMD fault happens (the experiment counts fs_dax:dax_pmd_fault_done): "
        "page cache, anonymous memory and /dev/mem fault 4 KiB at a time (observed fallback for "
        "xfs without DAX on Debian 6.1).",
        DAX_RST,
        "tracepoint fs_dax:dax_pmd_fault_done",
        fs_dax=("none", "anonymous", "devmem"),
    ),
    R(
        "pmd-before-4.5",
        "pmd-fault",
        "fallback",
        "Before 4.5 filesystem DAX took 4 KiB faults: ee82c9ed41e8 'dax: disable pmd mappings' "
        "(4.4-rc, stable) made FS_DAX_PMD depend on BROKEN because GUP, fork and THP paths took "
        "DAX PMDs for pages with struct page; 5c7fb56e5e3f ('mm, dax: dax-pmd vs thp-pmd vs "
        "hugetlbfs-pmd', 4.5) made them work with the devmap bit. Inferred, to be confirmed.",
        "commit ee82c9ed41e8 'dax: disable pmd mappings' (4.4-rc, stable)",
        "commit 5c7fb56e5e3f 'mm, dax: dax-pmd vs thp-pmd vs hugetlbfs-pmd' (4.5)",
        status="I",
        before="4.5",
    ),
    R(
        "pmd-fsdax-broken",
        "pmd-fault",
        "fallback",
        "4.7-4.8: FS_DAX_PMD depended on BROKEN again (the PMD fault path raced with the radix "
        "tree locking rework), until the iomap-based DAX PMD support of 4.9 removed the option, "
        "so filesystem DAX took 4 KiB faults (device-DAX has its own PMD path). Range per issue "
        "10 item 4; the 4.7 commit is inferred, to be confirmed.",
        "fs/Kconfig FS_DAX_PMD 'depends on BROKEN' (4.7-4.8, inferred)",
        "Ross Zwisler, 'dax: add struct iomap based DAX PMD support' (4.9)",
        status="I",
        since="4.7",
        before="4.9",
        fs_dax=("pages", "pageless"),
    ),
    R(
        "pmd-pageless",
        "pmd-fault",
        "fallback",
        "A PMD DAX entry needs a devmap pfn (struct page); page-less DAX falls back to 4 KiB "
        "faults; inferred, to be confirmed by the VM.",
        "fs/dax.c dax_iomap_pmd_fault()",
        status="I",
        fs_dax="pageless",
    ),
    R(
        "pmd-misaligned",
        "pmd-fault",
        "fallback",
        "A 2 MiB fault needs the namespace, the file extent and the vma 2 MiB aligned; with a "
        "smaller alignment the kernel falls back to 4 KiB faults (devdax: only its own align).",
        "fs/dax.c dax_iomap_pmd_fault()",
        "drivers/dax/device.c dev_dax_huge_fault()",
        "tracepoint fs_dax:dax_pmd_fault_done",
        aligned_2m=False,
    ),
    R(
        "pmd-ok",
        "pmd-fault",
        "ok",
        "Aligned DAX mappings with struct page take 2 MiB faults (assumes a 2 MiB-aligned extent, "
        "e.g. a preallocated file).",
        "fs/dax.c dax_iomap_pmd_fault()",
        "drivers/dax/device.c dev_dax_huge_fault()",
        fs_dax=WITH_PAGES,
    ),
    R(
        "gup-devmem",
        FUTEX_VMSPLICE + ("longterm-pin", "iouring-fixed-buffer"),
        "EFAULT",
        "Shared futexes, vmsplice and every pin look the page up with get_user_pages(), which "
        "refuses the VM_IO|VM_PFNMAP /dev/mem vma with -EFAULT (observed on Debian 6.1).",
        "linux-source-6.1 and 6.12 mm/gup.c check_vma_flags(): VM_IO | VM_PFNMAP -> -EFAULT",
        "pmemkit VM run, Debian 6.1.0-57: /dev/mem futex, vmsplice, AF_XDP, io_uring -> EFAULT",
        SEED,
        fs_dax="devmem",
    ),
    R(
        "futex-vmsplice-ram",
        FUTEX_VMSPLICE,
        "ok",
        "Page-cache and anonymous pages have struct page and a mapping (or anon_vma): the shared "
        "futex key resolves and vmsplice pins them (observed on Debian 6.1).",
        "kernel/futex/core.c get_futex_key()",
        "fs/splice.c vmsplice_to_pipe()",
        "pmemkit VM run, Debian 6.1.0-57: futex-shared, vmsplice on anonymous and page cache -> ok",
        fs_dax=RAM_BACKED,
    ),
    R(
        "futex-vmsplice-before-gup-dax",
        FUTEX_VMSPLICE,
        "EFAULT",
        "Before 4.5 get_user_pages() could not resolve DAX PTEs; inferred, to be confirmed by the VM.",
        "kernel/futex.c get_futex_key()",
        "fs/splice.c vmsplice",
        status="I",
        before="4.5",
        fs_dax=MAPPED,
    ),
    R(
        "futex-vmsplice-pageless",
        FUTEX_VMSPLICE,
        "EFAULT",
        "Shared futexes and vmsplice look the user page up (get_user_pages): without struct page "
        "they fail; inferred, to be confirmed by the VM.",
        "kernel/futex get_futex_key()",
        "fs/splice.c vmsplice_to_pipe()",
        SEED,
        status="I",
        fs_dax="pageless",
    ),
    R(
        "futex-fsdax-no-mapping",
        "futex-shared",
        "EFAULT",
        "A shared futex key needs page->mapping; filesystem-DAX pages got one only with d2c997c0f145 "
        "(4.17), so before that get_futex_key() finds no mapping and returns -EFAULT. Inferred from "
        "the commit, to be confirmed by the VM.",
        "kernel/futex.c get_futex_key(): !page->mapping -> -EFAULT",
        "commit d2c997c0f145 'fs, dax: use page->mapping to warn if truncate collides with a busy "
        "page' (4.17)",
        status="I",
        before="4.17",
        fs_dax="pages",
    ),
    R(
        "futex-devdax-no-mapping",
        "futex-shared",
        "EFAULT",
        "Device-DAX pages got page->mapping and page->index later than fsdax (~4.19, 'device-dax: "
        "Enable page_mapping()'); before, a shared futex on them fails like fsdax before 4.17. "
        "Version inferred, to be confirmed.",
        "kernel/futex.c get_futex_key()",
        "commit 'device-dax: Enable page_mapping()' (~4.19)",
        status="I",
        before="4.19",
        fs_dax="chardev",
    ),
    R(
        "futex-vmsplice-pages",
        FUTEX_VMSPLICE,
        "ok",
        "With struct page (and page->mapping), futexes and vmsplice 'Just Work' on pmem, as the "
        "seed mail predicted (observed on Debian 6.1 for every DAX mode).",
        "kernel/futex/core.c get_futex_key()",
        "fs/splice.c vmsplice_to_pipe()",
        "pmemkit VM run, Debian 6.1.0-57: futex-shared, vmsplice on DAX -> ok",
        SEED,
        fs_dax=WITH_PAGES,
    ),
    R(
        "longterm-anonymous",
        ("longterm-pin", "iouring-fixed-buffer"),
        "ok",
        "Anonymous memory is what long-term pins are for: FOLL_LONGTERM pins it.",
        "mm/gup.c __gup_longterm_locked()",
        "pmemkit VM run, Debian 6.1.0-57: AF_XDP and io_uring on anonymous -> ok",
        fs_dax="anonymous",
    ),
    R(
        "longterm-pagecache-writable-file",
        ("longterm-pin", "iouring-fixed-buffer"),
        "EFAULT",
        "A writable FOLL_LONGTERM pin of a shared file mapping that needs dirty tracking (ext4, "
        "xfs page cache) is refused: check_vma_flags() -> writable_file_mapping_allowed() -> "
        "-EFAULT (AF_XDP umem and io_uring pin with FOLL_WRITE|FOLL_LONGTERM). Present in 6.12.118, "
        "absent in 6.1.192, observed on 6.12.118 in pmemkit's VM; the 6.5 lower bound is from the "
        "patch's merge window (inferred).",
        "linux-source-6.12 mm/gup.c writable_file_mapping_allowed(), mm/vma.c vma_needs_dirty_tracking()",
        "Lorenzo Stoakes, 'mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to file-backed mappings' (6.5)",
        "linux-source-6.12 io_uring/memmap.c io_pin_pages(), net/xdp/xdp_umem.c xdp_umem_pin_pages()",
        "pmemkit VM run, Debian 6.12.118+deb13: longterm-pin, iouring-fixed-buffer on page cache -> EFAULT",
        since="6.5",
        fs_dax="none",
    ),
    R(
        "longterm-pagecache",
        "longterm-pin",
        "ok",
        "Up to 6.4 GUP pins page-cache pages long-term without complaint (observed ok for AF_XDP on "
        "Debian 6.1, both the root disk's file and xfs without DAX).",
        "linux-source-6.1 mm/gup.c check_vma_flags() (no file-backed check)",
        "pmemkit VM run, Debian 6.1.0-57: longterm-pin on page cache -> ok",
        fs_dax="none",
    ),
    R(
        "longterm-before-gup-dax",
        "longterm-pin",
        "EFAULT",
        "Before 4.5 get_user_pages() could not resolve DAX PTEs; inferred, to be confirmed by the VM.",
        "mm/gup.c (4.5)",
        status="I",
        before="4.5",
        fs_dax=MAPPED,
    ),
    R(
        "longterm-pageless",
        "longterm-pin",
        "EFAULT",
        "Page-less DAX has no struct page to pin: GUP fails with EFAULT before any long-term check "
        "(get_user_pages_longterm() calls get_user_pages() first on 4.15).",
        DAX_RST + " 'Shortcomings'",
        "commit 'mm: introduce get_user_pages_longterm' (4.15): get_user_pages() then vma_is_fsdax()",
        SEED,
        fs_dax="pageless",
    ),
    R(
        "longterm-devdax-vma-is-fsdax-bug",
        "longterm-pin",
        "EOPNOTSUPP",
        "4.15's vma_is_fsdax() compared i_mode == S_IFCHR (permission bits included), so device-DAX "
        "looked like fsdax and get_user_pages_longterm() refused it too, until 'mm: Fix "
        "vma_is_fsdax() helper' (230f5a8969d8, 4.16 and 4.15 stable). Inferred, to be confirmed.",
        "commit 230f5a8969d8 'mm: Fix vma_is_fsdax() helper' (4.16, stable)",
        status="I",
        since="4.15",
        before="4.16",
        fs_dax="chardev",
    ),
    R(
        "longterm-fsdax-gup-longterm",
        "longterm-pin",
        "EOPNOTSUPP",
        "get_user_pages_longterm() (RDMA, vfio, io_uring) refuses filesystem-DAX vmas: a "
        "long-lived pin would block truncate and block reallocation of the pmem pages.",
        "mm/gup.c get_user_pages_longterm(): vma_is_fsdax() -> -EOPNOTSUPP",
        "commit 'mm: introduce get_user_pages_longterm' (4.15)",
        since="4.15",
        before="5.2",
        fs_dax="pages",
    ),
    R(
        "longterm-fsdax-foll-longterm",
        "longterm-pin",
        "EOPNOTSUPP",
        "Since 5.2 the same refusal is the FOLL_LONGTERM flag: check_vma_flags() rejects fsdax "
        "vmas. The pages have struct page; the refusal is about filesystem block ownership.",
        "mm/gup.c check_vma_flags(): FOLL_LONGTERM && vma_is_fsdax() -> -EOPNOTSUPP",
        "reference/kernel-page-backing.md timeline 5.2",
        since="5.2",
        before="6.15",
        fs_dax="pages",
    ),
    R(
        "longterm-fsdax-gup-fast",
        "longterm-pin",
        "EOPNOTSUPP",
        "From 6.15 fsdax pages are refcounted normally and GUP-fast refuses FOLL_LONGTERM on fsdax "
        "too; outcome unchanged (observed EOPNOTSUPP on Debian 7.2.13 and 7.3.4). The 6.15 bound is "
        "inferred, to be confirmed by a kernel in between.",
        "mm/gup.c check_vma_flags(), gup_fast folio checks (6.15)",
        "pmemkit VM runs, Debian 7.2.13+deb14, 7.3.4+deb13: longterm-pin on fsdax, raw memmap -> EOPNOTSUPP",
        status="I",
        since="6.15",
        fs_dax="pages",
    ),
    R(
        "longterm-devdax",
        "longterm-pin",
        "ok",
        "Device-DAX pages have struct page and no filesystem owns their blocks: GUP with "
        "FOLL_LONGTERM allows them (RDMA to devdax works; observed for AF_XDP on Debian 6.1). The "
        "6.5 writable-file check passes too: dax_vm_ops has no page_mkwrite and the dax inode "
        "cannot write back (read in 6.12.117's drivers/dax/device.c and mm/vma.c).",
        "mm/gup.c check_vma_flags() (only fsdax refused)",
        "linux-source-6.12 mm/vma.c vma_needs_dirty_tracking()",
        "pmemkit VM run, Debian 6.1.0-57: longterm-pin on devdax -> ok",
        fs_dax="chardev",
    ),
    R(
        "longterm-unguarded",
        "longterm-pin",
        "ok",
        "4.5-4.14: GUP pinned fsdax pages without complaint; the hazard this created is why "
        "get_user_pages_longterm() was added in 4.15.",
        "commit 'mm: introduce get_user_pages_longterm' (4.15)",
        since="4.5",
        before="4.15",
        fs_dax="pages",
    ),
    R(
        "iouring-fsdax-longterm",
        "iouring-fixed-buffer",
        "EOPNOTSUPP",
        "io_uring pins with FOLL_LONGTERM, which refuses filesystem-DAX vmas before io_uring's own "
        "checks run (6.1: pin_user_pages() first; 6.5+: the only check).",
        "linux-source-6.1 io_uring/rsrc.c io_sqe_buffer_register() -> pin_user_pages(FOLL_LONGTERM)",
        "linux-source-6.12 io_uring/memmap.c io_pin_pages(), mm/gup.c check_vma_flags()",
        fs_dax="pages",
    ),
    R(
        "iouring-file-backed-refused",
        "iouring-fixed-buffer",
        "EOPNOTSUPP",
        "Up to 6.4 io_uring refuses fixed buffers backed by any file other than shmem/hugetlb: "
        "device-DAX and page-cache files alike (observed on Debian 6.1).",
        "linux-source-6.1 (6.1.192) io_uring/rsrc.c io_pin_pages() (called by "
        "io_sqe_buffer_register()): !vma_is_shmem && !is_file_hugepages -> ERR_PTR(-EOPNOTSUPP); "
        "traced on Debian 6.1.0-57 (--trace-decisions): io_pin_pages() returned 0xffffffffffffffa1",
        "pmemkit VM run, Debian 6.1.0-57: io_uring on devdax and page cache -> EOPNOTSUPP",
        since="5.1",
        before="6.5",
        fs_dax=("chardev", "none"),
    ),
    R(
        "iouring-devdax",
        "iouring-fixed-buffer",
        "ok",
        "From 6.5 io_uring leaves the vma checks to GUP, and FOLL_LONGTERM allows device-DAX "
        "(not fsdax, not a dirty-tracked file): read in 6.12.117's source; the 6.5 bound is the "
        "commit's merge window, and no VM run has mapped devdax under io_uring yet.",
        "linux-source-6.12 io_uring/memmap.c io_pin_pages(): pin_user_pages_fast(FOLL_WRITE | "
        "FOLL_LONGTERM), no vma check of its own",
        "linux-source-6.12 mm/gup.c check_vma_flags(): vma_is_fsdax() false for a character device; "
        "writable_file_mapping_allowed() -> mm/vma.c vma_needs_dirty_tracking() false",
        "linux-source-6.12 drivers/dax/device.c dax_vm_ops (no page_mkwrite/pfn_mkwrite), dax_open() "
        "(f_mapping of the dax pseudo-fs inode: no writeback)",
        "commit 'io_uring: rsrc: delegate VMA file-backed check to GUP' (6.5)",
        since="6.5",
        fs_dax="chardev",
    ),
    R(
        "fork-ram",
        "fork-cow",
        "ok",
        "Copy-on-write after fork of page-cache or anonymous memory is ordinary RAM behaviour "
        "(observed on Debian 6.1).",
        "mm/memory.c copy_page_range(), do_wp_page()",
        "pmemkit VM run, Debian 6.1.0-57: fork-cow on anonymous and page cache -> ok",
        fs_dax=RAM_BACKED,
    ),
    R(
        "fork-devdax",
        "fork-cow",
        "EINVAL",
        "Device-DAX refuses MAP_PRIVATE, so the copy-on-write mapping to fork cannot even be made: "
        "mmap() fails with EINVAL (was n/a; changed after pmemkit's VM on Debian 6.1.0-56 observed EINVAL).",
        "drivers/dax/device.c check_vma()",
        "pmemkit VM run, Debian 6.1.0-56 (6.1.192), nvdimm devdax: mmap(MAP_PRIVATE) -> EINVAL",
        fs_dax="chardev",
    ),
    R(
        "fork-pageless",
        "fork-cow",
        "EFAULT",
        "The 4.16 commit lists fork() among what breaks on page-less DAX; the exact errno is "
        "inferred, to be confirmed by the VM.",
        REQ_PAGE,
        SEED,
        status="I",
        fs_dax="pageless",
    ),
    R(
        "fork-pages",
        "fork-cow",
        "ok",
        "With struct page, fork and copy-on-write of a private DAX mapping work like RAM "
        "(observed on Debian 6.1 for fsdax and raw memmap/virtio-pmem).",
        "mm/memory.c copy_page_range()",
        "pmemkit VM run, Debian 6.1.0-57: fork-cow on fsdax -> ok",
        SEED,
        fs_dax="pages",
    ),
    R(
        "madvise-devmem",
        "madvise",
        "EINVAL",
        "MADV_DONTNEED refuses VM_PFNMAP vmas (madvise_dontneed_free_valid_vma()), so madvise on "
        "/dev/mem fails with EINVAL (observed on Debian 6.1). Was cited as can_madv_lru_vma(), which "
        "only MADV_COLD/MADV_PAGEOUT call; a --trace-decisions run named the real check.",
        "linux-source-6.1 (6.1.192) mm/madvise.c madvise_dontneed_free_valid_vma(): VM_PFNMAP "
        "(VM_LOCKED unless MADV_DONTNEED_LOCKED) -> false, madvise_dontneed_free() -> -EINVAL; the "
        "same in linux-source-6.12",
        "pmemkit VM run, Debian 6.1.0-57: madvise on /dev/mem -> EINVAL",
        "pmemkit VM run, Debian 6.1.0-57, --trace-decisions: madvise_dontneed_free_valid_vma() "
        "returned false (raw %ax 0xd044400: a bool is the low byte only), do_madvise() -EINVAL",
        fs_dax="devmem",
    ),
    R(
        "madvise",
        "madvise",
        "ok",
        "MADV_DONTNEED and MADV_HUGEPAGE are accepted on DAX, page-cache and anonymous vmas "
        "(observed on Debian 6.1).",
        "mm/madvise.c madvise_dontneed_free(), mm/khugepaged.c hugepage_madvise()",
        "pmemkit VM run, Debian 6.1.0-57: madvise -> ok",
    ),
    R(
        "mremap",
        "mremap",
        "ok",
        "Moving a mapping without growing it (MREMAP_MAYMOVE, same size) only moves page-table "
        "entries; VM_PFNMAP is refused only when it grows (observed ok on Debian 6.1, /dev/mem too).",
        "mm/mremap.c vma_to_resize(): VM_DONTEXPAND|VM_PFNMAP only when new_len > old_len",
        "pmemkit VM run, Debian 6.1.0-57: mremap -> ok",
    ),
    R(
        "io-no-file",
        SPLICE_SENDFILE + ("copy-file-range",),
        "n/a",
        "Anonymous memory and /dev/mem have no file on a filesystem to copy from.",
        "fs/splice.c, fs/read_write.c",
        fs_dax=("anonymous", "devmem"),
    ),
    R(
        "io-devdax-no-read",
        SPLICE_SENDFILE + ("copy-file-range",),
        "EINVAL",
        "Device-DAX has no read/write/splice file operations (pread gives EINVAL on 6.1); "
        "splice, sendfile and copy_file_range on it are inferred to fail the same way.",
        "drivers/dax/device.c dax_fops",
        VM61 + " (pread -> EINVAL)",
        status="I",
        since="4.5",
        fs_dax="chardev",
    ),
    R(
        "cfr-absent",
        ("copy-file-range", "d2d-blockdev-copy-file-range", "d2d-fs-dax-copy-file-range"),
        "ENOSYS",
        "copy_file_range(2) arrived in 4.5.",
        "commit 'vfs: add copy_file_range syscall and vfs helper' (4.5)",
        before="4.5",
    ),
    R(
        "io-file-to-file",
        SPLICE_SENDFILE + ("copy-file-range",),
        "ok",
        "File to file (same filesystem) these copy through the kernel: read_iter/splice_read of "
        "the DAX file copies from pmem via the kernel mapping (dax_iomap_rw), or from the page "
        "cache; no user mapping of pmem is pinned, so struct page is not needed (corrects the "
        "former EFAULT for page-less DAX: dax.rst's sendfile/splice shortcoming is about a "
        "page-less *buffer*). Inferred, to be confirmed by the VM.",
        "linux-source-6.1 fs/splice.c generic_file_splice_read(): iov_iter_pipe() + call_read_iter() "
        "(kernel pipe pages, no user buffer to pin)",
        "linux-source-6.1 fs/ext4/file.c ext4_file_read_iter(): IS_DAX -> ext4_dax_read_iter() -> "
        "dax_iomap_rw()",
        "linux-source-6.1 fs/read_write.c generic_copy_file_range() -> do_splice_direct() (same sb)",
        status="I",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "queue-dax-raw-nfit-4.16",
        "stack-queue-dax",
        "ok",
        "4.16-4.17: the pmem driver still set QUEUE_FLAG_DAX on page-less raw namespaces (fixed by "
        "'pmem: only set QUEUE_FLAG_DAX for fsdax mode', 4.18), and dm copied it, so queue/dax "
        "reads 1 though a mount refuses DAX. Inferred, to be confirmed.",
        "commit 'pmem: only set QUEUE_FLAG_DAX for fsdax mode' (4.18)",
        DM_TABLE,
        status="I",
        since="4.16",
        before="4.18",
        memmap="none",
        mode="raw",
        stack=("none", *DM),
    ),
    R(
        "queue-dax-yes",
        "stack-queue-dax",
        "ok",
        "The device (bare, or the stack over two such devices) advertises DAX: queue/dax reads 1 "
        "exactly when a filesystem on it gets a DAX mapping (the stack-dax rule above decided).",
        "block/blk-sysfs.c queue_dax_show() (QUEUE_FLAG_DAX; BLK_FEAT_DAX from 6.11)",
        DM_TABLE,
        fs_dax=("pages", "pageless"),
    ),
    R(
        "queue-dax-no",
        "stack-queue-dax",
        "fallback",
        "The device does not advertise DAX (queue/dax=0): md never sets it, dm only when every "
        "member has it, pmem only with struct page (since 4.16); a filesystem on it gets the page cache.",
        "block/blk-sysfs.c queue_dax_show()",
        "drivers/md/md.c (no dax_device)",
        DM_TABLE,
        fs_dax="none",
    ),
    R(
        "stack-copy-devdax",
        "stack-copy",
        "n/a",
        "Device-DAX has no block device: there is no sector I/O path to copy through (pread on "
        "/dev/daxX.Y gives EINVAL).",
        "drivers/dax/device.c dax_fops",
        VM61 + " (pread -> EINVAL)",
        fs_dax="chardev",
    ),
    R(
        "stack-copy-block-io",
        "stack-copy",
        "ok",
        "Sector-to-sector I/O (an O_DIRECT copy between the device or stack and another device) "
        "moves data in bios whose pages are the caller's DRAM buffer; md/dm only remap sectors and "
        "the pmem driver copies to and from pmem through its kernel mapping. No pmem page reaches "
        "the MMU or get_user_pages(), so the copy works whether or not the namespace has struct "
        "page (raw NFIT, BTT, fsdax alike): the seed mail's 'hidden behind a RAID abstraction, no "
        "struct page needed'. Pages are needed only when user space maps the pmem. Inferred from "
        "the block path; to be confirmed by the VM.",
        "drivers/nvdimm/pmem.c pmem_submit_bio(), pmem_do_read()/pmem_do_write() (kernel mapping)",
        "drivers/md/dm-linear.c linear_map() (sector remap only)",
        "drivers/md/raid0.c, drivers/md/raid1.c make_request (sector remap / mirror)",
        "block/fops.c blkdev_direct_IO() (pins the user's buffer, not the device)",
        SEED,
        status="I",
    ),
    R(
        "d2d-blockdev-cfr-not-regular",
        "d2d-blockdev-copy-file-range",
        "EINVAL",
        "copy_file_range(2) copies only between regular files: two block devices are refused "
        "with -EINVAL before any data moves.",
        "linux-source-6.1 and 6.12 fs/read_write.c generic_file_rw_checks(): !S_ISREG -> -EINVAL",
        "commit 'vfs: add copy_file_range syscall and vfs helper' (4.5: the same S_ISREG check)",
    ),
    R(
        "d2d-blockdev",
        D2D_BLOCKDEV,
        "ok",
        "Block device to block device: O_DIRECT through an anonymous buffer, sendfile and splice "
        "(def_blk_fops splice_read/splice_write) and buffered copies move data in bios and page "
        "cache pages of DRAM; the pmem itself is never mapped to user space, so it needs no struct "
        "page (the seed mail's 'hidden behind the block layer'). Inferred from the block path.",
        "linux-source-6.1 block/fops.c def_blk_fops (.splice_read, .splice_write)",
        "drivers/nvdimm/pmem.c pmem_submit_bio()",
        SEED,
        status="I",
    ),
    R(
        "d2d-files-cfr-exdev-5.10-stable",
        "d2d-fs-dax-copy-file-range",
        "EXDEV",
        "5.10 stable from 5.10.160 carries the backport of 868f9f2f8e00 (with 10bc8e4af659, which "
        "adds COPY_FILE_SPLICE): a cross-superblock copy_file_range() between filesystems without "
        "->copy_file_range (ext4, xfs) is refused with -EXDEV, as in 5.19+. Observed EXDEV on "
        "Debian 5.10.0-46 (5.10.262). 5.10.0-5.10.159 keep the 5.3 splice fallback.",
        "linux-source-5.10 (5.10.262) fs/read_write.c generic_copy_file_checks(): no "
        "COPY_FILE_SPLICE, no ->copy_file_range and i_sb differs -> -EXDEV",
        "Debian linux 5.10.162-1 changelog, section ChangeLog-5.10.160: 'vfs: fix "
        "copy_file_range() regression in cross-fs copies', 'vfs: fix copy_file_range() averts "
        "filesystem freeze protection'",
        "stable review '[PATCH 5.10 02/15] vfs: fix copy_file_range() regression in cross-fs "
        "copies' (commit 868f9f2f8e00 upstream, 2022-12-15)",
        "pmemkit VM run, Debian 5.10.0-46 (5.10.262), --suite d2d: ext4 to ext4 EXDEV",
        since="5.10.160",
        before="5.11",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "d2d-files-cfr-exdev-5.15-stable",
        "d2d-fs-dax-copy-file-range",
        "EXDEV",
        "5.15 stable carries the backport of 868f9f2f8e00 from 5.15.53 (its author's word on the "
        "stable list), so cross-filesystem copies are refused with -EXDEV there too. Inferred "
        "from that mail, not read in a 5.15 source; to be confirmed.",
        "Amir Goldstein on stable@vger.kernel.org, 2022-12-13, re 10bc8e4af659 for 5.15.y: 'The "
        "regressing commit is in v5.15.53.'",
        status="I",
        since="5.15.53",
        before="5.16",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "d2d-files-cfr-cross-fs-allowed",
        "d2d-fs-dax-copy-file-range",
        "ok",
        "5.3-5.18 copy_file_range() fell back to a splice copy across filesystems "
        "(5dae222a5ff0 'vfs: allow copy_file_range to copy across devices') until 868f9f2f8e00 "
        "(5.19) refused cross-filesystem copies again; the 5.10.y and 5.15.y backports are the "
        "rules above; whether 5.4.y got the backport too is not known (answered ok). The 5.3 "
        "start is inferred, to be confirmed.",
        "commit 5dae222a5ff0 'vfs: allow copy_file_range to copy across devices' (5.3)",
        "commit 868f9f2f8e00 'vfs: fix copy_file_range() regression in cross-fs copies' (5.19; Go's "
        "internal/poll copy_file_range comment: 'Prior to Linux 5.19'), not 5.12",
        status="I",
        since="5.3",
        before="5.19",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "d2d-files-cfr-exdev",
        "d2d-fs-dax-copy-file-range",
        "EXDEV",
        "The d2d file copy goes between two filesystems (one per device); without COPY_FILE_SPLICE "
        "(an in-kernel flag) a cross-superblock copy_file_range() is refused with -EXDEV when the "
        "filesystem has no ->copy_file_range (ext4 and xfs have none).",
        "linux-source-6.1 and 6.12 fs/read_write.c vfs_copy_file_range(): i_sb differs -> -EXDEV",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "d2d-files",
        D2D_FILES,
        "ok",
        "File to file between the two filesystems (O_DIRECT through an anonymous buffer, sendfile, "
        "splice, buffered) copies through read_iter/write_iter: DAX files via the kernel mapping, "
        "page-cache files via the page cache; nothing needs the pmem's struct page. Inferred.",
        "fs/dax.c dax_iomap_rw()",
        "fs/splice.c do_splice_direct()",
        status="I",
        fs_dax=FILE_MAPPED,
    ),
)


# ---- poison (issue 12 item 1): memory failure on DAX pages; additive block ----------------------
MF_61 = "linux-source-6.1 and 6.12 mm/memory-failure.c"
VM_POISON_RUN = "pmemkit VM run, Debian 6.1.0-57 (6.1.192-3), TCG, memmap 512M ext4 and xfs with DAX"
INJECT = (
    "linux-source-6.1 and 6.12 mm/madvise.c madvise_inject_error(): CAP_SYS_ADMIN, then "
    "get_user_pages_fast() of each page, then soft_offline_page() or memory_failure()"
)
NDCTL_POISON = (
    "ndctl test/dax-poison.c test_dax_poison() (github.com/pmem/ndctl 92d5203077553bfc): "
    "soft offline 'should always fail for dax', MADV_HWPOISON expects BUS_MCEERR_AR, then "
    "punch hole + pwrite + fault the page in again; skipped before 4.19"
)
MF_DEV_PAGEMAP = (
    "commit 6100e34b2526 'mm, memory_failure: Teach memory_failure() about dev_pagemap pages' (4.19)"
)
POISON_RULES: tuple[Rule, ...] = (
    R(
        "poison-gup-devmem",
        ("hwpoison-soft-offline", "hwpoison-sigbus"),
        "EFAULT",
        "madvise(MADV_HWPOISON / MADV_SOFT_OFFLINE) looks the page up with get_user_pages_fast(), "
        "which refuses the VM_IO|VM_PFNMAP /dev/mem vma with -EFAULT before memory_failure() runs: "
        "a page-less range cannot even be poisoned from user space.",
        INJECT,
        "linux-source-6.1 and 6.12 mm/gup.c check_vma_flags(): VM_IO | VM_PFNMAP -> -EFAULT",
        fs_dax="devmem",
    ),
    R(
        "poison-gup-pageless",
        ("hwpoison-soft-offline", "hwpoison-sigbus"),
        "EFAULT",
        "Page-less filesystem DAX (before 4.16) inserts pfns without struct page (VM_MIXEDMAP, "
        "special entries), which get_user_pages_fast() cannot return: inferred, to be confirmed.",
        INJECT,
        "fs/dax.c (before 4.16) vm_insert_mixed() of a pfn_t without PFN_DEV|PFN_MAP",
        status="I",
        fs_dax="pageless",
    ),
    R(
        "poison-no-signal",
        ("hwpoison-addr-lsb",),
        "n/a",
        "The page cannot be poisoned (get_user_pages_fast() fails), so no SIGBUS carries an si_addr_lsb.",
        INJECT,
        fs_dax=("devmem", "pageless"),
    ),
    R(
        "poison-not-attempted",
        POISON_OPERATIONS,
        "n/a",
        "The poison experiment poisons DAX pages only: on a page-cache or anonymous mapping it "
        "would take a DRAM page out of service, so it is not attempted (the guest records skipped).",
        "pmemkit guest/experiments/poison.py",
        fs_dax=("none", "anonymous"),
    ),
    R(
        "poison-recover-no-file",
        ("hwpoison-recover",),
        "n/a",
        "Recovery punches the poisoned block out of a file; device-dax has no file and no blocks "
        "to reallocate (a devdax page stays poisoned until the next boot).",
        NDCTL_POISON,
        "drivers/dax/device.c (no fallocate)",
        fs_dax=("chardev", "devmem"),
    ),
    R(
        "poison-soft-offline-dax",
        ("hwpoison-soft-offline",),
        "EIO",
        "soft_offline_page() takes only online pages: pfn_to_online_page() is NULL for ZONE_DEVICE "
        "(fsdax and devdax pages), so it returns -EIO.",
        f"{MF_61} soft_offline_page(): 'Only online pages can be soft-offlined (esp., not "
        "ZONE_DEVICE)' -> -EIO",
        NDCTL_POISON,
        since="6.1",
        fs_dax=WITH_PAGES,
    ),
    R(
        "poison-soft-offline-dax-older",
        ("hwpoison-soft-offline",),
        "EIO",
        "Before 6.1 the refusal is inferred to be the same -EIO (4.19's 'mm, madvise_inject_error: "
        "Disable MADV_SOFT_OFFLINE for ZONE_DEVICE pages'); not read in those trees, to be "
        "confirmed.",
        NDCTL_POISON,
        status="I",
        before="6.1",
        fs_dax=WITH_PAGES,
    ),
    R(
        "poison-sigbus-before-4.19",
        ("hwpoison-sigbus",),
        "EBUSY",
        "Before 4.19 memory_failure() did not know dev_pagemap pages: a ZONE_DEVICE page is an "
        "unknown page state (MF_IGNORED), madvise gets -EBUSY and no SIGBUS is sent. Inferred from "
        "the 4.19 commit and ndctl skipping its test before 4.19, to be confirmed.",
        MF_DEV_PAGEMAP,
        NDCTL_POISON,
        status="I",
        before="4.19",
        fs_dax=WITH_PAGES,
    ),
    R(
        "poison-lsb-before-4.19",
        ("hwpoison-addr-lsb",),
        "n/a",
        "No SIGBUS before 4.19 (see poison-sigbus-before-4.19), so no si_addr_lsb; inferred.",
        MF_DEV_PAGEMAP,
        status="I",
        before="4.19",
        fs_dax=WITH_PAGES,
    ),
    R(
        "poison-sigbus-dax",
        ("hwpoison-sigbus",),
        "ok",
        "memory_failure(): a ZONE_DEVICE pfn has no online page, so memory_failure_dev_pagemap() "
        "runs: the fsdax pgmap's ->memory_failure (pmem -> dax_holder_notify_failure(); ext4 has no "
        "holder, XFS needs rmapbt) or, on -EOPNOTSUPP, mf_generic_kill_procs(); both set "
        "MF_ACTION_REQUIRED|MF_MUST_KILL, so kill_proc() sends the caller (current) SIGBUS "
        "BUS_MCEERR_AR via force_sig_mceerr(), and action_result() logs 'recovery action for dax "
        "page: Recovered'.",
        f"{MF_61} memory_failure(), memory_failure_dev_pagemap(), mf_generic_kill_procs(), "
        "mf_dax_kill_procs(), kill_proc()",
        "linux-source-6.1 drivers/nvdimm/pmem.c pmem_pagemap_memory_failure()",
        MF_DEV_PAGEMAP,
        NDCTL_POISON,
        since="4.19",
        fs_dax=WITH_PAGES,
    ),
    R(
        "poison-lsb-misaligned",
        ("hwpoison-addr-lsb",),
        "fallback",
        "si_addr_lsb is the shift of the mapping the page sits in (dev_pagemap_mapping_shift() "
        "walks the page table: PUD, PMD or PTE); without 2 MiB alignment the page is PTE-mapped, "
        "so 12.",
        f"{MF_61} add_to_kill(), dev_pagemap_mapping_shift()",
        since="4.19",
        aligned_2m=False,
        fs_dax=WITH_PAGES,
    ),
    R(
        "poison-lsb-pmd",
        ("hwpoison-addr-lsb",),
        "ok",
        "An aligned DAX mapping with struct page is PMD-mapped (see pmd-ok), and "
        "dev_pagemap_mapping_shift() returns PMD_SHIFT for a devmap PMD: si_addr_lsb 21. The "
        "PMD-ness is the pmd-ok rule's assumption (2 MiB-aligned extents).",
        f"{MF_61} dev_pagemap_mapping_shift(): pmd_devmap() -> PMD_SHIFT",
        "fs/dax.c dax_iomap_pmd_fault(), drivers/dax/device.c dev_dax_huge_fault()",
        since="4.19",
        fs_dax=WITH_PAGES,
    ),
    R(
        "poison-recover-before-4.19",
        ("hwpoison-recover",),
        "ok",
        "Before 4.19 the page was never poisoned (see poison-sigbus-before-4.19), so punching and "
        "rewriting it simply works; inferred.",
        MF_DEV_PAGEMAP,
        status="I",
        before="4.19",
        fs_dax="pages",
    ),
    R(
        "poison-recover-fsdax",
        ("hwpoison-recover",),
        "ok",
        "The poisoned block is punched out of the file, rewritten (dax_iomap_rw() through the "
        "kernel mapping) and faults in again: fs/dax.c's fault path does not test PageHWPoison, "
        "and a software-injected poison sets no badblocks for pmem_dax_direct_access() to refuse. "
        "ndctl expects it; observed on 6.1 (pread and a new mapping read the rewritten data).",
        NDCTL_POISON,
        "linux-source-6.1 fs/dax.c (no PageHWPoison test), drivers/nvdimm/pmem.c "
        "__pmem_direct_access() (badblocks only)",
        f"{VM_POISON_RUN}, --suite poison: hwpoison-recover ok",
        since="4.19",
        fs_dax="pages",
    ),
    R(
        "poison-no-mapping",
        POISON_OPERATIONS,
        "n/a",
        "No user mapping of pmem exists here (no DAX, no device-dax), so nothing is poisoned.",
        "pmemkit guest/experiments/poison.py",
    ),
)
RULES = RULES + POISON_RULES
# ---- end poison -----------------------------------------------------------------------------------

# ---- peers (issue 12 item 2): the peer tests' cases; additive block ------------------------------
DAX_RW = (
    "linux-source-6.1 fs/dax.c dax_iomap_rw(): a DAX file's read/write (O_DIRECT or not) copies "
    "through the kernel mapping with copy_from_iter()/copy_to_iter(): no get_user_pages() of the "
    "user buffer, no block alignment"
)
NDCTL_REMAP = (
    "ndctl test/dax-pmd.c test_dax_remap() (github.com/pmem/ndctl 92d5203077553bfc): 4 KiB "
    "MREMAP_FIXED out of a 2 MiB mapping onto anonymous memory; 'mremap failed, that's ok too'; "
    "skipped before 5.8 ('kernel's prior to 5.8 may crash on this test')"
)
PEER_RULES: tuple[Rule, ...] = (
    R(
        "peer-remap-devdax",
        "mremap-partial-pmd",
        "EINVAL",
        "Moving 4 KiB out of a device-dax mapping splits the vma at an address not aligned to the "
        "device's 2 MiB alignment; dev_dax_may_split() refuses it with -EINVAL.",
        "linux-source-6.1 drivers/dax/device.c dev_dax_may_split(): !IS_ALIGNED(addr, align) -> "
        "-EINVAL, called by mm/mmap.c __split_vma() (vm_ops->may_split)",
        NDCTL_REMAP,
        since="6.1",
        fs_dax="chardev",
    ),
    R(
        "peer-remap-devdax-older",
        "mremap-partial-pmd",
        "EINVAL",
        "Before 6.1 the same refusal is inferred from the ->may_split hook (added for device-dax in "
        "the 5.x series); older kernels let the split happen and SIGBUS the 4 KiB fault (ndctl's "
        "expected SIGBUS). To be confirmed.",
        NDCTL_REMAP,
        status="I",
        before="6.1",
        fs_dax="chardev",
    ),
    R(
        "peer-remap-fs-before-5.8",
        "mremap-partial-pmd",
        "ok",
        "Before 5.8 ndctl does not attempt the partial remap of a DAX PMD (it may crash the "
        "kernel); the move is inferred to work as on later kernels, to be confirmed.",
        NDCTL_REMAP,
        status="I",
        before="5.8",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "peer-remap-fs",
        "mremap-partial-pmd",
        "ok",
        "A filesystem mapping may be split anywhere: mremap splits the DAX PMD (the page table "
        "entry moves, or the page faults in again at the new address) and the moved 4 KiB holds the "
        "file's data and takes writes (ndctl reads back 0xAA).",
        "mm/mremap.c move_vma(), mm/huge_memory.c __split_huge_pmd() (DAX PMDs are split by zapping them)",
        NDCTL_REMAP,
        since="5.8",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "peer-unfaulted-pageless",
        "odirect-write-from-dax:unfaulted",
        "EFAULT",
        "Page-less DAX has no page for get_user_pages() to return, faulted or not; inferred, to be "
        "confirmed.",
        "mm/gup.c __get_user_pages()",
        SEED,
        status="I",
        fs_dax="pageless",
    ),
    R(
        "peer-unfaulted",
        "odirect-write-from-dax:unfaulted",
        "ok",
        "get_user_pages() faults in a page it does not find mapped (faultin_page()), so an O_DIRECT "
        "write from a never-touched DAX mapping pins its pages like a touched one (ndctl dax-pmd.c "
        "test_dax_directio() case 0).",
        "linux-source-6.1 mm/gup.c __get_user_pages() -> faultin_page()",
        "ndctl test/dax-pmd.c test_dax_directio() (github.com/pmem/ndctl 92d5203077553bfc)",
        fs_dax=("pages", "chardev", "none"),
    ),
    R(
        "peer-buffered-write",
        "buffered-write-from-dax",
        "ok",
        "A buffered write(2) copies from the user mapping with copy_from_user(): page tables, not "
        "struct page, so every mapping kind works (fstests generic/413 -b).",
        "mm/filemap.c generic_perform_write() -> copy_page_from_iter_atomic()",
        "fstests generic/413 (-b: buffered I/O from a DAX mapping)",
        fs_dax=MAPPED + ("none",),
    ),
    R(
        "peer-odirect-dax-dest",
        ("odirect-dax-to-dax", "odirect-dax-to-dax:subpage"),
        "ok",
        "O_DIRECT into a DAX file is not direct I/O: the DAX write path copies from the source "
        "mapping through page tables, so a DAX source and any length (1 KiB too) work; without DAX "
        "it is ordinary O_DIRECT with a page-cache buffer (fstests generic/413 'dio both dax').",
        DAX_RW,
        "fstests generic/413 (dio both dax; 1 KiB lengths)",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "peer-zero-page",
        "zero-page-after-pwrite",
        "ok",
        "A read fault on a hole maps the (huge) zero page; a write(2) that allocates blocks there "
        "tears that mapping down (IOMAP_F_NEW -> invalidate_inode_pages2_range()), so the mapping "
        "then shows the new data (fstests generic/428, the regression test for 'dax: fix data "
        "corruption due to stale mmap reads').",
        "linux-source-6.1 fs/dax.c dax_iomap_iter(): 'Write can allocate block for an area which "
        "has a hole page mapped into page tables. We have to tear down these mappings'",
        "fstests generic/428",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "peer-punch-mapped",
        "punch-while-mapped",
        "ok",
        "Punching a hole unmaps the range from every mapping (DAX: after dax_layout_busy_page() "
        "finds no pinned page) and frees the blocks; the next fault maps a hole, which reads "
        "zeros (observed on 6.1; the paths are named, not read line by line).",
        "fs/ext4/inode.c ext4_punch_hole(), fs/xfs/xfs_file.c xfs_file_fallocate() -> "
        "truncate_pagecache_range(); fs/dax.c dax_layout_busy_page()",
        "fstests generic/438 (fallocate under a mapping)",
        f"{VM_POISON_RUN}, --suite peers: punch-while-mapped ok",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "peer-exec",
        "exec-from-dax",
        "ok",
        "exec maps the binary's text MAP_PRIVATE from the DAX file and faults it like any private "
        "file mapping (fstests generic/452; observed on 6.1).",
        "fs/binfmt_elf.c elf_map(), fs/dax.c dax_iomap_fault()",
        "fstests generic/452",
        f"{VM_POISON_RUN}, --suite peers: exec-from-dax ok",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "peer-cow-race-before-4.14",
        "private-pmd-cow-race",
        "fallback",
        "Before 'dax: Fix race between colliding PMD & PTE entries' a PMD read fault and a PTE COW "
        "fault on one private DAX range could collide ('bad pmd' messages, stale entries); the "
        "4.14 version is inferred, to be confirmed.",
        "fstests generic/437 (t_mmap_cow_race): regression test for 'mm: avoid spurious 'bad pmd' "
        "warning messages' and 'dax: Fix race between colliding PMD & PTE entries'",
        status="I",
        before="4.14",
        fs_dax=("pages",),
    ),
    R(
        "peer-cow-race",
        "private-pmd-cow-race",
        "ok",
        "With the fix, fs/dax.c retries a PMD fault that finds PTEs (and a PTE fault that finds a "
        "PMD) instead of colliding, so private data stays coherent and nothing is logged.",
        "fstests generic/437 (t_mmap_cow_race): regression test for 'mm: avoid spurious 'bad pmd' "
        "warning messages' and 'dax: Fix race between colliding PMD & PTE entries'",
        "linux-source-6.1 fs/dax.c dax_iomap_pmd_fault() (pmd_devmap / pmd_trans_huge checks, "
        "VM_FAULT_FALLBACK)",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "peer-pin-blockmap",
        tuple(f"odirect-pin-blockmap:{c}" for c in ("punch", "zero", "collapse", "truncate")),
        "ok",
        "A block-map change of a DAX file first breaks layouts: it waits until no page of the range "
        "is pinned (dax_layout_busy_page_range(), ext4_break_layouts() / xfs_break_layouts()), "
        "then changes the map; an O_DIRECT pin delays it but never makes it fail (fstests "
        "generic/503). Observed ok on 6.1 (ext4, xfs); that each change overlapped a live pin is "
        "not proven (metrics dio_rounds: truncate won before the first pin).",
        "fs/dax.c dax_layout_busy_page_range(); fs/ext4/inode.c ext4_break_layouts() (4.19, "
        "'ext4: handle layout changes to pinned DAX pages'); fs/xfs/xfs_file.c xfs_break_layouts()",
        "fstests generic/503 (DMA and direct I/O vs punch, zero, truncate, collapse on DAX)",
        f"{VM_POISON_RUN}, --suite peers: odirect-pin-blockmap punch, zero, collapse, truncate ok",
        fs_dax=FILE_MAPPED,
    ),
    R(
        "peer-not-run",
        PEER_OPERATIONS,
        "n/a",
        "The peers experiment runs on DAX filesystems (all cases) and device-dax (the mapping "
        "cases); elsewhere the case is not attempted.",
        "pmemkit guest/experiments/peers.py",
    ),
)
RULES = RULES + PEER_RULES
# ---- end peers ------------------------------------------------------------------------------------

# ---- crash (issue 12 items 4-5): what survives a SIGKILL of qemu; additive block -------------------
# Outcomes of crash-verify: ok = survived (file, size and every block as written), ENOENT = lost
# (no such file after journal/log recovery), short = partial (the file is there, its size or a block
# is not). The kill of qemu keeps every store the guest made into the NVDIMM (a MAP_SHARED mapping
# of the host file outlives qemu); what it loses is what the guest kernel had not written there yet:
# metadata in its running journal transaction (ext4/jbd2) or its in-memory log (XFS CIL).
SRC61 = "linux-source-6.1 (Debian 6.1.192-3)"
MAP_SYNC_FAULT = (
    f"{SRC61} fs/dax.c dax_iomap_pte_fault()/dax_iomap_pmd_fault() -> dax_fault_iter(): "
    "dax_fault_is_synchronous() (IOMAP_WRITE, VM_SYNC and IOMAP_F_DIRTY) -> "
    "dax_fault_synchronous_pfnp() returns VM_FAULT_NEEDDSYNC without mapping the page"
)
SYNC_FAULT_FINISH = (
    f"{SRC61} fs/dax.c dax_finish_sync_fault(): vfs_fsync_range(file, start, end, 1) before "
    "dax_insert_pfn_mkwrite(); called by fs/ext4/file.c ext4_dax_huge_fault() and "
    "fs/xfs/xfs_file.c __xfs_filemap_fault() on VM_FAULT_NEEDDSYNC"
)
DIRTY_METADATA = (
    f"{SRC61} fs/ext4/inode.c ext4_set_iomap(): IOMAP_F_DIRTY when ext4_inode_datasync_dirty() or the "
    "write extends past i_size; fs/xfs/xfs_iomap.c xfs_bmbt_to_iomap(): IOMAP_F_DIRTY when the "
    "inode is pinned with fsync-relevant fields logged"
)
MSYNC = f"{SRC61} mm/msync.c SYSCALL_DEFINE3(msync): MS_SYNC on a shared file vma -> vfs_fsync_range()"
FSYNC = (
    f"{SRC61} fs/ext4/fsync.c ext4_sync_file(): file_write_and_wait_range() (-> ext4_dax_writepages() "
    "-> fs/dax.c dax_writeback_mapping_range(): CPU cache write-back of dirty DAX entries) then "
    "ext4_fsync_journal() -> jbd2_complete_transaction(); fs/xfs/xfs_file.c xfs_file_fsync(): "
    "file_write_and_wait_range() (-> xfs_dax_writepages() -> dax_writeback_mapping_range()) then "
    "xfs_fsync_flush_log() -> xfs_log_force_seq(XFS_LOG_SYNC)"
)
COMMIT_TIMERS = (
    f"{SRC61} include/linux/jbd2.h JBD2_DEFAULT_MAX_COMMIT_AGE 5 (s, ext4's default commit=); "
    "fs/xfs/xfs_globals.c syncd_timer 30*100 (xfs_syncd_centisecs: the log worker forces the log "
    "every 30 s, fs/xfs/xfs_log.c xfs_log_work_queue())"
)
MAP_SYNC_4_15 = (
    "commit 'mm: Define MAP_SYNC and VM_SYNC flags' (4.15, with MAP_SHARED_VALIDATE; version inferred)"
)
CRASH_SUITE_SRC = "pmemkit guest/experiments/crash.py (the unsynced way written last, then SIGKILL)"
CRASH_RULES: tuple[Rule, ...] = (
    R(
        "crash-map-sync-absent",
        ("crash-write:map-sync", "crash-verify:map-sync"),
        "EINVAL",
        "MAP_SHARED_VALIDATE and MAP_SYNC arrive in 4.15; before, flags 0x03 (MAP_SHARED|MAP_PRIVATE) "
        "are refused by do_mmap() with -EINVAL and nothing is written this way. Inferred.",
        MAP_SYNC_4_15,
        status="I",
        before="4.15",
    ),
    R(
        "crash-map-sync-no-dax",
        ("crash-write:map-sync", "crash-verify:map-sync"),
        "EOPNOTSUPP",
        "MAP_SYNC is refused on a file that is not DAX: ext4_file_mmap()/xfs_file_mmap() call "
        "daxdev_mapping_supported(), false without a DAX mapping, and return -EOPNOTSUPP.",
        f"{SRC61} fs/ext4/file.c ext4_file_mmap(), fs/xfs/xfs_file.c xfs_file_mmap(): "
        "!daxdev_mapping_supported() -> -EOPNOTSUPP",
        f"{SRC61} mm/mmap.c do_mmap(): MAP_SHARED_VALIDATE flags outside mmap_supported_flags -> -EOPNOTSUPP",
        since="4.15",
        fs_dax=("none",),
    ),
    R(
        "crash-map-sync-virtio-pmem",
        ("crash-write:map-sync", "crash-verify:map-sync"),
        "EOPNOTSUPP",
        "virtio-pmem is an asynchronous region (its flush is a request to the host), so its DAX "
        "device is not synchronous and MAP_SYNC is refused: daxdev_mapping_supported() returns "
        "dax_synchronous() = false, and ext4_file_mmap()/xfs_file_mmap() return -EOPNOTSUPP. Nothing "
        "is written this way on virtio-pmem.",
        f"{SRC61} drivers/nvdimm/virtio_pmem.c virtio_pmem_probe(): set_bit(ND_REGION_ASYNC)",
        f"{SRC61} drivers/nvdimm/region_devs.c is_nvdimm_sync(), drivers/nvdimm/pmem.c "
        "pmem_attach_disk(): set_dax_synchronous() only for a synchronous region",
        f"{SRC61} include/linux/dax.h daxdev_mapping_supported()",
        since="6.1",
        source="virtio-pmem",
        fs_dax=("pages",),
    ),
    R(
        "crash-map-sync-virtio-pmem-older",
        ("crash-write:map-sync", "crash-verify:map-sync"),
        "EOPNOTSUPP",
        "5.3-6.0: virtio-pmem came with the DAX sync flag (5.3), so the same refusal is inferred.",
        "commit 'virtio-pmem: Add virtio pmem driver' (5.3)",
        status="I",
        before="6.1",
        source="virtio-pmem",
        fs_dax=("pages",),
    ),
    R(
        "crash-write",
        CRASH_WRITE_OPERATIONS,
        "ok",
        "A new file extended with ftruncate and filled through a shared mapping: every write fault "
        "allocates blocks (on DAX, zeroed pmem blocks mapped straight into the process).",
        f"{SRC61} fs/dax.c dax_iomap_fault()",
        f"{SRC61} mm/mmap.c do_mmap()",
        fs_dax=("pages", "pageless", "none"),
    ),
    R(
        "crash-remount",
        "crash-remount",
        "ok",
        "The filesystem boot 1 made is mounted again on the same namespace after the kill; ext4 "
        "replays its journal (jbd2_journal_recover()), XFS its log (xlog_recover()), then the DAX "
        "mount is the same as boot 1's.",
        f"{SRC61} fs/ext4/super.c ext4_load_journal(), fs/xfs/xfs_super.c xfs_fs_fill_super() -> "
        "xfs_log_mount()",
        fs_dax=("pages",),
    ),
    R(
        "crash-map-sync-durable",
        "crash-verify:map-sync",
        "ok",
        "MAP_SYNC: a write fault that needs metadata (a new block, i_size) is synchronous: the "
        "fault handler fsyncs the faulting range (vfs_fsync_range(), datasync) before it maps the "
        "page, so the allocation, the size and (with them, inferred: jbd2 commits the whole "
        "transaction, XFS forces the log to the inode's sequence) the file's creation are on the "
        "media before the first store. The data are the process's stores into pmem; a SIGKILL of "
        "qemu keeps them in the host file. Survived.",
        MAP_SYNC_FAULT,
        SYNC_FAULT_FINISH,
        DIRTY_METADATA,
        since="6.1",
        fs_dax=("pages",),
    ),
    R(
        "crash-map-sync-durable-older",
        "crash-verify:map-sync",
        "ok",
        "4.15-6.0: the same synchronous-fault path (dax_finish_sync_fault() since 4.15) is "
        "inferred; read in 6.1 only.",
        MAP_SYNC_4_15,
        SYNC_FAULT_FINISH,
        status="I",
        since="4.15",
        before="6.1",
        fs_dax=("pages",),
    ),
    R(
        "crash-msync-durable",
        "crash-verify:msync",
        "ok",
        "msync(MS_SYNC) is fsync of the range: the CPU caches over the dirty DAX entries are written "
        "back, then the journal commits (ext4) or the log is forced (XFS), with the block "
        "allocation, i_size and the file's creation in it. Survived.",
        MSYNC,
        FSYNC,
        since="6.1",
        fs_dax=("pages", "none"),
    ),
    R(
        "crash-msync-durable-older",
        "crash-verify:msync",
        "ok",
        "Before 6.1 msync -> fsync is inferred to commit the same way (read in 6.1 only).",
        MSYNC,
        status="I",
        before="6.1",
        fs_dax=("pages", "pageless", "none"),
    ),
    R(
        "crash-no-sync-lost",
        "crash-verify:no-sync",
        "ENOENT",
        "No sync: the kernel promises nothing. Predicted: lost. The file's creation, size and "
        "blocks sit in ext4's running journal transaction (committed after 5 s) or XFS's CIL "
        "(forced by the 30 s log worker); pmemkit writes the unsynced file last and is killed "
        "within about a second, so no commit holds it and recovery leaves no such file. A kill "
        "later than those timers would find it (survived): that is timing, not a promise. Inferred.",
        COMMIT_TIMERS,
        CRASH_SUITE_SRC,
        status="I",
        fs_dax=("pages", "pageless", "none"),
    ),
    R(
        "crash-no-dax-mapping",
        CRASH_OPERATIONS,
        "n/a",
        "The crash suite writes files on a DAX filesystem of an NVDIMM; there is none here.",
        CRASH_SUITE_SRC,
    ),
)
RULES = RULES + CRASH_RULES
# ---- end crash ------------------------------------------------------------------------------------
# ---- CXL pmem as a source (issue 16; the cxl helper's block, kept apart from the table above) --
# What CXL shares with NFIT: from the nd region on it is libnvdimm's namespace layer, so the pfn
# (fsdax, map=mem|dev), dax (devdax) and btt rules above answer for it unchanged. What differs
# is before the namespace: the region is made by `cxl create-region` on a CXL root decoder (no
# NFIT), which needs the region code, and a raw namespace has no struct page like NFIT's. Each
# CXL rule is inserted ahead of the first rule answering the same question, so it decides first.
CXL_RULES: tuple[Rule, ...] = (
    R(
        "cxl-pmem-region-6.0",
        "available",
        "no",
        "CXL pmem reaches libnvdimm only as a region: user-created regions on a root decoder "
        "(drivers/cxl/core/region.c, CONFIG_CXL_REGION) and the region-to-nd_region bridge "
        "(drivers/cxl/pmem.c cxl_pmem_region_probe()) arrive in 6.0; before it a CXL memdev gives "
        "no pmem namespace. The 6.0 bound is inferred from the merge history (Debian's 5.10 kernel "
        "has no CXL options at all); region creation observed on Debian 6.1 in pmemkit's VM.",
        "drivers/cxl/core/region.c (6.0, 'cxl/region: Add region creation support')",
        "drivers/cxl/pmem.c cxl_pmem_region_probe() (6.0)",
        status="I",
        before="6.0",
        source="cxl",
    ),
    R(
        "raw-cxl-no-pages",
        "struct-page",
        "none",
        "A CXL pmem region sets ND_REGION_CXL and ND_REGION_PERSIST_MEMCTRL but not "
        "ND_REGION_PAGEMAP, so pmem_should_map_pages() is false and a raw namespace has no struct "
        "page, as on NFIT. Read in drivers/cxl/pmem.c; to be confirmed in the VM.",
        "drivers/cxl/pmem.c cxl_pmem_region_probe(): set_bit(ND_REGION_CXL), "
        "set_bit(ND_REGION_PERSIST_MEMCTRL), no ND_REGION_PAGEMAP",
        SHOULD_MAP + ": ND_REGION_PAGEMAP",
        status="I",
        mode="raw",
        source="cxl",
    ),
)


def _with_cxl(rules: tuple[Rule, ...], extra: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """`rules` with each of `extra` placed just before the first rule answering the same question."""
    out = list(rules)
    for rule in extra:
        at = next((i for i, r in enumerate(out) if set(r.asks) & set(rule.asks)), len(out))
        out.insert(at, rule)
    return tuple(out)


RULES = _with_cxl(RULES, CXL_RULES)
FACTS["source"] = (*FACTS["source"], "cxl")


QUESTION_NAMES = QUESTIONS + MODEL_OPERATIONS


@cache
def rules_for(ask: str) -> tuple[Rule, ...]:
    """The rules answering one question or operation, in decision order."""
    return tuple(rule for rule in RULES if ask in rule.asks)


def rule_by_name(name: str) -> Rule:
    """Look a rule up by name (names are unique; tests check it)."""
    for rule in RULES:
        if rule.name == name:
            return rule
    raise KeyError(name)


def decide(ask: str, kernel: Kernel, facts: dict[str, object]) -> Rule:
    """The first rule for `ask` that holds for this kernel and these facts."""
    for rule in rules_for(ask):
        if rule.matches(kernel, facts):
            return rule
    raise LookupError(f"no rule answers {ask!r} for kernel {kernel} and {facts}")


# ---- who decides: the kernel function each refusing rule cites, per kernel range (issue 14) ----


@dataclass(frozen=True)
class Decider:
    """The kernel function a rule's refusal comes from on a kernel range: what a traced run must name.

    `returns` is its C return type as a kretprobe reads it (`int`, `long`, `pointer`, `bool`);
    `callers` (nearest first) stand in for it when the function is inlined or not in kallsyms.
    """

    function: str
    returns: str
    source: str
    callers: tuple[str, ...] = ()
    since: str | None = None
    before: str | None = None
    status: str = "V"

    def covers(self, kernel: Kernel) -> bool:
        since = parse_kernel(self.since) if self.since else None
        before = parse_kernel(self.before) if self.before else None
        return (since is None or not kernel < since) and (before is None or kernel < before)

    def candidate(self) -> dict[str, object]:
        """What the guest's tracer arms (plan.json: no model objects cross into the guest)."""
        return {"function": self.function, "returns": self.returns, "callers": list(self.callers)}


_GUP_CALLERS = ("__get_user_pages", "__get_user_pages_locked", "__gup_longterm_locked")
_CHECK_VMA_FLAGS_61 = "linux-source-6.1 (6.1.192) mm/gup.c check_vma_flags(), called by __get_user_pages()"
#: rule name -> the deciding function per kernel range. A refusing rule missing here cites no
#: function yet (its report cell says so).
DECIDERS: dict[str, tuple[Decider, ...]] = {
    "gup-devmem": (
        Decider(
            "check_vma_flags",
            "int",
            f"{_CHECK_VMA_FLAGS_61}: VM_IO | VM_PFNMAP -> -EFAULT; the same test in linux-source-6.12",
            _GUP_CALLERS,
        ),
    ),
    "longterm-fsdax-foll-longterm": (
        Decider(
            "check_vma_flags",
            "int",
            f"{_CHECK_VMA_FLAGS_61}: FOLL_LONGTERM && vma_is_fsdax() -> -EOPNOTSUPP",
            _GUP_CALLERS,
            since="5.2",
            before="6.15",
        ),
    ),
    "longterm-fsdax-gup-fast": (
        Decider(
            "check_vma_flags", "int", "mm/gup.c check_vma_flags() (6.15+, inferred)", _GUP_CALLERS, status="I"
        ),
    ),
    "iouring-fsdax-longterm": (
        Decider(
            "check_vma_flags",
            "int",
            f"{_CHECK_VMA_FLAGS_61}: io_pin_pages() -> pin_user_pages(FOLL_WRITE | FOLL_LONGTERM) "
            "refuses the fsdax vma before io_uring's own file check",
            _GUP_CALLERS,
            since="5.2",
        ),
    ),
    "iouring-file-backed-refused": (
        Decider(
            "io_sqe_buffer_register",
            "int",
            "fs/io_uring.c io_sqe_buffer_register() (the file check before io_pin_pages() was split "
            "out; inferred, not read)",
            before="6.1",
            status="I",
        ),
        Decider(
            "io_pin_pages",
            "pointer",
            "linux-source-6.1 (6.1.192) io_uring/rsrc.c io_pin_pages(): !vma_is_shmem() && "
            "!is_file_hugepages() -> ERR_PTR(-EOPNOTSUPP), called by io_sqe_buffer_register()",
            ("io_sqe_buffer_register",),
            since="6.1",
            before="6.5",
        ),
    ),
    "longterm-pagecache-writable-file": (
        Decider(
            "check_vma_flags",
            "int",
            "linux-source-6.12 mm/gup.c check_vma_flags(): FOLL_LONGTERM && FOLL_WRITE && "
            "!writable_file_mapping_allowed() -> -EFAULT",
            _GUP_CALLERS,
            since="6.5",
        ),
    ),
    "madvise-devmem": (
        Decider(
            "madvise_dontneed_free_valid_vma",
            "bool",
            "linux-source-6.1 (6.1.192) mm/madvise.c madvise_dontneed_free_valid_vma(): VM_PFNMAP -> "
            "false, madvise_dontneed_free() -> -EINVAL",
            ("madvise_dontneed_free", "madvise_vma_behavior"),
        ),
    ),
    "private-devdax": (
        Decider(
            "check_vma",
            "int",
            "linux-source-6.1 drivers/dax/device.c check_vma(): !VM_MAYSHARE -> -EINVAL ('attempted "
            "private mapping'), called by dax_mmap()",
            ("dax_mmap",),
        ),
    ),
}
DECIDERS["fork-devdax"] = DECIDERS["private-devdax"]
DECIDERS["private-devmem"] = (
    Decider(
        "get_pat_info",
        "int",
        "linux-source-6.1 (6.1.192) and 6.12 arch/x86/mm/pat/memtype.c get_pat_info(): a COW pfnmap "
        "needing its cache mode -> -EINVAL, via track_pfn_copy() <- copy_page_range() <- dup_mmap(); "
        "copy_mm() reports -ENOMEM",
        ("track_pfn_copy", "copy_page_range", "dup_mmap"),
    ),
)


def cited_decider(rule: str, kernel: Kernel) -> Decider | None:
    """The function `rule` says refuses on `kernel`, or None when the rule cites none for it."""
    return next((d for d in DECIDERS.get(rule, ()) if d.covers(kernel)), None)


def decision_candidates() -> dict[str, list[dict[str, object]]]:
    """Operation -> every function the model cites for it on any kernel (the guest arms them all;
    those absent from the booted kernel are reported not probeable)."""
    out: dict[str, list[dict[str, object]]] = {}
    for name, deciders in DECIDERS.items():
        for op in rule_by_name(name).asks:
            for d in deciders:
                if d.candidate() not in out.setdefault(op, []):
                    out[op].append(d.candidate())
    return out
