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

from pmemkit.model.kernel import Kernel, KernelRange
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

#: Operations only the model knows so far; they join scenario.OPERATIONS once it names them.
EXTRA_OPERATIONS = ("stack-copy",)
MODEL_OPERATIONS = OPERATIONS + tuple(op for op in EXTRA_OPERATIONS if op not in OPERATIONS)
#: Fact names a rule's `when` may test, with their possible values.
FACTS: dict[str, tuple[object, ...]] = {
    "source": ("memmap", "nvdimm", "virtio-pmem"),
    "mode": ("raw", "fsdax", "devdax", "sector"),
    "map": ("mem", "dev", None),
    "fs": ("ext4", "xfs"),
    "force_raw": (True, False),
    "aligned_2m": (True, False),
    "memmap": ("dram", "pmem", "none"),
    "fs_dax": ("pages", "pageless", "none", "chardev"),
    "stack": STACKS,
}
ANSWERS: dict[str, tuple[str, ...]] = {
    "available": ("yes", "no"),
    "struct-page": ("dram", "pmem", "none"),
    "fs-dax": ("pages", "pageless", "none", "chardev"),
    "stack-dax": ("passthrough", "none"),
}

MAPPED = ("pages", "pageless", "chardev")  # a user mapping of pmem exists (DAX)
WITH_PAGES = ("pages", "chardev")  # DAX mapping whose pages have struct page


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

    def matches(self, kernel: Kernel, facts: dict[str, object]) -> bool:
        """True when the kernel is in range and every `when` fact has an allowed value."""
        if kernel not in self.range:
            return False
        return all(facts.get(key) in allowed for key, allowed in self.when.items())

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
FUTEX_VMSPLICE = ("futex-shared", "vmsplice")
SPLICE_SENDFILE = ("splice", "sendfile")

# Each entry: R(name, asks, answer, why, *sources, status="V"|"I", since=, before=, **when).
RULES: tuple[Rule, ...] = (
    # ---- 1. available: does the thing exist in this kernel? ---------------------------------
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
        "virtio-pmem-5.3",
        "available",
        "no",
        "The virtio-pmem driver was merged in 5.3.",
        "commit 'virtio-pmem: Add virtio pmem driver' (5.3)",
        before="5.3",
        source="virtio-pmem",
    ),
    R(
        "memmap-needs-2m-alignment",
        "available",
        "no",
        "Since sub-section hotplug (5.3) a memmap= range must be 2 MiB aligned, otherwise "
        "devm_memremap_pages() fails ('unable to map', -EOPNOTSUPP) and there is no /dev/pmem.",
        "mm/memremap.c devm_memremap_pages(), sub-section hotplug (5.3/5.7)",
        "reference/kernel-page-backing.md, Sizes: Alignment",
        since="5.3",
        source="memmap",
        aligned_2m=False,
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
        mode="devdax",
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
    # ---- 3. fs-dax: what a mapping of it is --------------------------------------------------
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
        "Around 6.17 pfn_t, PFN_DEV/PFN_MAP and the devmap page-table bits were removed: DAX "
        "pages are plain ZONE_DEVICE folios, so struct page is now the only way DAX works. "
        "Behaviour unchanged; version inferred, to be confirmed by the VM.",
        "drivers/nvdimm/pmem.c pmem_attach_disk() (BLK_FEAT_DAX)",
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
    R(
        "mount-chardev",
        "dax-mount",
        "n/a",
        "Device-DAX is a character device: there is no filesystem to mount.",
        "drivers/dax/device.c",
        fs_dax="chardev",
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
        "ext4 refuses mount -o dax on a device without DAX ('DAX unsupported by block device.'): "
        "since 4.16 that is every page-less device, because DAX now needs struct page.",
        "fs/ext4/super.c ext4_fill_super(): 'DAX unsupported by block device.'",
        REQ_PAGE,
        VM61,
        since="4.16",
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
        "odirect-no-dax",
        ODIRECT,
        "n/a",
        "Without DAX there is no pmem mapping to do O_DIRECT into or from.",
        "reference/kernel-page-backing.md decision table",
        fs_dax="none",
    ),
    R(
        "odirect-before-gup-dax",
        ODIRECT,
        "EFAULT",
        "Before 4.5 get_user_pages() could not resolve DAX PTEs (no pfn_t/devmap yet), so "
        "O_DIRECT with a DAX buffer fails; inferred, to be confirmed by the VM.",
        "mm/gup.c get_user_pages() DAX support with pfn_t (4.5)",
        status="I",
        before="4.5",
    ),
    R(
        "odirect-pageless",
        ODIRECT,
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
        ODIRECT,
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
        "mapsync-unknown-flag",
        "map-sync",
        "EINVAL",
        "MAP_SHARED_VALIDATE and MAP_SYNC arrived in 4.15; before, the map type is invalid.",
        "mm/mmap.c do_mmap(): unknown MAP_TYPE -> -EINVAL",
        "commit 'mm: Define MAP_SYNC and VM_SYNC flags' (4.15)",
        before="4.15",
    ),
    R(
        "mapsync-devdax",
        "map-sync",
        "ok",
        "Device-DAX accepts MAP_SYNC: its mappings have no filesystem metadata to sync.",
        "drivers/dax/device.c (mmap_supported_flags = MAP_SYNC)",
        VM61,
        fs_dax="chardev",
    ),
    R(
        "mapsync-async-region",
        "map-sync",
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
        "map-sync",
        "ok",
        "A DAX file on a synchronous region supports MAP_SYNC: page faults commit metadata first.",
        "fs/ext4/file.c, fs/xfs/xfs_file.c (VM_SYNC)",
        VM61,
        fs_dax="pages",
    ),
    R(
        "mapsync-pageless",
        "map-sync",
        "ok",
        "On 4.15 a page-less DAX file still took MAP_SYNC (DAX did not need pages yet); "
        "inferred, to be confirmed by the VM.",
        "fs/ext4/file.c (4.15)",
        status="I",
        fs_dax="pageless",
    ),
    R(
        "mapsync-no-dax",
        "map-sync",
        "EOPNOTSUPP",
        "MAP_SYNC is only supported on DAX files; a page-cache file refuses it.",
        "fs/ext4/file.c ext4_file_mmap(): !IS_DAX && VM_SYNC -> -EOPNOTSUPP",
        "vm-facts.md: EOPNOTSUPP on dax=never",
        fs_dax="none",
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
        "private-file",
        "map-private",
        "ok",
        "A private mapping of a (DAX or not) file is allowed; writes copy-on-write into DRAM.",
        "fs/dax.c dax_fault_cow()",
        fs_dax=("pages", "pageless", "none"),
    ),
    R(
        "pmd-no-dax",
        "pmd-fault",
        "fallback",
        "Without DAX, faults fill the page cache 4 KiB at a time.",
        DAX_RST,
        fs_dax="none",
    ),
    R(
        "pmd-before-4.5",
        "pmd-fault",
        "fallback",
        "DAX PMD mappings arrived with pfn_t in 4.5; before, faults were 4 KiB; inferred, to be "
        "confirmed by the VM.",
        "fs/dax.c dax_pmd_fault (4.5)",
        status="I",
        before="4.5",
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
        "futex-vmsplice-no-dax",
        FUTEX_VMSPLICE,
        "n/a",
        "Without DAX the mapping is ordinary page cache: nothing pmem-specific to test.",
        "reference/kernel-page-backing.md decision table",
        fs_dax="none",
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
        "futex-vmsplice-pages",
        FUTEX_VMSPLICE,
        "ok",
        "With struct page, futexes and vmsplice 'Just Work' on pmem, as the seed mail predicted; "
        "inferred, to be confirmed by the VM.",
        "kernel/futex get_futex_key()",
        "fs/splice.c vmsplice_to_pipe()",
        SEED,
        status="I",
        fs_dax=WITH_PAGES,
    ),
    R(
        "longterm-no-dax",
        "longterm-pin",
        "n/a",
        "Without DAX there is no pmem mapping to pin.",
        "reference/kernel-page-backing.md decision table",
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
        fs_dax=("pages", "pageless"),
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
        "too; outcome unchanged. Version inferred, to be confirmed by the VM.",
        "mm/gup.c check_vma_flags(), gup_fast folio checks (6.15)",
        status="I",
        since="6.15",
        fs_dax="pages",
    ),
    R(
        "longterm-devdax",
        "longterm-pin",
        "ok",
        "Device-DAX pages have struct page and no filesystem owns their blocks: GUP with "
        "FOLL_LONGTERM allows them (RDMA to devdax works).",
        "mm/gup.c check_vma_flags() (only fsdax refused)",
        fs_dax="chardev",
    ),
    R(
        "longterm-pageless",
        "longterm-pin",
        "EFAULT",
        "Page-less DAX has no struct page to pin: GUP fails.",
        DAX_RST + " 'Shortcomings'",
        SEED,
        fs_dax="pageless",
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
        "iouring-absent",
        "iouring-fixed-buffer",
        "ENOSYS",
        "io_uring arrived in 5.1; io_uring_setup() does not exist before.",
        "commit 'Add io_uring IO interface' (5.1)",
        before="5.1",
    ),
    R(
        "iouring-no-dax",
        "iouring-fixed-buffer",
        "n/a",
        "Without DAX there is no pmem mapping to register.",
        "reference/kernel-page-backing.md decision table",
        fs_dax="none",
    ),
    R(
        "iouring-file-backed-refused",
        "iouring-fixed-buffer",
        "EOPNOTSUPP",
        "Up to 6.4 io_uring refuses fixed buffers backed by any file other than shmem/hugetlb, "
        "device-dax included.",
        "io_uring/rsrc.c io_sqe_buffer_register(): file-backed vma -> -EOPNOTSUPP",
        since="5.1",
        before="6.5",
        fs_dax=MAPPED,
    ),
    R(
        "iouring-fsdax-longterm",
        "iouring-fixed-buffer",
        "EOPNOTSUPP",
        "From 6.5 io_uring relies on FOLL_LONGTERM, which refuses filesystem-DAX vmas.",
        "io_uring/rsrc.c io_pin_pages()",
        "mm/gup.c check_vma_flags()",
        since="6.5",
        fs_dax="pages",
    ),
    R(
        "iouring-devdax",
        "iouring-fixed-buffer",
        "ok",
        "From 6.5 a device-DAX buffer pins like any FOLL_LONGTERM-able memory; inferred, to be "
        "confirmed by the VM.",
        "io_uring/rsrc.c io_pin_pages()",
        status="I",
        since="6.5",
        fs_dax="chardev",
    ),
    R(
        "fork-no-dax",
        "fork-cow",
        "n/a",
        "Without DAX, copy-on-write after fork is ordinary page-cache behaviour.",
        "reference/kernel-page-backing.md decision table",
        fs_dax="none",
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
        "With struct page, fork and copy-on-write of a private DAX mapping work like RAM; "
        "inferred, to be confirmed by the VM.",
        "mm/memory.c copy_page_range()",
        SEED,
        status="I",
        fs_dax="pages",
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
        "copy-file-range",
        "ENOSYS",
        "copy_file_range(2) arrived in 4.5.",
        "commit 'vfs: add copy_file_range syscall and vfs helper' (4.5)",
        before="4.5",
    ),
    R(
        "io-no-dax",
        SPLICE_SENDFILE + ("copy-file-range",),
        "n/a",
        "Without DAX these go through the page cache: nothing pmem-specific to test.",
        "reference/kernel-page-backing.md decision table",
        fs_dax="none",
    ),
    R(
        "splice-sendfile-pageless",
        SPLICE_SENDFILE,
        "EFAULT",
        "dax.rst lists sendfile and splice among what fails on page-less DAX mappings (errno name inferred).",
        DAX_RST + " 'Shortcomings'",
        SEED,
        fs_dax="pageless",
    ),
    R(
        "cfr-pageless",
        "copy-file-range",
        "EFAULT",
        "copy_file_range falls back to splice, which fails on page-less DAX; inferred, to be "
        "confirmed by the VM.",
        "fs/read_write.c vfs_copy_file_range()",
        status="I",
        fs_dax="pageless",
    ),
    R(
        "io-pages",
        SPLICE_SENDFILE + ("copy-file-range",),
        "ok",
        "With struct page behind the DAX file, splice, sendfile and copy_file_range work; "
        "inferred, to be confirmed by the VM.",
        "fs/splice.c",
        "fs/read_write.c",
        SEED,
        status="I",
        fs_dax="pages",
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
)

QUESTION_NAMES = QUESTIONS + MODEL_OPERATIONS


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
