"""How many guests may run at once on this host: cores, then memory (never an OOM).

Why a module of its own: the figure the user asked for (`--jobs`) is lowered here, with one line
saying why, from numbers a test can give (`mem_available`) instead of exhausting the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pmemkit.scenario import PmemConfig
from pmemkit.vm import layout as vm_layout
from pmemkit.vm.qemu import backing_size


@dataclass(frozen=True)
class JobsDecision:
    jobs: int
    message: str | None  # said to the user when the figure asked for (or the default) was lowered


def guest_bytes(pmem: list[PmemConfig], memory: int | None, in_memory_scratch: bool) -> int:
    """Host memory one guest of this cell takes: its RAM, qemu's own overhead, and its backing
    files when the scratch directory is in memory (tmpfs) — what `layout.check_fits_host` counts."""
    layout = vm_layout.plan_layout(pmem, memory)
    backing = sum(backing_size(d) for d in layout.dimms) if in_memory_scratch else 0
    return layout.ram + backing + vm_layout.QEMU_OVERHEAD


def _human(n: int) -> str:
    return f"{n / 2**30:.1f}G"


def decide_jobs(
    requested: int | None, cells: int, per_guest: int, mem_available: int, cores: int
) -> JobsDecision:
    """The parallelism: the request (default: one guest per core), at most one per cell, and no
    more guests than MemAvailable holds (at least one: a single guest that does not fit is
    `pipeline.check`'s refusal, in its own words)."""
    wanted = requested if requested is not None else max(cores, 1)
    wanted = max(1, min(wanted, cells))
    fit = max(1, mem_available // per_guest) if per_guest > 0 else wanted
    if fit >= wanted:
        return JobsDecision(wanted, None)
    asked = f"--jobs {requested}" if requested is not None else f"the default of {wanted} (one per core)"
    return JobsDecision(
        fit,
        f"{asked} lowered to {fit}: each guest needs {_human(per_guest)} of host memory "
        f"(its RAM and qemu's overhead) and MemAvailable is {_human(mem_available)}",
    )


def host_figures() -> tuple[int, int]:
    """(MemAvailable in bytes, usable cores) of this host, now."""
    import psutil

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return psutil.virtual_memory().available, cores
