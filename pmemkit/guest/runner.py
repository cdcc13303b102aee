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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pmemkit.guest import experiments as registry
from pmemkit.guest import targets
from pmemkit.guest.experiments import Target
from pmemkit.guest.prepare import load_legacy_pmem, match_devices
from pmemkit.guest.probe import probe
from pmemkit.guest.provenance import collect
from pmemkit.guest.results import ObservationWriter
from pmemkit.guest.safety import SafetyError, legacy_pmem_ranges, vm_token
from pmemkit.guest.targets import EXPECTED, SCRATCH_DIR, failure, step
from pmemkit.plan import Plan, write_atomic
from pmemkit.scenario import Observation, PmemConfig, Scenario

__all__ = ["SCRATCH_DIR", "guest_run", "step"]


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
    ctx = targets.Context(plan, env)
    for kind in targets.BUILDERS:
        if kind.early:
            failures += _run_kind(kind, ctx, experiments, writer)
    step(f"preparing {len(plan.pmem)} pmem device(s)")
    try:
        load_legacy_pmem(len(legacy_pmem_ranges()))
        devices = match_devices(plan.pmem, plan.placements)
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
