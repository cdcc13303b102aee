"""The model room's one exception type for expected failures (bad kernel, nonsense scenario).

It subclasses `ScenarioError` so callers that already catch the shared vocabulary's error (the
CLI, the report) also catch the model's, and turn it into one line and exit code 2.
"""

from __future__ import annotations

from pmemkit.scenario import ScenarioError


class ModelError(ScenarioError):
    """A question the model cannot answer as asked; the message says the cause and the fix."""
