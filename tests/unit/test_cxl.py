"""CXL pmem as a source: parsing, layout, the q35/CXL qemu pieces, the QEMU version gate, guest parsing."""

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from pmemkit.guest import GuestError
from pmemkit.guest import cxl as guest_cxl
from pmemkit.guest.prepare import match_namespaces
from pmemkit.guest.probe import Namespace
from pmemkit.plan import Placement, check_placements
from pmemkit.scenario import PmemConfig, ScenarioError
from pmemkit.vm import qemu_install
from pmemkit.vm.errors import HostToolMissing, VmConfigError
from pmemkit.vm.layout import CXL_FIRST_SERIAL, GiB, MiB, plan_layout
from pmemkit.vm.qemu import (
    CXL_LSA_SIZE,
    QemuCommand,
    cxl_device_args,
    machine_args,
    make_cxl_files,
    memory_args,
)


def cfgs(*specs):
    return [PmemConfig.parse(s) for s in specs]


def test_parse_cxl_defaults_and_round_trip():
    cfg = PmemConfig.parse("cxl:512M")
    assert (cfg.source, cfg.size, cfg.mode, cfg.map) == ("cxl", 512 * MiB, "fsdax", "mem")
    dev = PmemConfig.parse("cxl:1G,mode=devdax,map=dev")
    assert (dev.mode, dev.map) == ("devdax", "dev")
    assert PmemConfig.parse(dev.spec()) == dev
    assert PmemConfig.parse("cxl:512M,mode=raw").map is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("cxl:512M,mode=sector", "cxl namespaces take mode=fsdax|devdax|raw"),
        ("cxl:512M,mode=raw,map=dev", "map= only applies"),
        ("cxl:", "cannot read"),
        ("cxl:512M@1G", "@START only applies to memmap"),
        ("virtio-pmem:512M,mode=fsdax", "only apply to nvdimm and cxl"),
    ],
)
def test_parse_cxl_refusals(spec, words):
    with pytest.raises(ScenarioError, match=words):
        PmemConfig.parse(spec)


def test_layout_places_cxl_by_serial_and_sizes_the_window():
    layout = plan_layout(cfgs("cxl:512M", "cxl:3G"))
    assert layout.has_cxl and not layout.dimms and layout.slots == 0
    assert [p.cxl_serial for p in layout.cxl_placements] == [CXL_FIRST_SERIAL, CXL_FIRST_SERIAL + 1]
    check_placements(list(layout.pmem), list(layout.placements))
    assert layout.cxl_window == 4 * GiB  # 3.5G of devices rounds up to the 4G minimum
    assert plan_layout(cfgs("cxl:4G", "cxl:1G")).cxl_window == 5 * GiB
    assert plan_layout(cfgs("memmap:512M")).cxl_window == 0


@pytest.mark.parametrize(
    ("specs", "words"),
    [
        (("cxl:384M",), "multiple of 256M"),
        (("cxl:128M",), "multiple of 256M"),
        (("cxl:512M", "nvdimm:512M"), "mixing them with nvdimm"),
        (("memmap:512M", "cxl:512M"), "mixing them with memmap"),
        (("cxl:256M",) * 5, "at most 4 cxl devices"),
    ],
)
def test_layout_refuses_bad_cxl(specs, words):
    with pytest.raises(VmConfigError, match=words):
        plan_layout(cfgs(*specs))


def test_machine_is_q35_with_cxl_and_one_window():
    layout = plan_layout(cfgs("cxl:512M"))
    assert machine_args(layout)[:2] == [
        "-machine",
        "q35,cxl=on,cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4096M",
    ]
    assert memory_args(layout) == ["-m", f"{layout.ram // MiB}M"]  # no DIMM slots for PCIe memory


def test_cxl_device_args_use_persistent_memdev_and_lsa():
    cfg = PmemConfig.parse("cxl:512M")
    args = cxl_device_args(
        1, cfg, Path("/s/cxl1.img"), Path("/s/cxl1-lsa.img"), Placement(0, "cxl", cxl_serial=7)
    )
    assert args[1] == f"memory-backend-file,id=cxl-mem1,share=on,mem-path=/s/cxl1.img,size={512 * MiB}"
    assert args[3] == f"memory-backend-file,id=cxl-lsa1,share=on,mem-path=/s/cxl1-lsa.img,size={CXL_LSA_SIZE}"
    assert args[5] == "cxl-rp,port=1,bus=cxl.1,id=cxl-rp1,chassis=0,slot=1"
    assert args[7] == "cxl-type3,bus=cxl-rp1,persistent-memdev=cxl-mem1,lsa=cxl-lsa1,id=cxl-pmem1,sn=7"
    with pytest.raises(ValueError, match="placement"):
        cxl_device_args(0, cfg, Path("/a"), Path("/b"), Placement(0, "cxl"))


def _command(layout, cxl_files):
    return QemuCommand(
        "qemu",
        "tcg",
        layout,
        Path("/v"),
        Path("/i"),
        Path("/r.raw"),
        Path("/src"),
        Path("/out"),
        "t",
        modules_disk=Path("/m.raw"),
        cxl_files=cxl_files,
    )


def test_cxl_argv_places_every_other_pci_device_on_pcie0():
    layout = plan_layout(cfgs("cxl:512M", "cxl:256M"))
    argv = _command(layout, [(Path("/s/a"), Path("/s/al")), (Path("/s/b"), Path("/s/bl"))]).argv()
    # Nothing qemu would place by itself (it could land behind the CXL host bridge, which refuses it).
    assert "-virtfs" not in argv and not any("if=virtio" in a for a in argv)
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    pci = [d for d in devices if d.startswith(("virtio-", "pxb-cxl"))]
    assert len(pci) == 5 and all("bus=pcie.0,addr=" in d for d in pci)
    assert all(
        "x-max-bounce-buffer-size=16M,disable-legacy=on,iommu_platform=on" in d
        for d in pci
        if d.startswith("virtio-")
    )
    addrs = [d.split("addr=")[1].split(",")[0] for d in pci]
    assert len(set(addrs)) == 5
    blk = [d for d in pci if d.startswith("virtio-blk-pci")]
    assert blk[0].startswith("virtio-blk-pci,drive=drive-root") and "drive-modules" in blk[1]
    assert int(addrs[0], 16) < int(addrs[1], 16)  # root stays /dev/vda (virtio-blk probes in PCI order)
    types = [d for d in devices if d.startswith("cxl-type3")]
    assert [t.rsplit("sn=", 1)[1] for t in types] == [str(CXL_FIRST_SERIAL), str(CXL_FIRST_SERIAL + 1)]
    assert any(a.startswith("local,id=pmemkit_out,") and "mapped-xattr" in a for a in argv)
    with pytest.raises(ValueError, match="file pair"):
        _command(layout, []).argv()


def test_non_cxl_argv_is_unchanged():
    argv = _command(plan_layout(cfgs("memmap:512M")), []).argv()
    assert argv.count("-virtfs") == 2 and "pcie.0" not in " ".join(argv)


def test_make_cxl_files(tmp_path):
    layout = plan_layout(cfgs("cxl:256M"))
    [(mem, lsa)] = make_cxl_files(tmp_path, layout)
    assert mem.stat().st_size == 256 * MiB and lsa.stat().st_size == CXL_LSA_SIZE
    assert mem.stat().st_blocks == 0  # sparse


# --- the QEMU version gate --------------------------------------------------------------------


def test_parse_version():
    assert qemu_install.parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)") == (10, 0, 2)
    assert qemu_install.parse_version("QEMU emulator version 7.2.22 (Debian)") == (7, 2, 22)
    assert qemu_install.parse_version("garbage") is None
    assert qemu_install.new_enough((10, 0, 2)) and qemu_install.new_enough((11, 1, 0))
    assert not qemu_install.new_enough((7, 2, 22)) and not qemu_install.new_enough(None)


def _fake_qemu(tmp_path, version):
    path = tmp_path / f"qemu-{version}"
    path.write_text(f"#!/bin/sh\necho 'QEMU emulator version {version} (fake)'\n")
    path.chmod(0o755)
    return str(path)


def test_old_qemu_is_refused_before_boot_naming_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        HostToolMissing, match=r"QEMU >= 10.0 \(the host's is 7.2.22.*install qemu-system-x86 >= 10.0"
    ):
        qemu_install.cxl_qemu(_fake_qemu(tmp_path, "7.2.22"), fetch=False)
    assert HostToolMissing.exit_code == 4
    new = _fake_qemu(tmp_path, "10.0.2")
    assert qemu_install.cxl_qemu(new, fetch=False) == new


def test_cached_qemu_is_used_and_failed_fetch_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    old = _fake_qemu(tmp_path, "7.2.22")

    def broken(progress):
        raise OSError("no network")

    monkeypatch.setattr(qemu_install, "install", broken)
    with pytest.raises(HostToolMissing, match="fetching it failed .*no network"):
        qemu_install.cxl_qemu(old, progress=lambda _l: None)
    wrapper = tmp_path / "cache" / "qemu" / "10.0.2" / "bin" / "qemu-system-x86_64"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text("#!/bin/sh\necho 'QEMU emulator version 10.0.2 (cached)'\n")
    wrapper.chmod(0o755)
    assert qemu_install.cxl_qemu(old, fetch=False) == str(wrapper)


def test_wrapper_points_at_its_own_firmware_and_modules(tmp_path):
    text = qemu_install.wrapper_text("1:10.0.2", with_libs=False)
    assert 'QEMU_MODULE_DIR="$R/usr/lib/x86_64-linux-gnu/qemu"' in text
    assert '-L "$R/usr/share/qemu" -L "$R/usr/share/seabios" "$@"' in text
    assert "LD_LIBRARY_PATH" not in text and "LD_LIBRARY_PATH" in qemu_install.wrapper_text(
        "v", with_libs=True
    )
    root = tmp_path / "q" / "root" / "usr" / "bin"
    root.mkdir(parents=True)
    (root / "qemu-system-x86_64").write_text('#!/bin/sh\necho "$QEMU_MODULE_DIR $*"\n')
    (root / "qemu-system-x86_64").chmod(0o755)
    (tmp_path / "q" / "bin").mkdir()
    wrapper = tmp_path / "q" / "bin" / "qemu-system-x86_64"
    wrapper.write_text(text)
    wrapper.chmod(0o755)
    out = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(
        f"{tmp_path}/q/root/usr/lib/x86_64-linux-gnu/qemu -L {tmp_path}/q/root/usr/share/qemu"
    )
    assert out.rstrip().endswith("--version")


def test_missing_libraries():
    ldd = "\tlibfdt.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n"
    assert qemu_install.missing_libraries(ldd) == ["libfdt.so.1"]


# --- the guest's CXL steps ------------------------------------------------------------------------


def test_memdevs_by_serial_and_region_name():
    listing = [{"memdev": "mem0", "serial": "0x504d0001"}, {"memdev": "mem1", "serial": 1347223554}]
    assert guest_cxl.memdevs_by_serial(listing) == {0x504D0001: "mem0", 0x504D0002: "mem1"}
    assert guest_cxl.memdevs_by_serial({"memdev": "mem3", "serial": 5}) == {5: "mem3"}
    assert guest_cxl.memdevs_by_serial(None) == {}
    assert guest_cxl.region_name({"region": "region0", "size": 1}) == "region0"
    assert guest_cxl.region_name([{"region": "region4"}]) == "region4"
    assert guest_cxl.region_name("created 1 region") is None


def test_run_step_records_output_and_quotes_failures(monkeypatch):
    steps = []
    ok = SimpleNamespace(returncode=0, stdout='{"region":"region0"}', stderr="")
    assert guest_cxl.run_step(["cxl", "create-region"], steps, run=lambda a, t: ok) == {"region": "region0"}
    bad = SimpleNamespace(
        returncode=1, stdout="", stderr="cxl region: create_region: region0: failed to commit\n"
    )
    with pytest.raises(
        GuestError, match="create-region failed: cxl region: create_region: region0: failed to commit"
    ):
        guest_cxl.run_step(["cxl", "create-region"], steps, run=lambda a, t: bad)
    assert [s.error for s in steps] == [None, "cxl region: create_region: region0: failed to commit"]
    assert steps[0].to_dict()["output"] == {"region": "region0"}


def test_setup_cxl_refused_outside_pmemkit_vm(monkeypatch):
    monkeypatch.setattr(guest_cxl, "vm_token", lambda: None)
    with pytest.raises(guest_cxl.SafetyError, match="pmemkit-vm"):
        guest_cxl.setup_cxl([(1, PmemConfig.parse("cxl:512M"))])
    assert guest_cxl.setup_cxl([]) == []


def test_match_namespaces_finds_cxl_by_its_region():
    configs = cfgs("cxl:512M", "cxl:512M")
    placements = [Placement(0, "cxl", cxl_serial=11), Placement(1, "cxl", cxl_serial=12)]
    current = [
        Namespace("namespace1.0", "region1", "CXL", "fsdax", "mem", 500 << 20),
        Namespace("namespace0.0", "region0", "CXL", "fsdax", "mem", 500 << 20),
    ]
    found = match_namespaces(configs, placements, current, {}, {}, {11: "region0", 12: "region1"})
    assert [d.namespace.dev for d in found] == ["namespace0.0", "namespace1.0"]
    with pytest.raises(GuestError, match="CXL memdev serial 0xc \\(no region\\)"):
        match_namespaces(configs, placements, current, {}, {}, {11: "region0"})


def test_readback_pattern_is_never_zero_and_differs_by_serial():
    a, b = guest_cxl.pattern(1, 4096), guest_cxl.pattern(2, 4096)
    assert all(a) and a != b and len(a) == 4096


def test_check_readback_round_trips_with_o_direct(tmp_path):
    dev = tmp_path / "disk"
    dev.write_bytes(bytes(2 << 20))
    got = guest_cxl.check_readback(str(dev), 5, size=64 << 10, offset=1 << 20)
    assert got["ok"] is True and got["found"] == "the pattern" and got["read"] == 64 << 10, got
    assert dev.read_bytes()[1 << 20 : (1 << 20) + 16] == guest_cxl.pattern(5, 16)
    missing = guest_cxl.check_readback(str(tmp_path / "none"), 5, size=4096, offset=0)
    assert missing["ok"] is False and "error" in missing["found"]


def test_meta_records_each_deb_with_its_sha256(tmp_path):
    import hashlib
    import json

    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / "qemu-system-x86_10.0.2_amd64.deb").write_bytes(b"not really a deb")
    qemu_install.write_meta(tmp_path, "1:10.0.2", debs)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["qemu_version"] == "1:10.0.2" and meta["suite"] == "bookworm-backports"
    [deb] = meta["debs"]
    assert deb["sha256"] == hashlib.sha256(b"not really a deb").hexdigest() and deb["size"] == 16


# --- the model: what CXL shares with NFIT and what differs ---------------------------------------


@pytest.mark.parametrize("op", ["dax-mount", "odirect-read-into-dax", "longterm-pin", "map-sync", "fork-cow"])
@pytest.mark.parametrize(("mode", "map_"), [("fsdax", "mem"), ("fsdax", "dev"), ("devdax", "mem")])
def test_cxl_namespaces_predict_like_nfit_from_6_0(op, mode, map_):
    from pmemkit.model.predict import predict
    from pmemkit.scenario import Scenario

    for kernel in ("6.1", "6.12"):
        cxl = predict(Scenario(kernel, "cxl", mode, map_, fs="ext4"), op)
        nfit = predict(Scenario(kernel, "nvdimm", mode, map_, fs="ext4"), op)
        assert (cxl.outcome, cxl.struct_page, cxl.rule) == (nfit.outcome, nfit.struct_page, nfit.rule)


def test_cxl_differs_before_6_0_and_raw_has_no_pages():
    from pmemkit.model.predict import predict
    from pmemkit.scenario import Scenario

    old = predict(Scenario("5.10", "cxl", "fsdax", "mem", fs="ext4"), "dax-mount")
    assert old.rule == "cxl-pmem-region-6.0" and old.outcome == "n/a" and old.status == "I"
    assert predict(Scenario("5.10", "nvdimm", "fsdax", "mem", fs="ext4"), "dax-mount").outcome == "ok"
    raw = predict(Scenario("6.1", "cxl", "raw", fs="ext4"), "dax-mount")
    assert raw.struct_page is False and "drivers/cxl/pmem.c" in " ".join(raw.sources)


def test_cxl_speed_warning_names_the_streaming_suites():
    assert "mmap, fio suite(s) take minutes" in qemu_install.cxl_speed_warning(
        ["smoke", "mmap", "fio", "kapi"]
    )
    assert "take minutes" not in qemu_install.cxl_speed_warning(["smoke", "kapi"])


def test_report_names_each_cxl_device_once():
    from pmemkit.report.cxl import cxl_rows
    from pmemkit.scenario import Observation, Scenario

    record = {
        "serial": 0x504D0001,
        "memdev": "mem1",
        "cxl_region": "region0",
        "nd_region": "region0",
        "root_decoder": "decoder0.0",
        "interleave_ways": 1,
        "region_setup_s": 1.1,
        "readback": {"ok": True, "bytes": 1 << 20, "found": "the pattern"},
    }
    prov = {"cxl": record, "pmem_spec": "cxl:512M,mode=fsdax,map=mem"}
    scenario = Scenario("6.1", "cxl", "fsdax", "mem", fs="ext4")
    obs = [Observation("smoke", op, "ok", scenario, "/dev/pmem0", provenance=prov) for op in ("a", "b")]
    [row] = cxl_rows(obs)
    assert row[0] == "CXL device"
    assert "mem1 (serial 0x504d0001) → region0 on decoder0.0, 1-way → nd region0" in row[1]
    assert "read-back of 1024 KiB: the pattern" in row[1]
    bad = {**record, "serial": 2, "readback": {"ok": False, "found": "zeros"}}
    [row] = cxl_rows([Observation("smoke", "a", "ok", scenario, "/dev/pmem0", provenance={"cxl": bad})])
    assert row[1].endswith("O_DIRECT read-back: zeros")
    assert cxl_rows([Observation("smoke", "a", "ok", scenario, "/dev/pmem0")]) == []
