"""`pmemkit exec` and `pmemkit shell`: use the guest pmemkit prepared, with your own program or by hand.

Thin, like cli.py: read the options with the same readers as `run`, build a SessionSpec, call
`pipeline.run_session`, exit with the guest command's status. Loaded lazily by cli.py.
"""

from __future__ import annotations

import os
import shutil
import sys
import termios
import tty
from pathlib import Path
from typing import Any

import click

from pmemkit.cli import KernelFlags, Progress, fail, kernel_options, validate_run_options

#: What the guest command gets on top of boot and preparation, unless --timeout says otherwise.
EXEC_COMMAND_BUDGET_S = 600.0


def _common_options(command: Any) -> Any:
    """The guest options `run` has, for a session: pmem devices, one filesystem, accel, limits, kernel."""
    options = [
        click.option(
            "--pmem",
            "pmem_specs",
            multiple=True,
            default=(),
            metavar="SPEC",
            help="A pmem device of the VM (repeatable), as for `pmemkit run`: memmap:SIZE[@START], "
            "nvdimm:SIZE[,mode=fsdax|devdax|raw|sector][,map=mem|dev], virtio-pmem:SIZE. "
            "[default: memmap:512M]",
        ),
        click.option(
            "--fs",
            "fs",
            type=click.Choice(["ext4", "xfs"]),
            default="ext4",
            show_default=True,
            help="The filesystem made on every block device and mounted with -o dax=always.",
        ),
        click.option(
            "--no-mount",
            is_flag=True,
            help="Create the namespaces but make no filesystem and mount nothing (for tests that "
            "format the devices themselves).",
        ),
        click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True),
        click.option(
            "--memory", default=None, metavar="SIZE", help="Guest RAM, e.g. 3G [default: as for run]."
        ),
        click.option(
            "--runs-dir",
            type=click.Path(path_type=Path),
            default=Path("runs"),
            show_default=True,
            help="Where the session's runs/<timestamp>/ (plan, console log, dmesg) is kept.",
        ),
        click.option(
            "--copy-in",
            "copy_ins",
            multiple=True,
            type=click.Path(path_type=Path),
            metavar="PATH",
            help="A host file to put in the guest's working directory (repeatable), e.g. a static "
            "test binary; it keeps its exec bit.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr (errors still)."),
    ]
    decorated = kernel_options(command)
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def _options(
    pmem_specs: tuple[str, ...],
    fs: str,
    accel: str,
    timeout: str | None,
    memory: str | None,
    runs_dir: Path,
    kernel_flags: KernelFlags,
    extra_s: float | None,
) -> Any:
    """RunOptions for a session, checked like run's (one line, exit 2, before anything boots)."""
    from pmemkit import pipeline
    from pmemkit.rundir import RunDirError, check_runs_dir
    from pmemkit.vm.run import RunOptions

    inputs = validate_run_options(pmem_specs, "smoke", fs, timeout, memory)
    options = RunOptions(
        pmem=inputs.pmem,
        suites=[],
        filesystems=[fs],
        accel=accel,
        timeout_s=inputs.timeout_s,
        memory=inputs.memory,
        runs_dir=runs_dir,
        kernel=kernel_flags.spec(),
    )
    if options.timeout_s is None and extra_s is not None:
        options.timeout_s = options.default_timeout() + extra_s
    checked = pipeline.check(options)
    try:
        check_runs_dir(runs_dir)
    except RunDirError as exc:
        fail(str(exc), exc.exit_code)
    return checked


def _session(options: Any, session: Any, relay: Any, quiet: bool) -> Any:
    """pipeline.run_session, with a run directory that cannot be written as one line (as for run)."""
    from pmemkit import pipeline
    from pmemkit.rundir import RunDirError

    try:
        return pipeline.run_session(options, session, relay, _progress(quiet))
    except RunDirError as exc:
        fail(str(exc), exc.exit_code)


def _progress(quiet: bool) -> Any:
    return (lambda message: None) if quiet else Progress()


@click.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]},
)
@_common_options
@click.option(
    "--timeout",
    "timeout_s",
    default=None,
    metavar="SECONDS",
    help=f"Seconds before the guest is killed [default: boot and preparation as for run, plus "
    f"{EXEC_COMMAND_BUDGET_S:.0f} s for the command].",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(
    pmem_specs: tuple[str, ...],
    fs: str,
    no_mount: bool,
    accel: str,
    memory: str | None,
    runs_dir: Path,
    copy_ins: tuple[Path, ...],
    quiet: bool,
    kernel_flags: KernelFlags,
    timeout_s: str | None,
    command: tuple[str, ...],
) -> None:
    """Boot the guest, prepare and mount its pmem, run COMMAND in it, exit with COMMAND's status.

    COMMAND runs as root with stdin from /dev/null in the guest's working directory (where the
    --copy-in files are, also first on PATH); its stdout and stderr stream back to yours as it runs.
    Its environment names the devices:

    \b
      PMEMKIT_DAX_MOUNTS     the mount points where DAX is on, space-separated
      PMEMKIT_DAX_DEVICES    device-dax character devices (/dev/daxX.Y)
      PMEMKIT_PMEM<i>_DEV    /dev/pmemN or /dev/daxX.Y of the i-th --pmem (from 0);
                             also _SPEC, _MODE, _MAP, _FS, _MOUNT and _DAX (ok, fallback,
                             an errno name, n/a, not mounted)
      PMEMKIT_OUT            a directory kept on the host as RUN/guest/out/
      pmemkit                the guest's own pmemkit command (e.g. `pmemkit probe`)

    \b
    Examples:
      pmemkit exec --pmem memmap:256M --fs ext4 -- sh -c 'grep dax /proc/mounts; uname -r'
      pmemkit exec --copy-in ./mytest -- ./mytest "$PMEMKIT_DAX_MOUNTS"
      pmemkit exec --pmem nvdimm:512M,mode=devdax -- daxctl list
      pmemkit exec --kernel 6.12 --fs xfs -- sh -c 'cd $PMEMKIT_PMEM0_MOUNT && fio --name=t ...'

    Output travels over the guest's serial console (about 80 KiB/s under TCG on a loaded host):
    write large results into $PMEMKIT_OUT instead and read them in RUN/guest/out/.

    The guest boots, prepares and is ended exactly as for `pmemkit run` (safety rules, --timeout,
    SIGINT/SIGTERM/SIGHUP end qemu). pmemkit's own failures print one `pmemkit: error:` line and
    exit with run's codes (2 bad input, 6 guest failed, ...); otherwise the exit status is COMMAND's.
    """
    from pmemkit.vm.session import ExecRelay, SessionSpec, check_copy_ins

    items = check_copy_ins(copy_ins)
    budget = EXEC_COMMAND_BUDGET_S
    options = _options(pmem_specs, fs, accel, timeout_s, memory, runs_dir, kernel_flags, budget)
    session = SessionSpec("exec", argv=list(command), copy_ins=items, no_mount=no_mount)
    relay = ExecRelay()
    result = _session(options, session, relay, quiet)
    if relay.bad_frames:
        click.echo(f"pmemkit: warning: {relay.bad_frames} garbled output frame(s) dropped", err=True)
    sys.exit(result.status)


@click.command("shell", context_settings={"help_option_names": ["-h", "--help"]})
@_common_options
@click.option(
    "--timeout",
    "timeout_s",
    default=None,
    metavar="SECONDS",
    help="Seconds before the guest is killed, shell or not [default: no limit].",
)
def shell(
    pmem_specs: tuple[str, ...],
    fs: str,
    no_mount: bool,
    accel: str,
    memory: str | None,
    runs_dir: Path,
    copy_ins: tuple[Path, ...],
    quiet: bool,
    kernel_flags: KernelFlags,
    timeout_s: str | None,
) -> None:
    """Boot the guest, prepare and mount its pmem, and give you a root shell in it.

    The shell (bash) runs on the guest's serial line, which becomes your terminal; it prints where
    each device is mounted, and the same PMEMKIT_* variables as `pmemkit exec` name them.
    `exit` (or Ctrl-D) powers the guest off and ends pmemkit with the shell's status; Ctrl-] ends
    the guest from outside (exit 130). The kernel's messages go to `dmesg`, not to your screen.
    --copy-in files are in the shell's working directory.

    \b
    Examples:
      pmemkit shell
      pmemkit shell --pmem memmap:256M --pmem nvdimm:512M,mode=devdax --fs xfs
      pmemkit shell --kernel 6.12 --no-mount      # make your own filesystems with mkfs
    """
    from pmemkit.vm.session import SessionSpec, ShellRelay, check_copy_ins

    items = check_copy_ins(copy_ins)
    options = _options(pmem_specs, fs, accel, timeout_s, memory, runs_dir, kernel_flags, None)
    try:  # the terminal's own size: a COLUMNS or LINES left in the environment may be stale
        size = os.get_terminal_size(sys.stdin.fileno())
    except OSError:
        size = shutil.get_terminal_size((80, 24))
    session = SessionSpec(
        "shell",
        copy_ins=items,
        no_mount=no_mount,
        term=os.environ.get("TERM"),
        rows=size.lines,
        cols=size.columns,
    )
    with _Terminal(sys.stdin.fileno()) as terminal:
        relay = ShellRelay(on_begin=terminal.raw)
        result = _session(options, session, relay, quiet)
    sys.exit(result.status if result.status is not None and 0 <= result.status <= 255 else 1)


class _Terminal:
    """Your terminal, put in raw mode once the guest's shell starts (Ctrl-C then goes to the guest;
    during the boot it still stops pmemkit) and restored on every way out. Not a terminal (a pipe):
    left as it is."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        try:
            self.saved: list[Any] | None = termios.tcgetattr(fd)
        except (termios.error, OSError):
            self.saved = None

    def raw(self) -> None:
        if self.saved is not None:
            tty.setraw(self.fd, termios.TCSANOW)

    def __enter__(self) -> _Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            except (termios.error, OSError):
                pass  # the terminal hung up (closed window): nothing left to restore
