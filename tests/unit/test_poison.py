"""The poison experiment on the host: its refusal, its signal plumbing, its verdicts, its model rules.

Nothing here poisons memory: the host is nobody's VM. The ctypes SA_SIGINFO handler is proven with
a SIGBUS the kernel raises for a mapping past the end of a file (BUS_ADRERR), which hurts nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pmemkit.guest.experiments import Target, poison
from pmemkit.guest.poison_child import PAGE, Job, run_child
from pmemkit.model.predict import predict
from pmemkit.model.rules import POISON_OPERATIONS, rule_by_name
from pmemkit.scenario import Scenario

SIZE = 4 << 20
OFFSET = 1 << 20


def _target(tmp_path: Path, kind: str = "fs", mode: str = "fsdax") -> Target:
    scenario = Scenario(
        kernel="6.1.0-57-amd64", source="memmap", mode=mode, fs="ext4" if kind == "fs" else None
    )
    return Target(kind, str(tmp_path), "/dev/pmem0", scenario, str(tmp_path))


def test_refused_outside_pmemkits_vm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poison, "vm_token", lambda: None)
    seen = list(poison.run(_target(tmp_path), {}))
    assert [o.operation for o in seen] == list(poison.OPERATIONS)
    assert {o.outcome for o in seen} == {"skipped:refused"}
    assert all("pmemkit-vm" in o.detail for o in seen)
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing mapped


def test_child_reads_siginfo_of_a_real_sigbus(tmp_path: Path) -> None:
    path = tmp_path / "past-eof"
    path.write_bytes(b"")  # mapped 4 MiB of an empty file: the first touch is SIGBUS BUS_ADRERR
    records, ended = run_child(Job(str(path), os.O_RDWR, 0, SIZE, OFFSET, poison=False), timeout_s=60)
    assert ended == "exit 0"
    (signal,) = [r for r in records if r["step"] == "signal"]
    assert signal["signo"] == 7 and signal["si_code"] == 2  # SIGBUS, BUS_ADRERR
    assert signal["phase"] == "touch" and signal["si_addr_offset"] == OFFSET


def test_child_maps_2mib_aligned_and_reads_the_data(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * (SIZE // 256))
    records, ended = run_child(Job(str(path), os.O_RDWR, 0, SIZE, OFFSET, poison=False), timeout_s=60)
    assert ended == "exit 0" and not [r for r in records if r["step"] == "signal"]
    (touched,) = [r for r in records if r["step"] == "touched"]
    assert touched["data"] == bytes(range(16)).hex()


def _records(code: int | None, lsb: int = 21, hwpoison_errno: int = 0) -> list[dict[str, object]]:
    records: list[dict[str, object]] = [
        {"step": "mapped", "poison_offset": OFFSET},
        {"step": "touched", "data": "00"},
        {"step": "soft-offline", "rc": -1, "errno": 5},
    ]
    if code is not None:
        signal = {"step": "signal", "phase": "madvise", "signo": 7, "si_code": code}
        records.append({**signal, "si_addr_offset": 0, "si_addr_lsb": lsb})
    else:
        records.append({"step": "hwpoison", "rc": -1 if hwpoison_errno else 0, "errno": hwpoison_errno})
    return records


@pytest.mark.parametrize(
    ("records", "sigbus", "lsb"),
    [
        (_records(4, 21), "ok", "ok"),
        (_records(4, 12), "ok", "fallback"),
        (_records(5, 21), "fallback", "ok"),
        (_records(None, hwpoison_errno=14), "EFAULT", "n/a"),
        (_records(None), "fallback", "n/a"),
    ],
)
def test_verdicts(tmp_path: Path, records: list[dict[str, object]], sigbus: str, lsb: str) -> None:
    words = ["Memory failure: 0x1234: recovery action for dax page: Recovered"]
    soft, got_sigbus, got_lsb = poison._judge(_target(tmp_path), records, "exit 0", words)
    assert soft.operation == "hwpoison-soft-offline" and soft.outcome == "EIO"
    assert (got_sigbus.outcome, got_lsb.outcome) == (sigbus, lsb)
    if "si_addr_lsb" in records[-1]:
        assert got_sigbus.metrics["si_addr_lsb"] == records[-1]["si_addr_lsb"]
        assert (
            got_sigbus.metrics["si_code"] == {4: "BUS_MCEERR_AR", 5: "BUS_MCEERR_AO"}[records[-1]["si_code"]]
        )
    assert "recovery action for dax page" in got_sigbus.detail


def test_refused_mapping_is_the_kernels_errno(tmp_path: Path) -> None:
    records = [{"step": "setup", "errno": 22, "what": "mmap"}]
    seen = list(poison._judge(_target(tmp_path), records, "exit 1", []))
    assert [o.outcome for o in seen] == ["EINVAL"] * 3


def test_recover_punches_rewrites_and_rereads(tmp_path: Path) -> None:
    """The recovery path on an ordinary file (nothing poisoned): punch, pwrite, pread, re-map."""
    target = _target(tmp_path)
    data = bytes(range(256)) * (SIZE // 256)
    path = tmp_path / "pmemkit-poison.dat"
    path.write_bytes(data)
    got = poison._recover(target, Job(str(path), os.O_RDWR, 0, SIZE, OFFSET), data)
    assert got.outcome == "ok", got.detail
    assert got.metrics["pread_verified"] is True and got.metrics["mapped_verified"] is True
    assert path.read_bytes()[OFFSET : OFFSET + PAGE] == data[OFFSET : OFFSET + PAGE]


def _scenario(mode: str, kernel: str = "6.1.0-57-amd64", **kw: object) -> Scenario:
    source = "nvdimm" if mode == "devdax" else "memmap"
    return Scenario(kernel=kernel, source=source, mode=mode, fs="ext4" if mode == "fsdax" else None, **kw)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("fsdax", ("EIO", "ok", "ok", "ok")),
        ("devdax", ("EIO", "ok", "ok", "n/a")),
        ("devmem", ("EFAULT", "EFAULT", "n/a", "n/a")),
    ],
)
def test_model_predicts_each_poison_cell_on_6_1(mode: str, expected: tuple[str, ...]) -> None:
    got = tuple(predict(_scenario(mode), op).outcome for op in POISON_OPERATIONS)
    assert got == expected


def test_model_poison_before_4_19_is_inferred() -> None:
    p = predict(_scenario("fsdax", kernel="4.18"), "hwpoison-sigbus")
    assert (p.outcome, p.rule, p.status) == ("EBUSY", "poison-sigbus-before-4.19", "I")
    assert "memory_failure_dev_pagemap" in " ".join(rule_by_name("poison-sigbus-dax").why.split())
