"""The report's "What if" section: the 2015 designs priced on the run (issue 13).

A function of the run's parsed plan and observations, so whichever renderer the report uses
(Markdown today) can call it; the analysis is `pmemkit.model.whatif`, the Markdown
`pmemkit.model.whatif_render`, the same text `pmemkit model whatif RUN --markdown` prints.
"""

from __future__ import annotations

from typing import Any

from pmemkit.scenario import Observation, ScenarioError


def whatif_section(
    plan: dict[str, Any], observations: list[Observation], guest_environment: dict[str, Any], name: str
) -> list[str]:
    """Markdown lines (a `##` section), or none for a run without pmem devices or a kernel."""
    if not isinstance(plan, dict) or not plan.get("pmem"):
        return []
    try:
        from pmemkit.model.whatif import run_kernel, whatif
        from pmemkit.model.whatif_render import render_markdown
    except ImportError as exc:  # the report renders without the model; say so, as the join does
        return [
            "## What if: the 2015 designs",
            "",
            f"Not priced: the model could not be imported ({exc}).",
            "",
        ]
    kernel = run_kernel(observations, guest_environment if isinstance(guest_environment, dict) else {})
    if kernel is None:
        return ["## What if: the 2015 designs", "", "Not priced: the run names no kernel.", ""]
    try:
        return render_markdown(whatif(kernel, plan, observations, name), level=2)
    except ScenarioError as exc:  # ModelError too: a device or kernel the model cannot price
        return ["## What if: the 2015 designs", "", f"Not priced: {exc}", ""]
