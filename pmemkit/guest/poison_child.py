"""A forked child that maps one target, poisons one page and reports what the kernel did, line by line.

Why a child: MADV_HWPOISON on a DAX page kills every process that maps it (memory_failure ->
kill_procs), and a poisoned page raises SIGBUS at its next touch. Only the child maps the target,
so only the child can be signalled; the parent reads its report from a pipe.

Why ctypes sigaction: Python's `signal` module hands a handler no siginfo, and the question is in
siginfo (si_code BUS_MCEERR_AR/_AO and si_addr_lsb, the size of the mapping torn down). The child
installs a ctypes callback with SA_SIGINFO; the callback writes siginfo to the pipe and `_exit`s,
as ndctl's test/dax-poison.c sigbus_hdl() prints it and siglongjmp()s. Every access to the mapping
and every madvise goes through a ctypes foreign call, which releases the GIL, so the callback can
take it when the signal arrives on the way back from the kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]

MADV_HWPOISON = 100  # include/uapi/asm-generic/mman-common.h
MADV_SOFT_OFFLINE = 101
BUS_MCEERR_AR = 4  # include/uapi/asm-generic/siginfo.h
BUS_MCEERR_AO = 5
SI_CODES = {
    1: "BUS_ADRALN",
    2: "BUS_ADRERR",
    3: "BUS_OBJERR",
    BUS_MCEERR_AR: "BUS_MCEERR_AR",
    BUS_MCEERR_AO: "BUS_MCEERR_AO",
}
SA_SIGINFO = 4
MAP_FIXED = 0x10
PROT_NONE = 0
MAP_NORESERVE = 0x4000
MAP_FAILED = (1 << 64) - 1
FALLOC_FL_KEEP_SIZE = 0x01  # include/uapi/linux/falloc.h
FALLOC_FL_PUNCH_HOLE = 0x02
TWO_MIB = 2 << 20
PAGE = mmap.PAGESIZE


class SigInfo(ctypes.Structure):
    """The head of x86-64 siginfo_t as SIGBUS fills it (si_addr at 16, si_addr_lsb at 24)."""

    _fields_ = [
        ("si_signo", ctypes.c_int),
        ("si_errno", ctypes.c_int),
        ("si_code", ctypes.c_int),
        ("_pad", ctypes.c_int),
        ("si_addr", ctypes.c_void_p),
        ("si_addr_lsb", ctypes.c_short),
    ]


class SigAction(ctypes.Structure):
    """glibc's struct sigaction on x86-64 (handler union, 1024-bit mask, flags, restorer)."""

    _fields_ = [
        ("sa_sigaction", ctypes.c_void_p),
        ("sa_mask", ctypes.c_ulong * 16),
        ("sa_flags", ctypes.c_int),
        ("sa_restorer", ctypes.c_void_p),
    ]


HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(SigInfo), ctypes.c_void_p)


@dataclass(frozen=True)
class Job:
    """What the child maps: `path` opened with `flags`, `size` bytes at file `offset`, 2 MiB aligned."""

    path: str
    flags: int
    offset: int
    size: int
    poison_offset: int  # within the mapping; page aligned
    poison: bool = True  # False: only map and read the page back (the recovery check)


def emit(fd: int, record: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(record) + "\n").encode())


def install_sigbus_reporter(fd: int, state: dict[str, Any]) -> Any:
    """In a child: on SIGBUS, write siginfo (and `state["phase"]`, the address's offset from
    `state["base"]`) to `fd` as a `signal` record and `_exit(0)`. Keep the returned handler alive."""

    def on_sigbus(signo: int, info: Any, _ctx: Any) -> None:
        si = info.contents
        addr = si.si_addr or 0
        emit(
            fd,
            {
                "step": "signal",
                "phase": state.get("phase"),
                "signo": signo,
                "si_code": si.si_code,
                "si_addr_offset": addr - state.get("base", 0) if addr else None,
                "si_addr_lsb": si.si_addr_lsb,
            },
        )
        os._exit(0)

    handler = HANDLER(on_sigbus)
    act = SigAction()
    act.sa_sigaction = ctypes.cast(handler, ctypes.c_void_p).value
    act.sa_flags = SA_SIGINFO
    if _libc.sigaction(signal.SIGBUS, ctypes.byref(act), None) != 0:
        emit(fd, {"step": "setup", "errno": ctypes.get_errno(), "what": "sigaction"})
        os._exit(1)
    return handler


def child_main(job: Job, fd: int) -> None:
    """Runs in the forked child; never returns (always `os._exit`)."""
    state: dict[str, Any] = {"phase": "setup", "base": 0}
    handler = install_sigbus_reporter(fd, state)  # noqa: F841 - kept alive for the signal
    try:
        base = map_aligned(job.path, job.flags, job.offset, job.size)
    except OSError as exc:
        emit(fd, {"step": "setup", "errno": exc.errno, "what": "mmap"})
        os._exit(1)
    state["base"] = base
    target = base + job.poison_offset
    emit(fd, {"step": "mapped", "poison_offset": job.poison_offset})
    buf = ctypes.create_string_buffer(PAGE)
    state["phase"] = "touch"
    ctypes.memmove(buf, target, PAGE)  # fault the page in (a read: the data written before)
    emit(fd, {"step": "touched", "data": buf.raw[:16].hex()})
    if job.poison:
        state["phase"] = "soft-offline"
        rc = _libc.madvise(target, PAGE, MADV_SOFT_OFFLINE)
        emit(fd, {"step": "soft-offline", "rc": rc, "errno": ctypes.get_errno() if rc else 0})
        state["phase"] = "madvise"
        rc = _libc.madvise(target, PAGE, MADV_HWPOISON)
        emit(fd, {"step": "hwpoison", "rc": rc, "errno": ctypes.get_errno() if rc else 0})
        state["phase"] = "access"
        ctypes.memmove(buf, target, PAGE)
        emit(fd, {"step": "accessed"})
    os._exit(0)


def map_aligned(path: str, flags: int, offset: int, size: int, share: int = mmap.MAP_SHARED) -> int:
    """mmap `path` (MAP_SHARED unless `share`) at a 2 MiB-aligned address (PMD faults need the vma
    aligned too)."""
    fd = os.open(path, flags)
    try:
        anon = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
        room = _libc.mmap(None, size + TWO_MIB, PROT_NONE, anon, -1, 0)
        if room in (None, MAP_FAILED):
            raise OSError(ctypes.get_errno(), "reserving address space")
        aligned = (room + TWO_MIB - 1) & ~(TWO_MIB - 1)
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        got = _libc.mmap(aligned, size, prot, share | MAP_FIXED, fd, offset)
        if got in (None, MAP_FAILED):
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return int(got)
    finally:
        os.close(fd)


def punch_hole(fd: int, offset: int, length: int) -> None:
    """fallocate(PUNCH_HOLE | KEEP_SIZE): how ndctl's dax-poison clears a poisoned block."""
    if _libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def run_child(job: Job, timeout_s: float = 300.0) -> tuple[list[dict[str, Any]], str]:
    """Fork, run `child_main(job)`, return its report lines and how it ended (`exit 0`, `killed by 9`)."""
    return fork_report(lambda fd: child_main(job, fd), timeout_s)


def fork_report(body: Callable[[int], None], timeout_s: float = 300.0) -> tuple[list[dict[str, Any]], str]:
    """Fork, run `body(report_fd)` in the child, return its JSON-line records and how it ended.

    Why a deadline: under TCG a stuck child must not stop the run; the child we forked is killed by
    its pid when the deadline passes, and the report says so.
    """
    import select
    import time

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(rfd)
        try:
            body(wfd)
        except BaseException as exc:  # a Python error in the child is reported, never raised
            emit(wfd, {"step": "setup", "errno": None, "what": f"{type(exc).__name__}: {exc}"})
        finally:
            os._exit(1)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([rfd], [], [], left)
            if not ready:
                continue
            data = os.read(rfd, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(rfd)
    _, status = os.waitpid(pid, 0)
    ended = f"killed by {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
    records = []
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, ended
