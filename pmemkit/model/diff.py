"""`model diff`: every prediction that changes between two kernels, and the rule that changes it.

Why: a user moving from one kernel to another (Debian 6.1 -> 7.3) wants to know what will behave
differently, and which kernel change is behind it. The diff asks the same questions of both
kernels: every table column (fsdax map=mem/dev, devdax, raw NFIT/memmap=/virtio-pmem, sector)
under both filesystems, and the baselines (anonymous memory, the root disk's page cache, the
page-less /dev/mem control), for every operation the model knows. A cell changes when its
outcome or its struct page answer differs. The rule "that changes it" is the first rule of the
newer kernel's chain (available, struct-page, fs-dax, stack-dax, then the operation) that is not
the older kernel's: that is where the kernel history lies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pmemkit.model.errors import ModelError
from pmemkit.model.kernel import Kernel, is_extrapolated, parse_kernel
from pmemkit.model.predict import Chain, backing, check_stack, decide_operation, predict, resolve
from pmemkit.model.rules import MODEL_OPERATIONS, Rule
from pmemkit.model.table import COLUMNS
from pmemkit.scenario import FILESYSTEMS, Prediction, Scenario

#: The baselines every boot measures: (label, source, mode, fs).
BASELINES: tuple[tuple[str, str, str, str | None], ...] = (
    ("anonymous", "baseline", "anonymous", None),
    ("page cache (root disk ext4)", "baseline", "pagecache", "ext4"),
    ("/dev/mem (page-less)", "memmap", "devmem", None),
)


@dataclass(frozen=True)
class Change:
    """One cell whose answer differs between the two kernels."""

    scenario: str
    operation: str
    before: Prediction
    after: Prediction
    changed_by: Rule  # the newer kernel's first chain rule that differs (or the operation rule)
    also: tuple[Rule, ...] = ()  # the newer chain's other rules that differ, in chain order

    def to_dict(self) -> dict[str, object]:
        rule = self.changed_by
        return {
            "scenario": self.scenario,
            "operation": self.operation,
            "from": {
                "outcome": self.before.outcome,
                "rule": self.before.rule,
                "struct_page": self.before.struct_page,
            },
            "to": {
                "outcome": self.after.outcome,
                "rule": self.after.rule,
                "struct_page": self.after.struct_page,
            },
            "changed_by": {
                "rule": rule.name,
                "kernel_range": str(rule.range),
                "status": rule.status,
                "why": rule.why,
                "sources": list(rule.sources),
            },
            "also_changed": [
                {"rule": r.name, "kernel_range": str(r.range), "status": r.status} for r in self.also
            ],
        }


@dataclass
class Diff:
    """The answer of `model diff`: both kernels, the changes, and what was compared."""

    old: Kernel
    new: Kernel
    stack: str
    cells: int
    changes: list[Change] = field(default_factory=list)
    rule_only: list[Change] = field(default_factory=list)  # same outcome, another rule decided

    @property
    def extrapolated(self) -> bool:
        return is_extrapolated(self.old) or is_extrapolated(self.new)


def _scenarios(kernel: str) -> list[tuple[str, Scenario]]:
    out = []
    for fs in FILESYSTEMS:
        for label, src, mode, map_ in COLUMNS:
            out.append((f"{label}, {fs}", Scenario(kernel, src, mode, map_, fs=fs)))
    for label, src, mode, fs in BASELINES:
        out.append((label, Scenario(kernel, src, mode, fs=fs)))
    return out


def _steps(chain: Chain, op_rule: Rule) -> list[Rule | None]:
    """The chain's rules step by step (available, struct-page, fs-dax, stack-dax, operation)."""
    return [chain.available, chain.struct_page, chain.fs_dax, chain.stack_dax, op_rule]


def _changed_by(old: list[Rule | None], new: list[Rule | None]) -> list[Rule]:
    """The newer chain's rules that differ, causes first.

    A step whose answer changed (fs-dax pageless -> none) is a cause; a step decided by another
    rule with the same answer (devdax refcounting in 6.15) is listed after the operation's rule.
    """
    causes, operation, same_answer = [], [], []
    last = len(new) - 1
    for n, (a, b) in enumerate(zip(old, new, strict=True)):
        if b is None or (a is not None and a.name == b.name):
            continue
        if n == last:
            operation.append(b)
        elif a is None or a.answer != b.answer:
            causes.append(b)
        else:
            same_answer.append(b)
    found = causes + operation + same_answer
    return found or [r for r in new if r is not None][-1:]


def _stack_for(scenario: Scenario, stack: str) -> str:
    return "none" if scenario.source == "baseline" or scenario.mode == "devmem" else stack


def diff(old: str, new: str, stack: str = "none", all_rules: bool = False) -> Diff:
    """Compare every cell of two kernels (ModelError for a bad kernel or stack)."""
    k_old, k_new = parse_kernel(old), parse_kernel(new)
    check_stack(stack)
    if k_old == k_new:
        raise ModelError(f"--from {old} and --to {new} are the same kernel: pick two different versions")
    result = Diff(k_old, k_new, stack, 0)
    for (label, s_old), (_, s_new) in zip(_scenarios(old), _scenarios(new), strict=True):
        st = _stack_for(s_old, stack)
        c_old, c_new = backing(s_old, st), backing(s_new, st)
        for op in MODEL_OPERATIONS:
            result.cells += 1
            p_old, p_new = predict(s_old, op, st), predict(s_new, op, st)
            same_outcome = p_old.outcome == p_new.outcome and p_old.struct_page == p_new.struct_page
            if same_outcome and (p_old.rule == p_new.rule or not all_rules):
                continue
            r_old = decide_operation(c_old, resolve(s_old, op)[1])
            r_new = decide_operation(c_new, resolve(s_new, op)[1])
            by = _changed_by(_steps(c_old, r_old), _steps(c_new, r_new))
            change = Change(
                label + (f", {st}" if st != "none" else ""), op, p_old, p_new, by[0], tuple(by[1:])
            )
            (result.rule_only if same_outcome else result.changes).append(change)
    return result


def _summary(d: Diff) -> str:
    return (
        f"{len(d.changes)} of {d.cells} predictions change from kernel {d.old} to {d.new}"
        + (f" (stack {d.stack} over two devices)" if d.stack != "none" else "")
        + (f"; {len(d.rule_only)} keep their outcome under another rule" if d.rule_only else "")
    )


def render_text(d: Diff) -> str:
    lines = [_summary(d)]
    for c in [*d.changes, *d.rule_only]:
        r = c.changed_by
        lines.append(
            f"- {c.operation} on {c.scenario}: {c.before.outcome} -> {c.after.outcome}"
            + (
                f" (struct page {'yes' if c.before.struct_page else 'no'} -> "
                f"{'yes' if c.after.struct_page else 'no'})"
                if c.before.struct_page != c.after.struct_page
                else ""
            )
        )
        lines.append(f"    changed by: {r.name} [{r.status}], kernel {r.range}")
        lines += [f"    source: {s}" for s in r.sources]
        lines += [f"    and: {a.name} [{a.status}], kernel {a.range}" for a in c.also]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(d: Diff) -> str:
    lines = [
        f"### Model diff: kernel {d.old} → {d.new}",
        "",
        _summary(d) + ". [I] = inferred, to be confirmed by the VM.",
        "",
        "| scenario | operation | from | to | changed by | kernel range | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in [*d.changes, *d.rule_only]:
        r = c.changed_by
        mark = " [I]" if r.status == "I" else ""
        lines.append(
            f"| {_md(c.scenario)} | {c.operation} | {c.before.outcome} | {c.after.outcome} | "
            f"{r.name}{mark}{' (also: ' + ', '.join(a.name for a in c.also) + ')' if c.also else ''} | "
            f"{_md(str(r.range))} | "
            f"{_md('; '.join(r.sources))} |"
        )
    return "\n".join(lines)


def render_json(d: Diff) -> str:
    return json.dumps(
        {
            "from": str(d.old),
            "to": str(d.new),
            "stack": d.stack,
            "cells": d.cells,
            "extrapolated": d.extrapolated,
            "changes": [c.to_dict() for c in d.changes],
            "rule_only_changes": [c.to_dict() for c in d.rule_only],
        },
        indent=2,
        sort_keys=True,
    )
