"""One CXL boot (cxl:512M fsdax, smoke suite, ext4): the q35/CXL machine starts under a QEMU new
enough for CXL pmem, the guest creates the region and namespace, a pattern written to the CXL pmem
block device with O_DIRECT reads back (QEMU 7.2 gave zeros), ext4 mounts with DAX, an O_DIRECT read
from the root disk into the DAX mapping completes (device DMA into the CXL window), and the boot
phases of the region set-up are timed.

One boot (module fixture): the test is about the CXL source, not the experiments.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pmemkit.vm.layout import CXL_FIRST_SERIAL
from pmemkit.vm.qemu_install import new_enough, parse_version
from tests.vm.helpers import observations, pmemkit_argv, run_once

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def cxl_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    runs = tmp_path_factory.mktemp("runs")
    args = ("--pmem", "cxl:512M", "--suite", "smoke", "--fs", "ext4", "--timeout", "900")
    return run_once(pmemkit_argv("run", runs, *args), runs, timeout=1500)


def test_cxl_run_succeeds_on_a_new_enough_qemu(cxl_run):
    result, run_dir = cxl_run
    assert result.returncode == 0, result.stderr[-3000:]
    env = json.loads((run_dir / "environment.json").read_text())
    assert new_enough(parse_version(env["qemu"])), env["qemu"]
    argv = " ".join(env["qemu_argv"])
    assert "q35,cxl=on" in argv and "persistent-memdev=cxl-mem0" in argv and "lsa=cxl-lsa0" in argv
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["placements"] == [{"index": 0, "source": "cxl", "cxl_serial": CXL_FIRST_SERIAL}]
    phases = env["boot"]["phases_s"]
    assert phases["python"] < phases["cxl-start"] <= phases["cxl-memdevs"] <= phases["cxl-regions"]
    assert "cxl-regions" in (run_dir / "report.md").read_text()


def test_region_namespace_and_o_direct_readback(cxl_run):
    obs = observations(cxl_run[1])
    assert not [o.to_dict() for o in obs if o.outcome.startswith("skipped")]
    [mount] = [o for o in obs if o.operation == "dax-mount"]
    assert mount.outcome == "ok" and mount.scenario.source == "cxl" and mount.scenario.mode == "fsdax"
    cxl = mount.provenance["cxl"]
    assert cxl["memdev"].startswith("mem") and cxl["cxl_region"].startswith("region")
    assert cxl["root_decoder"] == "decoder0.0" and cxl["interleave_ways"] == 1
    created = [s for s in cxl["steps"] if s["argv"][:2] == ["cxl", "create-region"]]
    assert created and created[0]["output"]["region"] == cxl["cxl_region"] and created[0]["error"] is None
    namespace = [s for s in cxl["steps"] if s["argv"][:2] == ["ndctl", "create-namespace"]][0]
    assert namespace["output"]["mode"] == "fsdax" and namespace["output"]["blockdev"].startswith("pmem")
    readback = cxl["readback"]
    assert (
        readback["ok"] is True
        and readback["found"] == "the pattern"
        and readback["read"] == readback["bytes"]
    )


def test_device_dma_into_the_cxl_dax_mapping_completes(cxl_run):
    ops = {o.operation: o for o in observations(cxl_run[1]) if o.experiment == "smoke"}
    for op in ("odirect-read-into-dax", "odirect-write-from-dax"):
        assert ops[op].outcome == "ok" and ops[op].metrics["mapping"] == "dax", ops[op].to_dict()
