"""`pmemkit compare RUN_A RUN_B`: parse, call `pmemkit.compare`, print; registered lazily in cli.py."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="compare")
@click.argument("run_a", type=click.Path(path_type=Path, file_okay=False))
@click.argument("run_b", type=click.Path(path_type=Path, file_okay=False))
@click.option("--markdown", "as_markdown", is_flag=True, help="Print a Markdown table.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (rows, summary, provenance).")
@click.option("--force", is_flag=True, help="Compare even when kernel, pmem devices or accelerator differ.")
def compare(run_a: Path, run_b: Path, as_markdown: bool, as_json: bool, force: bool) -> None:
    """Compare every metric two runs both measured: values, ratio B/A with its 95 % CI, significance.

    Latency p50s carry 95 % order-statistic CIs; a difference is significant when the ratio's
    conservative CI excludes 1 (the two CIs do not overlap). Runs with a different kernel, pmem
    devices or accelerator are refused (exit 2) unless --force.

    \b
    Examples:
      pmemkit compare runs/20261207-031959 runs/20261207-040102
      pmemkit compare RUN_A RUN_B --markdown > compare.md
    """
    from pmemkit.cli import fail
    from pmemkit.compare import CompareError, compare_runs, load, render_json, render_markdown, render_text
    from pmemkit.rundir import RunDirError

    if as_json and as_markdown:
        fail("--json and --markdown exclude each other: choose one", 2)
    try:
        files = [load(run_a), load(run_b)]
        result = compare_runs(*files, force=force)
    except RunDirError as exc:
        fail(str(exc), exc.exit_code)
    except CompareError as exc:
        fail(str(exc), 2)
    for run in files:
        for warning in run.warnings:
            click.echo(f"pmemkit: warning: {run.name}: {warning}", err=True)
    render = render_json if as_json else render_markdown if as_markdown else render_text
    click.echo(render(result), nl=False)
