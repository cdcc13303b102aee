"""One VM boot of a run: image → kernel → run directory → boot → collect, keeping everything on failure.

`pmemkit.pipeline` checks the options, calls this and renders the report; this module builds,
boots and collects only (it never imports the report). The run directory (`runs/<timestamp>/`) is
the unit of truth; `pmemkit.rundir` does its file I/O. The guest writes only into `RUN/guest/`
(its 9p share); the host writes plan.json, environment.json, guest-console.log and, after the
boot, collects the guest's observations.jsonl, guest-environment.json and dmesg.txt into RUN/.
All of it is written even when the guest times out, panics or is killed.
"""

from __future__ import annotations

import compileall
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmemkit import __version__, rundir
from pmemkit.plan import CRASH_SUITE, Plan, check_crash_request
from pmemkit.scenario import PmemConfig
from pmemkit.vm.accel import AccelChoice, choose_accel
from pmemkit.vm.boot import BootResult, ConsoleRelay, boot
from pmemkit.vm.errors import HostToolMissing
from pmemkit.vm.image import GuestImage, cache_dir, ensure_image, repo_root
from pmemkit.vm.kernels import KernelLayer, KernelSpec, check_config, ensure_kernel
from pmemkit.vm.layout import VmLayout
from pmemkit.vm.lifecycle import SignalGuard
from pmemkit.vm.qemu import QemuCommand, backing_size, make_cxl_files
from pmemkit.vm.qemu_install import cxl_qemu, cxl_speed_warning
from pmemkit.vm.session import SessionSpec

QEMU = "qemu-system-x86_64"
BOOT_BUDGET_S = 60.0  # boot + python start-up under TCG, with room for a loaded machine
PER_TARGET_S = 45.0  # one device × filesystem: mkfs, mount, smoke suite
#: --trace-decisions: arming kprobes and rerunning the refusals, per target and per baseline (anon,
#: page cache, /dev/mem); measured 7-30 s per target under TCG on a loaded 2-core host (issue 14).
TRACE_DECISIONS_S = 25.0
#: The full profile's work per target against the quick one's. Measured 2026-12-07 (6.1, TCG, the
#: default six devices): the full fio suite took 47-61 s per target on a quiet host (load ~1) and
#: 150-270 s per target under load 5-7, where 45 s covers the quick suites; 555 s killed a quiet
#: full fio run at its ninth target.
FULL_PROFILE_FACTOR = 6.0
BASELINES = 3


@dataclass
class RunOptions:
    """What the user asked for; validated before anything slow starts."""

    pmem: list[PmemConfig]
    suites: list[str]
    filesystems: list[str] = field(default_factory=lambda: ["ext4", "xfs"])
    accel: str = "auto"
    timeout_s: float | None = None
    memory: int | None = None
    runs_dir: Path = Path("runs")
    inject_fault: str | None = None
    profile: str = "quick"
    kernel: KernelSpec = field(default_factory=KernelSpec)
    decisions: dict[str, Any] | None = None  # --trace-decisions: plan.Plan.decisions

    def default_timeout(self) -> float:
        """Scaled to the work: a fixed boot budget plus a budget per device, filesystem and suite,
        several times larger for the full profile."""
        targets = sum(len(self.filesystems) if p.mode != "devdax" else 1 for p in self.pmem)
        tracing = TRACE_DECISIONS_S * (targets + BASELINES) if self.decisions else 0.0
        per_target = PER_TARGET_S * (FULL_PROFILE_FACTOR if self.profile == "full" else 1.0)
        return BOOT_BUDGET_S + per_target * max(targets, 1) * max(len(self.suites), 1) + tracing


@dataclass
class Collected:
    """What one boot left in the run directory: the boot, environment.json's contents, the cause
    of any failure, and the faults met while collecting (each step was still attempted)."""

    run_dir: Path
    boot: BootResult
    environment: dict[str, Any]
    failure: str | None
    faults: list[rundir.RunDirError]
    scratch_left: Path | None


def make_run_dir(runs_dir: Path) -> Path:
    """`runs/<YYYYmmdd-HHMMSS>`; a --runs-dir that is a file or read-only is one line, exit 2."""
    return rundir.make_run_dir(runs_dir)


def _qemu_version(qemu: str) -> str:
    try:
        out = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


@dataclass
class Layers:
    """What a boot is built from: qemu, the image and kernel layers, and the accelerator chosen."""

    qemu: str
    image: GuestImage
    kernel: KernelLayer
    kernel_meta: dict[str, Any]
    choice: AccelChoice


def build_layers(
    options: RunOptions, layout: VmLayout, progress: Callable[[str], None], guard: SignalGuard
) -> Layers:
    """Find qemu, build (or find) the image and kernel layers, check the kernel's config, choose
    the accelerator: everything before the run directory exists."""
    qemu = shutil.which(QEMU)
    if qemu is None and not layout.has_cxl:
        raise HostToolMissing(f"{QEMU} is not installed: run `make deps` (apt-get install qemu-system-x86)")
    if layout.has_cxl:  # before anything slow: a QEMU whose CXL pmem reads back zeros is refused
        qemu = cxl_qemu(qemu, progress)
        progress(f"qemu for CXL: {_qemu_version(qemu)}")
        progress(cxl_speed_warning(options.suites))
    assert qemu is not None
    guard.stage = "checking (or building) the guest image"
    image = ensure_image(progress)
    guard.stage = f"checking (or building) the guest kernel ({options.kernel.label()})"
    kernel = ensure_kernel(options.kernel, progress)
    kernel_meta = kernel.manifest()
    check_config(
        kernel.config.read_text(errors="replace"),
        kernel.release,
        str(kernel.config),
        {p.source for p in layout.pmem},
        options.filesystems,
    )
    progress(f"guest kernel {kernel.release} ({kernel_meta.get('kernel_package', options.kernel.label())})")
    guard.stage = "choosing the accelerator"
    choice = choose_accel(options.accel, qemu, kernel.vmlinux)
    return Layers(qemu, image, kernel, kernel_meta, choice)


def make_plan(options: RunOptions, layout: VmLayout, layers: Layers, **extra: Any) -> Plan:
    """The plan the guest runs, with the placements qemu's command line is built from."""
    return Plan(
        suites=options.suites,
        pmem=list(layout.pmem),  # every memmap start made explicit, so the guest matches ranges exactly
        filesystems=options.filesystems,
        accel=layers.choice.accel,
        vm_token=layers.image.image_id,
        pmemkit_version=__version__,
        inject_fault=options.inject_fault,
        profile=options.profile,
        placements=list(layout.placements),
        decisions=options.decisions,
        **extra,
    )


def make_share(run_dir: Path, plan: Plan) -> Path:
    """RUN/plan.json (the copy the host trusts) and RUN/guest/ with the guest's copy; the guest's
    python gets bytecode compiled here (3.11 too: it saves seconds of TCG per boot)."""
    plan_text = json.dumps(plan.to_dict(), indent=2) + "\n"
    with rundir.RunDir.open(run_dir, require_run=False) as files:
        files.write(rundir.PLAN, plan_text)  # the copy the host trusts
        share = files.make_guest_share(plan_text)  # the only directory the guest can write
    rundir.check_user_xattrs(share)
    compileall.compile_dir(repo_root() / "pmemkit", quiet=2)
    return share


def new_scratch() -> Path:
    """A fresh directory for one run's backing files in the cache's scratch/ (removed on every exit)."""
    scratch_root = cache_dir() / "scratch"
    scratch_root.mkdir(parents=True, exist_ok=True)
    # The pid in the name tells whose backing files these are (the unit of cleanup is one run).
    return Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=scratch_root))


def make_backing(scratch: Path, layout: VmLayout) -> list[Path]:
    """A sparse backing file per NVDIMM / virtio-pmem device, fresh (so no stale labels)."""
    backing = []
    for index, cfg in enumerate(layout.dimms):
        path = scratch / f"{cfg.source}{index}.img"
        with open(path, "wb") as f:
            f.truncate(backing_size(cfg))  # sparse, fresh each run: no stale labels
        backing.append(path)
    return backing


def qemu_command(
    layers: Layers, layout: VmLayout, share: Path, backing: list[Path], **extra: Any
) -> QemuCommand:
    return QemuCommand(
        qemu=layers.qemu,
        accel=layers.choice.accel,
        layout=layout,
        vmlinux=layers.kernel.vmlinux,
        initrd=layers.kernel.initrd,
        rootfs=layers.image.rootfs,
        modules_disk=layers.kernel.modules_disk,
        source_dir=repo_root(),
        results_dir=share.resolve(),
        vm_token=layers.image.image_id,
        backing_files=backing,
        **extra,
    )


def base_environment(
    layers: Layers, layout: VmLayout, command: QemuCommand, timeout: float | None
) -> dict[str, Any]:
    """environment.json before the boot: host, qemu, accelerator, layers, command line, timeout."""
    return {
        "pmemkit_version": __version__,
        "host": {
            "kernel": platform.release(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "qemu": _qemu_version(layers.qemu),
        "accel": layers.choice.accel,
        "accel_reason": layers.choice.reason,
        "image": layers.image.manifest(),
        "kernel": layers.kernel_meta,
        "guest_ram_bytes": layout.ram,
        "memmap": [r.kernel_arg() for r in layout.memmaps],
        "kernel_cmdline": command.cmdline(),
        "qemu_argv": command.argv(),
        "timeout_s": timeout,
    }


def boot_record(result: BootResult) -> dict[str, Any]:
    """environment.json's `boot`: how one boot went."""
    record = {
        "phases_s": result.phases,
        "elapsed_s": round(result.elapsed_s, 2),
        "timed_out": result.timed_out,
        "qemu_returncode": result.returncode,
        "guest_rc": result.guest_rc,
        "panic": result.panic,
        "qemu_stderr": result.stderr[-2000:],
        "interrupted_by": result.interrupted,
        "console_error": result.console_error,
    }
    if result.killed_at is not None:
        record["killed_at_s"] = result.killed_at
    return record


def boot_and_collect(
    options: RunOptions,
    layout: VmLayout,
    progress: Callable[[str], None],
    guard: SignalGuard,
    session: SessionSpec | None = None,
    relay: ConsoleRelay | None = None,
) -> Collected:
    """Build what is missing, boot once, collect the guest's files and write environment.json.

    With a session (`pmemkit exec`/`shell`) the plan carries it, its --copy-in files are staged
    in the share and `relay` reads the console too; a shell without --timeout has no time limit.
    `--suite crash` boots twice instead (`pmemkit.vm.crash`).

    `options` and `layout` are what `pmemkit.pipeline.check` accepted (it validated them: nothing
    is planned twice); `guard` is entered by the caller, which renders the report on every exit.
    Before the run directory exists a signal raises Interrupted; after it, boot() ends qemu and
    the signal is left in `guard.received` for the caller.
    """
    if session is None:  # a crash request pmemkit cannot carry out: one line, exit 2, nothing built
        check_crash_request(options.suites, options.pmem, options.filesystems)
        if CRASH_SUITE in options.suites:
            from pmemkit.vm.crash import crash_run

            return crash_run(options, layout, progress, guard)
    timeout: float | None = options.timeout_s or options.default_timeout()
    if session is not None and session.mode == "shell" and options.timeout_s is None:
        timeout = None  # an interactive shell lasts as long as its user wants
    layers = build_layers(options, layout, progress, guard)
    guard.hold()  # from here a signal is raised inside boot(), which ends qemu; the caller reports
    run_dir = make_run_dir(options.runs_dir)
    progress(f"run directory: {run_dir}")
    plan = make_plan(options, layout, layers, session=session.plan_field() if session is not None else None)
    share = make_share(run_dir, plan)
    if session is not None:
        session.stage(share)
    scratch = new_scratch()
    try:
        backing = make_backing(scratch, layout)
        cxl_files = make_cxl_files(scratch, layout)
        command = qemu_command(layers, layout, share, backing, cxl_files=cxl_files)
        environment = base_environment(layers, layout, command, timeout)
        rundir.write_atomic(run_dir / rundir.ENVIRONMENT, json.dumps(environment, indent=2) + "\n")
        limit = f"timeout {timeout:.0f} s" if timeout is not None else "no timeout"
        progress(f"booting the guest ({layers.choice.accel}; {layers.choice.reason}); {limit}")
        extra = {"relay": relay} if relay is not None else {}  # a suite run calls boot as it always did
        result = boot(command.argv(), run_dir / "guest-console.log", timeout, progress, guard, **extra)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    scratch_left = scratch.exists()
    if result.console_error:
        progress(f"warning: the console log is incomplete: {result.console_error}")
    environment["boot"] = boot_record(result)
    failure = failure_message(result, timeout)
    environment["failure"] = failure
    faults = _keep(run_dir, environment)
    return Collected(run_dir, result, environment, failure, faults, scratch if scratch_left else None)


def _keep(run_dir: Path, environment: dict[str, Any]) -> list[rundir.RunDirError]:
    """After the boot: collect the guest's files, then write environment.json.

    Each step is attempted even when the one before it failed (a disk that filled up mid-run may
    have room for environment.json once a failed copy is gone); the faults come back in order.
    """
    faults: list[rundir.RunDirError] = []
    try:
        environment["collect_warnings"] = _collect(run_dir)
    except rundir.RunDirError as exc:
        faults.append(exc)
        environment["collect_warnings"] = [str(exc)]
    try:
        rundir.write_atomic(run_dir / rundir.ENVIRONMENT, json.dumps(environment, indent=2) + "\n")
    except rundir.RunDirError as exc:
        faults.append(exc)
    return faults


def _collect(run_dir: Path) -> list[str]:
    """The guest's files copied into RUN/ after checks (dmesg rebuilt from the console if missing)."""
    with rundir.RunDir.open(run_dir, require_run=False) as files:
        return files.collect()


def failure_message(result: BootResult, timeout: float | None) -> str | None:
    """None for a clean run; else one line naming the cause (and the fix where there is one)."""
    if result.interrupted:
        if "qemu" not in result.phases:
            return f"interrupted by {result.interrupted} before the guest was started"
        return f"interrupted by {result.interrupted}: the guest was stopped before it finished its plan"
    if result.timed_out:
        return (
            f"the guest did not finish within {timeout or 0:.0f} s and was killed "
            "(raise --timeout if the machine is loaded)"
        )
    if result.panic:
        return f"the guest kernel panicked: {result.panic}"
    if result.fatal:
        return f"the guest could not start the run: {result.fatal}"
    if not result.finished:
        why = f"qemu exited with status {result.returncode}"
        if result.stderr:
            why += f": {result.stderr.strip().splitlines()[-1]}"
        return f"the guest ended before finishing its plan ({why})"
    if result.guest_rc not in (0, None):
        return f"the guest run reported failed steps (exit {result.guest_rc}); see report.md"
    return None
