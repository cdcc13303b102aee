"""Read `fs_dax:dax_pmd_fault_done` lines and name their `vm_fault_t` result, per kernel version.

Why (issue 12, Why #5): the PMD fault count of the mmap experiment took the last word of each trace
line as the result. The tracepoint prints (include/trace/events/fs_dax.h, 6.1 and 6.12 alike)

    ... pgoff %#lx max_pgoff %#lx %s

where `%s` is `__print_flags(result, "|", VM_FAULT_RESULT_TRACE)`. Two things follow:

- a result of 0 prints as an empty string (kernel/trace/trace_output.c, trace_print_flags_seq: it
  prints nothing for no bits), so the last word is `max_pgoff` itself — `0x200` for a 2 MiB file
  (512 pages). fs/dax.c 6.1 `dax_iomap_pmd_fault` returns 0 when a PTE fault raced in and the PMD
  already holds a page table ("just return and the fault will be retried"). The old parser counted
  such an event as a result named `0x200`, which looks like VM_FAULT_LOCKED but is not one: 6.1's
  VM_FAULT_RESULT_TRACE names LOCKED, so a real 0x200 result would print `LOCKED`.
- bits missing from the tracepoint's table are printed as a hex remainder (`NOPAGE|0x4000`):
  6.1's table lacks VM_FAULT_COMPLETED (0x4000); 6.12's has it. They are named here from the enum.
- the event's `format` file keeps the symbols (`{ VM_FAULT_LOCKED, "LOCKED" }`, seen in the 6.1
  guest) and fs_dax.h has no TRACE_DEFINE_ENUM for them, so a user-space reader of the binary
  buffer (libtraceevent: trace-cmd, perf) cannot resolve them and prints the raw value (inferred):
  a printed `0x200` is then VM_FAULT_LOCKED. `decode` names such hex results too.

Bit values: `enum vm_fault_reason` in include/linux/mm_types.h, read in Debian's linux-source-6.1
(6.1.192) and linux-source-6.12 (6.12.118): identical except VM_FAULT_WRITE (0x8), present in 6.1
and gone in 6.12 (removed in 6.2, inferred from the two versions read), and VM_FAULT_COMPLETED
(0x4000), present in both (added in 5.19, inferred; 5.10 has no COMPLETED, inferred). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

#: enum vm_fault_reason, include/linux/mm_types.h at 6.1 (6.1.192): bit -> name.
VM_FAULT_6_1: dict[int, str] = {
    0x000001: "OOM",
    0x000002: "SIGBUS",
    0x000004: "MAJOR",
    0x000008: "WRITE",
    0x000010: "HWPOISON",
    0x000020: "HWPOISON_LARGE",
    0x000040: "SIGSEGV",
    0x000100: "NOPAGE",
    0x000200: "LOCKED",
    0x000400: "RETRY",
    0x000800: "FALLBACK",
    0x001000: "DONE_COW",
    0x002000: "NEEDDSYNC",
    0x004000: "COMPLETED",
}
#: include/linux/mm_types.h at 6.12 (6.12.118): VM_FAULT_WRITE is gone, the rest as in 6.1.
VM_FAULT_6_12: dict[int, str] = {bit: name for bit, name in VM_FAULT_6_1.items() if name != "WRITE"}
#: 5.10: as 6.1 without COMPLETED (inferred, not read at that version).
VM_FAULT_5_10: dict[int, str] = {bit: name for bit, name in VM_FAULT_6_1.items() if name != "COMPLETED"}
HINDEX_MASK = 0x0F0000  # VM_FAULT_HINDEX_MASK: the hstate index of a poisoned huge page, not a flag

#: (first kernel (major, minor), table, where it was read); the last entry not after the kernel wins.
TABLES: tuple[tuple[tuple[int, int], dict[int, str], str], ...] = (
    ((0, 0), VM_FAULT_5_10, "include/linux/mm_types.h, 5.10 (inferred from 6.1 minus VM_FAULT_COMPLETED)"),
    ((5, 19), VM_FAULT_6_1, "include/linux/mm_types.h at 6.1.192 (VM_FAULT_COMPLETED from 5.19, inferred)"),
    ((6, 2), VM_FAULT_6_12, "include/linux/mm_types.h at 6.12.118 (VM_FAULT_WRITE gone from 6.2, inferred)"),
)

#: The last field of the line: `max_pgoff <hex or 0>` then the decoded result (possibly empty).
_TAIL = re.compile(r"max_pgoff (?P<max>0x[0-9a-fA-F]+|0)(?: (?P<result>\S*))?\s*$")


def kernel_minor(release: str) -> tuple[int, int] | None:
    """(major, minor) of a release string such as "6.1.0-57-amd64"; None when it does not start so."""
    found = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def table_for(release: str) -> tuple[dict[int, str], str]:
    """The VM_FAULT bit names of `release` and where they come from (6.1's for an unparsable release)."""
    version = kernel_minor(release)
    if version is None:
        return VM_FAULT_6_1, TABLES[1][2] + "; kernel release unknown"
    chosen = TABLES[0]
    for entry in TABLES:
        if version >= entry[0]:
            chosen = entry
    return chosen[1], chosen[2]


@dataclass(frozen=True)
class FaultResult:
    """One event's result: as printed, its value, and every bit named."""

    printed: str  # the tracepoint's own words ("" for 0)
    value: int
    names: tuple[str, ...]  # all bits named from the enum ("0x…" for a bit the enum lacks)
    decoded_here: tuple[str, ...]  # names the tracepoint printed as hex and this module named

    @property
    def key(self) -> str:
        """The counting key: the names joined by "|", or "0" for no bit at all."""
        return "|".join(self.names) if self.names else "0"


def decode(printed: str, release: str) -> FaultResult:
    """The value and names of a printed `__print_flags` result for kernel `release`."""
    table, _ = table_for(release)
    by_name = {name: bit for bit, name in table.items()}
    value, hex_bits = 0, 0
    for token in (t for t in printed.split("|") if t):
        if token.lower().startswith("0x"):
            try:
                bits = int(token, 16)
            except ValueError:
                continue
            value |= bits
            hex_bits |= bits
        elif token in by_name:
            value |= by_name[token]
        else:  # a name this table lacks (a newer kernel): keep the word
            return FaultResult(printed, value, (token,), ())
    names = [table[bit] for bit in sorted(table) if value & bit]
    rest = value & ~sum(table) & ~HINDEX_MASK
    if rest:
        names.append(hex(rest))
    if value & HINDEX_MASK:
        names.append(f"HINDEX={(value & HINDEX_MASK) >> 16}")
    here = tuple(table[bit] for bit in sorted(table) if hex_bits & bit)
    return FaultResult(printed, value, tuple(names), here)


def parse_line(line: str, release: str) -> tuple[FaultResult, int] | None:
    """(result, max_pgoff) of one dax_pmd_fault_done line; None for a line that is not one."""
    found = _TAIL.search(line)
    if "dax_pmd_fault_done" not in line or found is None:
        return None
    return decode(found.group("result") or "", release), int(found.group("max"), 16)


def summarize_lines(lines: list[str], release: str, keep: int = 4) -> dict[str, Any]:
    """Counts by decoded result, the printed forms, and the first `keep` raw lines (bounded)."""
    counts: Counter[str] = Counter()
    printed: Counter[str] = Counter()
    here: set[str] = set()
    unparsed = 0
    for line in lines:
        parsed = parse_line(line, release)
        if parsed is None:
            unparsed += 1
            continue
        result, _ = parsed
        counts[result.key] += 1
        printed[result.printed or "(empty: result 0)"] += 1
        here.update(result.decoded_here)
    _, source = table_for(release)
    return {
        "counts": dict(counts),
        "printed": dict(printed),
        "named_here": sorted(here),
        "unparsed_lines": unparsed,
        "raw_lines": [line.strip()[-300:] for line in lines[:keep]],
        "vm_fault_names_from": source,
        "zero_means": "dax_iomap_pmd_fault returned 0: a PTE fault raced in, the fault is retried "
        "(fs/dax.c 6.1); the tracepoint prints no result word then",
    }
