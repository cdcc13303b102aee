"""Signals to a real `pmemkit run` (TCG guest): qemu ends, scratch is emptied, partial results stay.

Each test boots once, waits until the guest's python is running (its `PMEMKIT-PHASE python`
marker in guest-console.log), then signals. The guest hangs on purpose (`--inject-fault hang`) so
only the signal can end the run. The cache is private apart from the shared images, so "nothing
left in scratch/" is exact even while other runs share the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pmemkit.vm.image import cache_dir
from tests.vm.helpers import pmemkit_argv, qemu_of, start

pytestmark = pytest.mark.vm

RUN_ARGS = ("--pmem", "memmap:256M", "--suite", "smoke", "--fs", "ext4", "--inject-fault", "hang")


class Run:
    """One `pmemkit run` in the background with a private cache and runs directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.cache = tmp_path / "cache"
        self.cache.mkdir()
        (self.cache / "images").symlink_to(cache_dir() / "images")  # the built image is shared
        self.runs = tmp_path / "runs"
        self.stderr_path = tmp_path / "stderr.txt"
        argv = pmemkit_argv("run", self.runs, *RUN_ARGS, "--timeout", "600")
        env = {**os.environ, "PMEMKIT_CACHE": str(self.cache)}
        with open(self.stderr_path, "wb") as err:  # ended with the test at the latest (tests/vm/conftest.py)
            self.proc = start(argv, self.runs, stdout=subprocess.DEVNULL, stderr=err, env=env)

    @property
    def run_dir(self) -> Path:
        dirs = [p for p in self.runs.iterdir() if p.is_dir()] if self.runs.exists() else []
        assert len(dirs) <= 1, dirs
        return dirs[0].resolve() if dirs else Path("/nonexistent")

    def wait_for_guest_python(self, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            console = self.run_dir / "guest-console.log"
            if console.exists() and "PMEMKIT-PHASE python" in console.read_text(errors="replace"):
                return
            time.sleep(0.5)
        self.proc.kill()
        pytest.fail(f"the guest never reached python: {self.stderr_path.read_text()[-3000:]}")

    def finish(self, timeout_s: float = 120) -> str:
        try:
            self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.stderr_path.read_text()

    def assert_nothing_left(self) -> None:
        assert not qemu_of(self.run_dir)
        assert list((self.cache / "scratch").iterdir()) == []
        for name in ("report.md", "guest-console.log", "dmesg.txt", "environment.json"):
            assert (self.run_dir / name).is_file(), name


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("pmemkit: error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_to_run_ends_qemu_and_reports(tmp_path, sig, code):
    run = Run(tmp_path)
    run.wait_for_guest_python()
    assert qemu_of(run.run_dir), "no qemu found for the run: the assertions below would prove nothing"
    run.proc.send_signal(sig)
    stderr = run.finish()
    assert run.proc.returncode == code, stderr[-3000:]
    error = one_error_line(stderr)
    assert error.startswith(f"pmemkit: error: interrupted by {sig.name}: qemu was stopped"), error
    assert str(run.run_dir) in error
    run.assert_nothing_left()
    assert f"interrupted by {sig.name}" in (run.run_dir / "report.md").read_text()


def test_sigkill_of_qemu_ends_the_run_with_exit_6_and_nothing_left(tmp_path):
    run = Run(tmp_path)
    run.wait_for_guest_python()
    (qemu,) = qemu_of(run.run_dir)
    qemu.send_signal(signal.SIGKILL)
    stderr = run.finish()
    assert run.proc.returncode == 6, stderr[-3000:]
    assert one_error_line(stderr).startswith("pmemkit: error: the guest ended before finishing")
    run.assert_nothing_left()
