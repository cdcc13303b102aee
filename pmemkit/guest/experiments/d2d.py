"""The d2d experiment: pmem → pmem copies, the seed mail's "sector-to-sector I/O" side.

A copy between two block devices never shows the memory to user space through the MMU, so by
the seed mail's rule it needs no `struct page` for the pmem itself. On a pair of like devices
(two memmap ranges, two NVDIMM namespaces): block device to block device with O_DIRECT through an
anonymous buffer (chunk sizes 4 KiB … 4 MiB: bandwidth and per-chunk latency), copy_file_range,
sendfile, splice through a pipe, and a buffered copy; then, with a DAX filesystem on each, the
same between files plus O_DIRECT through a DAX-mapped buffer. Every copy is verified by checksum,
and the page cache's footprint (`Cached`, `Dirty`) during the copy is recorded.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pmemkit.guest.experiments import Target, register
from pmemkit.guest.prepare import mkfs, mount_dax, unmount
from pmemkit.guest.safety import clear_for_destruction
from pmemkit.guest.syscalls import errno_name, meminfo_bytes
from pmemkit.measure.bandwidth import bandwidth
from pmemkit.measure.clock import now_ns
from pmemkit.measure.stats import summarize
from pmemkit.scenario import Observation

NAME = "d2d"
MiB = 1 << 20
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"copy_bytes": 16 * MiB, "chunks": [4096, 65536, MiB, 4 * MiB]},
    "full": {"copy_bytes": 64 * MiB, "chunks": [4096, 16384, 65536, 262144, MiB, 4 * MiB]},
}
CopyFn = Callable[[int, int, int, int], list[int]]  # (src fd, dst fd, bytes, chunk) -> per-chunk ns


def _checksum(path: str, size: int) -> str:
    """sha256 of the first `size` bytes, read with O_DIRECT so no stale page cache can answer."""
    digest = hashlib.sha256()
    buf = mmap.mmap(-1, MiB)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        with memoryview(buf) as view:
            for offset in range(0, size, MiB):
                n = os.preadv(fd, [view], offset)
                digest.update(view[: min(n, size - offset)])
    finally:
        os.close(fd)
        buf.close()
    return digest.hexdigest()


def _fill(path: str, size: int, seed: int) -> str:
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if not path.startswith("/dev/") else 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


def _odirect_via(buffer: memoryview) -> CopyFn:
    def copy(src: int, dst: int, size: int, chunk: int) -> list[int]:
        samples = []
        for offset in range(0, size, chunk):
            t0 = now_ns()
            n = os.preadv(src, [buffer[:chunk]], offset)
            os.pwritev(dst, [buffer[:n]], offset)
            samples.append(now_ns() - t0)
        return samples

    return copy


def _copy_file_range(src: int, dst: int, size: int, chunk: int) -> list[int]:
    samples = []
    for offset in range(0, size, chunk):
        t0 = now_ns()
        os.copy_file_range(src, dst, chunk, offset, offset)
        samples.append(now_ns() - t0)
    return samples


def _sendfile(src: int, dst: int, size: int, chunk: int) -> list[int]:
    samples = []
    os.lseek(dst, 0, os.SEEK_SET)
    for offset in range(0, size, chunk):
        t0 = now_ns()
        os.sendfile(dst, src, offset, chunk)
        samples.append(now_ns() - t0)
    return samples


def _splice(src: int, dst: int, size: int, chunk: int) -> list[int]:
    r, w = os.pipe()
    samples = []
    try:
        for offset in range(0, size, chunk):
            t0 = now_ns()
            moved = 0
            while moved < chunk:  # a pipe holds 64 KiB by default: move the chunk in pieces
                n = os.splice(src, w, chunk - moved, offset_src=offset + moved)
                done = 0
                while done < n:
                    done += os.splice(r, dst, n - done, offset_dst=offset + moved + done)
                moved += n
            samples.append(now_ns() - t0)
    finally:
        os.close(r)
        os.close(w)
    return samples


def _buffered(src: int, dst: int, size: int, chunk: int) -> list[int]:
    samples = []
    for offset in range(0, size, chunk):
        t0 = now_ns()
        os.pwrite(dst, os.pread(src, chunk, offset), offset)
        samples.append(now_ns() - t0)
    os.fsync(dst)
    return samples


def _measure(
    target: Target,
    op: str,
    src: str,
    dst: str,
    size: int,
    chunks: list[int],
    fn: CopyFn,
    direct: bool,
    expected: str,
) -> Observation:
    rows = []
    flags = os.O_DIRECT if direct else 0
    before = meminfo_bytes("Cached", "Dirty")
    peak = dict(before)
    try:
        for chunk in chunks:
            fs = os.open(src, os.O_RDONLY | flags)
            fd = os.open(dst, os.O_WRONLY | flags | (os.O_CREAT if not dst.startswith("/dev/") else 0), 0o600)
            try:
                start = now_ns()
                samples = fn(fs, fd, size, chunk)
                os.fsync(fd)
                elapsed = now_ns() - start
            finally:
                os.close(fs)
                os.close(fd)
            now = meminfo_bytes("Cached", "Dirty")
            peak = {k: max(peak[k], now[k]) for k in peak}
            same = _checksum(dst, size) == expected
            rows.append(
                {
                    "chunk_bytes": chunk,
                    **bandwidth(size, elapsed),
                    "verified": same,
                    "latency": summarize(samples, overhead_ns=target.provenance.get("timer_overhead_ns")),
                }
            )
    except OSError as exc:
        return target.observation(
            NAME, op, errno_name(exc.errno), detail=f"{exc.strerror}", metrics={"rows": rows}
        )
    verified = all(r["verified"] for r in rows)
    growth = {k: peak[k] - before[k] for k in before}
    detail = (
        f"{size >> 20} MiB per chunk size, checksums {'match' if verified else 'DIFFER'}; page cache grew "
        f"Cached {growth['Cached'] >> 10} KiB, Dirty {growth['Dirty'] >> 10} KiB"
    )
    return target.observation(
        NAME,
        op,
        "ok" if verified else "EIO",
        detail=detail,
        metrics={"rows": rows, "pagecache_growth_bytes": growth},
    )


@register(NAME, kinds=("pair",))
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    profile = PROFILES[params.get("profile", "quick")]
    size, chunks = profile["copy_bytes"], profile["chunks"]
    a, b = target.path, params["peer"]
    for device in (a, b):
        clear_for_destruction(device)
    expected = _fill(a, size, seed=41)
    buffer = mmap.mmap(-1, max(chunks))
    try:
        with memoryview(buffer) as view:
            paths: list[tuple[str, CopyFn, bool, list[int]]] = [
                ("odirect-anon", _odirect_via(view), True, chunks),
                ("copy-file-range", _copy_file_range, False, [MiB]),
                ("sendfile", _sendfile, False, [MiB]),
                ("splice", _splice, False, [MiB]),
                ("buffered", _buffered, False, [MiB]),
            ]
            for name, fn, direct, sizes in paths:
                yield _measure(target, f"d2d-blockdev-{name}", a, b, size, sizes, fn, direct, expected)
    finally:
        buffer.close()
    yield from _file_copies(target, a, b, size, params)


def _file_copies(target: Target, a: str, b: str, size: int, params: dict[str, Any]) -> Iterator[Observation]:
    fs = (params.get("filesystems") or ["ext4"])[0]
    mounts = []
    try:
        for device in (a, b):
            mkfs(device, fs)
            result = mount_dax(device, fs)
            if result.mountpoint is None:
                yield target.observation(
                    NAME,
                    "d2d-file-copies",
                    f"skipped:{result.outcome}",
                    detail=f"cannot mount {device} with DAX: {result.detail}",
                )
                return
            mounts.append(result.mountpoint)
        src, dst = (os.path.join(m, "pmemkit-d2d.dat") for m in mounts)
        expected = _fill(src, size, seed=42)
        buffer = mmap.mmap(-1, MiB)
        try:
            with memoryview(buffer) as view:
                for name, fn, direct in (
                    ("odirect-anon", _odirect_via(view), True),
                    ("copy-file-range", _copy_file_range, False),
                    ("sendfile", _sendfile, False),
                    ("splice", _splice, False),
                    ("buffered", _buffered, False),
                ):
                    yield _measure(
                        target, f"d2d-{fs}-dax-{name}", src, dst, size, [MiB], fn, direct, expected
                    )
        finally:
            buffer.close()
        yield _via_dax_buffer(target, mounts[0], src, dst, size, expected, fs)
    finally:
        for mountpoint in mounts:
            unmount(mountpoint)


def _via_dax_buffer(
    target: Target, mount_a: str, src: str, dst: str, size: int, expected: str, fs: str
) -> Observation:
    """O_DIRECT from the source file into a DAX-mapped buffer on the source's fs, then O_DIRECT out."""
    holder = os.path.join(mount_a, "pmemkit-d2d-buffer.dat")
    fd = os.open(holder, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, MiB)
        buf = mmap.mmap(fd, MiB, mmap.MAP_SHARED)
    finally:
        os.close(fd)
    try:
        with memoryview(buf) as view:
            return _measure(
                target,
                f"d2d-{fs}-dax-odirect-dax-buffer",
                src,
                dst,
                size,
                [MiB],
                _odirect_via(view),
                True,
                expected,
            )
    finally:
        buf.close()
        os.unlink(holder)
