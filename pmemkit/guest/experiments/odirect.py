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

import dataclasses
import mmap
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pmemkit.guest.experiments import Target, mapping_of, register, with_mapping
from pmemkit.guest.mapping import Mapping
from pmemkit.guest.syscalls import errno_name, pread_into_address, statx_dax
from pmemkit.guest.transfer import partner_path, pattern, region_offset, verdict, write_partner
from pmemkit.measure.timing import time_each
from pmemkit.scenario import Observation

NAME = "odirect"
KINDS = ("fs", "devdax", "pagecache", "anon", "devmem")
BUFFER_BYTES = 2 << 20  # one 2 MiB unit: device-dax and PMD friendly
CASE_BYTES = 64 << 10
#: Samples per (size, direction). Small I/Os get enough for a printed p99 (>= 100, issue 15) and a
#: p50 CI of a few per cent; 1 MiB I/Os cost ~1 ms each under TCG, so they get fewer (their p99 is
#: then withheld, said with the count) to keep the quick `make run` within about 3 minutes.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"sizes": [512, 4096, 65536, 1 << 20], "repetitions": 256, "large_repetitions": 64, "warmup": 4},
    "full": {
        "sizes": [512, 4096, 16384, 65536, 262144, 1 << 20],
        "repetitions": 2048,
        "large_repetitions": 512,
        "warmup": 16,
    },
}
LARGE_IO = 256 << 10  # from this size on, `large_repetitions`


#: The buffer each target kind gives, as operation names spell it. A name follows the target kind
#: alone, never what the kernel did: a DAX filesystem that fell back keeps `…-dax`, and says so in
#: `metrics["mapping"]`.
BUFFER_NAMES = {
    "fs": "dax",
    "devdax": "dax",
    "pagecache": "pagecache-mmap",
    "anon": "anon",
    "devmem": "pageless",
}


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
    data = pattern(11, CASE_BYTES)
    src = write_partner(target, "odirect-src", data)
    if prefault:
        mapping.array[:CASE_BYTES] = 0
    try:
        with memoryview(mapping.array) as view:
            n = direct_read_into(view, src, CASE_BYTES)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"O_DIRECT preadv: {exc.strerror}")
    outcome, detail = verdict(n, CASE_BYTES, bool(np.array_equal(mapping.array[:CASE_BYTES], data)))
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _write_case(target: Target, mapping: Mapping, op: str) -> Observation:
    data = pattern(12, CASE_BYTES)
    mapping.array[:CASE_BYTES] = data
    dst = partner_path(target, "odirect-dst")
    try:
        with memoryview(mapping.array) as view:
            n = direct_write_from(view, dst, CASE_BYTES)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"O_DIRECT pwritev: {exc.strerror}")
    with open(dst, "rb") as f:
        written = np.frombuffer(f.read(), dtype=np.uint8)
    outcome, detail = verdict(n, CASE_BYTES, bool(np.array_equal(written, data)))
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _buffered_case(target: Target, mapping: Mapping, op: str) -> Observation:
    """A plain read() into the buffer: the CPU copies, nothing is pinned — works without struct page."""
    data = pattern(13, CASE_BYTES)
    src = write_partner(target, "odirect-buffered", data)
    try:
        fd = os.open(src, os.O_RDONLY)
        try:
            with memoryview(mapping.array) as view:
                n = os.preadv(fd, [view[:CASE_BYTES]], 0)
        finally:
            os.close(fd)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"buffered preadv: {exc.strerror}")
    outcome, detail = verdict(n, CASE_BYTES, bool(np.array_equal(mapping.array[:CASE_BYTES], data)))
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _fork_case(target: Target, mapping: Mapping, op: str) -> Observation:
    """The child of a fork does the O_DIRECT read into the inherited mapping and checks every byte
    itself (a private mapping's copy is the child's alone); a shared one is checked by the parent too."""
    data = pattern(14, CASE_BYTES)
    src = write_partner(target, "odirect-fork", data)
    mapping.array[:CASE_BYTES] = 0
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report (bytes read or -errno, data equal) through the pipe, never return
        code = 0
        try:
            os.close(r)
            try:
                with memoryview(mapping.array) as view:
                    n = direct_read_into(view, src, CASE_BYTES)
                same = bool(np.array_equal(mapping.array[:CASE_BYTES], data))
            except OSError as exc:
                n, same = -(exc.errno or 5), False
            os.write(w, struct.pack("<q?", n, same))
        except BaseException:
            code = 255
        os._exit(code)
    os.close(w)
    try:
        report = os.read(r, struct.calcsize("<q?"))
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or len(report) != struct.calcsize("<q?"):
        return target.observation(NAME, op, "skipped:child-failed", detail=f"child exit status {code}")
    n, same = struct.unpack("<q?", report)
    if n < 0:
        return target.observation(NAME, op, errno_name(-n), detail="O_DIRECT preadv in the forked child")
    if mapping.kind_shared:
        same = same and bool(np.array_equal(mapping.array[:CASE_BYTES], data))
    where = "checked by the child and the parent" if mapping.kind_shared else "checked by the child"
    outcome, detail = verdict(n, CASE_BYTES, same, f"O_DIRECT preadv in the forked child, {where}")
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _readonly_case(target: Target, op: str) -> Observation:
    """O_DIRECT read into a PROT_READ mapping: the kernel must refuse to write into it."""
    src = write_partner(target, "odirect-ro", np.ones(CASE_BYTES, dtype=np.uint8))
    offset = region_offset(target, 1, BUFFER_BYTES)
    try:
        with Mapping(target, "readonly", BUFFER_BYTES, readonly=True, offset=offset) as m:
            fd = os.open(src, os.O_RDONLY | os.O_DIRECT)
            try:
                n = pread_into_address(fd, m.address, CASE_BYTES, 0)
            finally:
                os.close(fd)
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"O_DIRECT pread: {exc.strerror}")
    return target.observation(NAME, op, "ok", detail=f"{n} bytes landed in a read-only mapping")


def _latency(target: Target, mapping: Mapping, kind: str, profile: dict[str, Any]) -> Observation:
    """Per size and direction, `time_each` around one O_DIRECT preadv/pwritev between the buffer and a
    file on the root disk; byte counts are checked after the loop, outside the timed path.

    Caller-side on purpose: the subject here is the buffer (the target's own mapping), and the
    timing helper (`guest.prtime`) reads into a page of its own and does no writes, so it would
    time a different buffer; the I/O's own latency beside fio is the fio check's."""
    src = write_partner(target, "odirect-lat", pattern(15, 1 << 20))
    dst = partner_path(target, "odirect-lat-dst")
    rows = []
    short = []
    counts = set()
    mapping.array[: 1 << 20] = 1
    with memoryview(mapping.array) as view:
        for size in profile["sizes"]:
            reps = profile["large_repetitions"] if size >= LARGE_IO else profile["repetitions"]
            counts.add(reps)
            for direction in ("read-into", "write-from"):
                path = src if direction == "read-into" else dst
                flags = os.O_RDONLY if direction == "read-into" else os.O_WRONLY | os.O_CREAT
                fd = os.open(path, flags | os.O_DIRECT, 0o600)
                try:
                    timed = time_each(
                        _io_call(fd, view[:size], direction == "read-into"),
                        reps,
                        profile["warmup"],
                        key=target.device,
                        collect=True,
                    )
                finally:
                    os.close(fd)
                short += [f"{direction} {n} of {size} bytes" for n in timed.results or () if n != size]
                rows.append({"direction": direction, "io_bytes": size, "latency": timed.summary()})
    detail = (
        f"O_DIRECT to/from a file on the root disk, {'/'.join(map(str, sorted(counts, reverse=True)))} I/Os "
        f"per size (fewer from {LARGE_IO >> 10} KiB), {profile['warmup']} untimed warm-up I/Os each; "
        "timed by measure.timing.time_each, its calibrated loop overhead reported, not subtracted: "
        "the latency a Python caller sees (the interpreter's cost per call is in it; the I/O's own "
        "latency, timed in C by prtime, is the fio check's)"
    )
    if short:
        detail += f"; short transfer: {len(short)} I/Os, e.g. {short[0]}"
    return target.observation(
        NAME,
        f"odirect-latency-{kind}",
        "short" if short else "ok",
        metrics={"rows": rows},
        detail=detail,
        repetitions=max(counts),
    )


def _io_call(fd: int, buffer: memoryview, read: bool) -> Callable[[int], int]:
    """One O_DIRECT I/O at offset 0: what a single timed sample does (returns the byte count)."""
    buffers = [buffer]
    if read:
        return lambda _: os.preadv(fd, buffers, 0)
    return lambda _: os.pwritev(fd, buffers, 0)


def _variant(obs: Observation, variant: str) -> Observation:
    """The observation of a case tried another way, said in its `variant` field, not its name."""
    return dataclasses.replace(obs, variant=variant)


@register(NAME, kinds=KINDS)
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    profile = PROFILES[params.get("profile", "quick")]
    kind = BUFFER_NAMES[target.kind]
    with Mapping(target, "odirect", BUFFER_BYTES, offset=region_offset(target, 0, BUFFER_BYTES)) as m:
        mapping = mapping_of(target, bool(m.path) and statx_dax(m.path)[0])
        cases = [
            lambda: _read_case(target, m, f"odirect-read-into-{kind}", prefault=True),
            lambda: _write_case(target, m, f"odirect-write-from-{kind}"),
            lambda: _buffered_case(target, m, f"buffered-read-into-{kind}"),
        ]
        if target.kind != "devmem":  # the control stops there: no fork or latency games on raw memory
            cases += [
                lambda: _latency(target, m, kind, profile),
                lambda: _variant(_fork_case(target, m, f"odirect-read-into-{kind}"), "after-fork"),
            ]
        for case in cases:
            yield with_mapping(target, case(), mapping)
    if target.kind == "devmem":
        return
    fresh_offset = region_offset(target, 2, BUFFER_BYTES)
    with Mapping(target, "odirect-fresh", BUFFER_BYTES, offset=fresh_offset) as fresh:
        unfaulted = _variant(
            _read_case(target, fresh, f"odirect-read-into-{kind}", prefault=False), "unfaulted"
        )
        yield with_mapping(target, unfaulted, mapping)
    readonly = _variant(_readonly_case(target, f"odirect-read-into-{kind}"), "read-only")
    yield with_mapping(target, readonly, mapping)
    if target.kind == "fs":
        yield from _dax_file_cases(target)


def _dax_file_cases(target: Target) -> Iterator[Observation]:
    """The other two generic/413 directions: O_DIRECT on the DAX file itself, anonymous buffer.

    The write is verified by a plain read of the file, the read by comparing the buffer; the
    observations carry whether the file really is DAX (`mapping`), as the buffer cases do.
    """
    path = os.path.join(target.path, "pmemkit-odirect-file.dat")
    data = pattern(16, CASE_BYTES)
    buf = mmap.mmap(-1, CASE_BYTES)
    try:
        with memoryview(buf) as view:
            view[:] = data.tobytes()

            def written() -> bool:
                with open(path, "rb") as f:
                    return f.read(CASE_BYTES + 1) == data.tobytes()

            def read_back() -> bool:
                return bytes(view[:CASE_BYTES]) == data.tobytes()

            steps = (
                (
                    "odirect-write-dax-file",
                    direct_write_from,
                    written,
                    "O_DIRECT pwritev from an anonymous buffer",
                ),
                (
                    "odirect-read-dax-file",
                    direct_read_into,
                    read_back,
                    "O_DIRECT preadv into an anonymous buffer",
                ),
            )
            for op, call, landed, what in steps:
                try:
                    n = call(view, path, CASE_BYTES)
                except OSError as exc:
                    yield target.observation(NAME, op, errno_name(exc.errno), detail=exc.strerror or "")
                    return
                mapping = mapping_of(target, statx_dax(path)[0])
                outcome, detail = verdict(n, CASE_BYTES, landed(), what)
                observation = target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})
                yield with_mapping(target, observation, mapping)
                view[:] = bytes(CASE_BYTES)  # the read must bring the data back, not find it there
    finally:
        buf.close()
        if os.path.exists(path):
            os.unlink(path)
