"""`pmemkit run --target local` without devices: how a named device becomes a plan entry, and the
refusals that come before any file is written."""

from __future__ import annotations

import pytest

from pmemkit.guest.probe import Namespace
from pmemkit.local import StepLines, describe, find_devices
from pmemkit.plan import Plan, check_placements
from pmemkit.scenario import ScenarioError


def ns(
    dev: str, provider: str, mode: str, blockdev: str | None, chardev: str | None = None, **kw
) -> Namespace:
    return Namespace(dev, "region0", provider, mode, kw.pop("map", None), 256 << 20, blockdev, chardev, **kw)


def test_a_memmap_namespace_becomes_memmap_at_its_own_start():
    config, placement = describe(ns("namespace0.0", "e820", "raw", "pmem0", resource=1 << 30), 0)
    assert config.spec() == "memmap:256M@1G"
    check_placements([config], [placement])


def test_an_nvdimm_namespace_keeps_the_kernels_mode_and_map():
    found = ns("namespace1.0", "ACPI.NFIT", "fsdax", "pmem1", map="dev", dimm_handles=[2])
    config, placement = describe(found, 0)
    assert (config.source, config.mode, config.map, placement.nfit_handle) == ("nvdimm", "fsdax", "dev", 2)
    raw, _ = describe(ns("namespace2.0", "ACPI.NFIT", "raw", "pmem2", map="mem"), 0)
    assert (raw.mode, raw.map) == ("raw", None)  # map= only means something for fsdax/devdax


def test_an_unknown_provider_is_refused_with_its_name():
    with pytest.raises(ScenarioError, match="provider is 'cxl_pmem'"):
        describe(ns("namespace9.0", "cxl_pmem", "fsdax", "pmem9"), 0)


def test_devices_are_found_by_the_kernels_name_in_the_order_named(tmp_path):
    current = [
        ns("namespace0.0", "e820", "raw", "pmem0", resource=1 << 30),
        ns("namespace1.0", "ACPI.NFIT", "devdax", None, "dax1.0", map="mem", dimm_handles=[1]),
    ]
    link = tmp_path / "my-pmem"
    link.symlink_to("/dev/pmem0")
    prepared = find_devices(["/dev/dax1.0", str(link)], current)
    assert [p.namespace.dev for p in prepared] == ["namespace1.0", "namespace0.0"]
    assert [p.index for p in prepared] == [0, 1]
    plan = Plan(["smoke"], [p.config for p in prepared], placements=[p.placement for p in prepared])
    assert Plan.from_dict(plan.to_dict()).pmem == plan.pmem
    with pytest.raises(ScenarioError, match=r"not the device of a pmem namespace .*/dev/dax1.0, /dev/pmem0"):
        find_devices(["/dev/sda"], current)
    with pytest.raises(ScenarioError, match="a second time"):
        find_devices(["/dev/pmem0", str(link)], current)


def test_step_lines_become_progress_lines():
    seen: list[str] = []
    out = StepLines(seen.append)
    out.write("PMEMKIT-STEP preparing 1 pmem device(s)\nPMEMKIT-OBS 1 memmap raw ext4 dax-mount: ok\npart")
    out.write("ial\n")
    assert seen == ["preparing 1 pmem device(s)", "observed 1 memmap raw ext4 dax-mount: ok", "partial"]
