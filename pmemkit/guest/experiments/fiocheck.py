"""The fio cross-check: pmemkit and fio measure the same workload on the same file in the same boot.

Two workloads (issue 4): O_DIRECT 4 KiB random reads with one pread per I/O (fio `psync`) and a
sequential read through a mapping (fio `mmap` engine: memcpy out of the mapping). pmemkit runs
its own loop first, then fio, on one preallocated file; `compare` puts p50, p99 and bandwidth
side by side with the ratio pmemkit / fio. pmemkit's loop is Python: under TCG the interpreter's
cost per I/O is part of what it measures, and the observation says how large it is.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from pmemkit.guest import GuestError
from pmemkit.guest import fio as fiolib
from pmemkit.guest.experiments import Target, register
from pmemkit.guest.syscalls import errno_name
from pmemkit.measure.bandwidth import bytes_per_s
from pmemkit.measure.clock import now_ns
from pmemkit.measure.stats import summarize
from pmemkit.measure.timing import calibrate_overhead
from pmemkit.scenario import Observation

NAME = "fio"
PROFILES: dict[str, dict[str, int]] = {
    "quick": {"file_bytes": 16 << 20, "ios": 256, "loops": 2},
    "full": {"file_bytes": 64 << 20, "ios": 4096, "loops": 8},
}
BLOCK = 4096
SEQ_BLOCK = 1 << 20
FIO_TIMEOUT_S = 300.0


def _make_file(path: str, size: int) -> None:
    """Preallocated and written once: both tools read real data, neither allocates blocks."""
    chunk = np.random.default_rng(21).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    with open(path, "wb") as f:
        for _ in range(size // len(chunk)):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def _pmemkit_randread(path: str, size: int, ios: int) -> tuple[np.ndarray, int]:
    """O_DIRECT 4 KiB preads at random aligned offsets into an anonymous buffer."""
    offsets = (np.random.default_rng(22).integers(0, size // BLOCK, ios) * BLOCK).tolist()
    buf = mmap.mmap(-1, BLOCK)
    samples = np.empty(ios, dtype=np.int64)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        with memoryview(buf) as view:
            start = now_ns()
            for i, offset in enumerate(offsets):
                t0 = now_ns()
                os.preadv(fd, [view], offset)
                samples[i] = now_ns() - t0
            elapsed = now_ns() - start
    finally:
        os.close(fd)
        buf.close()
    return samples, elapsed


def _pmemkit_mmap_seqread(path: str, size: int, loops: int) -> int:
    """`loops` sequential passes of 1 MiB memcpys, each pass on a fresh numpy.memmap; elapsed ns.

    A fresh mapping per pass because fio closes and reopens (so remaps) its file for every loop:
    both then pay the page faults of every pass.
    """
    buffer = np.empty(SEQ_BLOCK, dtype=np.uint8)
    start = now_ns()
    for _ in range(loops):
        array = np.memmap(path, dtype=np.uint8, mode="r", shape=(size,))
        for offset in range(0, size, SEQ_BLOCK):
            np.copyto(buffer, array[offset : offset + SEQ_BLOCK])
        array._mmap.close()  # type: ignore[attr-defined]  # unmap now, as fio does per loop
        del array
    return now_ns() - start


@register(NAME, kinds=("fs", "pagecache"))
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    profile = PROFILES[params.get("profile", "quick")]
    size, ios, loops = profile["file_bytes"], profile["ios"], profile["loops"]
    path = os.path.join(target.path, "pmemkit-fio.dat")
    _make_file(path, size)
    try:
        yield _randread(target, path, size, ios)
        yield _seqread(target, path, size, loops)
    finally:
        os.unlink(path)


def _randread(target: Target, path: str, size: int, ios: int) -> Observation:
    op = "fio-odirect-randread"
    try:
        samples, elapsed = _pmemkit_randread(path, size, ios)
        loop = calibrate_overhead(batches=3, repetitions=200)
        result = fiolib.run(fiolib.odirect_randread_job(path, size, ios), FIO_TIMEOUT_S)
        null = fiolib.run(fiolib.null_randread_job(path, size, ios), FIO_TIMEOUT_S)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"{exc.strerror}")
    except GuestError as exc:
        return target.observation(NAME, op, "skipped:fio-failed", detail=str(exc))
    summary = summarize(samples, overhead_ns=loop.overhead_ns)
    comparison = fiolib.compare(summary, bytes_per_s(ios * BLOCK, elapsed), result)
    return target.observation(
        NAME,
        op,
        "ok",
        metrics={
            "pmemkit": summary,
            "fio": result.to_dict(),
            "comparison": comparison,
            "python_loop_overhead_ns": loop.overhead_ns,
            "fio_null_engine": null.to_dict(),
            "fio_null_p50_ns": null.percentile("p50"),
        },
        detail=(
            f"{ios} random 4 KiB O_DIRECT preads, same file; pmemkit/fio p50 "
            f"{_fmt(comparison['p50']['ratio'])}, p99 {_fmt(comparison['p99']['ratio'])}, "
            f"bandwidth {_fmt(comparison['bw_bytes']['ratio'])}; per-I/O cost of the tools themselves: "
            f"pmemkit's Python loop {loop.overhead_ns} ns, fio's null engine p50 "
            f"{null.percentile('p50') or 0:.0f} ns"
        ),
        repetitions=ios,
    )


def _seqread(target: Target, path: str, size: int, loops: int) -> Observation:
    op = "fio-mmap-seqread"
    try:
        elapsed = _pmemkit_mmap_seqread(path, size, loops)
        result = fiolib.run(fiolib.mmap_seqread_job(path, size, SEQ_BLOCK, loops=loops), FIO_TIMEOUT_S)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"{exc.strerror}")
    except GuestError as exc:
        return target.observation(NAME, op, "skipped:fio-failed", detail=str(exc))
    mine = bytes_per_s(size * loops, elapsed)
    ratio = mine / result.bw_bytes if result.bw_bytes else None
    return target.observation(
        NAME,
        op,
        "ok",
        metrics={"pmemkit_bw_bytes": mine, "fio": result.to_dict(), "bw_ratio": ratio, "loops": loops},
        detail=f"{loops} passes of 1 MiB memcpys, a fresh mapping per pass as fio does (faults in both); "
        f"pmemkit/fio bandwidth {_fmt(ratio)}",
        repetitions=loops,
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"
