"""The O_DIRECT experiment: can the block layer DMA into and out of this memory?

This is the seed mail's question asked of the kernel. O_DIRECT pins the user buffer's pages
(get_user_pages) and hands them to the block layer; that needs `struct page`. Per target the
buffer is the target's own mapping: a DAX file, device-dax, a page-cache file, anonymous memory,
or — the page-less control — pmem mapped through /dev/mem before any driver claimed it.

Cases (fstests generic/413 and ndctl's dax-pmd test): O_DIRECT read from a file on the ordinary
disk into the buffer and O_DIRECT write from it, with the buffer prefaulted, unfaulted, used by a
forked child, and mapped read-only; on DAX filesystems also O_DIRECT on a DAX *file* with an
anonymous buffer; and a buffered read into the buffer as the baseline that needs no pinning.
Every transfer is data-verified; latency per I/O size (512 B … 1 MiB) is a distribution.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from pmemkit.guest.experiments import Target, register
from pmemkit.guest.mapping import Mapping
from pmemkit.guest.syscalls import errno_name, pread_into_address, statx_dax
from pmemkit.measure.clock import now_ns
from pmemkit.measure.stats import summarize
from pmemkit.scenario import Observation

NAME = "odirect"
KINDS = ("fs", "devdax", "pagecache", "anon", "devmem")
BUFFER_BYTES = 2 << 20  # one 2 MiB unit: device-dax and PMD friendly
CASE_BYTES = 64 << 10
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"sizes": [512, 4096, 65536, 1 << 20], "repetitions": 16},
    "full": {"sizes": [512, 4096, 16384, 65536, 262144, 1 << 20], "repetitions": 128},
}


def _buffer_kind(target: Target, mapping: Mapping) -> str:
    if target.kind == "devdax":
        return "dax"
    if target.kind == "devmem":
        return "pageless"
    if target.kind == "anon":
        return "anon"
    if mapping.path and statx_dax(mapping.path)[0]:
        return "dax"
    return "pagecache-mmap"


def _partner(target: Target, name: str, data: np.ndarray | None = None) -> str:
    path = os.path.join(target.scratch_dir, f"pmemkit-odirect-{name}.dat")
    if data is not None:
        with open(path, "wb") as f:
            f.write(data.tobytes())
            f.flush()
            os.fsync(f.fileno())
    return path


def _verdict(n: int, expected: int, same: bool) -> tuple[str, str]:
    if n == expected and same:
        return "ok", f"{n} bytes; data verified"
    if n != expected:
        return "ok", f"short transfer: {n} of {expected} bytes"
    return "EIO", "DATA MISMATCH found by pmemkit's check (not a kernel errno)"


def direct_read_into(view: memoryview, src: str, length: int) -> int:
    """O_DIRECT pread of `length` bytes from `src` into the start of `view`; returns bytes read."""
    fd = os.open(src, os.O_RDONLY | os.O_DIRECT)
    try:
        return os.preadv(fd, [view[:length]], 0)
    finally:
        os.close(fd)


def direct_write_from(view: memoryview, dst: str, length: int) -> int:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
    try:
        return os.pwritev(fd, [view[:length]], 0)
    finally:
        os.close(fd)


def _read_case(target: Target, mapping: Mapping, op: str, *, prefault: bool) -> Observation:
    data = np.random.default_rng(11).integers(0, 256, CASE_BYTES, dtype=np.uint8)
    src = _partner(target, "src", data)
    if prefault:
        mapping.array[:CASE_BYTES] = 0
    try:
        with memoryview(mapping.array) as view:
            n = direct_read_into(view, src, CASE_BYTES)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"O_DIRECT preadv: {exc.strerror}")
    outcome, detail = _verdict(n, CASE_BYTES, bool(np.array_equal(mapping.array[:CASE_BYTES], data)))
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _write_case(target: Target, mapping: Mapping, op: str) -> Observation:
    data = np.random.default_rng(12).integers(0, 256, CASE_BYTES, dtype=np.uint8)
    mapping.array[:CASE_BYTES] = data
    dst = _partner(target, "dst")
    try:
        with memoryview(mapping.array) as view:
            n = direct_write_from(view, dst, CASE_BYTES)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"O_DIRECT pwritev: {exc.strerror}")
    with open(dst, "rb") as f:
        written = np.frombuffer(f.read(), dtype=np.uint8)
    outcome, detail = _verdict(n, CASE_BYTES, bool(np.array_equal(written, data)))
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _buffered_case(target: Target, mapping: Mapping, op: str) -> Observation:
    """A plain read() into the buffer: the CPU copies, nothing is pinned — works without struct page."""
    data = np.random.default_rng(13).integers(0, 256, CASE_BYTES, dtype=np.uint8)
    src = _partner(target, "buffered", data)
    try:
        fd = os.open(src, os.O_RDONLY)
        try:
            with memoryview(mapping.array) as view:
                n = os.preadv(fd, [view[:CASE_BYTES]], 0)
        finally:
            os.close(fd)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"buffered preadv: {exc.strerror}")
    outcome, detail = _verdict(n, CASE_BYTES, bool(np.array_equal(mapping.array[:CASE_BYTES], data)))
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _fork_case(target: Target, mapping: Mapping, op: str) -> Observation:
    """The child of a fork does the O_DIRECT read into the inherited shared mapping."""
    data = np.random.default_rng(14).integers(0, 256, CASE_BYTES, dtype=np.uint8)
    src = _partner(target, "fork", data)
    mapping.array[:CASE_BYTES] = 0
    pid = os.fork()
    if pid == 0:  # child: report the errno (or 0) as exit status, never return into the runner
        code = 0
        try:
            with memoryview(mapping.array) as view:
                if direct_read_into(view, src, CASE_BYTES) != CASE_BYTES:
                    code = 254
        except OSError as exc:
            code = exc.errno or 255
        except BaseException:
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        name = "EIO" if code in (254, 255) or code < 0 else errno_name(code)
        return target.observation(NAME, op, name, detail=f"child exit status {code}")
    shared = mapping.kind_shared
    same = bool(np.array_equal(mapping.array[:CASE_BYTES], data)) if shared else True
    outcome, detail = _verdict(CASE_BYTES, CASE_BYTES, same)
    if not shared:
        detail += " (private mapping: the child's copy, not checked from the parent)"
    return target.observation(NAME, op, outcome, detail=detail)


def _readonly_case(target: Target, op: str) -> Observation:
    """O_DIRECT read into a PROT_READ mapping: the kernel must refuse to write into it."""
    src = _partner(target, "ro", np.ones(CASE_BYTES, dtype=np.uint8))
    try:
        with Mapping(target, "readonly", BUFFER_BYTES, readonly=True, offset=_region(target, 1)) as m:
            fd = os.open(src, os.O_RDONLY | os.O_DIRECT)
            try:
                n = pread_into_address(fd, m.address, CASE_BYTES, 0)
            finally:
                os.close(fd)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"O_DIRECT pread: {exc.strerror}")
    return target.observation(NAME, op, "ok", detail=f"{n} bytes landed in a read-only mapping")


def _region(target: Target, index: int) -> int:
    if target.kind == "devdax":
        return index * BUFFER_BYTES
    if target.kind == "devmem":
        return int(target.params.get("phys_start", 0)) + index * BUFFER_BYTES
    return 0


def _latency(target: Target, mapping: Mapping, kind: str, profile: dict[str, Any]) -> Observation:
    reps = profile["repetitions"]
    src = _partner(target, "lat", np.random.default_rng(15).integers(0, 256, 1 << 20, dtype=np.uint8))
    dst = _partner(target, "lat-dst")
    rows = []
    mapping.array[: 1 << 20] = 1
    with memoryview(mapping.array) as view:
        for size in profile["sizes"]:
            for direction in ("read-into", "write-from"):
                samples = np.empty(reps, dtype=np.int64)
                path = src if direction == "read-into" else dst
                flags = os.O_RDONLY if direction == "read-into" else os.O_WRONLY | os.O_CREAT
                fd = os.open(path, flags | os.O_DIRECT, 0o600)
                try:
                    for i in range(reps):
                        t0 = now_ns()
                        if direction == "read-into":
                            os.preadv(fd, [view[:size]], 0)
                        else:
                            os.pwritev(fd, [view[:size]], 0)
                        samples[i] = now_ns() - t0
                finally:
                    os.close(fd)
                overhead = target.provenance.get("timer_overhead_ns")
                rows.append(
                    {
                        "direction": direction,
                        "io_bytes": size,
                        "latency": summarize(samples, overhead_ns=overhead),
                    }
                )
    return target.observation(
        NAME,
        f"odirect-latency-{kind}",
        "ok",
        metrics={"rows": rows},
        detail=f"O_DIRECT to/from a file on the root disk, {reps} I/Os per size",
    )


@register(NAME, kinds=KINDS)
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    profile = PROFILES[params.get("profile", "quick")]
    with Mapping(target, "odirect", BUFFER_BYTES, offset=_region(target, 0)) as m:
        kind = _buffer_kind(target, m)
        yield _read_case(target, m, f"odirect-read-into-{kind}", prefault=True)
        yield _write_case(target, m, f"odirect-write-from-{kind}")
        yield _buffered_case(target, m, f"buffered-read-into-{kind}")
        if target.kind == "devmem":
            return  # the control stops here: no fork or latency games on raw physical memory
        yield _latency(target, m, kind, profile)
        yield _fork_case(target, m, f"odirect-read-into-{kind}:after-fork")
    with Mapping(target, "odirect-fresh", BUFFER_BYTES, offset=_region(target, 2)) as fresh:
        yield _read_case(target, fresh, f"odirect-read-into-{kind}:unfaulted", prefault=False)
    yield _readonly_case(target, f"odirect-read-into-{kind}:read-only")
    if target.kind == "fs":
        yield from _dax_file_cases(target)


def _dax_file_cases(target: Target) -> Iterator[Observation]:
    """The other two generic/413 directions: O_DIRECT on the DAX file itself, anonymous buffer."""
    path = os.path.join(target.path, "pmemkit-odirect-file.dat")
    data = np.random.default_rng(16).integers(0, 256, CASE_BYTES, dtype=np.uint8)
    buf = mmap.mmap(-1, CASE_BYTES)
    try:
        with memoryview(buf) as view:
            view[:] = data.tobytes()
            try:
                n = direct_write_from(view, path, CASE_BYTES)
                yield target.observation(
                    NAME,
                    "odirect-write-dax-file",
                    "ok" if n == CASE_BYTES else "ok",
                    detail=f"{n} bytes from an anonymous buffer",
                )
            except OSError as exc:
                yield target.observation(
                    NAME, "odirect-write-dax-file", errno_name(exc.errno), detail=exc.strerror or ""
                )
                return
            view[:] = bytes(CASE_BYTES)
            try:
                n = direct_read_into(view, path, CASE_BYTES)
            except OSError as exc:
                yield target.observation(
                    NAME, "odirect-read-dax-file", errno_name(exc.errno), detail=exc.strerror or ""
                )
                return
            same = bytes(view[:CASE_BYTES]) == data.tobytes()
        outcome, detail = _verdict(n, CASE_BYTES, same)
        yield target.observation(NAME, "odirect-read-dax-file", outcome, detail=detail + " (into anonymous)")
    finally:
        buf.close()
        if os.path.exists(path):
            os.unlink(path)
