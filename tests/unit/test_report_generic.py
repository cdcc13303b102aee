"""The generic report section (issue 9 item 3): an experiment with no section of its own still shows
its observations, numeric metrics with units, and the model's word on each, without an edit to report/.
"""

from __future__ import annotations

from pmemkit.report.generic import numeric_metrics, unit_of
from pmemkit.report.markdown import DEDICATED_EXPERIMENTS, RunContents, render
from pmemkit.scenario import Observation, Prediction, Scenario

K = "6.1.0-57-amd64"
FSDAX = Scenario(K, "nvdimm", "fsdax", "mem", fs="ext4")
ANON = Scenario(K, "baseline", "anonymous")


def _run(observations: list[Observation]) -> RunContents:
    return RunContents("r", {"suites": ["toy"]}, {"accel": "tcg"}, {"kernel": K}, observations)


def _toy(op: str = "toy-touch", outcome: str = "ok", **metrics: object) -> Observation:
    return Observation("toy", op, outcome, FSDAX, "/dev/pmem0", detail="toy said so", metrics=dict(metrics))


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_units_come_from_a_declaration_else_the_name() -> None:
    assert unit_of("elapsed_ns", {}) == "ns"
    assert unit_of("copy_bytes_per_s", {}) == "B/s"
    assert unit_of("bytes_per_s", {}) == "B/s"
    assert unit_of("latency.p50_ns", {}) == "ns"
    assert unit_of("size_bytes", {}) == "B"
    assert unit_of("wall_s", {}) == "s"
    assert unit_of("pages", {}) is None
    assert unit_of("pages", {"pages": "4 KiB pages"}) == "4 KiB pages"


def test_only_numbers_are_columns_nested_one_level() -> None:
    found = numeric_metrics(
        {"n": 3, "ok": True, "mapping": "dax", "lat": {"p50": 1.5, "deep": {"x": 1}}, "units": {"n": "x"}}
    )
    assert found == {"n": 3, "lat.p50": 1.5}


def test_a_new_experiment_gets_its_section_with_metrics_units_and_model() -> None:
    pred = Prediction(FSDAX, "toy-touch", "ok", True, "DRAM", "toy-rule", [], "all")
    observations = [
        _toy(touched_pages=512, elapsed_ns=1200, units={"touched_pages": "pages"}),
        _toy("toy-pin", "EFAULT", elapsed_ns=7.25),
        Observation("prepare", "dax-mount", "ok", FSDAX, "/dev/pmem0"),
    ]
    text = render(_run(observations), predictor=lambda o: pred if o.operation == "toy-touch" else None)
    section = _section(text, "## toy")
    lines = section.splitlines()
    header = next(line for line in lines if line.startswith("| target"))
    assert "| touched_pages (pages) |" in header and "| elapsed_ns (ns) |" in header
    touch = next(line for line in lines if "| toy-touch |" in line)
    assert "| 512 | 1200 |" in touch and "`ok` (agrees; toy-rule)" in touch
    pin = next(line for line in lines if "| toy-pin |" in line)
    assert "| — | 7.25 |" in pin and "no prediction" in pin and "`EFAULT`" in pin
    assert "dax-mount" not in section  # the runner's own steps are not an experiment
    # the join reaches the toy too: compared where the model has a rule, listed where it has none
    model = _section(text, "## Model vs kernel")
    assert "| toy-touch |" in model and "`toy-pin`" in model.split("no prediction")[1]


def test_dedicated_experiments_get_no_generic_copy() -> None:
    observations = [
        Observation("kapi", "madvise", "ok", ANON, "anon", metrics={"elapsed_ns": 5}),
        Observation("smoke", "mmap-write", "ok", ANON, "anon", metrics={"elapsed_ns": 9}),
    ]
    text = render(_run(observations))
    assert "kapi" in DEDICATED_EXPERIMENTS and "\n## kapi\n" not in text
    assert "| 9 |" in _section(text, "## smoke")


def test_skipped_and_metricless_observations_still_appear() -> None:
    text = render(_run([_toy("toy-touch", "skipped:error")]), predictor=lambda o: None)
    section = _section(text, "## toy")
    assert "`skipped:error`" in section and "not compared" in section


def test_generic_columns_leave_out_percentiles_the_count_cannot_support():
    from pmemkit.measure.stats import summarize
    from pmemkit.report.generic import numeric_metrics

    found = numeric_metrics({"latency": summarize(list(range(1, 17)))})
    assert "latency.p50" in found and "latency.p90" in found
    assert not any(k in found for k in ("latency.p99", "latency.p99.9", "latency.p99.99"))
