"""Markdown tables: the one cell escaper and table builder every report section uses.

A module of its own so the generic section and the dedicated ones share it without importing each
other.
"""

from __future__ import annotations

from typing import Any


def cell(value: Any) -> str:
    """A value as one Markdown table cell: `|` escaped, newlines folded, None empty."""
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table as lines: header, separator, one line per row."""
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines
