"""The crash suite on the host: its refusals, the plan's phases, the guest's pure parts on a real
(page-cache) file, the model's crash-* block, the marker kill, the two-boot flow with a stand-in
guest, and the report section from a fixture. Nothing here boots a VM (tests/vm/test_vm_crash.py does).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from pmemkit import plan as plan_mod
from pmemkit.cli import main
from pmemkit.guest.experiments import Target
from pmemkit.guest.experiments import crash as guest_crash
from pmemkit.model.predict import predict
from pmemkit.model.rules import CRASH_OPERATIONS, rule_by_name
from pmemkit.plan import Placement, Plan, check_crash_request, crash_record
from pmemkit.scenario import Observation, PmemConfig, Scenario, ScenarioError
from pmemkit.vm import crash as host_crash
from pmemkit.vm.boot import BootResult, boot

NV = PmemConfig.parse("nvdimm:512M")
KERNEL = "6.1.0-57-amd64"


def _record(**changes: object) -> dict[str, object]:
    record = {
        "pmem_index": 0,
        "fs": "ext4",
        "way": "msync",
        "file": "pmemkit-crash-msync.dat",
        "size": 8192,
        "block": 4096,
        "checksums": [1, 2],
    }
    return {**record, **changes}


# ---- refusals: one line, exit 2, before anything slow ---------------------------------------------


@pytest.mark.parametrize(
    ("suites", "pmem", "fs", "words"),
    [
        (["crash", "smoke"], [NV, NV], ["ext4", "xfs"], "runs alone"),
        (["crash"], [PmemConfig.parse("memmap:512M")], ["ext4"], "needs NVDIMMs or virtio-pmem devices only"),
        (["crash"], [], ["ext4"], "no --pmem device"),
        (["crash"], [PmemConfig.parse("nvdimm:512M,mode=devdax")], ["ext4"], "not mode=fsdax"),
        (["crash"], [NV], ["ext4", "xfs"], "needs at least 2 device(s), not 1"),
        (["crash"], [PmemConfig.parse("cxl:512M")], ["ext4"], "cxl:512M,mode=fsdax,map=mem is not one"),
    ],
)
def test_crash_requests_pmemkit_cannot_carry_out_are_refused(suites, pmem, fs, words) -> None:
    with pytest.raises(ScenarioError, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_crash_request(suites, pmem, fs)


def test_a_crash_request_it_can_carry_out_and_other_suites_pass() -> None:
    check_crash_request(["crash"], [NV, PmemConfig.parse("nvdimm:1G,mode=fsdax")], ["ext4", "xfs"])
    three = [NV, NV, PmemConfig.parse("virtio-pmem:512M")]
    check_crash_request(["crash"], three, ["ext4", "xfs"])
    assert plan_mod.crash_filesystems(three, ["ext4", "xfs"]) == ["ext4", "xfs", "ext4"]  # --fs in turn
    check_crash_request(["smoke", "poison"], [PmemConfig.parse("memmap:512M")], ["ext4"])


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--suite", "crash", "--accel", "tcg"],  # default pmem: memmap, no NVDIMM
        ["run", "--suite", "crash,smoke", "--pmem", "nvdimm:512M", "--fs", "ext4"],
        ["run", "--suite", "crash", "--pmem", "nvdimm:512M", "--fs", "ext4,xfs"],
        ["run", "--suite", "crash", "--target", "local", "--device", "/dev/pmem0", "--destroy-data"],
    ],
)
def test_cli_refuses_in_one_line_with_exit_2_before_building_anything(args, monkeypatch, tmp_path) -> None:
    import pmemkit.vm.run as vm_run

    def slow(*a: object, **k: object) -> None:
        raise AssertionError("the image was asked for: the refusal came too late")

    monkeypatch.setattr(vm_run, "ensure_image", slow)
    result = CliRunner().invoke(main, [*args, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pmemkit: error: --suite crash"), result.output
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


# ---- the plan's phases ------------------------------------------------------------------------------


def _plan(**crash: object) -> Plan:
    return Plan(
        suites=["crash"],
        pmem=[NV],
        filesystems=["ext4"],
        placements=[Placement(0, "nvdimm", nvdimm_slot=0, nfit_handle=1)],
        crash=dict(crash) if crash else None,
    )


def test_plan_phases_round_trip_and_a_suite_run_carries_none() -> None:
    write = _plan(phase="write")
    assert Plan.from_dict(json.loads(json.dumps(write.to_dict()))).crash == {"phase": "write"}
    verify = _plan(phase="verify", written=[_record()])
    back = Plan.from_dict(json.loads(json.dumps(verify.to_dict())))
    assert back.crash == {"phase": "verify", "written": [_record()]}
    assert "crash" not in _plan().to_dict()


@pytest.mark.parametrize(
    "bad",
    [
        {"phase": "later"},
        {"phase": "verify"},
        {"phase": "verify", "written": [_record(file="../../etc/passwd")]},
        {"phase": "verify", "written": [_record(file="pmemkit-crash-x/y")]},
        {"phase": "verify", "written": [_record(way="fsync")]},
        {"phase": "verify", "written": [_record(checksums=[1])]},  # two blocks, one checksum
        {"phase": "verify", "written": [_record(checksums=[1, -2])]},
        {"phase": "verify", "written": [_record(size=True)]},
        "write",
    ],
)
def test_plan_refuses_a_crash_field_it_did_not_write(bad) -> None:
    data = _plan().to_dict()
    data["crash"] = bad
    with pytest.raises(ScenarioError):
        Plan.from_dict(data)


# ---- the guest's pure parts, on this host's own (page-cache) filesystem ---------------------------


def test_blocks_are_counted_intact_zero_other_and_missing() -> None:
    data = os.urandom(4 * 4096)
    sums = guest_crash.checksums(data)
    found = data[:4096] + bytes(4096) + os.urandom(4096)  # the fourth block is beyond the end
    counts = guest_crash.compare_blocks(found, sums)
    assert counts == {"intact": 1, "zero": 1, "other": 1, "missing": 1}
    assert guest_crash.judge(True, len(found), len(data), counts) == "short"
    assert guest_crash.judge(True, len(data), len(data), guest_crash.compare_blocks(data, sums)) == "ok"
    assert guest_crash.judge(False, 0, len(data), counts) == "ENOENT"


def _target(path: Path, fs: str = "ext4") -> Target:
    scenario = Scenario(kernel=KERNEL, source="nvdimm", mode="fsdax", map="mem", fs=fs)
    return Target("fs", str(path), "/dev/pmem0", scenario, str(path))


def _device() -> SimpleNamespace:
    return SimpleNamespace(index=0)


def test_write_then_verify_on_a_real_file_and_the_kernels_map_sync_answer(tmp_path: Path) -> None:
    target = _target(tmp_path)
    refused = guest_crash.write_way(_device(), target, "map-sync")
    assert refused.outcome in ("EOPNOTSUPP", "ok")  # EOPNOTSUPP unless tmp_path is itself DAX
    wrote = guest_crash.write_way(_device(), target, "msync")
    assert wrote.outcome == "ok" and wrote.variant == "msync", wrote.detail
    assert len(wrote.metrics["checksums"]) == guest_crash.FILE_BYTES // 4096
    record = crash_record(
        {
            "pmem_index": 0,
            "fs": "ext4",
            "way": "msync",
            "file": wrote.metrics["file"],
            "size": wrote.metrics["size_bytes"],
            "block": wrote.metrics["block_bytes"],
            "checksums": wrote.metrics["checksums"],
        }
    )
    assert guest_crash.verify_way(target, record).outcome == "ok"
    path = tmp_path / record["file"]
    with open(path, "r+b") as f:  # what a crash could leave: one block zero, the file cut short
        f.seek(4096)
        f.write(bytes(4096))
        f.truncate(3 * 4096)
    partial = guest_crash.verify_way(target, record)
    assert partial.outcome == "short" and partial.metrics["survival"] == "partial"
    assert (partial.metrics["blocks_intact"], partial.metrics["blocks_zero"]) == (2, 1)
    assert partial.metrics["blocks_missing"] == len(record["checksums"]) - 3
    path.unlink()
    lost = guest_crash.verify_way(target, record)
    assert lost.outcome == "ENOENT" and lost.metrics["file_present"] is False
    if refused.outcome == "EOPNOTSUPP":  # the model predicts the kernel's refusal on a non-DAX file
        scenario = Scenario(kernel=KERNEL, source="baseline", mode="pagecache", fs="ext4")
        assert predict(scenario, "crash-write:map-sync").outcome == "EOPNOTSUPP"


def test_a_planted_link_is_not_followed_in_verify(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * 8192)
    (tmp_path / "pmemkit-crash-msync.dat").symlink_to(secret)
    seen = guest_crash.verify_way(_target(tmp_path), crash_record(_record()))
    assert seen.outcome == "ELOOP"


# ---- the model's crash-* block ---------------------------------------------------------------------


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_model_predicts_every_way_with_sources(fs: str) -> None:
    scenario = Scenario(kernel=KERNEL, source="nvdimm", mode="fsdax", map="mem", fs=fs)
    got = {op: predict(scenario, op) for op in CRASH_OPERATIONS}
    assert {op: p.outcome for op, p in got.items()} == {
        "crash-write:map-sync": "ok",
        "crash-write:msync": "ok",
        "crash-write:no-sync": "ok",
        "crash-remount": "ok",
        "crash-verify:map-sync": "ok",
        "crash-verify:msync": "ok",
        "crash-verify:no-sync": "ENOENT",
    }
    assert got["crash-verify:no-sync"].status == "I"  # no promise: timing, said so
    assert got["crash-verify:map-sync"].status == "V"
    sources = " ".join(got["crash-verify:map-sync"].sources)
    assert "linux-source-6.1" in sources and "dax_finish_sync_fault" in sources
    assert "vfs_fsync_range" in " ".join(got["crash-verify:msync"].sources)


def test_model_before_map_sync_existed_and_on_older_kernels() -> None:
    old = Scenario(kernel="4.14", source="nvdimm", mode="fsdax", map="mem", fs="ext4")
    assert predict(old, "crash-write:map-sync").outcome == "EINVAL"
    mid = Scenario(kernel="5.10", source="nvdimm", mode="fsdax", map="mem", fs="ext4")
    assert predict(mid, "crash-verify:map-sync").status == "I"
    assert rule_by_name("crash-no-sync-lost").status == "I"


# ---- the host: the marker kill, boot 1's records, the pmem=on probe --------------------------------


def test_the_marker_kills_qemu_at_once_and_only_kills(tmp_path: Path) -> None:
    script = "echo booting; echo 'PMEMKIT-CRASH-WRITTEN uptime=1'; sleep 60; echo never"
    began = time.monotonic()
    result = boot(
        ["sh", "-c", script], tmp_path / "console.log", 50, lambda _m: None, kill_on=host_crash.MARKER
    )
    assert time.monotonic() - began < 20
    assert result.killed_at is not None and result.returncode == -9 and not result.timed_out
    log = (tmp_path / "console.log").read_text()
    assert "PMEMKIT-CRASH-WRITTEN" in log and "never" not in log


def test_without_the_marker_nothing_is_killed(tmp_path: Path) -> None:
    result = boot(
        ["sh", "-c", "echo done"], tmp_path / "c.log", 30, lambda _m: None, kill_on=host_crash.MARKER
    )
    assert result.killed_at is None and result.returncode == 0
    assert host_crash.write_failure(result, 30).startswith("boot 1 (write): the guest never printed")


def _write_obs(way: str, fs: str = "ext4", outcome: str = "ok", **metrics: object) -> dict[str, object]:
    scenario = Scenario(kernel=KERNEL, source="nvdimm", mode="fsdax", map="mem", fs=fs)
    base = {
        "way": way,
        "file": f"pmemkit-crash-{way}.dat",
        "pmem_index": 0 if fs == "ext4" else 1,
        "size_bytes": 8192,
        "block_bytes": 4096,
        "checksums": [7, 8],
        "mapping": "dax",
    }
    obs = Observation("crash", "crash-write", outcome, scenario, "/dev/pmem0", metrics={**base, **metrics})
    obs.variant = way
    return obs.to_dict()


def test_boot_1_records_are_checked_before_boot_2_gets_them() -> None:
    objects = [
        _write_obs("map-sync"),
        _write_obs("msync", file="../escape"),
        _write_obs("no-sync", outcome="EOPNOTSUPP"),
        {"experiment": "prepare", "operation": "dax-mount"},
    ]
    records, warnings = host_crash.written_records(objects)
    assert [r["way"] for r in records] == ["map-sync"]
    assert len(warnings) == 1 and "msync" in warnings[0]


def _fake_qemu(tmp_path: Path, rc: int, stderr: str) -> str:
    path = tmp_path / "qemu"
    path.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {rc}\n")
    path.chmod(0o755)
    return str(path)


def test_pmem_on_probe_records_what_qemu_said(tmp_path: Path) -> None:
    took = host_crash.probe_pmem_on(_fake_qemu(tmp_path, 0, "warning: non DAX"), tmp_path)
    assert took["pmem_on"] is True and "non DAX" in took["reason"]
    refused = host_crash.probe_pmem_on(_fake_qemu(tmp_path, 1, "Lack of libpmem support"), tmp_path)
    assert refused["pmem_on"] is False and "libpmem" in refused["reason"]
    assert not (tmp_path / "pmem-on-probe.img").exists()


# ---- the two-boot flow with a stand-in guest --------------------------------------------------------


def _fake_layers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pmemkit.vm.run as vm_run

    image = SimpleNamespace(
        rootfs=tmp_path / "rootfs", image_id="test", manifest=lambda: {"image_id": "test"}
    )
    kernel = SimpleNamespace(vmlinux=tmp_path / "vmlinux", initrd=tmp_path / "initrd", modules_disk=None)
    layers = vm_run.Layers(
        "qemu-system-x86_64",
        image,
        kernel,
        {"kernel_release": KERNEL},
        SimpleNamespace(accel="tcg", reason="test"),
    )
    monkeypatch.setattr(vm_run, "build_layers", lambda *a: layers)
    monkeypatch.setattr(vm_run.compileall, "compile_dir", lambda *a, **k: True)
    monkeypatch.setattr(vm_run, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(
        host_crash, "probe_pmem_on", lambda qemu, scratch: {"pmem_on": False, "reason": "test"}
    )


def _share_and_backing(argv: list[str]) -> tuple[Path, list[Path]]:
    spec = next(a for a in argv if "mount_tag=pmemkit_out" in a)
    share = Path(spec.split("path=")[1].split(",")[0])
    backing = [Path(p.split("=", 1)[1]) for a in argv for p in a.split(",") if p.startswith("mem-path=")]
    return share, backing


def _options(tmp_path: Path):
    from pmemkit.vm.layout import plan_layout
    from pmemkit.vm.run import RunOptions

    pmem = [NV, NV]
    options = RunOptions(pmem=pmem, suites=["crash"], filesystems=["ext4", "xfs"], runs_dir=tmp_path / "runs")
    return options, plan_layout(pmem, None)


def test_two_boots_on_the_same_backing_files_keep_both_boots_and_remove_scratch(
    monkeypatch, tmp_path
) -> None:
    import pmemkit.vm.run as vm_run
    from pmemkit.vm.lifecycle import SignalGuard

    _fake_layers(monkeypatch, tmp_path)
    seen: dict[str, object] = {}

    def fake_boot(argv, console_log, timeout, progress, guard=None, kill_on=None):
        share, backing = _share_and_backing(argv)
        plan = json.loads((share / "plan.json").read_text())
        if plan["crash"]["phase"] == "write":
            assert kill_on == host_crash.MARKER
            backing[0].write_bytes(b"boot 1 was here")  # what the guest stored into the NVDIMM
            lines = [json.dumps(_write_obs(w, fs)) for fs in ("ext4", "xfs") for w in ("map-sync", "msync")]
            (share / "observations.jsonl").write_text("\n".join(lines) + "\n")
            (share / "evil").symlink_to("/etc/passwd")  # the guest is untrusted: the host follows nothing
            console_log.write_text("[    0.000000] Linux version 6.1\nPMEMKIT-CRASH-WRITTEN uptime=9\n")
            return BootResult(
                returncode=-9, timed_out=False, elapsed_s=9.0, phases={"qemu": 0.0}, killed_at=9.0
            )
        seen["backing_2"] = [p.read_bytes()[:15] for p in backing]
        seen["written"] = plan["crash"]["written"]
        seen["share_obs"] = (share / "observations.jsonl").read_text()
        verify = _write_obs("msync")
        verify.update(operation="crash-verify")
        (share / "observations.jsonl").write_text(json.dumps(verify) + "\n")
        (share / "dmesg.txt").write_text("[ 1.0] EXT4-fs (pmem0): recovery complete\n")
        console_log.write_text("PMEMKIT-PHASE done rc=0 9.0\n")
        return BootResult(
            returncode=0, timed_out=False, elapsed_s=9.0, phases={"qemu": 0.0, "done": 9.0}, guest_rc=0
        )

    monkeypatch.setattr(vm_run, "boot", fake_boot)
    options, layout = _options(tmp_path)
    with SignalGuard() as guard:
        collected = vm_run.boot_and_collect(options, layout, lambda _m: None, guard)
    assert collected.failure is None and collected.faults == []
    assert seen["backing_2"][0] == b"boot 1 was here"  # boot 2 got boot 1's file, not a fresh one
    assert [(r["fs"], r["way"]) for r in seen["written"]] == [
        ("ext4", "map-sync"),
        ("ext4", "msync"),
        ("xfs", "map-sync"),
        ("xfs", "msync"),
    ]
    assert seen["share_obs"] == ""  # boot 1's lines cannot be mistaken for boot 2's
    run = collected.run_dir
    ops = [json.loads(line)["operation"] for line in (run / "observations.jsonl").read_text().splitlines()]
    assert ops == ["crash-write"] * 4 + ["crash-verify"]
    for name in ("guest-console.log", "guest-console-2.log", "plan-verify.json", "dmesg-1.txt", "dmesg.txt"):
        assert (run / name).is_file(), name
    assert "recovery complete" in (run / "dmesg.txt").read_text()
    environment = json.loads((run / "environment.json").read_text())
    assert [b["phase"] for b in environment["crash"]["boots"]] == ["write", "verify"]
    assert not list((tmp_path / "cache" / "scratch").iterdir())  # the backing files are gone


def test_no_marker_means_no_boot_2_and_still_no_backing_files_left(monkeypatch, tmp_path) -> None:
    import pmemkit.vm.run as vm_run
    from pmemkit.vm.lifecycle import SignalGuard

    _fake_layers(monkeypatch, tmp_path)
    boots: list[str] = []

    def fake_boot(argv, console_log, timeout, progress, guard=None, kill_on=None):
        boots.append(console_log.name)
        console_log.write_text("PMEMKIT-PHASE done rc=1 9.0\n")
        return BootResult(returncode=0, timed_out=False, elapsed_s=9.0, phases={"qemu": 0.0, "done": 9.0})

    monkeypatch.setattr(vm_run, "boot", fake_boot)
    options, layout = _options(tmp_path)
    with SignalGuard() as guard:
        collected = vm_run.boot_and_collect(options, layout, lambda _m: None, guard)
    assert boots == ["guest-console.log"]
    assert collected.failure is not None and "never printed PMEMKIT-CRASH-WRITTEN" in collected.failure
    assert (collected.run_dir / "environment.json").is_file()
    assert not list((tmp_path / "cache" / "scratch").iterdir())


def test_a_timed_out_boot_1_is_one_line_and_starts_no_boot_2() -> None:
    result = BootResult(returncode=-9, timed_out=True, elapsed_s=99.0, phases={"qemu": 0.0})
    message = host_crash.write_failure(result, 99)
    assert "did not finish within 99 s" in message and message.endswith("boot 2 not started")


# ---- the report section from a fixture ---------------------------------------------------------------


def _verify_obs(fs: str, way: str, outcome: str) -> Observation:
    scenario = Scenario(kernel=KERNEL, source="nvdimm", mode="fsdax", map="mem", fs=fs)
    metrics = {"survival": guest_crash.SURVIVAL[outcome], "size_bytes": 0, "written_size_bytes": 8192}
    metrics.update(blocks_intact=0, blocks_zero=0, blocks_other=0, blocks_missing=2, extents=[])
    return Observation("crash", "crash-verify", outcome, scenario, "/dev/pmem0", metrics=metrics, variant=way)


def test_report_section_sets_each_way_beside_the_model() -> None:
    from pmemkit.report.crash import crash_lines, crash_section
    from pmemkit.report.markdown import RunContents
    from pmemkit.report.rundir import default_predictor
    from pmemkit.report.verdict import verdicts

    observations = [
        _verify_obs("ext4", "map-sync", "ok"),
        _verify_obs("ext4", "msync", "short"),
        _verify_obs("ext4", "no-sync", "ENOENT"),
    ]
    environment = {
        "accel": "tcg",
        "crash": {
            "pmem_on": {"pmem_on": True, "reason": "QEMU accepted pmem=on"},
            "boots": [{"killed_at_s": 9.5}],
        },
    }
    run = RunContents("r", {"suites": ["crash"]}, environment, {"kernel": KERNEL}, observations)
    found = verdicts(run, default_predictor())
    lines = crash_lines(run, found)
    text = "\n".join(lines)
    assert lines[0] == "## Crash: what survived a SIGKILL of qemu"
    assert (
        "| nvdimm fsdax map=mem ext4 (/dev/pmem0) | msync" in text
        and "**partial** (`short`)" in text
        and "**≠**" in text
    )
    assert "**lost** (`ENOENT`)" in text and "[I]" in text
    assert "kernel 6.1.0-57-amd64" in text and "tcg" in text and "pmem=on`: yes" in text
    assert "emulated pmem is dram" in text.lower() and "9.5 s into boot 1" in text
    section = crash_section(run, found)
    assert section is not None and section.id == "crash" and "<table>" in section.body
    empty = RunContents("r", {}, {}, {}, [])
    assert crash_lines(empty, []) == [] and crash_section(empty, []) is None


def test_the_guest_module_imports_with_the_guests_python_only() -> None:
    """guest/experiments/crash.py and plan.py run under Debian's python3 in the guest: stdlib there."""
    import subprocess

    code = "import pmemkit.guest.experiments.crash, sys; print('pmemkit.report' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert plan_mod.CRASH_WAYS == guest_crash.CRASH_WAYS


def _boot_1_writes(share: Path, console_log: Path) -> BootResult:
    lines = [json.dumps(_write_obs(w)) for w in ("map-sync", "msync")]
    (share / "observations.jsonl").write_text("\n".join(lines) + "\n")
    console_log.write_text("PMEMKIT-CRASH-WRITTEN uptime=9\n")
    return BootResult(returncode=-9, timed_out=False, elapsed_s=9.0, phases={"qemu": 0.0}, killed_at=9.0)


def _run_with(monkeypatch, tmp_path, boot_2=None, after_boot_1=None):
    import pmemkit.vm.run as vm_run
    from pmemkit.vm.lifecycle import SignalGuard

    _fake_layers(monkeypatch, tmp_path)
    consoles: list[str] = []

    def fake_boot(argv, console_log, timeout, progress, guard=None, kill_on=None):
        consoles.append(console_log.name)
        share, _ = _share_and_backing(argv)
        if kill_on is not None:
            result = _boot_1_writes(share, console_log)
            if after_boot_1 is not None:
                after_boot_1(share)
            return result
        return boot_2(console_log)

    monkeypatch.setattr(vm_run, "boot", fake_boot)
    options, layout = _options(tmp_path)
    with SignalGuard() as guard:
        collected = vm_run.boot_and_collect(options, layout, lambda _m: None, guard)
    return collected, consoles


def test_a_boot_2_that_times_out_keeps_boot_1s_observations(monkeypatch, tmp_path) -> None:
    def hangs(console_log: Path) -> BootResult:
        console_log.write_text("[    1.0] Linux version 6.1\n")
        return BootResult(returncode=-9, timed_out=True, elapsed_s=180.0, phases={"qemu": 0.0})

    collected, consoles = _run_with(monkeypatch, tmp_path, boot_2=hangs)
    assert consoles == ["guest-console.log", "guest-console-2.log"]
    assert collected.failure.startswith("boot 2 (verify): the guest did not finish within")
    lines = (collected.run_dir / "observations.jsonl").read_text().splitlines()
    assert [json.loads(line)["operation"] for line in lines] == ["crash-write", "crash-write"]
    assert "boot 2 ended before saving dmesg" in (collected.run_dir / "dmesg.txt").read_text()
    assert not list((tmp_path / "cache" / "scratch").iterdir())


def test_a_share_the_guest_spoilt_starts_no_boot_2(monkeypatch, tmp_path) -> None:
    def spoil(share: Path) -> None:
        (share / "plan.json").unlink()
        (share / "plan.json").mkdir()  # the host's rename of the verify plan cannot replace it
        (share / "plan.json" / "x").write_text("x")

    collected, consoles = _run_with(monkeypatch, tmp_path, after_boot_1=spoil)
    assert consoles == ["guest-console.log"]
    assert "boot 2 could not be given its plan" in collected.failure
    assert (collected.run_dir / "observations.jsonl").read_text().count("crash-write") == 2
    assert not list((tmp_path / "cache" / "scratch").iterdir())


def test_an_interrupted_boot_1_starts_no_boot_2() -> None:
    result = BootResult(
        returncode=-9, timed_out=False, elapsed_s=5.0, phases={"qemu": 0.0}, interrupted="SIGTERM"
    )
    message = host_crash.write_failure(result, 99)
    assert message.startswith("boot 1 (write): interrupted by SIGTERM") and "boot 2 not started" in message


def test_a_qemu_that_dies_before_the_kernel_is_started_once_more(monkeypatch, tmp_path) -> None:
    attempts: list[int] = []

    def aborts_once(console_log: Path) -> BootResult:
        attempts.append(1)
        if len(attempts) == 1:  # QEMU 7.2 with pmem=on, seen once: abort before the guest kernel
            return BootResult(-6, False, 0.1, {"qemu": 0.0}, stderr="free(): invalid pointer")
        console_log.write_text("PMEMKIT-PHASE done rc=0 9.0\n")
        return BootResult(0, False, 9.0, {"qemu": 0.0, "kernel": 1.0, "done": 9.0}, guest_rc=0)

    collected, consoles = _run_with(monkeypatch, tmp_path, boot_2=aborts_once)
    assert consoles == ["guest-console.log", "guest-console-2.log", "guest-console-2.log"]
    assert collected.failure is None
    boots = collected.environment["crash"]["boots"]
    assert [(b["phase"], "retried" in b) for b in boots] == [
        ("write", False),
        ("verify", True),
        ("verify", False),
    ]
    assert "free(): invalid pointer" in boots[1]["retried"]


def test_only_a_start_up_death_is_retried() -> None:
    assert host_crash.died_at_start(BootResult(-6, False, 0.1, {"qemu": 0.0}))
    assert not host_crash.died_at_start(BootResult(-6, False, 9.0, {"qemu": 0.0, "kernel": 1.0}))
    assert not host_crash.died_at_start(BootResult(-9, True, 99.0, {"qemu": 0.0}))  # a timeout
    assert not host_crash.died_at_start(BootResult(None, False, 0.0, {}, interrupted="SIGINT"))


def test_boot_1_records_every_way_then_prints_the_marker_last(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(guest_crash, "WAIT_FOR_KILL_S", 0)
    good, gone = _target(tmp_path / "good"), _target(tmp_path / "missing", "xfs")
    (tmp_path / "good").mkdir()
    recorded: list[Observation] = []
    writer = SimpleNamespace(add=recorded.append)
    rc = guest_crash._write_all([(_device(), good), (_device(), gone)], writer, 0)
    assert rc == 1  # a way that could not be written is a failed step
    assert [(o.scenario.fs, o.variant) for o in recorded] == [
        (fs, way) for way in guest_crash.CRASH_WAYS for fs in ("ext4", "xfs")
    ]
    assert {o.outcome for o in recorded if o.scenario.fs == "xfs"} == {"skipped:error"}
    assert [o.outcome for o in recorded if o.scenario.fs == "ext4"][1:] == ["ok", "ok"]  # msync, no-sync
    unsynced = [o for o in recorded if o.variant == "no-sync" and o.outcome == "ok"]
    assert unsynced and "recorded_at_uptime_s" in unsynced[0].metrics
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith(guest_crash.MARKER)  # nothing after the marker
    assert guest_crash.MARKER == host_crash.MARKER


def test_a_signal_during_boot_1_ends_qemu_keeps_the_run_and_removes_scratch(monkeypatch, tmp_path) -> None:
    import signal
    import threading

    import pmemkit.vm.run as vm_run
    from pmemkit.vm.lifecycle import SignalGuard

    _fake_layers(monkeypatch, tmp_path)
    started: list[str] = []

    def slow_guest(argv, console_log, timeout, progress, guard=None, kill_on=None):
        started.append(console_log.name)
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return boot(
            ["sh", "-c", "echo booting; sleep 30"], console_log, timeout, progress, guard, kill_on=kill_on
        )

    monkeypatch.setattr(vm_run, "boot", slow_guest)
    options, layout = _options(tmp_path)
    began = time.monotonic()
    found: dict[str, object] = {}
    with SignalGuard() as guard:
        found["collected"] = vm_run.boot_and_collect(options, layout, lambda _m: None, guard)
    assert guard.received == signal.SIGTERM  # left for the caller (pipeline), which reports and exits 143
    collected = found["collected"]
    assert time.monotonic() - began < 20 and started == ["guest-console.log"]
    assert collected.failure.startswith("boot 1 (write): interrupted by SIGTERM")
    assert collected.boot.qemu_left is None and collected.boot.interrupted == "SIGTERM"
    assert (collected.run_dir / "guest-console.log").read_text().startswith("booting")
    assert not list((tmp_path / "cache" / "scratch").iterdir())


def test_model_refuses_map_sync_on_virtio_pmem_and_keeps_the_other_ways() -> None:
    virtio = Scenario(kernel=KERNEL, source="virtio-pmem", mode="raw", fs="ext4")
    refused = predict(virtio, "crash-write:map-sync")
    assert refused.outcome == "EOPNOTSUPP" and refused.rule == "crash-map-sync-virtio-pmem"
    assert "ND_REGION_ASYNC" in " ".join(refused.sources)
    assert predict(virtio, "crash-verify:msync").outcome == "ok"
    assert predict(virtio, "crash-verify:no-sync").outcome == "ENOENT"


def test_report_shows_the_models_write_cell_where_nothing_was_written() -> None:
    from pmemkit.report.crash import crash_lines
    from pmemkit.report.markdown import RunContents
    from pmemkit.report.rundir import default_predictor
    from pmemkit.report.verdict import verdicts

    scenario = Scenario(kernel=KERNEL, source="virtio-pmem", mode="raw", fs="ext4")
    refused = Observation("crash", "crash-write", "EOPNOTSUPP", scenario, "/dev/pmem2", variant="map-sync")
    skipped = Observation(
        "crash", "crash-verify", "skipped:not-written", scenario, "/dev/pmem2", variant="map-sync"
    )
    run = RunContents("r", {}, {}, {"kernel": KERNEL}, [refused, skipped])
    text = "\n".join(crash_lines(run, verdicts(run, default_predictor())))
    assert (
        "| `EOPNOTSUPP` | `skipped:not-written` | write: `EOPNOTSUPP` (crash-map-sync-virtio-pmem) |" in text
    )
