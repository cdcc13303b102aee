"""Render a run as Markdown: provenance first, then boot phases, then every observation.

Pure: takes the run's parsed contents and returns text. Every table carries where its numbers
came from, and the page says plainly that emulated pmem is DRAM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pmemkit.report.causes import cause_differs, cause_section
from pmemkit.report.cxl import cxl_rows
from pmemkit.report.tables import table as _table
from pmemkit.report.whatif import whatif_section
from pmemkit.scenario import Observation, Prediction

EMULATION_WARNING = (
    "> **Emulated pmem.** Every device in this run is host DRAM presented by QEMU "
    "(`memmap=` legacy ranges, QEMU NVDIMMs, virtio-pmem, CXL Type-3 devices). Outcomes show what "
    "the real Linux kernel decided; timings are those of DRAM under QEMU and say nothing about Optane "
    "or CXL media (QEMU emulates every access to CXL memory in software, far slower than DRAM)."
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


def kernel_title(run: RunContents) -> str:
    """` — kernel <release>` for the title: the guest's own word first, else the kernel layer's."""
    release = run.guest_environment.get("kernel") or run.environment.get("kernel", {}).get("kernel_release")
    return f" — kernel {release}" if release else ""


def provenance_rows(run: RunContents) -> list[list[Any]]:
    env, guest = run.environment, run.guest_environment
    boot = env.get("boot", {})
    image = {**env.get("image", {}), **env.get("kernel", {})}  # the kernel is a layer of its own
    pmem = ", ".join(
        f"{p['source']}:{p['size'] >> 20}M"
        + (f"@{p['start'] >> 20}M" if p.get("start") else "")
        + (f" mode={p['mode']}" if p.get("mode") else "")
        + (f" map={p['map']}" if p.get("map") else "")
        for p in run.plan.get("pmem", [])
    )
    rows = [
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
        ["guest kernel command line", f"`{env.get('kernel_cmdline', '?')}`"],
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
    return rows + cxl_rows(run.observations)


def phase_rows(phases: dict[str, float]) -> list[list[Any]]:
    rows, previous = [], None
    known = [p for p in PHASE_ORDER if p in phases]
    names = known + sorted((p for p in phases if p not in PHASE_ORDER), key=phases.__getitem__)
    if "done" in known and names[-1] != "done":  # a guest's own phases (cxl-…) come before done
        names = [p for p in names if p != "done"] + ["done"]
    for name in names:
        at = phases[name]
        rows.append([name, f"{at:.2f}", "" if previous is None else f"{at - previous:.2f}"])
        previous = at
    return rows


#: `metrics["mapping"]` as the experiments write it -> the kind of cell it is in the join.
MAPPING_KINDS = {"dax": "DAX", "pagecache": "page cache", "anon": "anonymous", "pageless": "page-less"}
#: Scenario modes of the baselines -> the kind of cell (when an observation names no mapping).
MODE_KINDS = {"anonymous": "anonymous", "pagecache": "page cache", "devmem": "page-less"}
KIND_ORDER = ("DAX", "page cache", "anonymous", "page-less", "d2d", "stack")


@dataclass(frozen=True)
class Joined:
    """One observation beside the model's prediction for it (None: the model has no answer)."""

    observation: Observation
    prediction: Prediction | None

    @property
    def agree(self) -> bool:
        """Same outcome, and (issue 14) no traced refusing function that differs from the model's."""
        obs, pred = self.observation, self.prediction
        return pred is not None and pred.outcome == obs.outcome and not cause_differs(obs, pred)

    @property
    def kind(self) -> str:
        """What the operation met: d2d copy, block stack, else the mapping the kernel gave it."""
        obs = self.observation
        if obs.operation.startswith("d2d-"):
            return "d2d"
        if obs.scenario.stack not in (None, "none") or obs.operation.startswith("stack-"):
            return "stack"
        mapping = obs.metrics.get("mapping") if isinstance(obs.metrics, dict) else None
        if mapping in MAPPING_KINDS:
            return MAPPING_KINDS[mapping]
        if obs.scenario.mode in MODE_KINDS:
            return MODE_KINDS[obs.scenario.mode]
        return str(getattr(self.prediction, "kind", "") or "DAX")

    def cell(self) -> str:
        """`outcome (model outcome)` with ≠ where they differ, for the per-experiment tables."""
        text = f"`{self.observation.outcome}`"
        if self.prediction is not None:
            mark = "" if self.agree else " **≠**"
            text += f" (model `{self.prediction.outcome}`{mark})"
        return text


def join(run: RunContents, predictor: Predictor | None) -> list[Joined]:
    """The model-vs-kernel join, written once for every table that compares (issue 9).

    Every observation the kernel answered is asked of the model under its own name: DAX cells,
    page-cache baselines and fallbacks, anonymous memory, the page-less /dev/mem control, d2d
    copies and stacks alike. Only steps that did not run (`skipped:*`) are left out; an
    observation the model cannot answer is kept with prediction None and listed as unpredicted.
    """
    if predictor is None:
        return []
    return [Joined(obs, predictor(obs)) for obs in run.observations if not obs.outcome.startswith("skipped")]


def _lookup(joined: list[Joined]) -> dict[int, Joined]:
    return {id(j.observation): j for j in joined}


def _kind_counts(compared: list[Joined]) -> str:
    kinds = sorted({j.kind for j in compared}, key=lambda k: (KIND_ORDER + (k,)).index(k))
    parts = []
    for kind in kinds:
        cells = [j for j in compared if j.kind == kind]
        parts.append(f"{kind} {sum(j.agree for j in cells)}/{len(cells)}")
    return ", ".join(parts)


def compared_sentence(joined: list[Joined]) -> str:
    """`N (scenario × operation) cells compared: A agree, D disagree (by kind …).` — the verdict in words."""
    compared = [j for j in joined if j.prediction is not None]
    disagree = sum(not j.agree for j in compared)
    return (
        f"{len(compared)} (scenario × operation) cells compared: {len(compared) - disagree} agree, "
        f"{disagree} disagree (agreeing/compared by kind: {_kind_counts(compared) or 'none'})."
    )


def model_section(run: RunContents, joined: list[Joined]) -> list[str]:
    compared = [j for j in joined if j.prediction is not None]
    unpredicted = [j for j in joined if j.prediction is None]
    if not joined:
        return []
    lines = [
        "## Model vs kernel",
        "",
        f"{compared_sentence(joined)} "
        "`predicted` is `pmemkit model predict` for the same scenario; [I] marks a rule inferred "
        "rather than read in source, which this run tests.",
        "",
    ]
    rows = []
    for j in compared:
        obs, pred = j.observation, j.prediction
        assert pred is not None
        status = " [I]" if pred.status == "I" else ""
        rows.append(
            [
                obs.scenario.label(),
                obs.device,
                obs.shown(),
                j.kind,
                f"`{obs.outcome}`",
                f"`{pred.outcome}`{status}",
                "yes" if j.agree else "**NO**",
                f"{pred.rule} ({pred.kernel_range})",
                obs.detail,
            ]
        )
    headers = [
        "scenario",
        "device",
        "operation",
        "kind",
        "observed",
        "predicted",
        "agree",
        "rule",
        "kernel said",
    ]
    lines += _table(headers, rows) + [""]
    if unpredicted:
        names = sorted({j.observation.shown() for j in unpredicted})
        lines += [
            f"{len(unpredicted)} observations have no prediction (the model does not ask these steps): "
            + ", ".join(f"`{n}`" for n in names)
            + ".",
            "",
        ]
    return lines


def _metric_obs(run: RunContents, operation: str) -> list[Observation]:
    return [o for o in run.observations if o.operation == operation and o.outcome == "ok" and o.metrics]


def target_label(obs: Observation) -> str:
    return f"{obs.scenario.label()} ({obs.device})"


def latency_section(run: RunContents) -> list[str]:
    from pmemkit.report.latency import render_latency

    lines: list[str] = []
    for op, title in (
        ("first-touch-write", "First-touch write faults"),
        ("first-touch-read", "First-touch read faults"),
    ):
        found = _metric_obs(run, op)
        if not found:
            continue
        summaries = [(target_label(o), o.metrics["latency"]) for o in found]
        caption = (
            f"one sample per 4 KiB page, {provenance_caption(run)}; the timing loop's own cost on "
            "already-faulted pages is the overhead column"
        )
        lines += [f"## {title}", "", render_latency(summaries, caption=caption, width=30)]
        pmd = [
            [
                target_label(o),
                o.metrics.get("pmd_fault_events"),
                _printed(o.metrics.get("pmd_fault_trace")),
                o.metrics.get("smaps_kb"),
            ]
            for o in found
        ]
        lines += [
            "PMD (2 MiB) faults per `fs_dax:dax_pmd_fault_done` and the mapping's smaps. Results are "
            "named from `enum vm_fault_reason` of the guest's kernel (`guest/vmfault.py`); `0` is a fault "
            "that returned no bit (a PTE fault raced in; retried), which the tracepoint prints as nothing, "
            "so its line ends in `max_pgoff` (e.g. `0x200` for a 2 MiB file).",
            "",
        ]
        lines += _table(["target", "PMD fault results", "as the tracepoint printed", "smaps (kB)"], pmd) + [
            ""
        ]
    return lines


def anon_rates(found: list[Observation]) -> dict[tuple[str, int], float]:
    """Anonymous memory's own target's rate per (pattern, block): the baseline measured at another
    time in the run, for rows that carry no interleaved twin (runs recorded before issue 15)."""
    return {
        (r["pattern"], r["block_bytes"]): r["bytes_per_s"]
        for o in found
        if o.scenario.mode == "anonymous"
        for r in o.metrics.get("rows", [])
    }


def anon_ratio(row: dict[str, Any], rates: dict[tuple[str, int], float]) -> tuple[float | None, str]:
    """A bandwidth row ÷ anonymous memory, and how the anonymous figure was taken.

    Preferred: the twin measured interleaved in the same loop (`ratio_vs_anon`, best pass of each
    side); otherwise the anonymous target's rate from elsewhere in the run."""
    value = row.get("ratio_vs_anon")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), "interleaved twin"
    base = rates.get((row.get("pattern", ""), row.get("block_bytes", 0)))
    return (row["bytes_per_s"] / base if base else None), "anonymous target, not interleaved"


def _rounds(row: dict[str, Any]) -> str:
    """The median ratio's 95 % CI and the number of rounds, or the rounds' range without a CI."""
    found = [x for x in row.get("ratio_vs_anon_rounds") or [] if isinstance(x, int | float)]
    if not found:
        return "—"
    ci, median = row.get("ratio_vs_anon_ci") or {}, row.get("ratio_vs_anon_median")
    if isinstance(ci.get("lo"), int | float) and isinstance(ci.get("hi"), int | float):
        head = f"{median:.2f}× " if isinstance(median, int | float) else ""
        return f"{head}({ci['lo']:.2f}–{ci['hi']:.2f}, n={len(found)})"
    return f"— (n={len(found)}; rounds {min(found):.2f}–{max(found):.2f})"


#: Issue 15's bar: DAX-mmap bandwidth at least this multiple of anonymous memory's.
ANON_BAR = 0.9


def _why_below(o: Observation, row: dict[str, Any]) -> str:
    """A measured reason for one row under the bar: the rounds' median and its CI."""
    rounds = [x for x in row.get("ratio_vs_anon_rounds") or [] if isinstance(x, int | float)]
    ci = row.get("ratio_vs_anon_ci") or {}
    lo, hi, median = ci.get("lo"), ci.get("hi"), row.get("ratio_vs_anon_median")
    if not rounds:
        return "no interleaved twin: the anonymous figure was measured at another time in the run"
    spread = f"{len(rounds)} rounds {min(rounds):.2f}–{max(rounds):.2f}"
    if isinstance(hi, int | float) and hi >= ANON_BAR:
        return (
            f"not distinguishable from anonymous memory in this run: the rounds' median {median:.2f} has "
            f"a 95 % CI {lo:.2f}–{hi:.2f} that reaches {ANON_BAR} ({spread}; passes disturbed by the "
            "host's load)"
        )
    if isinstance(hi, int | float):
        return (
            f"below {ANON_BAR} with 95 % confidence (rounds' median {median:.2f}, CI {lo:.2f}–{hi:.2f}, "
            f"{spread}): a real difference"
        )
    return f"too few rounds for a CI ({spread})"


def _printed(trace: Any) -> str:
    """The tracepoint's own result words and the bits named here that it printed as hex."""
    if not isinstance(trace, dict):
        return "—"
    text = ", ".join(f"{word}: {n}" for word, n in (trace.get("printed") or {}).items()) or "no event"
    here = trace.get("named_here") or []
    return text + (f" (named here from hex: {', '.join(here)})" if here else "")


def bandwidth_section(run: RunContents) -> list[str]:
    from pmemkit.report.latency import format_bytes_per_s, format_ratio

    found = _metric_obs(run, "mmap-bandwidth")
    if not found:
        return []
    rates = anon_rates(found)
    rows, below, checked = [], [], 0
    for o in found:
        for r in o.metrics["rows"]:
            ratio, how = anon_ratio(r, rates)
            rows.append(
                [
                    target_label(o),
                    r["pattern"],
                    f"{r['block_bytes'] >> 10} KiB",
                    format_bytes_per_s(r["bytes_per_s"]),
                    format_ratio(ratio),
                    _rounds(r),
                    "itself" if o.scenario.mode == "anonymous" else how if ratio is not None else "—",
                ]
            )
            plain = r.get("view") != "numpy.memmap slices: what a numpy user gets"
            if o.metrics.get("mapping") == "dax" and plain and ratio is not None:
                checked += 1
                if ratio < ANON_BAR:
                    below.append(
                        f"- {target_label(o)} {r['pattern']} {r['block_bytes'] >> 10} KiB: "
                        f"{ratio:.3f}× — {_why_below(o, r)}"
                    )
    thp = next((o.metrics.get("anon_thp") for o in found if o.metrics.get("anon_thp")), None)
    verdict = [
        f"DAX rows at or above {ANON_BAR} × anonymous memory: {checked - len(below)} of {checked}"
        + (" (every one)." if not below and checked else ":" if below else "."),
        "",
        *below,
        *([""] if below else []),
    ]
    return [
        "## Bandwidth through the mapping",
        "",
        f"memcpy between the mapping and an anonymous buffer ({provenance_caption(run)}), through a plain "
        "ndarray over the mapping on every side. Each target is measured interleaved with an anonymous "
        "twin of the same size in the same timing loop (target pass, twin pass, … after a warm-up round; "
        "same view, same prefault"
        + (f", the twin {thp}" if thp else "")
        + "), so drift and the host's load hit both alike. The ratio is best of each side (fastest target "
        "pass ÷ fastest twin pass: preemption of the vCPU only ever adds time, so the fastest pass is the "
        "least disturbed); beside it the median of the per-round ratios with its order-statistic 95 % "
        "CI. Emulated pmem is DRAM, so the ratio should be near 1.",
        "",
        *verdict,
        *_table(
            [
                "target",
                "pattern",
                "block",
                "bandwidth",
                "vs anonymous",
                "rounds: median (95 % CI, n)",
                "baseline",
            ],
            rows,
        ),
        "",
    ]


def durability_section(run: RunContents) -> list[str]:
    from pmemkit.report.latency import render_percentile_table

    pairs = []
    for op in ("durability-msync", "durability-map-sync"):
        pairs += [(f"{target_label(o)}: {op}", o.metrics["latency"]) for o in _metric_obs(run, op)]
    if not pairs:
        return []
    caption = f"one 4 KiB write per sample, {provenance_caption(run)}"
    return ["## Durability: msync vs MAP_SYNC", "", render_percentile_table(pairs, caption=caption)]


def _family(operation: str) -> str:
    """`odirect-read-into` for `odirect-read-into-dax` or `-pageless`: pairs a mapping with the control."""
    try:
        from pmemkit.model.operations import mapping_family
    except ImportError:  # the report renders without the model; the names then stay unpaired
        return operation
    found = mapping_family(operation)
    return found[0] if found else operation


def pageless_section(run: RunContents) -> list[str]:
    """The control beside the DAX mapping of the same memmap= range: Ingo Molnar's rule, observed."""
    control = [o for o in run.observations if o.scenario.mode == "devmem"]
    if not control:
        return []
    dax = {
        (_family(o.operation), o.variant): o
        for o in run.observations
        if o.scenario.source == "memmap" and o.scenario.mode == "raw" and o.experiment == "odirect"
    }
    rows = []
    for o in control:
        base = _family(o.operation)
        other = dax.get((base, o.variant))
        rows.append(
            [
                base,
                f"`{o.outcome}`",
                o.detail,
                f"`{other.outcome}`" if other else "—",
                f"{other.scenario.fs} on {other.device}" if other else "not run",
            ]
        )
    return [
        "## The seed mail's rule, observed on one physical range",
        "",
        "The same `memmap=` range, first mapped through `/dev/mem` before any driver claimed it "
        "(no `struct page`), then as a DAX file once nd_e820/nd_pmem created the namespace (pages in "
        "DRAM). O_DIRECT must pin the buffer's pages for the block layer; a buffered read only copies.",
        "",
        *_table(
            ["operation", "/dev/mem, no struct page", "kernel said", "DAX mapping, struct page", "where"],
            rows,
        ),
        "",
    ]


def odirect_latency_section(run: RunContents) -> list[str]:
    from pmemkit.report.latency import render_percentile_table

    pairs = []
    for o in run.observations:
        if o.operation.startswith("odirect-latency-") and o.outcome == "ok":
            for r in o.metrics.get("rows", []):
                size = r["io_bytes"]
                label = f"{target_label(o)} {r['direction']} {size >> 10 if size >= 1024 else size}"
                pairs.append((label + (" KiB" if size >= 1024 else " B"), r["latency"]))
    if not pairs:
        return []
    caption = (
        f"O_DIRECT pread/pwrite between the buffer and a file on the root disk, {provenance_caption(run)}"
    )
    return ["## O_DIRECT latency by I/O size", "", render_percentile_table(pairs, caption=caption)]


#: Why the random-read comparison shows no bandwidth: the two sides would not be measured alike.
RANDREAD_BW_DROPPED = (
    "No random-read bandwidth is compared: fio's is its job's bytes over its runtime (its loop "
    "included), while pmemkit's timed path has no loop of its own to time alike (the helper's samples "
    "and the caller's brackets exclude the gaps between reads), so a ratio of the two measured the "
    "tools, not the file; both sides' p50s above are measured alike."
)


def fio_section(run: RunContents) -> list[str]:
    from pmemkit.report.latency import format_bytes_per_s, format_duration_ns, format_ratio

    rows = []
    for o in run.observations:
        if o.operation == "fio-odirect-randread" and o.outcome == "ok":
            c = o.metrics["comparison"]
            # no randread bandwidth row: see RANDREAD_BW_DROPPED
            for key, fmt in (("p50", format_duration_ns), ("p99", format_duration_ns)):
                side = c[key]
                rows.append(
                    [
                        target_label(o),
                        f"O_DIRECT 4 KiB randread {key}",
                        fmt(side["pmemkit"]),
                        fmt(side["fio"]),
                        format_ratio(side["ratio"]),
                    ]
                )
            if "fio_null_p50_ns" in o.metrics:
                mine, theirs = o.metrics.get("python_loop_overhead_ns"), o.metrics.get("fio_null_p50_ns")
                rows.append(
                    [
                        target_label(o),
                        "the tool's own cost per I/O (Python loop / fio null engine p50)",
                        format_duration_ns(mine),
                        format_duration_ns(theirs),
                        format_ratio(mine / theirs if mine and theirs else None),
                    ]
                )
        if o.operation == "fio-mmap-seqread" and o.outcome == "ok":
            m = o.metrics
            rows.append(
                [
                    target_label(o),
                    "mmap seq read bandwidth",
                    format_bytes_per_s(m["pmemkit_bw_bytes"]),
                    format_bytes_per_s(m["fio"]["bw_bytes"]),
                    format_ratio(m["bw_ratio"]),
                ]
            )
    if not rows:
        return []
    from pmemkit.report.latency import render_fio_parity

    parity = render_fio_parity(
        (target_label(o), o.metrics)
        for o in run.observations
        if o.operation == "fio-odirect-randread" and o.outcome == "ok"
    )
    return [
        "## pmemkit beside fio (same file, same boot)",
        "",
        "Target: within ±10 %. pmemkit's figure is the I/O's own latency: the image's C helper `prtime` "
        "(clock_gettime around each pread), or the raw_syscalls tracepoints where the helper is missing, "
        "as each observation's detail says; the caller-side (Python) figure is beside it in the parity "
        "table. fio's is its clat, which also spans fio's own work around each read. " + RANDREAD_BW_DROPPED,
        "",
        *_table(["target", "measure", "pmemkit", "fio", "pmemkit / fio"], rows),
        "",
        *([parity] if parity else []),
    ]


KAPI_OPS = (
    "futex-shared",
    "vmsplice",
    "iouring-fixed-buffer",
    "longterm-pin",
    "fork-cow",
    "mremap",
    "madvise",
)


def kapi_section(run: RunContents, joined: list[Joined]) -> list[str]:
    """Outcome matrix: mapping kind × kernel interface, the model's prediction beside each cell."""
    found = [o for o in run.observations if o.experiment == "kapi"]
    if not found:
        return []
    lookup = _lookup(joined)
    targets: dict[str, dict[str, str]] = {}
    for o in found:
        j = lookup.get(id(o))
        cell = j.cell() if j is not None else f"`{o.outcome}`"
        targets.setdefault(target_label(o), {})[o.operation] = cell
    rows = [[label, *(cells.get(op, "—") for op in KAPI_OPS)] for label, cells in targets.items()]
    return [
        "## Kernel interfaces on the mapping (kapi)",
        "",
        "Each interface must find or pin the mapping's pages. longterm-pin uses AF_XDP umem registration as "
        "the user-reachable proxy of an RDMA memory registration (both pin with FOLL_LONGTERM). "
        "**≠** marks a cell where the kernel and the model differ.",
        "",
        *_table(["mapping", *KAPI_OPS], rows),
        "",
    ]


def d2d_section(run: RunContents) -> list[str]:
    from pmemkit.report.latency import format_bytes_per_s, format_duration_ns

    rows = []
    for o in run.observations:
        if o.experiment != "d2d" or not o.operation.startswith("d2d-"):
            continue
        if not o.metrics.get("rows"):
            rows.append([o.device, o.operation.removeprefix("d2d-"), "", f"`{o.outcome}`", "", "", o.detail])
            continue
        growth = o.metrics.get("pagecache_growth_bytes", {})
        for r in o.metrics["rows"]:
            rows.append(
                [
                    o.device,
                    o.operation.removeprefix("d2d-"),
                    f"{r['chunk_bytes'] >> 10} KiB",
                    format_bytes_per_s(r["bytes_per_s"]),
                    format_duration_ns(r["latency"]["p50"]),
                    f"Cached +{growth.get('Cached', 0) >> 10} KiB, Dirty +{growth.get('Dirty', 0) >> 10} KiB",
                    "verified" if r["verified"] else "**CHECKSUM DIFFERS**",
                ]
            )
    if not rows:
        return []
    return [
        "## Device-to-device copies",
        "",
        f"pmem → pmem without user-space mappings of the pmem (except the DAX-buffer path); "
        f"{provenance_caption(run)}.",
        "",
        *_table(["pair", "path", "chunk", "bandwidth", "chunk p50", "page cache during copy", "data"], rows),
        "",
    ]


def raid_section(run: RunContents, joined: list[Joined]) -> list[str]:
    from pmemkit.report.latency import format_ratio

    found = [o for o in run.observations if o.experiment == "raid"]
    if not found:
        return []
    lookup = _lookup(joined)
    stacks: dict[tuple[str, str], dict[str, Any]] = {}
    for o in found:
        bare = dataclasses.replace(o.scenario, stack=None, fs=None if o.scenario.stack else o.scenario.fs)
        key = (bare.label(), o.scenario.stack or "?")
        entry = stacks.setdefault(key, {})
        if o.operation == "stack-queue-dax":
            entry["dax"] = "yes" if o.metrics.get("queue_dax") else "no"
        elif o.operation == "dax-mount":
            j = lookup.get(id(o))
            cell = j.cell() if j is not None else f"`{o.outcome}`"
            entry[o.scenario.fs] = cell + (f" — {o.detail}" if o.outcome != "ok" else "")
        elif o.operation == "stack-copy":
            m = o.metrics
            entry["copy"] = (
                f"`{o.outcome}`; write {format_ratio(m.get('ratio_write'))}, read "
                f"{format_ratio(m.get('ratio_read'))} of the bare device"
            )
        else:
            entry.setdefault("other", []).append(f"{o.operation}: `{o.outcome}` {o.detail}")
    rows = [
        [
            pair,
            stack,
            e.get("dax", "?"),
            e.get("ext4", "—"),
            e.get("xfs", "—"),
            e.get("copy", "—"),
            "; ".join(e.get("other", [])),
        ]
        for (pair, stack), e in stacks.items()
    ]
    return [
        "## RAID and device-mapper stacks (the seed mail's hidden-behind-RAID case)",
        "",
        "DAX advertised = the stacked device's `queue/dax`. A copy through the stack is block I/O: it needs "
        "no `struct page` for the pmem, whatever the stack does for DAX.",
        "",
        *_table(
            ["devices", "stack", "DAX advertised", "ext4 -o dax", "xfs -o dax", "O_DIRECT copy", "other"],
            rows,
        ),
        "",
    ]


#: Experiments whose observations have sections of their own above; every other experiment's
#: (a new module, smoke) gets the generic section. "prepare" is the runner's own steps, shown in the
#: model join and the list of all observations.
DEDICATED_EXPERIMENTS = frozenset({"prepare", "mmap", "odirect", "fio", "kapi", "d2d", "raid"})


def generic_section(run: RunContents, joined: list[Joined]) -> list[str]:
    """Each other experiment as a table built from what its observations carry (report/generic.py)."""
    from pmemkit.report.generic import generic_sections

    predictions = {id(j.observation): j.prediction for j in joined}
    return generic_sections(run.observations, DEDICATED_EXPERIMENTS, predictions, provenance_caption(run))


def provenance_caption(run: RunContents) -> str:
    env, guest = run.environment, run.guest_environment
    return (
        f"kernel {guest.get('kernel', '?')}, {env.get('accel', '?')}, profile "
        f"{run.plan.get('profile', 'quick')}, emulated pmem (DRAM)"
    )


def observation_place(obs: Observation) -> list[Any]:
    """Where and what an observation is (device, source, mode, map, fs, experiment, operation): the
    leading cells of every observation table, Markdown and HTML alike."""
    sc = obs.scenario
    return [obs.device, sc.source, sc.mode, sc.map or "", sc.fs or "", obs.experiment, obs.shown()]


def observation_rows(run: RunContents) -> list[list[Any]]:
    return [[*observation_place(obs), f"`{obs.outcome}`", obs.detail] for obs in run.observations]


def detail_sections(run: RunContents, joined: list[Joined]) -> list[list[str]]:
    """Each detailed section's Markdown lines (`## title` first), empty ones left out.

    report.html shows each folded; `render` strings them together.
    """
    found = [
        model_section(run, joined),
        latency_section(run),
        bandwidth_section(run),
        durability_section(run),
        pageless_section(run),
        odirect_latency_section(run),
        fio_section(run),
        kapi_section(run, joined),
        cause_section((j.observation, j.prediction) for j in joined),
        d2d_section(run),
        raid_section(run, joined),
        whatif_section(run.plan, run.observations, run.guest_environment, run.name),
        generic_section(run, joined),
    ]
    return [lines for lines in found if lines]


def header_lines(run: RunContents) -> list[str]:
    """The title, the emulation warning, the status and the run's warnings: how both report.md and
    the detailed Markdown begin."""
    lines = [f"# pmemkit run {run.name}{kernel_title(run)}", "", EMULATION_WARNING, ""]
    if run.failure:
        lines += [f"**Status: FAILED** — {run.failure}. What the guest observed before that is below.", ""]
    else:
        lines += ["**Status: completed.**", ""]
    return lines + [f"- warning: {w}" for w in run.warnings]


def render(run: RunContents, predictor: Predictor | None = None) -> str:
    """The full detailed report as Markdown (every section and observation).

    Not written as report.md (that is the short twin, `report.summary`); report.html shows these
    sections folded, and tests read the sections from here.
    """
    lines = header_lines(run)
    lines += ["## Where these results come from", ""]
    lines += _table(["", ""], provenance_rows(run)) + [""]
    phases = run.environment.get("boot", {}).get("phases_s", {})
    if phases:
        lines += ["## Boot phases (seconds since qemu started, host clock)", ""]
        lines += _table(["phase", "reached at (s)", "step (s)"], phase_rows(phases)) + [""]
    joined = join(run, predictor)
    for section in detail_sections(run, joined):
        lines += section
    lines += [f"## All observations ({len(run.observations)})", ""]
    if run.observations:
        lines += _table(
            ["device", "source", "mode", "map", "fs", "experiment", "operation", "outcome", "detail"],
            observation_rows(run),
        )
    else:
        lines.append("No observations were recorded.")
    return "\n".join(lines) + "\n"
