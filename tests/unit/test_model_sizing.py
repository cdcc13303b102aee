"""memmap sizing per nd_pfn_init(): the reference's offsets and the 1.5625 % rule."""

from __future__ import annotations

import pytest

from pmemkit.model import ModelError, memmap_size
from pmemkit.model.kernel import parse_kernel
from pmemkit.model.sizing import reserve_rule
from pmemkit.scenario import parse_size

MiB = 1 << 20


@pytest.mark.parametrize(
    ("kernel", "size", "offset_mib"),
    [
        ("6.1.150", "1G", 18),
        ("6.1.150", "4G", 66),
        ("6.1.150", "16GiB", 258),
        ("6.12", "1G", 18),
        ("6.1.0-50-amd64", "16G", 258),
        ("4.15", "4G", 66),
        ("6.1.5", "1G", 34),
        ("6.1.5", "4G", 130),
        ("6.1.5", "16GiB", 514),
        ("6.1", "1G", 34),
        ("6.1.11", "4G", 130),
        ("6.1.12", "4G", 66),
        ("6.0", "4G", 66),
        ("6.2", "4G", 66),
        ("6.1-rc1", "1G", 34),
    ],
)
def test_map_dev_offsets(kernel: str, size: str, offset_mib: int) -> None:
    for mode in ("fsdax", "devdax"):
        r = memmap_size(kernel, mode, parse_size(size), "dev")
        assert r.data_offset_bytes == offset_mib * MiB
        assert r.usable_bytes + r.data_offset_bytes == r.size_bytes
        assert r.memmap_location == "pmem"
        assert r.dram_bytes == 0


def test_reserve_per_page() -> None:
    assert reserve_rule(parse_kernel("6.1.5")).bytes_per_page == 128
    assert reserve_rule(parse_kernel("6.1.150")).bytes_per_page == 64
    assert reserve_rule(parse_kernel("6.1.0-50-amd64")).bytes_per_page == 64  # Debian: fixed
    r = memmap_size("6.1.5", "fsdax", 1 << 30, "dev")
    assert r.struct_page_bytes == 128
    assert any("inferred" in s for s in r.sources)


@pytest.mark.parametrize("size", ["1G", "4G", "16G", "1T"])
def test_map_mem_costs_1_5625_percent_of_dram(size: str) -> None:
    n = parse_size(size)
    r = memmap_size("6.1", "fsdax", n, "mem")
    assert r.memmap_location == "dram"
    assert r.dram_bytes == r.memmap_bytes == n * 15625 // 1_000_000
    assert r.struct_page_bytes == 64  # sizeof(struct page), even when 6.1 reserves 128
    assert r.data_offset_bytes == 2 * MiB
    assert r.usable_bytes == n - 2 * MiB


def test_one_tib_costs_16_gib() -> None:
    assert memmap_size("6.12", "fsdax", 1 << 40, "mem").dram_bytes == 16 << 30


def test_raw_memmap_pays_in_dram_without_info_block() -> None:
    r = memmap_size("6.1", "raw", 1 << 30, source="memmap")
    assert (r.memmap_location, r.data_offset_bytes, r.usable_bytes) == ("dram", 0, 1 << 30)
    assert r.dram_bytes == 16 * MiB


@pytest.mark.parametrize(
    ("source", "mode", "extra"),
    [
        ("nvdimm", "raw", {}),
        ("nvdimm", "sector", {}),
        ("memmap", "raw", {"force_raw": True}),
    ],
)
def test_page_less_namespaces_cost_nothing(source: str, mode: str, extra: dict) -> None:
    r = memmap_size("6.1", mode, 1 << 30, source=source, **extra)
    assert (r.memmap_location, r.memmap_bytes, r.dram_bytes) == ("none", 0, 0)
    assert r.usable_bytes == 1 << 30


def test_devdax_vmemmap_dedup_from_5_19() -> None:
    # 5.17 brought compound devmaps alone; the tail vmemmap page reuse is 4917f55b4ef9 'mm/sparse-vmemmap:
    # improve memory savings for compound devmaps' (posted 2022-04-20, merged for 5.19): issue 10 item 5
    new = memmap_size("5.19", "devdax", 1 << 30, "mem")
    for before in ("5.16", "5.17", "5.18"):
        old = memmap_size(before, "devdax", 1 << 30, "mem")
        assert old.vmemmap_dedup_saved_bytes == 0 and old.dram_bytes == 16 * MiB, before
    # 2 MiB compound pages: 8 vmemmap pages each, 2 kept -> 24 KiB saved per compound page
    compounds = ((1 << 30) - new.data_offset_bytes) // (2 * MiB)
    assert new.vmemmap_dedup_saved_bytes == compounds * 6 * 4096
    assert new.dram_bytes == 16 * MiB - new.vmemmap_dedup_saved_bytes
    assert memmap_size("6.12", "devdax", 1 << 30, "dev").vmemmap_dedup_saved_bytes == 0
    assert memmap_size("6.12", "fsdax", 1 << 30, "mem").vmemmap_dedup_saved_bytes == 0
    assert memmap_size("6.12", "devdax", 1 << 30, "mem", align=4096).vmemmap_dedup_saved_bytes == 0


def test_align_1g_rounds_the_offset() -> None:
    r = memmap_size("6.12", "fsdax", 4 << 30, "dev", align=1 << 30)
    assert r.data_offset_bytes == 1 << 30


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"kernel": "6.1", "mode": "fsdax", "size": 3 * MiB}, "multiple"),
        ({"kernel": "6.1", "mode": "fsdax", "size": 1 << 30, "align": 3 * MiB}, "power of two"),
        ({"kernel": "6.1", "mode": "fsdax", "size": 2 * MiB, "map": "dev"}, "too small"),
        ({"kernel": "4.4", "mode": "fsdax", "size": 1 << 30, "map": "dev"}, "does not exist"),
        ({"kernel": "6.1", "mode": "raw", "size": 1 << 30, "map": "dev"}, "does not apply"),
        ({"kernel": "3.0", "mode": "fsdax", "size": 1 << 30}, "older than 4.0"),
        ({"kernel": "6.1", "mode": "fsdax", "size": 0}, "multiple"),
    ],
)
def test_size_errors(kwargs: dict, why: str) -> None:
    with pytest.raises(ModelError, match=why):
        memmap_size(**kwargs)


def test_dram_bytes_is_a_memfree_drop_not_memtotal() -> None:
    """Issue 10 item 6: vmemmap pages come from the page allocator (mm/sparse-vmemmap.c)."""
    r = memmap_size("6.1", "fsdax", 1 << 30, "mem")
    assert any("MemFree" in n and "MemTotal does not" in n for n in r.notes)
    assert any("vmemmap_alloc_block" in s for s in r.sources)
    raw = memmap_size("6.1", "raw", 1 << 30, source="memmap")
    assert any("MemFree" in n for n in raw.notes) and not any("MemTotal drop" in n for n in raw.notes)
