"""The poison experiment: memory failure on DAX pages, the kernel path that needs `struct page`.

After ndctl's test/dax-poison.c (github.com/pmem/ndctl, test_dax_poison()): map 2 x 2 MiB of a DAX
file or device at a 2 MiB-aligned address, then on the page at 1 MiB (align / 2):
- `hwpoison-soft-offline`: madvise(MADV_SOFT_OFFLINE) must fail on DAX (ndctl: "softoffline should
  always fail for dax"); the errno is recorded.
- `hwpoison-sigbus`: madvise(MADV_HWPOISON) must deliver SIGBUS with BUS_MCEERR_AR to the caller
  (`ok`; BUS_MCEERR_AO or no signal is `fallback`, with the code in the metrics).
- `hwpoison-addr-lsb`: the signal's si_addr_lsb tells the size of the mapping torn down: `ok` for
  21 (a 2 MiB PMD), `fallback` for anything smaller (12: a 4 KiB PTE); `n/a` without a signal.
- `hwpoison-recover` (fsdax only): punch a hole over the page, rewrite it, read it back with pread
  and through a fresh mapping (ndctl faults the page in again; its read `*(volatile unsigned *)
  addr + align / 2` reads the mapping's first word, by C precedence; pmemkit reads the page itself).
The kernel's words (memory_failure()'s "recovery action for dax page: Recovered") go into `detail`.

The poison is real for the rest of the boot: a devdax page stays poisoned, so run this suite alone
or last. It runs only inside pmemkit's VM (the safety module's VM token); elsewhere every operation
is `skipped:refused`. Only a forked child maps the target (see guest/poison_child.py). MADV_HWPOISON
needs CONFIG_MEMORY_FAILURE (=y in Debian's 5.10 to 7.3 kernels pmemkit caches) and CAP_SYS_ADMIN.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from pmemkit.guest.experiments import Target, mapping_of, register, with_mapping
from pmemkit.guest.kmsg import KernelLog
from pmemkit.guest.poison_child import BUS_MCEERR_AR, PAGE, SI_CODES, TWO_MIB, Job, punch_hole, run_child
from pmemkit.guest.safety import vm_token
from pmemkit.guest.syscalls import errno_name, statx_dax
from pmemkit.guest.transfer import pattern
from pmemkit.scenario import Observation

NAME = "poison"
MAP_BYTES = 2 * TWO_MIB  # ndctl maps 2 * align
POISON_OFFSET = TWO_MIB // 2  # ndctl poisons align / 2
OPERATIONS = ("hwpoison-soft-offline", "hwpoison-sigbus", "hwpoison-addr-lsb", "hwpoison-recover")
PMD_LSB = 21
#: Kernel messages worth quoting (mm/memory-failure.c and mm/madvise.c pr_err/pr_info texts).
WORDS = ("recovery action", "Sending SIGBUS", "Injecting memory failure", "Soft offlining", "Memory failure")
REFUSED = (
    "refused: rule 'pmemkit-vm' — MADV_HWPOISON takes memory out of service for the rest of the boot; "
    "the poison experiment runs only inside pmemkit's VM (`pmemkit run --suite poison`)"
)


@register(NAME, kinds=("fs", "devdax", "devmem"), vm_only=True)
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    """Yield the four observations for one target (recovery only on a filesystem)."""
    ops = OPERATIONS if target.kind == "fs" else OPERATIONS[:3]
    if not vm_token():
        for op in ops:
            yield target.observation(NAME, op, "skipped:refused", repetitions=0, detail=REFUSED)
        return
    data = pattern(12, MAP_BYTES)
    if target.kind == "fs":
        job = _prepare_file(target, data.tobytes())
        if job is None:
            for op in ops:
                skipped = target.observation(
                    NAME,
                    op,
                    "skipped:no-dax",
                    repetitions=0,
                    detail="the file is not DAX (statx): poisoning it would poison a DRAM page-cache page",
                )
                yield with_mapping(target, skipped, "pagecache")
            _remove(target)
            return
    elif target.kind == "devdax":
        job = Job(target.path, os.O_RDWR, 0, MAP_BYTES, POISON_OFFSET)
    else:
        job = Job(target.path, os.O_RDWR | os.O_SYNC, int(params["phys_start"]), MAP_BYTES, POISON_OFFSET)
    with KernelLog() as log:
        records, ended = run_child(job)
        words = [m for m in log.read() if any(w in m for w in WORDS)]
    mapping = mapping_of(target, True)  # a filesystem target got here only with a DAX file
    for observation in _judge(target, records, ended, words):
        yield with_mapping(target, observation, mapping)
    if target.kind == "fs":
        yield with_mapping(target, _recover(target, job, data.tobytes()), mapping)
        _remove(target)


def _path(target: Target) -> str:
    return os.path.join(target.path, "pmemkit-poison.dat")


def _remove(target: Target) -> None:
    if os.path.exists(_path(target)):
        os.unlink(_path(target))


def _prepare_file(target: Target, data: bytes) -> Job | None:
    """A preallocated, fully written file (no unwritten extent: no zero page to poison), or None
    when the filesystem gave it no DAX."""
    path = _path(target)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, MAP_BYTES)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not statx_dax(path)[0]:
        return None
    return Job(path, os.O_RDWR, 0, MAP_BYTES, POISON_OFFSET)


def _find(records: list[dict[str, Any]], step: str) -> dict[str, Any] | None:
    return next((r for r in records if r.get("step") == step), None)


def _judge(
    target: Target, records: list[dict[str, Any]], ended: str, words: list[str]
) -> Iterator[Observation]:
    """The child's report -> soft-offline, sigbus and addr-lsb observations."""
    obs = target.observation
    said = "; ".join(words[-6:]) or "the kernel logged nothing about it"
    setup = _find(records, "setup")
    if setup is not None or _find(records, "mapped") is None:
        if setup is None:
            outcome, why = "skipped:no-report", f"child {ended}, no report"
        elif setup.get("errno"):  # the kernel refused the mapping itself: its errno is the answer
            outcome, why = errno_name(int(setup["errno"])), f"{setup['what']} failed"
        else:
            outcome, why = "skipped:error", str(setup.get("what"))
        for op in OPERATIONS[:3]:
            yield obs(NAME, op, outcome, repetitions=0, detail=why)
        return
    soft = _find(records, "soft-offline")
    if soft is None:
        yield obs(NAME, "hwpoison-soft-offline", "skipped:no-report", repetitions=0, detail=f"child {ended}")
    else:
        outcome = "ok" if soft["rc"] == 0 else errno_name(int(soft["errno"]))
        detail = "madvise(MADV_SOFT_OFFLINE) " + ("succeeded" if outcome == "ok" else f"failed: {outcome}")
        yield obs(NAME, "hwpoison-soft-offline", outcome, detail=detail, metrics={"errno": soft["errno"]})
    signal = _find(records, "signal")
    poisoned = _find(records, "hwpoison")
    metrics: dict[str, Any] = {"poison_offset_bytes": POISON_OFFSET, "child": ended}
    if signal is not None:
        code = int(signal["si_code"])
        metrics.update(
            si_code=SI_CODES.get(code, str(code)),
            si_addr_lsb=int(signal["si_addr_lsb"]),
            si_addr_offset_bytes=signal["si_addr_offset"],
            signal_phase=signal["phase"],
        )
        outcome = "ok" if code == BUS_MCEERR_AR else "fallback"
        detail = (
            f"SIGBUS {metrics['si_code']} (si_addr_lsb {metrics['si_addr_lsb']}) at {signal['phase']}; {said}"
        )
    elif poisoned is not None and poisoned["rc"] != 0:
        outcome = errno_name(int(poisoned["errno"]))
        detail = f"madvise(MADV_HWPOISON) failed: {outcome}; {said}"
    else:
        outcome = "fallback"
        detail = f"no SIGBUS (child {ended}); {said}"
    metrics["kernel_words"] = words[-6:]
    yield obs(NAME, "hwpoison-sigbus", outcome, detail=detail, metrics=dict(metrics))
    if signal is None:
        yield obs(NAME, "hwpoison-addr-lsb", "n/a", detail="no SIGBUS, no si_addr_lsb", metrics=dict(metrics))
    else:
        lsb = metrics["si_addr_lsb"]
        outcome = "ok" if lsb == PMD_LSB else "fallback"
        detail = f"si_addr_lsb {lsb}: the kernel tore down a {_size(lsb)} mapping"
        yield obs(NAME, "hwpoison-addr-lsb", outcome, detail=detail, metrics=dict(metrics))


def _size(lsb: int) -> str:
    return f"{1 << (lsb - 20)} MiB" if lsb >= 20 else f"{1 << (lsb - 10)} KiB" if lsb >= 10 else f"2^{lsb} B"


def _recover(target: Target, job: Job, data: bytes) -> Observation:
    """ndctl's recovery: punch the poisoned block out, rewrite it, read it back (pread and mapping)."""
    expected = data[POISON_OFFSET : POISON_OFFSET + PAGE]
    fd = os.open(job.path, os.O_RDWR)
    try:
        punch_hole(fd, POISON_OFFSET, PAGE)
        written = os.pwrite(fd, expected, POISON_OFFSET)
        os.fsync(fd)
        back = os.pread(fd, PAGE, POISON_OFFSET)
    except OSError as exc:
        return target.observation(NAME, "hwpoison-recover", errno_name(exc.errno or 0), detail=str(exc))
    finally:
        os.close(fd)
    if written != PAGE:
        return target.observation(
            NAME, "hwpoison-recover", "short", detail=f"pwrite wrote {written} of {PAGE}"
        )
    records, ended = run_child(
        Job(job.path, job.flags, job.offset, job.size, job.poison_offset, poison=False)
    )
    touched, signal = _find(records, "touched"), _find(records, "signal")
    metrics: dict[str, Any] = {"pread_verified": back == expected, "child": ended}
    if signal is not None:
        metrics["si_code"] = SI_CODES.get(int(signal["si_code"]), str(signal["si_code"]))
        outcome, detail = "fallback", f"the rewritten page still raised SIGBUS {metrics['si_code']}"
    elif touched is None:
        outcome, detail = "skipped:no-report", f"the re-reading child {ended} without a report"
    else:
        mapped_ok = touched["data"] == expected[:16].hex()
        metrics["mapped_verified"] = mapped_ok
        good = mapped_ok and back == expected
        outcome = "ok" if good else "fallback"
        detail = (
            "punched, rewritten, read back through pread and a new mapping"
            if good
            else "punched and rewritten, but the data read back differs"
        )
    return target.observation(NAME, "hwpoison-recover", outcome, detail=detail, metrics=metrics)
