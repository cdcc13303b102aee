"""Where every guest number comes from, collected once per run (like pyperf's metadata).

Travels in `environment.json` and, per device, in every Observation: kernel, accelerator, pmem
source, namespace mode and map, filesystem and mount options, pmemkit version, repetitions,
timer overhead, the transparent-huge-page mode (first-touch costs of anonymous memory swing by
10x with it; inside pmemkit's VM `collect` first sets it to `guest.thp.POLICY`, so the environment
is fixed and recorded in one place and the two cannot drift apart), the vCPU count and the CPUs
this process may run on (pinning), the cpufreq governor where the guest has one — and the plain
fact that emulated pmem is DRAM.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
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


THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")
CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def selected_word(text: str) -> str | None:
    """The bracketed choice of a sysfs multiple-choice file: "always [madvise] never" -> "madvise"."""
    start, end = text.find("["), text.find("]")
    if 0 <= start < end:
        return text[start + 1 : end].strip() or None
    word = text.strip()
    return word or None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def thp_mode(root: Path = THP_DIR) -> dict[str, str | None]:
    """THP `enabled` and `defrag` as selected now; None where the kernel has no THP (or no sysfs)."""
    out: dict[str, str | None] = {}
    for name in ("enabled", "defrag"):
        text = _read(root / name)
        out[name] = None if text is None else selected_word(text)
    return out


def cpu_placement() -> dict[str, Any]:
    """vCPUs online, the CPUs this process may run on (its pinning) and the cpufreq governor."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = None
    online = os.cpu_count()
    governor = _read(CPUFREQ)
    return {
        "vcpus": online,
        "affinity": allowed,
        "pinned": allowed is not None and online is not None and len(allowed) < online,
        "governor": governor.strip() if governor else "none (no cpufreq in this machine)",
    }


def controlled_thp(root: Path = THP_DIR) -> dict[str, Any]:
    """THP set to pmemkit's policy inside its VM (never elsewhere), then read back: the mode in force
    (`enabled`, `defrag`) beside what was asked and why (`guest.thp`)."""
    from pmemkit.guest import thp
    from pmemkit.guest.safety import vm_token

    record = thp.controlled(root, in_vm=vm_token() is not None)
    return {**thp_mode(root), **record}


def collect(accel: str, pmemkit_version: str) -> dict[str, Any]:
    """Run-wide provenance of the guest (setting THP first inside pmemkit's VM)."""
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
        "thp": controlled_thp(),
        "cpus": cpu_placement(),
        "emulation": EMULATION_NOTE,
    }
