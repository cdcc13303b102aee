"""The crash suite's section: per filesystem and way, what survived a SIGKILL of qemu, beside the model.

Why a section of its own: the generic table shows each observation alone, but the question here
joins two boots: what boot 1 wrote (`crash-write`) and what boot 2 found after journal recovery
(`crash-verify`), with the provenance that decides what such a kill can mean (the kernel, the
accelerator, the NVDIMM's backing file and QEMU's `pmem=on`). Pure: Markdown lines out, and the
same lines as a report.html section (`crash_section`, hooked in with `html.section`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pmemkit.report.markdown import RunContents
from pmemkit.scenario import Observation

if TYPE_CHECKING:
    from pmemkit.report.html import Section
    from pmemkit.report.verdict import Verdict

WAYS = ("map-sync", "msync", "no-sync")
HOW = {
    "map-sync": "MAP_SYNC with MAP_SHARED_VALIDATE, stores only",
    "msync": "MAP_SHARED, stores, msync(MS_SYNC)",
    "no-sync": "MAP_SHARED, stores, nothing else",
}
SURVIVAL = {"ok": "survived", "ENOENT": "lost", "short": "partial"}
KILL_NOTE = (
    "SIGKILL of qemu keeps every store the guest made into the NVDIMM: the backend is a MAP_SHARED "
    "mapping of the host file, and the host's page cache outlives qemu. What such a kill can lose is "
    "what the guest kernel had not yet written to the NVDIMM: metadata (the file's creation, i_size, "
    "block allocation) in its running journal transaction (ext4/jbd2) or its in-memory log (the XFS "
    "CIL). It is not a power cut of the host: nothing here tests the host's own durability, and "
    "emulated pmem is DRAM (no CPU cache flush is modelled by TCG)."
)
OUTCOME_NOTE = (
    "Outcomes: `ok` = survived (the file is there with its size and every block as written), "
    "`ENOENT` = lost (no such file after recovery), `short` = partial (the file is there, its size "
    "or a block is not)."
)


def _num(value: Any) -> str:
    return "—" if value is None else str(value)


def _cell(obs: Observation | None, prediction: Any) -> tuple[str, str]:
    """(what was found, the model's prediction with ≠ where it differs)."""
    if obs is None:
        return "not observed", "—" if prediction is None else f"`{prediction.outcome}`"
    word = obs.metrics.get("survival") or SURVIVAL.get(obs.outcome, "")
    found = f"**{word}** (`{obs.outcome}`)" if word else f"`{obs.outcome}`"
    if prediction is None:
        return found, "—"
    mark = "" if prediction.outcome == obs.outcome else " **≠**"
    status = " [I]" if getattr(prediction, "status", "V") == "I" else ""
    return found, f"`{prediction.outcome}`{status}{mark} ({prediction.rule})"


def _extents(obs: Observation | None) -> str:
    extents = obs.metrics.get("extents") if obs is not None else None
    if isinstance(extents, str):
        return extents
    if not isinstance(extents, list):
        return "—"
    total = sum(int(e.get("length", 0)) for e in extents if isinstance(e, dict))
    unwritten = sum(1 for e in extents if isinstance(e, dict) and "unwritten" in e.get("flags", []))
    text = f"{len(extents)} ({total >> 10} KiB)"
    return text + (f", {unwritten} unwritten" if unwritten else "")


def _blocks(obs: Observation | None) -> str:
    if obs is None or "blocks_intact" not in obs.metrics:
        return "—"
    m = obs.metrics
    return (
        f"{m.get('blocks_intact')} / {m.get('blocks_zero')} / {m.get('blocks_other')} / "
        f"{m.get('blocks_missing')}"
    )


def provenance_lines(run: RunContents) -> list[str]:
    """Kernel, accelerator, backing files and pmem=on, when qemu was killed, how old the unsynced
    writes were: the facts without which the table cannot be read."""
    env, guest = run.environment, run.guest_environment
    crash = env.get("crash") if isinstance(env.get("crash"), dict) else {}
    pmem_on = crash.get("pmem_on") if isinstance(crash.get("pmem_on"), dict) else {}
    boots = crash.get("boots") if isinstance(crash.get("boots"), list) else []
    killed = next((b.get("killed_at_s") for b in boots if isinstance(b, dict) and b.get("killed_at_s")), None)
    ages = []
    for obs in run.observations:
        m = obs.metrics
        if obs.operation == "crash-write" and obs.variant == "no-sync" and "recorded_at_uptime_s" in m:
            try:
                ages.append(float(m["recorded_at_uptime_s"]) - float(m["written_at_uptime_s"]))
            except (KeyError, TypeError, ValueError):
                pass
    lines = [
        f"Provenance: guest kernel {guest.get('kernel', '?')}, accelerator {env.get('accel', '?')} "
        f"({env.get('accel_reason', '')}), {env.get('qemu', 'qemu ?')}; "
        "each device (NVDIMM, virtio-pmem) backed by "
        f"{crash.get('backing', 'a sparse file on the host')}; QEMU `pmem=on`: "
        f"{'yes' if pmem_on.get('pmem_on') else 'no'} — {pmem_on.get('reason', 'not recorded')}. "
        "Emulated pmem is DRAM. One run: each way written once per filesystem (4 MiB, 4 KiB blocks).",
        "",
    ]
    if killed is not None:
        text = f"qemu was sent SIGKILL {killed} s into boot 1, when the guest printed its marker"
        if ages:
            text += (
                f"; the unsynced files' last stores were {min(ages):.2f}–{max(ages):.2f} s old when "
                "their records were complete (the marker followed at once)"
            )
        lines += [text + ".", ""]
    return lines + [KILL_NOTE, "", OUTCOME_NOTE, ""]


def crash_lines(run: RunContents, found: list[Verdict]) -> list[str]:
    """The section's Markdown (`## ` heading first), or [] for a run without the crash suite."""
    ours = [v for v in found if v.observation.experiment == "crash"]
    if not ours:
        return []
    predicted = {id(v.observation): v.prediction for v in ours}
    cells: dict[tuple[str, str, str], Observation] = {}
    remounts: dict[str, Observation] = {}
    for v in ours:
        obs = v.observation
        fs = f"{obs.scenario.label()} ({obs.device})"  # a filesystem on one device, e.g. nvdimm … ext4
        if obs.operation == "crash-remount":
            remounts[fs] = obs
        elif obs.operation in ("crash-write", "crash-verify") and obs.variant in WAYS:
            cells[(fs, obs.variant, obs.operation)] = obs
    filesystems = sorted({fs for fs, _, _ in cells} | set(remounts))
    lines = ["## Crash: what survived a SIGKILL of qemu", "", *provenance_lines(run)]
    lines += [
        "| device and fs | way | boot 1 wrote | after SIGKILL and recovery | model | size after / written | "
        "blocks intact / zero / other / missing | extents after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fs in filesystems:
        for way in WAYS:
            wrote = cells.get((fs, way, "crash-write"))
            after = cells.get((fs, way, "crash-verify"))
            found_text, model = _cell(after, predicted.get(id(after)) if after is not None else None)
            wrote_text = f"`{wrote.outcome}`" if wrote is not None else "not observed"
            if wrote is not None and wrote.outcome != "ok" and predicted.get(id(wrote)) is not None:
                model = "write: " + _cell(wrote, predicted[id(wrote)])[1]  # nothing written: the write's cell
            size = "—"
            if after is not None and "written_size_bytes" in after.metrics:
                m = after.metrics
                size = f"{_num(m.get('size_bytes'))} / {_num(m.get('written_size_bytes'))}"
            lines.append(
                f"| {fs} | {way} ({HOW[way]}) | {wrote_text} | {found_text} | {model} | {size} | "
                f"{_blocks(after)} | {_extents(after)} |"
            )
    lines.append("")
    for fs in filesystems:
        obs = remounts.get(fs)
        if obs is None:
            continue
        said = obs.metrics.get("journal_messages") or []
        words = "; ".join(str(m) for m in said[-6:]) if isinstance(said, list) else ""
        words = words or "nothing about its journal"
        lines += [f"- {fs}, remount in boot 2: `{obs.outcome}`; the kernel said: {words}"]
    return lines + [""]


def crash_section(run: RunContents, found: list[Verdict]) -> Section | None:
    """report.html's crash section (folded like the other details); None without the crash suite."""
    lines = crash_lines(run, found)
    if not lines:
        return None
    from pmemkit.report.html import Section, _markdown_html

    return Section("crash", lines[0][3:], _markdown_html(lines[1:]), folded=True)
