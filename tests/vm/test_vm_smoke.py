"""Boot the real guest (TCG) and check what the real kernel did — outcomes, data, provenance.

One boot per configuration group (module-scoped fixtures), never one per test: a boot costs tens
of seconds under TCG. No timing is asserted anywhere: this machine is shared and noisy.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pmemkit.report.rundir import default_predictor
from pmemkit.scenario import Observation
from tests.vm.helpers import observations, only_run_dir, pmemkit_argv, qemu_of, run, started

pytestmark = pytest.mark.vm

ALL_SOURCES = [
    "memmap:512M",
    "nvdimm:512M,mode=fsdax,map=mem",
    "nvdimm:512M,mode=fsdax,map=dev",
    "nvdimm:512M,mode=devdax",
    "nvdimm:512M,mode=raw",
    "virtio-pmem:512M",
]
PROVENANCE_KEYS = (
    "kernel",
    "accel",
    "pmem_source",
    "namespace_mode",
    "pmemkit_version",
    "repetitions",
    "timer_overhead_ns",
    "emulation",
)


def pmemkit(*args: str, runs_dir: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return run(pmemkit_argv("run", runs_dir, *args), runs_dir, timeout)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    runs = tmp_path_factory.mktemp("runs")
    args = [a for spec in ALL_SOURCES for a in ("--pmem", spec)]
    result = pmemkit(*args, "--json", runs_dir=runs)
    return result, only_run_dir(runs, result)


def find(
    obs: list[Observation],
    *,
    source: str,
    mode: str,
    op: str,
    fs: str | None = None,
    map_: str | None = None,
    experiment: str | None = None,
    variant: str | None = None,
) -> Observation:
    """The one observation of `op` tried the plain way (variant None) or the named `variant`."""
    hits = [
        o
        for o in obs
        if o.scenario.source == source
        and o.scenario.mode == mode
        and o.operation == op
        and (fs is None or o.scenario.fs == fs)
        and (map_ is None or o.scenario.map == map_)
        and (experiment is None or o.experiment == experiment)
        and o.variant == variant
    ]
    assert len(hits) == 1, (source, mode, op, fs, map_, [o.to_dict() for o in hits])
    return hits[0]


def test_run_succeeds_and_writes_the_run_directory(full_run):
    result, run_dir = full_run
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] and Path(summary["run_dir"]).name == run_dir.name
    for name in (
        "plan.json",
        "observations.jsonl",
        "environment.json",
        "guest-console.log",
        "dmesg.txt",
        "report.md",
        "report.html",
        "observations.csv",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["accel"] == "tcg" and {"qemu", "kernel", "init", "done"} <= set(env["boot"]["phases_s"])
    assert "Emulated pmem" in (run_dir / "report.md").read_text()


def test_dax_mounts_where_pages_exist(full_run):
    obs = observations(full_run[1])
    for fs in ("ext4", "xfs"):
        assert find(obs, source="memmap", mode="raw", op="dax-mount", fs=fs).outcome == "ok"
        for map_ in ("mem", "dev"):
            assert find(obs, source="nvdimm", mode="fsdax", map_=map_, op="dax-mount", fs=fs).outcome == "ok"


def test_raw_nvdimm_refuses_dax_with_the_kernels_reason(full_run):
    obs = observations(full_run[1])
    ext4 = find(obs, source="nvdimm", mode="raw", op="dax-mount", fs="ext4")
    assert ext4.outcome == "EINVAL" and "DAX unsupported by block device" in ext4.detail
    xfs = find(obs, source="nvdimm", mode="raw", op="dax-mount", fs="xfs")
    assert xfs.outcome == "fallback" and "Turning off DAX" in xfs.detail


def test_odirect_into_and_from_dax_buffers_is_ok_and_verified(full_run):
    obs = observations(full_run[1])
    smoke = [
        o
        for o in obs
        if o.experiment == "smoke" and o.operation in ("odirect-read-into-dax", "odirect-write-from-dax")
    ]
    # A target counts as DAX by what the kernel did, not by the operation's name: raw NVDIMM + xfs
    # mounts with DAX turned off and keeps the plain names; its buffers are page-cache mappings.
    dax_targets = [o for o in smoke if o.metrics["mapping"] == "dax"]
    fallbacks = [o for o in smoke if o.metrics["mapping"] == "pagecache"]
    assert len(dax_targets) + len(fallbacks) == len(smoke)
    # memmap, fsdax mem, fsdax dev, virtio-pmem on two filesystems each, plus devdax: 9 targets × 2
    assert len(dax_targets) == 18
    for o in dax_targets:
        assert o.outcome == "ok" and o.metrics["verified"] is True, o.to_dict()
    # The mapping agrees with the mount the kernel gave: exactly the targets whose dax-mount fell back.
    fell_back = {
        (o.scenario.source, o.scenario.mode, o.scenario.fs)
        for o in obs
        if o.operation == "dax-mount" and o.outcome == "fallback"
    }
    assert fell_back == {("nvdimm", "raw", "xfs")}
    assert len(fallbacks) == 2
    for o in fallbacks:
        assert (o.scenario.source, o.scenario.mode, o.scenario.fs) in fell_back, o.to_dict()
        assert o.metrics["verified"] is True and "fell back to the page cache" in o.detail, o.to_dict()


def test_devdax_refuses_private_mappings(full_run):
    obs = observations(full_run[1])
    assert find(obs, source="nvdimm", mode="devdax", op="map-private").outcome == "EINVAL"
    assert find(obs, source="nvdimm", mode="devdax", op="dax-mount").outcome == "n/a"


def test_every_observation_carries_provenance(full_run):
    for o in observations(full_run[1]):
        assert not o.outcome.startswith("skipped"), o.to_dict()
        for key in PROVENANCE_KEYS:
            assert o.provenance.get(key) not in (None, ""), (key, o.to_dict())
        assert o.provenance["accel"] == "tcg"
        if o.scenario.fs:
            assert o.provenance["fs"] == o.scenario.fs
            expected = "page cache (no DAX)" if o.scenario.source == "baseline" else "dax=always"
            assert o.provenance["mount_options"] == expected


def _timed_summaries(value):
    """Every summary `time_each` produced in an observation's metrics (it names its loop)."""
    if isinstance(value, dict):
        timing = value.get("timing")
        if isinstance(timing, dict) and timing.get("loop", "").endswith("time_each"):
            yield value
        for inner in value.values():
            yield from _timed_summaries(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _timed_summaries(inner)


def test_every_timed_burst_carries_the_machine_s_speed_and_the_report_shows_it(full_run):
    """The guest's `time_each` takes a speed reference before and after each burst (what `compare`
    and the report's machine-speed section read): two positive ns figures on every one."""
    summaries = [s for o in observations(full_run[1]) for s in _timed_summaries(o.metrics)]
    assert len(summaries) >= 50, len(summaries)
    for s in summaries:
        refs = s["timing"].get("speed_reference_ns")
        assert isinstance(refs, list) and len(refs) == 2 and all(r > 0 for r in refs), s["timing"]
    html = (full_run[1] / "report.html").read_text()
    assert '<details id="speed"><summary>Machine speed during the latency bursts' in html
    summary = (full_run[1] / "report.md").read_text()
    assert "**The machine's speed during the latency bursts**:" in summary


def test_model_agrees_with_every_predicted_observation(full_run):
    predictor = default_predictor()
    compared = 0
    for o in observations(full_run[1]):
        prediction = predictor(o)
        if prediction is None:
            continue
        compared += 1
        assert prediction.outcome == o.outcome, (o.to_dict(), prediction.rule)
    assert compared >= 30


@pytest.fixture(scope="module")
def panic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    runs = tmp_path_factory.mktemp("runs")
    result = pmemkit("--pmem", "memmap:256M", "--fs", "ext4", "--inject-fault", "panic", runs_dir=runs)
    return result, only_run_dir(runs, result)


def test_guest_panic_ends_with_a_clear_error_and_keeps_results(panic_run):
    result, run_dir = panic_run
    assert result.returncode == 6
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pmemkit: error: the guest kernel panicked") and "Traceback" not in result.stderr
    assert len(observations(run_dir)) >= 1  # what the guest saw before the crash is kept
    assert "FAILED" in (run_dir / "report.md").read_text()
    assert not qemu_of(run_dir)


def test_killed_qemu_ends_with_a_clear_error_and_keeps_results(tmp_path):
    argv = pmemkit_argv("run", tmp_path, "--pmem", "memmap:256M", "--fs", "ext4", "--inject-fault", "hang")
    with started(argv, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 600
        run_dir = None
        while time.monotonic() < deadline and proc.poll() is None:
            dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
            # While qemu runs, the guest writes into RUN/guest/ (its share); RUN/ gets the checked copy after.
            # Kill once it holds an observation: the test is that what was written is kept.
            written = dirs[0] / "guest" / "observations.jsonl" if dirs else None
            if written and written.exists() and written.stat().st_size > 0:
                run_dir = dirs[0].resolve()
                if qemu_of(run_dir):
                    break
            time.sleep(0.5)
        assert run_dir is not None, proc.communicate()
        for qemu in qemu_of(run_dir):
            qemu.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 6
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("pmemkit: error: the guest ended before finishing") and "Traceback" not in stderr
    assert len(observations(run_dir)) >= 1
    assert not qemu_of(run_dir)


def test_hung_guest_is_killed_after_the_timeout(tmp_path):
    result = pmemkit(
        "--pmem",
        "memmap:256M",
        "--fs",
        "ext4",
        "--inject-fault",
        "hang",
        "--timeout",
        "90",
        runs_dir=tmp_path,
    )
    assert result.returncode == 6
    assert "did not finish within 90 s" in result.stderr.strip().splitlines()[-1]
    run_dir = only_run_dir(tmp_path)
    assert len(observations(run_dir)) >= 1
    assert not qemu_of(run_dir)


def test_pageless_control_refuses_odirect_but_not_buffered_io(full_run):
    """The seed mail's rule on one physical range: no struct page, no O_DIRECT; a CPU copy still works."""
    obs = observations(full_run[1])
    outcomes = {
        o.operation: o.outcome for o in obs if o.scenario.mode == "devmem" and o.experiment == "odirect"
    }
    assert outcomes == {
        "odirect-read-into-pageless": "EFAULT",
        "odirect-write-from-pageless": "EFAULT",
        "buffered-read-into-pageless": "ok",
    }
    dax = find(obs, source="memmap", mode="raw", op="odirect-read-into-dax", fs="ext4", experiment="odirect")
    assert dax.outcome == "ok" and "verified" in dax.detail


def test_odirect_into_a_read_only_mapping_is_refused_everywhere(full_run):
    read_only = [o for o in observations(full_run[1]) if o.variant == "read-only"]
    assert len(read_only) >= 10
    assert {o.outcome for o in read_only} == {"EFAULT"}


def test_map_sync_follows_dax(full_run):
    obs = observations(full_run[1])
    for fs in ("ext4", "xfs"):
        assert find(obs, source="memmap", mode="raw", op="map-sync", fs=fs).outcome == "ok"
        assert find(obs, source="nvdimm", mode="fsdax", map_="dev", op="map-sync", fs=fs).outcome == "ok"
        assert find(obs, source="virtio-pmem", mode="raw", op="map-sync", fs=fs).outcome == "EOPNOTSUPP"
    assert find(obs, source="nvdimm", mode="raw", op="map-sync", fs="xfs").outcome == "EOPNOTSUPP"
    assert find(obs, source="nvdimm", mode="devdax", op="map-sync").outcome == "ok"


def test_pmd_faults_counted_from_the_kernel(full_run):
    obs = observations(full_run[1])
    for fs in ("ext4", "xfs"):
        pmd = find(obs, source="memmap", mode="raw", op="pmd-fault", fs=fs)
        assert pmd.outcome == "ok" and pmd.metrics["pmd_fault_events"].get("NOPAGE", 0) > 0
    writes = [o for o in obs if o.operation == "first-touch-write"]
    assert len(writes) >= 12 and all(o.metrics["latency"]["count"] == 1024 for o in writes)


def test_fio_ran_beside_pmemkit_on_every_filesystem_target(full_run):
    fio = [o for o in observations(full_run[1]) if o.experiment == "fio"]
    assert len(fio) == 2 * 10  # 8 DAX + 1 non-DAX (raw NVDIMM xfs) filesystems + the page-cache baseline
    for o in fio:
        assert o.outcome == "ok", o.to_dict()
        assert o.metrics["fio"]["bw_bytes"] > 0 and o.metrics["fio"]["fio_version"].startswith("fio-3")


def test_kernel_interfaces_need_struct_page(full_run):
    """kapi: every page-taking interface fails on the page-less control and works on DAX with pages,
    except the long-term pin, which fsdax refuses (FOLL_LONGTERM) and device-dax allows."""
    obs = [o for o in observations(full_run[1]) if o.experiment == "kapi"]
    pageless = {o.operation: o.outcome for o in obs if o.scenario.mode == "devmem"}
    for op in ("futex-shared", "vmsplice", "iouring-fixed-buffer", "longterm-pin"):
        assert pageless[op] == "EFAULT", (op, pageless)
    memmap_ext4 = {
        o.operation: o.outcome
        for o in obs
        if o.scenario.source == "memmap" and o.scenario.mode == "raw" and o.scenario.fs == "ext4"
    }
    assert memmap_ext4["futex-shared"] == "ok" and memmap_ext4["vmsplice"] == "ok"
    assert memmap_ext4["longterm-pin"] == "EOPNOTSUPP"
    devdax = {o.operation: o.outcome for o in obs if o.scenario.mode == "devdax"}
    assert devdax["longterm-pin"] == "ok" and devdax["fork-cow"] == "EINVAL"


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Second configuration group: two memmap ranges and two NVDIMM fsdax namespaces (the default for
    the two-device suites)."""
    runs = tmp_path_factory.mktemp("runs")
    result = pmemkit("--suite", "d2d,raid", "--fs", "ext4,xfs", runs_dir=runs)
    return result, only_run_dir(runs, result)


def test_pair_run_succeeds(pair_run):
    result, run_dir = pair_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RAID and device-mapper stacks" in (run_dir / "report.html").read_text()  # a folded section


def test_device_to_device_copies_are_verified(pair_run):
    obs = [o for o in observations(pair_run[1]) if o.experiment == "d2d"]
    assert {o.device for o in obs} == {"/dev/pmem2+/dev/pmem3", "/dev/pmem0+/dev/pmem1"}
    for o in obs:
        if o.outcome == "ok":
            assert o.metrics["rows"] and all(r["verified"] for r in o.metrics["rows"]), o.to_dict()
        else:  # a refused path is recorded with the kernel's errno, never a crash
            assert o.outcome in ("EINVAL", "EXDEV", "EOPNOTSUPP"), o.to_dict()
    ok_paths = {o.operation for o in obs if o.outcome == "ok"}
    assert {
        "d2d-blockdev-odirect-anon",
        "d2d-blockdev-splice",
        "d2d-blockdev-buffered",
        "d2d-ext4-dax-odirect-dax-buffer",
    } <= ok_paths


def test_stacks_hide_or_pass_dax_as_the_kernel_decides(pair_run):
    obs = [o for o in observations(pair_run[1]) if o.experiment == "raid"]
    assert not [o for o in obs if o.operation in ("stack-build", "stack-teardown")], (
        "a stack failed or leaked"
    )
    for o in obs:
        stack = o.scenario.stack
        if o.operation == "stack-queue-dax":
            assert o.metrics["queue_dax"] is stack.startswith("dm-"), o.to_dict()
        if o.operation == "dax-mount":
            expected = (
                "ok" if stack.startswith("dm-") else {"ext4": "EINVAL", "xfs": "fallback"}[o.scenario.fs]
            )
            assert o.outcome == expected, o.to_dict()
        if o.operation == "stack-copy":
            assert o.outcome == "ok" and o.metrics["stack"]["verified"], o.to_dict()
    assert len([o for o in obs if o.operation == "stack-copy"]) == 8  # 2 pairs × 4 stacks


def test_model_agrees_on_stacks(pair_run):
    predictor = default_predictor()
    compared = [(o, predictor(o)) for o in observations(pair_run[1]) if o.operation == "dax-mount"]
    compared = [(o, p) for o, p in compared if p is not None]
    assert len(compared) >= 20
    for o, p in compared:
        assert p.outcome == o.outcome, (o.to_dict(), p.rule)
