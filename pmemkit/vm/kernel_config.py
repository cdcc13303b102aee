"""Does a kernel's .config have what pmemkit needs? Pure: text in, missing options out.

Why before boot: a kernel without, say, FS_DAX boots fine and then every DAX mount fails with an
errno that looks like a finding. A user testing their own kernel must hear "CONFIG_FS_DAX is not
set" in one line before minutes of TCG are spent, not read it out of a report.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

#: Options every pmemkit guest needs, with why (y or m both do unless `builtin`).
BASE_OPTIONS: dict[str, str] = {
    "PVH": "booting the ELF vmlinux directly (qemu -kernel through PVH)",
    "BLK_DEV_INITRD": "pmemkit's busybox initrd",
    "DEVTMPFS": "device nodes in the initrd",
    "TMPFS": "/run, /tmp and the guest's copy of pmemkit",
    "MAGIC_SYSRQ": "powering off with sysrq o (nothing on the disk is needed to stop)",
    "SERIAL_8250_CONSOLE": "the serial console the host reads",
    "VIRTIO_PCI": "the virtio devices (disks, 9p shares, virtio-pmem)",
    "VIRTIO_BLK": "the root and modules disks",
    "EXT4_FS": "the root disk and ext4 DAX filesystems",
    "NET_9P": "the 9p shares (source and results)",
    "NET_9P_VIRTIO": "the 9p shares over virtio",
    "9P_FS": "the 9p shares (source and results)",
    "ZONE_DEVICE": "struct page for pmem (fsdax map=mem/dev, devdax)",
    "FS_DAX": "mount -o dax on ext4 and xfs",
    "LIBNVDIMM": "every pmem source (memmap=, NVDIMM, virtio-pmem)",
    "BLK_DEV_PMEM": "/dev/pmemN block devices",
    "NVDIMM_PFN": "fsdax and devdax namespaces with struct page",
    "DEV_DAX": "device-dax (/dev/daxX.Y)",
    "DEV_DAX_PMEM": "device-dax on pmem namespaces",
}
#: Options per pmem source planned for the run.
SOURCE_OPTIONS: dict[str, dict[str, str]] = {
    "memmap": {"X86_PMEM_LEGACY": "memmap= ranges (nd_e820)"},
    "nvdimm": {"ACPI_NFIT": "QEMU NVDIMMs (the NFIT table)"},
    "virtio-pmem": {"VIRTIO_PMEM": "virtio-pmem devices"},
    "cxl": {
        "CXL_BUS": "CXL devices",
        "CXL_PCI": "CXL Type-3 memory devices (cxl_pci)",
        "CXL_ACPI": "the CXL fixed memory window (CEDT, cxl_acpi)",
        "CXL_MEM": "CXL memdevs (cxl_mem)",
        "CXL_PORT": "CXL ports and decoders (cxl_port)",
        "CXL_REGION": "CXL regions (cxl create-region)",
        "CXL_PMEM": "CXL pmem regions as an nvdimm bus (cxl_pmem)",
    },
}
#: Options per filesystem planned for the run.
FS_OPTIONS: dict[str, dict[str, str]] = {"ext4": {}, "xfs": {"XFS_FS": "xfs DAX filesystems"}}
#: Options that must be built in, not modules (bool options are always y or unset).
BUILTIN_ONLY = frozenset({"PVH", "BLK_DEV_INITRD", "DEVTMPFS", "ZONE_DEVICE", "FS_DAX", "MAGIC_SYSRQ"})

_LINE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")


class KernelConfigError(ValueError):
    """A config that cannot be read as a kernel .config."""


@dataclass(frozen=True)
class Missing:
    """One option pmemkit needs that the config lacks."""

    option: str
    why: str
    value: str | None  # what the config says: None (absent or "is not set") or e.g. "m"

    def describe(self) -> str:
        got = "is not set" if self.value is None else f"is {self.value}, not y"
        return f"CONFIG_{self.option} {got} ({self.why})"


def parse_config(text: str) -> dict[str, str]:
    """`CONFIG_X=value` lines as {X: value}; "is not set" lines are left out (same as absent)."""
    options: dict[str, str] = {}
    seen_any = False
    for raw in text.splitlines():
        line = raw.strip()
        if match := _LINE.match(line):
            options[match.group(1)] = match.group(2).strip('"')
            seen_any = True
        elif _UNSET.match(line):
            seen_any = True
    if not seen_any:
        raise KernelConfigError("not a kernel config: no CONFIG_ lines")
    return options


def required_options(sources: Iterable[str] = (), filesystems: Iterable[str] = ()) -> dict[str, str]:
    """Option → why, for a run with these pmem sources and filesystems (all of them when empty)."""
    sources = list(sources) or list(SOURCE_OPTIONS)
    filesystems = list(filesystems) or list(FS_OPTIONS)
    needed = dict(BASE_OPTIONS)
    for source in sources:
        needed.update(SOURCE_OPTIONS.get(source, {}))
    for fs in filesystems:
        needed.update(FS_OPTIONS.get(fs, {}))
    return needed


def missing_options(config: dict[str, str], needed: dict[str, str]) -> list[Missing]:
    """The needed options that are not y (or m, where a module does)."""
    missing = []
    for option, why in needed.items():
        value = config.get(option)
        ok = value == "y" or (value == "m" and option not in BUILTIN_ONLY)
        if not ok:
            missing.append(Missing(option, why, value if value not in (None, "n") else None))
    return missing


def refusal(release: str, missing: list[Missing]) -> str:
    """One line naming every missing option and the fix."""
    names = "; ".join(m.describe() for m in missing)
    fix = ", ".join(f"CONFIG_{m.option}={'y' if m.option in BUILTIN_ONLY else 'y or m'}" for m in missing)
    return f"kernel {release} cannot run pmemkit: {names}; rebuild it with {fix}"


_IKCFG_START = b"IKCFG_ST"
_IKCFG_END = b"IKCFG_ED"


def embedded_config(kernel: bytes) -> str | None:
    """The config a kernel built with CONFIG_IKCONFIG carries (gzip between IKCFG_ST/IKCFG_ED).

    `kernel` must be the uncompressed kernel (an ELF vmlinux): in a bzImage the marker is inside
    the compressed payload.
    """
    start = kernel.find(_IKCFG_START)
    while start != -1:
        body = start + len(_IKCFG_START)
        end = kernel.find(_IKCFG_END, body)
        if end == -1:
            return None
        try:
            return gzip.decompress(kernel[body:end]).decode(errors="replace")
        except (OSError, EOFError, zlib.error):
            start = kernel.find(_IKCFG_START, body)
    return None
