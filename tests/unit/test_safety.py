"""safety against a fake /proc, /sys and /etc tree: every rule refuses with its name.

The device nodes are fake too (`safety._stat` answers for /dev/pmem3, /dev/vda …): safety judges a
node by its kind and device number, and the host running the tests has no /dev/pmem3.
"""

import os
import stat
import subprocess
from types import SimpleNamespace

import pytest

import pmemkit.guest.safety as safety
from pmemkit.guest.safety import (
    SafetyError,
    clear_for_destruction,
    legacy_pmem_ranges,
    mounted_at,
    vm_token,
)

#: The fake machine's device nodes: path -> (kind, major, minor). Tests add their own.
FAKE_NODES = {
    "/dev/pmem3": ("block", 259, 3),
    "/dev/vda": ("block", 254, 0),
    "/dev/sdb": ("block", 8, 16),
    "/dev/md0": ("block", 9, 0),
}


@pytest.fixture(autouse=True)
def nodes(monkeypatch):
    """Device nodes for FAKE_NODES (plus what a test adds to the returned dict); every other path
    is stat'ed for real."""
    table = dict(FAKE_NODES)
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if str(path) in table:
            kind, major, minor = table[str(path)]
            mode = (stat.S_IFBLK if kind == "block" else stat.S_IFCHR) | 0o660
            return SimpleNamespace(st_mode=mode, st_rdev=os.makedev(major, minor))
        return real_stat(path, *args, **kwargs)

    # raising=False: the same tests can be run against code without `_stat` (before issue 8), to
    # show which of them the old basename rules fail
    monkeypatch.setattr(safety, "_stat", fake_stat, raising=False)
    return table


def make_root(
    tmp_path,
    *,
    marker="tok",
    cmdline_token="tok",
    mounted=False,
    provider="e820",
    resource="0x40000000",
    held=False,
):
    root = tmp_path
    (root / "etc").mkdir(parents=True)
    if marker is not None:
        (root / "etc/pmemkit-vm").write_text(marker + "\n")
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/cmdline").write_text(f"console=ttyS0 pmemkit.vm={cmdline_token} memmap=512M!1G\n")
    (root / "proc/iomem").write_text(
        "00100000-3fffffff : System RAM\n40000000-5fffffff : Persistent Memory (legacy)\n"
    )
    mountinfo = "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
    if mounted:
        mountinfo += "40 22 259:3 / /mnt/x rw - ext4 /dev/pmem3 rw,dax=always\n"
    (root / "proc/self/mountinfo").write_text(mountinfo)
    bus = root / "sys/devices/platform/e820_pmem/ndbus1"
    bus.mkdir(parents=True)
    (bus / "provider").write_text(provider + "\n")
    ns = bus / "region3/namespace3.0"
    (ns / "block/pmem3/holders").mkdir(parents=True)
    (ns / "resource").write_text(resource + "\n")
    (ns / "block/pmem3/dev").write_text("259:3\n")
    if held:
        (ns / "block/pmem3/holders/md0").mkdir()
    (root / "sys/class/block").mkdir(parents=True)
    (root / "sys/class/block/pmem3").symlink_to(ns / "block/pmem3")
    (root / "sys/class/block/vda").mkdir()
    (root / "sys/class/block/vda/dev").write_text("254:0\n")
    (root / "sys/class/block/sdb").mkdir()
    (root / "sys/class/block/sdb/dev").write_text("8:16\n")
    (root / "sys/dev/block").mkdir(parents=True)
    for number, target in (("259:3", ns / "block/pmem3"), ("254:0", "vda"), ("8:16", "sdb")):
        (root / "sys/dev/block" / number).symlink_to(root / "sys/class/block" / target)
    return root


def test_vm_token_needs_marker_and_cmdline(tmp_path):
    assert vm_token(make_root(tmp_path)) == "tok"


def test_vm_token_mismatch(tmp_path):
    assert vm_token(make_root(tmp_path, cmdline_token="other")) is None


def test_no_marker(tmp_path):
    assert vm_token(make_root(tmp_path, marker=None)) is None


def test_legacy_range_clears(tmp_path):
    root = make_root(tmp_path)
    assert legacy_pmem_ranges(root) == [(0x40000000, 0x5FFFFFFF)]
    clearance = clear_for_destruction("/dev/pmem3", root=root)
    assert clearance.rule == "pmemkit-vm" and "legacy" in clearance.reason


def test_mounted_refused(tmp_path):
    root = make_root(tmp_path, mounted=True)
    assert mounted_at("/dev/pmem3", root) == ["/mnt/x"]
    with pytest.raises(SafetyError, match="not-mounted"):
        clear_for_destruction("/dev/pmem3", root=root)


def test_held_refused(tmp_path):
    with pytest.raises(SafetyError, match="not-held.*md0"):
        clear_for_destruction("/dev/pmem3", root=make_root(tmp_path, held=True))


def test_range_outside_legacy_refused(tmp_path):
    with pytest.raises(SafetyError, match="legacy-range"):
        clear_for_destruction("/dev/pmem3", root=make_root(tmp_path, resource="0x80000000"))


def test_not_pmem_refused(tmp_path):
    root = make_root(tmp_path)
    with pytest.raises(SafetyError, match="pmem-only"):
        clear_for_destruction("/dev/sdb", root=root)
    with pytest.raises(SafetyError, match="not-mounted"):  # the root disk: refused twice over
        clear_for_destruction("/dev/vda", root=root)


def test_outside_vm_needs_destroy_data(tmp_path):
    root = make_root(tmp_path, marker=None)
    with pytest.raises(SafetyError, match="outside-vm.*--destroy-data"):
        clear_for_destruction("/dev/pmem3", root=root)


def test_outside_vm_mounted_refused_even_with_flags(tmp_path):
    root = make_root(tmp_path, marker=None, mounted=True)
    with pytest.raises(SafetyError, match="not-mounted"):
        clear_for_destruction("/dev/pmem3", root=root, destroy_data=True, force=True)


def test_outside_vm_foreign_data_needs_force(tmp_path, monkeypatch):
    import pmemkit.guest.safety as safety

    root = make_root(tmp_path, marker=None)
    monkeypatch.setattr(safety, "existing_signature", lambda dev: "a ext4 filesystem")
    with pytest.raises(SafetyError, match="foreign-data.*--force"):
        clear_for_destruction("/dev/pmem3", root=root, destroy_data=True)
    assert clear_for_destruction("/dev/pmem3", root=root, destroy_data=True, force=True).rule == "user-named"


def _add_stack(root, name, members):
    stack = root / "sys/devices/virtual/block" / name
    (stack / "slaves").mkdir(parents=True)
    (stack / "dev").write_text("9:0\n")
    for member in members:  # the kernel's slaves/ entries link to the members' own sysfs dirs
        (stack / "slaves" / member).symlink_to((root / "sys/class/block" / member).resolve())
    (root / "sys/class/block" / name).symlink_to(stack)
    (root / "sys/dev/block/9:0").symlink_to(stack)


def test_stack_over_emulated_pmem_clears(tmp_path):
    root = make_root(tmp_path)
    _add_stack(root, "md0", ["pmem3"])
    assert "stacked only on emulated pmem" in clear_for_destruction("/dev/md0", root=root).reason


def test_stack_with_a_foreign_member_refused(tmp_path):
    root = make_root(tmp_path)
    _add_stack(root, "md0", ["pmem3", "sdb"])
    with pytest.raises(SafetyError, match="stack-members.*sdb"):
        clear_for_destruction("/dev/md0", root=root)


# --- the whole disk is the unit (issue 8 finding 2) ----------------------------------------------


def _add_disk(root, nodes, *, mounted=None, held=None, swap=None):
    """sdc with partitions sdc1 and sdc2, as the kernel lays them out (partitions inside the disk's
    sysfs dir, each with a `partition` file); optionally one partition mounted, held or swap."""
    disk = root / "sys/devices/pci0000:00/host0/block/sdc"
    for name, minor in (("sdc", 32), ("sdc1", 33), ("sdc2", 34)):
        here = disk if name == "sdc" else disk / name
        (here / "holders").mkdir(parents=True)
        (here / "dev").write_text(f"8:{minor}\n")
        if name != "sdc":
            (here / "partition").write_text(name[-1] + "\n")
        (root / "sys/dev/block" / f"8:{minor}").symlink_to(here)
        (root / "sys/class/block" / name).symlink_to(here)
        nodes[f"/dev/{name}"] = ("block", 8, minor)
    if mounted:
        minor = 32 + int(mounted[-1])
        with open(root / "proc/self/mountinfo", "a") as f:
            f.write(f"50 22 8:{minor} / /srv/data rw - ext4 /dev/{mounted} rw\n")
    if held:
        (disk / held / "holders/dm-0").mkdir()
    if swap:
        (root / "proc/swaps").write_text(
            f"Filename\tType\tSize\tUsed\tPriority\n/dev/{swap}\tpartition\t1024\t0\t-2\n"
        )


def test_disk_whose_partition_is_mounted_is_refused_even_with_force(tmp_path, nodes):
    root = make_root(tmp_path, marker=None)
    _add_disk(root, nodes, mounted="sdc1")
    with pytest.raises(SafetyError, match=r"not-mounted.*sdc1 \(on the same disk\).*/srv/data"):
        clear_for_destruction("/dev/sdc", root=root, destroy_data=True, force=True)
    with pytest.raises(SafetyError, match="not-mounted.*sdc1"):  # a sibling of the mounted partition
        clear_for_destruction("/dev/sdc2", root=root, destroy_data=True, force=True)


def test_unused_disk_with_partitions_clears_with_destroy_data_and_force(tmp_path, nodes):
    root = make_root(tmp_path, marker=None)
    _add_disk(root, nodes)
    assert clear_for_destruction("/dev/sdc", root=root, destroy_data=True, force=True).rule == "user-named"


def test_holder_on_a_partition_refuses_the_disk(tmp_path, nodes):
    root = make_root(tmp_path, marker=None)
    _add_disk(root, nodes, held="sdc2")
    with pytest.raises(SafetyError, match="not-held.*dm-0 is built on sdc2"):
        clear_for_destruction("/dev/sdc", root=root, destroy_data=True, force=True)


def test_swap_partition_refuses_the_disk(tmp_path, nodes):
    root = make_root(tmp_path, marker=None)
    _add_disk(root, nodes, swap="sdc1")
    with pytest.raises(SafetyError, match="not-swap.*sdc1"):
        clear_for_destruction("/dev/sdc", root=root, destroy_data=True, force=True)


# --- existing data: a signature or non-zero bytes (finding 3) ------------------------------------


def test_nonzero_data_without_a_signature_needs_force(tmp_path, nodes, monkeypatch):
    root = make_root(tmp_path / "root", marker=None)
    disk = tmp_path / "disk"
    # 256 KiB of data in the middle: wider than the gap between sampled places (size / 63)
    disk.write_bytes(bytes(4 << 20) + b"\x01" * (256 << 10) + bytes(4 << 20))
    nodes[str(disk)] = ("block", 8, 16)  # the sdb of the fake tree, its bytes in a file
    monkeypatch.setattr(safety, "existing_signature", lambda dev: None)
    with pytest.raises(SafetyError, match="foreign-data.*non-zero bytes.*--force"):
        clear_for_destruction(str(disk), root=root, destroy_data=True)
    assert clear_for_destruction(str(disk), root=root, destroy_data=True, force=True).rule == "user-named"


def test_blank_device_clears_without_force(tmp_path, nodes, monkeypatch):
    root = make_root(tmp_path / "root", marker=None)
    disk = tmp_path / "disk"
    disk.write_bytes(bytes(8 << 20))
    nodes[str(disk)] = ("block", 8, 16)
    monkeypatch.setattr(safety, "existing_signature", lambda dev: None)
    assert clear_for_destruction(str(disk), root=root, destroy_data=True).rule == "user-named"


@pytest.mark.parametrize("where", ["first", "last"])
def test_nonzero_sample_sees_the_first_and_the_last_byte(tmp_path, where):
    disk = tmp_path / "disk"
    size = 3 << 20
    data = bytearray(size)
    data[0 if where == "first" else size - 1] = 0xFF
    disk.write_bytes(bytes(data))
    assert f"offset {0 if where == 'first' else size - 1}" in safety.nonzero_sample(str(disk))
    disk.write_bytes(bytes(size))
    assert safety.nonzero_sample(str(disk)) is None


@pytest.mark.parametrize("size", [1, 4096, 65536, 65537, 10**6, 16 << 20, 1 << 40])
def test_sample_offsets_stay_inside_and_reach_both_ends(size):
    offsets = safety.sample_offsets(size)
    assert offsets[0] == 0 and all(0 <= o < size for o in offsets)
    assert max(offsets) + safety.SAMPLE_BYTES >= size
    assert len(offsets) <= safety.SAMPLE_POINTS + 1 and offsets == sorted(set(offsets))


def test_blkid_gets_double_dash_before_the_device(monkeypatch):
    seen = []

    def fake_run(argv, **kwargs):
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 2, "", "")

    monkeypatch.setattr(safety.subprocess, "run", fake_run)
    assert safety.existing_signature("/dev/sdb") is None
    assert seen[0][-2:] == ["--", "/dev/sdb"]


def test_missing_blkid_is_tool_missing(monkeypatch):
    def missing(argv, **kwargs):
        raise FileNotFoundError(2, "No such file", argv[0])

    monkeypatch.setattr(safety.subprocess, "run", missing)
    with pytest.raises(safety.ToolMissing, match="blkid.*util-linux"):
        safety.existing_signature("/dev/sdb")


# --- identity by device number and sysfs (finding 1) ---------------------------------------------


def test_device_outside_a_region_is_not_emulated_pmem(tmp_path, nodes):
    root = make_root(tmp_path)
    loose = root / "sys/devices/platform/e820_pmem/ndbus1/namespace9.0"  # on the bus, in no region
    (loose / "block/pmem9/holders").mkdir(parents=True)
    (loose / "resource").write_text("0x40000000\n")
    (loose / "block/pmem9/dev").write_text("259:9\n")
    (root / "sys/dev/block/259:9").symlink_to(loose / "block/pmem9")
    nodes["/dev/pmem9"] = ("block", 259, 9)
    with pytest.raises(SafetyError, match="nd-region"):
        clear_for_destruction("/dev/pmem9", root=root)


def _add_devdax(root, nodes):
    """dax5.0 on an ACPI.NFIT bus, as the kernel places it: region5/dax5.0/dax5.0 (char 252:0)."""
    bus = root / "sys/devices/LNXSYSTM:00/ACPI0012:00/ndbus2"
    dax = bus / "region5/dax5.0/dax5.0"
    dax.mkdir(parents=True)
    (bus / "provider").write_text("ACPI.NFIT\n")
    (dax / "dev").write_text("252:0\n")
    (root / "sys/dev/char").mkdir(parents=True)
    (root / "sys/dev/char/252:0").symlink_to(dax)
    nodes["/dev/dax5.0"] = ("char", 252, 0)


def test_devdax_char_device_clears_inside_the_vm_by_its_kernel_name(tmp_path, nodes):
    root = make_root(tmp_path)
    _add_devdax(root, nodes)
    assert "ACPI.NFIT" in clear_for_destruction("/dev/dax5.0", root=root).reason


def test_char_device_is_refused_outside_the_vm(tmp_path, nodes):
    root = make_root(tmp_path, marker=None)
    _add_devdax(root, nodes)
    with pytest.raises(SafetyError, match="block-only.*character device 252:0"):
        clear_for_destruction("/dev/dax5.0", root=root, destroy_data=True, force=True)


def test_link_to_pmem_is_judged_as_the_node_it_resolves_to(tmp_path, nodes):
    root = make_root(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    alias = scratch / "sdb"  # a link whose name says sdb, to the real (fake) pmem3
    os.symlink("/dev/pmem3", alias)
    clearance = clear_for_destruction(str(alias), root=root)
    assert clearance.rule == "pmemkit-vm" and clearance.path == "/dev/pmem3"
