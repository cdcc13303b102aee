"""`pmemkit guest-run`: carry out a plan inside pmemkit's VM, one device and filesystem at a time.

Nothing here names an experiment or a target kind: suites come from the plan and the experiment
registry, targets from the builders of `pmemkit.guest.targets`, run in their registration order.
A failure on one device or in one experiment is recorded as an observation (`skipped:<why>` with
the error) and the run goes on with the next, so a partial run still leaves everything it learnt.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pmemkit.guest import experiments as registry
from pmemkit.guest import targets
from pmemkit.guest.experiments import Target
from pmemkit.guest.prepare import PreparedDevice, load_legacy_pmem, match_devices
from pmemkit.guest.probe import probe
from pmemkit.guest.provenance import collect
from pmemkit.guest.results import ObservationWriter
from pmemkit.guest.safety import SafetyError, legacy_pmem_ranges, vm_token
from pmemkit.guest.targets import EXPECTED, SCRATCH_DIR, failure, step
from pmemkit.plan import Plan, write_atomic
from pmemkit.scenario import Observation, PmemConfig, Scenario

__all__ = ["SCRATCH_DIR", "guest_run", "local_run", "run_plan", "step"]


def guest_run(plan_path: Path, out_dir: Path) -> int:
    """Run the plan; returns 0 when every step ran (whatever the kernel answered), 1 otherwise.

    A plan with a `session` (`pmemkit exec`, `pmemkit shell`) runs the user's command or shell
    on the prepared devices instead of the suites (`pmemkit.guest.session`); one with `crash` runs
    that boot's phase of the crash suite.
    """
    plan = Plan.read(plan_path)
    token = vm_token()
    if not token or token != plan.vm_token:
        raise SafetyError(
            "refused guest-run: rule 'pmemkit-vm' — this is not the pmemkit VM the plan was made "
            "for (marker and kernel command line differ); start it with `pmemkit run` on the host"
        )
    if plan.session is not None:
        from pmemkit.guest.session import run_session

        return run_session(plan, out_dir)
    if plan.crash is not None:  # --suite crash: this boot's phase of its two (guest/experiments/crash.py)
        from pmemkit.guest.experiments.crash import run_phase

        return run_phase(plan, out_dir)

    def prepare() -> list[PreparedDevice]:
        load_legacy_pmem(len(legacy_pmem_ranges()))
        return match_devices(plan.pmem, plan.placements)

    return run_plan(plan, out_dir, prepare)


def local_run(
    plan: Plan, out_dir: Path, devices: list[PreparedDevice], *, destroy_data: bool, force: bool
) -> int:
    """`pmemkit run --target local`: the same suites on devices of this machine the user named.

    The early kinds (the page-less /dev/mem control) are left out: they write physical memory,
    which only pmemkit's VM allows, before nd_e820 claims it, which only a boot pmemkit made can
    arrange. Destructive steps get the user's --destroy-data/--force for the safety rules.
    """
    return run_plan(
        plan,
        out_dir,
        lambda: devices,
        early=False,
        destroy_data=destroy_data,
        force=force,
        notes={"emulation": LOCAL_EMULATION_NOTE},
    )


#: A local run's devices are whatever this machine has: pmemkit cannot tell DRAM from real media.
LOCAL_EMULATION_NOTE = (
    "--target local: this machine's own pmem devices; pmemkit does not know whether they are real "
    "media or emulated (memmap= ranges, and any device inside a VM, are DRAM)"
)


def run_plan(
    plan: Plan,
    out_dir: Path,
    prepare: Callable[[], list[PreparedDevice]],
    *,
    early: bool = True,
    destroy_data: bool = False,
    force: bool = False,
    notes: dict[str, Any] | None = None,
) -> int:
    """The suites of `plan` on every target kind, the devices from `prepare`; observations into
    out_dir (`notes` replace entries of the collected provenance). Returns 0 when every step ran,
    1 otherwise."""
    writer = ObservationWriter(out_dir / "observations.jsonl")
    env = {**collect(plan.accel, plan.pmemkit_version), **(notes or {})}
    experiments = [(name, registry.get(name)) for name in plan.suites]
    os.makedirs(SCRATCH_DIR, exist_ok=True)
    failures = 0
    ctx = targets.Context(plan, env, destroy_data=destroy_data, force=force)
    for kind in targets.BUILDERS:
        if kind.early and early:
            failures += _run_kind(kind, ctx, experiments, writer)
    step(f"preparing {len(plan.pmem)} pmem device(s)")
    try:
        devices = prepare()
    except EXPECTED as exc:
        for cfg in plan.pmem:
            writer.add(failure(env, "prepare", "setup", exc, _unprepared(env, cfg), cfg.spec()))
        devices = []
        failures += 1
    env["probe"] = probe()
    write_atomic(out_dir / "guest-environment.json", json.dumps(env, indent=2, default=str) + "\n")
    ctx.devices = devices
    for kind in targets.BUILDERS:
        if not kind.early:
            failures += _run_kind(kind, ctx, experiments, writer)
    step(f"finished: {len(writer)} observations, {failures} failed step(s)")
    return 1 if failures else 0


def _run_kind(
    kind: targets.TargetKind,
    ctx: targets.Context,
    experiments: list[tuple[str, registry.Experiment]],
    writer: ObservationWriter,
) -> int:
    """Build one kind's targets and run every planned experiment that runs on each; returns failures."""
    if not kind.always and not any(registry.runs_on(name, k) for name, _ in experiments for k in kind.kinds):
        return 0
    failures = 0
    for item in kind.build(ctx):
        if isinstance(item, Target):
            failures += _run_experiments(item, experiments, writer)
        elif isinstance(item, targets.Failure):
            writer.add(item.observation)
            failures += 1
        else:
            writer.add(item)
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
