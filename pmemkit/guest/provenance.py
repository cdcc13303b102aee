"""Where every guest number comes from, collected once per run (like pyperf's metadata).

Travels in `environment.json` and, per device, in every Observation: kernel, accelerator, pmem
source, namespace mode and map, filesystem and mount options, pmemkit version, repetitions,
timer overhead — and the plain fact that emulated pmem is DRAM.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Any

from pmemkit.measure.clock import timer_overhead_ns

EMULATION_NOTE = "emulated pmem: DRAM of the host behind QEMU, not Optane or CXL media"


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags(wanted: tuple[str, ...] = ("clwb", "clflushopt", "avx2", "avx512f", "pku")) -> list[str]:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def _tool_version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else None


def collect(accel: str, pmemkit_version: str) -> dict[str, Any]:
    """Run-wide provenance of the guest."""
    import numpy

    try:
        import psutil

        mem_total = psutil.virtual_memory().total
    except ImportError:
        mem_total = None
    return {
        "kernel": os.uname().release,
        "kernel_version": os.uname().version,
        "accel": accel,
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "mem_total_bytes": mem_total,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "ndctl": _tool_version(["ndctl", "--version"]),
        "pmemkit_version": pmemkit_version,
        "timer_overhead_ns": timer_overhead_ns(),
        "emulation": EMULATION_NOTE,
    }
