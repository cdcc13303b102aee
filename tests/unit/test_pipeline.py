"""The pipeline joins VM and report: vm/ and rundir never import the report, and every caller of a
run gets the same checks, once (issue 9 item 4). Host only, no VM."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import pmemkit
from pmemkit import pipeline
from pmemkit.scenario import PmemConfig
from pmemkit.vm import layout as layout_mod
from pmemkit.vm import run as vm_run
from pmemkit.vm.errors import VmConfigError
from pmemkit.vm.layout import GiB, HostLimits

PACKAGE = Path(pmemkit.__file__).parent
HOST_24G = HostLimits(23 * GiB, Path("/cache/scratch"), 78 * GiB, False, None, 40, True)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(
    "path", [*sorted((PACKAGE / "vm").glob("*.py")), PACKAGE / "rundir.py"], ids=lambda p: p.name
)
def test_vm_and_rundir_import_neither_the_report_nor_the_pipeline(path):
    joined = {"pmemkit.report", "pmemkit.pipeline"}
    found = sorted(n for n in _imports(path) if any(n == j or n.startswith(j + ".") for j in joined))
    assert found == [], f"{path.name} imports {found}"


def test_loading_vm_and_rundir_loads_no_report_module():
    code = (
        "import sys, pmemkit.rundir, pmemkit.vm.run, pmemkit.vm.boot; "
        "print(sorted(m for m in sys.modules if m.startswith(('pmemkit.report', 'pmemkit.pipeline'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def no_boot(monkeypatch, tmp_path):
    """Host figures fixed, nothing built or booted: reaching the VM raises Booted."""

    class Booted(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Booted()

    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(layout_mod, "read_host", lambda scratch, accel: dataclasses.replace(HOST_24G))
    monkeypatch.setattr(layout_mod, "probe_file_size", lambda directory, size: None)
    monkeypatch.setattr(vm_run, "ensure_image", refuse)
    monkeypatch.setattr(vm_run, "boot_and_collect", refuse)
    return Booted


def _options(tmp_path: Path, **changes) -> vm_run.RunOptions:
    options = vm_run.RunOptions(
        pmem=[PmemConfig.parse("memmap:256M")], suites=["smoke"], runs_dir=tmp_path / "runs"
    )
    return dataclasses.replace(options, **changes)


def test_a_caller_building_run_options_gets_the_host_check(no_boot, tmp_path):
    with pytest.raises(VmConfigError, match="would not fit the host's available memory"):
        pipeline.run(_options(tmp_path, memory=64 * GiB), progress=lambda message: None)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("timeout", [0, -5.0])
def test_a_caller_giving_a_non_positive_timeout_is_refused_before_any_build(no_boot, tmp_path, timeout):
    with pytest.raises(VmConfigError, match="--timeout must be a positive number"):
        pipeline.run(_options(tmp_path, timeout_s=timeout), progress=lambda message: None)
    assert not (tmp_path / "runs").exists()


def test_a_layout_is_planned_once_whether_or_not_the_caller_checked_first(no_boot, tmp_path, monkeypatch):
    real = layout_mod.plan_layout
    calls = []

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(layout_mod, "plan_layout", counting)
    checked = pipeline.check(_options(tmp_path))
    assert isinstance(checked, vm_run.RunOptions) and checked.pmem == _options(tmp_path).pmem
    with pytest.raises(no_boot):
        pipeline.run(checked, progress=lambda message: None)
    assert len(calls) == 1
    with pytest.raises(no_boot):
        pipeline.run(_options(tmp_path), progress=lambda message: None)
    assert len(calls) == 2
