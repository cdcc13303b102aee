"""--trace-decisions in the real guest (issue 14): every refused kapi cell names the kernel function
that refused it, and the function matches the model's citation. One boot: memmap ext4 DAX,
device-dax and the page-less /dev/mem control (the anonymous and page-cache baselines come along).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pmemkit.scenario import Observation
from tests.vm.helpers import observations, pmemkit_argv, run_once

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    argv = pmemkit_argv(
        "run", runs,
        "--suite", "kapi", "--fs", "ext4", "--pmem", "memmap:512M", "--pmem", "nvdimm:512M,mode=devdax",
        "--trace-decisions",
    )  # fmt: skip
    result, run_dir = run_once(argv, runs, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def _decided(obs: list[Observation], mode: str, op: str) -> dict:
    (o,) = [o for o in obs if o.scenario.mode == mode and o.operation == op]
    return o.metrics["decided_by"]


def test_every_refused_kapi_cell_is_decided_by_a_function(traced_run: Path) -> None:
    obs = observations(traced_run, "kapi")
    refused = [o for o in obs if o.outcome.startswith("E")]
    assert len(refused) >= 10
    for o in refused:
        assert o.metrics["decided_by"]["function"], (o.scenario.mode, o.operation, o.metrics["decided_by"])
    assert all("decided_by" not in o.metrics for o in obs if o.outcome == "ok")


def test_the_deciding_functions_are_the_cited_ones(traced_run: Path) -> None:
    obs = observations(traced_run, "kapi")
    pin = _decided(obs, "raw", "longterm-pin")  # memmap ext4 DAX: FOLL_LONGTERM refuses fsdax in GUP
    assert (pin["function"], pin["returned"]) == ("check_vma_flags", "-EOPNOTSUPP")
    for mode in ("devdax", "pagecache"):  # 6.1: io_uring's own file-backed check
        ring = _decided(obs, mode, "iouring-fixed-buffer")
        assert (ring["function"], ring["returned"]) == ("io_pin_pages", "ERR_PTR(-EOPNOTSUPP)")
        assert ring["raw"] == "0xffffffffffffffa1"
    for op in ("futex-shared", "vmsplice", "iouring-fixed-buffer", "longterm-pin"):  # the page-less GUP path
        gup = _decided(obs, "devmem", op)
        assert (gup["function"], gup["returned"]) == ("check_vma_flags", "-EFAULT"), op
    # The section lives in report.html's folded details (report.md is the short twin).
    report = (traced_run / "report.html").read_text()
    section = report[report.index("Who refused (kernel function, traced vs cited)") :]
    summary = re.search(r"(\d+) refused cells: ([^.]*)\.", section)
    assert summary is not None, section[:500]
    assert "cause matches" in summary.group(2)
    assert "cause differs" not in summary.group(2)  # the summary line names no differing cause
