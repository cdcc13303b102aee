"""Each rule of the table, at both sides of its version boundaries, plus table integrity."""

from __future__ import annotations

import itertools

import pytest

from pmemkit.model import RULES, ModelError, backing, predict, rule_by_name
from pmemkit.model.kernel import parse_kernel
from pmemkit.model.rules import ANSWERS, FACTS, MODEL_OPERATIONS, QUESTIONS, SEED, STACKS
from pmemkit.scenario import Scenario, is_outcome

# (kernel, source, mode, map, op, extra scenario fields, outcome, deciding rule)
CASES = [
    # available
    ("4.0", "memmap", "raw", None, "dax-mount", {}, "n/a", "no-pmem-driver"),
    ("4.1", "memmap", "raw", None, "dax-mount", {}, "ok", "mount-dax"),
    ("4.1", "nvdimm", "raw", None, "dax-mount", {}, "n/a", "nfit-needs-libnvdimm"),
    ("4.2", "nvdimm", "raw", None, "dax-mount", {}, "ok", "mount-dax"),
    ("4.1", "memmap", "sector", None, "dax-mount", {}, "n/a", "btt-needs-libnvdimm"),
    ("4.2", "memmap", "sector", None, "dax-mount", {}, "EINVAL", "mount-ext4-refused-early"),
    ("4.2", "nvdimm", "fsdax", "mem", "dax-mount", {}, "n/a", "pfn-device-4.3"),
    ("4.3", "nvdimm", "fsdax", "mem", "dax-mount", {}, "ok", "mount-dax"),
    ("4.4", "nvdimm", "fsdax", "dev", "dax-mount", {}, "n/a", "map-dev-needs-altmap"),
    ("4.5", "nvdimm", "fsdax", "dev", "dax-mount", {}, "ok", "mount-dax"),
    ("4.6", "nvdimm", "devdax", "mem", "map-private", {}, "n/a", "devdax-4.7"),
    ("4.7", "nvdimm", "devdax", "mem", "map-private", {}, "EINVAL", "private-devdax"),
    ("5.2", "virtio-pmem", "raw", None, "dax-mount", {}, "n/a", "virtio-pmem-5.3"),
    ("5.3", "virtio-pmem", "raw", None, "dax-mount", {}, "ok", "mount-dax"),
    ("5.2", "memmap", "raw", None, "dax-mount", {"align": 128 << 20}, "ok", "mount-dax"),
    # issue 10 item 9: 128 MiB sections before 5.3 (inferred), 2 MiB after; 5.7 message, virtio too
    ("5.2", "memmap", "raw", None, "dax-mount", {"align": 4096}, "n/a", "pagemap-needs-128m-section"),
    ("5.3", "memmap", "raw", None, "dax-mount", {"align": 4096}, "n/a", "pagemap-needs-2m-alignment-5.3"),
    ("5.7", "memmap", "raw", None, "dax-mount", {"align": 4096}, "n/a", "pagemap-needs-2m-alignment"),
    ("5.7", "virtio-pmem", "raw", None, "dax-mount", {"align": 4096}, "n/a", "pagemap-needs-2m-alignment"),
    ("5.3", "memmap", "raw", None, "dax-mount", {"align": 2 << 20}, "ok", "mount-dax"),
    # fs-dax: 4.16 requires struct page; 6.11-rc regression
    ("4.15", "nvdimm", "raw", None, "dax-mount", {}, "ok", "mount-dax"),
    # issue 10 item 2: ext4 turned DAX off 4.16-4.20 (24f3478d664b), failed again from 5.0 (361d24d40657)
    ("4.16", "nvdimm", "raw", None, "dax-mount", {}, "fallback", "mount-ext4-auto-disable"),
    ("4.20", "nvdimm", "raw", None, "dax-mount", {}, "fallback", "mount-ext4-auto-disable"),
    ("5.0", "nvdimm", "raw", None, "dax-mount", {}, "EINVAL", "mount-ext4-refused"),
    # issue 10 item 1: XFS reflink (mkfs.xfs default) refused with DAX before 6.0 (35fcd75af3ed)
    ("5.10", "nvdimm", "fsdax", "mem", "dax-mount", {"fs": "xfs"}, "EINVAL", "mount-xfs-reflink-refused"),
    ("5.10", "nvdimm", "fsdax", "mem", "map-sync", {"fs": "xfs"}, "n/a", "fs-not-mounted"),
    ("6.0", "nvdimm", "fsdax", "mem", "dax-mount", {"fs": "xfs"}, "ok", "mount-dax"),
    # ... even on a device without DAX: 5.10's xfs_fc_fill_super() turns DAX off, then still refuses
    # reflink (observed EINVAL on 5.10.0-46 over md RAID); 6.0's xfs_setup_dax_always() returns first
    ("5.10", "nvdimm", "raw", None, "dax-mount", {"fs": "xfs"}, "EINVAL", "mount-xfs-reflink-refused"),
    ("4.16", "nvdimm", "raw", None, "dax-mount", {"fs": "xfs"}, "EINVAL", "mount-xfs-reflink-refused"),
    ("5.10", "nvdimm", "sector", None, "dax-mount", {"fs": "xfs"}, "EINVAL", "mount-xfs-reflink-refused"),
    ("5.10", "nvdimm", "raw", None, "map-sync", {"fs": "xfs"}, "n/a", "fs-not-mounted"),
    ("6.0", "nvdimm", "raw", None, "dax-mount", {"fs": "xfs"}, "fallback", "mount-xfs-fallback"),
    ("5.0", "memmap", "raw", None, "dax-mount", {"force_raw": True}, "ok", "mount-dax"),
    ("5.1", "memmap", "raw", None, "dax-mount", {"force_raw": True}, "EINVAL", "mount-ext4-refused"),
    ("6.10", "memmap", "raw", None, "dax-mount", {}, "ok", "mount-dax"),
    ("6.11-rc1", "memmap", "raw", None, "dax-mount", {}, "EINVAL", "mount-ext4-refused"),
    ("6.11-rc3", "memmap", "raw", None, "dax-mount", {"fs": "xfs"}, "fallback", "mount-xfs-fallback"),
    ("6.11-rc4", "memmap", "raw", None, "dax-mount", {}, "ok", "mount-dax"),
    ("6.11-rc2", "virtio-pmem", "raw", None, "pagecache-bypass", {"fs": "xfs"}, "fallback", "bypass-none"),
    ("6.11-rc2", "virtio-pmem", "raw", None, "pagecache-bypass", {}, "n/a", "fs-not-mounted"),
    ("6.11", "virtio-pmem", "raw", None, "pagecache-bypass", {}, "ok", "bypass-dax"),
    ("6.1", "nvdimm", "sector", None, "dax-mount", {}, "EINVAL", "mount-ext4-refused"),
    ("6.1", "nvdimm", "sector", None, "dax-mount", {"fs": "xfs"}, "fallback", "mount-xfs-fallback"),
    ("6.1", "nvdimm", "devdax", "mem", "dax-mount", {}, "n/a", "mount-chardev"),
    # O_DIRECT (GUP)
    ("4.4", "nvdimm", "fsdax", "mem", "odirect-read-into-dax", {}, "EFAULT", "odirect-before-gup-dax"),
    ("4.5", "nvdimm", "fsdax", "mem", "odirect-read-into-dax", {}, "ok", "odirect-pages"),
    ("4.15", "nvdimm", "raw", None, "odirect-write-from-dax", {}, "EFAULT", "odirect-pageless"),
    ("4.16", "nvdimm", "raw", None, "odirect-write-from-dax", {}, "ok", "odirect-ram"),
    ("6.1", "nvdimm", "raw", None, "odirect-read-into-dax", {}, "n/a", "fs-not-mounted"),
    # MAP_SYNC
    ("4.14", "nvdimm", "fsdax", "mem", "map-sync", {}, "EINVAL", "mapsync-unknown-flag"),
    ("4.15", "nvdimm", "fsdax", "mem", "map-sync", {}, "ok", "mapsync-dax"),
    ("4.15", "nvdimm", "raw", None, "map-sync", {}, "ok", "mapsync-pageless"),
    ("6.1", "virtio-pmem", "raw", None, "map-sync", {}, "EOPNOTSUPP", "mapsync-async-region"),
    ("6.1", "virtio-pmem", "devdax", "mem", "map-sync", {}, "ok", "mapsync-devdax"),
    ("6.1", "nvdimm", "raw", None, "map-sync", {"fs": "xfs"}, "EOPNOTSUPP", "mapsync-no-dax"),
    # MAP_PRIVATE
    ("6.1", "nvdimm", "fsdax", "dev", "map-private", {}, "ok", "private-file"),
    # PMD faults
    ("4.4", "nvdimm", "fsdax", "mem", "pmd-fault", {}, "fallback", "pmd-before-4.5"),
    ("4.15", "nvdimm", "raw", None, "pmd-fault", {}, "fallback", "pmd-pageless"),
    ("6.1", "nvdimm", "fsdax", "mem", "pmd-fault", {"align": 4096}, "fallback", "pmd-misaligned"),
    ("6.1", "nvdimm", "devdax", "mem", "pmd-fault", {"align": 4096}, "fallback", "pmd-misaligned"),
    ("6.1", "nvdimm", "devdax", "mem", "pmd-fault", {"align": 1 << 30}, "ok", "pmd-ok"),
    ("6.1", "memmap", "raw", None, "pmd-fault", {}, "ok", "pmd-ok"),
    ("6.1", "nvdimm", "raw", None, "pmd-fault", {"fs": "xfs"}, "fallback", "pmd-no-dax"),
    # issue 10 item 4: FS_DAX_PMD depended on BROKEN until 4.9 (inferred range)
    ("4.8", "nvdimm", "fsdax", "mem", "pmd-fault", {}, "fallback", "pmd-fsdax-broken"),
    # issue 10 item 4: BROKEN from 4.7 until the 4.9 iomap PMD rework; 4.5-4.6 had working PMDs
    ("4.6", "nvdimm", "fsdax", "mem", "pmd-fault", {}, "ok", "pmd-ok"),
    ("4.7", "nvdimm", "fsdax", "mem", "pmd-fault", {}, "fallback", "pmd-fsdax-broken"),
    ("4.9", "nvdimm", "fsdax", "mem", "pmd-fault", {}, "ok", "pmd-ok"),
    ("4.8", "nvdimm", "devdax", "mem", "pmd-fault", {}, "ok", "pmd-ok"),
    ("4.9", "nvdimm", "fsdax", "mem", "pmd-fault", {}, "ok", "pmd-ok"),
    ("4.8", "nvdimm", "devdax", "mem", "pmd-fault", {}, "ok", "pmd-ok"),
    # futex / vmsplice
    ("4.4", "nvdimm", "fsdax", "mem", "futex-shared", {}, "EFAULT", "futex-vmsplice-before-gup-dax"),
    ("4.15", "nvdimm", "raw", None, "vmsplice", {}, "EFAULT", "futex-vmsplice-pageless"),
    ("6.1", "nvdimm", "fsdax", "mem", "vmsplice", {}, "ok", "futex-vmsplice-pages"),
    ("6.1", "nvdimm", "raw", None, "futex-shared", {"fs": "xfs"}, "ok", "futex-vmsplice-ram"),
    # issue 10 item 3: shared futexes need page->mapping: fsdax from 4.17 (d2c997c0f145), devdax ~4.19
    ("4.16", "nvdimm", "fsdax", "mem", "futex-shared", {}, "EFAULT", "futex-fsdax-no-mapping"),
    ("4.17", "nvdimm", "fsdax", "mem", "futex-shared", {}, "ok", "futex-vmsplice-pages"),
    ("4.18", "nvdimm", "devdax", "mem", "futex-shared", {}, "EFAULT", "futex-devdax-no-mapping"),
    ("4.19", "nvdimm", "devdax", "mem", "futex-shared", {}, "ok", "futex-vmsplice-pages"),
    ("4.16", "nvdimm", "fsdax", "mem", "vmsplice", {}, "ok", "futex-vmsplice-pages"),
    # FOLL_LONGTERM
    ("4.4", "nvdimm", "fsdax", "mem", "longterm-pin", {}, "EFAULT", "longterm-before-gup-dax"),
    ("4.14", "nvdimm", "fsdax", "mem", "longterm-pin", {}, "ok", "longterm-unguarded"),
    ("4.14", "nvdimm", "raw", None, "longterm-pin", {}, "EFAULT", "longterm-pageless"),
    ("4.15", "nvdimm", "fsdax", "mem", "longterm-pin", {}, "EOPNOTSUPP", "longterm-fsdax-gup-longterm"),
    # issue 10 item 8: on 4.15 page-less DAX fails in GUP first; devdax hit the vma_is_fsdax() bug
    ("4.15", "nvdimm", "raw", None, "longterm-pin", {}, "EFAULT", "longterm-pageless"),
    ("4.15", "nvdimm", "devdax", "mem", "longterm-pin", {}, "EOPNOTSUPP", "longterm-devdax-vma-is-fsdax-bug"),
    ("4.16", "nvdimm", "devdax", "mem", "longterm-pin", {}, "ok", "longterm-devdax"),
    ("5.1", "nvdimm", "fsdax", "dev", "longterm-pin", {}, "EOPNOTSUPP", "longterm-fsdax-gup-longterm"),
    ("5.2", "nvdimm", "fsdax", "dev", "longterm-pin", {}, "EOPNOTSUPP", "longterm-fsdax-foll-longterm"),
    ("6.14", "memmap", "raw", None, "longterm-pin", {}, "EOPNOTSUPP", "longterm-fsdax-foll-longterm"),
    ("6.15", "memmap", "raw", None, "longterm-pin", {}, "EOPNOTSUPP", "longterm-fsdax-gup-fast"),
    ("4.7", "nvdimm", "devdax", "mem", "longterm-pin", {}, "ok", "longterm-devdax"),
    ("6.17", "nvdimm", "devdax", "dev", "longterm-pin", {}, "ok", "longterm-devdax"),
    ("6.1", "nvdimm", "raw", None, "longterm-pin", {"fs": "xfs"}, "ok", "longterm-pagecache"),
    (
        "6.12",
        "nvdimm",
        "raw",
        None,
        "longterm-pin",
        {"fs": "xfs"},
        "EFAULT",
        "longterm-pagecache-writable-file",
    ),
    # io_uring fixed buffers
    ("5.0", "nvdimm", "fsdax", "mem", "iouring-fixed-buffer", {}, "ENOSYS", "iouring-absent"),
    (
        "5.1",
        "nvdimm",
        "fsdax",
        "mem",
        "iouring-fixed-buffer",
        {},
        "EOPNOTSUPP",
        "iouring-fsdax-longterm",
    ),
    (
        "6.4",
        "nvdimm",
        "devdax",
        "mem",
        "iouring-fixed-buffer",
        {},
        "EOPNOTSUPP",
        "iouring-file-backed-refused",
    ),
    ("6.5", "nvdimm", "devdax", "mem", "iouring-fixed-buffer", {}, "ok", "iouring-devdax"),
    ("6.5", "nvdimm", "fsdax", "mem", "iouring-fixed-buffer", {}, "EOPNOTSUPP", "iouring-fsdax-longterm"),
    (
        "6.1",
        "nvdimm",
        "raw",
        None,
        "iouring-fixed-buffer",
        {"fs": "xfs"},
        "EOPNOTSUPP",
        "iouring-file-backed-refused",
    ),
    (
        "6.12",
        "nvdimm",
        "raw",
        None,
        "iouring-fixed-buffer",
        {"fs": "xfs"},
        "EFAULT",
        "longterm-pagecache-writable-file",
    ),
    # fork
    ("6.1", "nvdimm", "fsdax", "mem", "fork-cow", {}, "ok", "fork-pages"),
    (
        "6.1",
        "nvdimm",
        "devdax",
        "mem",
        "fork-cow",
        {},
        "EINVAL",
        "fork-devdax",
    ),  # VM: mmap(MAP_PRIVATE) EINVAL
    ("4.15", "nvdimm", "raw", None, "fork-cow", {}, "EFAULT", "fork-pageless"),
    ("6.1", "nvdimm", "raw", None, "fork-cow", {"fs": "xfs"}, "ok", "fork-ram"),
    # splice / sendfile / copy_file_range
    ("6.1", "nvdimm", "devdax", "mem", "sendfile", {}, "EINVAL", "io-devdax-no-read"),
    ("6.1", "nvdimm", "devdax", "dev", "copy-file-range", {}, "EINVAL", "io-devdax-no-read"),
    ("4.4", "nvdimm", "fsdax", "mem", "copy-file-range", {}, "ENOSYS", "cfr-absent"),
    ("4.5", "nvdimm", "fsdax", "mem", "copy-file-range", {}, "ok", "io-file-to-file"),
    # issue 10 item 7: page-less file-to-file copies go through read_iter, not GUP
    ("4.15", "nvdimm", "raw", None, "splice", {}, "ok", "io-file-to-file"),
    ("4.15", "nvdimm", "raw", None, "copy-file-range", {}, "ok", "io-file-to-file"),
    ("6.1", "nvdimm", "raw", None, "sendfile", {"fs": "xfs"}, "ok", "io-file-to-file"),
    ("6.12", "memmap", "raw", None, "splice", {}, "ok", "io-file-to-file"),
    # d2d: copy_file_range() between two filesystems. 5dae222a5ff0 (5.3) allowed it, 868f9f2f8e00
    # (5.19) refused it again, backported to 5.10.160 (observed EXDEV on 5.10.0-46 = 5.10.262) and
    # 5.15.53
    ("5.2", "memmap", "raw", None, "d2d-fs-dax-copy-file-range", {}, "EXDEV", "d2d-files-cfr-exdev"),
    ("5.3", "memmap", "raw", None, "d2d-fs-dax-copy-file-range", {}, "ok", "d2d-files-cfr-cross-fs-allowed"),
    ("5.10", "memmap", "raw", None, "d2d-fs-dax-copy-file-range", {}, "ok", "d2d-files-cfr-cross-fs-allowed"),
    (
        "5.10.159",
        "nvdimm",
        "fsdax",
        "mem",
        "d2d-fs-dax-copy-file-range",
        {},
        "ok",
        "d2d-files-cfr-cross-fs-allowed",
    ),
    (
        "5.10.160",
        "nvdimm",
        "fsdax",
        "mem",
        "d2d-fs-dax-copy-file-range",
        {},
        "EXDEV",
        "d2d-files-cfr-exdev-5.10-stable",
    ),
    (
        "5.10.0-46-amd64",
        "memmap",
        "raw",
        None,
        "d2d-ext4-dax-copy-file-range",
        {},
        "EXDEV",
        "d2d-files-cfr-exdev-5.10-stable",
    ),
    (
        "5.10.0-46-amd64",
        "nvdimm",
        "fsdax",
        "mem",
        "d2d-ext4-dax-copy-file-range",
        {},
        "EXDEV",
        "d2d-files-cfr-exdev-5.10-stable",
    ),
    ("5.11", "memmap", "raw", None, "d2d-fs-dax-copy-file-range", {}, "ok", "d2d-files-cfr-cross-fs-allowed"),
    ("5.12", "memmap", "raw", None, "d2d-fs-dax-copy-file-range", {}, "ok", "d2d-files-cfr-cross-fs-allowed"),
    (
        "5.15.52",
        "memmap",
        "raw",
        None,
        "d2d-fs-dax-copy-file-range",
        {},
        "ok",
        "d2d-files-cfr-cross-fs-allowed",
    ),
    (
        "5.15.53",
        "memmap",
        "raw",
        None,
        "d2d-fs-dax-copy-file-range",
        {},
        "EXDEV",
        "d2d-files-cfr-exdev-5.15-stable",
    ),
    ("5.16", "memmap", "raw", None, "d2d-fs-dax-copy-file-range", {}, "ok", "d2d-files-cfr-cross-fs-allowed"),
    ("5.18", "memmap", "raw", None, "d2d-fs-dax-copy-file-range", {}, "ok", "d2d-files-cfr-cross-fs-allowed"),
    ("5.19", "memmap", "raw", None, "d2d-fs-dax-copy-file-range", {}, "EXDEV", "d2d-files-cfr-exdev"),
    (
        "6.1.0-57-amd64",
        "memmap",
        "raw",
        None,
        "d2d-ext4-dax-copy-file-range",
        {},
        "EXDEV",
        "d2d-files-cfr-exdev",
    ),
]


@pytest.mark.parametrize(("kernel", "source", "mode", "map_", "op", "extra", "outcome", "rule"), CASES)
def test_rule_and_boundary(
    kernel: str, source: str, mode: str, map_: str | None, op: str, extra: dict, outcome: str, rule: str
) -> None:
    p = predict(Scenario(kernel, source, mode, map_, **extra), op)
    assert (p.outcome, p.rule) == (outcome, rule)
    assert parse_kernel(kernel) in rule_by_name(rule).range


# (kernel, source, mode, map, extra, memmap location, deciding struct-page rule, fs-dax answer)
BACKING = [
    ("4.2", "memmap", "raw", None, {}, "none", "before-zone-device", "pageless"),
    ("4.3", "memmap", "raw", None, {}, "dram", "raw-pagemap-region", "pages"),
    ("6.1", "nvdimm", "sector", None, {}, "none", "btt-no-pages", "none"),
    ("6.1", "nvdimm", "fsdax", "dev", {}, "pmem", "pfn-map-dev", "pages"),
    ("6.1", "nvdimm", "devdax", "dev", {}, "pmem", "pfn-map-dev", "chardev"),
    ("6.1", "nvdimm", "fsdax", "mem", {}, "dram", "pfn-map-mem", "pages"),
    ("5.0", "memmap", "raw", None, {"force_raw": True}, "dram", "raw-pagemap-region", "pages"),
    ("5.1", "memmap", "raw", None, {"force_raw": True}, "none", "force-raw-legacy", "none"),
    ("6.1", "virtio-pmem", "raw", None, {}, "dram", "raw-pagemap-region", "pages"),
    ("6.1", "nvdimm", "raw", None, {}, "none", "raw-nfit-no-pages", "none"),
    ("4.15", "nvdimm", "raw", None, {}, "none", "raw-nfit-no-pages", "pageless"),
    ("6.11-rc1", "memmap", "raw", None, {}, "dram", "raw-pagemap-region", "none"),
]


@pytest.mark.parametrize(("kernel", "source", "mode", "map_", "extra", "memmap", "rule", "dax"), BACKING)
def test_struct_page_rules(
    kernel: str, source: str, mode: str, map_: str | None, extra: dict, memmap: str, rule: str, dax: str
) -> None:
    chain = backing(Scenario(kernel, source, mode, map_, **extra))
    assert chain.memmap_location == memmap
    assert chain.struct_page is not None and chain.struct_page.name == rule
    assert chain.fs_dax is not None and chain.fs_dax.answer == dax


def test_rule_names_unique_and_records_valid() -> None:
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    for rule in RULES:
        assert rule.sources, rule.name
        assert rule.why, rule.name
        assert rule.status in ("V", "I"), rule.name
        for ask in rule.asks:
            assert ask in QUESTIONS or ask in MODEL_OPERATIONS, (rule.name, ask)
            if ask in QUESTIONS:
                assert rule.answer in ANSWERS[ask], rule.name
            else:
                assert is_outcome(rule.answer), rule.name
        for key, allowed in rule.when.items():
            assert key in FACTS, (rule.name, key)
            assert set(allowed) <= set(FACTS[key]), (rule.name, key)
        for bound in (rule.since, rule.before):
            if bound:
                parse_kernel(bound)


def test_inferred_rules_say_so() -> None:
    for rule in RULES:
        if rule.status == "I":
            assert "inferred" in rule.why.lower() or "to be confirmed" in rule.why.lower(), rule.name


def test_6_17_keeps_behaviour_with_its_own_rule() -> None:
    assert backing(Scenario("6.16", "nvdimm", "fsdax", "mem")).fs_dax.name == "dax-with-pages"
    chain = backing(Scenario("6.17", "nvdimm", "fsdax", "mem"))
    assert chain.fs_dax.name == "dax-with-pages-no-pfn-t" and chain.fs_dax.answer == "pages"


KERNELS = [
    "4.0",
    "4.1",
    "4.2",
    "4.3",
    "4.4",
    "4.5",
    "4.7",
    "4.8",
    "4.9",
    "4.14",
    "4.15",
    "4.16",
    "4.17",
    "4.18",
    "4.19",
    "5.0",
    "5.1",
    "5.2",
    "5.3",
    "5.7",
    "5.10",
    "5.10.160",
    "5.12",
    "5.15.53",
    "5.17",
    "6.0",
    "6.1",
    "6.4",
    "6.5",
    "6.10",
    "6.11-rc1",
    "6.11-rc4",
    "6.14",
    "6.15",
    "6.17",
    "6.19",
    "7.2",
    "7.3",
]


def _grid() -> list[Scenario]:
    out = []
    for k, src, mode, fs, force_raw, align in itertools.product(
        KERNELS,
        ("memmap", "nvdimm", "virtio-pmem", "ramdax", "cxl"),
        ("raw", "fsdax", "devdax", "sector", "kmem"),
        ("ext4", "xfs"),
        (False, True),
        (None, 4096, 2 << 20),
    ):
        maps = ("mem", "dev") if mode in ("fsdax", "devdax") else (None,)
        if force_raw and mode != "raw":
            continue
        out += [Scenario(k, src, mode, m, force_raw, fs, align) for m in maps]
    for k in KERNELS:  # the baselines: anonymous, the root disk's page cache, /dev/mem
        out += [
            Scenario(k, "baseline", "anonymous"),
            Scenario(k, "baseline", "pagecache", fs="ext4"),
            Scenario(k, "memmap", "devmem"),
        ]
    return out


def test_every_rule_decides_somewhere_and_every_cell_is_answered() -> None:
    used: set[str] = set()
    for scenario in _grid():
        # every stack on a slice of the grid (the stack rules do not look at fs/force_raw/align)
        stacks = (
            STACKS
            if (scenario.fs, scenario.force_raw, scenario.align) == ("ext4", False, None)
            and scenario.source != "baseline"
            and scenario.mode != "devmem"
            else ("none",)
        )
        for stack in stacks:
            chain = backing(scenario, stack)
            used.update(r.name for r in chain.rules())
            for op in MODEL_OPERATIONS:
                p = predict(scenario, op, stack)
                used.add(p.rule)
                assert is_outcome(p.outcome)
                assert SEED in p.explanation
    assert used == {r.name for r in RULES}


def test_kernels_between_known_points_take_the_rule_in_force() -> None:
    assert predict(Scenario("5.10", "nvdimm", "fsdax", "mem"), "longterm-pin").rule == (
        "longterm-fsdax-foll-longterm"
    )
    assert predict(Scenario("4.19.300", "nvdimm", "raw"), "dax-mount").outcome == "fallback"
    assert predict(Scenario("5.4.300", "nvdimm", "raw"), "dax-mount").outcome == "EINVAL"
    assert predict(Scenario("6.13", "nvdimm", "devdax", "mem"), "iouring-fixed-buffer").outcome == "ok"


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario("6.1", "nvdimm", "raw", "mem"),
        Scenario("6.1", "nvdimm", "sector", "dev"),
        Scenario("6.1", "nvdimm", "fsdax", "mem", force_raw=True),
        Scenario("6.1", "floppy", "raw"),
        Scenario("6.1", "nvdimm", "blk"),
        Scenario("6.1", "nvdimm", "fsdax", "disk"),
        Scenario("6.1", "nvdimm", "raw", fs="btrfs"),
        Scenario("6.1", "nvdimm", "raw", align=3 << 20),
        Scenario("3.10", "nvdimm", "raw"),
    ],
)
def test_nonsense_scenarios_are_errors(scenario: Scenario) -> None:
    with pytest.raises(ModelError):
        predict(scenario, "dax-mount")


def test_unknown_operation_is_an_error() -> None:
    with pytest.raises(ModelError):
        predict(Scenario("6.1", "nvdimm", "raw"), "teleport")


def test_fsdax_map_defaults_to_mem() -> None:
    p = predict(Scenario("6.1", "nvdimm", "fsdax"), "dax-mount")
    assert p.scenario.map == "mem" and p.memmap_location == "dram"


def test_prediction_cites_every_deciding_rule() -> None:
    p = predict(Scenario("6.1", "nvdimm", "raw", fs="ext4"), "dax-mount")
    for name in ("mount-ext4-refused", "raw-nfit-no-pages", "dax-requires-struct-page"):
        for source in rule_by_name(name).sources:
            assert source in p.sources
    assert p.kernel_range == ">=5.0"


def test_inferred_rule_is_flagged_in_explanation() -> None:
    p = predict(Scenario("6.1", "nvdimm", "fsdax", "mem"), "splice")
    assert "inferred; to be confirmed by the VM" in p.explanation


@pytest.mark.parametrize(
    ("kernel", "op", "outcome", "rule"),
    [
        ("5.0", "dax-mount", "n/a", "kmem-5.1"),
        ("6.1", "dax-mount", "n/a", "mount-kmem"),
        ("6.1", "odirect-read-into-dax", "ok", "odirect-ram"),
        ("6.1", "map-sync", "EINVAL", "mapsync-anonymous"),
        ("6.12", "iouring-fixed-buffer", "ok", "longterm-anonymous"),
    ],
)
def test_dax_kmem_is_system_ram(kernel: str, op: str, outcome: str, rule: str) -> None:
    """Issue 10 item 10: devdax onlined as System RAM (dax/kmem, 5.1) behaves like anonymous memory."""
    p = predict(Scenario(kernel, "nvdimm", "kmem"), op)
    assert (p.outcome, p.rule) == (outcome, rule)
    if kernel != "5.0":
        assert p.struct_page and p.memmap_location == "dram"
        assert p.kind == ("DAX" if op == "dax-mount" else "anonymous")


def test_milestones_6_15_and_6_17_change_rules_not_outcomes() -> None:
    """Issue 10 item 10: devdax refcounting (6.15) and pfn_t/devmap/FS_DAX_LIMITED removal (6.17)."""
    assert backing(Scenario("6.14", "nvdimm", "devdax", "mem")).fs_dax.name == "devdax-chardev"
    assert (
        backing(Scenario("6.15", "nvdimm", "devdax", "mem")).fs_dax.name == "devdax-chardev-refcounted-6.15"
    )
    assert backing(Scenario("6.17", "nvdimm", "fsdax", "mem")).fs_dax.name == "dax-with-pages-no-pfn-t"
    for op in ("longterm-pin", "odirect-read-into-dax", "map-sync"):
        for mode in ("fsdax", "devdax"):
            old, new = (
                predict(Scenario("6.14", "nvdimm", mode, "mem"), op),
                predict(Scenario("7.3", "nvdimm", mode, "mem"), op),
            )
            assert old.outcome == new.outcome, (mode, op)


def test_force_raw_skips_the_pagemap_alignment_check() -> None:
    """linux-source-6.1 namespace_devs.c: the 2 MiB check runs only when pmem_should_map_pages(),
    which is false for force_raw, so a misaligned force_raw memmap= namespace still gets /dev/pmem."""
    misaligned = Scenario("6.1", "memmap", "raw", align=4096)
    assert predict(misaligned, "dax-mount").rule == "pagemap-needs-2m-alignment"
    forced = Scenario("6.1", "memmap", "raw", force_raw=True, align=4096)
    assert backing(forced).available.name == "available"
    assert predict(forced, "dax-mount").outcome == "EINVAL"  # no struct page: ext4 refuses DAX
