"""The guard in front of every destructive step: prove what a device is before anything touches it.

pmemkit formats, namespaces and overwrites devices. Nothing destructive runs unless this module
clears the device (README.md, "Safety"). A device is identified by what the kernel says it
is, never by its name: the path is resolved through every link, the node must be a block device
(a device-dax character device only inside pmemkit's VM), and its device number leads to
/sys/dev/{block,char}/MAJ:MIN, where the nd bus, region and namespace are read. Then:
- the whole disk is the unit: the disk and every partition of it must be unmounted (by device
  number in /proc/self/mountinfo), not held by md/dm, not swap, and not opened exclusively by
  anyone (O_EXCL); a partition is refused when its disk or a sibling partition is in use;
- inside pmemkit's VM (the image's marker matches the kernel command line's `pmemkit.vm=`), the
  device must be `pmemN`/`daxX.Y` on an nd bus (a legacy `memmap=` range listed as
  `Persistent Memory (legacy)` in /proc/iomem, a QEMU NVDIMM or virtio-pmem), or an md/dm stack
  whose every member is;
- outside the VM, only a block device the user named with `--destroy-data`, and one holding data
  (a signature blkid finds, or non-zero bytes at sampled offsets) only with `--force` too.
A name starting with `-` is refused outright (a tool would read it as an option), and every tool
gets `--` before the device anyway. Every refusal names the rule that refused and what to do.

All reads of /proc, /sys and /etc go through `root` so tests can point it at a fake tree; the
device node itself is always stat'ed for real.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pmemkit.guest import GuestError

MARKER = "etc/pmemkit-vm"
CMDLINE_KEY = "pmemkit.vm="
PROBE_TIMEOUT_S = 30
#: Non-zero data search: SAMPLE_POINTS reads of SAMPLE_BYTES spread from the first to the last
#: byte, within SAMPLE_BUDGET_S. A device that cannot be read in time is treated as holding data.
SAMPLE_BYTES = 64 * 1024
SAMPLE_POINTS = 64
SAMPLE_BUDGET_S = 10.0
_stat = os.stat  # the one place a device node is examined (tests substitute fake nodes here)


class SafetyError(Exception):
    """A destructive step was refused; the message says which rule and what to do instead."""


class ToolMissing(GuestError):
    """A tool pmemkit needs is not installed; the message names the package."""


#: The package that carries each tool pmemkit runs, for the "not installed" message.
TOOL_PACKAGES = {
    "mkfs.ext4": "e2fsprogs",
    "mkfs.xfs": "xfsprogs",
    "ndctl": "ndctl",
    "modprobe": "kmod",
    "blkid": "util-linux",
}


def run_tool(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion, bounded in time, with no terminal to prompt on; any exit status.

    A missing tool is ToolMissing naming its package; a timeout (subprocess.TimeoutExpired) and
    any other OSError are the caller's to word, as are the exit status and output.
    """
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        package = TOOL_PACKAGES.get(argv[0])
        hint = f": install {package}" if package else ""
        raise ToolMissing(f"{argv[0]} is not installed{hint}") from exc


@dataclass(frozen=True)
class Clearance:
    """Proof that a device may be overwritten, and which rule granted it (kept in provenance).

    `path` is the node that was checked, links resolved: the only path tools may be given;
    `rdev` its device number, so a later step can see the node is still the one checked.
    """

    device: str
    rule: str
    reason: str
    path: str = ""
    rdev: int | None = None


@dataclass(frozen=True)
class Node:
    """A device node as the kernel numbers it: links resolved, kind and major:minor."""

    named: str
    path: str
    kind: str  # block | char
    rdev: int

    @property
    def number(self) -> str:
        return f"{os.major(self.rdev)}:{os.minor(self.rdev)}"


def _refuse(device: str, rule: str, why: str) -> SafetyError:
    return SafetyError(f"refused {device}: rule '{rule}' — {why}")


def vm_token(root: Path = Path("/")) -> str | None:
    """The pmemkit VM token if this is pmemkit's own VM (marker file == kernel command line)."""
    try:
        marker = (root / MARKER).read_text().strip()
        cmdline = (root / "proc/cmdline").read_text().split()
    except OSError:
        return None
    for word in cmdline:
        if word.startswith(CMDLINE_KEY) and marker and word[len(CMDLINE_KEY) :] == marker:
            return marker
    return None


def _kind_words(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a device"


def device_node(device: str, *, allow_char: bool = False) -> Node:
    """Resolve `device` to its real node and prove it is a block device (or, if allowed, a char one)."""
    if not device or device.startswith("-"):
        raise _refuse(
            device or "''",
            "device-name",
            "a device name must be a path and must not start with '-' (tools would read it as an "
            "option); name the device by its path, e.g. /dev/pmem0",
        )
    real = os.path.realpath(device)
    remedy = "name a block device such as /dev/pmem0 or /dev/loop0 (pmemkit never formats files)"
    try:
        st = _stat(real)
    except OSError as exc:
        raise _refuse(device, "block-only", f"cannot stat {real} ({exc.strerror}); {remedy}") from exc
    where = "" if real == device else f" (it resolves to {real})"
    if stat.S_ISBLK(st.st_mode):
        return Node(device, real, "block", st.st_rdev)
    if stat.S_ISCHR(st.st_mode) and allow_char:
        return Node(device, real, "char", st.st_rdev)
    what = _kind_words(st.st_mode)
    if stat.S_ISCHR(st.st_mode):
        what += f" {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    raise _refuse(device, "block-only", f"it is {what}{where}, not a block device; {remedy}")


def _sysfs_dir(node: Node, root: Path) -> Path | None:
    """/sys/dev/{block,char}/MAJ:MIN resolved: the kernel's own record of this device number."""
    path = root / "sys/dev" / node.kind / node.number
    return path.resolve() if path.exists() else None


def _dev_number(sysdir: Path) -> str | None:
    try:
        return (sysdir / "dev").read_text().strip()
    except OSError:
        return None


def disk_family(sysdir: Path) -> list[Path]:
    """The whole disk a block device belongs to and every partition of it (sysfs dirs)."""
    disk = sysdir.parent if (sysdir / "partition").is_file() else sysdir
    try:
        parts = sorted(p for p in disk.iterdir() if (p / "partition").is_file())
    except OSError:
        parts = []
    return [disk, *parts]


def _mountinfo(root: Path) -> list[tuple[str, str, str]]:
    """(major:minor, mount point, source) of every mount this process can see."""
    try:
        lines = (root / "proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        source = fields[sep + 2] if len(fields) > sep + 2 else ""
        found.append((fields[2], fields[4].replace("\\040", " "), source))
    return found


def _mounts_of(sysdir: Path, root: Path) -> list[str]:
    number = _dev_number(sysdir)
    node = f"/dev/{sysdir.name}"
    return [point for num, point, source in _mountinfo(root) if (number and num == number) or source == node]


def mounted_at(device: str, root: Path = Path("/")) -> list[str]:
    """Mount points of `device` itself (matched by major:minor, so links and aliases count too)."""
    sysdir = _sysfs_dir(device_node(device, allow_char=True), root)
    return _mounts_of(sysdir, root) if sysdir else []


def _holders_of(sysdir: Path) -> list[str]:
    try:
        return sorted(p.name for p in (sysdir / "holders").iterdir())
    except OSError:
        return []


def holders(device: str, root: Path = Path("/")) -> list[str]:
    """md/dm devices stacked on `device`: formatting it would corrupt them."""
    sysdir = _sysfs_dir(device_node(device, allow_char=True), root)
    return _holders_of(sysdir) if sysdir else []


def _swap_numbers(root: Path) -> set[str]:
    """major:minor of every block device in use as swap (files on a device count for nothing here)."""
    try:
        lines = (root / "proc/swaps").read_text().splitlines()[1:]
    except OSError:
        return set()
    numbers = set()
    for line in lines:
        fields = line.split()
        try:
            st = _stat(fields[0].replace("\\040", " "))
        except (OSError, IndexError):
            continue
        if stat.S_ISBLK(st.st_mode):
            numbers.add(f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
    return numbers


def _check_not_in_use(device: str, sysdir: Path, root: Path) -> None:
    """Refuse when the disk `sysdir` belongs to, or any of its partitions, is mounted, held or swap."""
    swaps = _swap_numbers(root)
    for member in disk_family(sysdir):
        who = "it" if member == sysdir else f"{member.name} (on the same disk)"
        points = _mounts_of(member, root)
        if points:
            raise _refuse(device, "not-mounted", f"{who} is mounted at {', '.join(points)}; unmount it first")
        held = _holders_of(member)
        if held:
            raise _refuse(
                device,
                "not-held",
                f"{', '.join(held)} is built on {who}; stop that md/dm device first",
            )
        if _dev_number(member) in swaps:
            raise _refuse(device, "not-swap", f"{who} is in use as swap; swapoff it first")


def _check_not_busy(device: str, node: Node) -> None:
    """The kernel's own answer: an O_EXCL open of a block device fails with EBUSY while it is
    mounted or claimed, in any mount namespace."""
    try:
        fd = os.open(node.path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise _refuse(
                device,
                "not-busy",
                "the kernel reports it busy (mounted, held, or opened exclusively — perhaps in "
                "another mount namespace); stop whatever uses it first",
            ) from exc
        raise _refuse(device, "block-only", f"cannot open {node.path} ({exc.strerror})") from exc
    os.close(fd)


def legacy_pmem_ranges(root: Path = Path("/")) -> list[tuple[int, int]]:
    """`Persistent Memory (legacy)` ranges of /proc/iomem: the memmap= pmem (inclusive ends)."""
    ranges = []
    try:
        lines = (root / "proc/iomem").read_text().splitlines()
    except OSError:
        return ranges
    for line in lines:
        span, _, name = line.strip().partition(" : ")
        if name.strip() == "Persistent Memory (legacy)":
            lo, _, hi = span.partition("-")
            ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def _nd_provider(sysdir: Path) -> tuple[str | None, Path | None]:
    """The nd bus provider (e820, ACPI.NFIT, virtio…) above a device, and its namespace dir.

    The device must sit in a region of that bus (ndbusN/regionM/…): the kernel places every
    namespace, and so its pmem block device, and device-dax's nd dax device, under its region
    (drivers/nvdimm/namespace_devs.c and dax_devs.c, v6.1). No region, no provider.
    """
    real = sysdir.resolve()
    namespace = None
    region = False
    for parent in [real, *real.parents]:
        if parent.name.startswith("namespace") and namespace is None:
            namespace = parent
        if parent.name.startswith("region") and parent.parent.name.startswith("ndbus"):
            region = True
        if parent.name.startswith("ndbus"):
            if not region:
                return None, namespace
            try:
                return (parent / "provider").read_text().strip(), namespace
            except OSError:
                return None, namespace
    return None, namespace


def _emulated_reason(device: str, kind: str, sysdir: Path, root: Path) -> str:
    """The kernel's name and nd bus of a device (its sysfs dir), never the name it was given."""
    name = sysdir.name
    if kind == "block" and name.startswith(("md", "dm-")):
        return _stack_reason(device, sysdir, root)
    if not name.startswith("pmem" if kind == "block" else "dax"):
        raise _refuse(
            device,
            "pmem-only",
            f"the kernel calls it {name}; pmemkit only formats /dev/pmemN and /dev/daxX.Y",
        )
    provider, namespace = _nd_provider(sysdir)
    if provider is None:
        raise _refuse(
            device,
            "nd-region",
            "it is not on an nvdimm (nd) bus, so it is not pmem that pmemkit's VM emulates",
        )
    if provider == "e820":
        try:
            start = int((namespace / "resource").read_text().strip(), 0) if namespace else None
        except (OSError, ValueError):
            start = None
        if start is None or not any(lo <= start <= hi for lo, hi in legacy_pmem_ranges(root)):
            raise _refuse(
                device,
                "legacy-range",
                "its start is not inside a 'Persistent Memory (legacy)' range of /proc/iomem",
            )
        return "legacy memmap= pmem (Persistent Memory (legacy) in /proc/iomem)"
    return f"emulated pmem on nd bus provider {provider}"


def _stack_reason(device: str, sysdir: Path, root: Path) -> str:
    """An md/dm device qualifies only when every member (sysfs `slaves`) is emulated pmem."""
    try:
        slaves = sorted((sysdir / "slaves").iterdir())
    except OSError:
        slaves = []
    if not slaves:
        raise _refuse(device, "stack-members", "it has no member devices to check")
    for slave in slaves:
        if not slave.name.startswith("pmem"):
            raise _refuse(device, "stack-members", f"member {slave.name} is not pmem")
        _emulated_reason(device, "block", slave.resolve(), root)
    return f"{sysdir.name} stacked only on emulated pmem ({', '.join(s.name for s in slaves)})"


def clear_for_destruction(
    device: str,
    *,
    root: Path = Path("/"),
    destroy_data: bool = False,
    force: bool = False,
) -> Clearance:
    """Clear `device` for formatting or overwriting, or raise SafetyError with rule and remedy."""
    in_vm = vm_token(root) is not None
    node = device_node(device, allow_char=in_vm)  # device-dax is a char device, only in the VM
    sysdir = _sysfs_dir(node, root)
    if sysdir is None:
        raise _refuse(
            device,
            "pmem-only" if in_vm else "block-only",
            f"the kernel has no /sys/dev/{node.kind}/{node.number}, so its disk, partitions and "
            "holders cannot be checked",
        )
    if node.kind == "block":
        _check_not_in_use(device, sysdir, root)
        if root == Path("/"):
            _check_not_busy(device, node)
    if in_vm:
        reason = _emulated_reason(device, node.kind, sysdir, root)
        return Clearance(device, "pmemkit-vm", f"inside pmemkit's VM; {reason}", node.path, node.rdev)
    if not destroy_data:
        raise _refuse(
            device,
            "outside-vm",
            "this is not pmemkit's VM; to overwrite a device you chose, name it and add "
            "--destroy-data (pmemkit prepare DEVICE --destroy-data)",
        )
    if not force:
        found = existing_data(node.path)
        if found:
            raise _refuse(device, "foreign-data", f"it holds {found}; add --force to destroy it")
    return Clearance(
        device,
        "user-named",
        "named on the command line with --destroy-data" + (" --force" if force else ""),
        node.path,
        node.rdev,
    )


def existing_data(path: str) -> str | None:
    """What on `path` looks like someone's data: a signature, else non-zero bytes; None if blank."""
    return existing_signature(path) or nonzero_sample(path)


def existing_signature(device: str) -> str | None:
    """A partition table or filesystem on `device` (via `blkid -p`), or None when blank."""
    argv = ["blkid", "-p", "-o", "export", "--", device]
    try:
        out = run_tool(argv, PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        why = f"blkid did not finish in {PROBE_TIMEOUT_S} s"
        raise _refuse(device, "foreign-data", f"cannot check it for data ({why})") from exc
    except OSError as exc:
        raise _refuse(device, "foreign-data", f"cannot check it for data ({exc.strerror})") from exc
    if out.returncode == 8:  # libblkid: several signatures, none of them sure
        return "several conflicting signatures"
    if out.returncode not in (0, 2):  # 2: nothing found
        lines = (out.stderr or out.stdout).strip().splitlines()
        raise _refuse(
            device,
            "foreign-data",
            f"blkid could not probe it ({lines[-1] if lines else f'exit {out.returncode}'})",
        )
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    if "PTTYPE" in fields:
        return f"a {fields['PTTYPE']} partition table"
    if "TYPE" in fields:
        return f"a {fields['TYPE']} filesystem"
    if fields.get("USAGE"):  # PART_ENTRY_* alone describe the partition, not data inside it
        return f"a {fields['USAGE']} signature"
    return None


def sample_offsets(size: int) -> list[int]:
    """Where to look for data: the first and last SAMPLE_BYTES and evenly spread points between."""
    if size <= 0:
        return []
    last = max(0, size - SAMPLE_BYTES)
    spread = {last * i // (SAMPLE_POINTS - 1) // 4096 * 4096 for i in range(SAMPLE_POINTS)}
    return sorted(spread | {0, last})


def nonzero_sample(path: str) -> str | None:
    """Non-zero bytes at sampled offsets of `path` (a device without a signature may still hold
    someone's data), within SAMPLE_BUDGET_S; unreadable counts as data."""
    deadline = time.monotonic() + SAMPLE_BUDGET_S
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return f"data that cannot be checked (open: {exc.strerror})"
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        for offset in sample_offsets(size):
            if time.monotonic() > deadline:
                return f"data that could not be sampled within {SAMPLE_BUDGET_S:.0f} s"
            chunk = os.pread(fd, SAMPLE_BYTES, offset)
            if chunk.count(0) != len(chunk):
                first = offset + next(i for i, b in enumerate(chunk) if b)
                return f"non-zero bytes at offset {first} (no signature found, but it is not blank)"
    except OSError as exc:
        return f"data that cannot be checked (read: {exc.strerror})"
    finally:
        os.close(fd)
    return None


def iomem_claims(lo: int, hi: int, root: Path = Path("/")) -> list[str]:
    """Names of /proc/iomem entries nested inside [lo, hi]: a driver that claimed the range."""
    claims = []
    try:
        lines = (root / "proc/iomem").read_text().splitlines()
    except OSError:
        return claims
    for line in lines:
        if not line.startswith(" "):
            continue
        span, _, name = line.strip().partition(" : ")
        a, _, b = span.partition("-")
        try:
            start, end = int(a, 16), int(b, 16)
        except ValueError:
            continue
        if lo <= start and end <= hi:
            claims.append(name.strip())
    return claims


def clear_devmem_range(start: int, size: int, root: Path = Path("/")) -> Clearance:
    """Clear writes to physical memory via /dev/mem: only an unclaimed legacy pmem range, in the VM."""
    where = f"/dev/mem at {start:#x}+{size:#x}"
    if not vm_token(root):
        raise SafetyError(
            f"refused {where}: rule 'pmemkit-vm' — physical memory is only written inside pmemkit's VM"
        )
    ranges = legacy_pmem_ranges(root)
    inside = [(lo, hi) for lo, hi in ranges if lo <= start and start + size - 1 <= hi]
    if not inside:
        raise SafetyError(
            f"refused {where}: rule 'legacy-range' — not inside a 'Persistent Memory (legacy)' range"
        )
    claims = iomem_claims(*inside[0], root=root)
    if claims:
        raise SafetyError(f"refused {where}: rule 'unclaimed' — already claimed by {', '.join(claims)}")
    return Clearance(where, "pmemkit-vm", "unclaimed legacy pmem range inside pmemkit's VM", "/dev/mem")
