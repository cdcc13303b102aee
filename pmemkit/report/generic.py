"""A report section made from what observations carry, for experiments without a section of their own.

Why: a new experiment module must show up in the report with its numbers without an edit to
report/. The section is one table per experiment: target × operation × outcome (with the model's
prediction beside it, or "no prediction") × each numeric metric. A metric's unit comes from
`metrics["units"]` (a declared `{metric: unit}`), else from its name's suffix (`_ns`, `_bytes`, ...),
else it has none; nested dicts of numbers appear as `outer.inner` columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pmemkit.report.tables import table as _table
from pmemkit.scenario import Observation, Prediction

#: Metric name suffix -> unit, longest first where one suffix ends another (`_per_s` before `_s`).
SUFFIX_UNITS = (
    ("_bytes_per_s", "B/s"),
    ("_per_s", "/s"),
    ("_ns", "ns"),
    ("_us", "µs"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_bytes", "B"),
    ("_kb", "kB"),
    ("_pct", "%"),
    ("_percent", "%"),
)
UNITS_KEY = "units"
MAX_DEPTH = 2  # `latency.p50` yes, deeper structures stay in observations.jsonl

Cell = Callable[[Observation], str]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric_metrics(metrics: Any, prefix: str = "", depth: int = 1) -> dict[str, int | float]:
    """The numbers an observation carries, flattened to `a.b` names; anything else is left out."""
    if not isinstance(metrics, dict):
        return {}
    found: dict[str, int | float] = {}
    for key, value in metrics.items():
        if not prefix and key == UNITS_KEY:
            continue
        name = f"{prefix}{key}"
        if _is_number(value):
            found[name] = value
        elif isinstance(value, dict) and depth < MAX_DEPTH:
            found.update(numeric_metrics(_supported_only(value), f"{name}.", depth + 1))
    return found


def _supported_only(value: dict[str, Any]) -> dict[str, Any]:
    """A latency summary without the percentiles its count cannot support (measure.stats.MIN_SAMPLES)."""
    if "percentile_method" not in value or not isinstance(value.get("count"), int):
        return value
    from pmemkit.measure.stats import PERCENTILES, supports

    return {k: v for k, v in value.items() if k not in PERCENTILES or supports(k, value["count"])}


def unit_of(name: str, declared: dict[str, Any]) -> str | None:
    """A declared unit first; else the one the name's last part says; else None."""
    if isinstance(declared.get(name), str):
        return str(declared[name])
    last = name.rsplit(".", 1)[-1].lower()
    if last == "bytes_per_s":
        return "B/s"
    for suffix, unit in SUFFIX_UNITS:
        if last.endswith(suffix) or last == suffix[1:]:
            return unit
    return None


def _number(value: int | float) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _header(name: str, unit: str | None) -> str:
    return f"{name} ({unit})" if unit else name


def model_cell(prediction: Prediction | None, outcome: str, compared: bool) -> str:
    """The model's word beside the kernel's: its outcome and rule, or why there is none."""
    if not compared:
        return "not compared"
    if prediction is None:
        return "no prediction"
    mark = "agrees" if prediction.outcome == outcome else "**differs**"
    return f"`{prediction.outcome}` ({mark}; {prediction.rule})"


def generic_sections(
    observations: Iterable[Observation],
    dedicated: frozenset[str],
    predictions: dict[int, Prediction | None],
    caption: str,
) -> list[str]:
    """One section per experiment not in `dedicated`, in order of first appearance.

    `predictions` maps id(observation) to the model's answer for every observation the join
    compared (None: the model has no rule); an observation absent from it was not compared.
    """
    groups: dict[str, list[Observation]] = {}
    for obs in observations:
        if obs.experiment not in dedicated:
            groups.setdefault(obs.experiment, []).append(obs)
    lines: list[str] = []
    for experiment, found in groups.items():
        lines += _section(experiment, found, predictions, caption)
    return lines


def _section(
    experiment: str, found: list[Observation], predictions: dict[int, Prediction | None], caption: str
) -> list[str]:

    columns: dict[str, str | None] = {}
    values = []
    for obs in found:
        numbers = numeric_metrics(obs.metrics)
        declared = obs.metrics.get(UNITS_KEY) if isinstance(obs.metrics, dict) else None
        for name in numbers:
            if name not in columns:
                columns[name] = unit_of(name, declared if isinstance(declared, dict) else {})
        values.append(numbers)
    headers = ["target", "operation", "outcome", "model"]
    headers += [_header(n, u) for n, u in columns.items()] + ["detail"]
    rows = []
    for obs, numbers in zip(found, values, strict=True):
        rows.append(
            [
                f"{obs.scenario.label()} ({obs.device})",
                obs.shown(),
                f"`{obs.outcome}`",
                model_cell(predictions.get(id(obs)), obs.outcome, id(obs) in predictions),
                *(_number(numbers[n]) if n in numbers else "—" for n in columns),
                obs.detail,
            ]
        )
    return [
        f"## {experiment}",
        "",
        f"Every observation of experiment `{experiment}` with its numeric metrics ({caption}).",
        "",
        *_table(headers, rows),
        "",
    ]
