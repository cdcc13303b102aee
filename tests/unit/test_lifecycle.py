"""Signals become one exception, old handlers come back, and no child process group outlives a run.

Host only, with dummy children (`sleep` in their own session) and a fake qemu: milliseconds to a
few seconds, no VM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from pmemkit import pipeline
from pmemkit.cli import main
from pmemkit.scenario import PmemConfig
from pmemkit.vm import layers
from pmemkit.vm import run as run_mod
from pmemkit.vm.errors import GuestFailure, RunInterrupted
from pmemkit.vm.image import GuestImage
from pmemkit.vm.kernels import KernelLayer
from pmemkit.vm.lifecycle import HANDLED, Interrupted, ProcessGroups, SignalGuard, end_group


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _wait_for_members(pgid: int, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(_group_members(pgid)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_group_members(pgid)) >= count


def _live_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]


def _group_with_grandchild() -> subprocess.Popen[bytes]:
    """A leader in its own session with a child of its own: both must go."""
    proc = subprocess.Popen(["sh", "-c", "sleep 1000 & sleep 1000; wait"], start_new_session=True)
    _wait_for_members(proc.pid, 3)
    return proc


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_each_signal_becomes_interrupted_with_its_exit_code(sig, code):
    with pytest.raises(Interrupted) as caught, SignalGuard():
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler raises in here, long before this ends
    assert caught.value.signum == sig and caught.value.exit_code == code


def test_old_handlers_are_restored_on_every_exit():
    def mine(signum, frame):
        return None

    old = {sig: signal.signal(sig, mine) for sig in HANDLED}
    try:
        with SignalGuard():
            assert all(signal.getsignal(sig) != mine for sig in HANDLED)
        assert all(signal.getsignal(sig) is mine for sig in HANDLED)
        with pytest.raises(Interrupted), SignalGuard():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert all(signal.getsignal(sig) is mine for sig in HANDLED)
        with pytest.raises(ValueError), SignalGuard():
            raise ValueError("any other failure")
        assert all(signal.getsignal(sig) is mine for sig in HANDLED)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def test_a_held_signal_is_raised_on_release_and_later_ones_do_not_cut_the_cleanup():
    with SignalGuard() as guard:
        guard.hold()
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)  # delivered, recorded, not raised
        assert guard.received == signal.SIGHUP
        with pytest.raises(Interrupted) as caught:
            guard.release()
        assert caught.value.signum == signal.SIGHUP
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal during the cleanup: ignored
        time.sleep(0.05)
    assert guard.received == signal.SIGHUP


def test_a_held_signal_never_released_is_still_raised_on_exit():
    with pytest.raises(Interrupted) as caught, SignalGuard() as guard:
        guard.hold()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert caught.value.signum == signal.SIGTERM


def test_leaving_the_guard_by_a_signal_ends_every_registered_group():
    children = ProcessGroups()
    procs = [_group_with_grandchild(), _group_with_grandchild()]
    members = {p.pid: [m.pid for m in _group_members(p.pid)] for p in procs}
    with pytest.raises(Interrupted), SignalGuard(children=children):
        for proc in procs:
            children.add(proc)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert len(children) == 0
    for proc in procs:
        assert proc.returncode is not None and not _group_members(proc.pid), members
    assert not _live_children()


def test_end_group_escalates_to_sigkill_when_sigterm_is_ignored():
    script = "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
    script += "time.sleep(1000)\n"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    start = time.monotonic()
    assert end_group(proc, grace_s=0.3)
    assert proc.returncode == -signal.SIGKILL and time.monotonic() - start < 5
    assert not _group_members(proc.pid) and not _live_children()
    proc.stdout.close()


def test_end_group_of_a_finished_child_is_immediate():
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    assert end_group(proc) and proc.returncode == 0


# --- the cli's fallback message: true whatever was running ----------------------------------------


def test_sigint_outside_a_run_names_the_command_and_claims_nothing_else(monkeypatch):
    def interrupted(progress, rebuild=False):
        raise KeyboardInterrupt

    monkeypatch.setattr("pmemkit.vm.image.ensure_image", interrupted)
    result = CliRunner().invoke(main, ["image"])
    assert result.exit_code == 130
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1] == "pmemkit: error: interrupted by SIGINT during `pmemkit image`"
    assert "qemu" not in result.output and "Traceback" not in result.output


# --- run() with a fake qemu: the whole interrupted path on the host, in seconds -------------------

FAKE_QEMU = """#!{python}
import os, sys, time
if "--version" in sys.argv:
    print("QEMU emulator version 0.0 (fake)"); sys.exit(0)
with open(os.environ["FAKE_QEMU_PIDS"], "a") as f:
    f.write(f"{{os.getpid()}}\\n")
print("[    0.000000] Linux version 6.1.0-fake", flush=True)
print("PMEMKIT-PHASE python 1.0", flush=True)
if os.environ.get("FAKE_QEMU_MODE") == "finish":
    print("PMEMKIT-PHASE done rc=0 2.0", flush=True); sys.exit(0)
time.sleep(1000)
"""


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """run() wired to a fake qemu and a fake image; returns (options, cache, pid file)."""
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text(FAKE_QEMU.format(python=sys.executable))
    qemu.chmod(0o755)
    image = tmp_path / "image"
    image.mkdir()
    (image / "manifest.json").write_text(json.dumps({"image_id": "fake"}))
    layers._write_manifest(image, "images", "fake", ())  # a manifest in the layer format of image.py
    cache = tmp_path / "cache"
    pids = tmp_path / "qemu.pids"
    monkeypatch.setenv("PMEMKIT_CACHE", str(cache))
    monkeypatch.setenv("FAKE_QEMU_PIDS", str(pids))
    monkeypatch.setattr(run_mod, "QEMU", str(qemu))
    monkeypatch.setattr(run_mod, "ensure_image", lambda progress: GuestImage("fake", image))
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    (kernel / "config").write_text((Path(__file__).parent / "fixtures" / "kernel-config-pmemkit").read_text())
    (kernel / "manifest.json").write_text(json.dumps({"kernel_release": "6.1.0-fake"}))
    layers._write_manifest(kernel, "kernels", "fake", ())
    monkeypatch.setattr(run_mod, "ensure_kernel", lambda spec, progress: KernelLayer("fake", kernel))
    options = run_mod.RunOptions(
        pmem=[PmemConfig.parse("nvdimm:256M,mode=fsdax")],
        suites=["smoke"],
        filesystems=["ext4"],
        accel="tcg",
        timeout_s=60,
        runs_dir=tmp_path / "runs",
    )
    return options, cache, pids


def _signal_when(sig: signal.Signals, ready) -> threading.Thread:
    def send() -> None:
        deadline = time.monotonic() + 30
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _guest_running(runs_dir: Path):
    def ready() -> bool:
        logs = list(runs_dir.glob("*/guest-console.log")) if runs_dir.exists() else []
        return bool(logs) and "PMEMKIT-PHASE python" in logs[0].read_text()

    return ready


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_during_the_guest_run_ends_qemu_keeps_results_and_reports(fake_run, sig, code):
    options, cache, pids = fake_run
    handlers = {s: signal.getsignal(s) for s in HANDLED}
    sender = _signal_when(sig, _guest_running(options.runs_dir))
    with pytest.raises(RunInterrupted) as caught:
        pipeline.run(options, progress=lambda message: None)
    sender.join()
    assert caught.value.exit_code == code
    message = str(caught.value)
    assert (
        message.startswith(f"interrupted by {sig.name}: qemu was stopped")
        and "backing files removed" in message
    )
    (run_dir,) = options.runs_dir.iterdir()
    assert str(run_dir) in message
    for name in ("report.md", "guest-console.log", "dmesg.txt", "environment.json"):
        assert (run_dir / name).is_file(), name
    assert f"interrupted by {sig.name}" in (run_dir / "report.md").read_text()
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["boot"]["interrupted_by"] == sig.name and env["failure"].startswith(
        f"interrupted by {sig.name}"
    )
    assert "6.1.0-fake" in (run_dir / "dmesg.txt").read_text()  # reconstructed from the console
    assert list((cache / "scratch").iterdir()) == []
    (qemu_pid,) = [int(line) for line in pids.read_text().split()]
    assert not psutil.pid_exists(qemu_pid) and not _live_children()
    assert {s: signal.getsignal(s) for s in HANDLED} == handlers


def test_a_signal_while_the_image_is_checked_says_the_run_had_not_begun(fake_run, monkeypatch):
    options, cache, pids = fake_run

    def slow_image(progress):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("the signal did not interrupt")

    monkeypatch.setattr(run_mod, "ensure_image", slow_image)
    with pytest.raises(RunInterrupted) as caught:
        pipeline.run(options, progress=lambda message: None)
    assert caught.value.exit_code == 143
    assert str(caught.value).startswith("interrupted by SIGTERM while checking (or building) the guest image")
    assert not options.runs_dir.exists() and not pids.exists()


def test_a_signal_after_the_guest_finished_completes_the_report_first(fake_run, monkeypatch):
    options, cache, pids = fake_run
    monkeypatch.setenv("FAKE_QEMU_MODE", "finish")
    real_collect = run_mod._collect  # the step after the boot: the guest's files copied into RUN/

    def signal_while_reporting(run_dir):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        return real_collect(run_dir)

    monkeypatch.setattr(run_mod, "_collect", signal_while_reporting)
    with pytest.raises(RunInterrupted) as caught:
        pipeline.run(options, progress=lambda message: None)
    assert caught.value.exit_code == 143 and "report was completed" in str(caught.value)
    (run_dir,) = options.runs_dir.iterdir()
    assert (run_dir / "report.md").is_file()


def test_a_clean_fake_run_is_not_an_interruption(fake_run, monkeypatch):
    options, cache, pids = fake_run
    monkeypatch.setenv("FAKE_QEMU_MODE", "finish")
    result = pipeline.run(options, progress=lambda message: None)
    assert result.boot.finished and result.boot.interrupted is None
    assert list((cache / "scratch").iterdir()) == []


def test_a_killed_fake_qemu_is_a_guest_failure_not_an_interruption(fake_run):
    options, cache, pids = fake_run

    def kill_qemu() -> None:
        deadline = time.monotonic() + 30
        while not (_guest_running(options.runs_dir)() and pids.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(pids.read_text().split()[0]), signal.SIGKILL)

    killer = threading.Thread(target=kill_qemu, daemon=True)
    killer.start()
    with pytest.raises(GuestFailure) as caught:
        pipeline.run(options, progress=lambda message: None)
    killer.join()
    assert not isinstance(caught.value, RunInterrupted) and caught.value.exit_code == 6
    assert "ended before finishing" in str(caught.value)
    assert list((cache / "scratch").iterdir()) == []
