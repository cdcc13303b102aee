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
    args = pmem_device_args(0, cfg, Path("/tmp/b"), Placement(0, "nvdimm", nvdimm_slot=2, nfit_handle=3))
    assert f"size={512 * MiB + LABEL_SIZE}" in args[1]
    assert "label-size=" in args[3] and args[3].endswith(",slot=2")
    virtio = PmemConfig.parse("virtio-pmem:256M")
    vp = pmem_device_args(1, virtio, Path("/tmp/c"), Placement(1, "virtio-pmem", pci_address="0000:00:11.0"))
    assert (
        vp[3].startswith("virtio-pmem-pci") and f"size={256 * MiB}" in vp[1] and vp[3].endswith(",addr=11.0")
    )
    with pytest.raises(ValueError, match="placement"):  # no guessing: a device without its place is refused
        pmem_device_args(1, virtio, Path("/tmp/c"), Placement(1, "virtio-pmem"))
    with pytest.raises(ValueError, match="is not one of"):
        pmem_device_args(0, cfg, Path("/tmp/b"), Placement(0, "virtio-pmem", pci_address="0000:00:10.0"))


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


# --- Placement: decided once on the host, read by qemu and by the guest -----------------------------

import json  # noqa: E402

from pmemkit.guest import GuestError, prepare  # noqa: E402
from pmemkit.guest.probe import Namespace  # noqa: E402
from pmemkit.plan import Placement, Plan  # noqa: E402
from pmemkit.scenario import SCHEMA_VERSION, ScenarioError, format_size, parse_size  # noqa: E402
from pmemkit.vm.layout import place_devices  # noqa: E402

VIRTIO_FIRST = ("virtio-pmem:256M", "nvdimm:512M,mode=fsdax", "memmap:256M", "nvdimm:384M,mode=devdax")


def _command(layout):
    backing = [Path(f"/s/dev{i}.img") for i in range(len(layout.dimms))]
    return QemuCommand(
        "qemu", "tcg", layout, Path("/v"), Path("/i"), Path("/r"), Path("/s"), Path("/o"), "t", backing
    )


def _resolved(specs):
    """What `pmemkit run` hands the plan: configs with memmap starts made explicit by the layout."""
    layout = plan_layout(cfgs(*specs))
    return layout, list(layout.pmem)


def test_placement_virtio_first_gives_the_nvdimm_slot_0_and_handle_1():
    layout = plan_layout(cfgs(*VIRTIO_FIRST))
    virtio, nv0, memmap, nv1 = layout.placements
    assert virtio == Placement(0, "virtio-pmem", pci_address="0000:00:10.0")
    assert (nv0.nvdimm_slot, nv0.nfit_handle) == (0, 1) and (nv1.nvdimm_slot, nv1.nfit_handle) == (1, 2)
    assert memmap == Placement(2, "memmap", memmap_start=layout.memmaps[0].start)
    assert layout.pmem[2].start == layout.memmaps[0].start == 1 << 30  # the plan gets the start made explicit
    assert [c.spec() for c in layout.pmem] == [c.spec() for c in cfgs(*VIRTIO_FIRST)[:2]] + [
        "memmap:256M@1G",
        cfgs(*VIRTIO_FIRST)[3].spec(),
    ]


def test_qemu_command_line_uses_the_placements():
    layout = plan_layout(cfgs(*VIRTIO_FIRST))
    devices = [a for a in _command(layout).argv() if a.startswith(("nvdimm,", "virtio-pmem-pci,"))]
    assert devices[0].startswith("virtio-pmem-pci,") and devices[0].endswith(",addr=10.0")
    assert devices[1].endswith(",slot=0") and devices[2].endswith(",slot=1")


def test_too_many_virtio_pmem_devices_is_one_clear_error():
    with pytest.raises(VmConfigError, match="at most 16 virtio-pmem"):
        plan_layout(cfgs(*["virtio-pmem:64M"] * 17))


def _plan(layout, pmem):
    """The plan `pmemkit run` writes: the layout's placements handed in, never derived again."""
    return Plan(suites=["smoke"], pmem=pmem, placements=list(layout.placements))


def test_plan_never_derives_placements_itself():
    _, pmem = _resolved(VIRTIO_FIRST)
    with pytest.raises(ScenarioError, match="4 pmem device.* but 0 placement"):
        Plan(suites=["smoke"], pmem=pmem)
    assert Plan(suites=["smoke"], pmem=[]).placements == []


def test_plan_carries_the_layouts_placements_and_round_trips():
    layout, pmem = _resolved(VIRTIO_FIRST)
    plan = _plan(layout, pmem)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["schema"] == SCHEMA_VERSION  # the run's schema, which the report checks
    assert data["placements"][0] == {"index": 0, "source": "virtio-pmem", "pci_address": "0000:00:10.0"}
    assert data["placements"][1] == {"index": 1, "source": "nvdimm", "nvdimm_slot": 0, "nfit_handle": 1}
    assert Plan.from_dict(data).placements == plan.placements


def test_plan_from_dict_refuses_old_schemas_and_missing_or_wrong_placements():
    data = _plan(*_resolved(VIRTIO_FIRST)).to_dict()
    with pytest.raises(ScenarioError, match=rf"plan.json schema 7 is not {SCHEMA_VERSION}: .*pmemkit run"):
        Plan.from_dict({**data, "schema": 7})
    for missing in ({k: v for k, v in data.items() if k != "placements"}, {**data, "placements": []}):
        with pytest.raises(ScenarioError, match="places none of its pmem devices.*pmemkit run"):
            Plan.from_dict(missing)  # a plan of the pmemkit before placements: refused, not guessed
    with pytest.raises(ScenarioError, match="4 pmem device.* but 3 placement"):
        Plan.from_dict({**data, "placements": data["placements"][:3]})
    wrong = [dict(p) for p in data["placements"]]
    wrong[1] = {"index": 1, "source": "nvdimm", "nvdimm_slot": 0}  # no NFIT handle
    with pytest.raises(ScenarioError, match="does not place nvdimm:512M"):
        Plan.from_dict({**data, "placements": wrong})
    moved = [dict(p) for p in data["placements"]]
    moved[2]["memmap_start"] += 2 << 20
    with pytest.raises(ScenarioError, match="not at its start"):
        Plan.from_dict({**data, "placements": moved})
    with pytest.raises(ScenarioError, match="unknown field"):
        Plan.from_dict(
            {**data, "placements": [{**data["placements"][0], "slot": 3}, *data["placements"][1:]]}
        )


def test_place_devices_needs_resolved_memmap_starts():
    with pytest.raises(ValueError, match="resolved"):
        place_devices(cfgs("memmap:256M"))


def _fake_guest_kernel(argv, cmdline):
    """What the guest kernel would show for this qemu command line, built from the command line alone.

    QEMU's rules stand in for the machine: `-device nvdimm,slot=N` has NFIT handle N + 1
    (hw/acpi/nvdimm.c nvdimm_slot_to_handle); `virtio-pmem-pci,addr=S.F` sits at PCI 0000:00:S.F;
    `memmap=SIZE!START` is an e820 range at START. The kernel numbers regions in its own order:
    reversed here, so a match by position would fail.
    """
    sizes = {}
    devices = []
    for flag, arg in zip(argv, argv[1:], strict=False):
        opts = dict(kv.split("=", 1) for kv in arg.split(",")[1:] if "=" in kv)
        if flag == "-object":
            sizes[opts["id"]] = int(opts["size"])
        elif flag == "-device" and arg.startswith(("nvdimm,", "virtio-pmem-pci,")):
            devices.append((arg.split(",")[0], opts))
    for word in cmdline.split():
        if word.startswith("memmap="):
            size, start = word.removeprefix("memmap=").split("!")
            devices.append(("memmap", {"size": parse_size(size), "start": parse_size(start)}))
    topology = {"provider": "ACPI.NFIT", "dimms": [], "regions": []}
    current, paths = [], {}
    for number, (kind, opts) in zip(range(len(devices) - 1, -1, -1), reversed(devices), strict=True):
        region = f"region{number}"
        if kind == "nvdimm":
            size = sizes[opts["memdev"]] - LABEL_SIZE
            topology["dimms"].append({"dev": f"nmem{number}", "handle": int(opts["slot"]) + 1})
            topology["regions"].append({"dev": region, "mappings": [{"dimm": f"nmem{number}"}]})
            current.append(Namespace(f"namespace{number}.0", region, "ACPI.NFIT", "fsdax", "mem", size))
            paths[region] = f"/sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/{region}"
        elif kind == "virtio-pmem-pci":
            pci = f"0000:00:{opts['addr']}"
            size = sizes[opts["memdev"]]
            current.append(Namespace(f"namespace{number}.0", region, "virtio-pmem", "raw", None, size))
            paths[region] = f"/sys/devices/pci0000:00/{pci}/virtio{number}/ndbus{number}/{region}"
        else:
            ns = Namespace(f"namespace{number}.0", region, "e820", "raw", None, opts["size"])
            ns.resource = opts["start"]
            current.append(ns)
            paths[region] = f"/sys/devices/platform/e820_pmem/ndbus9/{region}"
    return [topology], current, paths


def _guest_match(monkeypatch, specs):
    """The host half (layout, qemu, plan.json) feeds a fake guest kernel; the guest half matches."""
    layout, pmem = _resolved(specs)
    command = _command(layout)
    plan = Plan.from_dict(json.loads(json.dumps(_plan(layout, pmem).to_dict())))
    topology, current, paths = _fake_guest_kernel(command.argv(), command.cmdline())
    ndctl_calls = []
    monkeypatch.setattr(prepare, "vm_token", lambda: "t")
    monkeypatch.setattr(prepare, "run_ndctl", lambda *args: topology)
    monkeypatch.setattr(prepare, "_run", lambda argv: ndctl_calls.append(argv) or "")
    monkeypatch.setattr(prepare, "namespaces", lambda: current)
    monkeypatch.setattr(prepare, "region_sysfs_paths", lambda _current: paths)
    return plan, prepare.match_devices(plan.pmem, plan.placements), ndctl_calls


@pytest.mark.parametrize(
    "specs",
    [
        VIRTIO_FIRST,
        (
            "nvdimm:512M,mode=fsdax",
            "virtio-pmem:256M",
            "nvdimm:384M,mode=raw",
            "memmap:256M",
            "virtio-pmem:128M",
        ),
        ("memmap:256M", "memmap:128M", "virtio-pmem:64M", "virtio-pmem:96M"),
    ],
)
def test_guest_matches_every_device_the_host_placed(monkeypatch, specs):
    plan, prepared, ndctl_calls = _guest_match(monkeypatch, specs)
    assert [p.index for p in prepared] == list(range(len(specs)))
    for device in prepared:  # sizes differ per device: each config met the namespace made from it
        assert device.config == plan.pmem[device.index] and device.placement == plan.placements[device.index]
        assert device.namespace.size == device.config.size, (format_size(device.namespace.size), device)
    created = [c for c in ndctl_calls if c[1] == "create-namespace"]
    nvdimms = [c for c in plan.pmem if c.source == "nvdimm"]
    assert [c[c.index("-m") + 1] for c in created] == [c.mode for c in nvdimms]


def test_guest_refuses_a_device_missing_where_the_plan_put_it(monkeypatch):
    plan = _plan(*_resolved(("virtio-pmem:256M", "memmap:256M")))
    stray = Namespace("namespace0.0", "region0", "e820", "raw", None, 256 << 20, resource=3 << 30)
    with pytest.raises(GuestError, match=r"memmap:256M@1G: 0 namespaces at legacy pmem at 0x40000000"):
        prepare.match_namespaces(plan.pmem, plan.placements[1:], [stray], {}, {})
    with pytest.raises(GuestError, match="virtio-pmem at PCI 0000:00:10.0"):
        prepare.match_namespaces(plan.pmem[:1], plan.placements[:1], [stray], {}, {"region0": "/x"})
