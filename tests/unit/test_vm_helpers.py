"""tests/vm/helpers.py ends a pmemkit child and its qemu when the test times out or pytest is stopped.

A dummy process tree stands in for `pmemkit run`: a child that ignores SIGTERM (the worst case: a
pmemkit stuck before its own clean-up) and a grandchild in a session of its own whose argv[0] is
`qemu-system-…` and whose command line names the runs directory, as a real qemu's does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.vm import helpers

ROOT = Path(__file__).resolve().parents[2]
#: The stand-in for pmemkit: starts its "qemu" (own session), writes its pid, then hangs on.
CHILD = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    where, pid_file = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    qemu = subprocess.Popen(
        ["qemu-system-fake", "-c", "import time; time.sleep(600)", where + "/RUN/guest"],
        executable=sys.executable,
        start_new_session=True,
    )
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(qemu.pid))
    import os; os.rename(pid_file + ".tmp", pid_file)
    time.sleep(600)
    """
)


def _wait_for(path: Path, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return int(path.read_text())


def _gone(pid: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_timeout_ends_the_child_and_its_qemu(tmp_path, monkeypatch):
    monkeypatch.setattr(helpers, "GRACE_S", 0.5)
    pid_file = tmp_path / "qemu.pid"
    argv = [sys.executable, "-c", CHILD, str(tmp_path), str(pid_file)]
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        helpers.run(argv, tmp_path, timeout=5)
    qemu = _wait_for(pid_file, 0)
    try:
        assert _gone(qemu, 5), "the child's qemu outlived the timeout"
        assert not helpers.qemu_of(tmp_path)
        assert time.monotonic() - started < 30
    finally:
        _kill(qemu)


def test_sigterm_to_pytest_ends_its_pmemkit_child_and_that_childs_qemu(tmp_path):
    """A stand-in for pytest (the helpers' handlers installed, as tests/vm/conftest.py does) runs the
    dummy tree and is sent SIGTERM: it must end the tree, then still die of SIGTERM."""
    pid_file = tmp_path / "qemu.pid"
    child_pid_file = tmp_path / "child.pid"
    fake_pytest = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.vm import helpers
        helpers.GRACE_S = 0.5
        helpers.install_signal_handlers()
        argv = [sys.executable, "-c", {CHILD!r}, {str(tmp_path)!r}, {str(pid_file)!r}]
        with helpers.started(argv, {str(tmp_path)!r}) as proc:
            open({str(child_pid_file)!r}, "w").write(str(proc.pid))
            proc.wait()
        """
    )
    runner = subprocess.Popen([sys.executable, "-c", fake_pytest], start_new_session=True)
    qemu = child = None
    try:
        qemu = _wait_for(pid_file)
        child = _wait_for(child_pid_file)
        assert not _gone(qemu, 0.2) and not _gone(child, 0.2)  # the tree runs: the test can fail
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == -signal.SIGTERM  # it still dies of the signal
        assert _gone(child, 5), "pytest's pmemkit child outlived pytest"
        assert _gone(qemu, 5), "the child's qemu outlived pytest"
    finally:
        runner.kill()
        for pid in (qemu, child):
            if pid is not None:
                _kill(pid)
