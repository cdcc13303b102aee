"""`pmemkit model whatif` as text or Markdown: the designs side by side, then why.

One renderer for the CLI (text, `--markdown`) and the run's report (Markdown under a heading of
the report's level), so the section and the command cannot drift apart. Every byte count is
printed exactly (`8 MiB (8388608 B)`) so a reader can check it against `pmemkit model size`.
"""

from __future__ import annotations

from typing import Any

from pmemkit.model.whatif import DESIGNS, SEED_FILE, TITLES, Entry, WhatIf, fails

SHORT = {
    "pageless": "page-less",
    "on-demand": "at mmap",
    "enable-mem": "enable, map=mem",
    "enable-dev": "enable, map=dev",
}
STATUS = {"observed": "observed", "V": "rule", "I": "inferred"}


def human_bytes(n: int) -> str:
    """`0 B`, `8 MiB (8388608 B)`, `96 GiB (103079215104 B)`: binary unit and the exact count."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            shown = f"{value:g}" if n % (1 << shift) == 0 else f"{value:.2f}"
            return f"{shown} {unit} ({n} B)"
    return f"{n} B"


def human_ns(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _md_cell(value: Any) -> str:
    return ("" if value is None else str(value)).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]


def _text_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [[str(v) for v in headers]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells[1:]]
    return out


def _cost(w: WhatIf, device_index: int, design: str) -> str:
    cost = w.devices[device_index].costs[design]
    return f"DRAM {human_bytes(cost.dram_bytes)}, pmem {human_bytes(cost.pmem_bytes)}"


def cost_rows(w: WhatIf) -> list[list[str]]:
    rows = []
    for i, device in enumerate(w.devices):
        label = device.label + (" (hypothetical)" if device.hypothetical else "")
        rows.append([label, *(_cost(w, i, d) for d in DESIGNS)])
    designs = {d.key: d for d in w.designs}
    run_devices = [d for d in w.devices if not d.hypothetical]
    if len(run_devices) > 1:
        rows.append(
            [
                f"all {len(run_devices)} devices of the run",
                *(
                    f"DRAM {human_bytes(designs[d].dram_bytes)}, pmem {human_bytes(designs[d].pmem_bytes)}"
                    for d in DESIGNS
                ),
            ]
        )
    return rows


def _cell(entry: Entry) -> str:
    mark = " ✗" if fails(entry.outcome) else ""
    changed = " (changed)" if entry.changed and entry.observed is not None else ""
    return f"{entry.outcome}{mark}{changed} [{STATUS.get(entry.status, entry.status)}]"


def _targets(entry: Entry, limit: int = 2) -> str:
    shown = ", ".join(entry.targets[:limit])
    more = len(entry.targets) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def operation_rows(w: WhatIf, everything: bool = False) -> list[list[str]]:
    """Rows where a design differs from what the run observed or fails (all rows with `everything`)."""
    by_design = {d.key: d.operations for d in w.designs}
    rows = []
    for i, first in enumerate(by_design[DESIGNS[0]]):
        entries = [by_design[d][i] for d in DESIGNS]
        if not everything and not any(e.changed or fails(e.outcome) for e in entries):
            continue
        observed = first.observed if first.observed is not None else "(model)"
        rows.append([first.operation, _targets(first), observed, *(_cell(e) for e in entries)])
    return rows


def _failing_lines(w: WhatIf, markdown: bool) -> list[str]:
    """Per design, each failing group with its sources (nested lists in Markdown, indents in text)."""
    code = "`" if markdown else ""
    lines = []
    for design in w.designs:
        failing = design.failing
        lines.append(f"- {design.title}: {len(failing)} failing operation/target group(s)")
        for e in failing:
            again = "" if e.changed else ", as observed" if e.observed is not None else ", as today (model)"
            lines.append(
                f"  - {code}{e.operation}{code} on {_targets(e)}: {code}{e.outcome}{code}{again} "
                f"[{STATUS.get(e.status, e.status)}]"
            )
            lines += [f"    - source: {s}" for s in e.sources]
    return lines


def _estimate_lines(w: WhatIf, bullet: str) -> list[str]:
    est = w.fault_estimate
    lines = [f"Assumption: {est.assumption}", ""]
    if est.per_2mib_ns is None:
        return lines + [f"{bullet}no estimate: {est.basis[-1]}"]
    m = est.measured
    lines.append(
        f"{bullet}estimate per 2 MiB sub-section: {human_ns(est.per_2mib_ns)} (8 x "
        f"{human_ns(m['anon_first_touch_ns_per_page'])} + 32 KiB at "
        f"{m['anon_seq_write_bytes_per_s'] / 1e6:.0f} MB/s)"
    )
    for row in est.per_device:
        if "mmap_ns" in row:
            text = (
                f"{bullet}{row['device']}: mapping its largest recorded range "
                f"({human_bytes(row['largest_range_bytes'])}) would add {human_ns(row['mmap_ns'])}"
            )
            if row.get("measured_fault_ns_per_2mib"):
                text += (
                    "; the DAX fault work this run measured per 2 MiB is "
                    f"{human_ns(row['measured_fault_ns_per_2mib'])}, "
                    f"so +{_pct(row.get('added_fraction'))} on the fault path"
                )
            if row["enable_ns"] is None:
                text += "; as configured it gets no memmap at enable (and no DAX)"
            else:
                text += f"; writing its whole memmap at enable (merged design): {human_ns(row['enable_ns'])}"
        else:
            text = (
                f"{bullet}{row['device']} (hypothetical), at this run's rates ({row['accel']}): writing "
                f"its memmap at enable {human_ns(row['enable_ns'])}; mapping all of it on demand, "
                f"{row['subsections']} sub-sections, {human_ns(row['mapped_whole_ns'])}"
            )
        lines.append(text)
    lines += [f"{bullet}basis: {b}" for b in est.basis]
    return lines


def _header(w: WhatIf) -> list[str]:
    what = f"run {w.run}" if w.run else "hypothetical devices"
    lines = [f"The 2015 designs priced for {what}, kernel {w.kernel}."]
    if w.extrapolated:
        lines.append(
            f"warning: kernel {w.kernel} is newer than the newest the model knows: answers extrapolated"
        )
    lines.append(
        f"The question is the seed mail's ({SEED_FILE}, LKML 2015-05-07, Ingo Molnar): "
        "'if a page is visible to user-space via the MMU then it needs struct page backing'."
    )
    for d in w.designs:
        lines.append(f"- {d.title}: {d.idea} ({'; '.join(d.sources)})")
    return lines


def render_text(w: WhatIf) -> str:
    headers = ["device", *(TITLES[d] for d in DESIGNS)]
    lines = _header(w) + ["", "Page metadata (struct page) per device:"]
    lines += _text_table(headers, cost_rows(w))
    notes = [
        f"  {d.label}, {SHORT[k]}: {c.note}"
        for d in w.devices
        for k, c in d.costs.items()
        if c.note and k != "pageless"
    ]
    lines += ["", "Cost notes:", *notes, ""]
    lines.append("Operations that fail or change under some design (✗ fails; [observed|rule|inferred]):")
    lines += _text_table(
        ["operation", "targets", "observed", *(SHORT[d] for d in DESIGNS)], operation_rows(w)
    )
    lines += ["", "Failing operations per design, with their sources:"]
    lines += _failing_lines(w, markdown=False)
    lines += ["", "Design notes:"] + [f"- {d.title}: {n}" for d in w.designs for n in d.notes]
    lines += ["", "On-demand struct page on the measured fault path (an estimate):"]
    lines += _estimate_lines(w, "- ")
    return "\n".join(lines) + "\n"


def render_markdown(w: WhatIf, level: int = 1) -> list[str]:
    """The designs as Markdown lines; `level` is the heading level of the section's title."""
    h = "#" * level
    lines = [
        f"{h} What if: the 2015 designs priced on this run" if w.run else f"{h} What if: the 2015 designs",
        "",
    ]
    lines += _header(w) + [""]
    lines += [f"{h}# Page metadata per device", ""]
    lines += _md_table(["device", *(TITLES[d] for d in DESIGNS)], cost_rows(w)) + [""]
    notes = [
        f"{d.label}, {SHORT[k]}: {c.note}"
        for d in w.devices
        for k, c in d.costs.items()
        if c.note and k != "pageless"
    ]
    lines += [f"- {n}" for n in notes] + [""]
    lines += [
        f"{h}# Operations that fail or change under some design",
        "",
        "✗ marks a failure; [observed] is this run's own answer (the page-less column: the /dev/mem "
        "control's), [rule] a model rule read in source, [inferred] a rule not verified against "
        "kernel source.",
        "",
    ]
    lines += _md_table(
        ["operation", "targets", "observed", *(TITLES[d] for d in DESIGNS)], operation_rows(w)
    ) + [""]
    lines += [f"{h}# Sources of every failure", ""] + _failing_lines(w, markdown=True) + [""]
    lines += [f"- {d.title}: {n}" for d in w.designs for n in d.notes] + [""]
    lines += [f"{h}# Struct page at mmap: the cost on the measured fault path (estimate)", ""]
    lines += _estimate_lines(w, "- ") + [""]
    return lines
