"""Experiment registry: one module per experiment, registered at import, never named by the runner.

Like fio's engines: each module exposes one entry point and registers it by name with
`@register("name")`; `load_all()` imports every module of this package, so adding an experiment
touches only its module and its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pmemkit.scenario import Observation, Scenario


@dataclass
class Target:
    """What an experiment runs on: a DAX-mounted filesystem or a device-dax character device.

    `scratch_dir` is a directory on the ordinary (non-pmem) root disk, for the O_DIRECT partner
    files; `provenance` travels into every observation.
    """

    kind: str  # "fs" | "devdax" | baselines: "pagecache" (dir on the root disk), "anon"
    path: str  # mount point, /dev/daxX.Y, or the baseline's directory
    device: str
    scenario: Scenario
    scratch_dir: str
    provenance: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # e.g. {"profile": "quick"}

    def observation(
        self, experiment: str, operation: str, outcome: str, *, repetitions: int = 1, **extra: Any
    ) -> Observation:
        """An Observation of this target with its full provenance.

        `repetitions`: how many times the operation was carried out for this observation (the
        samples behind its numbers); 1 for a single attempt.
        """
        return Observation(
            experiment=experiment,
            operation=operation,
            outcome=outcome,
            scenario=self.scenario,
            device=self.device,
            provenance=observation_provenance(self.provenance, repetitions),
            **extra,
        )


def observation_provenance(base: dict[str, Any], repetitions: int) -> dict[str, Any]:
    """The one place an observation's provenance is completed: its target's, plus its real repetitions.

    0 is honest for a step that never ran (a failed preparation); the runner uses this too.
    """
    if isinstance(repetitions, bool) or not isinstance(repetitions, int) or repetitions < 0:
        raise ValueError(f"repetitions must be a count (int >= 0), not {repetitions!r}")
    return {**base, "repetitions": repetitions}


#: What memory each target kind gives an experiment, as `metrics["mapping"]` spells it. A DAX-mounted
#: filesystem ("fs") is the one kind whose answer depends on the kernel: see `mapping_of`.
KIND_MAPPINGS = {"devdax": "dax", "pagecache": "pagecache", "anon": "anon", "devmem": "pageless"}
FALLBACK_NOTE = "the filesystem fell back to the page cache: the mapping has page-cache pages"


def mapping_of(target: Target, dax: bool) -> str:
    """What the target's memory really is: dax, pagecache (a baseline, or a DAX mount that fell back),
    anon or pageless. `dax` is the kernel's statx answer for the file mapped (used for "fs" only)."""
    if target.kind == "fs":
        return "dax" if dax else "pagecache"
    return KIND_MAPPINGS[target.kind]


def with_mapping(target: Target, observation: Observation, mapping: str) -> Observation:
    """Record what the memory really was in `metrics["mapping"]`, and say so in words where a DAX mount
    fell back to the page cache.

    Why: the operation keeps its plain name whatever the kernel did, so the model's prediction for
    the scenario is compared with it; the fallback travels as data, not as a renamed operation.
    """
    observation.metrics["mapping"] = mapping
    if target.kind == "fs" and mapping == "pagecache":
        observation.detail = (
            f"{observation.detail} ({FALLBACK_NOTE})" if observation.detail else FALLBACK_NOTE
        )
    return observation


Experiment = Callable[[Target, dict[str, Any]], Iterator[Observation]]
EXPERIMENTS: dict[str, Experiment] = {}
#: Target kinds each experiment runs on; the runner skips the others.
KINDS: dict[str, tuple[str, ...]] = {}
#: Experiments that may run only inside pmemkit's VM (e.g. poison: memory failure injected into the
#: running kernel lasts until reboot); `run --target local` refuses them before touching a device.
VM_ONLY: set[str] = set()


class UnknownExperiment(KeyError):
    """A suite name no module registered."""


def register(
    name: str, kinds: tuple[str, ...] = ("fs", "devdax"), *, vm_only: bool = False
) -> Callable[[Experiment], Experiment]:
    """Decorator: make `fn` the entry point of experiment `name`, run on targets of `kinds`."""

    def wrap(fn: Experiment) -> Experiment:
        if name in EXPERIMENTS and EXPERIMENTS[name] is not fn:
            raise ValueError(f"experiment {name!r} registered twice")
        EXPERIMENTS[name] = fn
        KINDS[name] = kinds
        if vm_only:
            VM_ONLY.add(name)
        return fn

    return wrap


def load_all() -> dict[str, Experiment]:
    """Import every experiment module of this package (each registers itself)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return EXPERIMENTS


def runs_on(name: str, kind: str) -> bool:
    return kind in KINDS.get(name, ())


def get(name: str) -> Experiment:
    load_all()
    try:
        return EXPERIMENTS[name]
    except KeyError:
        known = ", ".join(sorted(EXPERIMENTS)) or "none"
        raise UnknownExperiment(f"unknown suite {name!r}: known suites are {known}") from None
