"""The smoke experiment: proves the whole path on a real DAX target, one operation at a time.

On a DAX filesystem: a preallocated file mapped with numpy.memmap, written and read back; statx's
DAX attribute (does the mapping bypass the page cache?); one O_DIRECT read from a file on the
ordinary disk *into* the DAX-mapped buffer and one O_DIRECT write *from* it, both data-verified.
These O_DIRECT cases are the seed mail's point: the block layer can only DMA into memory it can
pin, i.e. memory with `struct page`. On device-dax the same mapping checks, plus MAP_PRIVATE
(which device-dax refuses).
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pmemkit.guest.experiments import Target, mapping_of, register, with_mapping
from pmemkit.guest.syscalls import errno_name, statx_dax
from pmemkit.guest.transfer import partner_path, pattern, verdict, write_partner
from pmemkit.scenario import Observation

NAME = "smoke"
MAP_BYTES = 4 << 20  # a multiple of 2 MiB: device-dax refuses smaller mappings than its alignment
IO_BYTES = 1 << 20


@register(NAME)
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    """Yield one observation per operation; an operation's failure never stops the next one."""
    obs = target.observation
    if target.kind == "fs":
        path = os.path.join(target.path, "pmemkit-smoke.dat")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, MAP_BYTES)  # preallocated: faults map blocks, not allocate
        finally:
            os.close(fd)
        dax, reported = statx_dax(path)
        yield obs(
            NAME,
            "pagecache-bypass",
            "ok" if dax else "fallback",
            detail=(
                "statx reports STATX_ATTR_DAX"
                if dax
                else "statx: no STATX_ATTR_DAX, the mapping goes through the page cache"
            ),
            metrics={"statx_dax": dax, "statx_dax_supported": reported},
        )
        array = np.memmap(path, dtype=np.uint8, mode="r+", shape=(MAP_BYTES,))
        keep: Any = array
    else:
        dax = True  # device-dax has no page cache at all
        fd = os.open(target.path, os.O_RDWR)
        try:
            yield _map_private(target, fd)
            keep = mmap.mmap(fd, MAP_BYTES, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        array = np.frombuffer(keep, dtype=np.uint8)
    # Without DAX (e.g. XFS turned it off) the buffer is a page-cache mapping. The operation keeps
    # its name, so the model's prediction for this scenario is compared; the fact travels with it.
    mapping = mapping_of(target, dax)
    try:
        for case in (_readwrite, _odirect_read_into, _odirect_write_from):
            yield with_mapping(target, case(target, array), mapping)
    finally:
        del array
        if isinstance(keep, mmap.mmap):
            keep.close()


def _map_private(target: Target, fd: int) -> Observation:
    """device-dax supports only shared mappings (drivers/dax/device.c check_vma)."""
    try:
        m = mmap.mmap(fd, MAP_BYTES, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as exc:
        return target.observation(NAME, "map-private", errno_name(exc.errno), detail=str(exc))
    m.close()
    return target.observation(NAME, "map-private", "ok")


def _readwrite(target: Target, array: np.ndarray) -> Observation:
    data = pattern(1, array.size)
    start = time.perf_counter_ns()
    array[:] = data
    if isinstance(array, np.memmap):
        array.flush()
    same = bool(np.array_equal(array, data))
    elapsed = time.perf_counter_ns() - start
    outcome, detail = verdict(array.size, array.size, same, "wrote and read back through the mapping")
    return target.observation(
        NAME,
        "mmap-readwrite",
        outcome,
        detail=detail,
        metrics={"bytes": int(array.size), "elapsed_ns": elapsed, "verified": same},
    )


def _odirect_read_into(target: Target, array: np.ndarray) -> Observation:
    """O_DIRECT read from a file on the ordinary disk into the mapped buffer."""
    data = pattern(2, IO_BYTES)
    partner = write_partner(target, "odirect-src", data)
    buffer = array[:IO_BYTES]

    def landed() -> bool:
        return bool(np.array_equal(buffer, data))

    return _odirect(target, "odirect-read-into-dax", partner, os.O_RDONLY, os.preadv, buffer, landed)


def _odirect_write_from(target: Target, array: np.ndarray) -> Observation:
    """O_DIRECT write from the mapped buffer to a file on the ordinary disk."""
    data = pattern(3, IO_BYTES)
    partner = partner_path(target, "odirect-dst")
    buffer = array[IO_BYTES : 2 * IO_BYTES]
    buffer[:] = data

    def landed() -> bool:
        with open(partner, "rb") as f:
            return f.read(IO_BYTES + 1) == data.tobytes()

    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    return _odirect(target, "odirect-write-from-dax", partner, flags, os.pwritev, buffer, landed)


def _odirect(
    target: Target,
    op: str,
    partner: str,
    flags: int,
    call: Callable[[int, list[memoryview], int], int],
    buffer: np.ndarray,
    landed: Callable[[], bool],
) -> Observation:
    """One timed O_DIRECT `call` (preadv or pwritev) between `buffer` and the partner file, judged by
    the shared verdict: every byte moved compared (`landed`), a short transfer `short`."""
    try:
        fd = os.open(partner, flags | os.O_DIRECT, 0o600)
    except OSError as exc:
        return target.observation(NAME, op, f"skipped:{errno_name(exc.errno)} opening the partner file")
    try:
        with memoryview(buffer) as view:
            start = time.perf_counter_ns()
            n = call(fd, [view], 0)
            elapsed = time.perf_counter_ns() - start
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"{call.__name__}: {exc.strerror}")
    finally:
        os.close(fd)
    same = landed()
    what = f"O_DIRECT {call.__name__} {'into' if call is os.preadv else 'from'} the mapping"
    outcome, detail = verdict(n, IO_BYTES, same, what)
    return target.observation(
        NAME, op, outcome, detail=detail, metrics={"bytes": n, "elapsed_ns": elapsed, "verified": same}
    )
