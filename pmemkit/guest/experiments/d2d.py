"""The d2d experiment: pmem → pmem copies, the seed mail's "sector-to-sector I/O" side.

A copy between two block devices never shows the memory to user space through the MMU, so by
the seed mail's rule it needs no `struct page` for the pmem itself. On a pair of like devices
(two memmap ranges, two NVDIMM namespaces): block device to block device with O_DIRECT through an
anonymous buffer (chunk sizes 4 KiB … 4 MiB: bandwidth and per-chunk latency), copy_file_range,
sendfile, splice through a pipe, and a buffered copy; then, with a DAX filesystem on each, the
same between files plus O_DIRECT through a DAX-mapped buffer. Every copy is verified by checksum,
and the page cache's footprint (`Cached`, `Dirty`) during the copy is recorded.

Timing: each chunk's copy is one `measure.timing.time_each` sample (the per-chunk latency, the
loop's overhead calibrated once per pair and recorded under `latency.timing`). The bandwidth of a
row is not built from those samples: it is one bracket around the whole copy *and its fsync*
(`now_ns` before and after), a bulk figure that includes what the per-chunk samples leave out (the
final flush, the loop between chunks), so it cannot be one `time_each` sample among others.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from pmemkit.guest.experiments import Target, register
from pmemkit.guest.prepare import mkfs, mount_dax, unmount
from pmemkit.guest.safety import clear_for_destruction
from pmemkit.guest.syscalls import errno_name, meminfo_bytes
from pmemkit.guest.transfer import MiB, pattern, sha256_range, verdict
from pmemkit.measure.bandwidth import bandwidth
from pmemkit.measure.clock import now_ns
from pmemkit.measure.timing import Timed, overhead_for, time_each
from pmemkit.scenario import Observation

NAME = "d2d"
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"copy_bytes": 16 * MiB, "chunks": [4096, 65536, MiB, 4 * MiB]},
    "full": {"copy_bytes": 64 * MiB, "chunks": [4096, 16384, 65536, 262144, MiB, 4 * MiB]},
}
#: (src fd, dst fd, chunk) -> a context giving `op(i)`: copy chunk i (bytes the kernel said it moved).
CopyFn = Callable[[int, int, int], AbstractContextManager[Callable[[int], int]]]


def _fill(path: str, size: int, seed: int) -> str:
    """Write `size` pattern bytes to the start of `path`; returns their sha256."""
    data = pattern(seed, size).tobytes()
    flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if not path.startswith("/dev/") else 0)
    fd = os.open(path, flags, 0o600)
    try:
        done = 0
        while done < size:
            done += os.write(fd, data[done:])
        os.fsync(fd)
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


def _odirect_via(buffer: memoryview) -> CopyFn:
    @contextmanager
    def copy(src: int, dst: int, chunk: int) -> Iterator[Callable[[int], int]]:
        def one(i: int) -> int:
            n = os.preadv(src, [buffer[:chunk]], i * chunk)
            return os.pwritev(dst, [buffer[:n]], i * chunk)

        yield one

    return copy


@contextmanager
def _copy_file_range(src: int, dst: int, chunk: int) -> Iterator[Callable[[int], int]]:
    yield lambda i: os.copy_file_range(src, dst, chunk, i * chunk, i * chunk)


@contextmanager
def _sendfile(src: int, dst: int, chunk: int) -> Iterator[Callable[[int], int]]:
    os.lseek(dst, 0, os.SEEK_SET)  # sendfile writes at dst's file position: chunks go in order
    yield lambda i: os.sendfile(dst, src, i * chunk, chunk)


@contextmanager
def _splice(src: int, dst: int, chunk: int) -> Iterator[Callable[[int], int]]:
    r, w = os.pipe()

    def one(i: int) -> int:
        offset, done = i * chunk, 0
        while done < chunk:  # a pipe holds 64 KiB by default: move the chunk in pieces
            n = os.splice(src, w, chunk - done, offset_src=offset + done)
            if n == 0:
                break  # end of the source: the copy is short, and the checksum will say so
            out = 0
            while out < n:
                out += os.splice(r, dst, n - out, offset_dst=offset + done + out)
            done += n
        return done

    try:
        yield one
    finally:
        os.close(r)
        os.close(w)


@contextmanager
def _buffered(src: int, dst: int, chunk: int) -> Iterator[Callable[[int], int]]:
    yield lambda i: os.pwrite(dst, os.pread(src, chunk, i * chunk), i * chunk)


def _copy(fn: CopyFn, src: int, dst: int, size: int, chunk: int, key: str) -> tuple[Timed, int]:
    """Copy `size` bytes in `chunk`s: one `time_each` sample per chunk, in offset order."""
    with fn(src, dst, chunk) as one:
        timed = time_each(one, -(-size // chunk), 0, key=key, collect=True)
    return timed, sum(int(n) for n in timed.results or ())


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
    """One copy of `size` bytes per chunk size; after each, the whole source and destination ranges are
    checksummed against what was written to the source."""
    rows = []
    flags = os.O_DIRECT if direct else 0
    overhead_for(target.device)  # calibrated before the bandwidth bracket, not inside it
    before = meminfo_bytes("Cached", "Dirty")
    peak = dict(before)
    try:
        for chunk in chunks:
            fs = os.open(src, os.O_RDONLY | flags)
            fd = os.open(dst, os.O_WRONLY | flags | (os.O_CREAT if not dst.startswith("/dev/") else 0), 0o600)
            try:
                start = now_ns()
                timed, moved = _copy(fn, fs, fd, size, chunk, target.device)
                os.fsync(fd)
                elapsed = now_ns() - start
            finally:
                os.close(fs)
                os.close(fd)
            now = meminfo_bytes("Cached", "Dirty")
            peak = {k: max(peak[k], now[k]) for k in peak}
            source, destination = sha256_range(src, size)[0], sha256_range(dst, size)[0]
            rows.append(
                {
                    "chunk_bytes": chunk,
                    **bandwidth(size, elapsed),
                    "moved_bytes": moved,
                    "source_verified": source == expected,
                    "verified": source == expected and destination == expected,
                    "latency": timed.summary(),
                }
            )
    except OSError as exc:
        return target.observation(
            NAME,
            op,
            errno_name(exc.errno),
            detail=f"{exc.strerror}",
            metrics={"rows": rows},
            repetitions=len(rows),
        )
    growth = {k: peak[k] - before[k] for k in before}
    moved = min(r["moved_bytes"] for r in rows)
    outcome, detail = verdict(
        moved,
        size,
        all(r["verified"] for r in rows),
        f"{len(rows)} copies (one per chunk size), source and destination checksummed",
    )
    detail += f"; page cache grew Cached {growth['Cached'] >> 10} KiB, Dirty {growth['Dirty'] >> 10} KiB"
    return target.observation(
        NAME,
        op,
        outcome,
        detail=detail,
        metrics={"rows": rows, "pagecache_growth_bytes": growth},
        repetitions=len(rows),
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
