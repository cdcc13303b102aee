"""`pmemkit guest-run`: carry out a plan inside pmemkit's VM, one device and filesystem at a time.

Nothing here names an experiment: suites come from the plan and the registry. A failure on one
device or in one experiment is recorded as an observation (`skipped:<why>` with the error) and the
run goes on with the next, so a partial run still leaves everything it learnt.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pmemkit.guest import GuestError
from pmemkit.guest import experiments as registry
from pmemkit.guest.experiments import Target, observation_provenance
from pmemkit.guest.prepare import (
    DAX_MOUNT_OPTIONS,
    MKFS_OPTIONS,
    PreparedDevice,
    load_legacy_pmem,
    match_devices,
    mkfs,
    mount_dax,
    unmount,
)
from pmemkit.guest.probe import probe
from pmemkit.guest.provenance import collect
from pmemkit.guest.results import ObservationWriter
from pmemkit.guest.safety import (
    SafetyError,
    clear_devmem_range,
    clear_for_destruction,
    legacy_pmem_ranges,
    vm_token,
)
from pmemkit.plan import Plan, write_atomic
from pmemkit.scenario import Observation, PmemConfig, Scenario

SCRATCH_DIR = "/var/tmp/pmemkit"  # on the ordinary root disk: O_DIRECT partner files
EXPECTED = (GuestError, SafetyError, OSError, ValueError)


def step(text: str) -> None:
    """A progress line on the serial console, shown by the host as it arrives."""
    print(f"PMEMKIT-STEP {text}", flush=True)


def guest_run(plan_path: Path, out_dir: Path) -> int:
    """Run the plan; returns 0 when every step ran (whatever the kernel answered), 1 otherwise."""
    plan = Plan.read(plan_path)
    token = vm_token()
    if not token or token != plan.vm_token:
        raise SafetyError(
            "refused guest-run: rule 'pmemkit-vm' — this is not the pmemkit VM the plan was made "
            "for (marker and kernel command line differ); start it with `pmemkit run` on the host"
        )
    writer = ObservationWriter(out_dir / "observations.jsonl")
    env = collect(plan.accel, plan.pmemkit_version)
    experiments = [(name, registry.get(name)) for name in plan.suites]
    os.makedirs(SCRATCH_DIR, exist_ok=True)
    failures = 0
    failures += _run_pageless_controls(plan, env, experiments, writer)
    step(f"preparing {len(plan.pmem)} pmem device(s)")
    try:
        load_legacy_pmem(len(legacy_pmem_ranges()))
        devices = match_devices(plan.pmem, plan.placements)
    except EXPECTED as exc:
        for cfg in plan.pmem:
            writer.add(_failure(env, "prepare", "setup", exc, _unprepared(env, cfg), cfg.spec()))
        devices = []
        failures += 1
    env["probe"] = probe()
    write_atomic(out_dir / "guest-environment.json", json.dumps(env, indent=2, default=str) + "\n")
    failures += _run_baselines(plan, env, experiments, writer)
    for device in devices:
        failures += _run_device(device, plan, env, experiments, writer)
        if plan.inject_fault:
            inject_fault(plan.inject_fault)
    failures += _run_pairs(devices, plan, env, experiments, writer)
    step(f"finished: {len(writer)} observations, {failures} failed step(s)")
    return 1 if failures else 0


RUN_PROVENANCE = ("kernel", "accel", "pmemkit_version", "timer_overhead_ns", "emulation", "cpu_model")


def _run_provenance(env: dict[str, Any]) -> dict[str, Any]:
    """The run-wide part of every observation's provenance."""
    return {k: env[k] for k in RUN_PROVENANCE}


def inject_fault(kind: str) -> None:
    """Fail on purpose after the first device, so tests can prove results survive a dead guest."""
    step(f"injecting fault: {kind}")
    if kind == "panic":
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("c")
    while kind == "hang":
        time.sleep(3600)


def _provenance(env: dict[str, Any], device: PreparedDevice) -> dict[str, Any]:
    ns = device.namespace
    return {
        **_run_provenance(env),
        "pmem_source": device.config.source,
        "pmem_spec": device.config.spec(),
        "namespace": ns.dev,
        "namespace_mode": ns.mode,
        "namespace_map": ns.map,
        "ndctl_mode": ns.ndctl_mode,
        "queue_dax": ns.queue_dax,
        "nd_provider": ns.provider,
    }


def _scenario(env: dict[str, Any], device: PreparedDevice, fs: str | None) -> Scenario:
    ns = device.namespace
    return Scenario(
        kernel=env["kernel"],
        source=device.config.source,
        mode=ns.mode,
        map=ns.map if ns.mode in ("fsdax", "devdax") else None,
        fs=fs,
    )


def _run_pageless_controls(
    plan: Plan,
    env: dict[str, Any],
    experiments: list[tuple[str, registry.Experiment]],
    writer: ObservationWriter,
) -> int:
    """The seed mail's world without struct page: legacy pmem through /dev/mem before nd_e820 claims it."""
    if not any(registry.runs_on(name, "devmem") for name, _ in experiments):
        return 0
    failures = 0
    for lo, hi in legacy_pmem_ranges():
        where = f"/dev/mem@{lo:#x}"
        scenario = Scenario(kernel=env["kernel"], source="memmap", mode="devmem")
        provenance = {
            **_run_provenance(env),
            "pmem_source": "memmap",
            "namespace_mode": "none (/dev/mem)",
            "device": where,
            "phys_range": [hex(lo), hex(hi)],
        }
        try:
            clear_devmem_range(lo, hi - lo + 1)
        except SafetyError as exc:
            writer.add(_failure(env, "prepare", "devmem", exc, scenario, where))
            failures += 1
            continue
        params = {**plan.params(), "phys_start": lo}
        target = Target("devmem", "/dev/mem", where, scenario, SCRATCH_DIR, provenance, params)
        failures += _run_experiments(target, experiments, writer)
    return failures


def device_pairs(devices: list[PreparedDevice]) -> list[tuple[PreparedDevice, PreparedDevice]]:
    """The first two block devices of each (source, mode, map): what d2d copies and stacks use."""
    groups: dict[tuple[str, str, str | None], list[PreparedDevice]] = {}
    for device in devices:
        ns = device.namespace
        if ns.blockdev:
            groups.setdefault((device.config.source, ns.mode, ns.map), []).append(device)
    return [(group[0], group[1]) for group in groups.values() if len(group) >= 2]


def _run_pairs(
    devices: list[PreparedDevice],
    plan: Plan,
    env: dict[str, Any],
    experiments: list[tuple[str, registry.Experiment]],
    writer: ObservationWriter,
) -> int:
    """Two-device experiments (device-to-device copies, RAID/dm stacks) on each pair of like devices."""
    if not any(registry.runs_on(name, "pair") for name, _ in experiments):
        return 0
    pairs = device_pairs(devices)
    if not pairs:
        step("pair experiments need two pmem devices of the same source and mode; none planned")
    failures = 0
    for a, b in pairs:
        path_a, path_b = a.namespace.path or "?", b.namespace.path or "?"
        scenario = _scenario(env, a, None)
        provenance = {**_provenance(env, a), "peer": path_b, "peer_namespace": b.namespace.dev}
        params = {**plan.params(), "peer": path_b, "filesystems": plan.filesystems}
        target = Target("pair", path_a, f"{path_a}+{path_b}", scenario, SCRATCH_DIR, provenance, params)
        failures += _run_experiments(target, experiments, writer)
    return failures


def _run_baselines(
    plan: Plan,
    env: dict[str, Any],
    experiments: list[tuple[str, registry.Experiment]],
    writer: ObservationWriter,
) -> int:
    """The same experiments on anonymous memory and a page-cache file: the yardsticks of one boot."""
    failures = 0
    for kind, mode, fs in (("anon", "anonymous", None), ("pagecache", "pagecache", "ext4")):
        if not any(registry.runs_on(name, kind) for name, _ in experiments):
            continue
        path = os.path.join(SCRATCH_DIR, "baseline")
        os.makedirs(path, exist_ok=True)
        scenario = Scenario(kernel=env["kernel"], source="baseline", mode=mode, fs=fs)
        provenance = {
            **_run_provenance(env),
            "pmem_source": "none (baseline)",
            "namespace_mode": mode,
            "device": "/dev/vda (root disk)" if fs else "anonymous memory",
        }
        if fs:
            provenance.update(fs=fs, mount_options="page cache (no DAX)")
        target = Target(kind, path, provenance["device"], scenario, SCRATCH_DIR, provenance, plan.params())
        failures += _run_experiments(target, experiments, writer)
    return failures


def _run_device(
    device: PreparedDevice,
    plan: Plan,
    env: dict[str, Any],
    experiments: list[tuple[str, registry.Experiment]],
    writer: ObservationWriter,
) -> int:
    ns = device.namespace
    path = ns.path or "?"
    base = _provenance(env, device)
    failures = 0
    if ns.blockdev is None:  # device-dax: no filesystem, the experiments map the char device
        scenario = _scenario(env, device, None)
        writer.add(
            Observation(
                "prepare",
                "dax-mount",
                "n/a",
                scenario,
                path,
                detail="device-dax has no block device to mount",
                provenance=observation_provenance(base, 0),
            )
        )
        try:
            clear_for_destruction(path)
            target = Target("devdax", path, path, scenario, SCRATCH_DIR, base, plan.params())
            failures += _run_experiments(target, experiments, writer)
        except EXPECTED as exc:
            writer.add(_failure(env, "prepare", "devdax", exc, scenario, path))
            failures += 1
        return failures
    for fs in plan.filesystems:
        scenario = _scenario(env, device, fs)
        provenance = {**base, "fs": fs, "mount_options": DAX_MOUNT_OPTIONS, "mkfs_options": MKFS_OPTIONS[fs]}
        step(f"{scenario.label()} on {path}: mkfs.{fs}, mount -o {DAX_MOUNT_OPTIONS}")
        try:
            mkfs(path, fs)
            result = mount_dax(path, fs)
        except EXPECTED as exc:
            writer.add(_failure(env, "prepare", "dax-mount", exc, scenario, path))
            failures += 1
            continue
        writer.add(
            Observation(
                "prepare",
                "dax-mount",
                result.outcome,
                scenario,
                path,
                detail=result.detail,
                metrics={"kernel_messages": result.messages},
                provenance=observation_provenance(provenance, 1),
            )
        )
        if result.mountpoint is None:
            continue
        try:
            target = Target("fs", result.mountpoint, path, scenario, SCRATCH_DIR, provenance, plan.params())
            failures += _run_experiments(target, experiments, writer)
        finally:
            unmount(result.mountpoint)
    return failures


def _run_experiments(
    target: Target, experiments: list[tuple[str, registry.Experiment]], writer: ObservationWriter
) -> int:
    failures = 0
    for name, experiment in experiments:
        if not registry.runs_on(name, target.kind):
            continue
        step(f"{target.scenario.label()}: experiment {name}")
        iterator: Iterator[Observation] = experiment(target, target.params)
        try:
            for observation in iterator:
                writer.add(observation)
        except Exception as exc:  # one experiment's crash must not end the run
            traceback.print_exc()
            writer.add(
                target.observation(
                    name, "experiment", "skipped:error", repetitions=0, detail=f"{type(exc).__name__}: {exc}"
                )
            )
            failures += 1
    return failures


def _unprepared(env: dict[str, Any], cfg: PmemConfig) -> Scenario:
    """A device whose preparation failed: the kernel made no namespace, so it has no mode to name."""
    return Scenario(kernel=env["kernel"], source=cfg.source, mode="unprepared")


def _failure(
    env: dict[str, Any],
    experiment: str,
    operation: str,
    exc: BaseException,
    scenario: Scenario,
    device: str,
) -> Observation:
    """A step that could not run, as an observation: the report shows it, nothing is silent."""
    return Observation(
        experiment,
        operation,
        "skipped:error",
        scenario,
        device,
        detail=f"{type(exc).__name__}: {exc}",
        provenance=observation_provenance(
            {**_run_provenance(env), "pmem_source": scenario.source, "namespace_mode": scenario.mode}, 0
        ),
    )
