"""The verdict of a run: each observation's outcome beside the model's, as cells and as test cases.

Why a module of its own: the HTML matrix, the short Markdown twin and the CI formats (KTAP, JUnit)
all answer the same question (did the kernel do what the model says, per target and operation),
so they read it from one place instead of each re-joining observations and predictions.
Pure: takes the run's contents and the predictor, returns data.
"""

from __future__ import annotations

from dataclasses import dataclass

from pmemkit.report.markdown import Joined, Predictor, RunContents
from pmemkit.scenario import Observation, Prediction

#: Outcome classes, in the order the legend shows them.
OUTCOME_CLASSES = ("ok", "refused", "fallback", "n/a", "skipped")


def outcome_class(outcome: str) -> str:
    """`ok`; `refused` for an errno name; `fallback` for fallback/short; `n/a`; `skipped` for skipped:*."""
    if outcome == "ok":
        return "ok"
    if outcome.startswith("skipped"):
        return "skipped"
    if outcome in ("fallback", "short"):
        return "fallback"
    if outcome == "n/a":
        return "n/a"
    return "refused"


@dataclass(frozen=True)
class Verdict:
    """One observation, the model's prediction for it (None: no answer or not asked), and the case status."""

    observation: Observation
    prediction: Prediction | None

    @property
    def target(self) -> str:
        """The configuration and device it ran on, e.g. `nvdimm fsdax map=mem ext4 (/dev/pmem0)`."""
        return f"{self.observation.scenario.label()} ({self.observation.device})"

    @property
    def config(self) -> str:
        return self.observation.scenario.label()

    @property
    def skipped(self) -> bool:
        return self.observation.outcome.startswith("skipped")

    @property
    def status(self) -> str:
        """`pass` (kernel = model), `fail` (they differ), `skip` (did not run, or the model has no answer)."""
        if self.skipped or self.prediction is None:
            return "skip"
        return "pass" if Joined(self.observation, self.prediction).agree else "fail"  # the one definition

    @property
    def skip_reason(self) -> str:
        if self.skipped:
            reason = self.observation.outcome.partition(":")[2] or "skipped"
            return f"{reason}: {self.observation.detail}" if self.observation.detail else reason
        return f"the model makes no prediction for this step (observed {self.observation.outcome})"

    @property
    def message(self) -> str:
        """For a failed case: both outcomes and the kernel's words."""
        predicted = self.prediction.outcome if self.prediction else "?"
        rule = f" (rule {self.prediction.rule})" if self.prediction else ""
        said = f"; kernel said: {self.observation.detail}" if self.observation.detail else ""
        return f"kernel {self.observation.outcome}, model {predicted}{rule}{said}"


def verdicts(run: RunContents, predictor: Predictor | None) -> list[Verdict]:
    """Every observation with its prediction; skipped steps are not asked (they did not run)."""
    out = []
    for obs in run.observations:
        asked = predictor is not None and not obs.outcome.startswith("skipped")
        out.append(Verdict(obs, predictor(obs) if asked and predictor else None))
    return out


def column_of(obs: Observation) -> str:
    """The matrix column: the operation with its mapping suffix folded (`odirect-read-into`), plus variant.

    Why folded: the mapping is the row (configuration) already, so `odirect-read-into-anon` on the
    anonymous row and `odirect-read-into-dax` on a DAX row are the same question.
    """
    name = str(obs.operation)
    try:
        from pmemkit.model.operations import mapping_family
    except ImportError:
        found = None
    else:
        found = mapping_family(name)
    if found:
        name = found[0]
    return f"{name}:{obs.variant}" if obs.variant else name


@dataclass(frozen=True)
class Cell:
    """One (configuration, column) of the matrix: the verdicts found there (usually one)."""

    verdicts: tuple[Verdict, ...]

    @property
    def outcome(self) -> str:
        outcomes = sorted({v.observation.outcome for v in self.verdicts})
        return "/".join(outcomes)

    @property
    def css(self) -> str:
        """The worst outcome class in the cell (refused, fallback, n/a, skipped, ok: first found wins)."""
        classes = {outcome_class(v.observation.outcome) for v in self.verdicts}
        for name in ("refused", "fallback", "n/a", "skipped", "ok"):
            if name in classes:
                return name
        return "ok"

    @property
    def disagree(self) -> bool:
        return any(v.status == "fail" for v in self.verdicts)

    @property
    def compared(self) -> bool:
        return any(v.status in ("pass", "fail") for v in self.verdicts)

    def title(self) -> str:
        """The hover text: each observation's outcome, the model's, and the kernel's words."""
        parts = []
        for v in self.verdicts:
            obs = v.observation
            model = f"model {v.prediction.outcome}" if v.prediction else "model: no prediction"
            text = f"{obs.shown()} on {obs.device}: kernel {obs.outcome}, {model}"
            parts.append(text + (f" — {obs.detail}" if obs.detail else ""))
        return "\n".join(parts)


@dataclass(frozen=True)
class Matrix:
    """Configurations (rows, in the run's order) × operations (columns, in first-seen order)."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]

    @property
    def counts(self) -> dict[str, int]:
        """How many verdicts pass, fail and skip: the one summary line every format prints."""
        out = {"pass": 0, "fail": 0, "skip": 0}
        for cell in self.cells.values():
            for v in cell.verdicts:
                out[v.status] += 1
        return out


def matrix(found: list[Verdict]) -> Matrix:
    rows: list[str] = []
    columns: list[str] = []
    grouped: dict[tuple[str, str], list[Verdict]] = {}
    for v in found:
        row, column = v.config, column_of(v.observation)
        if row not in rows:
            rows.append(row)
        if column not in columns:
            columns.append(column)
        grouped.setdefault((row, column), []).append(v)
    return Matrix(rows, columns, {key: Cell(tuple(vs)) for key, vs in grouped.items()})


def summary_line(found: list[Verdict]) -> str:
    """`N compared: A agree, D disagree; S not compared` — the verdict in one sentence."""
    passed = sum(v.status == "pass" for v in found)
    failed = sum(v.status == "fail" for v in found)
    skipped = sum(v.status == "skip" for v in found)
    return (
        f"{passed + failed} (target × operation) cells compared with the model: {passed} agree, "
        f"{failed} disagree; {skipped} not compared (skipped, or no prediction)"
    )
