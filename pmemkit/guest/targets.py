"""Target kinds as a registry: each builder turns the prepared devices, the plan and the environment
into the Targets experiments run on.

Why a registry: the runner loops over builders in registration order and never names a target kind
or an experiment, so a new kind of target is one builder here and a new experiment is one module in
`pmemkit.guest.experiments`. A builder yields Targets, plus Observations of its own preparation
steps; a step that could not run is yielded as a `Failure` (recorded, counted, and the run goes on).
A builder's cleanup after a target (unmount) runs when the runner asks for its next item.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pmemkit.guest import GuestError
from pmemkit.guest.experiments import Target, observation_provenance
from pmemkit.guest.prepare import (
    DAX_MOUNT_OPTIONS,
    MKFS_OPTIONS,
    PreparedDevice,
    mkfs,
    mount_dax,
    unmount,
)
from pmemkit.guest.safety import SafetyError, clear_devmem_range, clear_for_destruction, legacy_pmem_ranges
from pmemkit.plan import Plan
from pmemkit.scenario import Observation, Scenario

SCRATCH_DIR = "/var/tmp/pmemkit"  # on the ordinary root disk: O_DIRECT partner files
EXPECTED = (GuestError, SafetyError, OSError, ValueError)
RUN_PROVENANCE = ("kernel", "accel", "pmemkit_version", "timer_overhead_ns", "emulation", "cpu_model")


def step(text: str) -> None:
    """A progress line on the serial console, shown by the host as it arrives."""
    print(f"PMEMKIT-STEP {text}", flush=True)


@dataclass
class Context:
    """What builders build from: the plan, the guest environment and the devices prepared (if any)."""

    plan: Plan
    env: dict[str, Any]
    devices: list[PreparedDevice] = field(default_factory=list)
    #: The user's flags for the safety rules (`run --target local`); inside pmemkit's VM they are
    #: not needed: emulated pmem is cleared by the VM rule.
    destroy_data: bool = False
    force: bool = False


@dataclass(frozen=True)
class Failure:
    """A preparation step that could not run: recorded as its observation and counted as failed."""

    observation: Observation


Item = Target | Observation | Failure
Builder = Callable[[Context], Iterator[Item]]


@dataclass(frozen=True)
class TargetKind:
    """One builder and the target kinds (`Target.kind`) it yields.

    `early`: runs before the pmem devices are prepared (the page-less /dev/mem control must read the
    legacy ranges before nd_e820 claims them). `always`: builds even when no planned experiment runs
    on its kinds (device preparation is itself an observation: mkfs, mount, dax refusal).
    """

    name: str
    kinds: tuple[str, ...]
    build: Builder
    early: bool = False
    always: bool = False


BUILDERS: list[TargetKind] = []


def target_kind(
    name: str, kinds: tuple[str, ...], *, early: bool = False, always: bool = False
) -> Callable[[Builder], Builder]:
    """Decorator: register `fn` as the builder of `kinds`; builders run in registration order."""

    def wrap(fn: Builder) -> Builder:
        if any(b.name == name for b in BUILDERS):
            raise ValueError(f"target kind {name!r} registered twice")
        BUILDERS.append(TargetKind(name, kinds, fn, early, always))
        return fn

    return wrap


def run_provenance(env: dict[str, Any]) -> dict[str, Any]:
    """The run-wide part of every observation's provenance."""
    return {k: env[k] for k in RUN_PROVENANCE}


def failure(
    env: dict[str, Any], experiment: str, operation: str, exc: BaseException, scenario: Scenario, device: str
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
            {**run_provenance(env), "pmem_source": scenario.source, "namespace_mode": scenario.mode}, 0
        ),
    )


def device_provenance(env: dict[str, Any], device: PreparedDevice) -> dict[str, Any]:
    ns = device.namespace
    return {
        **run_provenance(env),
        "pmem_source": device.config.source,
        "pmem_spec": device.config.spec(),
        "namespace": ns.dev,
        "namespace_mode": ns.mode,
        "namespace_map": ns.map,
        "ndctl_mode": ns.ndctl_mode,
        "queue_dax": ns.queue_dax,
        "nd_provider": ns.provider,
        **({"cxl": device.setup} if device.setup else {}),
    }


def device_scenario(env: dict[str, Any], device: PreparedDevice, fs: str | None) -> Scenario:
    ns = device.namespace
    return Scenario(
        kernel=env["kernel"],
        source=device.config.source,
        mode=ns.mode,
        map=ns.map if ns.mode in ("fsdax", "devdax") else None,
        fs=fs,
    )


def inject_fault(kind: str) -> None:
    """Fail on purpose after the first device, so tests can prove results survive a dead guest."""
    step(f"injecting fault: {kind}")
    if kind == "panic":
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("c")
    while kind == "hang":
        time.sleep(3600)


@target_kind("devmem", ("devmem",), early=True)
def pageless_controls(ctx: Context) -> Iterator[Item]:
    """The seed mail's world without struct page: legacy pmem through /dev/mem before nd_e820 claims it."""
    env = ctx.env
    for lo, hi in legacy_pmem_ranges():
        where = f"/dev/mem@{lo:#x}"
        scenario = Scenario(kernel=env["kernel"], source="memmap", mode="devmem")
        provenance = {
            **run_provenance(env),
            "pmem_source": "memmap",
            "namespace_mode": "none (/dev/mem)",
            "device": where,
            "phys_range": [hex(lo), hex(hi)],
        }
        try:
            clear_devmem_range(lo, hi - lo + 1)
        except SafetyError as exc:
            yield Failure(failure(env, "prepare", "devmem", exc, scenario, where))
            continue
        params = {**ctx.plan.params(), "phys_start": lo}
        yield Target("devmem", "/dev/mem", where, scenario, SCRATCH_DIR, provenance, params)


def _baseline(ctx: Context, kind: str, mode: str, fs: str | None) -> Iterator[Item]:
    path = os.path.join(SCRATCH_DIR, "baseline")
    os.makedirs(path, exist_ok=True)
    scenario = Scenario(kernel=ctx.env["kernel"], source="baseline", mode=mode, fs=fs)
    provenance = {
        **run_provenance(ctx.env),
        "pmem_source": "none (baseline)",
        "namespace_mode": mode,
        "device": "/dev/vda (root disk)" if fs else "anonymous memory",
    }
    if fs:
        provenance.update(fs=fs, mount_options="page cache (no DAX)")
    yield Target(kind, path, provenance["device"], scenario, SCRATCH_DIR, provenance, ctx.plan.params())


@target_kind("anon", ("anon",))
def anon_baseline(ctx: Context) -> Iterator[Item]:
    """Anonymous memory: the yardstick of one boot."""
    yield from _baseline(ctx, "anon", "anonymous", None)


@target_kind("pagecache", ("pagecache",))
def pagecache_baseline(ctx: Context) -> Iterator[Item]:
    """A page-cache file on the root disk: the other yardstick of one boot."""
    yield from _baseline(ctx, "pagecache", "pagecache", "ext4")


@target_kind("device", ("fs", "devdax"), always=True)
def devices(ctx: Context) -> Iterator[Item]:
    """Each prepared device: device-dax as itself, a block device once per planned filesystem."""
    for device in ctx.devices:
        yield from _device(ctx, device)
        if ctx.plan.inject_fault:
            inject_fault(ctx.plan.inject_fault)


def _device(ctx: Context, device: PreparedDevice) -> Iterator[Item]:
    env, ns = ctx.env, device.namespace
    path = ns.path or "?"
    base = device_provenance(env, device)
    if ns.blockdev is None:  # device-dax: no filesystem, the experiments map the char device
        scenario = device_scenario(env, device, None)
        yield Observation(
            "prepare",
            "dax-mount",
            "n/a",
            scenario,
            path,
            detail="device-dax has no block device to mount",
            provenance=observation_provenance(base, 0),
        )
        try:
            clear_for_destruction(path, destroy_data=ctx.destroy_data, force=ctx.force)
        except EXPECTED as exc:
            yield Failure(failure(env, "prepare", "devdax", exc, scenario, path))
            return
        yield Target("devdax", path, path, scenario, SCRATCH_DIR, base, ctx.plan.params())
        return
    made_here = False  # a filesystem this loop made is not someone's data: the next mkfs may replace it
    for fs in ctx.plan.filesystems:
        scenario = device_scenario(env, device, fs)
        provenance = {**base, "fs": fs, "mount_options": DAX_MOUNT_OPTIONS, "mkfs_options": MKFS_OPTIONS[fs]}
        step(f"{scenario.label()} on {path}: mkfs.{fs}, mount -o {DAX_MOUNT_OPTIONS}")
        try:
            mkfs(path, fs, destroy_data=ctx.destroy_data, force=ctx.force or made_here)
            made_here = True
            result = mount_dax(path, fs)
        except EXPECTED as exc:
            yield Failure(failure(env, "prepare", "dax-mount", exc, scenario, path))
            continue
        yield Observation(
            "prepare",
            "dax-mount",
            result.outcome,
            scenario,
            path,
            detail=result.detail,
            metrics={"kernel_messages": result.messages},
            provenance=observation_provenance(provenance, 1),
        )
        if result.mountpoint is None:
            continue
        try:
            yield Target("fs", result.mountpoint, path, scenario, SCRATCH_DIR, provenance, ctx.plan.params())
        finally:
            unmount(result.mountpoint)


def device_pairs(devices: list[PreparedDevice]) -> list[tuple[PreparedDevice, PreparedDevice]]:
    """The first two block devices of each (source, mode, map): what d2d copies and stacks use."""
    groups: dict[tuple[str, str, str | None], list[PreparedDevice]] = {}
    for device in devices:
        ns = device.namespace
        if ns.blockdev:
            groups.setdefault((device.config.source, ns.mode, ns.map), []).append(device)
    return [(group[0], group[1]) for group in groups.values() if len(group) >= 2]


@target_kind("pair", ("pair",))
def pairs(ctx: Context) -> Iterator[Item]:
    """Two-device experiments (device-to-device copies, RAID/dm stacks) on each pair of like devices."""
    found = device_pairs(ctx.devices)
    if not found:
        step("pair experiments need two pmem devices of the same source and mode; none planned")
    for a, b in found:
        path_a, path_b = a.namespace.path or "?", b.namespace.path or "?"
        scenario = device_scenario(ctx.env, a, None)
        provenance = {**device_provenance(ctx.env, a), "peer": path_b, "peer_namespace": b.namespace.dev}
        params = {**ctx.plan.params(), "peer": path_b, "filesystems": ctx.plan.filesystems}
        yield Target("pair", path_a, f"{path_a}+{path_b}", scenario, SCRATCH_DIR, provenance, params)
