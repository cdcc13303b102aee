"""Hostile targets for `pmemkit prepare`: the user-visible contract, through the real CLI.

Each target must be refused (exit 7, one `pmemkit: error:` line naming the rule, no traceback) or
fail cleanly, and nothing may be formatted: the target's bytes are checked unchanged. Targets that
need a real block device use loop devices over sparse files in a tmp dir (root and losetup only;
otherwise skipped with the reason). Every loop device and mount is undone in the fixtures.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import pmemkit.guest.prepare as prepare_mod
import pmemkit.guest.safety as safety
from pmemkit.cli import main
from pmemkit.guest import GuestError

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (mknod, losetup, mount)")
needs_loop = pytest.mark.skipif(
    not IS_ROOT or shutil.which("losetup") is None or not os.path.exists("/dev/loop-control"),
    reason="needs root and losetup with /dev/loop-control",
)
MiB = 1 << 20


def digest(path: Path | str, skip: tuple[int, int] | None = None) -> str:
    """sha256 of a file, leaving out the byte range `skip` (a partition mounted meanwhile)."""
    with open(path, "rb") as f:
        data = f.read()
    if skip:
        data = data[: skip[0]] + data[skip[1] :]
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mount_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """prepare's mount points go under a tmp dir, so a test can see what was left behind."""
    root = tmp_path / "mnt-pmemkit"
    monkeypatch.setattr(prepare_mod, "MOUNT_ROOT", str(root))
    return root


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every command pmemkit starts during the test (they still run): refusals must start none."""
    started: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(argv: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        started.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    return started


def prepare(*args: str) -> tuple[int, list[str], str]:
    """Run `pmemkit prepare ARGS` in-process: (exit code, stderr lines, stdout)."""
    result = CliRunner().invoke(main, ["prepare", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.splitlines(), result.stdout


def assert_refused(code: int, err: list[str], rule: str) -> None:
    assert code == 7, err
    assert len(err) == 1 and err[0].startswith("pmemkit: error: refused "), err
    assert f"rule '{rule}'" in err[0], err


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """`loop(backing)` attaches a loop device (with partition scan); all are detached at the end."""
    attached: list[str] = []

    def attach(backing: Path) -> str:
        dev = run("losetup", "--find", "--show", "--partscan", str(backing))
        attached.append(dev)
        return dev

    yield attach
    for dev in attached:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60)


@pytest.fixture
def mounts() -> Iterator[list[str]]:
    points: list[str] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", point], capture_output=True, timeout=60)


def sparse(tmp_path: Path, name: str = "disk.img", size: int = 16 * MiB) -> Path:
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def write_mbr(path: Path, parts: list[tuple[int, int]]) -> None:
    """A DOS partition table with (start sector, sectors) entries: no sfdisk/parted needed."""
    with open(path, "r+b") as f:
        f.seek(446)
        for start, count in parts:
            f.write(struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", start, count))
        f.seek(510)
        f.write(b"\x55\xaa")


def partition(dev: str, number: int) -> str:
    """/dev/loopNpK; the kernel may lack the DOS parser, so add the partition with partx if needed."""
    part = f"{dev}p{number}"
    if not os.path.exists(part):
        if shutil.which("partx") is None:
            pytest.skip("the kernel did not scan the partition table and partx is not installed")
        run("partx", "--add", "--nr", str(number), dev)
    assert stat.S_ISBLK(os.stat(part).st_mode)
    return part


# --- not block devices: refused before any tool runs -------------------------------------------


def test_regular_file_is_refused_and_left_alone(tmp_path, mount_root, tools):
    target = tmp_path / "victim.img"
    target.write_bytes(os.urandom(4096) + bytes(4 * MiB))
    before = digest(target)
    code, err, _ = prepare(str(target), "--destroy-data", "--force")
    assert_refused(code, err, "block-only")
    assert "regular file" in err[0] and "block device" in err[0]
    assert digest(target) == before
    assert tools == [] and not mount_root.exists()


def test_directory_is_refused(tmp_path, mount_root, tools):
    (tmp_path / "keep").write_text("mine")
    code, err, _ = prepare(str(tmp_path), "--destroy-data", "--force")
    assert_refused(code, err, "block-only")
    assert "directory" in err[0]
    assert tools == [] and (tmp_path / "keep").read_text() == "mine"


SYSTEM_CHAR_DEVICES = [d for d in ("/dev/null", "/dev/zero", "/dev/full", "/dev/mem") if os.path.exists(d)]


@pytest.mark.parametrize("path", SYSTEM_CHAR_DEVICES)
def test_system_char_devices_are_refused_at_once(mount_root, tools, path):
    code, err, _ = prepare(path, "--destroy-data", "--force")
    assert_refused(code, err, "block-only")
    rdev = os.stat(path).st_rdev
    assert f"character device {os.major(rdev)}:{os.minor(rdev)}" in err[0]
    assert tools == []


def test_nonexistent_path_is_refused(tmp_path, mount_root, tools):
    code, err, _ = prepare(str(tmp_path / "no-such-device"), "--destroy-data", "--force")
    assert_refused(code, err, "block-only")
    assert "No such file" in err[0]
    assert tools == [] and not (tmp_path / "no-such-device").exists()


@needs_root
@pytest.mark.parametrize("minor", [3, 5, 7], ids=["null-copy", "zero-copy", "full-copy"])
def test_char_device_nodes_are_refused(tmp_path, mount_root, tools, minor):
    node = tmp_path / f"chr{minor}"
    os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, minor))
    code, err, _ = prepare(str(node), "--destroy-data", "--force")
    assert_refused(code, err, "block-only")
    assert f"character device 1:{minor}" in err[0]
    assert tools == []


@pytest.mark.parametrize("name", ["-V", "--help", "-", "-F"])
def test_option_like_names_are_refused(tmp_path, mount_root, monkeypatch, tools, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(b"")  # even if a file of that name exists
    code, err, _ = prepare("--destroy-data", "--force", "--", name)
    assert_refused(code, err, "device-name")
    assert tools == [] and (tmp_path / name).read_bytes() == b""


def _link_targets(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Link target and the words the refusal must use, for each kind of non-block target."""
    victim = tmp_path / "victim.img"
    victim.write_bytes(os.urandom(8192))
    folder = tmp_path / "folder"
    folder.mkdir()
    return {
        "file": (victim, "regular file"),
        "dir": (folder, "directory"),
        "dev-null": (Path("/dev/null"), "character device 1:3"),
        "dangling": (tmp_path / "gone", "No such file"),
    }


@pytest.mark.parametrize("kind", ["file", "dir", "dev-null", "dangling"])
def test_symlinks_to_non_block_targets_are_refused(tmp_path, mount_root, tools, kind):
    target, words = _link_targets(tmp_path)[kind]
    before = digest(target) if target.is_file() else None
    link = tmp_path / "pmem0"  # the name of a real pmem device: it earns nothing
    link.symlink_to(target)
    code, err, _ = prepare(str(link), "--destroy-data", "--force")
    assert_refused(code, err, "block-only")
    assert str(target) in err[0] and words in err[0]  # the refusal names what the link resolves to
    assert tools == []
    if before:
        assert digest(target) == before


def test_link_chain_to_a_regular_file_is_refused(tmp_path, mount_root, tools):
    victim = tmp_path / "victim.img"
    victim.write_bytes(b"mine" * 1024)
    (tmp_path / "hop").symlink_to(victim)
    (tmp_path / "dev-pmem0").symlink_to(tmp_path / "hop")
    code, err, _ = prepare(str(tmp_path / "dev-pmem0"), "--destroy-data", "--force")
    assert_refused(code, err, "block-only")
    assert f"resolves to {victim}" in err[0]
    assert tools == [] and victim.read_bytes() == b"mine" * 1024


def test_refusal_from_a_subprocess_has_no_traceback(tmp_path):
    target = tmp_path / "victim.img"
    target.write_bytes(b"x" * 4096)
    proc = subprocess.run(
        [sys.executable, "-m", "pmemkit", "prepare", str(target), "--destroy-data", "--force"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 7
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert target.read_bytes() == b"x" * 4096


# --- stubbed devices: what happens after the clearance, without a real device ------------------


def cleared(path: str) -> SimpleNamespace:
    """A clearance for `path` as safety gives it (fields of safety.Clearance)."""
    return SimpleNamespace(device=path, rule="user-named", reason="stub", path=path)


@pytest.mark.parametrize("code_name", ["EINVAL", "ENOTBLK", "ENOENT"])
def test_failed_dax_mount_exits_8_and_leaves_no_mount_point(tmp_path, mount_root, monkeypatch, code_name):
    monkeypatch.setattr(prepare_mod, "mkfs", lambda device, fs, **kw: cleared(device))
    code = getattr(errno, code_name)

    def refuse(source, target, fstype, options=""):
        assert os.path.isdir(target)  # the mount point existed while the kernel was asked
        raise OSError(code, os.strerror(code), target)

    monkeypatch.setattr(prepare_mod, "mount", refuse)
    status, err, out = prepare("/dev/pmem7", "--destroy-data")
    assert status == 8, (err, out)
    assert len(err) == 1 and code_name in err[0] and "/dev/pmem7" in err[0], err
    assert not mount_root.exists()  # it made MOUNT_ROOT and pmem7-ext4, and removed both


def test_failed_dax_mount_keeps_a_mount_root_it_did_not_make(tmp_path, mount_root, monkeypatch):
    (mount_root / "theirs").mkdir(parents=True)
    monkeypatch.setattr(prepare_mod, "mkfs", lambda device, fs, **kw: cleared(device))

    def refuse(source, target, fstype, options=""):
        raise OSError(errno.EINVAL, "Invalid argument", target)

    monkeypatch.setattr(prepare_mod, "mount", refuse)
    status, err, _ = prepare("/dev/pmem7", "--destroy-data", "--json")
    assert status == 8, err
    assert sorted(p.name for p in mount_root.iterdir()) == ["theirs"]


def test_successful_mount_is_reported_with_its_mount_point(tmp_path, mount_root, monkeypatch):
    """The control of the two above: a mount the kernel accepts exits 0 and names where it is."""
    monkeypatch.setattr(prepare_mod, "mkfs", lambda device, fs, **kw: cleared(device))
    monkeypatch.setattr(prepare_mod, "mount", lambda *a, **kw: None)
    monkeypatch.setattr(prepare_mod, "files_are_dax", lambda d: True)
    status, err, out = prepare("/dev/pmem7", "--destroy-data")
    assert status == 0, err
    assert str(mount_root / "pmem7-ext4") in out and "dax-mount ok" in out
    assert sorted(p.name for p in mount_root.iterdir()) == ["pmem7-ext4"]


def test_xfs_without_mkfs_xfs_stubbed_is_one_line_exit_4(tmp_path, mount_root, monkeypatch):
    monkeypatch.setattr(prepare_mod, "clear_for_destruction", lambda device, **kw: cleared(device))
    monkeypatch.setattr(prepare_mod, "_still_block_node", lambda c: c.path, raising=False)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    status, err, _ = prepare("/dev/pmem7", "--fs", "xfs", "--destroy-data")
    assert status == 4 and len(err) == 1, err
    assert err[0] == "pmemkit: error: mkfs.xfs is not installed: install xfsprogs"
    assert not mount_root.exists()


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_mkfs_gets_double_dash_then_the_checked_node(monkeypatch, fs):
    seen: list[list[str]] = []
    monkeypatch.setattr(prepare_mod, "clear_for_destruction", lambda device, **kw: cleared("/dev/pmem7"))
    monkeypatch.setattr(prepare_mod, "_still_block_node", lambda c: c.path, raising=False)
    monkeypatch.setattr(prepare_mod, "_run", lambda argv, *a, **kw: seen.append(argv) or "")
    prepare_mod.mkfs("/tmp/link-to-pmem7", fs)
    assert seen == [[f"mkfs.{fs}", *seen[0][1:-2], "--", "/dev/pmem7"]]


def test_mkfs_refuses_a_node_swapped_after_the_check(tmp_path, monkeypatch):
    """Between the clearance and mkfs the path must still be the block node that was checked."""
    swapped = tmp_path / "was-a-disk"
    swapped.write_bytes(b"mine")
    ran: list[list[str]] = []
    monkeypatch.setattr(prepare_mod, "clear_for_destruction", lambda device, **kw: cleared(str(swapped)))
    monkeypatch.setattr(prepare_mod, "_run", lambda argv, *a, **kw: ran.append(argv) or "")
    with pytest.raises(safety.SafetyError, match="block-only.*changed after it was checked"):
        prepare_mod.mkfs(str(swapped), "ext4")
    assert ran == [] and swapped.read_bytes() == b"mine"


@needs_root
def test_mkfs_refuses_a_block_node_whose_device_number_changed(tmp_path, monkeypatch):
    """The same path, still a block device, but no longer the device that was checked."""
    node = tmp_path / "disk"
    os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 250))
    ran: list[list[str]] = []
    monkeypatch.setattr(prepare_mod, "_run", lambda argv, *a, **kw: ran.append(argv) or "")
    checked = safety.Clearance(str(node), "user-named", "stub", str(node), os.makedev(7, 251))
    monkeypatch.setattr(prepare_mod, "clear_for_destruction", lambda device, **kw: checked)
    with pytest.raises(safety.SafetyError, match="changed after it was checked"):
        prepare_mod.mkfs(str(node), "ext4")
    assert ran == []
    same = safety.Clearance(str(node), "user-named", "stub", str(node), os.makedev(7, 250))
    monkeypatch.setattr(prepare_mod, "clear_for_destruction", lambda device, **kw: same)
    prepare_mod.mkfs(str(node), "ext4")  # the control: unchanged, so mkfs is run (stubbed here)
    assert ran and ran[0][-2:] == ["--", str(node)]


def test_run_names_the_package_of_a_missing_tool(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(safety.ToolMissing, match="^mkfs.ext4 is not installed: install e2fsprogs$"):
        prepare_mod._run(["mkfs.ext4", "-V"])


def test_run_turns_a_hang_into_one_guest_error(tmp_path):
    with pytest.raises(GuestError, match="did not finish within 1 s"):
        prepare_mod._run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)


# --- real block devices (loop) -----------------------------------------------------------------


@needs_loop
def test_disk_whose_partition_is_mounted_is_refused_even_with_force(tmp_path, loop, mounts, mount_root):
    img = sparse(tmp_path)
    write_mbr(img, [(2048, 8192), (10240, 8192)])
    dev = loop(img)
    part1 = partition(dev, 1)
    run("mkfs.ext4", "-q", "-F", part1)
    point = tmp_path / "p1"
    point.mkdir()
    run("mount", part1, str(point))
    mounts.append(str(point))
    part2 = partition(dev, 2)
    mounted = (2048 * 512, 10240 * 512)  # ext4 itself writes inside partition 1 while it is mounted
    before = digest(img, skip=mounted)
    code, err, _ = prepare(dev, "--destroy-data", "--force")
    assert_refused(code, err, "not-mounted")
    assert os.path.basename(part1) in err[0] and str(point) in err[0]
    # a sibling partition of a disk in use is refused too: the whole disk is the unit
    code, err, _ = prepare(part2, "--destroy-data", "--force")
    assert_refused(code, err, "not-mounted")
    assert digest(img, skip=mounted) == before
    assert not mount_root.exists()


@needs_loop
def test_random_data_without_a_signature_needs_force(tmp_path, loop, mount_root):
    img = tmp_path / "random.img"
    img.write_bytes(bytes(MiB) + os.urandom(15 * MiB))  # blank start: no signature, data further on
    dev = loop(img)
    assert subprocess.run(["blkid", "-p", dev], capture_output=True, timeout=30).returncode == 2
    before = digest(img)
    code, err, _ = prepare(dev, "--destroy-data")
    assert_refused(code, err, "foreign-data")
    assert "non-zero bytes" in err[0] and "--force" in err[0]
    assert digest(img) == before
    # with --force it is formatted; a loop device has no DAX, so the mount fails: exit 8, said once
    code, err, _ = prepare(dev, "--destroy-data", "--force")
    assert code == 8 and len(err) == 1 and "dax" in err[0].lower(), err
    assert "TYPE=ext4" in run("blkid", "-p", "-o", "export", dev)
    assert not any(mount_root.iterdir()) if mount_root.exists() else True


@needs_loop
def test_blank_loop_device_is_formatted_and_the_failed_mount_leaves_nothing(tmp_path, loop, mount_root):
    dev = loop(sparse(tmp_path))
    code, err, out = prepare(dev, "--destroy-data")
    assert code == 8, (err, out)
    assert len(err) == 1 and err[0].startswith("pmemkit: error: ") and "EINVAL" in err[0], err
    assert "DAX unsupported by block device" in err[0]
    assert not (mount_root / f"{os.path.basename(dev)}-ext4").exists()
    assert not mount_root.exists()


@needs_loop
def test_filesystem_signature_needs_force(tmp_path, loop, mount_root):
    img = sparse(tmp_path)
    dev = loop(img)
    run("mkfs.ext4", "-q", "-F", dev)
    before = digest(img)
    code, err, _ = prepare(dev, "--destroy-data")
    assert_refused(code, err, "foreign-data")
    assert "ext4 filesystem" in err[0]
    assert digest(img) == before


@needs_loop
def test_symlink_to_a_block_device_is_resolved_and_the_real_node_reported(tmp_path, loop, mount_root):
    dev = loop(sparse(tmp_path))
    link = tmp_path / "my-disk"
    link.symlink_to(dev)
    code, err, out = prepare(str(link), "--destroy-data", "--json")
    assert code == 8, err  # formatted, then the loop device's missing DAX fails the mount
    assert f"'{dev}'" in out or f'"{dev}"' in out
    assert dev in err[0]
    assert "TYPE=ext4" in run("blkid", "-p", "-o", "export", dev)
    assert link.is_symlink()


@needs_loop
def test_xfs_without_mkfs_xfs_is_one_line_exit_4(tmp_path, loop, mount_root, monkeypatch):
    dev = loop(sparse(tmp_path))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "blkid").symlink_to(shutil.which("blkid"))  # the safety probe still runs
    monkeypatch.setenv("PATH", str(bin_dir))
    before = digest(tmp_path / "disk.img")
    code, err, _ = prepare(dev, "--fs", "xfs", "--destroy-data")
    assert code == 4 and len(err) == 1, err
    assert "mkfs.xfs" in err[0] and "xfsprogs" in err[0]
    assert digest(tmp_path / "disk.img") == before
    assert not mount_root.exists()


# --- inside the VM: identity by device number, never by name -----------------------------------


def fake_vm_root(tmp_path: Path) -> Path:
    """A fake pmemkit VM: marker, command line, a legacy range and pmem0 on the e820 nd bus."""
    root = tmp_path / "vmroot"
    (root / "etc").mkdir(parents=True)
    (root / "etc/pmemkit-vm").write_text("tok\n")
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/cmdline").write_text("console=ttyS0 pmemkit.vm=tok\n")
    (root / "proc/iomem").write_text("40000000-5fffffff : Persistent Memory (legacy)\n")
    (root / "proc/self/mountinfo").write_text("22 1 254:0 / / rw - ext4 /dev/vda rw\n")
    ns = root / "sys/devices/platform/e820_pmem/ndbus0/region0/namespace0.0"
    (ns / "block/pmem0/holders").mkdir(parents=True)
    (ns.parent.parent / "provider").write_text("e820\n")
    (ns / "resource").write_text("0x40000000\n")
    (ns / "block/pmem0/dev").write_text("259:0\n")
    (root / "sys/class/block").mkdir(parents=True)
    (root / "sys/class/block/pmem0").symlink_to(ns / "block/pmem0")
    (root / "sys/dev/block").mkdir(parents=True)
    (root / "sys/dev/block/259:0").symlink_to(ns / "block/pmem0")
    # and device-dax dax1.0 on a QEMU NVDIMM (ACPI.NFIT bus), where the kernel places it
    nfit = root / "sys/devices/LNXSYSTM:00/ACPI0012:00/ndbus1"
    dax = nfit / "region1/dax1.0/dax1.0"
    dax.mkdir(parents=True)
    (nfit / "provider").write_text("ACPI.NFIT\n")
    (dax / "dev").write_text("252:0\n")
    (root / "sys/class/dax").mkdir(parents=True)
    (root / "sys/class/dax/dax1.0").symlink_to(dax)
    (root / "sys/dev/char").mkdir(parents=True)
    (root / "sys/dev/char/252:0").symlink_to(dax)
    return root


def test_in_vm_a_regular_file_named_pmem0_does_not_inherit_pmem0s_checks(tmp_path):
    root = fake_vm_root(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spoof = scratch / "pmem0"
    spoof.write_bytes(b"precious" * 512)
    with pytest.raises(safety.SafetyError, match="block-only.*regular file"):
        safety.clear_for_destruction(str(spoof), root=root)
    with pytest.raises(safety.SafetyError, match="block-only"):
        prepare_mod.mkfs(str(spoof), "ext4")  # the real guest path: nothing is formatted either
    assert spoof.read_bytes() == b"precious" * 512


@needs_loop
def test_in_vm_a_block_node_named_pmem0_is_judged_by_its_device_number(tmp_path, loop):
    root = fake_vm_root(tmp_path)
    dev = loop(sparse(tmp_path))
    spoof = tmp_path / "pmem0"
    rdev = os.stat(dev).st_rdev
    os.mknod(spoof, stat.S_IFBLK | 0o600, rdev)
    number = f"{os.major(rdev)}:{os.minor(rdev)}"
    (root / "sys/dev/block" / number).symlink_to(Path("/sys/dev/block") / number)
    with pytest.raises(safety.SafetyError, match=rf"pmem-only.*calls it {os.path.basename(dev)}"):
        safety.clear_for_destruction(str(spoof), root=root)


@needs_root
def test_in_vm_a_char_node_named_like_devdax_is_judged_by_its_device_number(tmp_path):
    root = fake_vm_root(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spoof = scratch / "dax1.0"  # the name of the VM's device-dax, the device number of /dev/null
    os.mknod(spoof, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (root / "sys/dev/char/1:3").symlink_to("/sys/dev/char/1:3")
    with pytest.raises(safety.SafetyError, match="pmem-only.*calls it null"):
        safety.clear_for_destruction(str(spoof), root=root)


def test_in_vm_a_regular_file_named_like_devdax_is_refused(tmp_path):
    root = fake_vm_root(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spoof = scratch / "dax1.0"
    spoof.write_bytes(b"precious")
    with pytest.raises(safety.SafetyError, match="block-only.*regular file"):
        safety.clear_for_destruction(str(spoof), root=root)
    assert spoof.read_bytes() == b"precious"
