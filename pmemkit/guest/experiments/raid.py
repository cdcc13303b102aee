"""The raid experiment: md RAID0/RAID1, dm-linear and dm-stripe over two pmem devices.

Per stack, from the kernel: does the stacked device advertise DAX (`queue/dax`), does
`mount -o dax=always` work on it (ext4 and xfs, with the kernel's message), and what an O_DIRECT
copy through it costs against the bare device in the same boot. The copy is the seed mail's
"sector-to-sector I/O hidden behind a RAID abstraction": it needs no `struct page` for the pmem.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from pmemkit.guest.experiments import Target, register
from pmemkit.guest.prepare import mkfs, mount_dax, unmount
from pmemkit.guest.stacks import STACKS, Stack, queue_dax
from pmemkit.guest.syscalls import errno_name
from pmemkit.guest.transfer import MiB, pattern, verdict
from pmemkit.measure.bandwidth import bandwidth, ratio
from pmemkit.measure.clock import now_ns
from pmemkit.measure.timing import overhead_for, time_each
from pmemkit.scenario import Observation

NAME = "raid"
COPY = {"quick": 16 * MiB, "full": 64 * MiB}


def _odirect_roundtrip(device: str, size: int, key: str) -> dict[str, Any]:
    """O_DIRECT write of `size` distinct bytes in 1 MiB chunks, then read them all back; bandwidth each
    way, and every byte compared (`verified`) — chunks differ, so a misplaced chunk shows too.

    Each 1 MiB pwritev/preadv is one `measure.timing.time_each` sample (overhead calibrated once per
    `key`, recorded under `latency.timing`); the bandwidth of a direction is one bracket around all
    its chunks and, for writes, the fsync: a bulk figure, not a sample of the loop."""
    data = pattern(51, size)
    out = mmap.mmap(-1, size)
    back = mmap.mmap(-1, size)
    result: dict[str, Any] = {}
    overhead_for(key)  # calibrated before the bandwidth brackets, not inside them
    fd = os.open(device, os.O_RDWR | os.O_DIRECT)
    try:
        with memoryview(out) as src, memoryview(back) as dst:
            src[:] = data.tobytes()
            for direction, view in (("write", src), ("read", dst)):
                call = os.pwritev if direction == "write" else os.preadv

                def one(i: int, call: Any = call, view: memoryview = view) -> int:
                    return call(fd, [view[i * MiB : (i + 1) * MiB]], i * MiB)

                start = now_ns()
                timed = time_each(one, size // MiB, 0, key=key, collect=True)
                if direction == "write":
                    os.fsync(fd)
                result[direction] = {
                    **bandwidth(size, now_ns() - start),
                    "moved_bytes": sum(int(n) for n in timed.results or ()),
                    "latency": timed.summary(),
                }
                del one  # it holds the view: the memoryview must be releasable on exit
            result["verified"] = bool(np.array_equal(np.frombuffer(dst, dtype=np.uint8), data))
    finally:
        os.close(fd)
        out.close()
        back.close()
    return result


@register(NAME, kinds=("pair",))
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    size = COPY.get(params.get("profile", "quick"), 16 * MiB)
    a, b = target.path, params["peer"]
    bare = _odirect_roundtrip(a, size, target.device)
    for kind in STACKS:
        scenario = dataclasses.replace(target.scenario, stack=kind, fs=None)
        try:
            with Stack(kind, a, b) as device:
                yield from _probe_stack(target, scenario, kind, device, params, size, bare)
        except Exception as exc:  # a stack that cannot be built or used is an observation, not a crash
            yield dataclasses.replace(
                target.observation(
                    NAME, "stack-build", "skipped:error", detail=f"{type(exc).__name__}: {exc}"
                ),
                scenario=scenario,
            )
        leftovers = Stack.leftovers()
        if leftovers:
            yield dataclasses.replace(
                target.observation(NAME, "stack-teardown", "EBUSY", detail=f"left behind: {leftovers}"),
                scenario=scenario,
            )


def _probe_stack(
    target: Target,
    scenario: Any,
    kind: str,
    device: str,
    params: dict[str, Any],
    size: int,
    bare: dict[str, Any],
) -> Iterator[Observation]:
    def obs(op: str, outcome: str, **extra: Any) -> Observation:
        return dataclasses.replace(
            target.observation(NAME, op, outcome, **extra), scenario=scenario, device=device
        )

    dax = queue_dax(device)
    yield obs(
        "stack-queue-dax",
        "ok" if dax else "fallback",
        metrics={"queue_dax": dax},
        detail=f"{device} queue/dax={'1' if dax else '0'}: "
        + ("advertises DAX" if dax else "no DAX for filesystems on it"),
    )
    for fs in params.get("filesystems") or ["ext4", "xfs"]:
        fs_scenario = dataclasses.replace(scenario, fs=fs)
        try:
            mkfs(device, fs)
            result = mount_dax(device, fs)
        except Exception as exc:
            yield dataclasses.replace(
                obs("dax-mount", "skipped:error", detail=str(exc)), scenario=fs_scenario
            )
            continue
        yield dataclasses.replace(
            obs(
                "dax-mount",
                result.outcome,
                detail=result.detail,
                metrics={"kernel_messages": result.messages},
            ),
            scenario=fs_scenario,
        )
        if result.mountpoint:
            unmount(result.mountpoint)
    try:
        stacked = _odirect_roundtrip(device, size, target.device)
    except OSError as exc:
        yield obs("stack-copy", errno_name(exc.errno), detail=f"O_DIRECT through {kind}: {exc.strerror}")
        return
    rows = {
        "stack": stacked,
        "bare": bare,
        "ratio_write": ratio(stacked["write"]["bytes_per_s"], bare["write"]["bytes_per_s"]),
        "ratio_read": ratio(stacked["read"]["bytes_per_s"], bare["read"]["bytes_per_s"]),
    }
    moved = min(stacked["write"]["moved_bytes"], stacked["read"]["moved_bytes"])
    outcome, detail = verdict(moved, size, stacked["verified"], f"O_DIRECT write+read through {kind}")
    yield obs(
        "stack-copy",
        outcome,
        metrics=rows,
        detail=f"{detail}; vs bare device: write {rows['ratio_write']:.2f}×, read {rows['ratio_read']:.2f}×",
        repetitions=size // MiB,
    )
