import json

from pmemkit.pipeline import render_report as render_run_dir
from pmemkit.report.markdown import RunContents, phase_rows, render
from pmemkit.rundir import RunDir
from pmemkit.scenario import Observation, Prediction, Scenario


def _obs(op="dax-mount", outcome="EINVAL", mode="raw"):
    sc = Scenario(kernel="6.1.0-56-amd64", source="nvdimm", mode=mode, fs="ext4")
    return Observation(
        "prepare",
        op,
        outcome,
        sc,
        "/dev/pmem2",
        detail="EXT4-fs (pmem2): DAX unsupported by block device.",
        provenance={"accel": "tcg"},
    )


def _contents(**kw):
    base = dict(
        name="20261126-000000",
        plan={
            "pmem": [{"source": "nvdimm", "size": 512 << 20, "start": None, "mode": "raw", "map": None}],
            "filesystems": ["ext4"],
            "suites": ["smoke"],
        },
        environment={
            "accel": "tcg",
            "accel_reason": "auto fell back to TCG: no vmx",
            "qemu": "QEMU 7.2",
            "guest_ram_bytes": 2 << 30,
            "memmap": [],
            "boot": {"phases_s": {"qemu": 0.0, "kernel": 1.2, "init": 2.9, "done": 9.0}},
        },
        guest_environment={"kernel": "6.1.0-56-amd64", "timer_overhead_ns": 120},
        observations=[_obs()],
    )
    base.update(kw)
    return RunContents(**base)


def test_report_says_emulated_and_provenance():
    text = render(_contents())
    assert "Emulated pmem" in text and "DRAM" in text
    assert "6.1.0-56-amd64" in text and "tcg" in text and "QEMU 7.2" in text
    assert "DAX unsupported by block device" in text
    assert "**Status: completed.**" in text


def test_report_failure_and_model_column():
    def predictor(obs):
        return Prediction(obs.scenario, obs.operation, "ok", False, "none", "r", ["s"], ">=4.16")

    text = render(_contents(failure="the guest kernel panicked"), predictor)
    assert "FAILED" in text and "panicked" in text
    assert "**NO**" in text  # predicted ok, observed EINVAL: a disagreement is never hidden


def test_phase_rows_steps():
    rows = phase_rows({"qemu": 0.0, "kernel": 1.0, "init": 2.5})
    assert rows[2] == ["init", "2.50", "1.50"]


def test_render_run_dir_tolerates_damage(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(_contents().plan))
    (tmp_path / "environment.json").write_text(json.dumps(_contents().environment))
    good = _obs().to_json()
    (tmp_path / "observations.jsonl").write_text(good + "\n{broken\n" + good + "\n")
    path, count = render_run_dir(tmp_path, failure="killed")
    assert count == 2
    text = (tmp_path / "report.md").read_text()
    assert "line 2 skipped" in text and "FAILED" in text
    with RunDir.open(tmp_path) as run:
        assert run.load().warnings  # guest-environment.json missing is tolerated silently


def _metric_obs(
    op, mode="raw", source="memmap", experiment="odirect", outcome="ok", metrics=None, device="/dev/pmem0"
):
    sc = Scenario(kernel="6.1.0-56-amd64", source=source, mode=mode, fs="ext4" if mode == "raw" else None)
    return Observation(experiment, op, outcome, sc, device, detail="d", metrics=metrics or {})


def test_pageless_section_sets_control_beside_dax():
    obs = [
        _metric_obs(
            "odirect-read-into-pageless", mode="devmem", outcome="EFAULT", device="/dev/mem@0x40000000"
        ),
        _metric_obs("buffered-read-into-pageless", mode="devmem", device="/dev/mem@0x40000000"),
        _metric_obs("odirect-read-into-dax"),
    ]
    text = render(_contents(observations=obs))
    assert "no `struct page`" in text
    row = next(line for line in text.splitlines() if line.startswith("| odirect-read-into |"))
    assert "`EFAULT`" in row and "`ok`" in row


def test_bandwidth_and_fio_sections():
    rows = [{"pattern": "seq-read", "block_bytes": 1 << 20, "bytes_per_s": 2e9}]
    anon = _metric_obs(
        "mmap-bandwidth",
        mode="anonymous",
        source="baseline",
        experiment="mmap",
        metrics={"rows": [{**rows[0], "bytes_per_s": 4e9}]},
        device="anonymous memory",
    )
    dax = _metric_obs("mmap-bandwidth", experiment="mmap", metrics={"rows": rows})
    side = {"pmemkit": 2000, "fio": 1000, "ratio": 2.0, "within_10pct": False}
    fio = _metric_obs(
        "fio-odirect-randread",
        experiment="fio",
        metrics={"comparison": {"p50": side, "p99": side, "bw_bytes": {**side, "ratio": 3.25}}},
    )
    text = render(_contents(observations=[anon, dax, fio]))
    assert "## Bandwidth through the mapping" in text and "0.50×" in text  # DAX at half of anonymous
    assert "## pmemkit beside fio" in text and "2.00×" in text
    # the random-read bandwidth is not measured alike on both sides: no row, and the reason instead
    assert "3.25×" not in text and "randread bw_bytes" not in text
    assert "No random-read bandwidth is compared" in text


def test_fio_headline_names_what_pmemkit_timed_not_a_python_loop():
    """The headline's caption says whose latency stands beside fio's clat, from the observation."""
    from pmemkit.report.headline import fio_agreement

    side = {"pmemkit": 15000, "fio": 16000, "ratio": 0.9375, "within_10pct": True}
    own = "own (prtime: a C loop, clock_gettime around pread)"
    fio = _metric_obs(
        "fio-odirect-randread",
        experiment="fio",
        metrics={"comparison": {"p50": side, "bw_bytes": side, "pmemkit_latency": own}},
    )
    headline = fio_agreement(_contents(observations=[fio]))
    assert headline is not None
    assert own in headline.provenance and "Python" not in headline.provenance, headline.provenance
    assert "0.94×" in headline.text(), headline.values
    assert not any("bandwidth" in name for name, _ in headline.values)  # not measured alike: dropped


def test_run_dir_gets_plots_linked_from_the_report(tmp_path):
    from pmemkit.measure.stats import summarize

    (tmp_path / "plan.json").write_text(json.dumps(_contents().plan))
    (tmp_path / "environment.json").write_text(json.dumps(_contents().environment))
    fault = _metric_obs(
        "first-touch-write", experiment="mmap", metrics={"latency": summarize([3000, 5000, 40000])}
    )
    (tmp_path / "observations.jsonl").write_text(fault.to_json() + "\n")
    path, _ = render_run_dir(tmp_path)
    assert path == tmp_path / "report.html"
    assert (tmp_path / "plots" / "first-touch-write-cdf.png").read_bytes().startswith(b"\x89PNG\r\n")
    assert "](plots/first-touch-write-cdf.png)" in (tmp_path / "report.md").read_text()
    assert 'id="plot-first-touch-write-cdf.png"' in path.read_text()
