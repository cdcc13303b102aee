"""The mmap experiment: faults, bandwidth, durability and page-cache bypass through numpy mappings.

Per target (a DAX filesystem, device-dax, or a baseline: page-cache file, anonymous memory):
- first-touch fault latency, write and read, one sample per 4 KiB page, with the timing loop's
  own cost measured on the same pages once faulted (reported beside, not subtracted); which
  faults the kernel served as 2 MiB PMDs comes from `fs_dax:dax_pmd_fault_done`, not from timing;
- steady-state bandwidth, sequential and random, read and write, several block sizes (memcpy
  between the mapping and an anonymous buffer, as fio's mmap engine does), through a plain ndarray
  over the mapping's buffer on every side (DAX and anonymous alike), one timed sample per pass; on
  files also one sequential read through `numpy.memmap` slices, labelled "what a numpy user gets";
- durability: write + msync per 4 KiB vs a MAP_SYNC mapping with no msync (and whether MAP_SYNC
  is accepted at all);
- page-cache bypass evidence: `Cached` in /proc/meminfo before/after touching the mapping.

Every latency goes through `pmemkit.measure.timing.time_each` (overhead calibrated once per
target); this module only says what one timed iteration does.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pmemkit.guest.experiments import Target, mapping_of, register, with_mapping
from pmemkit.guest.mapping import PAGE, Mapping
from pmemkit.guest.syscalls import errno_name, files_are_dax, meminfo_bytes, statx_dax
from pmemkit.guest.tracefs import TraceEvent, pid_smaps
from pmemkit.guest.transfer import region_offset
from pmemkit.guest.vmfault import summarize_lines
from pmemkit.measure.bandwidth import bandwidth
from pmemkit.measure.stats import percentile_ci, summarize
from pmemkit.measure.timing import Timed, time_each
from pmemkit.scenario import Observation

NAME = "mmap"
KINDS = ("fs", "devdax", "pagecache", "anon")
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "fault_bytes": 4 << 20,
        # 4 MiB (two 2 MiB PMDs) mapped; one warm-up round then 9 timed rounds, each a target pass
        # and an anonymous-twin pass. The warm-up keeps TCG's first translation of the copy loop out
        # of the first (target) sample; many short rounds and their median (a 95 % CI from 9
        # rounds) beat a few long ones on a loaded host, where one preemption of the vCPU thread
        # ruins a whole pass (3 rounds of 4 MiB passes gave per-round ratios of 0.13-34x at load
        # 6). A pass copies at most `bw_max_blocks` blocks (4 KiB: 512 KiB); the numpy.memmap rows
        # (no ratio) take `memmap_passes` passes. Together they keep make run about as short as
        # before the twin.
        "bw_bytes": 4 << 20,
        "bw_passes": 9,
        "bw_max_blocks": 128,
        "memmap_passes": 2,
        "block_sizes": [4096, 1 << 20],
        "bw_warmup": 1,
        "sync_writes": 256,
    },
    "full": {
        "fault_bytes": 64 << 20,
        "bw_bytes": 32 << 20,
        "bw_passes": 15,
        "bw_max_blocks": 1024,
        "memmap_passes": 4,
        "block_sizes": [4096, 65536, 1 << 20, 4 << 20],
        "bw_warmup": 1,
        "sync_writes": 2048,
    },
}
TWO_MIB = 2 << 20


def _touch_loop(array: np.ndarray, npages: int, write: bool, key: str) -> Timed:
    """One timed touch per page: a write of one byte, or a read of one byte (no warm-up: the first
    touch is the point)."""
    if write:

        def touch(i: int) -> None:
            array[i * PAGE] = 1

    else:

        def touch(i: int) -> object:
            return array[i * PAGE]

    return time_each(touch, npages, 0, key=key)


DEVDAX_REGION = 64 << 20  # each test maps its own 2 MiB-aligned region of a device-dax device


def _offset(target: Target, index: int, size: int) -> int:
    """Device-dax regions are carved from the device, 2 MiB aligned (it refuses others); files start at 0."""
    if target.kind == "devdax" and size > DEVDAX_REGION:
        raise ValueError(f"a device-dax test region holds at most {DEVDAX_REGION >> 20} MiB")
    return region_offset(target, index, DEVDAX_REGION)


@register(NAME, kinds=KINDS)
def run(target: Target, params: dict[str, Any]) -> Iterator[Observation]:
    profile = PROFILES[params.get("profile", "quick")]
    mapping = mapping_of(target, target.kind == "fs" and files_are_dax(target.path))
    for observation in _observations(target, profile):
        yield with_mapping(target, observation, mapping)


def _observations(target: Target, profile: dict[str, Any]) -> Iterator[Observation]:
    yield from _faults(target, profile)
    yield _bandwidth(target, profile)
    yield from _durability(target, profile)
    if target.kind != "anon":
        yield _bypass(target, profile)


def _faults(target: Target, profile: dict[str, Any]) -> Iterator[Observation]:
    size = profile["fault_bytes"]
    npages = size // PAGE
    for index, write in enumerate((True, False)):
        op = "first-touch-write" if write else "first-touch-read"
        trace = TraceEvent("fs_dax", "dax_pmd_fault_done")
        with Mapping(target, f"faults-{index}", size, offset=_offset(target, index, size)) as m:
            with trace:
                faults = _touch_loop(m.array, npages, write, target.device)
            smaps = pid_smaps(m.address)
            overhead = _touch_loop(m.array, npages, write, target.device)  # same loop, pages mapped
        overhead_p50 = int(np.median(overhead.samples_ns))
        decoded = summarize_lines(trace.lines, str(target.provenance.get("kernel") or os.uname().release))
        pmd = decoded["counts"]
        latency = summarize(faults.samples_ns, overhead_ns=overhead_p50)
        latency["timing"] = faults.metadata()
        metrics = {
            "latency": latency,
            "loop_overhead": overhead.summary(),
            "bytes": size,
            "page_bytes": PAGE,
            "pmd_fault_events": pmd if trace.available else None,
            "pmd_fault_trace": decoded if trace.available else None,
            "smaps_kb": {k: smaps[k] for k in ("Rss", "FilePmdMapped", "AnonHugePages") if k in smaps},
        }
        detail = (
            f"{npages} pages; loop overhead p50 {overhead_p50} ns measured on the faulted pages "
            "(reported, not subtracted)"
        )
        if target.kind == "anon":
            thp = target.provenance.get("thp") or {}
            metrics["thp_enabled"] = thp.get("enabled")
            metrics["thp_applied"] = f"no MADV_HUGEPAGE on this mapping (THP enabled={thp.get('enabled')})"
            detail += (
                f"; THP enabled={thp.get('enabled', 'unknown')}, defrag={thp.get('defrag', 'unknown')} "
                f"({'set by pmemkit' if thp.get('set_by_pmemkit') else 'as found'}), no MADV_HUGEPAGE "
                f"on this mapping, AnonHugePages {smaps.get('AnonHugePages', 0)} kB"
            )
        yield target.observation(NAME, op, "ok", detail=detail, metrics=metrics, repetitions=npages)
        if write and target.kind == "fs":
            yield _pmd_outcome(target, trace, pmd, npages, decoded)


def _pmd_outcome(
    target: Target, trace: TraceEvent, pmd: dict[str, int], touches: int, decoded: dict[str, Any]
) -> Observation:
    """PMD faults per the kernel's tracepoint: ok if any 2 MiB fault succeeded, fallback if all fell back.

    `touches`: the page touches of the traced loop, this observation's repetitions."""
    if not trace.available:
        return target.observation(
            NAME, "pmd-fault", "skipped:no-tracefs", detail="fs_dax:dax_pmd_fault_done is not available"
        )
    if not pmd:
        return target.observation(
            NAME,
            "pmd-fault",
            "fallback",
            metrics={"pmd_fault_events": pmd, "pmd_fault_trace": decoded},
            detail="no PMD fault was attempted: the kernel used 4 KiB faults only",
            repetitions=touches,
        )
    mapped = sum(n for key, n in pmd.items() if "NOPAGE" in key.split("|"))
    outcome = "ok" if mapped > 0 else "fallback"
    printed = decoded.get("printed", {})
    return target.observation(
        NAME,
        "pmd-fault",
        outcome,
        metrics={"pmd_fault_events": pmd, "pmd_fault_trace": decoded},
        detail=f"dax_pmd_fault_done results: {pmd} (as the tracepoint printed them: {printed}; "
        "0 = no VM_FAULT bit, the fault was retried)",
        repetitions=touches,
    )


def _pass_over(
    array: np.ndarray, buffer: np.ndarray, starts: list[int], bs: int, read: bool
) -> Callable[[int], None]:
    """One pass of `bs`-byte memcpys between `array` and `buffer` at `starts`: one timed sample."""

    def one_pass(_: int) -> None:
        if read:
            for start in starts:
                np.copyto(buffer, array[start : start + bs])
        else:
            for start in starts:
                np.copyto(array[start : start + bs], buffer)

    return one_pass


def _bandwidth_row(timed: Timed, pattern: str, bs: int, size: int, view: str) -> dict[str, Any]:
    """Bandwidth over all passes of `size` bytes each, plus the per-pass median with its spread (one
    sample per pass)."""
    per_pass = [size * 1_000_000_000 / t for t in timed.samples_ns.tolist() if t > 0]
    return {
        "pattern": pattern,
        "block_bytes": bs,
        "view": view,
        "pass_bytes": size,
        **bandwidth(size * timed.count, timed.total_ns),
        "pass_bytes_per_s_p50": float(np.median(per_pass)) if per_pass else None,
        "pass_bytes_per_s_min": min(per_pass) if per_pass else None,
        "pass_bytes_per_s_max": max(per_pass) if per_pass else None,
        "timing": timed.metadata(),
    }


PLAIN_VIEW = "ndarray over the mmap buffer (np.frombuffer)"
NUMPY_MEMMAP_VIEW = "numpy.memmap slices: what a numpy user gets"


ANON_HUGE = "madvise(MADV_HUGEPAGE)"


def _ask_huge(madvise: Callable[[int], object]) -> str:
    """madvise(MADV_HUGEPAGE) on an anonymous mapping; what happened, for the metrics."""
    try:
        madvise(mmap.MADV_HUGEPAGE)
    except (OSError, AttributeError) as exc:  # a kernel without THP: say so, measure anyway
        return f"{ANON_HUGE} refused: {getattr(exc, 'strerror', exc)}"
    return ANON_HUGE


def _anon_twin(size: int) -> tuple[mmap.mmap, np.ndarray, str]:
    """The anonymous baseline measured beside a target: same size, same view (np.frombuffer), same
    prefault, and huge pages asked for with MADV_HUGEPAGE (DAX files and device-dax are PMD-mapped
    when aligned; the THP policy is `madvise`, so without asking anon would get 4 KiB PTEs)."""
    raw = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    thp = _ask_huge(raw.madvise)
    view = np.frombuffer(raw, dtype=np.uint8)
    view[:] = 1  # prefault, as the target's mapping
    return raw, view, thp


def _interleaved(
    target_pass: Callable[[int], None], anon_pass: Callable[[int], None]
) -> Callable[[int], None]:
    """One `time_each` loop over A B A B …: even samples are the target's passes, odd the anon twin's."""

    def one(i: int) -> None:
        (anon_pass if i & 1 else target_pass)(i >> 1)

    return one


def _ratio_row(
    row: dict[str, Any], anon: dict[str, Any], even: np.ndarray, odd: np.ndarray
) -> dict[str, Any]:
    """The target's row with its interleaved anonymous twin and their ratio.

    `ratio_vs_anon` is best of each side: the target's fastest pass over the twin's fastest pass.
    On a shared host preemption of the vCPU thread only ever adds time to a pass, so the fastest
    pass is the least disturbed one (timeit's reasoning for its minimum); in a run at load 6 the
    per-round ratios spread over 0.1-50x while the best-of ratios stayed within 0.9-1.1 for 66 of
    72 DAX rows. Each A B round also gives one ratio (twin pass time over target pass time):
    `ratio_vs_anon_median` is their median with its order-statistic 95 % CI, kept beside it, and
    the rounds themselves; `ratio_vs_anon_total` is total bytes over total time, both sides."""
    rounds = [float(o) / float(e) for e, o in zip(even.tolist(), odd.tolist(), strict=True) if e > 0]
    total = (row["bytes_per_s"] / anon["bytes_per_s"]) if anon["bytes_per_s"] else None
    fastest, twin_fastest = row["pass_bytes_per_s_max"], anon["pass_bytes_per_s_max"]
    return {
        **row,
        "anon_interleaved": anon,
        "ratio_vs_anon": fastest / twin_fastest if fastest and twin_fastest else None,
        "ratio_vs_anon_method": "best of each side: fastest target pass / fastest twin pass",
        "ratio_vs_anon_median": float(np.median(rounds)) if rounds else None,
        "ratio_vs_anon_ci": percentile_ci(np.sort(np.asarray(rounds)), "p50") if rounds else None,
        "ratio_vs_anon_ci_of": "median over A B rounds of (twin pass ns / target pass ns), order statistic",
        "ratio_vs_anon_rounds": rounds,
        "ratio_vs_anon_total": total,
    }


def _bandwidth(target: Target, profile: dict[str, Any]) -> Observation:
    """Steady-state bandwidth; on every target but anonymous memory itself, measured interleaved with
    an anonymous twin in the same loop (A B A B), so drift and the machine's load hit both alike."""
    size, passes = profile["bw_bytes"], profile["bw_passes"]
    rng = np.random.default_rng(7)
    rows = []
    twin = target.kind != "anon"
    smaps: dict[str, Any] = {}
    anon_raw: mmap.mmap | None = None
    anon_view: np.ndarray | None = None
    thp = ANON_HUGE
    with Mapping(target, "bandwidth", size, offset=_offset(target, 2, size)) as m:
        if target.kind == "anon":
            thp = _ask_huge(m.madvise)  # the same THP request as every twin
        m.array[:] = 1  # prefault: steady state, not faults
        try:
            if twin:
                anon_raw, anon_view, thp = _anon_twin(size)
            for bs in profile["block_sizes"]:
                buffer = np.ones(bs, dtype=np.uint8)
                blocks = min(size // bs, profile.get("bw_max_blocks") or size // bs)
                moved = blocks * bs  # bytes one pass copies
                for pattern in ("seq-read", "seq-write", "rand-read", "rand-write"):
                    order = np.arange(blocks) if pattern.startswith("seq") else rng.permutation(blocks)
                    starts, read = (order * bs).tolist(), pattern.endswith("read")
                    one_pass = _pass_over(m.array, buffer, starts, bs, read)
                    if anon_view is None:
                        timed = time_each(one_pass, passes, profile["bw_warmup"], key=target.device)
                        rows.append(_bandwidth_row(timed, pattern, bs, moved, PLAIN_VIEW))
                        continue
                    pair = _interleaved(one_pass, _pass_over(anon_view, buffer, starts, bs, read))
                    timed = time_each(pair, 2 * passes, 2 * profile["bw_warmup"], key=target.device)
                    even, odd = timed.samples_ns[0::2], timed.samples_ns[1::2]
                    mine = _bandwidth_row(_half(timed, even), pattern, bs, moved, PLAIN_VIEW)
                    anon = _bandwidth_row(_half(timed, odd), pattern, bs, moved, PLAIN_VIEW)
                    anon["thp"] = thp
                    rows.append(_ratio_row(mine, anon, even, odd))
            smaps = _smaps_of(m.address, None if anon_view is None else int(anon_view.ctypes.data))
        finally:
            one_pass = pair = None  # they hold the views: the mappings must be unmappable on exit
            del anon_view
            if anon_raw is not None:
                anon_raw.close()
    if target.kind in ("fs", "pagecache"):
        rows += _numpy_memmap_rows(target, profile)
    how = (
        f"interleaved with an anonymous twin in the same loop (A B A B, {passes} rounds; the twin: same "
        f"view, same prefault, {thp})"
        if twin
        else f"{thp} on this mapping"
    )
    return target.observation(
        NAME,
        "mmap-bandwidth",
        "ok",
        metrics={"rows": rows, "smaps_kb": smaps, "anon_thp": thp},
        detail=(
            f"memcpy through a plain ndarray over the mapping ({PLAIN_VIEW}), the same view on every "
            f"target; {passes} timed passes over a {size >> 20} MiB mapping (each pass at most "
            f"{profile.get('bw_max_blocks') or 'all'} blocks, `pass_bytes`) after {profile['bw_warmup']} "
            f"warm-up pass(es), one sample per pass; {how}"
        ),
        repetitions=passes,
    )


def _half(timed: Timed, samples: np.ndarray) -> Timed:
    """One side of an interleaved loop, as its own `Timed` (the same loop metadata and overhead)."""
    return Timed(
        samples_ns=samples,
        warmup=timed.warmup // 2,
        overhead=timed.overhead,
        key=timed.key,
        speed_reference_ns=timed.speed_reference_ns,
        speed_chunks_ns=timed.speed_chunks_ns,
    )


def _smaps_of(address: int, anon_address: int | None) -> dict[str, Any]:
    """How the kernel mapped both sides: PMD-mapped file bytes, anonymous huge pages (kB)."""
    wanted = ("Rss", "FilePmdMapped", "AnonHugePages")
    out: dict[str, Any] = {"target": {k: v for k, v in pid_smaps(address).items() if k in wanted}}
    if anon_address is not None:
        out["anon_twin"] = {k: v for k, v in pid_smaps(anon_address).items() if k in wanted}
    return out


def _numpy_memmap_rows(target: Target, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """Sequential reads through `numpy.memmap` slices: the wrapper's own cost is the point here (no
    ratio is taken, so a few passes of at most `bw_max_blocks` blocks do)."""
    size = profile["bw_bytes"]
    passes = profile.get("memmap_passes") or profile["bw_passes"]
    rows = []
    with Mapping(target, "bandwidth-memmap", size, numpy_memmap=True) as m:
        m.array[:] = 1
        for bs in profile["block_sizes"]:
            buffer = np.ones(bs, dtype=np.uint8)
            blocks = min(size // bs, profile.get("bw_max_blocks") or size // bs)
            one_pass = _pass_over(m.array, buffer, [i * bs for i in range(blocks)], bs, True)
            timed = time_each(one_pass, passes, profile["bw_warmup"], key=target.device)
            pattern = f"seq-read ({NUMPY_MEMMAP_VIEW})"
            rows.append(_bandwidth_row(timed, pattern, bs, blocks * bs, NUMPY_MEMMAP_VIEW))
        del one_pass
    return rows


def _page_writer(m: Mapping, data: np.ndarray, *, msync: bool) -> Callable[[int], None]:
    """Write page i of the mapping (and msync that page): one timed durability sample."""
    array = m.array
    if msync:

        def write_and_msync(i: int) -> None:
            array[i * PAGE : (i + 1) * PAGE] = data
            m.flush(i * PAGE, PAGE)

        return write_and_msync

    def write_page(i: int) -> None:
        array[i * PAGE : (i + 1) * PAGE] = data

    return write_page


def _durability(target: Target, profile: dict[str, Any]) -> Iterator[Observation]:
    writes = profile["sync_writes"]
    size = -(-writes * PAGE // TWO_MIB) * TWO_MIB  # whole 2 MiB units: device-dax maps nothing smaller
    data = np.full(PAGE, 0x5A, dtype=np.uint8)
    if target.kind in ("fs", "pagecache"):
        with Mapping(target, "msync", size) as m:
            write = _page_writer(m, data, msync=True)
            timed = time_each(write, writes, 0, key=target.device)
            del write  # it holds the view: the mapping must be unmappable on exit
        yield target.observation(
            NAME,
            "durability-msync",
            "ok",
            metrics={"latency": timed.summary()},
            detail="first write to each 4 KiB page (its fault included) + msync(MS_SYNC) of that page",
            repetitions=writes,
        )
    if target.kind == "anon":
        return
    try:
        with Mapping(target, "mapsync", size, sync=True, offset=_offset(target, 3, size)) as m:
            write = _page_writer(m, data, msync=False)
            timed = time_each(write, writes, 0, key=target.device)
            del write
    except OSError as exc:
        yield target.observation(
            NAME,
            "map-sync",
            errno_name(exc.errno),
            detail=f"mmap(MAP_SHARED_VALIDATE|MAP_SYNC): {exc.strerror}",
        )
        return
    yield target.observation(NAME, "map-sync", "ok", detail="mmap(MAP_SHARED_VALIDATE|MAP_SYNC) accepted")
    yield target.observation(
        NAME,
        "durability-map-sync",
        "ok",
        metrics={"latency": timed.summary()},
        detail="first write to each 4 KiB page (its fault included) of a MAP_SYNC mapping, no msync (Python "
        "issues no CPU cache flushes: "
        "on real pmem a clwb+sfence per line would be needed for durability)",
        repetitions=writes,
    )


def _bypass(target: Target, profile: dict[str, Any]) -> Observation:
    """Touch a mapping and watch the page cache: DAX must not grow `Cached` by the mapping's size."""
    size = profile["fault_bytes"]
    with Mapping(target, "bypass", size, offset=_offset(target, 4, size)) as m:
        dax = True
        if m.path:
            dax, _ = statx_dax(m.path)
        before = meminfo_bytes("Cached").get("Cached", 0)
        m.array[::PAGE] = 3
        after = meminfo_bytes("Cached").get("Cached", 0)
    grew = after - before
    bypass = grew < size // 2
    outcome = "ok" if bypass and dax else "fallback"
    detail = f"Cached grew {grew >> 10} KiB while touching {size >> 10} KiB; statx DAX: {dax}"
    return target.observation(
        NAME,
        "pagecache-bypass",
        outcome,
        detail=detail,
        metrics={"cached_growth_bytes": grew, "touched_bytes": size, "statx_dax": dax},
    )
