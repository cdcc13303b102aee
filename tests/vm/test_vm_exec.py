"""`pmemkit exec`, `pmemkit shell` and `run --target local` against the real guest (TCG).

One boot per test, each on the smallest device (memmap:256M, ext4): the command's output, its exit
status, a static binary copied in, a shell under a pseudo-terminal, the local target run inside
the guest, and a signal; after every one of them no qemu of the run is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from pmemkit.vm.image import cache_dir
from tests.vm.helpers import only_run_dir, pmemkit_argv, qemu_of, records, run, started

pytestmark = pytest.mark.vm

DEVICE = ("--pmem", "memmap:256M", "--fs", "ext4")
PROMPT = r"pmemkit-guest:\S*# "
HELLO_C = (
    '#include <stdio.h>\nint main(int c, char **v) { printf("hello from a static binary, argc=%d\\n", c); }\n'
)


def pmemkit(command: str, *args: str, runs: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return run(pmemkit_argv(command, runs, *args), runs, timeout)


@pytest.fixture(scope="module")
def static_binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str]:
    """(file, how to run it in the guest, what it prints): built with `gcc -static` when the host has
    gcc, else the host's static busybox (scripts/install-host-deps.sh installs busybox-static)."""
    where = tmp_path_factory.mktemp("bin")
    if shutil.which("gcc"):
        source = where / "hello.c"
        source.write_text(HELLO_C)
        binary = where / "hello-static"
        subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(source)], check=True)
        return binary, ["./hello-static", "one", "two"], "hello from a static binary, argc=3"
    busybox = shutil.which("busybox")
    assert busybox, "neither gcc nor busybox on the host: no static binary to copy in"
    binary = where / "busybox-static"
    shutil.copy(busybox, binary)
    return binary, ["./busybox-static", "echo", "hello from busybox"], "hello from busybox"


def test_exec_prints_the_dax_mount_and_kernel_and_runs_a_copied_in_binary(tmp_path, static_binary):
    binary, run_it, expected = static_binary
    script = f"grep dax /proc/mounts; uname -r; {' '.join(run_it)}; echo to-stderr >&2"
    result = pmemkit("exec", *DEVICE, "--copy-in", str(binary), "--", "sh", "-c", script, runs=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path)
    kernel = json.loads((run_dir / "environment.json").read_text())["kernel"]["kernel_release"]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("/dev/pmem0 /mnt/pmemkit/pmem0-ext4 ext4 "), result.stdout
    assert "dax=always" in lines[0].split()[3].split(",")
    assert lines[1] == kernel
    assert lines[2] == expected
    assert "to-stderr" in result.stderr.splitlines()
    assert "to-stderr" not in result.stdout
    assert "Traceback" not in result.stderr
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["session"]["argv"] == ["sh", "-c", script]
    assert not qemu_of(run_dir)


def test_exec_false_exits_1(tmp_path):
    result = pmemkit("exec", *DEVICE, "--", "false", runs=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout == ""
    assert "pmemkit: error" not in result.stderr
    assert not qemu_of(only_run_dir(tmp_path))


def test_run_target_local_inside_the_guest(tmp_path):
    local = (
        'pmemkit run --target local --device "$PMEMKIT_PMEM0_DEV" --suite smoke --fs ext4 '
        '--runs-dir "$PMEMKIT_OUT/runs"'
    )
    script = f"{local}; echo refused=$?; {local} --destroy-data --json; echo ran=$?"
    result = pmemkit("exec", "--pmem", "memmap:256M", "--no-mount", "--", "sh", "-c", script, runs=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    first, _, rest = result.stdout.partition("\n")
    assert first == "refused=7"
    assert "rule 'user-named'" in result.stderr and "add --destroy-data" in result.stderr
    rest, _, ran = rest.rstrip("\n").rpartition("\n")
    summary = json.loads(rest)
    assert summary["ok"] is True and summary["observations"] >= 1
    # pmemkit's guest runs pmemkit from source with Debian's python3 and no matplotlib/markdown: the
    # local run keeps its observations and says, in one line with exit 4, how to render the report.
    assert ran == "ran=4", result.stderr[-3000:]
    assert summary["report"] is None
    assert "report not rendered: matplotlib markdown not installed here" in result.stderr
    assert "Traceback" not in result.stderr
    run_dir = only_run_dir(tmp_path)
    (local_run,) = (run_dir / "guest" / "out" / "runs").iterdir()
    observations = records(local_run)
    assert len(observations) == summary["observations"]
    mounts = [o for o in observations if o["operation"] == "dax-mount"]
    assert [(o["device"], o["outcome"]) for o in mounts] == [("/dev/pmem0", "ok")]
    assert all(o["provenance"]["accel"] == "local" for o in observations)
    assert all(o["provenance"]["emulation"].startswith("--target local") for o in observations)
    assert not (local_run / "report.md").exists()
    rendered = subprocess.run(
        [sys.executable, "-m", "pmemkit", "report", str(local_run)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rendered.returncode == 0, rendered.stderr[-3000:]  # rendered here, where the modules are
    assert "--target local" in (local_run / "report.md").read_text()
    assert json.loads((local_run / "environment.json").read_text())["target"] == "local"
    assert not qemu_of(run_dir)


def test_shell_under_a_pty_runs_a_command_and_exit_powers_the_guest_off(tmp_path):
    argv = ["-m", "pmemkit", "shell", "--accel", "tcg", "--runs-dir", str(tmp_path), *DEVICE]
    env = {**os.environ, "COLUMNS": "77", "LINES": "11"}  # stale: the terminal's own size counts
    child = pexpect.spawn(sys.executable, argv, timeout=600, encoding="utf-8", dimensions=(40, 120), env=env)
    child.logfile_read = open(tmp_path / "terminal.log", "w")  # noqa: SIM115 (closed with the child)
    try:
        child.expect(PROMPT)  # the boot: minutes on a loaded machine
        assert "/dev/pmem0 (raw), ext4 at /mnt/pmemkit/pmem0-ext4, DAX ok" in child.before
        child.sendline("echo sum=$((6*7)); stty size; echo $PMEMKIT_DAX_MOUNTS")
        child.expect(r"sum=42\r\n(\d+ \d+)\r\n(\S*)\r\n", timeout=60)
        assert child.match.group(1) == "40 120"  # the guest's terminal has the size of ours
        assert child.match.group(2) == "/mnt/pmemkit/pmem0-ext4"
        child.expect(PROMPT, timeout=60)
        child.sendline("exit 4")
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close(force=True)
        child.logfile_read.close()
    assert child.exitstatus == 4, child.before
    assert not qemu_of(only_run_dir(tmp_path))


def test_sigterm_to_exec_ends_qemu_and_empties_scratch(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    for shared in ("images", "kernels", "apt"):  # built layers are shared; scratch/ is this run's alone
        (cache / shared).symlink_to(cache_dir() / shared)
    runs = tmp_path / "runs"
    argv = pmemkit_argv("exec", runs, "--pmem", "memmap:256M", "--no-mount", "--", "sleep", "600")
    env = {**os.environ, "PMEMKIT_CACHE": str(cache)}
    with (
        open(tmp_path / "stderr", "wb") as err,
        started(argv, runs, stdout=subprocess.DEVNULL, stderr=err, env=env) as proc,
    ):
        deadline = time.monotonic() + 600
        console = Path("/nonexistent")
        while time.monotonic() < deadline and proc.poll() is None:
            dirs = list(runs.glob("*/guest-console.log"))
            console = dirs[0] if dirs else console
            if console.exists() and "not mounted" in console.read_text(errors="replace"):
                break
            time.sleep(0.5)
        run_dir = console.parent.resolve()
        assert qemu_of(run_dir), (tmp_path / "stderr").read_text()[-3000:]
        time.sleep(2)  # sleep(1) has started in the guest
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    stderr = (tmp_path / "stderr").read_text()
    assert proc.returncode == 143, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("pmemkit: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "pmemkit: error: interrupted by SIGTERM: qemu was stopped"
    )
    assert "Traceback" not in stderr
    assert not qemu_of(run_dir)
    assert list((cache / "scratch").iterdir()) == []
