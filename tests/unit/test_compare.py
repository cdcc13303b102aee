"""`pmemkit compare` on two recorded run directories (tests/unit/fixtures/compare, real guest runs of the
same configuration) and on runs whose provenance makes the comparison meaningless."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmemkit.cli import main
from pmemkit.compare import (
    Metric,
    ProvenanceMismatch,
    compare_metric,
    compare_runs,
    load,
    metrics_of,
    render_markdown,
    render_text,
)

RUNS = Path(__file__).parent / "fixtures" / "compare"
A, B = RUNS / "fio-a", RUNS / "fio-b"


def _copy(src: Path, dst: Path, edit=None) -> Path:
    shutil.copytree(src, dst)
    if edit:
        lines = [json.loads(line) for line in (dst / "observations.jsonl").read_text().splitlines()]
        (dst / "observations.jsonl").write_text("".join(json.dumps(edit(o)) + "\n" for o in lines))
    return dst


def test_the_fixtures_are_real_runs_of_one_configuration():
    a, b = load(A), load(B)
    assert a.plan["pmem"] == b.plan["pmem"] and a.plan["accel"] == b.plan["accel"] == "tcg"
    assert {o.provenance["kernel"] for o in a.observations} == {
        o.provenance["kernel"] for o in b.observations
    }
    assert metrics_of(a).keys() == metrics_of(b).keys()


def test_compare_two_recorded_runs_text_markdown_json():
    runner = CliRunner()
    text = runner.invoke(main, ["compare", str(A), str(B)])
    assert text.exit_code == 0, text.output
    assert "significant" in text.output and "latency p50s:" in text.output
    md = runner.invoke(main, ["compare", str(A), str(B), "--markdown"])
    assert md.exit_code == 0 and md.output.startswith("## pmemkit compare: fio-a → fio-b")
    assert "| metric | kind | A | B | B / A [95 % CI] | verdict |" in md.output
    js = runner.invoke(main, ["compare", str(A), str(B), "--json"])
    assert js.exit_code == 0
    data = json.loads(js.output)
    assert data["a"] == "fio-a" and "do not overlap" in data["test"]
    rows = {r["metric"]: r for r in data["rows"]}
    assert data["summary"]["metrics_compared"] == len(rows) > 0
    own = [r for k, r in rows.items() if k.endswith("fio/fio-odirect-randread pmemkit_caller")]
    assert len(own) == 2  # the page-cache baseline and the memmap DAX file
    for r in own:
        assert r["a_ci"][0] <= r["a"] <= r["a_ci"][1] and r["ratio"] == pytest.approx(r["b"] / r["a"])
        assert r["verdict"] in ("significant", "not significant")


def test_a_run_compared_with_itself_is_never_significant(tmp_path):
    same = compare_runs(load(A), load(_copy(A, tmp_path / "again")))
    latency = [r for r in same.rows if r.kind == "latency p50"]
    assert latency and all(r.ratio == 1 for r in latency)
    assert all(r.verdict in ("not significant", "n/a") for r in latency)
    assert same.summary()["latency_significant"] == 0
    n = len([r for r in latency if r.verdict != "n/a"])
    line = render_text(same).splitlines()[-1]
    assert f"{n} within ±10 % ({n} of them not significant), 0 significant" in line, line


def test_mismatched_kernel_exits_2_with_one_line_unless_forced(tmp_path):
    def other_kernel(o):
        o["provenance"]["kernel"] = "6.12.99-amd64"
        o["scenario"]["kernel"] = "6.12.99-amd64"
        return o

    other = _copy(B, tmp_path / "other", other_kernel)
    result = CliRunner().invoke(main, ["compare", str(A), str(other)])
    assert result.exit_code == 2
    err = result.output.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pmemkit: error: the runs are not comparable (kernel:")
    assert "--force" in err[0]
    with pytest.raises(ProvenanceMismatch):
        compare_runs(load(A), load(other))
    forced = CliRunner().invoke(main, ["compare", str(A), str(other), "--force"])
    assert forced.exit_code == 0 and "compared with --force although kernel" in forced.output


def test_mismatched_pmem_source_is_refused(tmp_path):
    other = _copy(B, tmp_path / "nvdimm")
    plan = json.loads((other / "plan.json").read_text())
    plan["pmem"][0]["source"] = "nvdimm"
    (other / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(ProvenanceMismatch, match="pmem: memmap"):
        compare_runs(load(A), load(other))


def test_bad_input_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["compare", str(A), str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("pmemkit: error:")
    both = CliRunner().invoke(main, ["compare", str(A), str(B), "--json", "--markdown"])
    assert both.exit_code == 2 and "exclude each other" in both.output


def test_the_verdict_follows_the_cis():
    a = Metric("k", "latency p50", "ns", 100.0, 95.0, 105.0, 1000)
    assert (
        compare_metric(a, Metric("k", "latency p50", "ns", 104.0, 99.0, 109.0, 1000)).verdict
        == "not significant"
    )
    far = compare_metric(a, Metric("k", "latency p50", "ns", 130.0, 120.0, 140.0, 1000))
    assert (
        far.verdict == "significant"
        and far.lo == pytest.approx(120 / 105)
        and far.hi == pytest.approx(140 / 95)
    )
    no_ci = compare_metric(a, Metric("k", "latency p50", "ns", 130.0, None, None, 5))
    assert no_ci.verdict == "n/a" and no_ci.ratio == pytest.approx(1.3)
    bw = compare_metric(Metric("b", "bandwidth", "B/s", 2.0), Metric("b", "bandwidth", "B/s", 1.0))
    assert bw.verdict == "n/a" and bw.ratio == 0.5


def test_markdown_names_the_test():
    text = render_markdown(compare_runs(load(A), load(B)))
    assert "excludes 1" in text and text.rstrip().endswith(".")
