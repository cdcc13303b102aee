"""The `pmemkit` command: parse, call one room, print. Expected failures become one line and an exit code.

Exit codes: 0 ok · 2 bad input · 3 VM harness error · 4 host tool missing · 5 image build failed ·
6 guest failed (timeout, panic, killed; partial results kept) · 7 refused by safety · 8 guest-side error.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from pmemkit import __version__, units
from pmemkit.scenario import FILESYSTEMS, PmemConfig, ScenarioError, parse_size

if TYPE_CHECKING:
    from pmemkit.vm.kernels import KernelSpec

EXIT_BAD_INPUT = 2
EXIT_SAFETY = 7
EXIT_GUEST_ERROR = 8
DEFAULT_PMEM = ("memmap:512M",)
#: Two-device suites (d2d, raid) need pairs: two memmap ranges and two NVDIMM fsdax namespaces.
PAIR_DEFAULT_PMEM = ("memmap:512M", "memmap:512M", "nvdimm:512M,mode=fsdax", "nvdimm:512M,mode=fsdax")


def one_line(message: str) -> str:
    """The message as one printable line: control characters and undecodable bytes escaped."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(message))
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def fail(message: str, code: int) -> None:
    try:
        click.echo(f"pmemkit: error: {one_line(message)}", err=True)
    except OSError:
        pass  # stderr is gone (a terminal that hung up): the exit code still tells
    sys.exit(code)


class OneLineUsageError(click.UsageError):
    """A click usage error shown as one line plus where to learn the command, not a usage dump."""

    def show(self, file: Any = None) -> None:
        path = self.ctx.command_path.split()[1:] if self.ctx is not None else []
        hint = " ".join(["pmemkit", *path, "--help"])
        click.echo(f"pmemkit: error: {one_line(self.format_message())} (try `{hint}`)", err=True)


def _one_line_usage(exc: click.UsageError) -> OneLineUsageError:
    new = OneLineUsageError(exc.message, exc.ctx)
    if isinstance(exc, click.BadParameter):  # "Invalid value for '--accel': ..." names the option
        new.message = exc.format_message()
    return new


class PmemkitGroup(click.Group):
    """Turns every expected exception of every room into `pmemkit: error: …` and its exit code.

    `model` is loaded only when asked for: the guest starts `pmemkit guest-run` under TCG, where
    importing the whole model costs seconds of every boot.
    """

    lazy_commands = {
        "model": ("pmemkit.model_cli", "model"),
        "matrix": ("pmemkit.matrix.cli", "matrix"),
        "merge": ("pmemkit.matrix.cli", "merge"),
        "exec": ("pmemkit.use_cli", "exec_command"),
        "shell": ("pmemkit.use_cli", "shell"),
        "compare": ("pmemkit.compare_cli", "compare"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            import importlib

            module, attr = self.lazy_commands[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Sees every argument of every command once: a NUL byte cannot name a path or a value.

        (No shell can pass one; in-process callers can, and os.stat would raise ValueError.)
        """
        for arg in args:
            if "\x00" in arg:
                raise OneLineUsageError(f"argument {units.shown(arg)} contains a NUL byte", ctx)
        return super().parse_args(ctx, args)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        """The group's own options (`pmemkit --bogus`) get the one-line usage error too."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None

    def main(self, args: Any = None, *rest: Any, **extra: Any) -> Any:
        """Without `args` this is the pmemkit program (reading its own argv), which exits on a
        handled signal; an in-process caller (click's CliRunner) passes args and keeps its handlers."""
        if args is None:
            from pmemkit.vm.lifecycle import program_exits_on_signal

            program_exits_on_signal()
        return super().main(args, *rest, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        """Every subcommand, the lazily loaded `model` group included, runs inside these handlers."""
        from pmemkit.guest import GuestError
        from pmemkit.guest.experiments import UnknownExperiment
        from pmemkit.guest.safety import SafetyError
        from pmemkit.vm.errors import VmError
        from pmemkit.vm.lifecycle import Interrupted, on_the_way_out

        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:  # unknown option or command, missing argument, bad choice
            raise _one_line_usage(exc) from None
        except units.InputError as exc:  # ScenarioError and ModelError are InputErrors
            fail(str(exc), EXIT_BAD_INPUT)
        except UnknownExperiment as exc:
            fail(str(exc.args[0]), EXIT_BAD_INPUT)
        except VmError as exc:
            fail(str(exc), exc.exit_code)
        except SafetyError as exc:
            fail(str(exc), EXIT_SAFETY)
        except GuestError as exc:
            fail(str(exc), EXIT_GUEST_ERROR)
        except (KeyboardInterrupt, Interrupted) as exc:
            # `run` turns its own signals into RunInterrupted (a VmError) naming what it stopped; this
            # is any other moment, so it claims nothing it does not know about children or files.
            on_the_way_out()
            name, code = (exc.signum.name, exc.exit_code) if isinstance(exc, Interrupted) else ("SIGINT", 130)
            command = " ".join(["pmemkit", *([ctx.invoked_subcommand] if ctx.invoked_subcommand else [])])
            fail(f"interrupted by {name} during `{command}`", code)


class Progress:
    """Progress lines on stderr with elapsed time, so `--json` output on stdout stays clean."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        click.echo(f"[{time.monotonic() - self.start:6.1f}s] {message}", err=True)


def _default_pmem(suites: list[str]) -> tuple[str, ...]:
    from pmemkit.guest.experiments import runs_on

    return PAIR_DEFAULT_PMEM if any(runs_on(name, "pair") for name in suites) else DEFAULT_PMEM


@dataclass(frozen=True)
class RunInputs:
    """`run`'s options read and checked: what RunOptions is built from."""

    pmem: list[PmemConfig]
    suites: list[str]
    filesystems: list[str]
    timeout_s: float | None
    memory: int | None


def validate_run_options(
    pmem_specs: tuple[str, ...],
    suite: str,
    filesystems: str,
    timeout: str | None,
    memory: str | None,
) -> RunInputs:
    """Read every `run` input with the one reader (pmemkit.units).

    Why all here, first: a bad input found after the image build or the boot has begun costs
    minutes and may leave a half-made run directory; here it is one line and exit 2. Whether the
    VM fits this host is `pmemkit.pipeline.check`'s, which every caller of a run goes through.
    """
    from pmemkit.guest.experiments import get

    suites = units.parse_list(suite, "--suite")
    for name in suites:
        get(name)  # unknown suites fail here, before any boot
    fs_list = units.parse_list(filesystems, "--fs", FILESYSTEMS)
    timeout_s = None if timeout is None else units.parse_seconds(timeout, "--timeout")
    ram = None if memory is None else parse_size(memory, "--memory", minimum=1 << 20)
    if ram is not None and ram % (1 << 20):
        raise ScenarioError(f"--memory {units.shown(memory)} is not a whole number of MiB: e.g. 3G or 2560M")
    pmem = [PmemConfig.parse(s) for s in pmem_specs or _default_pmem(suites)]
    return RunInputs(pmem, suites, fs_list, timeout_s, ram)


def _path_option(*decls: str, metavar: str, help: str, multiple: bool = False) -> Any:
    """A user's kernel file or tree: a Path when given, else None (() when repeatable)."""
    absent: dict[str, Any] = {"multiple": True} if multiple else {"default": None}
    return click.option(*decls, type=click.Path(path_type=Path), metavar=metavar, help=help, **absent)


class KernelFlags(NamedTuple):
    """kernel_options' five flags, as typed; spec() checks them together, where the command says."""

    series: str | None
    image: Path | None
    modules: Path | None
    debs: tuple[Path, ...]
    config: Path | None

    def spec(self) -> KernelSpec:
        """The one kernel they name (KernelChoiceError, one line, when they do not agree)."""
        from pmemkit.vm.kernels import make_spec

        return make_spec(self.series, self.image, self.modules, self.config, self.debs)


def kernel_options(command: Any) -> Any:
    """`--kernel`, `--kernel-image` + `--modules` (+ `--kernel-config`), `--kernel-deb`: which kernel
    the guest boots."""
    from pmemkit.vm.kernels import DEFAULT_KERNEL, SERIES

    options = [
        click.option(
            "--kernel",
            "kernel_series",
            default=None,
            metavar="SERIES",
            help=f"Debian kernel to boot: {', '.join(SERIES)} (sid) [default: {DEFAULT_KERNEL}]. Resolved to "
            "an exact package from the host's mirror (private apt lists under the cache) and cached as a "
            "layer of its own.",
        ),
        _path_option(
            "--kernel-image",
            metavar="PATH",
            help="Your own kernel (bzImage or vmlinux) instead of a Debian one; needs --modules.",
        ),
        _path_option(
            "--modules",
            "kernel_modules",
            metavar="DIR",
            help="With --kernel-image: its `make modules_install INSTALL_MOD_PATH=DIR` tree.",
        ),
        _path_option(
            "--kernel-deb",
            "kernel_debs",
            multiple=True,
            metavar="FILE",
            help="Your own kernel as Debian packages (repeatable: linux-image-*.deb, and on 7.x its "
            "linux-binary/-modules/-base); the config inside is checked before boot.",
        ),
        _path_option(
            "--kernel-config",
            metavar="FILE",
            help="With --kernel-image: its .config [default: found in the build tree, beside the image, "
            "or inside it (CONFIG_IKCONFIG)]. Checked for what pmemkit needs before anything boots.",
        ),
    ]
    names = ("kernel_series", "kernel_image", "kernel_modules", "kernel_debs", "kernel_config")

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        return command(kernel_flags=KernelFlags(*(kwargs.pop(name) for name in names)), **kwargs)

    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


@click.group(cls=PmemkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pmemkit")
def main() -> None:
    """Does Linux pmem need `struct page`? Predict it with a model, then ask a real kernel.

    pmemkit boots a QEMU guest with emulated persistent memory (memmap= ranges, NVDIMMs,
    virtio-pmem), creates namespaces, mounts DAX filesystems, runs experiments on them and
    writes a report that compares the kernel's answers with the model's predictions.
    Emulated pmem is DRAM: outcomes are the kernel's, timings are not Optane/CXL numbers.

    \b
    Start here:
      pmemkit run                          # one memmap:512M device; smoke, mmap, odirect, fio
      pmemkit run --pmem memmap:512M --pmem nvdimm:512M,mode=fsdax,map=dev
      pmemkit run --suite d2d,raid,kapi    # device-to-device copies, md/dm stacks, kernel APIs
      pmemkit model predict --kernel 6.1 --pmem nvdimm --mode raw --fs ext4 --op dax-mount
    """


@main.command()
@click.option(
    "--pmem",
    "pmem_specs",
    multiple=True,
    default=(),
    metavar="SPEC",
    help="A pmem device of the VM (repeatable): memmap:SIZE[@START], "
    "nvdimm:SIZE[,mode=fsdax|devdax|raw|sector][,map=mem|dev], virtio-pmem:SIZE. "
    "[default: memmap:512M; with the two-device suites d2d/raid: two memmap:512M and two "
    "nvdimm:512M,mode=fsdax]",
)
@click.option(
    "--suite",
    default="smoke,mmap,odirect,fio,kapi",
    show_default=True,
    help="Comma-separated experiment suites (smoke, mmap, odirect, fio, kapi, d2d, raid, poison, peers); "
    "each runs on the targets it "
    "supports: DAX filesystems, device-dax, and the anonymous/page-cache baselines. "
    "crash runs alone: two boots on NVDIMMs, one filesystem each (--pmem nvdimm:512M --pmem nvdimm:512M).",
)
@click.option(
    "--fs",
    "filesystems",
    default="ext4,xfs",
    show_default=True,
    help="Comma-separated filesystems to make and mount with -o dax=always on each block device.",
)
@click.option(
    "--accel",
    type=click.Choice(["auto", "kvm", "tcg"]),
    default="auto",
    show_default=True,
    help="auto probes KVM with a watchdog and falls back to TCG.",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=None,
    metavar="SECONDS",
    help=(
        "Seconds before the guest is killed, e.g. 600 "
        "[default: scaled to devices × filesystems × suites, six times more for --profile full]."
    ),
)
@click.option(
    "--memory",
    default=None,
    metavar="SIZE",
    help="Guest RAM, e.g. 3G [default: 2G, more when memmap ranges need it].",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Where runs/<timestamp>/ directories are created.",
)
@click.option(
    "--profile",
    type=click.Choice(["quick", "full"]),
    default="quick",
    show_default=True,
    help="Experiment sizes and repetitions: quick for a first look, full for numbers.",
)
@click.option(
    "--inject-fault",
    type=click.Choice(["panic", "hang"]),
    default=None,
    hidden=True,
    help="Testing failure handling: crash or hang the guest after its first device.",
)
@click.option(
    "--trace-decisions",
    is_flag=True,
    help="Run each refused kapi operation once more under kprobe return probes and record which "
    "kernel function refused it (`decided_by`), beside the function the model cites.",
)
@kernel_options
@click.option(
    "--target",
    type=click.Choice(["vm", "local"]),
    default="vm",
    show_default=True,
    help="vm: boot pmemkit's guest. local: run the suites on this machine, on the devices named with "
    "--device (e.g. real pmem, or inside a VM of your own); needs --destroy-data.",
)
@click.option(
    "--device",
    "devices",
    multiple=True,
    metavar="DEV",
    help="With --target local: a pmem device of this machine (repeatable), e.g. /dev/pmem0; its data "
    "is lost.",
)
@click.option(
    "--destroy-data", is_flag=True, help="With --target local: confirm the --device data may be lost."
)
@click.option("--force", is_flag=True, help="With --destroy-data: even over an existing filesystem or data.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def run(
    pmem_specs: tuple[str, ...],
    suite: str,
    filesystems: str,
    accel: str,
    timeout_s: str | None,
    memory: str | None,
    runs_dir: Path,
    profile: str,
    inject_fault: str | None,
    trace_decisions: bool,
    kernel_flags: KernelFlags,
    target: str,
    devices: tuple[str, ...],
    destroy_data: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Build the guest image if missing, boot the VM, run the suites, write the report.

    Everything lands in runs/<timestamp>/: plan.json, observations.jsonl, environment.json,
    guest-console.log, dmesg.txt and report.md — also when the guest times out or crashes.

    \b
    With --target local nothing boots: the suites run on this machine's kernel, on the pmem
    devices you name, with the same run directory and report:
      pmemkit run --target local --device /dev/pmem0 --destroy-data --suite smoke --fs ext4
    """
    if target == "local" or devices or destroy_data or force:
        given = {
            "--pmem": bool(pmem_specs),
            "--memory": memory,
            "--timeout": timeout_s,
            "--kernel…": any(v not in (None, ()) for v in kernel_flags),
            "--inject-fault": inject_fault,
            "--trace-decisions": trace_decisions,
        }
        _run_local(
            target, devices, suite, filesystems, runs_dir, profile, destroy_data, force, given, as_json
        )
        return
    from pmemkit import pipeline
    from pmemkit.model.rules import decision_candidates
    from pmemkit.rundir import RunDirError, check_runs_dir
    from pmemkit.vm.errors import GuestFailure
    from pmemkit.vm.run import RunOptions

    inputs = validate_run_options(pmem_specs, suite, filesystems, timeout_s, memory)
    options = RunOptions(
        pmem=inputs.pmem,
        suites=inputs.suites,
        filesystems=inputs.filesystems,
        accel=accel,
        timeout_s=inputs.timeout_s,
        memory=inputs.memory,
        runs_dir=runs_dir,
        inject_fault=inject_fault,
        profile=profile,
        kernel=kernel_flags.spec(),
        decisions={"operations": decision_candidates()} if trace_decisions else None,
    )
    checked = pipeline.check(options)  # the layout, the host's room, a user's kernel: exit 2 before any boot
    try:
        check_runs_dir(runs_dir)  # a file, read-only or xattr-less --runs-dir: exit 2 before any boot
    except RunDirError as exc:
        fail(str(exc), exc.exit_code)
    try:
        from pmemkit.progress import make_progress

        with make_progress() as progress:  # a bar on a terminal, the line log otherwise
            result = pipeline.run(checked, progress)
    except GuestFailure as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": str(exc)}))
        raise
    except RunDirError as exc:  # disk full, read-only, I/O error while writing the run directory
        fail(str(exc), exc.exit_code)
    summary = {
        "ok": True,
        "run_dir": str(result.run_dir),
        "report": str(result.report),
        "observations": result.observations,
        "boot_phases_s": result.boot.phases,
        "elapsed_s": round(result.boot.elapsed_s, 2),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        phases = " → ".join(f"{k} {v:.1f}s" for k, v in result.boot.phases.items())
        click.echo(f"boot phases: {phases}")
        click.echo(f"{result.observations} observations; report: {result.report}")


def _run_local(
    target: str,
    devices: tuple[str, ...],
    suite: str,
    filesystems: str,
    runs_dir: Path,
    profile: str,
    destroy_data: bool,
    force: bool,
    given: dict[str, Any],
    as_json: bool,
) -> None:
    """`run --target local` (pmemkit.local): its options checked here, one line and exit 2 each."""
    from pmemkit.guest.experiments import get
    from pmemkit.local import LocalRefused, run_local
    from pmemkit.rundir import RunDirError

    if target != "local":
        fail("--device, --destroy-data and --force go with --target local", EXIT_BAD_INPUT)
    wrong = [name for name, value in given.items() if value]
    if wrong:
        fail(f"{', '.join(wrong)}: for the VM only, not for --target local", EXIT_BAD_INPUT)
    if not devices:
        fail("--target local needs the devices to use: --device /dev/pmemN (repeatable)", EXIT_BAD_INPUT)
    if force and not destroy_data:
        fail("--force goes with --destroy-data", EXIT_BAD_INPUT)
    suites = units.parse_list(suite, "--suite")
    for name in suites:
        get(name)
    from pmemkit.plan import refuse_crash_local  # --suite crash reboots pmemkit's VM: exit 2 here

    refuse_crash_local(suites)
    fs_list = units.parse_list(filesystems, "--fs", FILESYSTEMS)
    try:
        result = run_local(
            list(devices),
            suites,
            fs_list,
            runs_dir,
            profile,
            destroy_data=destroy_data,
            force=force,
            progress=Progress(),
        )
    except LocalRefused as exc:
        fail(str(exc), EXIT_SAFETY)
    except RunDirError as exc:
        fail(str(exc), exc.exit_code)
    summary = {
        "ok": not result.failed,
        "run_dir": str(result.run_dir),
        "report": str(result.report) if result.report else None,
        "observations": result.observations,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"{result.observations} observations; report: {result.report or 'not rendered'}")
    if result.failed:
        fail(f"some steps failed on this machine; see {result.report or result.run_dir}", 6)
    if result.report is None:
        from pmemkit.pipeline import ReportModulesMissing

        unrendered = ReportModulesMissing(result.run_dir, result.report_missing, result.observations)
        fail(str(unrendered), unrendered.exit_code)


@main.command()
@click.option("--rebuild", is_flag=True, help="Build a new image beside the cached one, then swap it in.")
@click.option("--verify", is_flag=True, help="Check every file of the cached image against its sha256.")
@click.option("--prune", is_flag=True, help="Remove images of other recipes and stale partial builds.")
@kernel_options
@click.option("--json", "as_json", is_flag=True, help="Print the image's manifest (or the results) as JSON.")
def image(
    rebuild: bool,
    verify: bool,
    prune: bool,
    kernel_flags: KernelFlags,
    as_json: bool,
) -> None:
    """Build (or find) the guest image: the bookworm root of vm/ and one kernel layer (--kernel).

    The cache is $PMEMKIT_CACHE or ~/.cache/pmemkit: the root under images/<recipe hash>, each
    kernel under kernels/<release>-<hash> (so adding a kernel builds only that layer). A changed
    recipe gets a new layer, and a cached layer that fails its size check is rebuilt. --prune and
    --verify do only that, for the root and every cached kernel (with --rebuild: prune, rebuild,
    then verify); --rebuild also fetches the kernel's package lists again.
    """
    from pmemkit.vm.errors import ImageBuildError
    from pmemkit.vm.image import ensure_image, prune_images, recipe_hash, verify_image
    from pmemkit.vm.kernels import (
        check_custom,
        ensure_kernel,
        prune_kernels,
        verify_kernels,
    )

    spec = kernel_flags.spec()
    if spec.custom:
        check_custom(spec)
    out: dict[str, Any] = {"image_id": recipe_hash()}
    if prune:
        pruned = prune_images()
        pruned.removed += prune_kernels().removed
        out["pruned"] = [{"path": str(path), "bytes": size} for path, size in pruned.removed]
        out["freed_bytes"] = pruned.freed
        if not as_json:
            for path, size in pruned.removed:
                click.echo(f"removed {path} ({size / 2**20:.1f} MiB)")
            click.echo(f"pruned {len(pruned.removed)} entries, freed {pruned.freed / 2**20:.1f} MiB")
    if rebuild or not (prune or verify):
        from pmemkit.progress import make_progress

        with make_progress() as progress:  # a bar on a terminal, the line log otherwise
            img = ensure_image(progress, rebuild=rebuild)
            kernel = ensure_kernel(spec, progress, rebuild=rebuild)
        out.update({**img.manifest(), "path": str(img.path)})
        out["kernel"] = {**kernel.manifest(), "path": str(kernel.path)}
        if not as_json:
            click.echo(f"guest image {img.image_id}: {img.path}")
            package = out["kernel"].get("kernel_package") or out["kernel"].get("kernel_image") or spec.label()
            click.echo(f"guest kernel {kernel.release} ({package}): {kernel.path}")
    if verify:
        path, problems = verify_image()
        if not path.is_dir():
            raise ImageBuildError(
                f"no guest image of this recipe in {path.parent}: build it with `pmemkit image`"
            )
        kernel_problems = verify_kernels()
        shown = [(path, p) for p in problems] + [(k, p) for k, found in kernel_problems for p in found]
        problems = [p if where == path else f"{where.name}: {p}" for where, p in shown]
        out.update({"path": str(path), "ok": not problems, "problems": problems})
        out["kernels_verified"] = [str(kpath) for kpath, _ in kernel_problems]
        if not as_json:
            for where, problem in shown:
                click.echo(f"{where}: {problem}")
        if problems:
            if as_json:
                click.echo(json.dumps(out, indent=2))
            raise ImageBuildError(
                f"guest image {out['image_id']} is broken ({len(problems)} problem(s)); "
                "rebuild it: pmemkit image --rebuild"
            )
        if not as_json:
            click.echo(
                f"guest image {out['image_id']} and {len(kernel_problems)} kernel layer(s): every file "
                f"matches its sha256 ({path})"
            )
    if as_json:
        click.echo(json.dumps(out, indent=2))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def probe(as_json: bool) -> None:
    """Show this kernel's pmem: nd buses, namespaces, modes, devices, DAX flags (read-only)."""
    from pmemkit.guest.probe import probe as do_probe

    info = do_probe()
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(f"kernel {info['kernel']}; pmemkit VM: {'yes' if info['pmemkit_vm'] else 'no'}")
    click.echo(f"legacy (memmap=) ranges: {info['legacy_ranges'] or 'none'}")
    if not info["namespaces"]:
        click.echo("no pmem namespaces" + (f" ({info['error']})" if "error" in info else ""))
    for ns in info["namespaces"]:
        dev = ns["blockdev"] or ns["chardev"]
        click.echo(
            f"{ns['dev']:14} {ns['provider']:10} {ns['mode']:7} map={ns['map'] or '-':4} "
            f"{ns['size'] >> 20:6} MiB  /dev/{dev}  queue/dax={ns['queue_dax']}"
        )


@main.command()
@click.argument("device")
@click.option("--fs", type=click.Choice(list(FILESYSTEMS)), default="ext4", show_default=True)
@click.option(
    "--destroy-data", is_flag=True, help="Outside pmemkit's VM: confirm that DEVICE may be overwritten."
)
@click.option("--force", is_flag=True, help="With --destroy-data: overwrite even an existing filesystem.")
@click.option("--json", "as_json", is_flag=True)
def prepare(device: str, fs: str, destroy_data: bool, force: bool, as_json: bool) -> None:
    """Make a filesystem on a pmem DEVICE and mount it with -o dax=always, if safety allows.

    Inside pmemkit's VM only emulated pmem qualifies; elsewhere only a DEVICE you name with
    --destroy-data, never a mounted one, and never one with data on it unless --force too.
    A failed DAX mount exits 8 (the filesystem stays made, nothing stays mounted).
    """
    from pmemkit.guest.prepare import mkfs, mount_dax
    from pmemkit.guest.safety import ToolMissing
    from pmemkit.vm.errors import HostToolMissing

    try:
        clearance = mkfs(device, fs, destroy_data=destroy_data, force=force)
    except ToolMissing as exc:
        fail(str(exc), HostToolMissing.exit_code)
    result = mount_dax(clearance.path, fs)  # the node safety checked, links resolved
    info = {
        "device": device,
        "path": clearance.path,
        "fs": fs,
        "clearance": clearance.rule,
        "outcome": result.outcome,
        "mountpoint": result.mountpoint,
        "detail": result.detail,
        "kernel_messages": result.messages,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
    if result.mountpoint is None:
        fail(
            f"{clearance.path}: formatted {fs}, but the dax mount failed: {result.outcome} — {result.detail}",
            EXIT_GUEST_ERROR,
        )
    if not as_json:
        click.echo(f"{device}: dax-mount {result.outcome} at {result.mountpoint} — {result.detail}")


@main.command("guest-run", hidden=True)
@click.option("--plan", "plan_path", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
def guest_run(plan_path: Path, out_dir: Path) -> None:
    """Inside the VM: carry out plan.json and write observations into --out (used by `run`)."""
    from pmemkit.guest.runner import guest_run as do_run

    sys.exit(do_run(plan_path, out_dir))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the observations as JSON instead.")
@click.option(
    "--format",
    "ci_format",
    type=click.Choice(["ktap", "junit"]),
    default=None,
    help="Print the verdict for a CI system instead (KTAP or JUnit XML; one case per target and "
    "operation: ok when the kernel did what the model predicts). Writes nothing; exit 0 either way.",
)
def report(run_dir: Path, as_json: bool, ci_format: str | None) -> None:
    """Re-render RUN_DIR/report.html, report.md, observations.csv and plots/ from its files (e.g.
    after a model update), or print its verdict as KTAP or JUnit (--format).

    RUN_DIR must be a pmemkit run (a plan.json, environment.json or observations.jsonl of
    pmemkit's); anything else is refused before a file is written (exit 2).
    """
    from pmemkit.pipeline import ci_report, render_report
    from pmemkit.rundir import RunDir, RunDirError

    if as_json and ci_format:
        fail("--json and --format are alternatives: give one", 2)
    try:
        if ci_format:
            text, warnings = ci_report(run_dir, ci_format)
            for warning in warnings:
                click.echo(f"pmemkit: warning: {warning}", err=True)
            click.echo(text, nl=False)
            return
        if as_json:
            with RunDir.open(run_dir) as run:
                files = run.load()
            for warning in files.warnings:
                click.echo(f"pmemkit: warning: {warning}", err=True)
            click.echo(json.dumps([o.to_dict() for o in files.observations], indent=2))
            return
        path, count = render_report(run_dir)
    except RunDirError as exc:
        fail(str(exc), exc.exit_code)
    click.echo(f"{count} observations; report: {path}")
