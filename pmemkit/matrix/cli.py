"""`pmemkit matrix` and `pmemkit merge`: parse, call pmemkit.matrix, print (registered lazily in
pmemkit/cli.py, so importing dask or the report costs nothing to other commands)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from pmemkit import units
from pmemkit.cli import EXIT_BAD_INPUT, fail
from pmemkit.scenario import parse_size

EXIT_CELLS_FAILED = 6


def _say(message: str) -> None:
    click.echo(message, err=True)


def _check_cells(cells: list[Any], local: bool) -> None:
    """Every cell's layout (and, run here, whether one guest of it fits this host) before any
    directory is made: pipeline.check's one-line refusals, exit 2."""
    from pmemkit import pipeline
    from pmemkit.scenario import PmemConfig
    from pmemkit.vm import layout as vm_layout
    from pmemkit.vm.kernels import KernelSpec
    from pmemkit.vm.run import RunOptions

    seen = set()
    for cell in cells:
        key = (cell.pmem, cell.memory, cell.filesystems, cell.accel, cell.timeout_s)
        if key in seen:
            continue
        seen.add(key)
        pmem = [PmemConfig.parse(p) for p in cell.pmem]
        if local:
            pipeline.check(
                RunOptions(
                    pmem=pmem,
                    suites=list(cell.suites),
                    filesystems=list(cell.filesystems),
                    accel=cell.accel,
                    timeout_s=cell.timeout_s,
                    memory=cell.memory,
                    kernel=KernelSpec(series=cell.kernel),
                )
            )
        else:  # the workers' hosts check their own room, each before it boots
            vm_layout.plan_layout(pmem, cell.memory)
            pipeline.check_filesystems_fit(pmem, list(cell.filesystems))


def _jobs(cells: list[Any], requested: int | None, mem_available: int | None) -> int:
    from pmemkit.matrix.jobs import decide_jobs, guest_bytes, host_figures
    from pmemkit.scenario import PmemConfig
    from pmemkit.vm import layout as vm_layout
    from pmemkit.vm.image import cache_dir

    available, cores = host_figures()
    if mem_available is not None:
        available = mem_available
    in_memory = vm_layout.read_host(cache_dir() / "scratch", "tcg").scratch_in_memory
    per_guest = max(guest_bytes([PmemConfig.parse(p) for p in c.pmem], c.memory, in_memory) for c in cells)
    decision = decide_jobs(requested, len(cells), per_guest, available, cores)
    if decision.message:
        _say(f"pmemkit: {decision.message}")
    return decision.jobs


@click.command("matrix")
@click.option(
    "--kernel",
    default=None,
    metavar="LIST",
    help="Kernels, comma-separated (e.g. 6.1,6.12,7.3): one cell each. [default: 6.1]",
)
@click.option(
    "--pmem",
    "pmem_groups",
    multiple=True,
    metavar="GROUP",
    help="A pmem configuration group (repeatable): the devices of one VM joined by `+`, e.g. "
    "memmap:512M+nvdimm:512M,mode=fsdax. [default: memmap:512M]",
)
@click.option(
    "--fs",
    "filesystems",
    default=None,
    metavar="LIST",
    help="Filesystems, comma-separated, one cell each; `+` puts several in one cell (ext4+xfs). "
    "[default: ext4]",
)
@click.option(
    "--suite",
    default=None,
    metavar="LIST",
    help="Suites, comma-separated, one cell each; `+` runs several in one cell (smoke+mmap). "
    "[default: smoke]",
)
@click.option(
    "--file",
    "matrix_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A TOML matrix file with kernel, pmem, fs, suite (and profile, memory, timeout, accel); "
    "options given on the command line win.",
)
@click.option("--profile", type=click.Choice(["quick", "full"]), default=None, help="[default: quick]")
@click.option(
    "--memory", default=None, metavar="SIZE", help="Guest RAM of every cell [default: as `pmemkit run`]."
)
@click.option(
    "--timeout", "timeout_s", default=None, metavar="SECONDS", help="Per cell [default: as `pmemkit run`]."
)
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default=None, help="[default: auto]")
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=256),
    default=None,
    help="Guests at once [default: one per core]; lowered, with a message, to what free memory holds.",
)
@click.option(
    "--resume", is_flag=True, help="Run only the cells of --out that have no complete run directory."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="The matrix directory [default: runs/matrix-<timestamp>/].",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: processes on this host; dask: tasks on a dask.distributed cluster (pmemkit[dask]).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="With --executor dask: the scheduler, e.g. tcp://HOST:8786.",
)
@click.option("--cell-runner", default=None, hidden=True, help="Testing: the command that runs one cell.")
@click.option("--mem-available", default=None, hidden=True, help="Testing: MemAvailable to plan --jobs with.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def matrix(
    kernel: str | None,
    pmem_groups: tuple[str, ...],
    filesystems: str | None,
    suite: str | None,
    matrix_file: Path | None,
    profile: str | None,
    memory: str | None,
    timeout_s: str | None,
    accel: str | None,
    jobs: int | None,
    resume: bool,
    out: Path | None,
    executor: str,
    scheduler: str | None,
    cell_runner: str | None,
    mem_available: str | None,
    as_json: bool,
) -> None:
    """Run kernels × pmem groups × filesystems × suites, each cell a complete `pmemkit run`.

    \b
    Each cell boots its own guest (its own run directory and scratch files; only the read-only
    image cache is shared), up to --jobs at once. OUT holds matrix.json, cells/<cell>/ (one run
    directory per completed cell), attempts/ (failed or interrupted ones) and report.md, the merged
    report: one table per experiment, kernel by kernel, model disagreements marked.
    \b
      pmemkit matrix --kernel 6.1,6.12,7.3 --pmem memmap:512M --pmem nvdimm:512M,mode=fsdax
      pmemkit matrix --resume --out runs/matrix-20261207-101500
      pmemkit matrix --executor dask --scheduler tcp://HOST:8786 --kernel 6.1,7.3
    """
    from pmemkit.matrix import cells as matrix_cells
    from pmemkit.matrix import merge as merging
    from pmemkit.matrix.executors import CELL_COMMAND, DaskExecutor, LocalExecutor
    from pmemkit.matrix.runner import resume_cells, run_matrix
    from pmemkit.rundir import RunDirError
    from pmemkit.vm.lifecycle import Interrupted, SignalGuard

    if executor == "dask" and not scheduler:
        fail(
            "--executor dask needs --scheduler tcp://HOST:PORT (the dask.distributed scheduler)",
            EXIT_BAD_INPUT,
        )
    if scheduler and executor != "dask":
        fail("--scheduler is for --executor dask", EXIT_BAD_INPUT)
    if executor == "dask" and (jobs is not None or mem_available is not None):
        fail(
            "--jobs is the local executor's: on Dask each worker thread runs one cell (start workers with "
            "`dask worker --nthreads N`, N the guests its host holds)",
            EXIT_BAD_INPUT,
        )
    if resume and out is None:
        fail("--resume needs --out DIR, the matrix directory to complete", EXIT_BAD_INPUT)
    given = matrix_cells.read_matrix_file(matrix_file) if matrix_file else {}
    axes_given = bool(kernel or pmem_groups or filesystems or suite or given)
    kernel = kernel or given.get("kernel")
    pmem_list = list(pmem_groups) or given.get("pmem", [])
    filesystems = filesystems or given.get("fs")
    suite = suite or given.get("suite")
    profile = profile or given.get("profile", "quick")
    if profile not in ("quick", "full"):
        fail(f"profile {units.shown(profile)} is not quick or full", EXIT_BAD_INPUT)
    accel = accel or given.get("accel", "auto")
    if accel not in ("auto", "kvm", "tcg"):
        fail(f"accel {units.shown(accel)} is not auto, kvm or tcg", EXIT_BAD_INPUT)
    memory = memory or given.get("memory")
    ram = None if memory is None else parse_size(memory, "--memory", minimum=1 << 20)
    timeout_s = timeout_s or given.get("timeout")
    timeout = None if timeout_s is None else units.parse_seconds(timeout_s, "--timeout")
    mem_figure = None if mem_available is None else parse_size(mem_available, "--mem-available", minimum=1)
    axes = matrix_cells.axes_from_options(kernel, pmem_list, filesystems, suite, profile, ram, timeout, accel)
    cells = axes.cells()
    doc = None
    if resume:
        assert out is not None
        doc, cells = resume_cells(out, cells if axes_given else None)
    _check_cells(cells, local=executor == "local")
    command = shlex.split(cell_runner) if cell_runner else list(CELL_COMMAND)
    if executor == "local":
        parallel = _jobs(cells, jobs, mem_figure)
        runner: Any = LocalExecutor(parallel, command)
    else:
        parallel = jobs or 0
        runner = DaskExecutor(str(scheduler), command)
    out = out if out is not None else merging.default_out("matrix")
    if not resume:
        merging.fresh_out(out)
    settings = {"executor": executor, "jobs": parallel, "scheduler": scheduler}
    _say(
        f"pmemkit matrix: {len(cells)} cell(s) in {out}; executor {executor}"
        + (f", {parallel} at a time" if executor == "local" else f" at {scheduler}")
    )
    guard = SignalGuard()
    try:
        with guard:
            result = run_matrix(out, cells, runner, resume, settings, _say, doc)
    except Interrupted as exc:
        fail(
            f"interrupted by {exc.signum.name}: the running cells were stopped (each kept its run in "
            f"{out}/attempts/); complete the matrix with `pmemkit matrix --resume --out {out}`",
            exc.exit_code,
        )
    except RunDirError as exc:
        fail(str(exc), exc.exit_code)
    summary = {
        "ok": not result.failed,
        "out": str(result.out),
        "report": str(result.report) if result.report else None,
        "ran": result.done,
        "skipped": result.skipped,
        "failed": result.failed,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{len(result.done)} cell(s) made, {len(result.skipped)} already made, "
            f"{len(result.failed)} failed; report: {result.report or 'none (no cell was made)'}"
        )
    if result.failed:
        first = next(iter(result.failed.items()))
        fail(
            f"{len(result.failed)} cell(s) failed (first: {first[0]}: {first[1]}); their runs are in "
            f"{out}/attempts/; rerun them with `pmemkit matrix --resume --out {out}`",
            EXIT_CELLS_FAILED,
        )


@click.command("merge")
@click.argument(
    "run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False)
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="The matrix directory to make [default: runs/merge-<timestamp>/].",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def merge(run_dirs: tuple[Path, ...], out: Path | None, as_json: bool) -> None:
    """Join run directories made anywhere (`pmemkit run`, matrix cells, other machines) into one
    matrix directory with the merged report. Two runs of the same cell, or a run of a schema this
    pmemkit cannot read, are refused before anything is written."""
    from pmemkit.matrix import merge as merging
    from pmemkit.rundir import RunDirError

    out = out if out is not None else merging.default_out("merge")
    try:
        report, runs = merging.merge(list(run_dirs), out)
    except RunDirError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        click.echo(
            json.dumps(
                {"out": str(out), "report": str(report), "cells": [r.identity.shown() for r in runs]},
                indent=2,
            )
        )
    else:
        click.echo(f"{len(runs)} run(s) merged into {out}; report: {report}")
