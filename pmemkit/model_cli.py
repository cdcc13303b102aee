"""`pmemkit model ...`: ask the page-backing model from the shell (thin: parse, call, print).

Every expected error is ONE line on stderr, `pmemkit: error: <cause and fix>`, exit status 2.
"""

from __future__ import annotations

import functools
import json
import textwrap
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

import click

from pmemkit import units
from pmemkit.model import (
    build_table,
    explain,
    memmap_size,
    predict,
    render_json,
    render_markdown,
    render_text,
    rule_by_name,
)
from pmemkit.model import diff as model_diff
from pmemkit.model.kernel import extrapolation_warning, is_extrapolated, parse_kernel
from pmemkit.model.rules import MODEL_OPERATIONS, SEED, STACKS, Rule
from pmemkit.scenario import MODES, SOURCES, PmemConfig, Scenario, ScenarioError, parse_size

EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    """Print one line and exit 2: the contract for every expected error."""
    click.echo("pmemkit: error: " + " ".join(str(message).split()), err=True)
    raise click.exceptions.Exit(EXIT_USAGE)


class ModelCommand(click.Command):
    """A command whose usage errors (missing/unknown option) are one line, not a usage dump."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            fail(f"{exc.format_message()} (see: pmemkit model {self.name} --help)")


class ModelGroup(click.Group):
    """The `model` group, with the same one-line usage errors for unknown subcommands."""

    command_class = ModelCommand

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            fail(f"{exc.format_message()} (see: pmemkit model --help)")


def one_line_errors(func: Callable[..., None]) -> Callable[..., None]:
    """Turn the model's and the vocabulary's expected errors into the one-line contract."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except ScenarioError as exc:  # ModelError is a ScenarioError
            fail(str(exc))

    return wrapper


def _size(text: str | None) -> int | None:
    return None if text is None else parse_size(text)


KERNEL_HELP = (
    "Kernel version: 4.15, 6.1.5, 6.11-rc2, or a release string such as 6.1.0-50-amd64 "
    "(read as the newest 6.1 stable). Versions between known points take the rule in force."
)


STACK_HELP = (
    f"Block stack over TWO devices of the given --pmem/--mode: {', '.join(STACKS)} (default "
    "none: the bare device). md = mdadm RAID0/RAID1, dm = dmsetup linear/stripe. Predicts whether "
    "the stacked device passes DAX through, and every operation on a filesystem over it."
)


def json_option(help: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """`--json` (as_json) for every model command; only what it prints differs."""
    return click.option("--json", "as_json", is_flag=True, help=help)


#: `--stack` for predict, explain and table; the model validates it (one-line error, exit 2).
stack_option = click.option("--stack", default="none", show_default=True, help=STACK_HELP)


class ScenarioFlags(NamedTuple):
    """The flags of predict and explain (scenario, operation, stack), as typed, before any check."""

    kernel: str
    source: str
    mode: str | None
    map_: str | None
    fs: str | None
    force_raw: bool
    align: str | None
    operation: str
    stack: str
    reflink: bool | None

    def scenario(self) -> Scenario:
        """The Scenario they name; ScenarioError (one line, under one_line_errors) when they do not."""
        source, mode, map_, _ = resolve_pmem(self.source, self.mode, self.map_)
        return Scenario(
            kernel=self.kernel,
            source=source,
            mode=mode,
            map=map_,
            force_raw=self.force_raw,
            fs=self.fs,
            align=_size(self.align),
        )


def scenario_options(func: Callable[..., None]) -> Callable[..., None]:
    """The scenario flags shared by predict and explain, handed to the command as one ScenarioFlags."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        flags = ScenarioFlags(**{name: kwargs.pop(name) for name in ScenarioFlags._fields})
        func(flags=flags, **kwargs)

    options = [
        click.option("--kernel", required=True, help=KERNEL_HELP),
        click.option(
            "--pmem",
            "source",
            required=True,
            help=f"Where the pmem comes from: {', '.join(SOURCES)} (memmap = legacy "
            "memmap=nn!ss e820 range; nvdimm = ACPI NFIT, QEMU -device nvdimm), or a `run` spec "
            "such as memmap:512M or nvdimm:1G,mode=devdax,map=dev (then --mode/--map are optional).",
        ),
        click.option(
            "--mode",
            default=None,
            help=f"Namespace mode: {', '.join(MODES)}, kmem (devdax as System RAM). raw = plain "
            "block device; fsdax = pfn device (filesystem DAX); devdax = /dev/daxX.Y; sector = BTT. "
            "Required unless --pmem is a full spec.",
        ),
        click.option(
            "--map",
            "map_",
            default=None,
            help="fsdax/devdax only: where struct page lives, mem (DRAM, default) or dev "
            "(reserved in the pmem itself).",
        ),
        click.option(
            "--fs", default=None, help="Filesystem for mount/file operations: ext4 (default) or xfs."
        ),
        click.option(
            "--force-raw",
            is_flag=True,
            help="raw only: set the namespace's force_raw "
            "(no struct page even on memmap/virtio-pmem, kernel >= 5.1).",
        ),
        click.option(
            "--align",
            default=None,
            help="Namespace/range alignment, e.g. 4K, 2M, "
            "1G (default 2M). Below 2M: no PMD faults; memmap= below 2M: no /dev/pmem "
            "on >= 5.3.",
        ),
        click.option(
            "--op",
            "operation",
            required=True,
            help="Operation: " + ", ".join(MODEL_OPERATIONS) + ". stack-copy = sector-to-sector "
            "O_DIRECT copy through the device or --stack (block I/O, no user mapping of pmem).",
        ),
        stack_option,
        click.option(
            "--xfs-reflink/--no-xfs-reflink",
            "reflink",
            default=None,
            help="XFS only: whether the filesystem has reflink. Default: what pmemkit's mkfs makes, "
            "mkfs.xfs's default (reflink on since xfsprogs 5.1); before 6.0 XFS refuses -o dax on it.",
        ),
    ]
    command: Callable[..., None] = wrapper
    for option in reversed(options):
        command = option(command)
    return command


def resolve_pmem(pmem: str, mode: str | None, map_: str | None) -> tuple[str, str, str | None, int | None]:
    """`--pmem` as a source name or as `run`'s spec -> (source, mode, map, size or None).

    One spelling for both front ends (issue 9): `memmap:512M` and `virtio-pmem:1G` are raw
    namespaces in pmemkit's guest, `nvdimm:1G` defaults to fsdax map=mem as `run` does. A --mode
    or --map given beside a spec must agree with it.
    """
    if ":" not in pmem:
        if mode is None:
            raise ScenarioError(
                "--mode is required with --pmem "
                + units.shown(pmem)
                + ": give --mode raw|fsdax|devdax|sector, "
                "or a full spec such as --pmem nvdimm:1G,mode=fsdax"
            )
        return pmem, mode, map_, None
    config = PmemConfig.parse(pmem)
    spec_mode = config.mode or "raw"
    if mode is not None and mode != spec_mode:
        raise ScenarioError(
            f"--mode {units.shown(mode)} contradicts --pmem {units.shown(pmem)} (mode {spec_mode}): give one"
        )
    spec_map = config.map if "map=" in pmem else None  # run's default map=mem gives way to --map
    if map_ is not None and spec_map is not None and map_ != spec_map:
        raise ScenarioError(
            f"--map {units.shown(map_)} contradicts --pmem {units.shown(pmem)} (map {config.map}): give one"
        )
    return config.source, spec_mode, map_ or config.map, config.size


def _warn_if_extrapolated(*kernels: str) -> None:
    """Text output only: one warning line per kernel newer than the newest the model knows."""
    for text in kernels:
        kernel = parse_kernel(text)
        if is_extrapolated(kernel):
            click.echo(extrapolation_warning(kernel))


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, width=96, initial_indent=indent, subsequent_indent=indent)


@click.group(cls=ModelGroup, name="model")
def model() -> None:
    """Ask the page-backing model: which pmem pages get `struct page`, what it costs, what works.

    The model encodes, per kernel version and with a citation for every rule, how Linux decides
    whether persistent memory gets a `struct page` array — the rule from Ingo Molnar's 2015 mail:
    a page visible to user space through the MMU needs struct page; a page hidden behind the
    block layer does not. The VM experiments then confirm or refute each prediction.

    \b
    Examples:
      pmemkit model predict --kernel 6.1 --pmem nvdimm --mode raw --fs ext4 --op dax-mount
      pmemkit model predict --kernel 6.1 --pmem memmap --mode raw --stack md-raid0 --op dax-mount
      pmemkit model explain --kernel 4.15 --pmem nvdimm --mode fsdax --map mem --op longterm-pin
      pmemkit model table   --kernel 6.12 --markdown
      pmemkit model table   --kernel 6.1 --stack dm-linear
      pmemkit model size    --kernel 6.1.150 --mode fsdax --map dev --size 16GiB
      pmemkit model diff    --from 6.1 --to 7.3 --markdown
      pmemkit model whatif  runs/<timestamp> --devices 6TiB
    """


@model.command(name="predict")
@scenario_options
@json_option(
    "Print one JSON object (outcome, struct_page, memmap_location, rule, sources, kernel_range, status, ...)."
)
@one_line_errors
def predict_cmd(flags: ScenarioFlags, as_json: bool) -> None:
    """Predict what the kernel does for one scenario and operation.

    Outcomes are names: ok, an errno name (EINVAL, EOPNOTSUPP, EFAULT, ...), fallback (the
    kernel silently does something else, e.g. XFS turning DAX off) or n/a. The answer names the
    rule that decided, the kernel range it holds for, and its sources; rules marked [I] are
    inferred and wait for the VM to confirm them. Use `explain` for the full reasoning.
    """
    p = predict(flags.scenario(), flags.operation, flags.stack, flags.reflink)
    rule = rule_by_name(p.rule)
    if as_json:
        _emit_json(p.to_dict())
        return
    _warn_if_extrapolated(flags.kernel)
    click.echo(
        f"{p.outcome}    {flags.operation} on {_label(p.scenario, flags.stack)}, kernel {flags.kernel}"
    )
    where = f"in {p.memmap_location}" if p.struct_page else "none"
    members = " (of the member devices)" if flags.stack != "none" else ""
    click.echo(f"struct page{members}: {'yes' if p.struct_page else 'no'} (memmap {where})")
    if flags.stack != "none":
        click.echo(f"{flags.stack} advertises DAX: {'yes' if p.stack_dax else 'no'}")
    click.echo(f"rule: {p.rule} [{rule.status}], holds for kernel {p.kernel_range}")
    click.echo("sources:")
    for source_ in p.sources:
        click.echo(f"  - {source_}")


def _label(scenario: Scenario, stack: str) -> str:
    """`nvdimm raw ext4`, or `dm-linear over 2 x nvdimm raw ext4` under a stack."""
    return scenario.label() if stack == "none" else f"{stack} over 2 x {scenario.label()}"


def _rule_block(title: str, rule: Rule, answer: str) -> list[str]:
    lines = [
        f"{title}: {answer}   [{rule.name}, {rule.status}, kernel {rule.range}, when {rule.condition()}]",
        _wrap(rule.why),
    ]
    lines += [f"    source: {s}" for s in rule.sources]
    return lines


@model.command(name="explain")
@scenario_options
@json_option("Print the chain of rules as JSON.")
@one_line_errors
def explain_cmd(flags: ScenarioFlags, as_json: bool) -> None:
    """Explain a prediction step by step, back to the seed mail's rule.

    The model answers four questions in order, each by the first matching rule of its table:
    does the mode exist in this kernel; does the namespace get struct page and where (dram,
    pmem, none); what a mapping of it is (DAX with pages, page-less DAX, page cache, device-DAX);
    with --stack, whether the stacked device passes DAX through; and finally the operation's
    outcome. Each step shows its rule, kernel range, condition, status ([V] verified /
    [I] inferred) and sources.
    """
    chain, op_rule = explain(flags.scenario(), flags.operation, flags.stack, flags.reflink)
    steps = [("exists in this kernel", chain.available)]
    if chain.struct_page is not None and chain.fs_dax is not None:
        steps += [("struct page", chain.struct_page), ("mapping", chain.fs_dax)]
    if chain.stack_dax is not None:
        steps.append((f"{flags.stack} passes DAX", chain.stack_dax))
    outcome = "n/a" if op_rule is chain.available else op_rule.answer
    if op_rule is not chain.available:
        steps.append((flags.operation, op_rule))
    if as_json:
        _emit_json(
            {
                "scenario": chain.scenario.to_dict(),
                "stack": flags.stack,
                "operation": flags.operation,
                "outcome": outcome,
                "extrapolated": is_extrapolated(chain.kernel),
                "seed": SEED,
                "steps": [
                    {
                        "question": q,
                        "rule": r.name,
                        "answer": r.answer,
                        "status": r.status,
                        "kernel_range": str(r.range),
                        "when": r.condition(),
                        "why": r.why,
                        "sources": list(r.sources),
                    }
                    for q, r in steps
                ],
            }
        )
        return
    _warn_if_extrapolated(flags.kernel)
    click.echo(
        f"{flags.operation} on {_label(chain.scenario, flags.stack)}, kernel {flags.kernel}: {outcome}\n"
    )
    for n, (question, rule) in enumerate(steps, 1):
        click.echo("\n".join(_rule_block(f"{n}. {question}", rule, rule.answer)))
        click.echo()
    click.echo("Root of it all:")
    click.echo(_wrap(SEED))


@model.command(name="table")
@click.option("--kernel", required=True, help=KERNEL_HELP)
@click.option(
    "--fs",
    default="ext4",
    show_default=True,
    help="Filesystem for the block modes' mount and file operations (ext4 or xfs).",
)
@json_option("Print JSON: columns and, per operation, outcome, struct_page, rule, status, kernel_range.")
@click.option("--markdown", is_flag=True, help="Print a Markdown table like the reference's.")
@stack_option
@one_line_errors
def table_cmd(kernel: str, fs: str, as_json: bool, markdown: bool, stack: str) -> None:
    """Every mode x every operation for one kernel, as a decision table.

    Columns are fsdax map=mem/dev, devdax map=mem/dev, raw NFIT (QEMU nvdimm), raw legacy
    memmap=, raw virtio-pmem and sector/BTT; the first row says where each one's struct page
    array lives. With --stack each column is that stack over two devices of its kind, and a row
    says whether the stacked device advertises DAX. Cells marked [I] are inferred and wait for
    the VM.
    """
    if as_json and markdown:
        fail("--json and --markdown exclude each other: pick one")
    table = build_table(kernel, fs, stack)
    if not as_json:
        _warn_if_extrapolated(kernel)
    click.echo(render_json(table) if as_json else render_markdown(table) if markdown else render_text(table))


def _human(n: int) -> str:
    """Bytes with a binary unit, exact where possible: 18 MiB, 15.98 GiB (17163091968 B)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            text = f"{value:g} {unit}" if n % (1 << shift) == 0 else f"{value:.2f} {unit}"
            return text if n % (1 << shift) == 0 else f"{text} ({n} B)"
    return f"{n} B"


@model.command(name="size")
@click.option("--kernel", required=True, help=KERNEL_HELP)
@click.option(
    "--mode",
    default=None,
    help=f"Namespace mode: {', '.join(MODES)}, kmem (required unless --pmem is a spec).",
)
@click.option(
    "--map",
    "map_",
    default=None,
    help="fsdax/devdax: mem (memmap in DRAM, default) "
    "or dev (memmap reserved at the start of the namespace).",
)
@click.option(
    "--size",
    "size_text",
    default=None,
    help="Namespace size: 512M, 16GiB, 1073741824 (binary units); taken from --pmem SOURCE:SIZE if omitted.",
)
@click.option(
    "--align", default=None, help="Namespace alignment (default 2M); the size must be a multiple of it."
)
@click.option(
    "--pmem",
    "source",
    default="nvdimm",
    show_default=True,
    help=f"pmem source ({', '.join(SOURCES)}) or a `run` spec such as memmap:512M; matters for raw mode.",
)
@click.option("--force-raw", is_flag=True, help="raw only: no struct page (kernel >= 5.1).")
@json_option(
    "Print JSON with memmap_bytes, memmap_location, data_offset_bytes, usable_bytes, dram_bytes, ..."
)
@one_line_errors
def size_cmd(
    kernel: str,
    mode: str | None,
    map_: str | None,
    size_text: str | None,
    align: str | None,
    source: str,
    force_raw: bool,
    as_json: bool,
) -> None:
    """What the struct page array of one namespace costs, and where.

    struct page is 64 B per 4 KiB page: 1.5625 % of the namespace (16 GiB per TiB). map=mem
    takes it from DRAM when the namespace is enabled (watch MemFree drop; MemTotal stays); map=dev reserves
    MAX_STRUCT_PAGE_SIZE per page (128 B on early 6.1) at the start of the namespace per
    nd_pfn_init(), so the data starts later and less is usable. A raw memmap= namespace pays in
    DRAM with no info block; devdax map=mem on >= 5.19 shares tail vmemmap pages.
    """
    source, mode, map_, spec_size = resolve_pmem(source, mode, map_)
    if size_text is None and spec_size is None:
        fail("--size is required unless --pmem carries one (e.g. --pmem nvdimm:16G,mode=fsdax)")
    size = parse_size(size_text) if size_text is not None else spec_size
    if size_text is not None and spec_size is not None and size != spec_size:
        fail(f"--size {size_text} contradicts the size in --pmem {source} spec: give one")
    assert size is not None
    report = memmap_size(kernel, mode, size, map_, _size(align), source, force_raw)
    if as_json:
        _emit_json(report.to_dict())
        return
    _warn_if_extrapolated(kernel)
    label = " ".join(x for x in (source, mode, f"map={report.map}" if report.map else "") if x)
    click.echo(
        f"kernel {kernel}, {label}, size {_human(report.size_bytes)}, align {_human(report.align_bytes)}"
    )
    if report.memmap_location == "none":
        click.echo("struct page: none (no memmap)")
    else:
        click.echo(
            f"struct page: {report.struct_page_bytes} B per 4 KiB page, memmap in "
            f"{report.memmap_location}: {_human(report.memmap_bytes)}"
        )
    click.echo(f"data offset: {_human(report.data_offset_bytes)}")
    click.echo(f"usable:      {_human(report.usable_bytes)}")
    click.echo(f"DRAM cost:   {_human(report.dram_bytes)} (MemFree drop)")
    if report.vmemmap_dedup_saved_bytes:
        click.echo(f"vmemmap dedup saves: {_human(report.vmemmap_dedup_saved_bytes)}")
    for note in report.notes:
        click.echo(f"note: {note}")


@model.command(name="diff")
@click.option("--from", "old", required=True, help="The kernel you have, e.g. 6.1. " + KERNEL_HELP)
@click.option("--to", "new", required=True, help="The kernel you move to, e.g. 7.3.")
@json_option("Print JSON: every change with both rules and the sources.")
@click.option("--markdown", is_flag=True, help="Print a Markdown table.")
@click.option(
    "--all",
    "all_rules",
    is_flag=True,
    help="Also list cells that keep their outcome but are decided by another rule.",
)
@stack_option
@one_line_errors
def diff_cmd(old: str, new: str, as_json: bool, markdown: bool, all_rules: bool, stack: str) -> None:
    """Every prediction that changes between two kernels, with the rule and source behind it.

    Asks both kernels every operation on every table column (fsdax map=mem/dev, devdax, raw
    NFIT/memmap=/virtio-pmem, sector) under ext4 and xfs, and on the baselines (anonymous
    memory, the root disk's page cache, the page-less /dev/mem control). A cell changes when its
    outcome or its struct page answer differs; "changed by" is the newer kernel's rule that makes
    the difference, with its kernel range and sources.
    """
    if as_json and markdown:
        fail("--json and --markdown exclude each other: pick one")
    result = model_diff.diff(old, new, stack, all_rules)
    if as_json:
        click.echo(model_diff.render_json(result))
        return
    _warn_if_extrapolated(old, new)
    click.echo(model_diff.render_markdown(result) if markdown else model_diff.render_text(result))


#: Without a run: Debian bookworm's 6.1 as `pmemkit run --kernel 6.1` resolves it today (README).
DEFAULT_WHATIF_KERNEL = "6.1.192"


@model.command(name="whatif")
@click.argument("run_dir", required=False, metavar="[RUN_DIR]")
@click.option(
    "--devices",
    "devices",
    multiple=True,
    metavar="SIZE",
    help="Also price a hypothetical device: a size (an nvdimm fsdax namespace, e.g. 6TiB) or a "
    "`run` spec such as nvdimm:6T,mode=devdax. Repeat for more.",
)
@click.option(
    "--kernel",
    default=None,
    help=f"Kernel to price for (default: the run's; {DEFAULT_WHATIF_KERNEL} without a run). " + KERNEL_HELP,
)
@click.option(
    "--mapped",
    default=None,
    metavar="SIZE",
    help="How much of each hypothetical device user space maps, for the on-demand design "
    "(default: all of it, the worst case).",
)
@json_option("Print JSON: per design the DRAM and pmem bytes and the failing operations with sources.")
@click.option("--markdown", is_flag=True, help="Print Markdown, as in the run's report.")
@one_line_errors
def whatif_cmd(
    run_dir: str | None,
    devices: tuple[str, ...],
    kernel: str | None,
    mapped: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """The 2015 designs side by side for a run's devices and operations (issue 13).

    \b
    page-less __pfn_t            no struct page for pmem (Dan Williams' series)
    struct page at mmap          made on demand when a range is mapped (Ingo Molnar, seed mail)
    whole device at enable       what was merged (ZONE_DEVICE), map=mem (DRAM) or map=dev (pmem)

    For each design: the page metadata in DRAM and on pmem per device (`pmemkit model size`'s
    numbers for the merged design), which of the run's operations fail or change, each with its
    source (the run's observation, the page-less /dev/mem control's, or a model rule), and an
    estimate of what on-demand pages would cost on the measured fault path.

    \b
    Examples:
      pmemkit model whatif runs/20261207-031952
      pmemkit model whatif runs/20261207-031952 --devices 6TiB --json
      pmemkit model whatif --devices 6TiB --kernel 6.12
    """
    from pmemkit.model.whatif import whatif
    from pmemkit.model.whatif_render import render_markdown, render_text

    if as_json and markdown:
        fail("--json and --markdown exclude each other: pick one")
    if run_dir is None and not devices:
        fail("give a run directory, --devices SIZE, or both (see: pmemkit model whatif --help)")
    plan, observations, name = None, [], None
    if run_dir is not None:
        plan, observations, name, run_kernel_text = _load_run(run_dir)
        if kernel is not None and run_kernel_text is not None and kernel != run_kernel_text:
            fail(
                f"--kernel {units.shown(kernel)} contradicts the run's kernel {run_kernel_text}: a run is "
                "priced for the kernel it ran; drop --kernel (it is for --devices without a run)"
            )
        kernel = kernel or run_kernel_text
    mapped_bytes = parse_size(mapped, "--mapped", minimum=1) if mapped is not None else None
    result = whatif(kernel or DEFAULT_WHATIF_KERNEL, plan, observations, name, list(devices), mapped_bytes)
    if as_json:
        _emit_json(result.to_dict())
    elif markdown:
        click.echo("\n".join(render_markdown(result)))
    else:
        click.echo(render_text(result), nl=False)


def _load_run(run_dir: str) -> tuple[dict[str, Any], list[Any], str, str | None]:
    """plan, observations, name and kernel of a run directory; one line and its exit code if not."""
    from pathlib import Path

    from pmemkit import rundir
    from pmemkit.model.whatif import run_kernel

    try:
        with rundir.RunDir.open(Path(run_dir)) as run:
            files = run.load()
    except rundir.RunDirError as exc:
        click.echo("pmemkit: error: " + " ".join(str(exc).split()), err=True)
        raise click.exceptions.Exit(exc.exit_code) from None
    if not files.plan.get("pmem"):
        fail(f"{run_dir}: plan.json names no pmem device, so there is nothing to price")
    return files.plan, files.observations, files.name, run_kernel(files.observations, files.guest_environment)
