"""A system call's own latency, measured by the kernel, without the interpreter in the timed path.

Why: a Python loop timing `os.preadv` with `perf_counter_ns` measures the call as a Python caller
sees it: the syscall plus the interpreter's own cost per call (about 3 µs per call under TCG in
issue 15's hand measurement), which fio's C loop does not pay. fio's `clat` for a psync read is
close to the syscall itself. To compare like with like, pmemkit takes the I/O's own latency from
the guest kernel's `raw_syscalls:sys_enter` / `sys_exit` tracepoints, filtered to this process
and the syscall numbers asked for, and reports the caller-side figure beside it; the difference
is the caller's overhead.

Since issue 15's timing helper (`guest.prtime`, a C loop with clock_gettime around each pread) the
fio check uses this module only as the fallback where there is no helper: the tracepoints
themselves add 3–5 µs per call under TCG (own/clat p50 ratios of 0.67–2.18× were measured with
them), which the helper does not.

How (Documentation/trace/histogram.rst, "Inter-event hist triggers"; needs CONFIG_HIST_TRIGGERS
and CONFIG_SYNTH_EVENTS, both set in Debian's kernels): a hist trigger on sys_enter saves
`common_timestamp` (ns) per pid; one on sys_exit computes `common_timestamp - $ts0` and emits a
synthetic event `pmemkit_syscall_lat(lat_ns)` per matching call into the trace buffer, which
is read after the loop. Nothing is installed in the image; tracefs is touched only inside
pmemkit's VM (`tracefs.tracing_dir`).

What the figure includes (inferred from kernel/trace/trace_events_hist.c, not measured apart):
the interval runs from the sys_enter trigger's timestamp to the sys_exit trigger's, so it holds
the syscall's work plus the rest of the sys_enter hist update and the entry of the sys_exit
tracepoint; it excludes the user/kernel transitions. `floor` measures the same path around
getppid(2), a syscall that does almost nothing, so the tracer's own share can be read beside it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pmemkit.guest.tracefs import tracing_dir

SYNTH = "pmemkit_syscall_lat"
SYNTH_DEFINITION = f"{SYNTH} u64 lat_ns"
#: x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
#: Python's os.preadv issues preadv2 (327) where glibc has it (CPython's HAVE_PREADV2), else preadv.
SYSCALLS = {"pread64": 17, "getppid": 110, "preadv": 295, "preadv2": 327}
_LINE = re.compile(rf"{SYNTH}:\s+lat_ns=(\d+)")


def parse_trace(text: str) -> list[int]:
    """The synthetic events in a trace buffer's text: latencies (ns), in order."""
    return [int(match.group(1)) for match in _LINE.finditer(text)]


def triggers(pid: int, nrs: tuple[int, ...]) -> tuple[str, str]:
    """The sys_enter and sys_exit hist trigger commands for `pid` and syscall numbers `nrs`.

    The synthetic event carries the latency alone (a second field would have to match the type
    of `id`, `long`, exactly); a tracer is used for one kind of call at a time.
    """
    ids = " || ".join(f"id == {nr}" for nr in nrs)
    where = f"common_pid == {pid} && ({ids})" if len(nrs) > 1 else f"common_pid == {pid} && {ids}"
    enter = f"hist:keys=common_pid:ts0=common_timestamp if {where}"
    exit_ = (
        f"hist:keys=common_pid:lat=common_timestamp-$ts0:onmatch(raw_syscalls.sys_enter).trace({SYNTH},$lat) "
        f"if {where}"
    )
    return enter, exit_


class SyscallLatency:
    """`with SyscallLatency((SYSCALLS["preadv"], SYSCALLS["preadv2"])) as t: ...` then `t.samples()` (ns).

    `available` is False, and `why` says why, outside pmemkit's VM or when the kernel lacks hist
    triggers or synthetic events, or refused the setup (its tracing/error_log line is kept).
    Setup and teardown errors never escape: an experiment then reports the caller side only.
    """

    def __init__(self, nrs: tuple[int, ...], pid: int | None = None, root: Path | None = None) -> None:
        self.nrs = tuple(nrs)
        self.pid = os.getpid() if pid is None else pid
        self.root = root if root is not None else tracing_dir()
        self.available = False
        self.why = ""
        self.found: list[int] = []
        self._installed: list[tuple[Path, str]] = []

    def _paths(self) -> dict[str, Path]:
        assert self.root is not None
        events = self.root / "events"
        return {
            "synthetic": self.root / "synthetic_events",
            "enter": events / "raw_syscalls" / "sys_enter" / "trigger",
            "exit": events / "raw_syscalls" / "sys_exit" / "trigger",
            "enable": events / "synthetic" / SYNTH / "enable",
            "trace": self.root / "trace",
            "error_log": self.root / "error_log",
        }

    def _append(self, path: Path, text: str) -> None:
        """One write(2) with O_APPEND: never O_TRUNC (which would delete every synthetic event), and not
        Python's "a" mode, whose lseek(SEEK_END) on open tracefs refuses for synthetic_events (EINVAL)."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)

    def __enter__(self) -> SyscallLatency:
        if self.root is None:
            self.why = "tracefs is not available (pmemkit touches it only inside its VM)"
            return self
        paths = self._paths()
        missing = [k for k in ("synthetic", "enter", "exit") if not paths[k].exists()]
        if missing:
            self.why = f"the kernel lacks {', '.join(missing)} (CONFIG_SYNTH_EVENTS / HIST_TRIGGERS)"
            return self
        enter, exit_ = triggers(self.pid, self.nrs)
        try:
            paths["trace"].write_text("")
            self._append(paths["synthetic"], SYNTH_DEFINITION)
            self._installed.append((paths["synthetic"], SYNTH_DEFINITION))
            self._append(paths["enter"], enter)
            self._installed.append((paths["enter"], enter))
            self._append(paths["exit"], exit_)
            self._installed.append((paths["exit"], exit_))
            paths["enable"].write_text("1")
            self._installed.append((paths["enable"], ""))
        except OSError as exc:
            self.why = f"the kernel refused the hist triggers: {exc.strerror}; {self._error_log()}"
            self._teardown()
            return self
        self.available = True
        return self

    def _error_log(self) -> str:
        try:
            lines = self._paths()["error_log"].read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no error_log"
        return " / ".join(line.strip() for line in lines[-3:]) or "error_log empty"

    def _teardown(self) -> None:
        """Undo in reverse order: disable the event, remove both triggers, then the synthetic event."""
        for path, text in reversed(self._installed):
            try:
                if path.name == "enable":
                    path.write_text("0")
                else:  # a trigger or the synthetic event: the same line prefixed with "!" removes it
                    self._append(path, f"!{text}")
            except OSError:
                pass
        self._installed.clear()

    def __exit__(self, *exc: object) -> None:
        if not self.available:
            return
        trace = self._paths()["trace"]
        try:
            self._paths()["enable"].write_text("0")
            self.found = parse_trace(trace.read_text(errors="replace"))
            trace.write_text("")
        except OSError as exc:
            self.why = f"reading the trace buffer failed: {exc.strerror}"
            self.available = False
        finally:
            self._teardown()

    def samples(self) -> list[int]:
        """Latencies (ns) of the syscall seen while the context was open, in call order."""
        return list(self.found)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: whether it worked (and why not), the method, the syscalls and the counts."""
        return {
            "available": self.available,
            "why_not": self.why or None,
            "method": "raw_syscalls sys_enter->sys_exit hist trigger, common_timestamp (ns), per pid",
            "syscalls": list(self.nrs),
            "count": len(self.found),
        }
