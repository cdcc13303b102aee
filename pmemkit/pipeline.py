"""One run, end to end: check → VM (boot and collect) → model and report render → run-directory writes.

Why a module of its own: `vm/` builds, boots and collects, `report/` renders, `rundir` does the
file I/O; only this module joins them, so none of those imports another room's job (vm/ never
imports report/, rundir never imports report/). The CLI's `run` and `report` commands call it,
and so does any other caller: every RunOptions goes through the same `check` before anything slow
starts, and report.md is written on every exit path of a run that got a run directory (success,
guest failure, timeout, SIGINT/SIGTERM/SIGHUP).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from pmemkit import rundir
from pmemkit.scenario import PmemConfig
from pmemkit.vm import layout as vm_layout
from pmemkit.vm import run as vm_run
from pmemkit.vm.boot import BootResult, ConsoleRelay
from pmemkit.vm.errors import GuestFailure, HostToolMissing, RunInterrupted, VmConfigError
from pmemkit.vm.image import cache_dir
from pmemkit.vm.kernels import check_custom
from pmemkit.vm.lifecycle import Interrupted, SignalGuard
from pmemkit.vm.qemu import backing_size
from pmemkit.vm.run import RunOptions
from pmemkit.vm.session import SessionSpec

REPORT_HTML = "report.html"
OBSERVATIONS_CSV = "observations.csv"


@dataclass
class Checked(RunOptions):
    """RunOptions that passed `check`, with the layout planned there (so nothing is planned twice).

    A RunOptions itself, so whoever receives it reads the same fields.
    """

    layout: vm_layout.VmLayout = field(kw_only=True)


@dataclass
class RunResult:
    run_dir: Path
    boot: BootResult
    observations: int
    report: Path


def check(options: RunOptions) -> Checked:
    """Everything about a run that can be refused without building or booting: the timeout, the
    pmem layout, whether the VM and its backing files fit this host, a user's kernel.

    Why here and not in the CLI only: a caller that builds RunOptions itself gets the same
    one-line refusals (exit 2) instead of a qemu failure minutes later.
    """
    if options.timeout_s is not None and options.timeout_s <= 0:
        raise VmConfigError("--timeout must be a positive number of seconds")
    layout = vm_layout.plan_layout(options.pmem, options.memory)
    sizes = [backing_size(d) for d in (*layout.dimms, *layout.cxl)]
    scratch = cache_dir() / "scratch"
    vm_layout.check_fits_host(layout, sizes, vm_layout.read_host(scratch, options.accel))
    if sizes:
        vm_layout.probe_file_size(scratch, max(sizes))
    check_filesystems_fit(options.pmem, options.filesystems)
    if options.kernel.custom:  # before any build or boot: a kernel lacking what the run needs is exit 2
        check_custom(options.kernel, {p.source for p in options.pmem}, options.filesystems)
    values = {f.name: getattr(options, f.name) for f in fields(RunOptions)}
    return Checked(**values, layout=layout)


#: mkfs.xfs (xfsprogs 5.19 and later; the guest's bookworm has 6.1.0) refuses a data device under
#: 300 MiB ("Filesystem must be larger than 300MB"); measured with pmemkit's own XFS options.
XFS_MIN_BYTES = 300 * 1024 * 1024


def check_filesystems_fit(pmem: list[PmemConfig], filesystems: list[str]) -> None:
    """Refuse before boot a filesystem that cannot be made on a planned block device.

    Why: the guest would run mkfs.xfs on a 256M device, fail, and mark the whole run FAILED minutes
    later. Device-dax has no filesystem, so it is exempt. An fsdax namespace loses some of its size
    to metadata, so a size just above the limit can still fail in the guest, as an observation.
    """
    if "xfs" not in filesystems:
        return
    small = [p.spec() for p in pmem if p.mode != "devdax" and p.size < XFS_MIN_BYTES]
    if small:
        raise VmConfigError(
            f"--fs xfs needs pmem devices of at least 300M (mkfs.xfs makes no smaller filesystem): "
            f"{', '.join(small)} is too small; give 512M or more, or --fs ext4"
        )


def run(options: RunOptions | Checked, progress: Callable[[str], None] = print) -> RunResult:
    """Carry out one run in one VM boot; raises GuestFailure (after writing the report) on failure,
    RunInterrupted on SIGINT/SIGTERM/SIGHUP (after ending qemu and writing what can be written).

    RunOptions are checked first; a `Checked` (the CLI checks before it says anything) is not
    checked twice.
    """
    guard = SignalGuard()
    try:
        with guard:
            checked = options if isinstance(options, Checked) else check(options)
            return _run(checked, progress, guard)
    except Interrupted as exc:  # it came before the run directory existed: nothing to report
        raise RunInterrupted(
            f"interrupted by {exc.signum.name} while {guard.stage}; the run had not begun: no run directory "
            "was created and no qemu of it is left",
            exc.signum,
        ) from None


def _run(checked: Checked, progress: Callable[[str], None], guard: SignalGuard) -> RunResult:
    collected = vm_run.boot_and_collect(checked, checked.layout, progress, guard)
    run_dir, failure = collected.run_dir, collected.failure
    report, count, fault = _report(collected)
    if report is not None:
        progress(f"report: {report}")
    if guard.received is not None:
        message = _interrupted_message(guard.received, collected.boot, count, run_dir, collected.scratch_left)
        raise RunInterrupted(message + (f"; but {fault}" if fault else ""), guard.received)
    if fault is not None:
        raise fault
    if failure:
        raise GuestFailure(f"{failure}; {count} observation(s) kept in {run_dir}")
    return RunResult(run_dir, collected.boot, count, report)


def _report(collected: vm_run.Collected) -> tuple[Path | None, int, rundir.RunDirError | None]:
    """Render the report even when collecting failed, and turn the first fault into one line
    saying what was still written: (report path or None, observations, fault or None)."""
    faults = list(collected.faults)
    report: Path | None = None
    count = 0
    try:
        report, count = render_report(collected.run_dir, collected.failure)
    except rundir.RunDirError as exc:
        faults.append(exc)
    if not faults:
        return report, count, None
    kept = (
        f"report.md written ({count} observation(s)), with report.html and observations.csv"
        if report
        else "no report.md could be written"
    )
    guest = f"; the guest run: {collected.failure}" if collected.failure else ""
    message = f"{faults[0]}; {kept}; what was kept is in {collected.run_dir}{guest}"
    return report, count, rundir.RunDirError(message, faults[0].exit_code)


def _interrupted_message(
    sig: signal.Signals, result: BootResult, count: int, run_dir: Path, scratch_left: Path | None
) -> str:
    """One true line: what the signal stopped, what (if anything) could not be cleaned, and where
    what was kept is."""
    if "qemu" not in result.phases:
        return f"interrupted by {sig.name} before the guest was started; plan and report.md kept in {run_dir}"
    if result.qemu_left is not None:
        stopped = f"qemu (process group {result.qemu_left}) could not be ended, kill it by hand"
    elif result.interrupted is None:  # it came after qemu had ended on its own, while reporting
        stopped = "the guest had already ended and the report was completed"
    else:
        stopped = f"qemu was stopped {result.elapsed_s:.0f} s into the guest run"
    if scratch_left is not None:
        stopped += f"; its backing files could not be removed from {scratch_left}"
    elif result.interrupted is not None:
        stopped += " and its backing files removed"
    return (
        f"interrupted by {sig.name}: {stopped}; {count} observation(s), the console log and report.md "
        f"kept in {run_dir}"
    )


#: What rendering a report needs beyond the guest side (a pip install of pmemkit has them; a bare
#: machine running pmemkit from source, such as pmemkit's own guest, may not).
REPORT_MODULES = ("matplotlib", "markdown")


def missing_report_modules() -> list[str]:
    """The report's Python modules this machine lacks."""
    import importlib.util

    missing = []
    for name in REPORT_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
            found = False
        if not found:
            missing.append(name)
    return missing


class ReportModulesMissing(rundir.RunDirError):
    """The report cannot be rendered on this machine; the run's files are kept as they are (exit 4,
    a host tool missing). `observations` counts those that parsed, as the renderer starts from."""

    def __init__(self, run_dir: Path, missing: list[str] | tuple[str, ...], observations: int) -> None:
        self.missing = tuple(missing)
        self.observations = observations
        names = " ".join(self.missing)
        super().__init__(
            f"report not rendered: {names} not installed here (pip install {names}); the "
            f"{observations} observation(s) are kept in {run_dir}: render them with "
            f"`pmemkit report {run_dir}` on a machine that has them",
            HostToolMissing.exit_code,
        )


def render_report(run_dir: Path, failure: str | None = None) -> tuple[Path, int]:
    """Write RUN/report.html, report.md (its short text twin), observations.csv and plots/ from the
    run's files; returns the path of report.html and the number of observations. Refuses a
    directory that is not a run, or a run of another schema, or one whose files cannot be rendered
    even in part, before writing anything; on a machine without the report's modules, raises
    ReportModulesMissing (exit 4) and writes nothing."""
    with rundir.RunDir.open(run_dir) as run:
        files = run.load()
        missing = missing_report_modules()
        if missing:  # unrendered, the count is what parsed (rendering may leave out more, said)
            raise ReportModulesMissing(run.path, missing, len(files.observations))
        from pmemkit.report.rundir import ShapeError, render_run  # lazily: needs numpy, matplotlib

        try:
            rendered = render_run(files, failure)
        except ShapeError as exc:
            raise rundir.RunDirError(
                f"{run.path}: the run's files are not in a shape this pmemkit renders: {exc}; "
                "nothing written",
                2,
            ) from None
        warnings = rendered.contents.warnings
        written = run.write_plots(rendered.plot_files(), warnings)
        markdown, page = rendered.texts(written)  # again: a plots/ refused since adds a warning
        run.write(rundir.REPORT, markdown)
        run.write(REPORT_HTML, page)
        run.write(OBSERVATIONS_CSV, rendered.csv)
        return run.path / REPORT_HTML, len(rendered.contents.observations)


def ci_report(run_dir: Path, fmt: str) -> tuple[str, list[str]]:
    """The run's verdict as KTAP or JUnit text, and the warnings met reading it; writes nothing.

    A run whose files are not in a shape the verdict can be read from is refused (exit 2).
    """
    from pmemkit.report.ci import junit, ktap
    from pmemkit.report.rundir import SHAPE_ERRORS, contents_of, default_predictor
    from pmemkit.report.verdict import verdicts

    with rundir.RunDir.open(run_dir) as run:
        files = run.load()
    contents = contents_of(files)
    predictor = default_predictor(contents.warnings)
    try:
        found = verdicts(contents, predictor)
        kernel = str(contents.guest_environment.get("kernel") or "?")
        text = (ktap if fmt == "ktap" else junit)(found, contents.name, kernel)
    except SHAPE_ERRORS as exc:
        raise rundir.RunDirError(
            f"{run_dir}: the run's observations are not in a shape this pmemkit reads: "
            f"{type(exc).__name__}: {str(exc)[:120]}",
            2,
        ) from None
    return text, contents.warnings


@dataclass
class SessionResult:
    """How a `pmemkit exec`/`shell` boot ended: its run directory, the boot, and the status the
    guest reported for the command or shell (None when it reported none)."""

    run_dir: Path
    boot: BootResult
    status: int | None


def run_session(
    options: RunOptions | Checked,
    session: SessionSpec,
    relay: ConsoleRelay,
    progress: Callable[[str], None] = print,
) -> SessionResult:
    """Boot once for `pmemkit exec` or `pmemkit shell`: the same check, build, boot, signal and
    timeout handling as `run`, the guest running the session instead of the suites; no report.

    Raises GuestFailure when the guest failed (timeout, panic, no status), RunInterrupted on
    SIGINT/SIGTERM/SIGHUP, both after qemu has ended.
    """
    guard = SignalGuard()
    try:
        with guard:
            checked = options if isinstance(options, Checked) else check(options)
            collected = vm_run.boot_and_collect(checked, checked.layout, progress, guard, session, relay)
    except Interrupted as exc:
        raise RunInterrupted(
            f"interrupted by {exc.signum.name} while {guard.stage}; no guest had been started",
            exc.signum,
        ) from None
    status = getattr(relay, "status", None)
    run_dir, result = collected.run_dir, collected.boot
    if guard.received is not None:
        what = "qemu was stopped" if result.qemu_left is None else f"qemu (group {result.qemu_left}) survived"
        message = f"interrupted by {guard.received.name}: {what}; the console log is kept in {run_dir}"
        raise RunInterrupted(message, guard.received)
    if collected.faults:
        raise collected.faults[0]
    if collected.failure:
        raise GuestFailure(f"{collected.failure}; the console log is kept in {run_dir}")
    if status is None:
        raise GuestFailure(
            f"the guest finished without reporting the {session.mode}'s exit status; "
            f"see {run_dir}/guest-console.log"
        )
    return SessionResult(run_dir, result, status)
