"""safety against a fake /proc, /sys and /etc tree: every rule refuses with its name.

The device nodes are fake too (`safety._stat` answers for /dev/pmem3, /dev/vda …): safety judges a
node by its kind and device number, and the host running the tests has no /dev/pmem3.
"""

import os
import stat
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

#: The fake machine's block device nodes: path -> (major, minor).
FAKE_NODES = {"/dev/pmem3": (259, 3), "/dev/vda": (254, 0), "/dev/sdb": (8, 16), "/dev/md0": (9, 0)}


@pytest.fixture(autouse=True)
def fake_nodes(monkeypatch):
    """Block device nodes for FAKE_NODES; every other path is stat'ed for real."""
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if str(path) in FAKE_NODES:
            return SimpleNamespace(st_mode=stat.S_IFBLK | 0o660, st_rdev=os.makedev(*FAKE_NODES[str(path)]))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(safety, "_stat", fake_stat)


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
    (root / "etc").mkdir()
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
