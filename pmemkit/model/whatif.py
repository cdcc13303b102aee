"""The 2015 designs priced on a run: `pmemkit model whatif` (issue 13).

The seed thread (reference/seed-lkml-2015-05-07-ingo-struct-page.txt) argued three ways to give
persistent memory its page metadata; pmemkit's runs measure only the one that was merged. This
module sets all of them side by side for a run's devices and the operations the run observed:

- `pageless`:   Dan Williams' series "evacuate struct page from the block layer, introduce
                __pfn_t": no struct page for pmem; DAX maps bare pfns.
- `on-demand`:  Ingo Molnar's question in the seed mail: create struct page backing at mmap()
                time, shared by aliased mmaps.
- `enable-mem`, `enable-dev`: struct page for the whole device when the namespace is enabled,
                what was merged as ZONE_DEVICE (4.3), the memmap in DRAM (map=mem) or reserved on
                the device through vmem_altmap (map=dev, 4.5).

Costs come from `sizing.memmap_size` (the numbers `pmemkit model size` prints); which operations
fail comes from the run's observations (the merged design is what the run measured; the page-less
/dev/mem control shows what fails without struct page) and, where the run has no observation,
from the model's rules. Every failing entry carries its sources. Pure: takes the run's parsed
plan and observations, does no I/O.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from pmemkit import units
from pmemkit.model.errors import ModelError
from pmemkit.model.kernel import is_extrapolated, parse_kernel
from pmemkit.model.operations import canonical, model_name
from pmemkit.model.predict import backing, predict
from pmemkit.model.rules import REQ_PAGE, SEED, decide, rule_by_name
from pmemkit.model.sizing import PAGE, SIZEOF_STRUCT_PAGE, memmap_size
from pmemkit.scenario import Observation, PmemConfig, Scenario, ScenarioError, parse_size

DESIGNS = ("pageless", "on-demand", "enable-mem", "enable-dev")
TITLES = {
    "pageless": "page-less __pfn_t",
    "on-demand": "struct page at mmap (on demand)",
    "enable-mem": "whole device at enable, map=mem",
    "enable-dev": "whole device at enable, map=dev",
}
SEED_FILE = "reference/seed-lkml-2015-05-07-ingo-struct-page.txt"
DAN_SERIES = (
    "Dan Williams, 'evacuate struct page from the block layer, introduce __pfn_t' (second posting, "
    "LKML 2015-05-06; the series the seed mail answers)"
)
#: The seed mail, cited once in full; rule sources that quote it (rules.SEED) are shortened to this.
SEED_SHORT = f"seed mail ({SEED_FILE}, Ingo Molnar, LKML 2015-05-07)"
SEED_RULE = (
    f"{SEED_SHORT}: 'if a page is visible to user-space via the MMU then it needs struct page backing'"
)
SEED_ON_DEMAND = (
    f"{SEED_SHORT}: 'creating struct page backing at mmap() time (and making sure "
    "aliased mmaps share struct page arrays) ... Everything will Just Work'"
)
ZONE_DEVICE = (
    "commit 'mm: ZONE_DEVICE for \"device memory\"' (4.3): devm_memremap_pages() at namespace enable"
)
ALTMAP = "include/linux/memremap.h struct vmem_altmap (4.5): map=dev keeps the memmap on the device"
SUBSECTION = 2 << 20
SRC_SUBSECTION = (
    "linux-source-6.1 include/linux/mmzone.h SUBSECTION_SHIFT 21: 2 MiB is the smallest range "
    "memremap_pages() hot-adds (sub-section hotplug, 5.3)"
)
SRC_BASEPAGES = (
    "linux-source-6.1 arch/x86/mm/init_64.c vmemmap_populate(): a memmap smaller than one "
    "section's goes to vmemmap_populate_basepages(), 4 KiB pages from mm/sparse-vmemmap.c "
    "vmemmap_alloc_block()"
)
SRC_HUGEPAGES = (
    "linux-source-6.1 arch/x86/mm/init_64.c vmemmap_populate(): a whole section's memmap or more "
    "-> vmemmap_populate_hugepages() (2 MiB vmemmap blocks): enable of a whole device is priced "
    "as writing its memmap only"
)
SRC_INIT = (
    "linux-source-6.1 mm/memremap.c pagemap_range(): arch_add_memory() under mem_hotplug_begin(), "
    "then mm/mm_init.c memmap_init_zone_device() -> __init_zone_device_page() for every page and "
    "percpu_ref_get_many(&pgmap->ref, pages)"
)
SRC_GUP_EEXIST = (
    "linux-source-6.1 mm/gup.c follow_page_pte(): a pte with no struct page that is not devmap -> "
    "follow_pfn_pte() -> -EEXIST, which __get_user_pages() returns when the caller wants pages"
)
#: Operations asked of a hypothetical device when no run gives observed ones.
DEFAULT_OPERATIONS = (
    "dax-mount",
    "odirect-read-into-dax",
    "odirect-write-from-dax",
    "futex-shared",
    "vmsplice",
    "longterm-pin",
    "iouring-fixed-buffer",
    "fork-cow",
    "pmd-fault",
)
#: Metrics that record the size of the range an observation mapped (first match wins).
MAPPED_KEYS = ("mapped_bytes", "touched_bytes", "bytes")
#: Operations whose `bytes` is not a mapped range (bytes moved through an anonymous buffer).
NOT_A_RANGE = frozenset({"odirect-read-dax-file", "odirect-write-dax-file", "mmap-bandwidth"})


def fails(outcome: str) -> bool:
    """An errno, a fallback (no DAX) or a short transfer: the operation did not do what was asked."""
    return outcome.startswith("E") or outcome in ("fallback", "short")


@dataclass
class Cost:
    """Page metadata of one device under one design; `command` reproduces it with `model size`."""

    dram_bytes: int
    pmem_bytes: int
    note: str = ""
    command: list[str] = field(default_factory=list)
    usable_bytes: int | None = None


@dataclass
class Device:
    """One pmem device of the run (or given with --devices) and what each design costs for it."""

    label: str
    spec: str
    size_bytes: int
    hypothetical: bool
    names: list[str] = field(default_factory=list)  # /dev/pmem0, dax1.0, ... as observed
    mapped_ranges: list[int] = field(default_factory=list)
    costs: dict[str, Cost] = field(default_factory=dict)


@dataclass
class Entry:
    """One observed operation on some targets under one design: its outcome and why."""

    operation: str
    targets: list[str]
    outcome: str
    observed: str | None
    changed: bool
    status: str  # observed | V (read in source) | I (inferred)
    sources: list[str]


@dataclass
class Design:
    key: str
    title: str
    idea: str
    dram_bytes: int = 0
    pmem_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    operations: list[Entry] = field(default_factory=list)

    @property
    def failing(self) -> list[Entry]:
        return [e for e in self.operations if fails(e.outcome)]


@dataclass
class FaultEstimate:
    """What on-demand struct page creation would add to the measured fault path, and why so much."""

    assumption: str
    measured: dict[str, float]  # what the estimate is built from, with its provenance in `basis`
    basis: list[str]
    per_2mib_ns: float | None
    per_device: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WhatIf:
    kernel: str
    run: str | None
    extrapolated: bool
    devices: list[Device]
    designs: list[Design]
    fault_estimate: FaultEstimate
    seed: str = SEED_RULE

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for design, out in zip(self.designs, data["designs"], strict=True):
            out["failing_operations"] = [asdict(e) for e in design.failing]
        return data


# ---- devices and their costs --------------------------------------------------------------------


def _memmap_for(size: int) -> int:
    """DRAM memmap of `size` bytes of mapped pmem, in whole 2 MiB sub-sections."""
    return -(-size // SUBSECTION) * SUBSECTION // PAGE * SIZEOF_STRUCT_PAGE


def _size_args(kernel: str, cfg: PmemConfig, mode: str, map_: str | None) -> list[str]:
    args = ["--kernel", kernel, "--pmem", cfg.source, "--mode", mode, "--size", str(cfg.size)]
    return args + (["--map", map_] if map_ else [])


def _enable_cost(kernel: str, cfg: PmemConfig, map_: str) -> Cost:
    """The merged design for one device as configured, with this map where the mode offers one:
    what `pmemkit model size` says for it (the command is kept to check it).

    A raw or sector namespace has no map choice: the pmem driver builds a raw memmap=/virtio-pmem
    namespace's memmap in DRAM at enable (ND_REGION_PAGEMAP), a raw NFIT or BTT namespace gets none
    and so no DAX; the note prices the fsdax namespace that would give it this map.
    """
    mode = cfg.mode or "raw"
    if mode in ("fsdax", "devdax"):
        report = memmap_size(kernel, mode, cfg.size, map_, source=cfg.source)
        note, args = "", _size_args(kernel, cfg, mode, map_)
    else:
        report = memmap_size(kernel, mode, cfg.size, None, source=cfg.source)
        args = _size_args(kernel, cfg, mode, None)
        try:
            pfn = memmap_size(kernel, "fsdax", cfg.size, map_, source=cfg.source)
            where = f"DRAM {pfn.dram_bytes} B" if map_ == "mem" else f"pmem {pfn.memmap_bytes} B"
        except ModelError as exc:
            where = f"not possible ({exc})"
        if report.memmap_location == "none":
            note = f"{mode} namespace as configured: no struct page, so no DAX; as fsdax map={map_}: {where}"
        elif map_ == "dev":
            note = f"{mode} namespace: no map choice, its memmap is built in DRAM; as fsdax map=dev: {where}"
        else:
            note = f"{mode} namespace: the pmem driver builds its memmap in DRAM at enable"
    pmem = report.memmap_bytes if report.memmap_location == "pmem" else 0
    return Cost(report.dram_bytes, pmem, note, args, report.usable_bytes)


def _costs(kernel: str, cfg: PmemConfig, mapped: int, mapped_note: str) -> dict[str, Cost]:
    costs = {"pageless": Cost(0, 0, "no struct page")}
    costs["on-demand"] = Cost(_memmap_for(mapped) if mapped else 0, 0, mapped_note)
    for map_ in ("mem", "dev"):
        try:
            costs[f"enable-{map_}"] = _enable_cost(kernel, cfg, map_)
        except ModelError as exc:
            costs[f"enable-{map_}"] = Cost(0, 0, f"not possible here: {exc}")
    return costs


def _mapped_range(obs: Observation) -> int | None:
    """The size of the range an observation mapped, when its metrics record one."""
    if obs.operation in NOT_A_RANGE or not isinstance(obs.metrics, dict):
        return None
    if obs.metrics.get("mapping") not in ("dax", "pagecache") and "mapped_bytes" not in obs.metrics:
        return None
    for key in MAPPED_KEYS:
        value = obs.metrics.get(key)
        if type(value) is int and value > 0:
            return value
    return None


def _on_pmem(obs: Observation) -> bool:
    return obs.scenario.source != "baseline" and obs.scenario.mode != "devmem"


def _plan_devices(
    plan: dict[str, Any], observations: list[Observation]
) -> list[tuple[PmemConfig, list[str]]]:
    """The plan's devices, each with the device names its observations carry (joined by spec)."""
    configs = []
    for entry in plan.get("pmem", []) or []:
        try:
            configs.append(PmemConfig.from_dict(entry))
        except (ScenarioError, TypeError) as exc:
            raise ModelError(f"plan.json names a pmem device pmemkit cannot read ({exc})") from None
    names_by_spec: dict[str, list[str]] = {}
    for obs in observations:
        spec = obs.provenance.get("pmem_spec") if isinstance(obs.provenance, dict) else None
        if _on_pmem(obs) and isinstance(spec, str) and obs.device:
            names = names_by_spec.setdefault(spec, [])
            if obs.device not in names:
                names.append(obs.device)
    result, taken = [], {}
    for cfg in configs:
        names = names_by_spec.get(cfg.spec()) or _names_by_scenario(cfg, observations)
        index = taken.get(cfg.spec(), 0)  # two like devices (d2d pairs): one name each, in order
        taken[cfg.spec()] = index + 1
        mine = names[index : index + 1] if len(names) > 1 else names
        result.append((cfg, mine))
    return result


def _names_by_scenario(cfg: PmemConfig, observations: list[Observation]) -> list[str]:
    """Device names of observations without `pmem_spec` (older runs): same source, mode and map."""
    names: list[str] = []
    for obs in observations:
        sc = obs.scenario
        same = (sc.source, sc.mode, sc.map) == (cfg.source, cfg.mode or "raw", cfg.map)
        if same and _on_pmem(obs) and obs.device and obs.device not in names:
            names.append(obs.device)
    return names


def _label(cfg: PmemConfig) -> str:
    """`nvdimm:512M fsdax map=mem`, `nvdimm:6T fsdax`: the device as the tables name it."""
    bits = [f"{cfg.source}:{units.format_size(cfg.size)}", cfg.mode or "raw"]
    return " ".join(bits + ([f"map={cfg.map}"] if cfg.map else []))


def run_devices(kernel: str, plan: dict[str, Any], observations: list[Observation]) -> list[Device]:
    devices = []
    for cfg, names in _plan_devices(plan, observations):
        ranges = [
            r
            for o in observations
            if o.device in names and _on_pmem(o) and (r := _mapped_range(o)) is not None
        ]
        peak = max(ranges, default=0)
        note = (
            f"the largest range the run recorded mapping on it ({peak >> 10} KiB, of {len(ranges)} "
            "recorded), rounded up to 2 MiB sub-sections"
            if ranges
            else "the run recorded no mapped range on it"
        )
        device = Device(_label(cfg), cfg.spec(), cfg.size, False, names, ranges)
        device.costs = _costs(kernel, cfg, peak, note)
        devices.append(device)
    return devices


def _device_size(text: str) -> int:
    return parse_size(text, "device size", minimum=SUBSECTION)


def hypothetical_device(kernel: str, text: str, mapped: int | None) -> Device:
    """`--devices 6TiB` (an nvdimm fsdax namespace) or a `run` spec such as nvdimm:6T,mode=devdax."""
    try:
        cfg = (
            PmemConfig.parse(text) if ":" in text else PmemConfig("nvdimm", _device_size(text), mode="fsdax")
        )
    except ScenarioError as exc:
        raise ModelError(f"--devices {text[:40]!r}: {exc}") from None
    span = cfg.size if mapped is None else min(mapped, cfg.size)
    note = (
        "all of it mapped (the worst case; --mapped SIZE for less)" if mapped is None else f"{span} B mapped"
    )
    device = Device(_label(cfg), cfg.spec(), cfg.size, True, [], [span])
    device.costs = _costs(kernel, cfg, span, note)
    return device


# ---- operations under each design ---------------------------------------------------------------


def _observed_line(obs: Observation) -> str:
    detail = f" ({obs.detail[:100]})" if obs.detail else ""
    return f"this run: {obs.scenario.label()} {obs.device} {obs.shown()} -> {obs.outcome}{detail}"


def _rule_sources(rule: Any) -> list[str]:
    tag = " [inferred]" if rule.status == "I" else ""
    return [
        f"model rule {rule.name}{tag}: " + "; ".join(SEED_SHORT if s == SEED else s for s in rule.sources)
    ]


@dataclass
class _Cell:
    outcome: str
    status: str
    sources: list[str]


class _Pageless:
    """The page-less design's answer for an operation: the control's observation or the model's rule."""

    def __init__(self, kernel: str, observations: list[Observation]) -> None:
        self.kernel = parse_kernel(kernel)
        reference = backing(Scenario(kernel, "nvdimm", "fsdax", "mem", fs="ext4"))
        self.pages = dict(reference.facts)
        self.pageless = dict(reference.facts, fs_dax="pageless", memmap="none", member_fs_dax="pageless")
        self.devmem = dict(backing(Scenario(kernel, "memmap", "devmem")).facts)
        self.control: dict[str, Observation] = {}
        for obs in observations:
            if obs.scenario.mode == "devmem" and not obs.outcome.startswith("skipped"):
                try:
                    op = canonical(model_name(obs.operation, obs.variant)).operation
                except ModelError:
                    continue
                self.control.setdefault(op, obs)

    def _decide(self, op: str, facts: dict[str, object]) -> Any:
        try:
            return decide(op, self.kernel, facts)
        except LookupError:
            return None

    def has_rule(self, op: str) -> bool:
        return self._decide(op, self.pageless) is not None

    def needs_pages(self, op: str) -> bool:
        """The model answers the op differently with and without struct page, or only the control knows."""
        with_pages, without = self._decide(op, self.pages), self._decide(op, self.pageless)
        if without is None:
            return op in self.control and fails(self.control[op].outcome)
        return with_pages is None or with_pages.answer != without.answer

    def cell(self, op: str, fs: str | None) -> _Cell:
        facts = dict(self.pageless, fs=fs or "ext4")
        rule = self._decide(op, facts)
        control = self.control.get(op)
        control_rule = self._decide(op, self.devmem)
        same_mechanism = (
            rule is not None
            and control_rule is not None
            and control_rule.answer == rule.answer
            and control is not None
            and control.outcome == control_rule.answer
        )
        if control is not None and (rule is None or same_mechanism):
            sources = [
                _observed_line(control) + " — the page-less /dev/mem control on the same kind of range",
                *(
                    _rule_sources(rule)
                    if rule
                    else [f"{SRC_GUP_EEXIST} (inferred: no model rule for page-less DAX)"]
                ),
            ]
            return _Cell(control.outcome, "observed", sources)
        if rule is None:
            return _Cell("unknown", "I", ["no model rule for page-less DAX and no control observation"])
        sources = _rule_sources(rule)
        if control is not None:
            sources.append(
                f"not taken from the control: /dev/mem gave {control.outcome} (model rule for it: "
                f"{control_rule.name if control_rule else 'none'}, a VM_PFNMAP mapping), which is not "
                "the mechanism page-less DAX would meet"
            )
        return _Cell(rule.answer, rule.status, sources)


def _without_pages(scenario: Scenario) -> bool:
    """The device as configured has no struct page (raw NFIT, BTT, force_raw): no DAX since 4.16."""
    try:
        return backing(scenario).memmap_location == "none"
    except ScenarioError:
        return False


def _bare(scenario: Scenario) -> bool:
    """Not under an md/dm stack (whose DAX is the stack's question, not the pages')."""
    return scenario.stack in (None, "none")


def _on_demand_cell(obs: Observation, op: str) -> _Cell:
    """Pages exist whenever user space maps the range: what the merged design gave, on every device."""
    if not _without_pages(obs.scenario):
        return _Cell(obs.outcome, "observed", [_observed_line(obs), SEED_ON_DEMAND])
    like = dataclasses.replace(obs.scenario, source="nvdimm", mode="fsdax", map="mem", force_raw=False)
    p = predict(like, op)
    return _Cell(
        p.outcome,
        "I",
        [
            f"inferred: with pages made at mmap this device maps like an fsdax namespace "
            f"(model: {like.label()} -> {p.outcome}, rule {p.rule}); today it has none "
            f"({_observed_line(obs)})",
            REQ_PAGE + ": DAX is refused only because the device has no struct page",
            SEED_ON_DEMAND,
        ],
    )


def _cells(obs: Observation, op: str, pageless: _Pageless) -> dict[str, _Cell]:
    observed = _Cell(obs.outcome, "observed", [_observed_line(obs)])
    cells = {"enable-mem": observed, "enable-dev": observed, "on-demand": _on_demand_cell(obs, op)}
    if pageless.needs_pages(op) or (_without_pages(obs.scenario) and _bare(obs.scenario)):
        cells["pageless"] = pageless.cell(op, obs.scenario.fs)
    else:
        cells["pageless"] = _Cell(
            obs.outcome, "observed", [_observed_line(obs), "needs no struct page (model)"]
        )
    return cells


def run_operations(kernel: str, observations: list[Observation]) -> dict[str, list[Entry]]:
    """Per design, every observed (operation, target) on pmem, merged where targets answer alike."""
    pageless = _Pageless(kernel, observations)
    merged: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for obs in observations:
        if not _on_pmem(obs) or obs.outcome.startswith("skipped"):
            continue
        try:
            op = canonical(model_name(obs.operation, obs.variant)).operation
        except ModelError:
            continue  # a bookkeeping step the model does not ask (stack-build, ...)
        try:
            cells = _cells(obs, op, pageless)
        except ScenarioError:
            continue
        target = f"{obs.scenario.label()} ({obs.device})" if obs.device else obs.scenario.label()
        signature = tuple((d, cells[d].outcome) for d in DESIGNS)
        key = (obs.shown(), repr(signature), obs.outcome)
        slot = merged.setdefault(key, {"targets": [], "cells": cells, "observed": obs.outcome})
        if target not in slot["targets"]:
            slot["targets"].append(target)
    result: dict[str, list[Entry]] = {d: [] for d in DESIGNS}
    for (shown, _, observed), slot in merged.items():
        for design in DESIGNS:
            cell = slot["cells"][design]
            result[design].append(
                Entry(
                    shown,
                    slot["targets"],
                    cell.outcome,
                    observed,
                    cell.outcome != observed,
                    cell.status,
                    cell.sources,
                )
            )
    return result


def model_operations(kernel: str, device: Device) -> dict[str, list[Entry]]:
    """Without a run: the model's answers for the usual user-page operations on a hypothetical device."""
    cfg = PmemConfig.parse(device.spec)
    scenario = Scenario(kernel, cfg.source, cfg.mode or "raw", cfg.map, fs="ext4")
    pageless = _Pageless(kernel, [])
    result: dict[str, list[Entry]] = {d: [] for d in DESIGNS}
    target = [f"{device.label} ext4 (hypothetical)"]
    for op in DEFAULT_OPERATIONS:
        p = predict(scenario, op)
        today = _Cell(p.outcome, p.status, _rule_sources(rule_by_name(p.rule)))
        cells = {"enable-mem": today, "enable-dev": today, "on-demand": today}
        if pageless.needs_pages(op):
            cells["pageless"] = pageless.cell(op, "ext4")
        elif pageless.has_rule(op):
            cells["pageless"] = today
        else:
            why = "no model rule for page-less DAX and no control observation: today's answer kept"
            cells["pageless"] = _Cell(p.outcome, "I", [*today.sources, why])
        for design in DESIGNS:
            c = cells[design]
            result[design].append(
                Entry(op, target, c.outcome, None, c.outcome != p.outcome, c.status, c.sources)
            )
    return result


# ---- the fault-path estimate --------------------------------------------------------------------


def _fault_ns_per_page(obs: Observation, stat: str = "mean") -> float | None:
    """First-touch cost per 4 KiB page (`mean`: all fault work spread over the range, PMD faults
    included; `p50`: the typical single fault) less the timing loop's own p50 (both measured)."""
    m = obs.metrics if isinstance(obs.metrics, dict) else {}
    lat, loop = m.get("latency"), m.get("loop_overhead")
    if not isinstance(lat, dict) or not isinstance(loop, dict):
        return None
    value, over = lat.get(stat), loop.get("p50")
    if not isinstance(value, int | float) or not isinstance(over, int | float):
        return None
    return max(float(value) - float(over), 0.0)


def _anon_write_bandwidth(observations: list[Observation]) -> float | None:
    for obs in observations:
        if obs.operation == "mmap-bandwidth" and obs.scenario.mode == "anonymous" and obs.outcome == "ok":
            rows = obs.metrics.get("rows") if isinstance(obs.metrics, dict) else None
            found = [
                r
                for r in (rows if isinstance(rows, list) else [])
                if isinstance(r, dict)
                and r.get("pattern") == "seq-write"
                and isinstance(r.get("bytes_per_s"), int | float)
                and isinstance(r.get("block_bytes"), int)
            ]
            if found:
                return float(max(found, key=lambda r: r["block_bytes"])["bytes_per_s"])
    return None


def _has_memmap(device: Device) -> bool:
    """The merged design builds a memmap for it as configured (a raw NFIT namespace gets none)."""
    return any(device.costs[k].dram_bytes or device.costs[k].pmem_bytes for k in ("enable-mem", "enable-dev"))


def fault_estimate(observations: list[Observation], devices: list[Device]) -> FaultEstimate:
    """Price, from the run's own measurements, what making struct page on demand would cost."""
    vmemmap_pages = SUBSECTION // PAGE * SIZEOF_STRUCT_PAGE // PAGE  # 8 pages of memmap per 2 MiB
    memmap_bytes = SUBSECTION // PAGE * SIZEOF_STRUCT_PAGE
    assumption = (
        f"Per 2 MiB sub-section first mapped, the on-demand design does what namespace enable does "
        f"today for it: allocate {vmemmap_pages} vmemmap pages (each priced at this run's anonymous "
        f"first-touch write p50: a 4 KiB fault that allocates, zeroes and maps one page) and write "
        f"{memmap_bytes >> 10} KiB of struct page (priced at this run's anonymous sequential write "
        "bandwidth). Not priced: the memory-hotplug lock and pgmap reference taking, the kernel page "
        "tables of the vmemmap, sharing the array between aliased mmaps and freeing it at the last "
        "munmap (or keeping it while a pin holds a page). A lower bound, from TCG timings of emulated "
        "pmem (DRAM)."
    )
    anon = [o for o in observations if o.operation == "first-touch-write" and o.scenario.mode == "anonymous"]
    anon_ns = next((v for o in anon if (v := _fault_ns_per_page(o, "p50")) is not None), None)
    bandwidth = _anon_write_bandwidth(observations)
    basis = [SRC_SUBSECTION, SRC_BASEPAGES, SRC_INIT, SRC_HUGEPAGES]
    measured: dict[str, float] = {}
    if not anon_ns or not bandwidth:
        why = (
            "no run given: nothing measured to price the fault path with"
            if not observations
            else "the run has no anonymous 4 KiB first-touch fault (p50 above the loop overhead) or "
            "no anonymous bandwidth measurement"
        )
        return FaultEstimate(assumption, measured, basis + [why], None)
    measured = {"anon_first_touch_ns_per_page": anon_ns, "anon_seq_write_bytes_per_s": bandwidth}
    prov = anon[0].provenance if isinstance(anon[0].provenance, dict) else {}
    basis.append(
        f"measured in this run: kernel {prov.get('kernel', '?')}, {prov.get('accel', '?')}, anonymous "
        f"memory, first-touch write p50 minus loop-overhead p50 ({prov.get('repetitions', '?')} "
        "samples); mmap-bandwidth seq-write, largest block; DAX fault cost per 2 MiB = (first-touch "
        "write mean - loop-overhead p50) x 512, median over the device's filesystems"
    )
    per_2mib = vmemmap_pages * anon_ns + memmap_bytes / bandwidth * 1e9
    accel = str(prov.get("accel", "?"))

    def init_ns(size: int) -> float:
        """Enable writes the whole memmap; its vmemmap comes in 2 MiB blocks (one per 128 MiB
        section, vmemmap_populate_hugepages()), whose allocation is not priced."""
        return size // PAGE * SIZEOF_STRUCT_PAGE / bandwidth * 1e9

    result = FaultEstimate(assumption, measured, basis, per_2mib)
    for device in devices:
        if device.hypothetical:
            chunks = -(-device.size_bytes // SUBSECTION)
            result.per_device.append(
                {
                    "device": device.label,
                    "mapped_whole_ns": chunks * per_2mib,
                    "enable_ns": init_ns(device.size_bytes),
                    "subsections": chunks,
                    "accel": accel,
                }
            )
            continue
        writes = [
            v
            for o in observations
            if o.operation == "first-touch-write" and o.device in device.names and _on_pmem(o)
            if isinstance(o.metrics, dict) and o.metrics.get("mapping") == "dax"
            if (v := _fault_ns_per_page(o)) is not None
        ]
        peak = max(device.mapped_ranges, default=0)
        entry: dict[str, Any] = {
            "device": device.label,
            "enable_ns": init_ns(device.size_bytes) if _has_memmap(device) else None,
            "largest_range_bytes": peak,
            "mmap_ns": -(-peak // SUBSECTION) * per_2mib,
        }
        if writes:
            fault = statistics.median(writes) * (SUBSECTION // PAGE)
            entry.update(measured_fault_ns_per_2mib=fault, added_fraction=per_2mib / fault if fault else None)
        result.per_device.append(entry)
    return result


# ---- the whole answer ---------------------------------------------------------------------------


def _designs(devices: list[Device], operations: dict[str, list[Entry]], measured: bool) -> list[Design]:
    ideas = {
        "pageless": "no struct page for pmem; DAX maps bare pfns, block I/O and RAID take "
        "pfn<->sector requests",
        "on-demand": "struct page created when user space maps a range, shared by aliased mmaps",
        "enable-mem": "struct page for every page when the namespace is enabled, the array in DRAM "
        "(ZONE_DEVICE)",
        "enable-dev": "as map=mem, but the array reserved at the start of the namespace (vmem_altmap)",
    }
    sources = {
        "pageless": [DAN_SERIES, SEED_RULE, REQ_PAGE],
        "on-demand": [SEED_ON_DEMAND],
        "enable-mem": [ZONE_DEVICE, "drivers/nvdimm/pfn_devs.c nd_pfn_init()"],
        "enable-dev": [ZONE_DEVICE, ALTMAP, "drivers/nvdimm/pfn_devs.c nd_pfn_init()"],
    }
    notes = {
        "pageless": [
            "the errno of a page-less DAX pin on this kernel is inferred: the /dev/mem control is "
            "refused by check_vma_flags() (VM_IO|VM_PFNMAP -> EFAULT), while a VM_MIXEDMAP page-less pte "
            f"would reach follow_pfn_pte(): {SRC_GUP_EEXIST} (not observed)"
        ],
        "on-demand": [
            "no run measures this design: its outcomes are the merged design's wherever pages exist "
            "(the seed mail's claim), its cost is paid at mmap/fault time (see the estimate)"
        ],
        "enable-mem": ["what the run measured (map=mem devices); outcomes do not depend on map"],
        "enable-dev": ["what the run measured (map=dev devices); outcomes do not depend on map"],
    }
    if not measured:
        for key in ("enable-mem", "enable-dev"):
            notes[key] = [
                "the model's answers for this kernel (what was merged); outcomes do not depend on map"
            ]
    result = []
    for key in DESIGNS:
        design = Design(key, TITLES[key], ideas[key], notes=notes[key], sources=sources[key])
        design.dram_bytes = sum(d.costs[key].dram_bytes for d in devices)
        design.pmem_bytes = sum(d.costs[key].pmem_bytes for d in devices)
        design.operations = operations.get(key, [])
        result.append(design)
    return result


def run_kernel(observations: list[Observation], guest_environment: dict[str, Any]) -> str | None:
    """The kernel the run's observations were made on (the model join asks the same string)."""
    for obs in observations:
        if _on_pmem(obs) and obs.scenario.kernel:
            return obs.scenario.kernel
    release = guest_environment.get("kernel")
    return release if isinstance(release, str) and release else None


def whatif(
    kernel: str,
    plan: dict[str, Any] | None = None,
    observations: list[Observation] | None = None,
    run: str | None = None,
    extra_devices: list[str] | None = None,
    mapped: int | None = None,
) -> WhatIf:
    """Price the designs for a run's devices (plan, observations) and/or hypothetical ones."""
    k = parse_kernel(kernel)
    observations = observations or []
    devices = run_devices(kernel, plan, observations) if plan is not None else []
    extra = [hypothetical_device(kernel, text, mapped) for text in extra_devices or []]
    if not devices and not extra:
        raise ModelError("nothing to price: give a run directory with pmem devices, or --devices SIZE")
    operations = (
        run_operations(kernel, observations) if plan is not None else model_operations(kernel, extra[0])
    )
    all_devices = devices + extra
    return WhatIf(
        kernel=str(k) if plan is None else kernel,
        run=run,
        extrapolated=is_extrapolated(k),
        devices=all_devices,
        designs=_designs(devices or extra, operations, plan is not None),
        fault_estimate=fault_estimate(observations, all_devices),
    )
