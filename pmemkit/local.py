"""`pmemkit run --target local`: the guest side of the suites on the machine pmemkit is started on.

Why: a researcher with real pmem or CXL hardware (or any VM of their own) runs the same suites on
their devices and gets the same run directory and report. Nothing boots: the devices the user names
with `--device` are found among the kernel's nd namespaces, described as the plan's pmem configs
(source from the nd bus provider, mode and map from the kernel), and handed to the same runner the
guest uses (`guest.runner.local_run`). Every destructive step still goes through `guest.safety`,
with the user's `--destroy-data` (and `--force`); without `--destroy-data` nothing starts.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmemkit import __version__, rundir, units
from pmemkit.scenario import PmemConfig, ScenarioError
from pmemkit.vm.errors import HostToolMissing

#: nd bus provider → pmemkit's pmem source: the provider names of drivers/nvdimm/e820.c and
#: drivers/acpi/nfit (seen in pmemkit's VM), and of drivers/nvdimm/virtio_pmem.c (inferred); a
#: provider not listed (e.g. a CXL region) is refused with its name.
PROVIDERS = {"e820": "memmap", "ACPI.NFIT": "nvdimm", "virtio-pmem": "virtio-pmem"}
LOCAL_ACCEL = "local"  # the plan's `accel`: no VM, so no accelerator


class LocalRefused(Exception):
    """A local run that must not start; the message names the rule (turned into exit 7)."""


@dataclass
class LocalResult:
    run_dir: Path
    observations: int
    report: Path | None  # None: not rendered here, see `report_missing`
    failed: bool
    report_missing: tuple[str, ...] = ()  # the report's modules this machine lacks (pipeline.render_report)


def describe(namespace: Any, index: int) -> tuple[PmemConfig, Any]:
    """A kernel namespace as the plan's pmem config and placement (the place it already has)."""
    from pmemkit.plan import Placement

    source = PROVIDERS.get(namespace.provider)
    if source is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ScenarioError(
            f"{namespace.path}: its nd bus provider is {units.shown(namespace.provider)}; pmemkit's "
            f"suites and model know {known} (memmap, NVDIMM, virtio-pmem) only"
        )
    if source == "memmap":
        start = namespace.resource or 0
        return PmemConfig("memmap", namespace.size, start=start), Placement(
            index, "memmap", memmap_start=start
        )
    if source == "nvdimm":
        mode = namespace.mode
        map_ = namespace.map if mode in ("fsdax", "devdax") and namespace.map in ("mem", "dev") else None
        handle = namespace.dimm_handles[0] if namespace.dimm_handles else -1
        config = PmemConfig("nvdimm", namespace.size, mode=mode, map=map_)
        return config, Placement(index, "nvdimm", nfit_handle=handle)
    region = os.path.realpath(f"/sys/bus/nd/devices/{namespace.region}")
    pci = next((part for part in region.split("/") if part.count(":") == 2), "unknown")
    return PmemConfig("virtio-pmem", namespace.size), Placement(index, "virtio-pmem", pci_address=pci)


def find_devices(named: list[str], current: list[Any]) -> list[Any]:
    """The kernel's namespace behind each --device (links resolved), in the order named."""
    from pmemkit.guest.prepare import PreparedDevice

    by_name = {}
    for ns in current:
        for dev in (ns.blockdev, ns.chardev):
            if dev:
                by_name[dev] = ns
    prepared = []
    for index, device in enumerate(named):
        name = os.path.basename(os.path.realpath(device))
        ns = by_name.get(name)
        if ns is None:
            have = ", ".join(f"/dev/{n}" for n in sorted(by_name)) or "none"
            raise ScenarioError(
                f"--device {units.shown(device)} is not the device of a pmem namespace the kernel has "
                f"(ndctl list: {have})"
            )
        if any(p.namespace.dev == ns.dev for p in prepared):
            raise ScenarioError(f"--device {units.shown(device)} names {ns.dev} a second time")
        config, placement = describe(ns, index)
        prepared.append(PreparedDevice(index, config, ns, placement))
    return prepared


def run_local(
    devices: list[str],
    suites: list[str],
    filesystems: list[str],
    runs_dir: Path,
    profile: str,
    *,
    destroy_data: bool,
    force: bool,
    progress: Callable[[str], None],
) -> LocalResult:
    """Check, make the run directory, run the suites here, render the report."""
    from pmemkit.guest.experiments import VM_ONLY, load_all
    from pmemkit.guest.probe import namespaces
    from pmemkit.guest.runner import local_run
    from pmemkit.guest.safety import clear_for_destruction
    from pmemkit.pipeline import ReportModulesMissing, check_filesystems_fit, render_report
    from pmemkit.plan import Plan

    load_all()
    vm_only = [name for name in suites if name in VM_ONLY]
    if vm_only:
        raise LocalRefused(
            f"refused --target local: rule 'pmemkit-vm' — suite {', '.join(vm_only)} changes the running "
            "kernel's memory state and runs only inside pmemkit's VM; drop it from --suite or use the VM"
        )
    if not destroy_data:
        raise LocalRefused(
            "refused --target local: rule 'user-named' — it makes filesystems on every --device "
            "(their data is lost); add --destroy-data to confirm"
        )
    if shutil.which("ndctl") is None:  # the namespaces behind the devices are read with it
        raise HostToolMissing("ndctl is not installed: apt-get install ndctl")
    prepared = find_devices(devices, namespaces())
    for device in prepared:  # every refusal before a file is written
        clear_for_destruction(device.namespace.path or "", destroy_data=destroy_data, force=force)
    configs = [d.config for d in prepared]
    try:
        check_filesystems_fit(configs, filesystems)
    except Exception as exc:  # VmConfigError: one line, exit 2
        raise ScenarioError(str(exc)) from None
    plan = Plan(
        suites=suites,
        pmem=configs,
        filesystems=filesystems,
        accel=LOCAL_ACCEL,
        pmemkit_version=__version__,
        profile=profile,
        placements=[d.placement for d in prepared],
    )
    run_dir = rundir.make_run_dir(runs_dir)
    progress(f"run directory: {run_dir}")
    rundir.write_atomic(run_dir / rundir.PLAN, json.dumps(plan.to_dict(), indent=2) + "\n")
    rundir.write_atomic(
        run_dir / rundir.ENVIRONMENT, json.dumps(environment(devices, force), indent=2) + "\n"
    )
    with contextlib.redirect_stdout(StepLines(progress)):  # the runner's console lines, as progress
        rc = local_run(plan, run_dir, prepared, destroy_data=destroy_data, force=force)
    failure = None if rc == 0 else "some steps failed (see the observations)"
    try:
        report, count = render_report(run_dir, failure)
    except ReportModulesMissing as exc:  # e.g. pmemkit from source on a bare machine: the run is kept
        return LocalResult(run_dir, exc.observations, None, rc != 0, exc.missing)
    return LocalResult(run_dir, count, report, rc != 0)


class StepLines(io.TextIOBase):
    """The runner's `PMEMKIT-STEP`/`PMEMKIT-OBS` lines (meant for the host reading a guest console)
    as progress lines here; anything else printed passes through as it is."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress
        self.partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            if line.startswith("PMEMKIT-STEP "):
                self.progress(line[len("PMEMKIT-STEP ") :])
            elif line.startswith("PMEMKIT-OBS "):
                self.progress("observed " + line[len("PMEMKIT-OBS ") :])
            else:
                self.progress(line)
        return len(text)


def environment(devices: list[str], force: bool) -> dict[str, Any]:
    """environment.json of a local run: this machine, and that no VM was involved."""
    try:
        cmdline = Path("/proc/cmdline").read_text().strip()
    except OSError:
        cmdline = "?"
    return {
        "pmemkit_version": __version__,
        "target": "local",
        "host": {
            "kernel": platform.release(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "accel": LOCAL_ACCEL,
        "accel_reason": "--target local: no VM, the suites ran on this machine's kernel",
        "qemu": "none (--target local)",
        "kernel_cmdline": cmdline,
        "guest_ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "devices": devices,
        "destroy_data": True,
        "force": force,
    }
