"""A run's parsed files → the report and its plots (pure: the file I/O is `pmemkit.rundir`'s)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pmemkit.report.csvout import observations_csv
from pmemkit.report.html import render_html
from pmemkit.report.markdown import Predictor, RunContents
from pmemkit.report.plots import Plot, render_plots
from pmemkit.report.summary import render_summary
from pmemkit.scenario import Observation, ScenarioError

if TYPE_CHECKING:
    from pmemkit.rundir import RunFiles


def default_predictor(warnings: list[str] | None = None) -> Predictor | None:
    """The model's prediction for an observation's scenario, or None where it has no answer.

    A model that cannot be imported is said in the report (`warnings`), never silently dropped.
    """
    try:
        from pmemkit.model import ModelError, predict
        from pmemkit.model.operations import model_name
    except ImportError as exc:
        if warnings is not None:
            warnings.append(f"the model could not be imported ({exc}): no model-vs-kernel comparison")
        return None

    def predictor(obs: Observation):  # type: ignore[no-untyped-def]
        try:
            return predict(obs.scenario, model_name(obs.operation, obs.variant))
        except (ModelError, ScenarioError, ValueError):
            return None

    return predictor


#: What a well-formed JSON value of the wrong shape raises somewhere in the renderer ("boot": 5,
#: a list where a dict was written, a number too large for int(), NaN where a count belongs).
SHAPE_ERRORS = (TypeError, KeyError, AttributeError, ValueError, ArithmeticError, IndexError, RecursionError)


class ShapeError(ValueError):
    """The run's files are valid JSON but not in a shape this pmemkit renders, even in part."""


@dataclass
class Rendered:
    """Everything a report writes, rendered before anything is written: the plots, report.md's and
    report.html's text, observations.csv."""

    contents: RunContents
    plots: list[Plot]
    predictor: Predictor | None
    csv: str = ""

    def plot_files(self) -> dict[str, bytes]:
        """Each plot as PNG; one whose drawing fails on the run's values is left out, said in a warning."""
        files = {}
        for plot in self.plots:
            try:
                files[plot.name] = plot.png
            except SHAPE_ERRORS as exc:
                self.contents.warnings.append(
                    f"plot {plot.name} left out: it could not be drawn ({_why(exc)})"
                )
        self.plots = [p for p in self.plots if p.name in files]
        return files

    def texts(self, written: list[str]) -> tuple[str, str]:
        """report.md (linking the plots written to plots/) and report.html (every drawn plot inline)."""
        linked = [p for p in self.plots if p.name in written]
        return render_summary(self.contents, self.predictor, linked), render_html(
            self.contents, self.predictor, self.plots
        )


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


def _why(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 120 else text[:117] + "..."


def _attempt(contents: RunContents, predictor: Predictor | None) -> Rendered:
    """Render plots and text once (on a copy of the warnings), so a shape error shows up here."""
    trial = replace(contents, warnings=list(contents.warnings))
    rendered = Rendered(trial, render_plots(trial), predictor)
    render_summary(trial, predictor, rendered.plots)
    render_html(trial, predictor, [])  # the page's every section but the PNGs, drawn only when written
    rendered.csv = observations_csv(trial.observations)
    return rendered


def _renders(contents: RunContents, predictor: Predictor | None) -> BaseException | None:
    try:
        _attempt(contents, predictor)
    except SHAPE_ERRORS as exc:
        return exc
    return None


def _salvage(contents: RunContents, predictor: Predictor | None) -> RunContents:
    """The run with each field or observation the renderer chokes on left out, each said in a warning.

    The files are the guest's or a user's, so any value may have any JSON type; rather than
    describe every field's type twice, what the renderer cannot use is found by trying: the run's
    keys are added one at a time to an empty run, then the observations one at a time.
    """
    warnings = list(contents.warnings)
    docs = {
        "plan": "plan.json",
        "environment": "environment.json",
        "guest_environment": "guest-environment.json",
    }
    base = replace(contents, plan={}, environment={}, guest_environment={}, observations=[], warnings=[])
    if (exc := _renders(base, predictor)) is not None:
        raise ShapeError(f"even an empty run does not render ({_why(exc)})")
    for attr, label in docs.items():
        for key, value in getattr(contents, attr).items():
            trial = replace(base, **{attr: {**getattr(base, attr), key: value}})
            if (exc := _renders(trial, predictor)) is None:
                base = trial
            else:
                warnings.append(
                    f"{label}: {key!r:.60} left out, its value is not what pmemkit renders ({_why(exc)})"
                )
    kept = []
    for index, obs in enumerate(contents.observations, 1):
        if (exc := _renders(replace(base, observations=[obs]), predictor)) is None:
            kept.append(obs)
        else:
            warnings.append(
                f"observation {index} ({obs.experiment!r:.40} {obs.operation!r:.40}) left out: its fields "
                f"are not what pmemkit renders ({_why(exc)})"
            )
    return replace(base, observations=kept, warnings=warnings)


def render_run(files: RunFiles, failure: str | None = None) -> Rendered:
    """The report and plots of a run; what cannot be rendered is left out with a warning.

    Raises ShapeError when even that fails (then nothing is to be written).
    """
    contents = contents_of(files, failure)
    predictor = default_predictor(contents.warnings)
    try:
        return _attempt(contents, predictor)
    except SHAPE_ERRORS:
        pass
    salvaged = _salvage(contents, predictor)
    try:
        return _attempt(salvaged, predictor)
    except SHAPE_ERRORS as exc:  # observations that render alone but not together
        raise ShapeError(f"its observations do not render together ({_why(exc)})") from None
