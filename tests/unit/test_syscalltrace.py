"""The syscall-latency tracer against a fake tracefs tree: setup, parse and the teardown it owes."""

from pathlib import Path

from pmemkit.guest.syscalltrace import SYNTH, SYNTH_DEFINITION, SyscallLatency, parse_trace, triggers


def _fake_tracefs(root: Path) -> Path:
    for rel in ("events/raw_syscalls/sys_enter", "events/raw_syscalls/sys_exit", f"events/synthetic/{SYNTH}"):
        (root / rel).mkdir(parents=True)
    for rel in (
        "synthetic_events",
        "events/raw_syscalls/sys_enter/trigger",
        "events/raw_syscalls/sys_exit/trigger",
        f"events/synthetic/{SYNTH}/enable",
        "trace",
        "error_log",
    ):
        (root / rel).write_text("")
    return root


def test_triggers_filter_on_the_pid_and_the_syscalls():
    enter, exit_ = triggers(4242, (295,))
    assert enter == "hist:keys=common_pid:ts0=common_timestamp if common_pid == 4242 && id == 295"
    both, _ = triggers(7, (295, 327))
    assert both.endswith("if common_pid == 7 && (id == 295 || id == 327)")
    assert exit_.startswith("hist:keys=common_pid:lat=common_timestamp-$ts0:onmatch(raw_syscalls.sys_enter)")
    assert exit_.endswith(f".trace({SYNTH},$lat) if common_pid == 4242 && id == 295")


def test_parse_trace_reads_the_latencies_in_order():
    text = (
        "# tracer: nop\n"
        f" python3-77 [000] d..1. 12.000001: {SYNTH}: lat_ns=12345\n"
        " python3-77 [000] d..1. 12.000101: other_event: lat_ns=1\n"
        f" python3-77 [000] d..1. 12.000201: {SYNTH}: lat_ns=12001\n"
    )
    assert parse_trace(text) == [12345, 12001]


def test_tracer_sets_up_reads_and_tears_down(tmp_path):
    root = _fake_tracefs(tmp_path)
    with SyscallLatency((295,), pid=77, root=root) as t:
        assert t.available
        assert (root / f"events/synthetic/{SYNTH}/enable").read_text() == "1"
        (root / "trace").write_text(f" p-77 [000] 1.0: {SYNTH}: lat_ns=15000\n")
    assert t.samples() == [15000] and t.describe()["count"] == 1
    assert (root / f"events/synthetic/{SYNTH}/enable").read_text() == "0"
    enter = (root / "events/raw_syscalls/sys_enter/trigger").read_text().splitlines()
    assert enter[0].startswith("hist:") and enter[1] == "!" + enter[0]  # removed again
    exit_ = (root / "events/raw_syscalls/sys_exit/trigger").read_text().splitlines()
    assert exit_[1] == "!" + exit_[0]
    assert (root / "synthetic_events").read_text().splitlines() == [SYNTH_DEFINITION, "!" + SYNTH_DEFINITION]
    assert (root / "trace").read_text() == ""  # the buffer is left empty for the next user


def test_tracer_says_why_when_it_cannot_trace(tmp_path):
    with SyscallLatency((295,), root=None) as t:
        pass
    assert not t.available and t.samples() == []
    (tmp_path / "trace").write_text("")
    with SyscallLatency((295,), root=tmp_path) as t:
        pass
    assert not t.available and "CONFIG_SYNTH_EVENTS" in t.describe()["why_not"]
