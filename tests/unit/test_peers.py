"""The peers experiment on the host (a plain directory: page-cache mappings), and its model rules.

On the host nothing is DAX, so every case runs against page-cache files and says so
(`metrics["mapping"] == "pagecache"`); the VM test (tests/vm/test_vm_poison.py) runs them on DAX.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pmemkit.guest.experiments import Target, peers
from pmemkit.model.predict import predict
from pmemkit.model.rules import PEER_OPERATIONS
from pmemkit.scenario import Scenario


def _target(tmp_path: Path) -> Target:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scenario = Scenario(kernel="6.1.0-57-amd64", source="memmap", mode="raw", fs="ext4")
    return Target("fs", str(tmp_path), "/dev/pmem0", scenario, str(scratch))


def test_every_case_is_observed_and_cleaned_up(tmp_path: Path) -> None:
    seen = list(peers.run(_target(tmp_path), {}))
    assert sorted(o.shown() for o in seen) == sorted(peers.CASE_OPS.values())
    assert sorted(peers.CASE_OPS.values()) == sorted(PEER_OPERATIONS)
    for o in seen:
        assert o.metrics["mapping"] == "pagecache" and "page cache" in o.detail, o
        if o.outcome != "skipped:EINVAL":  # a host /tmp without O_DIRECT (tmpfs) refuses it at open
            assert o.outcome == "ok", (o.shown(), o.outcome, o.detail)
    assert [p.name for p in tmp_path.iterdir()] == ["scratch"]


def test_failed_setup_keeps_the_cases_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(peers, "punch_hole", refuse)
    (punch,) = [o for o in peers.run(_target(tmp_path), {}) if o.operation == "punch-while-mapped"]
    assert punch.outcome == "skipped:ENOSPC" and punch.provenance["repetitions"] == 0


@pytest.mark.parametrize(
    ("source", "mode", "fs", "expected"),
    [
        ("memmap", "raw", "ext4", {op: "ok" for op in PEER_OPERATIONS}),
        (
            "nvdimm",
            "devdax",
            None,
            {
                "mremap-partial-pmd": "EINVAL",
                "odirect-write-from-dax:unfaulted": "ok",
                "buffered-write-from-dax": "ok",
                **{op: "n/a" for op in PEER_OPERATIONS[3:]},
            },
        ),
    ],
)
def test_model_predicts_each_peer_cell_on_6_1(source: str, mode: str, fs: str | None, expected: dict) -> None:
    scenario = Scenario(kernel="6.1.0-57-amd64", source=source, mode=mode, fs=fs)
    assert {op: predict(scenario, op).outcome for op in PEER_OPERATIONS} == expected
