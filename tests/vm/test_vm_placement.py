"""Boot a VM whose devices come in the order that broke the NVDIMM match (virtio-pmem first) and check
the guest found every device where the host put it: matched, mounted with DAX, and the smoke suite ran.

One boot (module fixture), smoke suite and ext4 only: the test is about placement, not experiments.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.vm.helpers import observations, pmemkit_argv, run_once

pytestmark = pytest.mark.vm

SPECS = ["virtio-pmem:256M", "nvdimm:256M,mode=fsdax", "memmap:256M"]


@pytest.fixture(scope="module")
def placement_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    runs = tmp_path_factory.mktemp("runs")
    argv = pmemkit_argv("run", runs, *(a for spec in SPECS for a in ("--pmem", spec)))
    argv += ["--suite", "smoke", "--fs", "ext4"]
    return run_once(argv, runs, timeout=900)


def test_virtio_first_run_succeeds_and_plan_records_placements(placement_run):
    result, run_dir = placement_run
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads((run_dir / "plan.json").read_text())
    assert [p["source"] for p in plan["placements"]] == ["virtio-pmem", "nvdimm", "memmap"]
    virtio, nvdimm, memmap = plan["placements"]
    assert virtio["pci_address"].startswith("0000:00:")
    assert nvdimm["nvdimm_slot"] == 0 and nvdimm["nfit_handle"] == 1  # virtio-pmem takes no DIMM slot
    assert memmap["memmap_start"] == plan["pmem"][2]["start"]


def test_every_device_is_matched_and_mounted_with_dax(placement_run):
    obs = observations(placement_run[1])
    assert not [o.to_dict() for o in obs if o.outcome.startswith("skipped")]
    mounts = {o.provenance["pmem_spec"]: o for o in obs if o.operation == "dax-mount"}
    planned = {"virtio-pmem:256M", "nvdimm:256M,mode=fsdax,map=mem", "memmap:256M@1G"}
    assert set(mounts) == planned
    for spec, o in mounts.items():
        assert o.outcome == "ok", (spec, o.to_dict())
        assert o.scenario.source == spec.split(":")[0] and o.scenario.fs == "ext4"
    assert mounts["nvdimm:256M,mode=fsdax,map=mem"].scenario.mode == "fsdax"
    for spec in planned:
        smoke = [o for o in obs if o.experiment == "smoke" and o.provenance["pmem_spec"] == spec]
        ops = {o.operation: o for o in smoke}
        for op in ("odirect-read-into-dax", "odirect-write-from-dax"):
            assert ops[op].outcome == "ok" and ops[op].metrics["mapping"] == "dax", ops[op].to_dict()
