"""The model-vs-kernel join of the report (issue 10 item 4, issue 9: written once).

Every cell kind the kernel answers is compared under the name the experiment gave it: DAX,
page-cache baselines and filesystems that fell back, anonymous memory, the page-less /dev/mem
control, d2d copies. The observed outcomes below are what pmemkit's VM saw on Debian 6.1
(rule sources cite those runs), so the real model must agree with each of them.
"""

from __future__ import annotations

from typing import Any

import pytest

from pmemkit.report.markdown import RunContents, join, model_section, render
from pmemkit.report.rundir import default_predictor
from pmemkit.scenario import Observation, Prediction, Scenario

K = "6.1.0-57-amd64"
PAGECACHE = Scenario(K, "baseline", "pagecache", fs="ext4")
ANON = Scenario(K, "baseline", "anonymous")
DEVMEM = Scenario(K, "memmap", "devmem")
FALLBACK = Scenario(K, "nvdimm", "raw", fs="xfs")  # raw NFIT: no struct page, XFS turns DAX off
FSDAX = Scenario(K, "nvdimm", "fsdax", "mem", fs="ext4")
PAIR = Scenario(K, "nvdimm", "fsdax", "mem")

#: (scenario, experiment, operation, observed outcome, metrics.mapping or None, kind)
CELLS: list[tuple[Scenario, str, str, str, str | None, str]] = [
    (FSDAX, "prepare", "dax-mount", "ok", None, "DAX"),
    (FSDAX, "kapi", "longterm-pin", "EOPNOTSUPP", "dax", "DAX"),
    (FSDAX, "odirect", "odirect-read-into-dax", "ok", "dax", "DAX"),
    (PAGECACHE, "odirect", "odirect-read-into-pagecache-mmap", "ok", "pagecache", "page cache"),
    (PAGECACHE, "kapi", "iouring-fixed-buffer", "EOPNOTSUPP", "pagecache", "page cache"),
    (PAGECACHE, "kapi", "longterm-pin", "ok", "pagecache", "page cache"),
    (ANON, "odirect", "odirect-read-into-anon", "ok", "anon", "anonymous"),
    (ANON, "kapi", "iouring-fixed-buffer", "ok", "anon", "anonymous"),
    (DEVMEM, "odirect", "odirect-read-into-pageless", "EFAULT", "pageless", "page-less"),
    (DEVMEM, "kapi", "futex-shared", "EFAULT", "pageless", "page-less"),
    (DEVMEM, "kapi", "madvise", "EINVAL", "pageless", "page-less"),
    (FALLBACK, "prepare", "dax-mount", "fallback", None, "DAX"),
    # a filesystem that fell back keeps the plain operation name and says so in metrics.mapping
    (FALLBACK, "kapi", "iouring-fixed-buffer", "EOPNOTSUPP", "pagecache", "page cache"),
    (FALLBACK, "odirect", "odirect-read-into-dax", "ok", "pagecache", "page cache"),
    (PAIR, "d2d", "d2d-blockdev-copy-file-range", "EINVAL", None, "d2d"),
    (PAIR, "d2d", "d2d-ext4-dax-splice", "ok", None, "d2d"),
]


def _obs(
    scenario: Scenario, experiment: str, op: str, outcome: str, mapping: str | None = None
) -> Observation:
    metrics: dict[str, Any] = {"mapping": mapping} if mapping else {}
    return Observation(experiment, op, outcome, scenario, "/dev/x", detail="kernel said so", metrics=metrics)


def _run(observations: list[Observation]) -> RunContents:
    return RunContents("r", {}, {}, {"kernel": K}, observations)


def test_every_cell_kind_is_compared_and_agrees_with_6_1() -> None:
    observations = [_obs(s, e, op, out, m) for s, e, op, out, m, _ in CELLS]
    joined = join(_run(observations), default_predictor())
    assert [j.observation for j in joined] == observations  # nothing renamed away, nothing dropped
    for j, (_, _, op, out, _, kind) in zip(joined, CELLS, strict=True):
        assert j.prediction is not None, op
        assert (j.prediction.outcome, j.kind) == (out, kind), (op, j.prediction.rule)
        assert j.agree


def test_a_disagreeing_fallback_cell_is_shown_not_hidden() -> None:
    # the kernel said ok where 6.1's io_uring refuses a page-cache file: the join must say NO
    wrong = _obs(FALLBACK, "kapi", "iouring-fixed-buffer", "ok", "pagecache")
    text = render(_run([wrong]), default_predictor())
    assert "1 (scenario × operation) cells compared: 0 agree, 1 disagree" in text
    assert "page cache 0/1" in text and "**NO**" in text and "**≠**" in text


def test_skipped_steps_are_left_out_and_unknown_operations_are_listed() -> None:
    observations = [
        _obs(PAIR, "d2d", "d2d-file-copies", "ok"),
        _obs(FSDAX, "kapi", "experiment", "skipped:error"),
        _obs(ANON, "odirect", "odirect-read-into-anon", "ok", "anon"),
    ]
    joined = join(_run(observations), default_predictor())
    assert [j.observation.operation for j in joined] == ["d2d-file-copies", "odirect-read-into-anon"]
    assert joined[0].prediction is None and joined[1].agree
    text = render(_run(observations), default_predictor())
    assert "1 (scenario × operation) cells compared: 1 agree, 0 disagree" in text
    assert "1 observations have no prediction" in text and "`d2d-file-copies`" in text


def test_the_join_asks_the_model_once_per_observation_for_every_table() -> None:
    calls: list[str] = []

    def predictor(obs: Observation) -> Prediction:
        calls.append(obs.operation)
        return Prediction(obs.scenario, obs.operation, "EFAULT", True, "dram", "r", ["s"], ">=4.0")

    observations = [
        _obs(FSDAX, "kapi", "futex-shared", "ok", "dax"),
        _obs(Scenario(K, "nvdimm", "fsdax", "mem", fs="ext4", stack="dm-linear"), "raid", "dax-mount", "ok"),
    ]
    text = render(_run(observations), predictor)
    assert sorted(calls) == ["dax-mount", "futex-shared"]  # model, kapi and raid tables share one join
    assert text.count("(model `EFAULT` **≠**)") == 2  # kapi matrix and RAID table both show it
    assert "DAX 0/1, stack 0/1" in text


@pytest.mark.parametrize("mapping", ["pagecache", "dax"])
def test_kind_follows_what_the_kernel_gave(mapping: str) -> None:
    joined = join(_run([_obs(FALLBACK, "kapi", "vmsplice", "ok", mapping)]), default_predictor())
    assert joined[0].kind == {"pagecache": "page cache", "dax": "DAX"}[mapping]


@pytest.mark.parametrize(
    "operation", [["odirect-read-into-dax"], {"op": 1}, 7, "x" * 5000, "odirect-read-into-anon"]
)
def test_a_damaged_operation_name_is_unpredicted_not_a_traceback(operation: object) -> None:
    obs = _obs(FSDAX, "odirect", "placeholder", "ok", "dax")
    object.__setattr__(obs, "operation", operation)  # what a damaged observations.jsonl may hold
    joined = join(_run([obs]), default_predictor())
    assert len(joined) == 1 and joined[0].prediction is None
    text = "\n".join(model_section(_run([obs]), joined))
    assert "1 observations have no prediction" in text


@pytest.mark.parametrize(
    ("scenario", "variant", "outcome"),
    [(FSDAX, "read-only", "EFAULT"), (FSDAX, "after-fork", "ok"), (ANON, "read-only", "EFAULT")],
)
def test_a_variant_is_joined_from_its_field_not_its_name(
    scenario: Scenario, variant: str, outcome: str
) -> None:
    op = "odirect-read-into-anon" if scenario is ANON else "odirect-read-into-dax"
    obs = Observation("odirect", op, outcome, scenario, "/dev/x", variant=variant, metrics={"mapping": "dax"})
    joined = join(_run([obs]), default_predictor())
    assert (
        joined[0].prediction is not None
        and joined[0].prediction.operation == f"odirect-read-into-dax:{variant}"
    )
    assert joined[0].agree, joined[0].prediction
    assert f"| {op}:{variant} |" in render(_run([obs]), default_predictor())  # tables show the pair
