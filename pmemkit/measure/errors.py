"""The measure room's one exception type for expected failures (no samples, nonsense input).

A plain `ValueError` subclass: the measure room imports numpy and the stdlib only (ARCHITECTURE.md),
so it does not build on `pmemkit.scenario.ScenarioError`; callers catch `ValueError` or this.
"""

from __future__ import annotations


class MeasureError(ValueError):
    """Input the measuring code cannot summarise as given; the message says the cause and the fix."""
