"""Memory mappings of every kind the experiments compare, as numpy arrays.

A DAX file on a DAX filesystem, a device-dax range, a page-cache file on the ordinary disk, and
anonymous memory all become one `Mapping` with `.array` (uint8) and `.address`, so an experiment
measures them with the same code and only the kernel differs. `.array` is always a plain ndarray
over the `mmap.mmap` buffer (`np.frombuffer`), the same kind of view on every side: slicing it costs
the same whatever the memory is (issue 15: a `numpy.memmap` slice is a Python subclass object with
its own `__array_finalize__`, which made 4 KiB copies measure numpy rather than memory). A file
mapped with `numpy_memmap=True` is a `numpy.memmap` instead: "what a numpy user gets", for the
measurement whose point is that object's own cost.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

import numpy as np

from pmemkit.guest.experiments import Target

PAGE = mmap.PAGESIZE
MAP_SHARED_VALIDATE = 0x03
MAP_SYNC = 0x080000  # include/uapi/asm-generic/mman-common.h (4.15+)


class Mapping:
    """`with Mapping(target, "faults", size) as m: m.array[...]` — unmapped and closed on exit.

    Files are created under the target (preallocated unless `sparse`); device-dax uses
    `offset` into the device; `sync=True` asks for MAP_SHARED_VALIDATE | MAP_SYNC (raises the
    kernel's OSError when refused); `private=True` maps MAP_PRIVATE.
    """

    def __init__(
        self,
        target: Target,
        name: str,
        size: int,
        *,
        offset: int = 0,
        sparse: bool = False,
        sync: bool = False,
        private: bool = False,
        readonly: bool = False,
        shared_anon: bool = False,
        numpy_memmap: bool = False,
    ) -> None:
        self.target, self.name, self.size, self.offset = target, name, size, offset
        self.sparse, self.sync, self.private, self.readonly = sparse, sync, private, readonly
        self.shared_anon = shared_anon  # anon only: MAP_SHARED (shmem) so a forked child shares it
        self.numpy_memmap = numpy_memmap  # files only: a numpy.memmap ("what a numpy user gets")
        self.path: str | None = None
        self._mmap: mmap.mmap | None = None
        self._memmap: np.memmap | None = None
        self.array: np.ndarray = np.empty(0, dtype=np.uint8)

    def _flags(self) -> int:
        if self.sync:
            return MAP_SHARED_VALIDATE | MAP_SYNC
        return mmap.MAP_PRIVATE if self.private else mmap.MAP_SHARED

    def __enter__(self) -> Mapping:
        try:
            return self._open()
        except BaseException:
            self.__exit__()  # a refused mmap must not leave its file behind
            raise

    def _open(self) -> Mapping:
        prot = mmap.PROT_READ | (0 if self.readonly else mmap.PROT_WRITE)
        kind = self.target.kind
        if kind == "anon":
            share = mmap.MAP_SHARED if self.shared_anon else mmap.MAP_PRIVATE
            self._mmap = mmap.mmap(-1, self.size, share | mmap.MAP_ANONYMOUS, prot)
        elif kind in ("devdax", "devmem"):  # a character device: /dev/daxX.Y, or /dev/mem at a phys offset
            fd = os.open(self.target.path, os.O_RDWR | (os.O_SYNC if kind == "devmem" else 0))
            try:
                self._mmap = mmap.mmap(fd, self.size, self._flags(), prot, offset=self.offset)
            finally:
                os.close(fd)
        else:
            self.path = os.path.join(self.target.path, f"pmemkit-{self.name}.dat")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if self.sparse:
                    os.ftruncate(fd, self.size)
                else:
                    os.posix_fallocate(fd, 0, self.size)
                if not self.numpy_memmap or self.sync or self.private or self.readonly:
                    self._mmap = mmap.mmap(fd, self.size, self._flags(), prot)
            finally:
                os.close(fd)
            if self._mmap is None:
                # Asked for: a numpy.memmap, what a numpy user of pmem would write.
                self._memmap = np.memmap(self.path, dtype=np.uint8, mode="r+", shape=(self.size,))
                self.array = self._memmap
                return self
        self.array = np.frombuffer(self._mmap, dtype=np.uint8)
        return self

    @property
    def kind_shared(self) -> bool:
        """Whether a forked child's writes are visible here (not for anonymous or private maps)."""
        return (self.target.kind != "anon" or self.shared_anon) and not self.private

    @property
    def address(self) -> int:
        return int(self.array.ctypes.data)

    def _raw(self) -> mmap.mmap:
        raw = self._memmap._mmap if self._memmap is not None else self._mmap  # type: ignore[attr-defined]
        assert raw is not None, "mapping is closed"
        return raw

    def madvise(self, advice: int) -> None:
        """madvise(2) over the whole mapping; raises the kernel's OSError."""
        self._raw().madvise(advice)

    def flush(self, start: int = 0, length: int | None = None) -> None:
        """msync(MS_SYNC) of a page-aligned range."""
        length = self.size - start if length is None else length
        self._raw().flush(start, length)

    def __exit__(self, *exc: Any) -> None:
        self.array = np.empty(0, dtype=np.uint8)
        inner = self._memmap._mmap if self._memmap is not None else self._mmap  # type: ignore[attr-defined]
        self._memmap = self._mmap = None
        if inner is not None:
            try:
                inner.close()
            except BufferError:
                pass  # a caller still holds a view: the mapping goes when that view does
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)
