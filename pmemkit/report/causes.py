"""Who refused: the kernel function a traced run names beside the one the model cites (issue 14).

Why: an errno that matches can match for the wrong reason (on 6.1 io_uring refuses every
non-shmem file mapping, page cache included). With `--trace-decisions` each refused observation
carries `metrics["decided_by"]` (guest/decisions.py); the model's rules cite their deciding
function per kernel range (`model.rules.DECIDERS`). This module joins the two per refused cell:
"cause matches", "cause differs" (a disagreement, even when the errno matches), "not traceable",
or "no citation" (the model names no function for that rule yet). Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pmemkit.model.errors import ModelError
from pmemkit.model.kernel import parse_kernel
from pmemkit.model.rules import cited_decider
from pmemkit.report.tables import table
from pmemkit.scenario import Observation, Prediction

MATCHES = "cause matches"
DIFFERS = "cause differs"
NOT_TRACEABLE = "not traceable"
NO_CITATION = "no citation"
VERDICTS = (MATCHES, DIFFERS, NOT_TRACEABLE, NO_CITATION)


@dataclass(frozen=True)
class Cause:
    """One refused cell: the verdict, the model's cited function, the traced one, and why."""

    verdict: str
    cited: str = ""
    traced: str = ""
    note: str = ""


def is_refusal(outcome: str) -> bool:
    """An errno name (`EFAULT`) or `fallback`: the kernel said no."""
    return outcome == "fallback" or (outcome[:1] == "E" and outcome[1:].isalnum() and outcome.isupper())


def _traced(observation: Observation) -> dict[str, Any] | None:
    metrics = observation.metrics if isinstance(observation.metrics, dict) else {}
    record = metrics.get("decided_by")
    return record if isinstance(record, dict) else None


def cause_of(observation: Observation, prediction: Prediction | None) -> Cause | None:
    """The cause verdict of a refused, predicted observation; None for every other cell."""
    if prediction is None or not is_refusal(observation.outcome):
        return None
    record = _traced(observation)
    traced = str(record.get("function") or "") if record else ""
    try:
        cited = cited_decider(prediction.rule, parse_kernel(prediction.scenario.kernel))
    except ModelError:
        cited = None
    cited_name = cited.function if cited else ""
    if record is None:
        return Cause(NOT_TRACEABLE, cited_name, "", "not traced (run with --trace-decisions)")
    if not traced:
        return Cause(
            NOT_TRACEABLE, cited_name, "", str(record.get("why_none") or "no refusing function seen")
        )
    if cited is None:
        return Cause(NO_CITATION, "", traced, f"rule {prediction.rule} cites no function for this kernel")
    if traced == cited.function:
        return Cause(MATCHES, cited_name, traced)
    missing = record.get("not_probeable") if isinstance(record.get("not_probeable"), dict) else {}
    if cited.function in missing:
        nearest = next((c for c in cited.callers if c not in missing), "")
        if traced == nearest:
            return Cause(
                MATCHES,
                cited_name,
                traced,
                f"at its caller {traced}: {cited.function} {missing[cited.function]}",
            )
        return Cause(
            DIFFERS,
            cited_name,
            traced,
            f"{cited.function} {missing[cited.function]}; its nearest caller {nearest or '-'} did not refuse",
        )
    return Cause(DIFFERS, cited_name, traced, f"{traced} refused; the model cites {cited.function}")


def cause_differs(observation: Observation, prediction: Prediction | None) -> bool:
    """True when the traced refusing function is not the model's: a disagreement even if the errno matches."""
    cause = cause_of(observation, prediction)
    return cause is not None and cause.verdict == DIFFERS


def _returned(record: dict[str, Any] | None) -> str:
    if not record or not record.get("function"):
        return ""
    text = f"`{record['function']}` → `{record.get('returned')}`"
    if record.get("raw"):
        text += f" (raw `{record['raw']}`, {record.get('type')})"
    return text


def cause_section(pairs: Iterable[tuple[Observation, Prediction | None]]) -> list[str]:
    """'Who refused' table for every refused, predicted cell; empty when nothing was refused or
    the run was not traced (a table of untraced cells would only repeat the model)."""
    pairs = list(pairs)
    if not any(_traced(obs) is not None for obs, _ in pairs):
        return []
    rows, counts = [], Counter[str]()
    for obs, pred in pairs:
        cause = cause_of(obs, pred)
        if cause is None or pred is None:
            continue
        counts[cause.verdict] += 1
        mark = f"**{cause.verdict}**" if cause.verdict == DIFFERS else cause.verdict
        rows.append(
            [
                obs.scenario.label(),
                obs.shown(),
                f"`{obs.outcome}`",
                f"{pred.rule}",
                f"`{cause.cited}`" if cause.cited else "—",
                _returned(_traced(obs)) or "—",
                mark,
                cause.note,
            ]
        )
    if not rows:
        return []
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
    lines = [
        "## Who refused (kernel function, traced vs cited)",
        "",
        f"{len(rows)} refused cells: {summary}. The traced function is the innermost kprobed function "
        "that returned the refusal when the operation was run once more (`--trace-decisions`); the "
        "cited one is the model rule's deciding function for this kernel. A differing cause counts "
        "as a disagreement in the model table even when the errno matches.",
        "",
    ]
    headers = ["scenario", "operation", "observed", "rule", "model cites", "traced", "cause", "note"]
    return lines + table(headers, rows) + [""]
