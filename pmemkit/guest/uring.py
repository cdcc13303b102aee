"""A minimal io_uring through raw syscalls (ctypes): register fixed buffers, do one READ_FIXED.

Why not liburing: no compiled dependency may be added (issue 5). Only what the kapi experiment
needs: io_uring_setup, IORING_REGISTER_BUFFERS over a mapping, one IORING_OP_READ_FIXED, its CQE.
Layouts from include/uapi/linux/io_uring.h.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import struct

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_IO_URING_SETUP = 425
SYS_IO_URING_ENTER = 426
SYS_IO_URING_REGISTER = 427
IORING_REGISTER_BUFFERS = 0
IORING_OP_READ_FIXED = 4
IORING_ENTER_GETEVENTS = 1
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000


class _SqOffsets(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_uint32)
        for n in ("head", "tail", "ring_mask", "ring_entries", "flags", "dropped", "array", "resv1")
    ] + [("user_addr", ctypes.c_uint64)]


class _CqOffsets(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_uint32)
        for n in ("head", "tail", "ring_mask", "ring_entries", "overflow", "cqes", "flags", "resv1")
    ] + [("user_addr", ctypes.c_uint64)]


class _Params(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_uint32)
        for n in ("sq_entries", "cq_entries", "flags", "sq_thread_cpu", "sq_thread_idle", "features", "wq_fd")
    ] + [("resv", ctypes.c_uint32 * 3), ("sq_off", _SqOffsets), ("cq_off", _CqOffsets)]


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _check(result: int) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


class Ring:
    """One io_uring with a 4-entry submission queue; a context manager that closes everything."""

    def __init__(self, entries: int = 4) -> None:
        self.params = _Params()
        self.fd = _check(_libc.syscall(SYS_IO_URING_SETUP, entries, ctypes.byref(self.params)))
        p = self.params
        sq_size = p.sq_off.array + p.sq_entries * 4
        cq_size = p.cq_off.cqes + p.cq_entries * 16
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0x8000)
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        self.sq = mmap.mmap(self.fd, sq_size, flags, prot, offset=IORING_OFF_SQ_RING)
        self.cq = mmap.mmap(self.fd, cq_size, flags, prot, offset=IORING_OFF_CQ_RING)
        self.sqes = mmap.mmap(self.fd, p.sq_entries * 64, flags, prot, offset=IORING_OFF_SQES)

    def register_buffer(self, address: int, length: int) -> None:
        """IORING_REGISTER_BUFFERS: the kernel pins the buffer's pages long-term (or refuses)."""
        iov = _Iovec(address, length)
        _check(_libc.syscall(SYS_IO_URING_REGISTER, self.fd, IORING_REGISTER_BUFFERS, ctypes.byref(iov), 1))

    def read_fixed(self, fd: int, address: int, length: int, offset: int = 0) -> int:
        """One IORING_OP_READ_FIXED into registered buffer 0; returns the CQE's result (bytes)."""
        p = self.params
        sqe = struct.pack(
            "<BBHiQQIIQHHi16x", IORING_OP_READ_FIXED, 0, 0, fd, offset, address, length, 0, 7, 0, 0, 0
        )
        self.sqes[0:64] = sqe
        tail = struct.unpack_from("<I", self.sq, p.sq_off.tail)[0]
        mask = struct.unpack_from("<I", self.sq, p.sq_off.ring_mask)[0]
        struct.pack_into("<I", self.sq, p.sq_off.array + 4 * (tail & mask), 0)
        struct.pack_into("<I", self.sq, p.sq_off.tail, tail + 1)
        _check(_libc.syscall(SYS_IO_URING_ENTER, self.fd, 1, 1, IORING_ENTER_GETEVENTS, None, 0))
        head = struct.unpack_from("<I", self.cq, p.cq_off.head)[0]
        cmask = struct.unpack_from("<I", self.cq, p.cq_off.ring_mask)[0]
        _user_data, res, _flags = struct.unpack_from("<QiI", self.cq, p.cq_off.cqes + 16 * (head & cmask))
        struct.pack_into("<I", self.cq, p.cq_off.head, head + 1)
        if res < 0:
            raise OSError(-res, os.strerror(-res))
        return res

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        for m in (self.sqes, self.cq, self.sq):
            m.close()
        os.close(self.fd)
