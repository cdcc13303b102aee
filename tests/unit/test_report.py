import json

from pmemkit.report.markdown import RunContents, phase_rows, render
from pmemkit.report.rundir import load_run, render_run_dir
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
    text = path.read_text()
    assert "line 2 skipped" in text and "FAILED" in text
    assert load_run(tmp_path).warnings  # guest-environment.json missing is tolerated silently
