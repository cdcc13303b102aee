import dataclasses
from pathlib import Path

import pytest

from pmemkit.scenario import PmemConfig
from pmemkit.vm.errors import VmConfigError
from pmemkit.vm.layout import GiB, MiB, plan_layout
from pmemkit.vm.qemu import (
    LABEL_SIZE,
    QemuCommand,
    accel_args,
    backing_size,
    kernel_cmdline,
    machine_args,
    memory_args,
    pmem_device_args,
    share_args,
)


def cfgs(*specs):
    return [PmemConfig.parse(s) for s in specs]


def test_default_memmap_placement_and_gap():
    layout = plan_layout(cfgs("memmap:512M", "memmap:256M"))
    first, second = layout.memmaps
    assert first.start == 1 * GiB and first.kernel_arg() == "memmap=512M!1G"
    assert second.start >= first.end + 128 * MiB  # not adjacent: e820 would merge them
    assert second.start % (2 * MiB) == 0
    assert layout.ram >= second.end


def test_memmap_that_does_not_fit_is_refused():
    with pytest.raises(VmConfigError, match="above the 3G"):
        plan_layout(cfgs("memmap:3G@1G"))
    with pytest.raises(VmConfigError, match="does not fit in guest RAM"):
        plan_layout(cfgs("memmap:512M@1G"), ram=1 * GiB)
    with pytest.raises(VmConfigError, match="2M"):
        plan_layout(cfgs("memmap:3M"))
    with pytest.raises(VmConfigError, match="overlaps"):
        plan_layout(cfgs("memmap:512M@1G", "memmap:512M@1280M"))
    with pytest.raises(VmConfigError, match="kernel's own memory"):
        plan_layout(cfgs("memmap:64M@16M"))


def test_system_ram_floor():
    with pytest.raises(VmConfigError, match="raise --memory"):
        plan_layout(cfgs("memmap:1G@256M", "memmap:512M@1408M"), ram=2 * GiB)


def test_dimm_sizes_validated():
    with pytest.raises(VmConfigError, match="16M"):
        plan_layout(cfgs("nvdimm:100M"))
    layout = plan_layout(cfgs("nvdimm:512M", "virtio-pmem:256M"))
    assert layout.slots == 2 and layout.has_nvdimm


def test_pieces():
    assert accel_args("tcg") == ["-accel", "tcg", "-cpu", "max"]
    assert accel_args("kvm")[-1] == "host"
    with pytest.raises(ValueError):
        accel_args("hvf")
    plain = plan_layout(cfgs("memmap:512M"))
    assert machine_args(plain)[1] == "pc"
    assert memory_args(plain) == ["-m", f"{plain.ram // MiB}M"]
    nv = plan_layout(cfgs("nvdimm:512M"))
    assert machine_args(nv)[1] == "pc,nvdimm=on"
    m = memory_args(nv)[1]
    assert "slots=1" in m and "maxmem=" in m
    maxmem = int(m.split("maxmem=")[1].rstrip("M")) * MiB
    assert maxmem >= nv.ram + 512 * MiB + LABEL_SIZE
    assert share_args("t", Path("/x"), True)[1].endswith("readonly=on")
    assert "readonly" not in share_args("t", Path("/x"), False)[1]


def test_nvdimm_backing_includes_label_area():
    cfg = PmemConfig.parse("nvdimm:512M")
    assert backing_size(cfg) == 512 * MiB + LABEL_SIZE
    args = pmem_device_args(0, cfg, Path("/tmp/b"))
    assert f"size={512 * MiB + LABEL_SIZE}" in args[1]
    assert "label-size=" in args[3]
    vp = pmem_device_args(1, PmemConfig.parse("virtio-pmem:256M"), Path("/tmp/c"))
    assert vp[3].startswith("virtio-pmem-pci") and f"size={256 * MiB}" in vp[1]


def test_cmdline_has_memmap_nokaslr_and_marker():
    layout = plan_layout(cfgs("memmap:512M"))
    line = kernel_cmdline(layout, "abc123")
    assert "memmap=512M!1G" in line and "nokaslr" in line and "pmemkit.vm=abc123" in line
    assert "panic=-1" in line and "console=ttyS0" in line
    assert "nokaslr" not in kernel_cmdline(plan_layout(cfgs("nvdimm:512M")), "t")


def test_full_argv():
    layout = plan_layout(cfgs("memmap:512M", "nvdimm:512M,mode=raw"))
    cmd = QemuCommand(
        "qemu",
        "tcg",
        layout,
        Path("/i/vmlinux"),
        Path("/i/initrd"),
        Path("/i/root.raw"),
        Path("/src"),
        Path("/out"),
        "tok",
        [Path("/s/nv0.img")],
    )
    argv = cmd.argv()
    assert argv[0] == "qemu" and "-no-reboot" in argv and "-nodefaults" in argv
    assert any("snapshot=on" in a for a in argv)
    assert sum(a == "-virtfs" for a in argv) == 2
    cmd.backing_files = []
    with pytest.raises(ValueError):
        cmd.argv()


def test_nvdimm_slots_fix_nfit_handles():
    layout = plan_layout(cfgs("nvdimm:512M", "virtio-pmem:256M", "nvdimm:256M,mode=raw"))
    cmd = QemuCommand(
        "qemu",
        "tcg",
        layout,
        Path("/v"),
        Path("/i"),
        Path("/r"),
        Path("/s"),
        Path("/o"),
        "t",
        [Path("/a"), Path("/b"), Path("/c")],
    )
    devices = [a for a in cmd.argv() if a.startswith(("nvdimm,", "virtio-pmem-pci,"))]
    assert devices[0].endswith("slot=0") and devices[2].endswith("slot=1")  # virtio-pmem takes no slot
    assert "slot=" not in devices[1]


# --- plausibility against the host before anything starts (issue 8, finding 9) ------------------

from pmemkit.vm import layout as layout_mod  # noqa: E402
from pmemkit.vm.layout import HostLimits, check_fits_host, max_guest_address, probe_file_size  # noqa: E402

#: The machine of the finding: 24 GiB, 78 GiB free disk, TCG's -cpu max (40 phys-bits, AMD).
HOST_24G = HostLimits(
    mem_available=23 * GiB,
    scratch_dir=Path("/cache/scratch"),
    disk_free=78 * GiB,
    scratch_in_memory=False,
    file_size_limit=None,
    phys_bits=40,
    amd_vcpu=True,
)


def _check(*specs, ram=None, host=HOST_24G):
    lay = plan_layout(cfgs(*specs), ram)
    check_fits_host(lay, [backing_size(d) for d in lay.dimms], host)


@pytest.mark.parametrize(
    "ram,devices,slots,highest",
    [
        # qemu-system-x86_64 7.2 -machine pc -accel tcg -cpu max -m RAM,slots=N,maxmem=M -S: the
        # address it reported in "Address space limit 0xffffffffff < 0x... phys-bits too low (40)".
        (2 * GiB, 1007 * GiB, 1, 0x1FC7FFFFFFF),  # maxmem=1009G refused
        (2 * GiB, 1018 * GiB, 1, 0x1FF3FFFFFFF),  # maxmem=1020G refused
        (4 * GiB, 1004 * GiB, 2, 0x1FC3FFFFFFF),  # maxmem=1008G refused
    ],
)
def test_max_guest_address_matches_qemu_refusals(ram, devices, slots, highest):
    assert max_guest_address(ram, devices, slots, amd_vcpu=True) == highest


def test_max_guest_address_boundaries_qemu_accepted():
    limit = (1 << 40) - 1
    assert max_guest_address(2 * GiB, 1005 * GiB, 1, True) <= limit  # maxmem=1007G started
    assert max_guest_address(4 * GiB, 1003 * GiB, 2, True) <= limit  # maxmem=1007G started


@pytest.mark.parametrize("spec", ["nvdimm:1T", "virtio-pmem:1T", "nvdimm:16T", "nvdimm:1008G"])
def test_memory_devices_beyond_phys_bits_refused(spec):
    with pytest.raises(VmConfigError, match="40 phys-bits"):
        _check(spec)


def test_guest_ram_beyond_host_memory_refused():
    with pytest.raises(VmConfigError, match=r"MemAvailable is 23G"):
        _check("memmap:512M", ram=1 << 40)
    with pytest.raises(VmConfigError, match="MemAvailable"):
        _check("memmap:512M", ram=23 * GiB)  # no room left for qemu itself
    _check("memmap:512M", ram=20 * GiB)


def test_backing_files_against_disk_and_memory():
    small_disk = dataclasses.replace(HOST_24G, disk_free=10 * GiB)
    with pytest.raises(VmConfigError, match="10G free"):
        _check("nvdimm:8G", "virtio-pmem:4G", host=small_disk)
    _check("nvdimm:8G", host=small_disk)
    tmpfs = dataclasses.replace(HOST_24G, mem_available=8 * GiB, scratch_in_memory=True)
    with pytest.raises(VmConfigError, match="in-memory backing files"):
        _check("nvdimm:6G", host=tmpfs)


def test_file_size_limit_refused():
    limited = dataclasses.replace(HOST_24G, file_size_limit=1 * GiB)
    with pytest.raises(VmConfigError, match="ulimit -f"):
        _check("nvdimm:2G", host=limited)


def test_probe_file_size_reports_efbig(tmp_path):
    """The kernel's own answer: a sparse file beyond the filesystem's largest (ext4: 16 TiB) is EFBIG."""
    try:
        probe_file_size(tmp_path, 1 << 50)
    except VmConfigError as exc:
        assert "EFBIG" in str(exc) or "EINVAL" in str(exc)
    else:
        pytest.skip(f"the filesystem of {tmp_path} holds a 1 PiB sparse file")
    probe_file_size(tmp_path, 1 * GiB)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone either way


def test_read_host_measures(tmp_path):
    host = layout_mod.read_host(tmp_path / "not" / "yet", "tcg")
    assert host.mem_available > 0 and host.disk_free > 0
    assert (host.phys_bits, host.amd_vcpu) == (40, True)
