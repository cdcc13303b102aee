"""Issue 12 items 1 and 2 in the real guest: memory failure on DAX pages and the peer cases, one boot.

memmap ext4 and xfs (a memmap namespace is mode `raw`, with DAX), an NVDIMM devdax namespace and
the page-less /dev/mem control of the memmap range, `--suite peers,poison` (peers first on each
target: the poison stays for the rest of the boot). Asserts that the kernel's signal code and
si_addr_lsb are recorded, that every peer case is observed, and that the model agrees on every cell
of both experiments. No timing is asserted.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pmemkit.model.rules import PEER_FS_OPERATIONS, PEER_MAP_OPERATIONS
from pmemkit.report.rundir import default_predictor
from pmemkit.scenario import Observation
from tests.vm.helpers import observations, pmemkit_argv, run_once

pytestmark = pytest.mark.vm

PMEM = ("memmap:512M", "nvdimm:512M,mode=devdax")


@pytest.fixture(scope="module")
def poison_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    runs = tmp_path_factory.mktemp("poison")
    argv = pmemkit_argv("run", runs, "--suite", "peers,poison", "--fs", "ext4,xfs")
    for spec in PMEM:
        argv += ["--pmem", spec]
    return run_once(argv, runs, timeout=1800)


def _cell(observations: list[Observation], mode: str, operation: str, fs: str | None = None) -> Observation:
    (match,) = [
        o for o in observations if (o.scenario.mode, o.scenario.fs, o.operation) == (mode, fs, operation)
    ]
    return match


CELLS = (("raw", "ext4"), ("raw", "xfs"), ("devdax", None))


def test_signal_code_and_addr_lsb_are_recorded(poison_run) -> None:
    result, run_dir = poison_run
    assert result.returncode == 0, result.stderr[-3000:]
    seen = observations(run_dir, "poison")
    for mode, fs in CELLS:
        sigbus = _cell(seen, mode, "hwpoison-sigbus", fs)
        assert sigbus.metrics["mapping"] == "dax", sigbus
        assert sigbus.metrics["si_code"] in ("BUS_MCEERR_AR", "BUS_MCEERR_AO"), sigbus
        assert sigbus.metrics["si_addr_lsb"] in (12, 21), sigbus
        assert "recovery action for dax page" in sigbus.detail, sigbus.detail
        lsb = _cell(seen, mode, "hwpoison-addr-lsb", fs)
        assert lsb.metrics["si_addr_lsb"] == sigbus.metrics["si_addr_lsb"]
        assert _cell(seen, mode, "hwpoison-soft-offline", fs).outcome != "ok"  # never on DAX (ndctl)
    for fs in ("ext4", "xfs"):
        assert _cell(seen, "raw", "hwpoison-recover", fs).metrics["pread_verified"] is True
    control = _cell(seen, "devmem", "hwpoison-sigbus")
    assert "si_code" not in control.metrics  # the page-less control cannot be poisoned at all


def test_model_agrees_on_every_cell(poison_run) -> None:
    _, run_dir = poison_run
    seen = observations(run_dir, "poison")
    predict = default_predictor()
    assert predict is not None
    cells = [(o, predict(o)) for o in seen if not o.outcome.startswith("skipped:")]
    kinds = {o.scenario.mode for o, _ in cells}
    assert kinds == {"raw", "devdax", "devmem"}, kinds
    assert len(cells) == 4 + 4 + 3 + 3, [o.shown() for o, _ in cells]
    wrong = [
        (o.scenario.mode, o.shown(), o.outcome, p.outcome if p else None)
        for o, p in cells
        if not p or p.outcome != o.outcome
    ]
    assert not wrong, wrong
    print(f"model agrees on {len(cells)} of {len(cells)} poison cells")


def test_every_peer_case_is_observed_and_the_model_agrees(poison_run) -> None:
    _, run_dir = poison_run
    seen = observations(run_dir, "peers")
    predict = default_predictor()
    assert predict is not None
    for mode, fs in CELLS:
        wanted = PEER_MAP_OPERATIONS + (PEER_FS_OPERATIONS if fs else ())
        got = sorted(o.shown() for o in seen if (o.scenario.mode, o.scenario.fs) == (mode, fs))
        assert got == sorted(wanted), (mode, fs, got)
    wrong = [(o.scenario.label(), o.shown(), o.outcome, getattr(predict(o), "outcome", None)) for o in seen]
    wrong = [w for w in wrong if w[2] != w[3]]
    assert not wrong, wrong
    assert all(o.metrics["mapping"] == "dax" for o in seen)
    print(f"model agrees on {len(seen)} of {len(seen)} peer cells")
