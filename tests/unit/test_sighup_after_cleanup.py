"""A terminal that closes sends SIGHUP more than once. The first ends the session's qemu (the
guard's clean-up); a second one that comes after the clean-up, while pmemkit writes its line and
exits, must not kill it: `pmemkit shell`/`exec` still exit 129 with one line, the console log kept.

The pmemkit program runs in a child process (the signals are real); only the boot is a stand-in
(`vm.run.boot_and_collect`), which takes the first SIGHUP through the real SignalGuard as the real
boot does. The second SIGHUP is sent while the error line is being written.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pmemkit.vm import lifecycle

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = textwrap.dedent(
    """
    import dataclasses, os, signal, sys, time
    from pathlib import Path

    import click

    from pmemkit import pipeline
    from pmemkit.cli import main
    from pmemkit.vm import run as vm_run
    from pmemkit.vm.boot import BootResult
    from pmemkit.vm.lifecycle import Interrupted

    runs = Path(sys.argv[2])

    def boot_and_collect(checked, layout, progress, guard, session=None, relay=None):
        run_dir = runs / "20261207-000000"
        run_dir.mkdir(parents=True)
        (run_dir / "guest-console.log").write_text("PMEMKIT-PHASE python 1.0\\n")
        guard.hold()
        os.kill(os.getpid(), signal.SIGHUP)  # the terminal hangs up while the guest runs
        while guard.received is None:
            time.sleep(0.01)
        boot = BootResult(returncode=None, timed_out=False, elapsed_s=1.0, phases={"qemu": 0.0})
        try:
            guard.release()
        except Interrupted as exc:
            boot.interrupted = exc.signum.name
        guard.hold()
        return vm_run.Collected(run_dir, boot, {}, None, [], None)

    def checked(options):
        values = {f.name: getattr(options, f.name) for f in dataclasses.fields(vm_run.RunOptions)}
        return pipeline.Checked(**values, layout=None)

    real_echo = click.echo

    def echo(message=None, *args, **kwargs):
        if str(message).startswith("pmemkit: error:"):
            os.kill(os.getpid(), signal.SIGHUP)  # the closing terminal's second hang-up
            time.sleep(0.5)
        return real_echo(message, *args, **kwargs)

    vm_run.boot_and_collect = boot_and_collect
    pipeline.check = checked
    click.echo = echo
    command = sys.argv[1]
    sys.argv = ["pmemkit", command, "--pmem", "memmap:256M", "--runs-dir", str(runs)]
    sys.argv += ["--", "true"] if command == "exec" else []
    main()
    """
)


@pytest.mark.parametrize("command", ["shell", "exec"])
def test_a_second_sighup_after_the_cleanup_still_exits_129_with_results_kept(tmp_path, command):
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, command, str(runs)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != -signal.SIGHUP, "killed by the second SIGHUP"
    assert proc.returncode == 129, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pmemkit: error:")]
    run_dir = runs / "20261207-000000"
    assert errors == [
        f"pmemkit: error: interrupted by SIGHUP: qemu was stopped; the console log is kept in {run_dir}"
    ]
    assert (run_dir / "guest-console.log").read_text() == "PMEMKIT-PHASE python 1.0\n"


def test_an_in_process_caller_gets_its_handlers_back_after_a_signal():
    """Only the program ignores later signals: a library caller's (and pytest's) handlers return."""
    assert not lifecycle._program_exits  # pytest called no `main()` without args
    before = {sig: signal.getsignal(sig) for sig in lifecycle.HANDLED}
    with pytest.raises(lifecycle.Interrupted), lifecycle.SignalGuard():
        signal.raise_signal(signal.SIGHUP)
    assert {sig: signal.getsignal(sig) for sig in lifecycle.HANDLED} == before
