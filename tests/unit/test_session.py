"""`pmemkit exec`/`shell` without a VM: the console framing both ways, the relays, --copy-in staging,
the guest's command runner and environment, and the CLI's refusals (one line, exit 2)."""

from __future__ import annotations

import base64
import io
import os
import signal
import sys
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from pmemkit.cli import main
from pmemkit.guest import session as guest_session
from pmemkit.plan import Placement, Plan
from pmemkit.rundir import RunDirError
from pmemkit.scenario import PmemConfig, ScenarioError
from pmemkit.vm.boot import boot
from pmemkit.vm.errors import VmConfigError
from pmemkit.vm.session import (
    CopyIn,
    ExecRelay,
    SessionSpec,
    ShellRelay,
    check_copy_ins,
)


def frame(stream: int, data: bytes) -> str:
    return f"PMEMKIT-OUT{stream} " + base64.b64encode(data).decode()


# -- the exec relay ------------------------------------------------------------------------------


def test_exec_relay_splits_frames_into_stdout_and_stderr_and_keeps_the_status():
    out, err = io.BytesIO(), io.BytesIO()
    relay = ExecRelay(out, err)
    assert relay.line(frame(1, b"hello\n"))
    assert relay.line(frame(2, b"oops\n"))
    assert relay.line(frame(1, b"\x00\xffbinary"))
    assert relay.line("PMEMKIT-EXIT 3")
    assert not relay.line("PMEMKIT-STEP preparing 1 pmem device(s)")  # progress, not the command's
    assert out.getvalue() == b"hello\n\x00\xffbinary"
    assert err.getvalue() == b"oops\n"
    assert relay.status == 3


@pytest.mark.parametrize("line", ["PMEMKIT-EXIT 256", "PMEMKIT-EXIT -1", "PMEMKIT-EXIT x", "PMEMKIT-EXIT "])
def test_exec_relay_takes_only_a_status_of_0_to_255(line):
    relay = ExecRelay(io.BytesIO(), io.BytesIO())
    assert relay.line(line)
    assert relay.status is None


def test_exec_relay_keeps_the_first_status_and_counts_garbled_frames():
    out = io.BytesIO()
    relay = ExecRelay(out, io.BytesIO())
    relay.line("PMEMKIT-EXIT 1")
    relay.line("PMEMKIT-EXIT 0")
    assert relay.line("PMEMKIT-OUT1 not*base64")
    assert relay.status == 1
    assert relay.bad_frames == 1
    assert out.getvalue() == b""


# -- the shell relay -----------------------------------------------------------------------------


def shell_relay() -> tuple[ShellRelay, io.BytesIO, list[str]]:
    out = io.BytesIO()
    began: list[str] = []
    return ShellRelay(out, stdin_fd=-1, on_begin=lambda: began.append("raw")), out, began


def test_shell_relay_shows_only_what_is_between_the_markers():
    relay, out, began = shell_relay()
    relay.raw(b"PMEMKIT-STEP mounting\r\nPMEMKIT-SHELL-BEGIN\r\nbanner\r\nguest# ")
    assert out.getvalue() == b"banner\r\nguest# "  # the prompt, with no newline, is shown at once
    assert began == ["raw"]
    relay.raw(b"ls\r\nfile\r\nguest# exit\r\n\r\r\nPMEMKIT-SHELL-END 0\r\nPMEMKIT-PHASE done rc=0 9.1\r\n")
    assert out.getvalue() == b"banner\r\nguest# ls\r\nfile\r\nguest# exit"
    assert began == ["raw"]


def test_shell_relay_finds_markers_split_across_chunks():
    relay, out, _ = shell_relay()
    for piece in (b"PMEMKIT-SHE", b"LL-BEGIN\r", b"\nab", b"c\r\nPMEMK", b"IT-SHELL-E", b"ND 3\r\n"):
        relay.raw(piece)
    assert out.getvalue() == b"abc\r\n"  # shown before the marker began; the marker never is


def test_shell_relay_lines_claim_the_shell_and_read_its_status():
    relay, _, _ = shell_relay()
    assert not relay.line("PMEMKIT-STEP memmap:256M: /dev/pmem0 ext4 at /mnt/pmemkit/pmem0-ext4")
    assert relay.line("PMEMKIT-SHELL-BEGIN")
    assert relay.line("Kernel panic typed by the user")  # the user's line: no panic of the guest's
    assert relay.line("PMEMKIT-SHELL-END 7")
    assert relay.status == 7
    assert not relay.line("PMEMKIT-PHASE done rc=0 3.0")


def test_shell_relay_feeds_typed_bytes_and_ends_the_guest_on_ctrl_bracket(monkeypatch):
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"echo hi\n")
    os.close(write_fd)
    relay = ShellRelay(io.BytesIO(), stdin_fd=read_fd)
    relay.raw(b"PMEMKIT-SHELL-BEGIN\r\n")  # nothing is fed before the shell is there
    sink = io.BytesIO()
    relay.feed(sink)
    assert sink.getvalue() == b"echo hi\n\x04"  # the end of the input is a Ctrl-D to the shell
    assert sent == []
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"a\x1db")
    relay = ShellRelay(io.BytesIO(), stdin_fd=read_fd)
    relay.begun.set()
    relay.feed(io.BytesIO())
    os.close(write_fd)
    os.close(read_fd)
    assert relay.escaped
    assert sent == [(os.getpid(), signal.SIGINT)]


# -- boot() with a relay, qemu played by a shell script --------------------------------------------


def test_boot_hands_framed_lines_to_the_relay_and_keeps_them_out_of_progress(tmp_path):
    script = "; ".join(
        [
            "echo 'PMEMKIT-STEP preparing'",
            f"echo '{frame(1, b'out line')}'",
            f"echo '{frame(2, b'err line')}'",
            "echo 'PMEMKIT-EXIT 4'",
            "echo 'PMEMKIT-PHASE done rc=0 1.0'",
        ]
    )
    out, err, progress = io.BytesIO(), io.BytesIO(), []
    relay = ExecRelay(out, err)
    result = boot(["sh", "-c", script], tmp_path / "console.log", 30, progress.append, relay=relay)
    assert (out.getvalue(), err.getvalue(), relay.status) == (b"out line", b"err line", 4)
    assert progress[0] == "preparing"
    assert not any("PMEMKIT-OUT" in p or "out line" in p for p in progress)
    assert result.finished and result.guest_rc == 0
    assert "PMEMKIT-EXIT 4" in (tmp_path / "console.log").read_text()


def test_boot_with_a_shell_relay_passes_typed_input_and_a_prompt_without_newline(tmp_path):
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"hello\n")
    script = (
        "echo PMEMKIT-SHELL-BEGIN; printf 'guest# '; read x; echo \"got $x\"; "
        "echo PMEMKIT-SHELL-END 5; echo 'PMEMKIT-PHASE done rc=0 1.0'"
    )
    out = io.BytesIO()
    relay = ShellRelay(out, stdin_fd=read_fd)
    result = boot(["sh", "-c", script], tmp_path / "console.log", 30, lambda m: None, relay=relay)
    os.close(write_fd)
    os.close(read_fd)
    # the newline before the end marker is shown when it comes in a chunk of its own, else dropped
    assert out.getvalue().replace(b"\r", b"").removesuffix(b"\n") == b"guest# got hello"
    assert relay.status == 5
    assert result.finished


# -- --copy-in -----------------------------------------------------------------------------------


def test_copy_ins_are_checked_before_anything_boots(tmp_path):
    binary = tmp_path / "mytest"
    binary.write_bytes(b"\x7fELF")
    binary.chmod(0o750)
    (item,) = check_copy_ins([binary])
    assert (item.name, item.mode, item.size) == ("mytest", 0o750, 4)
    other = tmp_path / "sub"
    other.mkdir()
    (other / "mytest").write_text("x")
    hidden = tmp_path / ".hidden"
    hidden.write_text("x")
    cases = {
        tmp_path: "is not a regular file",
        tmp_path / "missing": "No such file",
        hidden: "must be printable and not start with '.'",
    }
    for path, words in cases.items():
        with pytest.raises(VmConfigError, match=words):
            check_copy_ins([path])
    with pytest.raises(VmConfigError, match="two files named 'mytest'"):
        check_copy_ins([binary, other / "mytest"])


def test_stage_writes_fresh_files_into_the_share(tmp_path):
    source = tmp_path / "t"
    source.write_bytes(b"payload")
    share = tmp_path / "guest"
    share.mkdir()
    SessionSpec("exec", copy_ins=[CopyIn(source, "t", 0o755, 7)]).stage(share)
    assert (share / "copy-in" / "t").read_bytes() == b"payload"
    assert sorted(os.listdir(share / "copy-in")) == ["t"]  # no temp file left


def test_stage_refuses_a_copy_in_directory_planted_as_a_link(tmp_path):
    source = tmp_path / "t"
    source.write_bytes(b"payload")
    share = tmp_path / "guest"
    share.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (share / "copy-in").symlink_to(elsewhere)
    with pytest.raises(RunDirError, match="cannot create"):
        SessionSpec("exec", copy_ins=[CopyIn(source, "t", 0o755, 7)]).stage(share)
    assert list(elsewhere.iterdir()) == []


# -- plan.json's session -------------------------------------------------------------------------


def plan(session: dict | None) -> Plan:
    cfg = PmemConfig("memmap", 256 << 20, start=1 << 30)
    return Plan([], [cfg], placements=[Placement(0, "memmap", memmap_start=1 << 30)], session=session)


def test_a_suite_plan_has_no_session_key_and_a_session_round_trips():
    assert "session" not in plan(None).to_dict()
    spec = SessionSpec("exec", argv=["sh", "-c", "true"], no_mount=True)
    data = plan(spec.plan_field()).to_dict()
    assert Plan.from_dict(data).session == spec.plan_field()
    data["session"] = ["exec"]
    with pytest.raises(ScenarioError, match="not an object"):
        Plan.from_dict(data)


# -- the guest side, run on the host -------------------------------------------------------------


@pytest.fixture
def console(monkeypatch, tmp_path):
    lines: list[str] = []
    monkeypatch.setattr(guest_session, "_console", lines.append)
    monkeypatch.setattr(guest_session, "COPY_IN_DIR", str(tmp_path))
    return lines


def decoded(lines: list[str], stream: int) -> bytes:
    prefix = f"PMEMKIT-OUT{stream} "
    return b"".join(base64.b64decode(line[len(prefix) :]) for line in lines if line.startswith(prefix))


def test_run_command_frames_both_streams_and_returns_the_status(console):
    script = "echo out; echo err >&2; head -c 10000 /dev/zero; exit 3"
    status = guest_session.run_command(["sh", "-c", script], {"PATH": os.environ["PATH"]})
    assert status == 3
    assert decoded(console, 1) == b"out\n" + b"\0" * 10000
    assert decoded(console, 2) == b"err\n"
    assert all(len(line) < 4200 for line in console)  # frames stay short lines


def test_run_command_reports_not_found_and_killed_like_a_shell(console):
    assert guest_session.run_command(["/nonexistent/cmd"], {}) == 127
    assert b"command not found" in decoded(console, 2)
    assert guest_session.run_command([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], {}) == 137


def test_session_env_names_every_device_and_only_dax_mounts():
    def target(index, path, blockdev, mode, fs, mountpoint, dax):
        ns = SimpleNamespace(blockdev=blockdev, mode=mode, map="dev")
        device = SimpleNamespace(
            config=PmemConfig("nvdimm", 512 << 20, mode="fsdax", map="dev"), namespace=ns
        )
        return guest_session.Mounted(index, device, path, fs, mountpoint, dax)

    targets = [
        target(0, "/dev/pmem0", "pmem0", "fsdax", "ext4", "/mnt/pmemkit/pmem0-ext4", "ok"),
        target(1, "/dev/pmem1", "pmem1", "fsdax", "xfs", "/mnt/pmemkit/pmem1-xfs", "fallback"),
        target(2, "/dev/dax2.0", None, "devdax", None, None, "n/a"),
    ]
    env = guest_session.session_env(targets, {"term": "xterm-256color"})
    assert env["PMEMKIT_DAX_MOUNTS"] == "/mnt/pmemkit/pmem0-ext4"
    assert env["PMEMKIT_DAX_DEVICES"] == "/dev/dax2.0"
    assert env["PMEMKIT_PMEM1_DAX"] == "fallback"
    assert env["PMEMKIT_PMEM1_MOUNT"] == "/mnt/pmemkit/pmem1-xfs"
    assert env["PMEMKIT_PMEM2_DEV"] == "/dev/dax2.0"
    assert env["PMEMKIT_PMEM_COUNT"] == "3"
    assert env["TERM"] == "xterm-256color"
    assert guest_session.session_env([], {"term": "x;rm -rf /"})["TERM"] == "vt100"


# -- the commands' refusals ----------------------------------------------------------------------


def one_line_exit(args: list[str], code: int = 2) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pmemkit: error: "), result.output
    return lines[0]


def test_exec_refuses_bad_input_in_one_line(tmp_path):
    assert "Missing argument" in one_line_exit(["exec"])
    assert "is not a regular file" in one_line_exit(["exec", "--copy-in", str(tmp_path), "--", "true"])
    assert "300M" in one_line_exit(["exec", "--pmem", "memmap:256M", "--fs", "xfs", "--", "true"])
    assert "--timeout" in one_line_exit(["exec", "--timeout", "soon", "--", "true"])
    assert "unknown pmem source" in one_line_exit(["shell", "--pmem", "dram:1G"])


@pytest.mark.parametrize("command", ["exec", "shell"])
def test_help_teaches_with_examples(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert f"pmemkit {command} " in result.output.split("Examples:")[1]


def test_run_target_local_refuses_without_its_flags():
    assert "--target local needs the devices" in one_line_exit(["run", "--target", "local"])
    assert "go with --target local" in one_line_exit(["run", "--device", "/dev/pmem0"])
    assert "for the VM only" in one_line_exit(
        ["run", "--target", "local", "--device", "/dev/x", "--pmem", "memmap:1G"]
    )
    assert "--force goes with --destroy-data" in one_line_exit(
        ["run", "--target", "local", "--device", "/dev/x", "--force"]
    )
    refusal = one_line_exit(["run", "--target", "local", "--device", "/dev/pmem0"], code=7)
    assert "add --destroy-data" in refusal


def test_run_target_local_refuses_a_vm_only_suite_before_any_device_is_looked_at(monkeypatch):
    import pmemkit.guest.probe

    monkeypatch.setattr(pmemkit.guest.probe, "namespaces", lambda: pytest.fail("devices were read"))
    refusal = one_line_exit(
        ["run", "--target", "local", "--device", "/dev/pmem0", "--destroy-data", "--suite", "smoke,poison"],
        code=7,
    )
    assert "rule 'pmemkit-vm'" in refusal and "poison" in refusal


def test_the_terminal_goes_raw_only_when_asked_and_is_restored_even_after_a_hangup():
    import termios

    from pmemkit.use_cli import _Terminal

    master, slave = os.openpty()
    try:
        with _Terminal(slave) as terminal:
            assert (
                termios.tcgetattr(slave)[3] & termios.ICANON
            )  # cooked during the boot: Ctrl-C stops pmemkit
            terminal.raw()
            assert not termios.tcgetattr(slave)[3] & termios.ICANON
        assert termios.tcgetattr(slave)[3] & termios.ICANON
        with _Terminal(slave) as terminal:
            terminal.raw()
            os.close(master)  # the window closed: restoring fails with EIO, and must not raise
            master = -1
    finally:
        os.close(slave)
        if master >= 0:
            os.close(master)
    with _Terminal(os.open(os.devnull, os.O_RDONLY)) as terminal:  # not a terminal: left alone
        terminal.raw()


def test_a_local_run_without_the_report_modules_keeps_its_observations_and_exits_4(monkeypatch, tmp_path):
    import pmemkit.pipeline

    def ran(*args, **kwargs):
        return pmemkit.local.LocalResult(tmp_path / "run", 5, None, False, ("matplotlib", "markdown"))

    monkeypatch.setattr(pmemkit.local, "run_local", ran)
    result = CliRunner().invoke(
        main, ["run", "--target", "local", "--device", "/dev/pmem0", "--destroy-data", "--suite", "smoke"]
    )
    assert result.exit_code == 4, result.output
    out, error = result.output.strip().splitlines()
    assert out == "5 observations; report: not rendered"
    assert error.startswith("pmemkit: error: report not rendered: matplotlib markdown not installed here")
    assert f"pmemkit report {tmp_path / 'run'}" in error


def test_missing_report_modules_names_what_find_spec_cannot_find(monkeypatch):
    import importlib.util

    import pmemkit.pipeline

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "markdown" else real(name))
    assert pmemkit.pipeline.missing_report_modules() == ["markdown"]
