"""CXL Type-3 pmem → a CXL region → an nvdimm region → a namespace, each step's output kept.

Why its own module: CXL pmem reaches the namespace layer only after the cxl drivers are loaded,
the memdev is enumerated and a region is created and committed (`cxl create-region`); from the
nd region on it is the NVDIMM path (ndctl create-namespace). Every step's JSON output, its wall
time and, on failure, the kernel's own messages are recorded so the report can say exactly where
and why a CXL device did not become pmem.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pmemkit.guest import GuestError
from pmemkit.guest.kmsg import KernelLog
from pmemkit.guest.safety import SafetyError, run_tool, vm_token
from pmemkit.scenario import PmemConfig

#: Loaded in this order: the ACPI root (CEDT, fixed memory windows), the PCI driver of the
#: Type-3 device, ports/decoders, the memdev, and the pmem bridge to libnvdimm.
MODULES = ("cxl_acpi", "cxl_pci", "cxl_port", "cxl_mem", "cxl_pmem")
#: The root decoder of pmemkit's one fixed memory window (cxl_acpi names them decoder0.N).
ROOT_DECODER = "decoder0.0"
INTERLEAVE_WAYS = 1
#: Kept with every CXL device's provenance: what its timings measure.
EMULATION_NOTE = (
    "QEMU routes every guest access to the CXL fixed memory window through its CXL decoder "
    "emulation (MMIO), not as RAM: timings measure that emulation (smoke mmap-readwrite of 4 MiB "
    "took 2.26 s under TCG on QEMU 10.0.2), not DRAM and not CXL media"
)
ENUMERATE_TIMEOUT_S = 60.0
STEP_TIMEOUT_S = 300.0
_KERNEL_WORDS = ("cxl", "region", "decoder", "nd_", "nvdimm", "pmem", "error", "fail")


@dataclass
class CxlStep:
    """One command of the setup: its argv, parsed JSON (or text), seconds, and the kernel's words."""

    argv: list[str]
    seconds: float
    output: Any = None
    kernel: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "seconds": round(self.seconds, 3),
            "output": self.output,
            "kernel": self.kernel,
            "error": self.error,
        }


@dataclass
class CxlDevice:
    """One planned CXL device once set up: its memdev, CXL region, nd region and the steps taken."""

    serial: int
    memdev: str | None = None
    cxl_region: str | None = None
    nd_region: str | None = None
    steps: list[CxlStep] = field(default_factory=list)
    readback: dict[str, Any] | None = None
    region_wait_s: float = 0.0  # from create-region until cxl_pmem registered the nd region

    def record(self) -> dict[str, Any]:
        """What the provenance keeps: memdev, region, decoder, interleave ways and every step."""
        return {
            "serial": self.serial,
            "memdev": self.memdev,
            "cxl_region": self.cxl_region,
            "nd_region": self.nd_region,
            "root_decoder": ROOT_DECODER,
            "interleave_ways": INTERLEAVE_WAYS,
            "region_setup_s": round(sum(s.seconds for s in self.steps) + self.region_wait_s, 3),
            "nd_region_wait_s": round(self.region_wait_s, 3),
            "steps": [s.to_dict() for s in self.steps],
            "readback": self.readback,
            "emulation": EMULATION_NOTE,
        }


Runner = Callable[[list[str], float], subprocess.CompletedProcess]


def _parse(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def run_step(argv: list[str], steps: list[CxlStep], run: Runner = run_tool) -> Any:
    """Run one setup command, append its record to `steps`; on failure a GuestError quoting the
    tool's last line and the kernel's messages logged meanwhile."""
    start = time.monotonic()
    with KernelLog() as log:
        try:
            proc = run(argv, STEP_TIMEOUT_S)
            error = None
            if proc.returncode != 0:
                lines = (proc.stderr or proc.stdout or "").strip().splitlines()
                error = lines[-1].strip() if lines else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc, error = None, f"did not finish within {STEP_TIMEOUT_S:.0f} s; it was killed"
        except OSError as exc:
            proc, error = None, f"cannot run {argv[0]}: {exc.strerror}"
        messages = [m for m in log.read() if any(w in m.lower() for w in _KERNEL_WORDS)]
    step = CxlStep(argv, time.monotonic() - start, _parse(proc.stdout) if proc else None, messages, error)
    steps.append(step)
    if error is not None:
        said = f"; the kernel said: {' | '.join(messages[-3:])}" if messages else "; the kernel said nothing"
        raise GuestError(f"{' '.join(argv)} failed: {error}{said}")
    return step.output


def memdevs_by_serial(listing: Any) -> dict[int, str]:
    """`cxl list -M` JSON → serial → memdev name (cxl prints one object, a list, or nothing)."""
    items = listing if isinstance(listing, list) else [listing] if isinstance(listing, dict) else []
    found = {}
    for item in items:
        if isinstance(item, dict) and "memdev" in item and "serial" in item:
            try:
                found[int(item["serial"], 0) if isinstance(item["serial"], str) else int(item["serial"])] = (
                    item["memdev"]
                )
            except (TypeError, ValueError):
                continue
    return found


def region_name(created: Any) -> str | None:
    """The region `cxl create-region` printed (one object, or a list of one)."""
    items = created if isinstance(created, list) else [created]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("region"), str):
            return item["region"]
    return None


def _nd_regions() -> set[str]:
    return {os.path.basename(p) for p in glob.glob("/sys/bus/nd/devices/region*")}


def setup_cxl(devices: list[tuple[int, PmemConfig]], steps: list[CxlStep] | None = None) -> list[CxlDevice]:
    """Load the cxl drivers, then per device (by serial, in plan order): create a one-way pmem
    region on it and the namespace in its config's mode. Returns one CxlDevice per device.

    Refused outside pmemkit's VM: region creation reprograms HDM decoders of real hardware.
    """
    if not devices:
        return []
    if not vm_token():
        raise SafetyError(
            "refused CXL setup: rule 'pmemkit-vm' — regions are only created inside pmemkit's VM"
        )
    from pmemkit.guest.targets import step  # lazily: targets imports prepare, which imports this

    shared = steps if steps is not None else []
    phase("cxl-start")
    run_step(["modprobe", "-a", *MODULES], shared)
    wanted = {serial for serial, _ in devices}
    deadline = time.monotonic() + ENUMERATE_TIMEOUT_S
    while True:
        listing_steps: list[CxlStep] = []
        found = memdevs_by_serial(run_step(["cxl", "list", "-M"], listing_steps))
        if wanted <= set(found) or time.monotonic() > deadline:
            shared += listing_steps
            break
        time.sleep(0.5)
    phase("cxl-memdevs")
    result = []
    for serial, cfg in devices:
        dev = CxlDevice(serial, found.get(serial), steps=list(shared) if not result else [])
        result.append(dev)
        if dev.memdev is None:
            raise GuestError(
                f"no CXL memdev with serial {serial:#x} after {ENUMERATE_TIMEOUT_S:.0f} s "
                f"(cxl list -M shows {found or 'none'}): is the VM's -device cxl-type3 present?"
            )
        before = _nd_regions()
        argv = ["cxl", "create-region", "-m", "-d", ROOT_DECODER, "-t", "pmem", "-w", str(INTERLEAVE_WAYS)]
        dev.cxl_region = region_name(run_step([*argv, dev.memdev], dev.steps))
        waited = time.monotonic()
        dev.nd_region = _wait_new_region(before, dev)
        dev.region_wait_s = time.monotonic() - waited
        argv = ["ndctl", "create-namespace", "-r", dev.nd_region, "-m", cfg.mode or "fsdax"]
        if cfg.map and cfg.mode in ("fsdax", "devdax"):
            argv += ["--map", cfg.map]
        created = run_step(argv, dev.steps)
        blockdev = created.get("blockdev") if isinstance(created, dict) else None
        dev.readback = (
            check_readback(f"/dev/{blockdev}", serial) if blockdev else {"skipped": "no block device"}
        )
        if dev.readback.get("ok") is False:
            raise GuestError(
                f"CXL pmem {blockdev} on {dev.memdev} read back {dev.readback['found']} where a pattern was "
                "written with O_DIRECT: this QEMU's CXL pmem does not keep data (7.2 reads back zeros)"
            )
        seconds = sum(s.seconds for s in dev.steps) + dev.region_wait_s
        step(
            f"cxl: {dev.memdev} (serial {serial:#x}) -> {dev.cxl_region} ({ROOT_DECODER}, "
            f"{INTERLEAVE_WAYS} way) -> nd {dev.nd_region} -> {cfg.mode} namespace in {seconds:.1f} s"
        )
    phase("cxl-regions")
    return result


READBACK_BYTES = 1 << 20
READBACK_OFFSET = 64 << 20


def pattern(serial: int, size: int) -> bytes:
    """Bytes no fresh device holds: a counter mixed with the serial, never all zeros."""
    seed = serial & 0xFF
    return bytes(((i * 131 + seed) & 0xFF) | 1 for i in range(size))


def check_readback(
    device: str, serial: int, size: int = READBACK_BYTES, offset: int = READBACK_OFFSET
) -> dict[str, Any]:
    """Write a pattern to the fresh namespace with O_DIRECT, read it back with O_DIRECT, compare.

    Why before mkfs: QEMU 7.2's CXL pmem took writes and gave zeros back once the page cache was
    bypassed, so a filesystem "made" on it fails to mount with no kernel message (issue 16); here
    the failure is named where it happens. Runs only on the namespace setup_cxl has just created.
    """
    import mmap

    data = pattern(serial, size)
    buffer = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs
    start = time.monotonic()
    try:
        fd = os.open(device, os.O_RDWR | os.O_DIRECT)
        try:
            buffer[:] = data
            written = os.pwritev(fd, [buffer], offset)
            os.fsync(fd)
            buffer[:] = bytes(size)
            read = os.preadv(fd, [buffer], offset)
        finally:
            os.close(fd)
    except OSError as exc:
        return {"device": device, "ok": False, "found": f"an error ({exc.strerror})", "bytes": 0}
    got = bytes(buffer)
    buffer.close()
    ok = written == size and read == size and got == data
    found = (
        "the pattern"
        if ok
        else (
            "zeros" if not any(got) else f"{sum(a != b for a, b in zip(got, data, strict=True))} wrong bytes"
        )
    )
    return {
        "device": device,
        "ok": ok,
        "found": found,
        "bytes": size,
        "offset": offset,
        "written": written,
        "read": read,
        "seconds": round(time.monotonic() - start, 3),
        "how": "pwritev + fsync + preadv with O_DIRECT on the block device",
    }


def phase(name: str) -> None:
    """A boot-phase marker the host times like the init script's (vm/guest-init.sh `phase`)."""
    try:
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = f.read().split()[0]
    except OSError:
        uptime = "?"
    print(f"PMEMKIT-PHASE {name} {uptime}", flush=True)


def _wait_new_region(before: set[str], dev: CxlDevice, timeout_s: float = 30.0) -> str:
    """The nd region the CXL region became (cxl_pmem registers it asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        new = sorted(_nd_regions() - before)
        if len(new) == 1:
            return new[0]
        if len(new) > 1 or time.monotonic() > deadline:
            raise GuestError(
                f"CXL region {dev.cxl_region} of {dev.memdev} gave {len(new)} new nd region(s) "
                f"({new or 'none'}) within {timeout_s:.0f} s; is cxl_pmem loaded?"
            )
        time.sleep(0.1)
