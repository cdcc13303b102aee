"""Target kinds as a registry (issue 9 item 2): the runner builds targets from `guest/targets.py`
builders, in order, and never names an experiment or a target kind itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pmemkit.guest import runner, targets
from pmemkit.guest.experiments import KINDS, Target, load_all
from pmemkit.scenario import Observation, Scenario

SC = Scenario("6.1", "baseline", "anonymous")


def test_builders_run_in_the_runners_old_order() -> None:
    assert [b.name for b in targets.BUILDERS] == ["devmem", "anon", "pagecache", "device", "pair"]
    assert [b.name for b in targets.BUILDERS if b.early] == ["devmem"]
    assert [b.name for b in targets.BUILDERS if b.always] == ["device"]


def test_every_kind_an_experiment_asks_for_has_a_builder() -> None:
    load_all()
    built = {k for b in targets.BUILDERS for k in b.kinds}
    asked = {k for kinds in KINDS.values() for k in kinds}
    assert asked <= built, asked - built


def test_runner_names_no_experiment_and_no_target_kind() -> None:
    source = Path(runner.__file__).read_text()
    names = set(load_all()) | {k for b in targets.BUILDERS for k in b.kinds}
    quoted = set(re.findall(r"\"([a-z-]+)\"", source))
    assert not names & quoted, names & quoted


class _Writer:
    def __init__(self) -> None:
        self.seen: list[Observation] = []

    def add(self, obs: Observation) -> None:
        self.seen.append(obs)


def test_run_kind_runs_targets_records_steps_and_counts_failures() -> None:
    events: list[str] = []

    def build(ctx: targets.Context) -> Iterator[targets.Item]:
        yield Observation("prepare", "step", "ok", SC)
        yield targets.Failure(Observation("prepare", "step", "skipped:error", SC))
        try:
            yield Target("toykind", "/x", "/x", SC, "/tmp")
        finally:
            events.append("cleanup")

    def experiment(target: Target, params: dict) -> Iterator[Observation]:
        events.append("experiment")
        yield target.observation("toyexp", "op", "ok")

    kind = targets.TargetKind("toykind", ("toykind",), build)
    writer = _Writer()
    ctx = targets.Context(plan=None, env={})  # type: ignore[arg-type]
    other = [("other", experiment)]
    assert runner._run_kind(kind, ctx, other, writer) == 0 and writer.seen == []  # nothing runs on it
    runner.registry.KINDS["toyexp"] = ("toykind",)
    try:
        failures = runner._run_kind(kind, ctx, [("toyexp", experiment)], writer)  # type: ignore[arg-type]
    finally:
        del runner.registry.KINDS["toyexp"]
    assert failures == 1
    assert [o.outcome for o in writer.seen] == ["ok", "skipped:error", "ok"]
    assert events == ["experiment", "cleanup"]  # cleanup after the experiments, not before
