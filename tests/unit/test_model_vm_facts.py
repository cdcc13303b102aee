"""What the pmemkit VM already confirmed on Debian 6.1 (6.1.0-50-amd64) must be predicted exactly.

Source: reference/vm-facts.md. If one of these fails after a rule edit, the edit is wrong.
"""

from __future__ import annotations

import pytest

from pmemkit.model import build_table, predict, render_markdown
from pmemkit.scenario import Scenario

DEBIAN = "6.1.0-50-amd64"


def test_memmap_raw_namespace_has_pages_in_dram_and_mounts_dax() -> None:
    p = predict(Scenario(DEBIAN, "memmap", "raw", fs="ext4"), "dax-mount")
    assert p.outcome == "ok"
    assert p.struct_page and p.memmap_location == "dram"


def test_nvdimm_raw_ext4_dax_mount_is_einval() -> None:
    p = predict(Scenario(DEBIAN, "nvdimm", "raw", fs="ext4"), "dax-mount")
    assert (p.outcome, p.struct_page, p.memmap_location) == ("EINVAL", False, "none")
    assert "DAX unsupported by block device" in " ".join(p.sources)


def test_nvdimm_raw_xfs_turns_dax_off() -> None:
    assert predict(Scenario(DEBIAN, "nvdimm", "raw", fs="xfs"), "dax-mount").outcome == "fallback"


@pytest.mark.parametrize(("map_", "where"), [("mem", "dram"), ("dev", "pmem")])
@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_nvdimm_fsdax_dax_mount_ok(map_: str, where: str, fs: str) -> None:
    p = predict(Scenario(DEBIAN, "nvdimm", "fsdax", map_, fs=fs), "dax-mount")
    assert (p.outcome, p.memmap_location) == ("ok", where)


@pytest.mark.parametrize("map_", ["mem", "dev"])
def test_devdax_map_private_einval_and_map_sync_accepted(map_: str) -> None:
    s = Scenario(DEBIAN, "nvdimm", "devdax", map_)
    assert predict(s, "map-private").outcome == "EINVAL"
    assert predict(s, "map-sync").outcome == "ok"


def test_virtio_pmem_fs_dax_works_but_map_sync_refused() -> None:
    s = Scenario(DEBIAN, "virtio-pmem", "raw", fs="ext4")
    assert predict(s, "dax-mount").outcome == "ok"
    assert predict(s, "map-sync").outcome == "EOPNOTSUPP"
    assert predict(Scenario(DEBIAN, "virtio-pmem", "devdax", "mem"), "map-sync").outcome == "ok"


def test_sector_mode_refuses_dax() -> None:
    assert predict(Scenario(DEBIAN, "nvdimm", "sector", fs="ext4"), "dax-mount").outcome == "EINVAL"


DAX_MODES = [
    ("memmap", "raw", None),
    ("nvdimm", "fsdax", "mem"),
    ("nvdimm", "fsdax", "dev"),
    ("nvdimm", "devdax", "mem"),
    ("virtio-pmem", "raw", None),
]


@pytest.mark.parametrize(("source", "mode", "map_"), DAX_MODES)
@pytest.mark.parametrize("op", ["odirect-read-into-dax", "odirect-write-from-dax", "pagecache-bypass"])
def test_odirect_into_and_from_dax_mappings_ok(source: str, mode: str, map_: str | None, op: str) -> None:
    assert predict(Scenario(DEBIAN, source, mode, map_), op).outcome == "ok"


@pytest.mark.parametrize(("source", "mode", "map_"), DAX_MODES[:3])
def test_map_sync_ok_on_synchronous_dax(source: str, mode: str, map_: str | None) -> None:
    assert predict(Scenario(DEBIAN, source, mode, map_), "map-sync").outcome == "ok"


def test_6_1_markdown_table_reproduces_the_reference() -> None:
    md = render_markdown(build_table("6.1"))
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if "|" in line}
    cells = {k: [c.strip() for c in v.strip("|").split("|")][1:] for k, v in rows.items()}
    # columns: fsdax mem, fsdax dev, devdax mem, devdax dev, raw NFIT, raw memmap, virtio, sector
    assert cells["memmap lives in"] == ["dram", "pmem", "dram", "pmem", "none", "dram", "dram", "none"]
    assert cells["dax-mount"] == ["ok", "ok", "n/a", "n/a", "EINVAL", "ok", "ok", "EINVAL"]
    # raw NFIT + ext4: the mount is refused, so no file can be mapped (n/a, issue 10: n/a only for
    # what cannot be attempted); XFS on the same device falls back to the page cache
    assert cells["pagecache-bypass"][4] == "n/a"
    xfs = render_markdown(build_table("6.1", fs="xfs"))
    xfs_row = next(line for line in xfs.splitlines() if line.startswith("| pagecache-bypass "))
    assert [c.strip() for c in xfs_row.strip("|").split("|")][1:][4] == "fallback"
    assert cells["map-private"][2:4] == ["EINVAL", "EINVAL"]
    assert cells["longterm-pin"] == [
        "EOPNOTSUPP",
        "EOPNOTSUPP",
        "ok",
        "ok",
        "n/a",
        "EOPNOTSUPP",
        "EOPNOTSUPP",
        "n/a",
    ]
    assert cells["map-sync"] == ["ok", "ok", "ok", "ok", "n/a", "ok", "EOPNOTSUPP", "n/a"]
    xfs_sync = next(line for line in xfs.splitlines() if line.startswith("| map-sync "))
    assert [c.strip() for c in xfs_sync.strip("|").split("|")][1:][4::3] == ["EOPNOTSUPP", "EOPNOTSUPP"]
    assert cells["iouring-fixed-buffer"][2] == "EOPNOTSUPP"  # io_uring <= 6.4 refuses devdax
    # verified: pmemkit's VM observed futex-shared ok on fsdax (Debian 6.1.0-57), futex-vmsplice-pages
    assert cells["futex-shared"][0] == "ok"
    assert cells["odirect-read-into-dax"][4] == "n/a"
