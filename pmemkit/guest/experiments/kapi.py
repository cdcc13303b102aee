"""The kapi experiment: kernel interfaces that take references to the mapping's pages.

The seed mail: with `struct page`, "DMA agents, futexes, everything will Just Work". Each case
hands the mapping to a kernel interface that must find (and often pin) its pages:
- shared futex: the futex key of a shared mapping is derived from its page (get_futex_key);
  a mismatched FUTEX_WAIT returns EAGAIN once the key is found, then a forked waiter is woken
  and the wake latency measured;
- vmsplice of the mapping into a pipe (get_user_pages), then splice out to a file, verified;
- io_uring fixed buffers (IORING_REGISTER_BUFFERS, then one READ_FIXED into the buffer);
- long-term pinning as RDMA and vfio do it (FOLL_LONGTERM). Without RDMA hardware the proxy is
  AF_XDP umem registration: xdp_umem_pin_pages() calls pin_user_pages(FOLL_WRITE | FOLL_LONGTERM)
  on the user buffer, the same GUP path and the same check_vma_flags() refusals as an RDMA MR;
- fork then write in the child (copy-on-write of a MAP_PRIVATE mapping), mremap, madvise.

Timing: the futex wake latency is the one number here, and it does not go through
`measure.timing.time_each` on purpose. A sample starts in the parent (its clock stored in the
shared word's page just before FUTEX_WAKE) and ends in the forked waiter when it runs again: two
processes, one clock read each, no call that a loop in one process could bracket. `time_each`
would time the parent's FUTEX_WAKE syscall, which returns before the waiter is scheduled, i.e. a
different quantity. The summary says so under `wake_latency.timing`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from pmemkit.guest import decisions
from pmemkit.guest.experiments import Target, mapping_of, register, with_mapping
from pmemkit.guest.mapping import PAGE, Mapping
from pmemkit.guest.syscalls import errno_name, files_are_dax
from pmemkit.guest.transfer import partner_path, pattern, region_offset, verdict, write_partner
from pmemkit.guest.uring import Ring
from pmemkit.measure.clock import now_ns
from pmemkit.measure.stats import summarize
from pmemkit.scenario import Observation

NAME = "kapi"
KINDS = ("fs", "devdax", "pagecache", "anon", "devmem")
SIZE = 2 << 20
CHUNK = 64 << 10
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mremap.restype = ctypes.c_void_p
_libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
_libc.vmsplice.restype = ctypes.c_ssize_t
SYS_FUTEX = 202
FUTEX_WAIT, FUTEX_WAKE = 0, 1  # without FUTEX_PRIVATE_FLAG: the shared (page-keyed) variants
AF_XDP, SOL_XDP, XDP_UMEM_REG = 44, 283, 4
MREMAP_MAYMOVE = 1
MAP_FAILED = ctypes.c_void_p(-1).value
WAKES = {"quick": 16, "full": 128}
#: How a wake-latency sample is taken (see the module docstring: not `time_each`, and why).
WAKE_TIMING = {
    "loop": "cross-process: parent stamps now_ns() before FUTEX_WAKE, the woken child reads now_ns()",
    "clock": "time.perf_counter_ns (CLOCK_MONOTONIC, shared by both processes)",
    "why_not_time_each": "the interval spans two processes; time_each brackets one call in one process",
    "overhead_subtracted": False,
}


def _errno() -> OSError:
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code))


def _futex(address: int, op: int, value: int, timeout_s: float | None = None) -> int:
    ts = None
    if timeout_s is not None:
        ts = struct.pack("<qq", int(timeout_s), int((timeout_s % 1) * 1e9))
        ts = ctypes.create_string_buffer(ts)
    return _libc.syscall(SYS_FUTEX, ctypes.c_void_p(address), op, value, ts, None, 0)


def _map(target: Target, name: str, index: int, **kw: Any) -> Mapping:
    return Mapping(target, f"kapi-{name}", SIZE, offset=region_offset(target, index, SIZE), **kw)


@register(NAME, kinds=KINDS)
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    wakes = WAKES.get(params.get("profile", "quick"), 16)
    # On a filesystem that fell back to the page cache the interfaces meet page-cache pages, not DAX.
    # The operation keeps its name, so the model's prediction for the scenario is compared with it.
    mapping = mapping_of(target, target.kind == "fs" and files_are_dax(target.path))
    cases: list[Callable[[], Observation]] = [
        partial(case, target, wakes)
        for case in (_futex_case, _vmsplice_case, _iouring_case, _longterm_case, _mremap_case, _madvise_case)
    ]
    cases.append(partial(_fork_cow_case, target))
    if not target.params.get("decisions"):
        for case in cases:
            yield with_mapping(target, case(), mapping)
        return
    # --trace-decisions: every refusal of this target is run once more under kprobes (armed once),
    # and says which kernel function refused it.
    for observation in decisions.attribute_all([(case(), case) for case in cases], target.params):
        yield with_mapping(target, observation, mapping)


def _futex_case(target: Target, wakes: int) -> Observation:
    op = "futex-shared"
    with _map(target, "futex", 0, shared_anon=True) as m:
        m.array[:8] = 0
        word = m.address
        if _futex(word, FUTEX_WAIT, 1) != -1:  # the word is 0: a mismatch must return at once
            return target.observation(NAME, op, "ok", detail="FUTEX_WAIT returned without waiting")
        err = ctypes.get_errno()
        if err != 11:  # EAGAIN means the kernel found the futex key (the page) and compared
            return target.observation(NAME, op, errno_name(err), detail="FUTEX_WAIT on a shared futex word")
        samples = _wake_latencies(m, word, wakes)
    if samples is None:
        return target.observation(NAME, op, "EIO", detail="a forked waiter was not woken within 10 s")
    return target.observation(
        NAME,
        op,
        "ok",
        metrics={"wake_latency": {**summarize(samples), "timing": WAKE_TIMING}},
        detail=f"key lookup ok (EAGAIN on mismatch); {wakes} cross-process wakes",
        repetitions=wakes,
    )


def _wake_latencies(m: Mapping, word: int, wakes: int) -> np.ndarray | None:
    """A child waits on the word; the parent stores its clock beside it and wakes; the child measures."""
    stamps = m.array[8:16].view(np.int64)
    results = m.array[16 : 16 + 8 * wakes].view(np.int64)
    flag = m.array[0:4].view(np.uint32)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for i in range(wakes):
                while flag[0] == 2 * i:  # wait until the parent arms round i (flag odd)
                    _futex(word, FUTEX_WAIT, 2 * i, 1.0)
                results[i] = now_ns() - stamps[0]
                flag[0] = 2 * i + 2
        except BaseException:
            code = 1
        os._exit(code)
    ok = True
    for i in range(wakes):
        time.sleep(0.002)
        stamps[0] = now_ns()
        flag[0] = 2 * i + 1
        _futex(word, FUTEX_WAKE, 1)
        deadline = time.monotonic() + 10
        while flag[0] != 2 * i + 2 and time.monotonic() < deadline:
            _futex(word, FUTEX_WAKE, 1)
            time.sleep(0.0005)
        if flag[0] != 2 * i + 2:
            ok = False
            break
    if not ok:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    return np.array(results[:wakes]) if ok else None


def _vmsplice_case(target: Target, wakes: int) -> Observation:
    op = "vmsplice"
    data = pattern(31, CHUNK)
    out = partner_path(target, "vmsplice")
    with _map(target, "vmsplice", 1) as m:
        m.array[:CHUNK] = data
        r, w = os.pipe()
        try:
            iov = (ctypes.c_void_p * 2)(m.address, CHUNK)
            n = _libc.vmsplice(w, iov, 1, 0)
            if n < 0:
                err = _errno()
                return target.observation(NAME, op, errno_name(err.errno), detail=f"vmsplice: {err.strerror}")
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                moved = 0
                while moved < n:
                    moved += os.splice(r, fd, n - moved)
            finally:
                os.close(fd)
        finally:
            os.close(r)
            os.close(w)
    with open(out, "rb") as f:
        same = f.read() == data.tobytes()
    outcome, detail = verdict(n, CHUNK, same, "vmsplice into a pipe, splice to a file")
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _iouring_case(target: Target, wakes: int) -> Observation:
    op = "iouring-fixed-buffer"
    data = pattern(32, CHUNK)
    src = write_partner(target, "uring", data)
    try:
        with _map(target, "uring", 2) as m, Ring() as ring:
            try:
                ring.register_buffer(m.address, SIZE)
            except OSError as exc:
                return target.observation(
                    NAME, op, errno_name(exc.errno), detail=f"IORING_REGISTER_BUFFERS: {exc.strerror}"
                )
            fd = os.open(src, os.O_RDONLY)
            try:
                n = ring.read_fixed(fd, m.address, CHUNK)
            finally:
                os.close(fd)
            same = bool(np.array_equal(m.array[:CHUNK], data))
    except OSError as exc:
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"io_uring: {exc.strerror}")
    outcome, detail = verdict(n, CHUNK, same, "registered the buffer, one IORING_OP_READ_FIXED into it")
    return target.observation(NAME, op, outcome, detail=detail, metrics={"bytes": n})


def _longterm_case(target: Target, wakes: int) -> Observation:
    op = "longterm-pin"
    proxy = "AF_XDP umem registration (pin_user_pages FOLL_WRITE|FOLL_LONGTERM, as an RDMA MR)"
    with _map(target, "pin", 3) as m:
        try:
            sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
        except OSError as exc:
            return target.observation(NAME, op, f"skipped:no-af-xdp ({errno_name(exc.errno)})", detail=proxy)
        try:
            sock.setsockopt(SOL_XDP, XDP_UMEM_REG, struct.pack("<QQIII4x", m.address, SIZE, PAGE, 0, 0))
        except OSError as exc:
            return target.observation(NAME, op, errno_name(exc.errno), detail=f"{proxy}: {exc.strerror}")
        finally:
            sock.close()
    return target.observation(NAME, op, "ok", detail=f"{proxy}: pinned {SIZE >> 20} MiB")


def _mremap_case(target: Target, wakes: int) -> Observation:
    op = "mremap"
    data = pattern(33, SIZE)
    with _map(target, "mremap", 4) as m:
        m.array[:] = data
        new = _libc.mremap(ctypes.c_void_p(m.address), SIZE, SIZE, MREMAP_MAYMOVE)
        if new in (None, MAP_FAILED):
            err = _errno()
            return target.observation(NAME, op, errno_name(err.errno), detail=f"mremap: {err.strerror}")
        moved = new != m.address
        same = bool(np.array_equal(np.ctypeslib.as_array((ctypes.c_uint8 * SIZE).from_address(new)), data))
        if moved:  # the mmap object still owns the old range; unmap the moved one ourselves
            _libc.munmap(ctypes.c_void_p(new), ctypes.c_size_t(SIZE))
    where = "moved" if moved else "in place"
    outcome, detail = verdict(
        SIZE, SIZE, same, f"MREMAP_MAYMOVE ({where}), every byte read at its new address"
    )
    return target.observation(NAME, op, outcome, detail=detail)


def _madvise_case(target: Target, wakes: int) -> Observation:
    op = "madvise"
    results = {}
    with _map(target, "madvise", 5) as m:
        m.array[::PAGE] = 1
        for name in ("MADV_DONTNEED", "MADV_HUGEPAGE"):
            try:
                m.madvise(getattr(mmap, name))
                results[name] = "ok"
            except OSError as exc:
                results[name] = errno_name(exc.errno)
        kept = int(m.array[0])
    outcome = results["MADV_DONTNEED"]
    return target.observation(
        NAME,
        op,
        outcome,
        metrics=results,
        detail=f"{results}; after MADV_DONTNEED the first byte reads {kept} "
        "(1: shared data kept, 0: anonymous pages dropped)",
    )


def _fork_cow_case(target: Target) -> Observation:
    """MAP_PRIVATE mapping, fork, child writes: the kernel must copy the page for the child only."""
    op = "fork-cow"
    step = "mmap(MAP_PRIVATE)"
    try:
        with _map(target, "cow", 6, private=True) as m:
            m.array[0] = 5
            step = "fork() after the parent's copy-on-write"
            pid = os.fork()
            if pid == 0:
                try:
                    m.array[0] = 6
                    code = 0 if m.array[0] == 6 else 1
                except BaseException:
                    code = 2
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            parent_value = int(m.array[0])
    except OSError as exc:  # the detail names the step: a refused fork is not a refused mmap
        return target.observation(NAME, op, errno_name(exc.errno), detail=f"{step}: {exc.strerror}")
    if os.WIFSIGNALED(status):
        return target.observation(NAME, op, "EFAULT", detail=f"child killed by signal {os.WTERMSIG(status)}")
    ok = os.WEXITSTATUS(status) == 0 and parent_value == 5
    return target.observation(
        NAME, op, "ok" if ok else "EIO", detail=f"child wrote its copy; parent still sees {parent_value}"
    )
