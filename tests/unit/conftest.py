"""Shared fixtures of the host tests."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

#: A real run of `make run` (the default six pmem devices, kernel 6.1.0-57-amd64, TCG), trimmed to
#: the files the report reads: plan.json, environment.json, guest-environment.json and the
#: observations (gzipped: 525 kB of JSON Lines in 50 kB).
RECORDED_RUN = Path(__file__).parent / "fixtures" / "run-default"


def copy_recorded_run(parent: Path) -> Path:
    """A fresh copy of the recorded default run under `parent`, a run directory the report can be
    written into."""
    run = parent / "20261207-031959"
    run.mkdir()
    for name in ("plan.json", "environment.json", "guest-environment.json"):
        shutil.copyfile(RECORDED_RUN / name, run / name)
    with (
        gzip.open(RECORDED_RUN / "observations.jsonl.gz", "rb") as src,
        open(run / "observations.jsonl", "wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    return run


@pytest.fixture
def recorded_run(tmp_path: Path) -> Path:
    return copy_recorded_run(tmp_path)


@pytest.fixture(scope="session")
def rendered_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded default run with its report rendered once (report.html, report.md, CSV, plots)."""
    from pmemkit.pipeline import render_report

    run = copy_recorded_run(tmp_path_factory.mktemp("rendered"))
    render_report(run)
    return run
