"""predict(scenario, operation, stack) -> Prediction: walk the rule table, say which rule decided.

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

from pmemkit.model.errors import ModelError
from pmemkit.model.kernel import Kernel, parse_kernel
from pmemkit.model.rules import MODEL_OPERATIONS, SEED, STACKS, Rule, decide
from pmemkit.scenario import FILESYSTEMS, MAPS, MODES, SOURCES, Prediction, Scenario

TWO_MIB = 2 << 20
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
    if scenario.source not in SOURCES:
        raise ModelError(f"unknown pmem source {scenario.source!r}: use one of {', '.join(SOURCES)}")
    if scenario.mode not in MODES:
        raise ModelError(f"unknown namespace mode {scenario.mode!r}: use one of {', '.join(MODES)}")
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
    `struct_page`/`memmap_location` stay those of the member devices.
    """

    stack: str = "none"
    stack_dax: bool = False


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


def backing(scenario: Scenario, stack: str = "none") -> Chain:
    """Answer available / struct-page / fs-dax [/ stack-dax] for a scenario (after normalize).

    With a stack, `facts["member_fs_dax"]` keeps the members' answer and `facts["fs_dax"]`
    becomes the stacked device's, so the operation rules judge the device a filesystem sits on.
    """
    scenario = normalize(scenario)
    stack = effective_stack(scenario, stack)
    kernel = parse_kernel(scenario.kernel)
    facts: dict[str, object] = {
        "stack": stack,
        "source": scenario.source,
        "mode": scenario.mode,
        "map": scenario.map,
        "fs": scenario.fs or DEFAULT_FS,
        "force_raw": bool(scenario.force_raw),
        "aligned_2m": scenario.align is None or scenario.align >= TWO_MIB,
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


def predict(scenario: Scenario, operation: str, stack: str = "none") -> StackPrediction:
    """What the kernel does for `operation` on `scenario` (under `stack`), which rule, and why."""
    check_operation(operation)
    chain = backing(scenario, stack)
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
    )


def explain(scenario: Scenario, operation: str, stack: str = "none") -> tuple[Chain, Rule]:
    """The chain of rules and the operation's rule, for `pmemkit model explain`."""
    check_operation(operation)
    chain = backing(scenario, stack)
    return chain, decide_operation(chain, operation)
