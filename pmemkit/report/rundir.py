"""A run's parsed files → the report and its plots (pure: the file I/O is `pmemkit.rundir`'s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pmemkit.report.markdown import Predictor, RunContents, render, render_plots
from pmemkit.scenario import Observation, ScenarioError

if TYPE_CHECKING:
    from pmemkit.rundir import RunFiles


def default_predictor(warnings: list[str] | None = None) -> Predictor | None:
    """The model's prediction for an observation's scenario, or None where it has no answer.

    A model that cannot be imported is said in the report (`warnings`), never silently dropped.
    """
    try:
        from pmemkit.model import ModelError, predict
    except ImportError as exc:
        if warnings is not None:
            warnings.append(f"the model could not be imported ({exc}): no model-vs-kernel comparison")
        return None

    def predictor(obs: Observation):  # type: ignore[no-untyped-def]
        try:
            return predict(obs.scenario, obs.operation)
        except (ModelError, ScenarioError, ValueError):
            return None

    return predictor


@dataclass
class Rendered:
    """The plots to write and, once the caller knows which were written, the report text."""

    contents: RunContents
    plots: dict[str, str]
    predictor: Predictor | None

    def text(self, plot_names: list[str]) -> str:
        return render(self.contents, self.predictor, plot_names)


def contents_of(files: RunFiles, failure: str | None = None) -> RunContents:
    """RunContents for the renderer; the failure is the caller's or the one the run recorded."""
    recorded = files.environment.get("failure")
    if failure is None and isinstance(recorded, str):
        failure = recorded
    return RunContents(
        name=files.name,
        plan=files.plan,
        environment=files.environment,
        guest_environment=files.guest_environment,
        observations=files.observations,
        failure=failure,
        warnings=list(files.warnings),
    )


def render_run(files: RunFiles, failure: str | None = None) -> Rendered:
    contents = contents_of(files, failure)
    predictor = default_predictor(contents.warnings)
    return Rendered(contents, render_plots(contents), predictor)
