"""The peers experiment: DAX cases that independently written tests check and pmemkit did not (issue 12).

Each case is one observation, named so the model predicts it, with the peer test it follows:
- `mremap-partial-pmd` — ndctl test/dax-pmd.c test_dax_remap(): mremap(MREMAP_MAYMOVE|MREMAP_FIXED)
  of the first 4 KiB of a 2 MiB-aligned DAX mapping onto an anonymous range, then write and read
  through it (`ok`: the moved page holds the file's data and takes the write; ndctl: "mremap failed,
  that's ok too", and on device-dax a SIGBUS is expected when it succeeds).
- `odirect-dax-to-dax` (variant `subpage`: 1 KiB) — fstests generic/413 "dio both dax": an
  O_DIRECT write into a DAX file from a mapping of another DAX file on the same filesystem.
- `odirect-write-from-dax:unfaulted` — ndctl dax-pmd.c test_dax_directio() case 0: the O_DIRECT
  write's source buffer is a DAX mapping never touched before (the pin must fault it in).
- `buffered-write-from-dax` — generic/413 `-b`: a buffered write(2) from a DAX mapping.
- `zero-page-after-pwrite` — generic/428: read-fault a hole (the zero page), pwrite the file, and
  the mapping must show the new data, not the stale zero page.
- `punch-while-mapped` — generic/438's theme (fallocate under a live mapping): punch a hole in a
  faulted, mapped range; the mapping must read zeros.
- `exec-from-dax` — generic/452: execute a binary stored on the DAX filesystem.
- `odirect-pin-blockmap` (variants `punch`, `zero`, `collapse`, `truncate`) — generic/503: change
  the file's block map while O_DIRECT reads keep the DAX mapping's pages pinned as their buffer;
  `ok` when the change returns success and the kernel logs no warning (the DIO's own result,
  EFAULT after a truncate for instance, is in the metrics).
- `private-pmd-cow-race` — generic/437 (t_mmap_cow_race, for 'dax: Fix race between colliding PMD
  & PTE entries'): two threads, one reading a fresh MAP_PRIVATE 2 MiB mapping (a PMD read fault)
  while the other writes into it (a COW PTE fault), for a few rounds; `ok` when every round's
  private data and the file are coherent and the kernel logged no 'bad pmd' or warning.
Risky touches run in a forked child that reports SIGBUS with its siginfo (guest/poison_child.py).
The crash experiment of issue 12 (item 4) needs VM harness changes and is not here.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

from pmemkit.guest.experiments import Target, mapping_of, register, with_mapping
from pmemkit.guest.kmsg import KernelLog
from pmemkit.guest.poison_child import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    MAP_FAILED,
    PAGE,
    SI_CODES,
    TWO_MIB,
    emit,
    fork_report,
    install_sigbus_reporter,
    map_aligned,
    punch_hole,
)
from pmemkit.guest.syscalls import errno_name, statx_dax
from pmemkit.guest.transfer import partner_path, pattern, verdict, write_partner
from pmemkit.scenario import Observation

NAME = "peers"
SIZE = 2 * TWO_MIB
SUBPAGE = 1024
MREMAP_MAYMOVE = 1  # include/uapi/linux/mman.h
MREMAP_FIXED = 2
#: Each case's observed operation (`operation:variant`), for the record of a case whose setup failed.
CASE_OPS = {
    "_mremap_partial": "mremap-partial-pmd",
    "_unfaulted_odirect": "odirect-write-from-dax:unfaulted",
    "_buffered_write": "buffered-write-from-dax",
    "_odirect_dax_to_dax": "odirect-dax-to-dax",
    "_odirect_dax_to_dax_subpage": "odirect-dax-to-dax:subpage",
    "_zero_page": "zero-page-after-pwrite",
    "_punch_mapped": "punch-while-mapped",
    "_exec": "exec-from-dax",
    "_cow_race": "private-pmd-cow-race",
    **{f"_pin_{c}": f"odirect-pin-blockmap:{c}" for c in ("punch", "zero", "collapse", "truncate")},
}
PIN_ROUNDS = 16
FALLOC_FL_COLLAPSE_RANGE = 0x08  # include/uapi/linux/falloc.h
FALLOC_FL_ZERO_RANGE = 0x10
COW_ROUNDS = 8
#: Kernel words that mean the PMD/PTE collision went wrong (generic/437 checks dmesg the same way).
COW_WORDS = ("bad pmd", "WARNING", "BUG")
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mremap.restype = ctypes.c_void_p
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
_libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]


@register(NAME, kinds=("fs", "devdax"))
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    """One observation per case; a case's failure never stops the next one."""
    if target.kind == "fs":
        source = _file(target, "src", pattern(21, SIZE).tobytes())
        dax = statx_dax(source)[0]
        flags, offset = os.O_RDWR, 0
    else:
        source, dax, flags, offset = target.path, True, os.O_RDWR, 0
    mapping = mapping_of(target, dax)
    cases = [_mremap_partial, _unfaulted_odirect, _buffered_write]
    if target.kind == "fs":
        cases += [
            _odirect_dax_to_dax,
            _odirect_dax_to_dax_subpage,
            _zero_page,
            _punch_mapped,
            _exec,
            _cow_race,
        ]
        cases += [_pin_punch, _pin_zero, _pin_collapse, _pin_truncate]
    try:
        for case in cases:
            try:
                observation = case(target, source, flags, offset)
            except OSError as exc:
                op, _, variant = CASE_OPS[case.__name__].partition(":")
                observation = target.observation(
                    NAME,
                    op,
                    f"skipped:{errno_name(exc.errno or 0)}",
                    variant=variant or None,
                    repetitions=0,
                    detail=f"setup failed: {exc}",
                )
            yield with_mapping(target, observation, mapping)
    finally:
        if target.kind == "fs":
            for name in ("src", "dst", "hole", "punch", "true", "cow", "pin"):
                path = os.path.join(target.path, f"pmemkit-peers-{name}")
                if os.path.exists(path):
                    os.unlink(path)


def _file(target: Target, name: str, data: bytes | None, size: int = SIZE) -> str:
    """A file on the target's filesystem: preallocated and written with `data`, or sparse (None)."""
    path = os.path.join(target.path, f"pmemkit-peers-{name}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if data is None:
            os.ftruncate(fd, size)
        else:
            os.posix_fallocate(fd, 0, size)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _signal_words(signal: dict[str, Any]) -> str:
    code = SI_CODES.get(int(signal["si_code"]), str(signal["si_code"]))
    return f"SIGBUS {code} at {signal['phase']}"


def _mremap_partial(target: Target, path: str, flags: int, offset: int) -> Observation:
    """ndctl test_dax_remap(): move 4 KiB out of a 2 MiB DAX mapping onto an anonymous range."""

    def body(fd: int) -> None:
        state: dict[str, Any] = {"phase": "map"}
        handler = install_sigbus_reporter(fd, state)  # noqa: F841 - kept alive for the signal
        base = map_aligned(path, flags, offset, SIZE)
        state["base"] = base
        anon = mmap.mmap(-1, 4 * PAGE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        anon[:] = b"a" * (4 * PAGE)
        anon_addr = ctypes.addressof(ctypes.c_char.from_buffer(anon))
        state["phase"] = "fault"
        ctypes.memset(base, ord("i"), PAGE)
        got = _libc.mremap(base, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, anon_addr)
        if got in (None, MAP_FAILED):
            emit(fd, {"step": "mremap", "errno": ctypes.get_errno()})
            os._exit(0)
        emit(fd, {"step": "mremap", "errno": 0, "moved_to_anon": got == anon_addr})
        state["phase"] = "access"
        buf = ctypes.create_string_buffer(8)
        ctypes.memmove(buf, anon_addr, 1)
        ctypes.memset(anon_addr, 0xAA, 4)
        ctypes.memmove(ctypes.byref(buf, 1), anon_addr, 4)
        emit(fd, {"step": "accessed", "first": buf.raw[0:1].hex(), "written": buf.raw[1:5].hex()})
        os._exit(0)

    records, ended = fork_report(body, 120)
    got = {r["step"]: r for r in records}
    metrics: dict[str, Any] = {"child": ended}
    if "signal" in got:
        outcome, detail = "fallback", f"mremap moved the page, then {_signal_words(got['signal'])}"
    elif "mremap" in got and got["mremap"]["errno"]:
        outcome = errno_name(int(got["mremap"]["errno"]))
        detail = f"mremap(MREMAP_MAYMOVE|MREMAP_FIXED) of 4 KiB out of the 2 MiB mapping: {outcome}"
    elif "accessed" in got:
        same = got["accessed"]["first"] == "69" and got["accessed"]["written"] == "aaaaaaaa"
        metrics["verified"] = same
        outcome = "ok" if same and got["mremap"]["moved_to_anon"] else "fallback"
        detail = "the moved page holds the file's data and takes a write" if same else "data differs"
    else:
        outcome, detail = "skipped:no-report", f"child {ended}: {records[-1:] or 'no report'}"
    return target.observation(NAME, "mremap-partial-pmd", outcome, detail=detail, metrics=metrics)


def _odirect_from_mapping(
    path: str, flags: int, offset: int, dst: str, length: int, touch: bool
) -> tuple[str, str, dict[str, Any]]:
    """O_DIRECT pwrite of `length` bytes from a mapping of `path` into `dst`, in a child."""
    expected = pattern(22, length).tobytes()

    def body(fd: int) -> None:
        state: dict[str, Any] = {"phase": "map"}
        handler = install_sigbus_reporter(fd, state)  # noqa: F841 - kept alive for the signal
        base = map_aligned(path, flags, offset, SIZE)
        state.update(base=base, phase="write-buffer" if touch else "odirect")
        if touch:
            ctypes.memmove(base, expected, length)
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        n = _libc.pwrite(out, ctypes.c_void_p(base), ctypes.c_size_t(length), ctypes.c_long(0))
        emit(fd, {"step": "pwrite", "n": n, "errno": ctypes.get_errno() if n < 0 else 0})
        os.close(out)
        state["phase"] = "hash"  # what the source held (device-dax has no read(2) to ask instead)
        emit(fd, {"step": "source", "sha256": hashlib.sha256(ctypes.string_at(base, length)).hexdigest()})
        os._exit(0)

    records, ended = fork_report(body, 120)
    got = {r["step"]: r for r in records}
    if "signal" in got:
        return "fallback", _signal_words(got["signal"]), {"child": ended}
    if "pwrite" not in got:
        return "skipped:no-report", f"child {ended}: {records[-1:] or 'no report'}", {"child": ended}
    if got["pwrite"]["n"] < 0:
        return errno_name(int(got["pwrite"]["errno"])), "O_DIRECT pwrite failed", {"child": ended}
    n = int(got["pwrite"]["n"])
    with open(dst, "rb") as f:
        landed = f.read(length + 1)
    source = got.get("source", {}).get("sha256")
    same = hashlib.sha256(landed).hexdigest() == source and (not touch or landed == expected)
    outcome, detail = verdict(n, length, same, f"O_DIRECT pwrite of {length} B from the DAX mapping")
    return outcome, detail, {"bytes": n, "verified": same, "child": ended}


def _odirect_dax_to_dax(target: Target, path: str, flags: int, offset: int) -> Observation:
    dst = os.path.join(target.path, "pmemkit-peers-dst")
    outcome, detail, metrics = _odirect_from_mapping(path, flags, offset, dst, TWO_MIB, True)
    return target.observation(NAME, "odirect-dax-to-dax", outcome, detail=detail, metrics=metrics)


def _odirect_dax_to_dax_subpage(target: Target, path: str, flags: int, offset: int) -> Observation:
    dst = os.path.join(target.path, "pmemkit-peers-dst")
    outcome, detail, metrics = _odirect_from_mapping(path, flags, offset, dst, SUBPAGE, True)
    return target.observation(
        NAME, "odirect-dax-to-dax", outcome, variant="subpage", detail=detail, metrics=metrics
    )


def _unfaulted_odirect(target: Target, path: str, flags: int, offset: int) -> Observation:
    dst = partner_path(target, "peers-unfaulted")
    outcome, detail, metrics = _odirect_from_mapping(path, flags, offset, dst, TWO_MIB, False)
    return target.observation(
        NAME, "odirect-write-from-dax", outcome, variant="unfaulted", detail=detail, metrics=metrics
    )


def _buffered_write(target: Target, path: str, flags: int, offset: int) -> Observation:
    """generic/413 -b: a buffered write(2) to a page-cache file from the DAX mapping (in-process)."""
    fd = os.open(path, flags)
    try:
        m = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, offset=offset)
    finally:
        os.close(fd)
    try:
        data = pattern(23, TWO_MIB).tobytes()
        m[:TWO_MIB] = data
        dst = partner_path(target, "peers-buffered")
        with open(dst, "wb") as f, memoryview(m) as view:
            n = f.write(view[:TWO_MIB])
        with open(dst, "rb") as f:
            same = f.read(TWO_MIB + 1) == data
    finally:
        m.close()
    outcome, detail = verdict(n, TWO_MIB, same, "buffered write(2) from the DAX mapping")
    return target.observation(
        NAME, "buffered-write-from-dax", outcome, detail=detail, metrics={"bytes": n, "verified": same}
    )


def _zero_page(target: Target, _path: str, _flags: int, _offset: int) -> Observation:
    """generic/428: a read fault on a hole maps the zero page; pwrite must make the mapping see the data."""
    path = _file(target, "hole", None)
    fd = os.open(path, os.O_RDWR)
    try:
        m = mmap.mmap(fd, SIZE, mmap.MAP_SHARED)
        try:
            before = m[:8]
            data = b"pmemkit!" * (PAGE // 8)
            os.pwrite(fd, data, 0)
            after = m[: len(data)]
        finally:
            m.close()
    finally:
        os.close(fd)
    same = after == data
    detail = "the mapping shows the pwritten data" if same else "the mapping still shows the zero page"
    return target.observation(
        NAME,
        "zero-page-after-pwrite",
        "ok" if same else "fallback",
        detail=detail,
        metrics={"read_zero_first": before == bytes(8), "verified": same},
    )


def _punch_mapped(target: Target, _path: str, _flags: int, _offset: int) -> Observation:
    """fallocate(PUNCH_HOLE) under a live, faulted mapping: the mapping must read zeros there."""
    path = _file(target, "punch", pattern(24, SIZE).tobytes())
    fd = os.open(path, os.O_RDWR)
    try:
        m = mmap.mmap(fd, SIZE, mmap.MAP_SHARED)
        try:
            faulted = m[TWO_MIB : TWO_MIB + 8] != bytes(8)
            punch_hole(fd, TWO_MIB, TWO_MIB)
            zeros = m[TWO_MIB:SIZE] == bytes(TWO_MIB)
            kept = m[:8] == pattern(24, 8).tobytes()
        finally:
            m.close()
    finally:
        os.close(fd)
    good = zeros and kept
    detail = "the punched range reads zeros through the mapping" if good else "stale data after the punch"
    return target.observation(
        NAME,
        "punch-while-mapped",
        "ok" if good else "fallback",
        detail=detail,
        metrics={"faulted_before": faulted, "verified": good},
    )


def _exec(target: Target, _path: str, _flags: int, _offset: int) -> Observation:
    """generic/452: run a binary from the DAX filesystem."""
    binary = shutil.which("true") or "/bin/true"
    path = os.path.join(target.path, "pmemkit-peers-true")
    shutil.copyfile(binary, path)
    os.chmod(path, 0o700)
    try:
        done = subprocess.run([path], capture_output=True, timeout=120, check=False)
    except OSError as exc:
        return target.observation(NAME, "exec-from-dax", errno_name(exc.errno or 0), detail=str(exc))
    outcome = "ok" if done.returncode == 0 else "fallback"
    detail = f"executed {os.path.basename(binary)} from the DAX file: exit {done.returncode}"
    return target.observation(
        NAME, "exec-from-dax", outcome, detail=detail, metrics={"exit_status": done.returncode}
    )


def _cow_race(target: Target, _path: str, _flags: int, _offset: int) -> Observation:
    """generic/437: a PMD read fault and a COW write fault racing on one private DAX mapping."""
    data = pattern(25, TWO_MIB).tobytes()
    path = _file(target, "cow", data, TWO_MIB)

    def body(fd: int) -> None:
        state: dict[str, Any] = {"phase": "map"}
        handler = install_sigbus_reporter(fd, state)  # noqa: F841 - kept alive for the signal
        bad = 0
        for round_ in range(COW_ROUNDS):
            base = map_aligned(path, os.O_RDONLY, 0, TWO_MIB, mmap.MAP_PRIVATE)
            state.update(base=base, phase=f"round {round_}")
            sink = ctypes.create_string_buffer(PAGE)

            def reader(base: int = base, sink: Any = sink) -> None:
                for page in range(0, TWO_MIB, PAGE):
                    ctypes.memmove(sink, base + page, 64)

            thread = threading.Thread(target=reader)
            thread.start()
            for page in range(0, TWO_MIB, 64 * PAGE):
                ctypes.memset(base + page, round_ + 1, 1)
            thread.join()
            seen = ctypes.string_at(base, TWO_MIB)
            want = bytearray(data)
            for page in range(0, TWO_MIB, 64 * PAGE):
                want[page] = round_ + 1
            bad += seen != bytes(want)
            _libc.munmap(ctypes.c_void_p(base), ctypes.c_size_t(TWO_MIB))
        emit(fd, {"step": "rounds", "rounds": COW_ROUNDS, "incoherent": bad})
        os._exit(0)

    with KernelLog() as log:
        records, ended = fork_report(body, 300)
        words = [m for m in log.read() if any(w in m for w in COW_WORDS)]
    got = {r["step"]: r for r in records}
    file_kept = _read(path, TWO_MIB) == data
    metrics: dict[str, Any] = {"child": ended, "file_unchanged": file_kept, "kernel_words": words[-4:]}
    if "signal" in got:
        outcome, detail = "fallback", _signal_words(got["signal"])
    elif "rounds" not in got:
        outcome, detail = "skipped:no-report", f"child {ended}: {records[-1:] or 'no report'}"
    else:
        metrics.update(rounds=got["rounds"]["rounds"], incoherent_rounds=got["rounds"]["incoherent"])
        good = not got["rounds"]["incoherent"] and file_kept and not words
        outcome = "ok" if good else "fallback"
        detail = (
            f"{COW_ROUNDS} rounds of a PMD read fault racing COW writes: private data and file coherent"
            if good
            else f"incoherent rounds {got['rounds']['incoherent']}, file unchanged {file_kept}, "
            f"kernel: {'; '.join(words[-2:]) or 'nothing'}"
        )
    return target.observation(NAME, "private-pmd-cow-race", outcome, detail=detail, metrics=metrics)


def _read(path: str, length: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(length)


def _pin_race(target: Target, change: str) -> Observation:
    """generic/503: a block-map change of the DAX file while O_DIRECT reads pin its mapped pages."""
    path = _file(target, "pin", pattern(26, SIZE).tobytes())
    partner = write_partner(target, "peers-pin-src", pattern(27, TWO_MIB))

    def body(fd: int) -> None:
        state: dict[str, Any] = {"phase": "map"}
        handler = install_sigbus_reporter(fd, state)  # noqa: F841 - kept alive for the signal
        base = map_aligned(path, os.O_RDWR, 0, SIZE)
        state.update(base=base, phase="race")
        dio: dict[str, int] = {"rounds": 0, "errno": 0}

        def reader() -> None:
            src = os.open(partner, os.O_RDONLY | os.O_DIRECT)
            buf = (ctypes.c_char * TWO_MIB).from_address(base)
            try:
                with memoryview(buf) as view:
                    for _ in range(PIN_ROUNDS):
                        os.preadv(src, [view], 0)
                        dio["rounds"] += 1
            except OSError as exc:
                dio["errno"] = exc.errno or 0
            finally:
                os.close(src)

        thread = threading.Thread(target=reader)
        thread.start()
        rc, code = _change(path, change)
        thread.join()
        emit(
            fd,
            {
                "step": "change",
                "rc": rc,
                "errno": code,
                "dio_rounds": dio["rounds"],
                "dio_errno": dio["errno"],
            },
        )
        os._exit(0)

    with KernelLog() as log:
        records, ended = fork_report(body, 300)
        words = [m for m in log.read() if any(w in m for w in COW_WORDS)]
    got = {r["step"]: r for r in records}
    metrics: dict[str, Any] = {"child": ended, "kernel_words": words[-4:]}
    op = "odirect-pin-blockmap"
    if "signal" in got:
        outcome, detail = "fallback", _signal_words(got["signal"])
    elif "change" not in got:
        outcome, detail = "skipped:no-report", f"child {ended}: {records[-1:] or 'no report'}"
    else:
        r = got["change"]
        metrics.update(
            dio_rounds=r["dio_rounds"], dio_errno=errno_name(r["dio_errno"]) if r["dio_errno"] else ""
        )
        if r["rc"] != 0:
            outcome, detail = errno_name(int(r["errno"])), f"{change} under O_DIRECT pins failed"
        else:
            outcome = "fallback" if words else "ok"
            detail = f"{change} under O_DIRECT pins returned success; " + (
                f"kernel: {'; '.join(words[-2:])}" if words else "the kernel logged no warning"
            )
    return target.observation(NAME, op, outcome, variant=change, detail=detail, metrics=metrics)


def _change(path: str, change: str) -> tuple[int, int]:
    """One block-map change of the first 2 MiB (truncate: to zero); (rc, errno)."""
    fd = os.open(path, os.O_RDWR)
    try:
        if change == "truncate":
            try:
                os.ftruncate(fd, 0)
            except OSError as exc:
                return -1, exc.errno or 0
            return 0, 0
        mode = {
            "punch": FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            "zero": FALLOC_FL_ZERO_RANGE,
            "collapse": FALLOC_FL_COLLAPSE_RANGE,
        }[change]
        rc = _libc.fallocate(fd, mode, 0, TWO_MIB)
        return rc, ctypes.get_errno() if rc else 0
    finally:
        os.close(fd)


def _pin_punch(target: Target, _path: str, _flags: int, _offset: int) -> Observation:
    return _pin_race(target, "punch")


def _pin_zero(target: Target, _path: str, _flags: int, _offset: int) -> Observation:
    return _pin_race(target, "zero")


def _pin_collapse(target: Target, _path: str, _flags: int, _offset: int) -> Observation:
    return _pin_race(target, "collapse")


def _pin_truncate(target: Target, _path: str, _flags: int, _offset: int) -> Observation:
    return _pin_race(target, "truncate")
