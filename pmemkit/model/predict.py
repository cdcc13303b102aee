"""predict(scenario, operation, stack) -> Prediction: walk the rule table, say which rule decided.

What the model is asked (the contract with the experiments and the report's join):
- pmem scenarios `Scenario(kernel, source=memmap|nvdimm|virtio-pmem, mode=raw|fsdax|devdax|sector,
  map=, fs=, align=, stack=)`. When the DAX mount falls back (XFS on a raw NVDIMM, on md RAID ...)
  the model already predicts `dax-mount` = fallback; every other operation on that scenario is
  then predicted with page-cache semantics (fs-dax answer `none`). When the mount is refused
  (ext4 without DAX) file operations are `n/a`: they cannot be attempted.
- baselines `Scenario(kernel, source="baseline", mode="anonymous"|"pagecache"|"devmem", fs=...)`;
  the page-less `/dev/mem` control may also say `source="memmap", mode="devmem"` (as the guest
  does today).
- operation names as observed: the MODEL_OPERATIONS names, the mapping-suffixed odirect family
  (`odirect-read-into-anon|-pagecache-mmap|-pageless`, `buffered-read-into-*`,
  `odirect-latency-*`), variants after a colon (`:read-only`, `:unfaulted`, `:after-fork`), the
  legacy `:pagecache-mmap` fallback suffix, and every d2d path: `d2d-blockdev-{odirect-anon,
  copy-file-range,sendfile,splice,buffered}` and `d2d-{ext4,xfs}-dax-{same,odirect-dax-buffer}`
  (see operations.py), and `stack-queue-dax` (queue/dax of the device or stack). Bookkeeping
  steps (`stack-build`, `stack-teardown`, `d2d-file-copies`) are not predicted: the report lists
  them as unpredicted when they carry a kernel answer, and leaves them out when skipped.
- `n/a` only for an operation that cannot be attempted (no file, no block device, mount refused).

The walk is always the same (see rules.py): available -> struct-page -> fs-dax -> [stack-dax] ->
operation. The Prediction names the operation's rule and its range; `explain()` returns the whole
chain so a person can follow the answer back to the seed mail.

Stacks: `stack` (none, md-raid0, md-raid1, dm-linear, dm-stripe) is a block stack built over two
devices of the scenario's source and mode. It is an argument here, not a Scenario field, until
pmemkit.scenario grows one; the Prediction returned is a `StackPrediction` carrying `stack` and
`stack_dax` so its JSON has both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from pmemkit.model.errors import ModelError
from pmemkit.model.kernel import Kernel, is_extrapolated, parse_kernel
from pmemkit.model.operations import canonical
from pmemkit.model.rules import (
    BASELINE_MODES,
    EXTRA_MODES,
    EXTRA_SOURCES,
    MODEL_OPERATIONS,
    SEED,
    STACKS,
    Rule,
    decide,
)
from pmemkit.scenario import FILESYSTEMS, MAPS, MODES, SOURCES, Prediction, Scenario

TWO_MIB = 2 << 20
SECTION = 128 << 20  # x86-64 memory section before sub-section hotplug (5.3)
MODEL_SOURCES = SOURCES + EXTRA_SOURCES
MODEL_MODES = MODES + EXTRA_MODES
#: What each mapping kind is called in reports (per-kind counts of the model-vs-kernel join).
KINDS = {
    "pages": "DAX",
    "chardev": "DAX",
    "pageless": "page-less",
    "devmem": "page-less",
    "none": "page cache",
    "anonymous": "anonymous",
    "absent": "DAX",
}
FS_MAPPED = ("pages", "pageless")  # a filesystem on the device gets a DAX mapping
DEFAULT_FS = "ext4"


def check_align(align: int | None) -> None:
    """Alignments are powers of two from 4 KiB to 1 GiB (ndctl --align, memmap range alignment)."""
    if align is None:
        return
    if align < 4096 or align > (1 << 30) or align & (align - 1):
        raise ModelError(f"alignment {align} is not a power of two between 4K and 1G: use e.g. --align 2M")


def normalize(scenario: Scenario) -> Scenario:
    """Validate a scenario and fill the defaults the kernel would use (map=mem for fsdax/devdax).

    Raises ModelError for nonsense: unknown names, map= on raw/sector, force_raw off raw.
    """
    parse_kernel(scenario.kernel)
    if scenario.mode in BASELINE_MODES:
        return _normalize_baseline(scenario)
    if scenario.source not in MODEL_SOURCES:
        raise ModelError(f"unknown pmem source {scenario.source!r}: use one of {', '.join(MODEL_SOURCES)}")
    if scenario.mode not in MODEL_MODES:
        raise ModelError(
            f"unknown namespace mode {scenario.mode!r}: use one of {', '.join(MODEL_MODES + BASELINE_MODES)}"
        )
    map_ = scenario.map
    if scenario.mode in ("fsdax", "devdax"):
        map_ = map_ or "mem"
        if map_ not in MAPS:
            raise ModelError(f"unknown map {map_!r}: use mem (memmap in DRAM) or dev (in pmem)")
    elif map_ is not None:
        raise ModelError(
            f"map={map_} does not apply to mode {scenario.mode}: only fsdax and devdax have a "
            "memmap location to choose; drop --map or use --mode fsdax|devdax"
        )
    if scenario.force_raw and scenario.mode != "raw":
        raise ModelError(
            f"force_raw does not apply to mode {scenario.mode}: it only keeps a raw namespace "
            "page-less; drop --force-raw or use --mode raw"
        )
    if scenario.fs is not None and scenario.fs not in FILESYSTEMS:
        raise ModelError(f"unknown filesystem {scenario.fs!r}: use one of {', '.join(FILESYSTEMS)}")
    check_align(scenario.align)
    return dataclasses.replace(scenario, map=map_)


def _normalize_baseline(scenario: Scenario) -> Scenario:
    """anonymous / pagecache (source baseline) and devmem (source baseline or memmap)."""
    allowed = ("baseline", "memmap") if scenario.mode == "devmem" else ("baseline",)
    if scenario.source not in allowed:
        raise ModelError(
            f"mode {scenario.mode} is a baseline: use source {' or '.join(allowed)}, not {scenario.source!r}"
        )
    if scenario.map is not None or scenario.force_raw or scenario.stack not in (None, "none"):
        raise ModelError(f"map=, force_raw and stacks do not apply to the {scenario.mode} baseline")
    fs = scenario.fs
    if scenario.mode == "pagecache":
        fs = fs or "ext4"  # the root disk's filesystem in pmemkit's image
        if fs not in FILESYSTEMS:
            raise ModelError(f"unknown filesystem {fs!r}: use one of {', '.join(FILESYSTEMS)}")
    elif fs is not None:
        raise ModelError(f"the {scenario.mode} baseline has no filesystem: drop fs={fs}")
    return dataclasses.replace(scenario, fs=fs)


def check_operation(operation: str) -> str:
    if operation not in MODEL_OPERATIONS:
        raise ModelError(f"unknown operation {operation!r}: use one of {', '.join(MODEL_OPERATIONS)}")
    return operation


def check_stack(stack: str) -> str:
    """A known stack name (the stack is built over two devices of the scenario's kind)."""
    if stack not in STACKS:
        raise ModelError(f"unknown stack {stack!r}: use one of {', '.join(STACKS)}")
    return stack


def effective_stack(scenario: Scenario, stack: str = "none") -> str:
    """The stack to model: the `stack` argument, or the scenario's own `stack` field if it has one.

    pmemkit.scenario may carry the stack itself (None or "none" = bare device); the argument
    and the field must then agree unless one of them is "none".
    """
    check_stack(stack)
    own = getattr(scenario, "stack", None) or "none"
    check_stack(own)
    if stack == "none":
        return own
    if own not in ("none", stack):
        raise ModelError(f"stack {stack!r} contradicts the scenario's stack {own!r}: give only one")
    return stack


@dataclass
class StackPrediction(Prediction):
    """A Prediction that also says which block stack it is for and whether that device has DAX.

    `stack_dax` is what the stacked device (or the bare device for stack `none`) advertises:
    true when a filesystem on it gets a DAX mapping (queue/dax=1 and the mount keeps DAX).
    `struct_page`/`memmap_location` stay those of the member devices. `kind` is what the
    operation works on (DAX, page cache, anonymous, page-less, d2d, stack); `extrapolated` is
    true for a kernel newer than the newest the model knows (kernel.NEWEST).
    """

    stack: str = "none"
    stack_dax: bool = False
    kind: str = ""
    extrapolated: bool = False


@dataclass(frozen=True)
class Chain:
    """The rules that decided, in order, and the facts they saw."""

    kernel: Kernel
    scenario: Scenario
    facts: dict[str, object]
    available: Rule
    struct_page: Rule | None
    fs_dax: Rule | None
    stack: str = "none"
    stack_dax: Rule | None = None  # None for stack "none" (no stack question to ask)

    @property
    def memmap_location(self) -> str:
        return self.struct_page.answer if self.struct_page else "none"

    @property
    def device_dax(self) -> bool:
        """Does the device a filesystem would sit on (the stack, or the bare one) offer DAX?"""
        return self.facts.get("fs_dax") in FS_MAPPED

    def rules(self) -> list[Rule]:
        chain = (self.available, self.struct_page, self.fs_dax, self.stack_dax)
        return [r for r in chain if r is not None]


def _reflink(scenario: Scenario, fs: str) -> bool:
    """XFS reflink: the scenario's own `reflink` field if it grows one, else what pmemkit's mkfs
    makes (mkfs.xfs's default, reflink=1 since xfsprogs 5.1; guest/prepare.py passes no -m)."""
    own = getattr(scenario, "reflink", None)
    return fs == "xfs" if own is None else bool(own) and fs == "xfs"


def backing(scenario: Scenario, stack: str = "none", reflink: bool | None = None) -> Chain:
    """Answer available / struct-page / fs-dax [/ stack-dax] for a scenario (after normalize).

    With a stack, `facts["member_fs_dax"]` keeps the members' answer and `facts["fs_dax"]`
    becomes the stacked device's, so the operation rules judge the device a filesystem sits on.
    The answer is cached (a table or a report asks the same scenario for every operation): treat
    the returned Chain, its `facts` included, as read-only.
    """
    return _backing(scenario, stack, reflink)


@lru_cache(maxsize=4096)
def _backing(scenario: Scenario, stack: str, reflink: bool | None) -> Chain:
    scenario = normalize(scenario)
    stack = effective_stack(scenario, stack)
    kernel = parse_kernel(scenario.kernel)
    fs = scenario.fs or DEFAULT_FS
    facts: dict[str, object] = {
        "stack": stack,
        "source": scenario.source,
        "mode": scenario.mode,
        "map": scenario.map,
        "fs": fs,
        "force_raw": bool(scenario.force_raw),
        "aligned_2m": scenario.align is None or scenario.align >= TWO_MIB,
        "aligned_128m": scenario.align is None or scenario.align >= SECTION,
        "baseline": scenario.mode in BASELINE_MODES,
        "reflink": _reflink(scenario, fs) if reflink is None else reflink and fs == "xfs",
        "mount_refused": False,
    }
    available = decide("available", kernel, facts)
    if available.answer == "no":
        facts.update(memmap="none", fs_dax="absent")
        return Chain(kernel, scenario, facts, available, None, None, stack)
    struct_page = decide("struct-page", kernel, facts)
    facts["memmap"] = struct_page.answer
    fs_dax = decide("fs-dax", kernel, facts)
    facts["fs_dax"] = facts["member_fs_dax"] = fs_dax.answer
    stack_dax = None
    if stack != "none":
        stack_dax = decide("stack-dax", kernel, facts)
        if stack_dax.answer == "none":
            facts["fs_dax"] = "none"
    if not facts["baseline"]:
        facts["mount_refused"] = decide("dax-mount", kernel, facts).answer.startswith("E")
    return Chain(kernel, scenario, facts, available, struct_page, fs_dax, stack, stack_dax)


def decide_operation(chain: Chain, operation: str) -> Rule:
    """The operation's rule; an unavailable mode/source makes every operation n/a."""
    if chain.available.answer == "no":
        return chain.available
    return decide(check_operation(operation), chain.kernel, chain.facts)


def _status_note(rule: Rule) -> str:
    return " (inferred; to be confirmed by the VM)" if rule.status == "I" else ""


def explanation(chain: Chain, rule: Rule) -> str:
    """One paragraph: why this outcome, why these pages, and the seed rule behind both."""
    text = rule.why + _status_note(rule)
    if rule is not chain.available and chain.struct_page is not None:
        sp = chain.struct_page
        text += f" Pages: {sp.why}{_status_note(sp)}"
        if chain.fs_dax is not None and chain.fs_dax is not rule:
            text += f" Mapping: {chain.fs_dax.why}{_status_note(chain.fs_dax)}"
        if chain.stack_dax is not None and chain.stack_dax is not rule:
            text += f" Stack ({chain.stack} over two such devices): {chain.stack_dax.why}"
            text += _status_note(chain.stack_dax)
    return f"{text} Root: {SEED}."


def resolve(scenario: Scenario, operation: str) -> tuple[Scenario, str]:
    """The scenario and model operation for an observed name (its fs, its mapping suffix)."""
    c = canonical(operation)
    if c.fs is not None and scenario.mode not in BASELINE_MODES:
        if scenario.fs not in (None, c.fs):
            raise ModelError(f"operation {operation!r} names {c.fs} but the scenario's fs is {scenario.fs}")
        scenario = dataclasses.replace(scenario, fs=c.fs)
    return scenario, c.operation


def _check_kind(chain: Chain, observed: str) -> None:
    """An observed name that says `-anon` or `-pageless` must be asked of such a mapping."""
    allowed = canonical(observed).kinds
    kind = chain.facts.get("fs_dax")
    if allowed and chain.available.answer == "yes" and kind not in allowed:
        raise ModelError(
            f"operation {observed!r} names a {'/'.join(allowed)} mapping, but {chain.scenario.label()} "
            f"maps as {kind}: ask the operation of its own scenario"
        )


def kind_of(chain: Chain, operation: str) -> str:
    """The report's kind for this cell: d2d and stacks first, then the mapping the op works on."""
    if operation.startswith("d2d-"):
        return "d2d"
    if chain.stack != "none" or operation == "stack-copy":
        return "stack"
    if operation == "dax-mount":
        return "DAX"  # the mount is the DAX question itself, whatever it then gives
    return KINDS.get(str(chain.facts.get("fs_dax")), "DAX")


def predict(
    scenario: Scenario, operation: str, stack: str = "none", reflink: bool | None = None
) -> StackPrediction:
    """What the kernel does for `operation` on `scenario` (under `stack`), which rule, and why.

    `operation` may be any observed spelling (see the module docstring); `reflink` overrides
    the XFS reflink fact (default: what pmemkit's mkfs makes, reflink on).
    """
    observed = operation
    scenario, operation = resolve(scenario, operation)
    chain = backing(scenario, stack, reflink)
    _check_kind(chain, observed)
    rule = decide_operation(chain, operation)
    outcome = "n/a" if rule is chain.available else rule.answer
    sources: list[str] = []
    deciders = [rule] + [r for r in chain.rules() if r is not chain.available]
    for r in deciders:
        sources.extend(s for s in r.sources if s not in sources)
    return StackPrediction(
        scenario=chain.scenario,
        operation=operation,
        outcome=outcome,
        struct_page=chain.memmap_location != "none",
        memmap_location=chain.memmap_location,
        rule=rule.name,
        sources=sources,
        kernel_range=str(rule.range),
        explanation=explanation(chain, rule),
        status=rule.status,
        stack=chain.stack,
        stack_dax=chain.device_dax,
        kind=kind_of(chain, operation),
        extrapolated=is_extrapolated(chain.kernel),
    )


def explain(
    scenario: Scenario, operation: str, stack: str = "none", reflink: bool | None = None
) -> tuple[Chain, Rule]:
    """The chain of rules and the operation's rule, for `pmemkit model explain`."""
    observed = operation
    scenario, operation = resolve(scenario, operation)
    chain = backing(scenario, stack, reflink)
    _check_kind(chain, observed)
    return chain, decide_operation(chain, operation)
