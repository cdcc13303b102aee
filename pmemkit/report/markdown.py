"""Render a run as Markdown: provenance first, then boot phases, then every observation.

Pure: takes the run's parsed contents and returns text. Every table carries where its numbers
came from, and the page says plainly that emulated pmem is DRAM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pmemkit.scenario import OPERATIONS, Observation, Prediction

EMULATION_WARNING = (
    "> **Emulated pmem.** Every device in this run is host DRAM presented by QEMU "
    "(`memmap=` legacy ranges, QEMU NVDIMMs, virtio-pmem). Outcomes show what the real Linux "
    "kernel decided; timings are those of DRAM under QEMU and say nothing about Optane or CXL media."
)
PHASE_ORDER = ("qemu", "kernel", "initrd", "init", "python", "done")

Predictor = Callable[[Observation], Prediction | None]


@dataclass
class RunContents:
    """Everything a run directory holds, parsed."""

    name: str
    plan: dict[str, Any]
    environment: dict[str, Any]
    guest_environment: dict[str, Any]
    observations: list[Observation]
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def provenance_rows(run: RunContents) -> list[list[Any]]:
    env, guest = run.environment, run.guest_environment
    boot = env.get("boot", {})
    image = env.get("image", {})
    pmem = ", ".join(
        f"{p['source']}:{p['size'] >> 20}M"
        + (f"@{p['start'] >> 20}M" if p.get("start") else "")
        + (f" mode={p['mode']}" if p.get("mode") else "")
        + (f" map={p['map']}" if p.get("map") else "")
        for p in run.plan.get("pmem", [])
    )
    return [
        [
            "guest kernel",
            f"{guest.get('kernel', image.get('kernel_release', '?'))} "
            f"({guest.get('kernel_version', image.get('kernel_package', ''))})",
        ],
        ["accelerator", f"{env.get('accel', '?')} — {env.get('accel_reason', '')}"],
        ["qemu", env.get("qemu", "?")],
        ["guest CPU", f"{guest.get('cpu_model', '?')}; flags {', '.join(guest.get('cpu_flags', []))}"],
        [
            "guest RAM",
            f"{env.get('guest_ram_bytes', 0) >> 20} MiB; {' '.join(env.get('memmap', [])) or 'no memmap='}",
        ],
        ["pmem devices (plan)", pmem],
        ["filesystems, mount", f"{', '.join(run.plan.get('filesystems', []))}; -o dax=always"],
        ["suites", ", ".join(run.plan.get("suites", []))],
        ["repetitions", "1 per operation (smoke)"],
        ["timer overhead", f"{guest.get('timer_overhead_ns', '?')} ns (min of back-to-back clock reads)"],
        ["pmemkit", f"{env.get('pmemkit_version', '?')}; image {image.get('image_id', '?')}"],
        [
            "boot",
            f"{boot.get('elapsed_s', '?')} s wall; qemu exit {boot.get('qemu_returncode')}; "
            f"guest exit {boot.get('guest_rc')}",
        ],
    ]


def phase_rows(phases: dict[str, float]) -> list[list[Any]]:
    rows, previous = [], None
    names = [p for p in PHASE_ORDER if p in phases] + [p for p in phases if p not in PHASE_ORDER]
    for name in names:
        at = phases[name]
        rows.append([name, f"{at:.2f}", "" if previous is None else f"{at - previous:.2f}"])
        previous = at
    return rows


def observation_rows(run: RunContents, predictor: Predictor | None) -> list[list[Any]]:
    rows = []
    for obs in run.observations:
        sc = obs.scenario
        prediction = predictor(obs) if predictor and obs.operation in OPERATIONS else None
        if prediction is None:
            model, agree = "—", ""
        else:
            model = prediction.outcome
            agree = "yes" if prediction.outcome == obs.outcome else "**NO**"
        rows.append(
            [
                obs.device,
                sc.source,
                sc.mode,
                sc.map or "",
                sc.fs or "",
                obs.operation,
                f"`{obs.outcome}`",
                model,
                agree,
                obs.detail,
            ]
        )
    return rows


def render(run: RunContents, predictor: Predictor | None = None) -> str:
    """The whole report as Markdown."""
    lines = [f"# pmemkit run {run.name}", "", EMULATION_WARNING, ""]
    if run.failure:
        lines += [f"**Status: FAILED** — {run.failure}. What the guest observed before that is below.", ""]
    else:
        lines += ["**Status: completed.**", ""]
    lines += [f"- warning: {w}" for w in run.warnings]
    lines += ["## Where these results come from", ""]
    lines += _table(["", ""], provenance_rows(run)) + [""]
    phases = run.environment.get("boot", {}).get("phases_s", {})
    if phases:
        lines += ["## Boot phases (seconds since qemu started, host clock)", ""]
        lines += _table(["phase", "reached at (s)", "step (s)"], phase_rows(phases)) + [""]
    lines += [f"## Observations ({len(run.observations)})", ""]
    if predictor is not None:
        lines += [
            "`model` is `pmemkit model predict` for the same scenario; `agree` compares it "
            "with what the kernel did.",
            "",
        ]
    if run.observations:
        lines += _table(
            ["device", "source", "mode", "map", "fs", "operation", "outcome", "model", "agree", "detail"],
            observation_rows(run, predictor),
        )
    else:
        lines.append("No observations were recorded.")
    return "\n".join(lines) + "\n"
