"""Read a run directory and write its report.md (the only file I/O of the report room)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pmemkit.plan import write_atomic
from pmemkit.report.markdown import Predictor, RunContents, render, render_plots
from pmemkit.scenario import Observation, ScenarioError


def _json(path: Path, warnings: list[str]) -> dict[str, Any]:
    if not path.exists():
        warnings.append(f"{path.name} is missing")
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        warnings.append(f"{path.name} is not valid JSON ({exc})")
        return {}


def load_observations(path: Path, warnings: list[str]) -> list[Observation]:
    """Every valid line; a damaged line becomes a warning, never a lost report."""
    observations: list[Observation] = []
    if not path.exists():
        return observations
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            observations.append(Observation.from_dict(json.loads(line)))
        except (json.JSONDecodeError, ScenarioError, TypeError, KeyError) as exc:
            warnings.append(f"{path.name} line {number} skipped: {exc}")
    return observations


def load_run(run_dir: Path, failure: str | None = None) -> RunContents:
    warnings: list[str] = []
    return RunContents(
        name=run_dir.name,
        plan=_json(run_dir / "plan.json", warnings),
        environment=_json(run_dir / "environment.json", warnings),
        guest_environment=_json(run_dir / "guest-environment.json", []),
        observations=load_observations(run_dir / "observations.jsonl", warnings),
        failure=failure,
        warnings=warnings,
    )


def default_predictor() -> Predictor | None:
    """The model's prediction for an observation's scenario, or None where it has no answer."""
    try:
        from pmemkit.model import ModelError, predict
    except ImportError:
        return None

    def predictor(obs: Observation):  # type: ignore[no-untyped-def]
        try:
            return predict(obs.scenario, obs.operation)
        except (ModelError, ScenarioError, ValueError):
            return None

    return predictor


def render_run_dir(run_dir: Path, failure: str | None = None) -> tuple[Path, int]:
    """Write `report.md` for `run_dir`; returns its path and the number of observations."""
    contents = load_run(run_dir, failure)
    if failure is None:
        failure = contents.environment.get("failure")
        contents.failure = failure
    plots = render_plots(contents)
    if plots:
        (run_dir / "plots").mkdir(exist_ok=True)
        for name, svg in plots.items():
            write_atomic(run_dir / "plots" / name, svg)
    report = run_dir / "report.md"
    write_atomic(report, render(contents, default_predictor(), sorted(plots)))
    return report, len(contents.observations)
