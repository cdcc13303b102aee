"""Who said no: attribute a refusal to the kernel function that made it, with kprobe events.

Why: an errno alone does not say which check refused (on 6.1 io_uring refuses every non-shmem
file mapping, so a model blaming `struct page` would match EOPNOTSUPP for the wrong reason). For
an operation the kernel refused, pmemkit arms entry (`p:`) and return (`r:` with `$retval`)
probes on candidate functions through tracefs, runs the operation once more, and follows the
error down the traced call tree to the innermost probed function that returned it.

The candidates are the functions the model cites for the operation (handed in through the plan)
plus the generic GUP, io_uring, futex, AF_XDP, splice, mmap, fork and madvise entry points below
(the mount check is not traced yet: it lives in guest/targets.py). A function not
in /proc/kallsyms (inlined, or a static function the compiler only kept as a partial clone) is
reported "not probeable" and its nearest probeable caller stands in for it.

Only inside pmemkit's VM (`tracefs.tracing_dir`): probes go into their own tracefs instance,
filtered to this process, so nobody's tracing session is touched.
"""

from __future__ import annotations

import atexit
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmemkit.guest.syscalls import errno_name
from pmemkit.guest.tracefs import tracing_dir

GROUP = "pmemkit"
MARK = "pmemkit-decide"
INSTANCE = "pmemkit-decisions"
MAX_ERRNO = 4095
#: Return types: how a raw 64-bit %ax is read. `int`: low 32 bits, signed; `long`: signed 64 bits
#: (counts, addresses or -errno); `pointer`: ERR_PTR in the top 4095 values, NULL noted;
#: `nullable`: a pointer whose NULL is the failure (e.g. kernel/fork.c dup_mm());
#: `bool`: the low byte (the upper bits of %ax are not defined for a bool return).
RETURNS = ("int", "long", "pointer", "nullable", "bool")


@dataclass(frozen=True)
class Candidate:
    """A function to probe: its return type, and its callers (nearest first) as stand-ins."""

    function: str
    returns: str = "int"
    callers: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        returns = data.get("returns", "int")
        return cls(
            str(data["function"]), returns if returns in RETURNS else "int", tuple(data.get("callers", ()))
        )


def _c(function: str, returns: str = "int", *callers: str) -> Candidate:
    return Candidate(function, returns, callers)


#: Generic entry points per family; the model's cited functions are added per operation.
#: 6.1 names from linux-source-6.1 (6.1.192); 6.12 renamed internal_get_user_pages_fast to
#: gup_fast_fallback and io_pin_pages moved to io_uring/memmap.c. Unknown names are harmless:
#: they are reported "not probeable".
GUP = (
    _c("check_vma_flags", "int", "__get_user_pages"),
    _c("__get_user_pages", "long", "__get_user_pages_locked"),
    _c("__get_user_pages_locked", "long", "__gup_longterm_locked"),
    _c("__gup_longterm_locked", "long"),
    _c("internal_get_user_pages_fast", "int"),
    _c("gup_fast_fallback", "int"),  # static int in linux-source-6.12 mm/gup.c (not long)
    _c("get_user_pages_fast", "int"),
    _c("pin_user_pages", "long"),
    _c("pin_user_pages_fast", "int"),
)
FUTEX = (
    _c("get_futex_key", "int", "futex_wait_setup"),
    _c("futex_wait_setup", "int"),
    _c("futex_wait", "int"),
)
SPLICE = (
    _c("iov_iter_get_pages2", "long"),
    _c("iter_to_pipe", "int", "vmsplice_to_pipe"),
    _c("vmsplice_to_pipe", "long"),
)
IOURING = (
    _c("io_pin_pages", "pointer", "io_sqe_buffer_register"),
    _c("io_sqe_buffer_register", "int", "io_sqe_buffers_register"),
    _c("io_sqe_buffers_register", "int"),
)
XDP = (
    _c("xdp_umem_pin_pages", "int", "xdp_umem_reg"),
    _c("xdp_umem_reg", "int", "xdp_umem_create"),
    _c("xdp_umem_create", "pointer"),
    _c("xsk_setsockopt", "int"),
)
MMAP = (
    _c("check_vma", "int", "dax_mmap"),
    _c("dax_mmap", "int"),
    _c("mmap_mem", "int"),
    _c("remap_pfn_range", "int", "mmap_mem"),
    _c("track_pfn_remap", "int", "remap_pfn_range"),
    _c("may_expand_vm", "bool", "mmap_region"),
    _c("security_vm_enough_memory_mm", "int", "mmap_region"),
    _c("__vm_enough_memory", "int", "security_vm_enough_memory_mm"),
    _c("mmap_region", "long", "do_mmap"),
    _c("__mmap_region", "long", "mmap_region"),
    _c("do_mmap", "long", "vm_mmap_pgoff"),
    _c("vm_mmap_pgoff", "long"),
)
MADVISE = (
    _c("madvise_dontneed_free_valid_vma", "bool", "madvise_dontneed_free"),
    _c("can_madv_lru_vma", "bool", "madvise_vma_behavior"),
    _c("madvise_dontneed_free", "long", "madvise_vma_behavior"),
    _c("madvise_vma_behavior", "int", "madvise_walk_vmas"),
    _c("madvise_walk_vmas", "int", "do_madvise"),
    _c("do_madvise", "int"),
)
MREMAP = (_c("vma_to_resize", "pointer", "mremap_to"), _c("mremap_to", "long"), _c("move_vma", "long"))
#: fork() of a private pfnmap whose first page was copied on write (kernel/fork.c, mm/memory.c,
#: arch/x86/mm/pat/memtype.c in linux-source-6.1): get_pat_info() -> -EINVAL fails the copy.
FORK = (
    _c("get_pat_info", "int", "track_pfn_copy"),
    _c("reserve_pfn_range", "int", "track_pfn_copy"),
    _c("track_pfn_copy", "int", "copy_page_range"),
    _c("copy_page_range", "int", "dup_mmap"),
    _c("anon_vma_fork", "int", "dup_mmap"),
    _c("dup_mmap", "int", "dup_mm"),
    _c("dup_mm", "nullable", "copy_mm"),
    _c("copy_mm", "int", "copy_process"),
    _c("copy_process", "pointer", "kernel_clone"),
    _c("kernel_clone", "int"),
)
#: kapi's operations -> the generic families armed for them.
FAMILIES: dict[str, tuple[Candidate, ...]] = {
    "futex-shared": FUTEX + GUP,
    "vmsplice": SPLICE + GUP,
    "iouring-fixed-buffer": IOURING + GUP,
    "longterm-pin": XDP + GUP,
    "fork-cow": MMAP + FORK,
    "madvise": MADVISE,
    "mremap": MREMAP + MMAP,
}


def candidates(operation: str, cited: Iterable[dict[str, Any]] = ()) -> list[Candidate]:
    """The model's cited functions first, then the operation's generic families, each name once."""
    seen: dict[str, Candidate] = {}
    for cand in [Candidate.from_dict(c) for c in cited] + list(FAMILIES.get(operation, ())):
        seen.setdefault(cand.function, cand)
    for cand in list(seen.values()):  # a stand-in must be probed too
        for caller in cand.callers:
            seen.setdefault(caller, Candidate(caller))
    return list(seen.values())


def interpret(raw: int, returns: str) -> tuple[int | None, str, bool]:
    """(errno or None, words, refused) for a raw 64-bit return register and the declared type.

    Why per type: a kretprobe's `$retval` is the whole %ax; an `int` errno lives in the low 32 bits,
    an ERR_PTR in the top of the 64-bit range, and a bool in the low byte only.
    """
    raw &= (1 << 64) - 1
    if returns == "bool":
        value = raw & 0xFF
        return None, "true" if value else "false", value == 0
    if returns in ("pointer", "nullable"):
        if raw >= (1 << 64) - MAX_ERRNO:
            code = (1 << 64) - raw
            return code, f"ERR_PTR(-{errno_name(code)})", True
        return None, "NULL" if raw == 0 else "pointer", raw == 0 and returns == "nullable"
    if returns == "int":
        low = raw & 0xFFFFFFFF
        value = low - (1 << 32) if low >= 1 << 31 else low
    else:
        value = raw - (1 << 64) if raw >= 1 << 63 else raw
    if -MAX_ERRNO <= value < 0:
        return -value, f"-{errno_name(-value)}", True
    return None, str(value), False


@dataclass
class Call:
    """One traced call of a probed function: call order, depth, and what it returned."""

    index: int
    function: str
    depth: int
    parent: int | None
    raw: int | None = None
    errno: int | None = None
    meaning: str = ""
    refused: bool = False
    returns: str = "int"

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "depth": self.depth,
            "raw": f"{self.raw:#x}" if self.raw is not None else None,
            "returned": self.meaning,
            "type": self.returns,
        }


_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[\d+\]\s.*?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):(?P<rest>.*)$"
)
_RAW = re.compile(r"\braw=(0x[0-9a-fA-F]+|-?\d+)")


def parse_trace(text: str, events: dict[str, tuple[str, str]], types: dict[str, str], pid: int) -> list[Call]:
    """Calls in call order from a trace: `events` maps an event name to (function, "e"|"r").

    Entries push onto a stack, returns pop to their function (a missed return leaves no gap);
    only lines of `pid` count.
    """
    calls: list[Call] = []
    stack: list[Call] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or int(m.group("pid")) != pid or m.group("event") not in events:
            continue
        function, kind = events[m.group("event")]
        if kind == "e":
            parent = stack[-1].index if stack else None
            call = Call(len(calls), function, len(stack), parent, returns=types.get(function, "int"))
            calls.append(call)
            stack.append(call)
            continue
        raw_m = _RAW.search(m.group("rest"))
        if raw_m is None:
            continue
        while stack and stack[-1].function != function:
            stack.pop()
        if not stack:
            continue
        call = stack.pop()
        call.raw = int(raw_m.group(1), 0) & ((1 << 64) - 1)
        call.errno, call.meaning, call.refused = interpret(call.raw, call.returns)
    return calls


def decider(calls: list[Call], errno: int | None) -> Call | None:
    """The innermost probed function that refused: follow the error down the call tree.

    Start from the last outermost call that refused with the observed errno (any refusal when the
    operation has no errno, e.g. a fallback, or none matches), then step to its last refusing
    descendant whose nearest refusing ancestor it is (a probed call in between that did not refuse,
    e.g. a wrapper read with the wrong width, does not cut the chain), preferring one with the same
    errno (a different one is taken when none has it: the caller translated it, as copy_mm() turns
    dup_mm()'s NULL into -ENOMEM), until none refused.
    """
    refused = [c for c in calls if c.refused]
    if not refused:
        return None
    by_index = {c.index: c for c in calls}

    def refusing_ancestor(call: Call) -> int | None:
        parent = call.parent
        while parent is not None and not by_index[parent].refused:
            parent = by_index[parent].parent
        return parent

    below = {c.index: refusing_ancestor(c) for c in refused}
    matching = [c for c in refused if errno is None or c.errno == errno] or refused
    top_depth = min(c.depth for c in matching)
    node = [c for c in matching if c.depth == top_depth][-1]
    while True:
        children = [c for c in refused if below[c.index] == node.index]
        same = [c for c in children if c.errno is None or node.errno is None or c.errno == node.errno]
        if not children:
            return node
        node = (same or children)[-1]


@dataclass
class Probeable:
    """Which candidates /proc/kallsyms offers, and under which symbol (a .isra/.constprop clone)."""

    symbols: dict[str, str] = field(default_factory=dict)  # function -> symbol to probe
    missing: dict[str, str] = field(default_factory=dict)  # function -> why not

    @classmethod
    def from_kallsyms(cls, text: str, functions: Iterable[str]) -> Probeable:
        return cls.from_names(kallsyms_functions(text), functions)

    @classmethod
    def from_names(cls, names: set[str], functions: Iterable[str]) -> Probeable:
        """From the text symbols of kallsyms (a set, parsed once per process: it is large)."""
        found = cls()
        for fn in sorted(set(functions)):
            if fn in names:
                found.symbols[fn] = fn
                continue
            prefix = fn + "."
            clones = sorted(
                n for n in names if n.startswith(prefix) and (".isra." in n or ".constprop." in n)
            )
            if clones:
                found.symbols[fn] = clones[0]
            elif any(n.startswith(prefix + "part.") for n in names):
                found.missing[fn] = "only a partial clone in kallsyms"
            else:
                found.missing[fn] = "not in kallsyms (inlined or absent)"
        return found


def kallsyms_functions(text: str) -> set[str]:
    """Names of the text symbols (t/T/w/W) of a /proc/kallsyms text, module suffix dropped."""
    names: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("t", "T", "w", "W"):
            names.add(parts[2])
    return names


def _append(path: Path, text: str) -> None:
    """Append to a tracefs control file with one write(2).

    Why not open(path, "a"): Python seeks to the end on opening for append, and tracefs's
    kprobe_events (a seq_file) refuses SEEK_END with EINVAL, so every probe would look refused.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _event_name(function: str, kind: str) -> str:
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', function)}"[:63]


class Tracer:
    """Defines kprobe events once per process, arms a subset per operation, removes them at close."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.instance = root / "instances" / INSTANCE
        self.defined: dict[str, str] = {}  # function -> "" (ok) or why the kprobe was refused
        self.events: dict[str, tuple[str, str]] = {}
        self._kallsyms: set[str] | None = None
        self.kallsyms_s = 0.0

    @classmethod
    def open(cls) -> Tracer | None:
        root = tracing_dir()
        if root is None or not (root / "kprobe_events").exists():
            return None
        tracer = cls(root)
        if not tracer.instance.exists():
            tracer.instance.mkdir()
        return tracer

    def kallsyms(self) -> set[str]:
        if self._kallsyms is None:
            start = time.monotonic()
            self._kallsyms = kallsyms_functions(Path("/proc/kallsyms").read_text(errors="replace"))
            self.kallsyms_s = time.monotonic() - start
        return self._kallsyms

    def _define(self, function: str, symbol: str) -> str:
        if function in self.defined:
            return self.defined[function]
        why = ""
        for kind, spec in (
            ("e", f"p:{GROUP}/{{name}} {symbol}"),
            ("r", f"r:{GROUP}/{{name}} {symbol} raw=$retval:x64"),
        ):
            name = _event_name(function, kind)
            try:
                _append(self.root / "kprobe_events", spec.format(name=name) + "\n")
            except OSError as exc:
                why = f"kprobe refused ({errno_name(exc.errno or 0)}{self._last_error()})"
                break
            self.events[name] = (function, kind)
        self.defined[function] = why
        return why

    def _last_error(self) -> str:
        """The tracefs error_log's last line (why a probe definition was refused), if any."""
        try:
            lines = (self.root / "error_log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1].strip()[:160]}" if lines else ""

    @contextmanager
    def watch(self, cands: list[Candidate]) -> Iterator[Watch]:
        """Arm probes on `cands` (stand-ins for the unprobeable), filtered to this process."""
        start = time.monotonic()
        watch = Watch(cands, Probeable.from_names(self.kallsyms(), {c.function for c in cands}))
        armed: list[Path] = []
        for cand in cands:
            symbol = watch.probe.symbols.get(cand.function)
            if symbol is None:
                continue
            why = self._define(cand.function, symbol)
            if why:
                watch.probe.missing[cand.function] = why
                del watch.probe.symbols[cand.function]
                continue
            for kind in ("e", "r"):
                armed.append(self.instance / "events" / GROUP / _event_name(cand.function, kind) / "enable")
        (self.instance / "trace").write_text("")
        (self.instance / "set_event_pid").write_text(str(os.getpid()))
        for path in armed:
            path.write_text("1")
        watch.setup_s = time.monotonic() - start
        try:
            yield watch
        finally:
            for path in armed:
                path.write_text("0")
            text = (self.instance / "trace").read_text(errors="replace")
            (self.instance / "trace").write_text("")
            watch.text = text
            watch.calls = parse_trace(text, self.events, watch.types(), os.getpid())
            watch.elapsed_s = time.monotonic() - start

    def mark(self, index: int) -> None:
        """A marker line in the instance's trace: the reruns of one watch are told apart by it."""
        (self.instance / "trace_marker").write_text(f"{MARK} {index}\n")

    def close(self) -> None:
        """Remove every event this tracer defined, and its instance."""
        for name in self.events:
            try:
                _append(self.root / "kprobe_events", f"-:{GROUP}/{name}\n")
            except OSError:
                pass
        self.events.clear()
        self.defined.clear()
        try:
            self.instance.rmdir()
        except OSError:
            pass


@dataclass
class Watch:
    """One traced attempt: what was probed, what could not be, and the calls seen."""

    candidates: list[Candidate]
    probe: Probeable
    calls: list[Call] = field(default_factory=list)
    setup_s: float = 0.0
    elapsed_s: float = 0.0
    text: str = ""

    def types(self) -> dict[str, str]:
        return {c.function: c.returns for c in self.candidates}

    def unprobeable(self) -> dict[str, str]:
        """Each cited function not probeable -> the nearest probeable caller standing in ("" none)."""
        out = {}
        for cand in self.candidates:
            if cand.function in self.probe.missing:
                out[cand.function] = next((c for c in cand.callers if c in self.probe.symbols), "")
        return out

    def decided_by(self, outcome: str) -> dict[str, Any]:
        """The `decided_by` record of a refused observation (all strings, so no table reads a number)."""
        errno = _errno_of(outcome)
        node = decider(self.calls, errno)
        stand_ins = self.unprobeable()
        record: dict[str, Any] = {
            "function": node.function if node else None,
            "returned": node.meaning if node else None,
            "raw": f"{node.raw:#x}" if node and node.raw is not None else None,
            "type": node.returns if node else None,
            "symbol": self.probe.symbols.get(node.function) if node else None,
            "stand_in_for": sorted(f for f, caller in stand_ins.items() if node and caller == node.function),
            "not_probeable": {f: self.probe.missing[f] for f in sorted(self.probe.missing)},
            "errors": [c.to_dict() for c in self.calls if c.refused],
            "probed": len(self.probe.symbols),
            "calls_seen": len(self.calls),
            "rerun_s": f"{self.elapsed_s:.3f}",
            "arming_s": f"{self.setup_s:.3f}",
        }
        if node is None:
            record["why_none"] = (
                "no probed function returned an error" if self.calls else "no probed function was called"
            )
        elif errno is not None and node.errno not in (errno, None):
            record["note"] = f"the innermost refusal returned {node.meaning}, not the observed {outcome}"
        return record


def _errno_of(outcome: str) -> int | None:
    """`EFAULT` -> 14; `fallback` and other non-errno outcomes -> None."""
    import errno as _errno

    code = getattr(_errno, outcome, None)
    return code if isinstance(code, int) else None


def refused(outcome: str) -> bool:
    """An errno name or a fallback: the kernel said no (ok, n/a, short and skipped:* are not refusals)."""
    return outcome == "fallback" or (outcome.startswith("E") and _errno_of(outcome) is not None)


_TRACER: list[Tracer | None] = []


def tracer() -> Tracer | None:
    """The process's tracer (None outside pmemkit's VM or without kprobe events)."""
    if not _TRACER:
        _TRACER.append(Tracer.open())
        atexit.register(close)
    return _TRACER[0]


def close() -> None:
    """Remove this process's probes (the runner calls it once; a left probe costs only the next run)."""
    if _TRACER and _TRACER[0] is not None:
        _TRACER[0].close()
    _TRACER.clear()


def split_marked(text: str) -> dict[int, str]:
    """The trace lines after each `pmemkit-decide N` marker, up to the next one, by N."""
    segments: dict[int, list[str]] = {}
    current: list[str] | None = None
    marker = re.compile(rf"tracing_mark_write: {MARK} (\d+)\s*$")
    for line in text.splitlines():
        m = marker.search(line)
        if m:
            current = segments.setdefault(int(m.group(1)), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in segments.items()}


def attribute_all(pairs: list[tuple[Any, Callable[[], Any]]], params: dict[str, Any]) -> list[Any]:
    """Run each refused operation once more under probes and put `decided_by` in its metrics.

    `pairs` are (observation, a callable that attempts the operation again), e.g. one target's kapi
    cases. The probes are armed once for all of a target's refusals (the union of their candidates;
    arming is the slow part under TCG) and the reruns are told apart by trace markers.
    `params["decisions"]` (from the plan) turns it on and carries the model's cited functions per
    operation; without it, or outside the VM, the observations are returned unchanged.
    """
    plan = params.get("decisions")
    observations = [obs for obs, _ in pairs]
    todo = [(obs, again) for obs, again in pairs if refused(obs.outcome)] if plan else []
    if not todo:
        return observations
    t = tracer()
    if t is None:
        for obs, _ in todo:
            obs.metrics["decided_by"] = {"function": None, "why_none": "no tracefs kprobe events here"}
        return observations
    cited = plan.get("operations", {})
    per_op = {obs.operation: candidates(obs.operation, cited.get(obs.operation, ())) for obs, _ in todo}
    union = candidates(
        "",
        [
            {"function": c.function, "returns": c.returns, "callers": list(c.callers)}
            for cs in per_op.values()
            for c in cs
        ],
    )
    seconds, rerun_s = [], []
    with t.watch(union) as watch:
        for i, (_, again) in enumerate(todo):
            t.mark(i)
            start = time.monotonic()
            seconds.append(again())
            rerun_s.append(time.monotonic() - start)
    segments = split_marked(watch.text)
    for i, (obs, _) in enumerate(todo):
        one = Watch(per_op[obs.operation], watch.probe, setup_s=watch.setup_s, elapsed_s=rerun_s[i])
        one.calls = parse_trace(segments.get(i, ""), t.events, one.types(), os.getpid())
        record = one.decided_by(obs.outcome)
        record["batch"] = f"{len(todo)} reruns under one arming ({watch.elapsed_s:.3f} s in all)"
        record["kallsyms_s"] = f"{t.kallsyms_s:.3f}"  # once per boot, in the first arming
        if seconds[i].outcome != obs.outcome:
            record["note"] = f"the traced rerun gave {seconds[i].outcome}, not {obs.outcome}"
        obs.metrics["decided_by"] = record
    return observations
