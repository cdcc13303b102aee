"""Choose KVM or TCG, and say why: `auto` must never hang on a KVM that only pretends to work.

Measured here (vm-facts.md): /dev/kvm exists, but it is a software virtualizer without vmx/svm;
`-cpu host` aborts on an MSR assertion and other CPU models hang for minutes. So `auto` needs
vmx/svm in /proc/cpuinfo and a short watchdog probe that reaches the kernel banner.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pmemkit.vm.errors import VmConfigError

PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class AccelChoice:
    accel: str
    reason: str


def _cpu_has_virt(cpuinfo: str) -> bool:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"vmx", "svm"})
    return False


def kvm_usable_reason(cpuinfo_path: Path = Path("/proc/cpuinfo"), kvm: Path = Path("/dev/kvm")) -> str | None:
    """None when KVM may work; otherwise why it cannot (cheap checks only)."""
    if not kvm.exists():
        return "/dev/kvm does not exist"
    if not os.access(kvm, os.R_OK | os.W_OK):
        return "/dev/kvm is not accessible to this user"
    try:
        cpuinfo = cpuinfo_path.read_text()
    except OSError:
        return "cannot read /proc/cpuinfo"
    if not _cpu_has_virt(cpuinfo):
        return (
            "the CPU shows no vmx/svm flag, so /dev/kvm is a software virtualizer that cannot run -cpu host"
        )
    return None


def probe_kvm(qemu: str, vmlinux: Path, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Boot the guest kernel under KVM until its banner; None if it works, else the reason."""
    with tempfile.TemporaryFile() as out:
        argv = [
            qemu,
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-m",
            "256M",
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            str(vmlinux),
            "-append",
            "console=ttyS0 panic=-1",
        ]
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                out.seek(0)
                text = out.read().decode(errors="replace")
                if "Linux version" in text:
                    return None
                if proc.poll() is not None:
                    return f"a KVM guest died at start: {text.strip().splitlines()[-1:] or ['(no output)']}"
                time.sleep(0.2)
            return f"a KVM guest showed no kernel banner within {timeout_s:.0f} s"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def choose_accel(requested: str, qemu: str, vmlinux: Path) -> AccelChoice:
    """Resolve auto|kvm|tcg to kvm or tcg, with the reason recorded in every result."""
    if requested == "tcg":
        return AccelChoice("tcg", "requested --accel tcg")
    if requested not in ("auto", "kvm"):
        raise VmConfigError(f"unknown --accel {requested!r}: use auto, kvm or tcg")
    reason = kvm_usable_reason() or probe_kvm(qemu, vmlinux)
    if reason is None:
        return AccelChoice("kvm", "KVM probe booted the kernel")
    if requested == "kvm":
        raise VmConfigError(f"--accel kvm cannot work here: {reason}; use --accel tcg or auto")
    return AccelChoice("tcg", f"auto fell back to TCG: {reason}")
