import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil

from pmemkit.vm.accel import AccelChoice, choose_accel, kvm_usable_reason
from pmemkit.vm.boot import BootResult, boot, parse_console_line
from pmemkit.vm.lifecycle import SignalGuard
from pmemkit.vm.run import failure_message


def test_console_phases_progress_and_rc():
    r = BootResult(None, False, 0.0)
    assert parse_console_line("[    0.000000] Linux version 6.1.0-56-amd64 (x)", 1.3, r) is None
    assert r.phases["kernel"] == 1.3
    assert "init" in parse_console_line("PMEMKIT-PHASE init 2.10", 2.5, r)
    assert parse_console_line("PMEMKIT-STEP preparing 2 pmem device(s)", 3, r) == "preparing 2 pmem device(s)"
    assert parse_console_line("PMEMKIT-OBS 1 memmap raw ext4 dax-mount: ok", 4, r).startswith("observed")
    parse_console_line("PMEMKIT-PHASE done rc=1 9.0", 9.5, r)
    assert r.guest_rc == 1 and r.finished
    parse_console_line("[ 9.9] Kernel panic - not syncing: sysrq triggered crash", 10, r)
    assert "sysrq" in r.panic


def test_failure_messages():
    ok = BootResult(0, False, 5.0, phases={"done": 5.0}, guest_rc=0)
    assert failure_message(ok, 60) is None
    assert "within 60 s" in failure_message(BootResult(None, True, 60.0), 60)
    assert "panicked" in failure_message(BootResult(0, False, 3, panic="Kernel panic - x"), 60)
    killed = BootResult(-9, False, 3.0, phases={"init": 2.0}, stderr="qemu: terminating on signal 15")
    assert "before finishing" in failure_message(killed, 60) and "signal 15" in failure_message(killed, 60)
    assert "failed steps" in failure_message(BootResult(0, False, 5, phases={"done": 5}, guest_rc=1), 60)


def test_boot_kills_on_timeout_and_keeps_console(tmp_path):
    script = "import time,sys\nprint('PMEMKIT-PHASE init 0.1', flush=True)\ntime.sleep(60)\n"
    start = time.monotonic()
    result = boot(
        [sys.executable, "-c", script], tmp_path / "console.log", timeout_s=1.5, progress=lambda m: None
    )
    assert result.timed_out and time.monotonic() - start < 20
    assert "PMEMKIT-PHASE init" in (tmp_path / "console.log").read_text()
    assert "init" in result.phases


def test_boot_clean_exit(tmp_path):
    script = "print('PMEMKIT-PHASE done rc=0 1.0', flush=True)"
    result = boot([sys.executable, "-c", script], tmp_path / "c.log", timeout_s=30, progress=lambda m: None)
    assert result.returncode == 0 and result.finished and result.guest_rc == 0


def test_kvm_reason_without_vmx(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2\n")
    kvm = tmp_path / "kvm"
    assert "does not exist" in kvm_usable_reason(cpuinfo, kvm)
    kvm.write_text("")
    assert "vmx/svm" in kvm_usable_reason(cpuinfo, kvm)
    cpuinfo.write_text("flags\t\t: fpu vmx\n")
    assert kvm_usable_reason(cpuinfo, kvm) is None


def test_choose_tcg_needs_no_probe(tmp_path):
    assert choose_accel("tcg", "/nonexistent/qemu", tmp_path / "vmlinux") == AccelChoice(
        "tcg", "requested --accel tcg"
    )


def test_a_full_disk_stops_the_console_log_not_the_run(tmp_path):
    """/dev/full answers every write with ENOSPC: the reader must keep parsing to the `done` marker."""
    script = (
        "import sys\nfor i in range(2000): print('[ %d.0] kernel line' % i, flush=True)\n"
        "print('PMEMKIT-PHASE done rc=0 9.0', flush=True)\n"
    )
    result = boot([sys.executable, "-c", script], Path("/dev/full"), timeout_s=30, progress=lambda m: None)
    assert result.finished and result.guest_rc == 0 and result.returncode == 0
    assert "No space left on device" in result.console_error


def test_a_signal_during_boot_ends_the_whole_group_and_says_which(tmp_path):
    script = (
        "import subprocess,time\nsubprocess.Popen(['sleep', '1000'])\n"
        "print('PMEMKIT-PHASE python 0.1', flush=True)\ntime.sleep(1000)\n"
    )
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    start = time.monotonic()
    with SignalGuard() as guard:
        result = boot([sys.executable, "-c", script], tmp_path / "c.log", 60, lambda m: None, guard)
    assert result.interrupted == "SIGTERM" and guard.received == signal.SIGTERM
    assert time.monotonic() - start < 15 and "python" in result.phases and result.qemu_left is None
    assert len(guard.children) == 0
    assert not [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert "interrupted by SIGTERM" in failure_message(result, 60)
