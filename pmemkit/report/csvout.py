"""observations.csv: one row per observation, flat columns, for pandas and spreadsheets.

Why flat: a spreadsheet has no nested fields. The observation's own fields come first, then
`scenario.*`, `provenance.*` and `metrics.*`, nested objects flattened to dotted names
(`metrics.latency.p50`) down to MAX_DEPTH, lists of plain values joined with spaces, anything else
(histograms, per-size rows) as compact JSON. A cell longer than MAX_CELL characters is cut and says
so (spreadsheets cap cells at 32 767; observations.jsonl keeps every value whole). Pure: text out.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from pmemkit.scenario import Observation

FIELDS = ("schema", "experiment", "operation", "variant", "outcome", "device", "detail")
MAX_DEPTH = 3
MAX_CELL = 8192
CUT = " …[cut; whole in observations.jsonl]"


def _flat(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = " ".join(str(v) for v in value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(text, str) and len(text) > MAX_CELL:
        return text[: MAX_CELL - len(CUT)] + CUT
    return text


def _cells(prefix: str, value: Any, depth: int, row: dict[str, Any]) -> None:
    if isinstance(value, dict) and depth < MAX_DEPTH:
        for key, inner in value.items():
            _cells(f"{prefix}.{key}", inner, depth + 1, row)
    else:
        row[prefix] = _flat(value)


def _row(obs: Observation) -> dict[str, Any]:
    data = obs.to_dict()
    row = {name: _flat(data.get(name)) for name in FIELDS}
    for group in ("scenario", "provenance", "metrics"):
        part = data.get(group)
        if isinstance(part, dict):
            _cells(group, part, 0, row)
    return row


def observations_csv(observations: list[Observation]) -> str:
    """The CSV text: a header of every column any observation has, then one row each."""
    rows = [_row(o) for o in observations]
    columns = list(FIELDS)
    for group in ("scenario.", "provenance.", "metrics."):
        columns += sorted({k for r in rows for k in r if k.startswith(group)})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
