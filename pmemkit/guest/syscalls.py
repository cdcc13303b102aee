"""Thin ctypes wrappers for the syscalls Python 3.11 lacks: mount(2), umount2(2), statx(2).

Why ctypes rather than `mount`/`stat` commands: the experiments need the exact errno the kernel
returned (EINVAL for "DAX unsupported by block device"), which the commands flatten into an exit
status. No compiled dependency.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

AT_FDCWD = -100
STATX_BASIC_STATS = 0x7FF
STATX_ATTR_DAX = 0x00200000  # include/uapi/linux/stat.h (5.10+)
_STATX_SIZE = 256
_ATTRIBUTES_OFFSET = 8
_ATTRIBUTES_MASK_OFFSET = 56


#: Linux aliases: one number, two names. The kernel's own spelling wins (EOPNOTSUPP, not ENOTSUP).
_PREFERRED = {errno.EOPNOTSUPP: "EOPNOTSUPP", errno.EAGAIN: "EAGAIN", errno.EDEADLK: "EDEADLK"}


def errno_name(code: int) -> str:
    """`22` -> `EINVAL`: outcomes are names, never numbers (ARCHITECTURE.md, Contracts)."""
    return _PREFERRED.get(code) or errno.errorcode.get(code, f"E{code}")


def mount(source: str, target: str, fstype: str, options: str = "") -> None:
    """mount(2); raises OSError with the kernel's errno."""
    rc = _libc.mount(
        source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(0), options.encode() or None
    )
    if rc != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def umount(target: str) -> None:
    """umount2(2) without flags; raises OSError with the kernel's errno."""
    if _libc.umount2(target.encode(), 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def statx_dax(path: str) -> tuple[bool, bool]:
    """(is_dax, kernel_reports_dax_attribute) for `path`, from statx's STATX_ATTR_DAX."""
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    rc = _libc.statx(AT_FDCWD, path.encode(), 0, STATX_BASIC_STATS, buf)
    if rc != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    attributes = int.from_bytes(buf.raw[_ATTRIBUTES_OFFSET : _ATTRIBUTES_OFFSET + 8], "little")
    mask = int.from_bytes(buf.raw[_ATTRIBUTES_MASK_OFFSET : _ATTRIBUTES_MASK_OFFSET + 8], "little")
    return bool(attributes & STATX_ATTR_DAX), bool(mask & STATX_ATTR_DAX)


def files_are_dax(directory: str) -> bool:
    """Whether a new file in `directory` is DAX (statx), e.g. after XFS turned DAX off at mount."""
    probe = os.path.join(directory, ".pmemkit-dax-probe")
    with open(probe, "w"):
        pass
    try:
        return statx_dax(probe)[0]
    finally:
        os.unlink(probe)


def meminfo_bytes(*fields: str) -> dict[str, int]:
    """Fields of /proc/meminfo (e.g. Cached, Dirty) in bytes."""
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in fields:
                values[key] = int(rest.split()[0]) * 1024
    return values


def pread_into_address(fd: int, address: int, length: int, offset: int) -> int:
    """pread(2) into raw memory, bypassing Python's buffer checks.

    Why: Python refuses to read into a read-only mapping before the kernel is asked; the
    experiment wants the kernel's answer (EFAULT when it cannot pin the pages for writing).
    """
    n = _libc.pread(fd, ctypes.c_void_p(address), ctypes.c_size_t(length), ctypes.c_long(offset))
    if n < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(n)
