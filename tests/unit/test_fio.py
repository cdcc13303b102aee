"""pmemkit.guest.fio: argv building, parsing real fio 3.33 JSON, compare(), error paths.

The fixtures are real output of fio 3.33 (Debian bookworm, the guest's version) for the command
lines the two factories build, on a 4 MiB file in /tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pmemkit.guest import GuestError, fio
from pmemkit.measure.stats import summarize

FIXTURES = Path(__file__).parent / "fixtures"
ODIRECT_JSON = FIXTURES / "fio-3.33-odirect-randread.json"
MMAP_JSON = FIXTURES / "fio-3.33-mmap-seqread.json"


def _odirect() -> fio.FioResult:
    return fio.parse(ODIRECT_JSON.read_text())


def _mmap() -> fio.FioResult:
    return fio.parse(MMAP_JSON.read_text())


# --- argv -------------------------------------------------------------------------------------


def test_odirect_randread_argv():
    job = fio.odirect_randread_job("/mnt/pmem0/pmemkit.dat", 64 << 20, 1000)
    assert job.argv() == [
        "fio",
        "--output-format=json",
        "--name=pmemkit-odirect-randread",
        "--filename=/mnt/pmem0/pmemkit.dat",
        "--rw=randread",
        "--bs=4096",
        "--ioengine=psync",
        "--direct=1",
        "--size=67108864",
        "--io_size=4096000",
        "--time_based=0",
        "--lat_percentiles=1",
        "--percentile_list=50:90:99:99.9:99.99",
        "--norandommap=1",
        "--randrepeat=1",
        "--allow_file_create=0",
    ]


def test_mmap_seqread_argv_and_custom_binary():
    job = fio.mmap_seqread_job("/mnt/pmem0/f", 8 << 20, 1 << 20)
    argv = job.argv(fio="/usr/local/bin/fio")
    assert argv[:2] == ["/usr/local/bin/fio", "--output-format=json"]
    assert "--ioengine=mmap" in argv and "--rw=read" in argv and "--direct=0" in argv
    assert "--bs=1048576" in argv and "--size=8388608" in argv
    assert not any(a.startswith(("--io_size", "--number_ios", "--loops")) for a in argv)
    assert "--loops=3" in fio.mmap_seqread_job("/f", 1 << 20, 4096, loops=3).argv()


def test_fiojob_number_ios_and_bare_extra_option():
    job = fio.FioJob(
        name="j", filename="/f", rw="read", bs=512, ioengine="sync", number_ios=7, extra={"thread": None}
    )
    argv = job.argv()
    assert "--number_ios=7" in argv and "--thread" in argv
    assert not any(a.startswith("--size") for a in argv)
    assert argv.count("--output-format=json") == 1 and not any("group_reporting" in a for a in argv)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_factories_refuse_non_positive_sizes(bad):
    with pytest.raises(GuestError, match="positive integer"):
        fio.odirect_randread_job("/f", 1 << 20, bad)
    with pytest.raises(GuestError, match="positive integer"):
        fio.mmap_seqread_job("/f", bad, 4096)


def test_fixtures_were_produced_by_the_factories():
    """The fixtures' job options are exactly what the factories emit (fio echoes them back)."""
    for path, job in (
        (ODIRECT_JSON, fio.odirect_randread_job("/tmp/pmemkit-fio/data.bin", 4 << 20, 256)),
        (MMAP_JSON, fio.mmap_seqread_job("/tmp/pmemkit-fio/data.bin", 4 << 20, 256 << 10)),
    ):
        assert fio.parse(path.read_text()).job_options == dict(job.options())


# --- parse ------------------------------------------------------------------------------------


def test_parse_real_odirect_fixture():
    r = _odirect()
    assert r.fio_version == "fio-3.33"
    assert r.job_name == "pmemkit-odirect-randread"
    assert r.job_options["ioengine"] == "psync" and r.job_options["direct"] == "1"
    assert r.total_ios == 256 and r.io_bytes == 256 * 4096
    assert r.runtime_ms == 26
    assert r.bw_bytes == 40329846.0
    assert r.iops == pytest.approx(9846.153846)
    assert r.latency_kind == "lat"
    assert r.latency is r.lat
    assert r.lat.percentiles == {
        "p50": 35584.0,
        "p90": 47360.0,
        "p99": 199680.0,
        "p99.9": 9371648.0,
        "p99.99": 9371648.0,
    }
    assert r.clat is not None and r.clat.percentiles["p90"] == 46848.0  # clat kept, not compared
    assert r.mean_ns == pytest.approx(94253.667969)
    assert r.percentile("p99") == 199680.0 and r.percentile("p75") is None
    assert r.lat.count == 256 and r.lat.min_ns == 32330 and r.lat.max_ns == 9358893


def test_parse_real_mmap_fixture():
    r = _mmap()
    assert r.job_options["ioengine"] == "mmap" and r.job_options["rw"] == "read"
    assert r.total_ios == 16 and r.io_bytes == 4 << 20
    assert r.bw_bytes == 599186285.0
    assert r.latency_kind == "lat"
    assert r.percentile("p50") == 52480.0
    assert r.clat.percentiles["p50"] == 51968.0


def test_to_dict_is_json_ready():
    d = _odirect().to_dict()
    again = json.loads(json.dumps(d))
    assert again == d
    assert d["latency_kind"] == "lat" and d["latency"]["p99"] == 199680.0
    assert d["job_options"]["bs"] == "4096" and d["clat"]["count"] == 256


def test_parse_falls_back_to_clat_without_lat_percentiles():
    doc = json.loads(ODIRECT_JSON.read_text())
    del doc["jobs"][0]["read"]["lat_ns"]["percentile"]  # fio without --lat_percentiles=1
    r = fio.parse(json.dumps(doc))
    assert r.latency_kind == "clat" and r.percentile("p50") == 35584.0
    assert fio.compare({"p50": 35584}, None, r)["fio_latency"] == "clat"


def test_parse_tolerates_notes_before_the_json():
    r = fio.parse("note: both iodepth >= 1 and synchronous I/O engine are selected\n" + MMAP_JSON.read_text())
    assert r.total_ios == 16


def test_parse_bw_fallback_to_kib():
    doc = json.loads(MMAP_JSON.read_text())
    del doc["jobs"][0]["read"]["bw_bytes"]
    assert fio.parse(json.dumps(doc)).bw_bytes == 585142 * 1024


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "not JSON"),
        ("fio: failed parsing rw=bogus", "not JSON"),
        ('{"jobs": [', "not valid JSON"),
        ("[1, 2]", "not JSON"),
        ('{"fio version": "fio-3.33"}', "no 'jobs'"),
        ('{"jobs": []}', "0 jobs"),
    ],
)
def test_parse_bad_json(text, match):
    with pytest.raises(GuestError, match=match):
        fio.parse(text)


def test_parse_job_error_and_no_reads():
    doc = json.loads(ODIRECT_JSON.read_text())
    doc["jobs"][0]["error"] = 5
    with pytest.raises(GuestError, match="failed with error 5"):
        fio.parse(json.dumps(doc))
    doc = json.loads(ODIRECT_JSON.read_text())
    for key in ("lat_ns", "clat_ns"):
        doc["jobs"][0]["read"][key] = {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}
    with pytest.raises(GuestError, match="did no reads"):
        fio.parse(json.dumps(doc))
    doc = json.loads(ODIRECT_JSON.read_text())
    for key in ("lat_ns", "clat_ns"):
        del doc["jobs"][0]["read"][key]
    with pytest.raises(GuestError, match=r"fio >= 3.0"):
        fio.parse(json.dumps(doc))
    doc = json.loads(ODIRECT_JSON.read_text())
    del doc["jobs"][0]["read"]["iops"]
    with pytest.raises(GuestError, match="malformed read section"):
        fio.parse(json.dumps(doc))


# --- compare ----------------------------------------------------------------------------------


def test_compare_ratios_and_flags():
    r = _odirect()  # lat p50 35584, p99 199680, bw 40329846
    summary = summarize([35584 * 1.05] * 90 + [199680 * 1.5] * 10)
    c = fio.compare(summary, 40329846 * 0.92, r)
    assert c["fio_latency"] == "lat" and c["fio_version"] == "fio-3.33" and c["tolerance"] == 0.10
    assert c["job"] == "pmemkit-odirect-randread"
    assert c["p50"]["pmemkit"] == pytest.approx(35584 * 1.05) and c["p50"]["fio"] == 35584.0
    assert c["p50"]["ratio"] == pytest.approx(1.05) and c["p50"]["within_10pct"] is True
    assert c["p99"]["ratio"] == pytest.approx(1.5) and c["p99"]["within_10pct"] is False
    assert c["bw_bytes"]["ratio"] == pytest.approx(0.92) and c["bw_bytes"]["within_10pct"] is True
    assert c["pmemkit_overhead_subtracted"] is False
    assert json.loads(json.dumps(c)) == c


def test_compare_missing_pmemkit_figures_give_none():
    c = fio.compare({}, None, _mmap())
    for key in ("p50", "p99", "bw_bytes"):
        assert c[key]["ratio"] is None and c[key]["within_10pct"] is None
    assert c["bw_bytes"]["fio"] == 599186285.0


def test_compare_refuses_non_ns_summary():
    with pytest.raises(GuestError, match="needs ns"):
        fio.compare({"unit": "us", "p50": 35.0}, None, _odirect())


# --- run --------------------------------------------------------------------------------------


def test_run_fio_missing_mentions_install(monkeypatch):
    monkeypatch.setattr(fio.shutil, "which", lambda name: None)
    with pytest.raises(GuestError, match="apt-get install -y fio"):
        fio.run(fio.mmap_seqread_job("/f", 4096, 4096), timeout_s=5)


def test_run_fio_vanishing_binary_mentions_install(monkeypatch):
    monkeypatch.setattr(fio.shutil, "which", lambda name: "/nonexistent/fio")
    with pytest.raises(GuestError, match="install"):
        fio.run(fio.mmap_seqread_job("/f", 4096, 4096), timeout_s=5)


def _fake_fio(monkeypatch, returncode: int, stdout: str, stderr: str) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    monkeypatch.setattr(fio.shutil, "which", lambda name: "/usr/bin/fio")
    monkeypatch.setattr(fio.subprocess, "run", fake_run)
    return calls


def test_run_failure_reports_last_fio_line(monkeypatch):
    stderr = "fio: failed parsing rw=bogus\n        valid values: read   Sequential read\n"
    _fake_fio(monkeypatch, 1, "", stderr)
    with pytest.raises(GuestError, match="failed: fio: failed parsing rw=bogus$"):
        fio.run(fio.mmap_seqread_job("/f", 4096, 4096), timeout_s=5)


def test_run_failure_without_stderr_reports_status(monkeypatch):
    _fake_fio(monkeypatch, 3, "", "")
    with pytest.raises(GuestError, match="exit status 3"):
        fio.run(fio.mmap_seqread_job("/f", 4096, 4096), timeout_s=5)


def test_run_bad_json_output(monkeypatch):
    _fake_fio(monkeypatch, 0, "garbage", "")
    with pytest.raises(GuestError, match="not JSON"):
        fio.run(fio.mmap_seqread_job("/f", 4096, 4096), timeout_s=5)


def test_run_parses_stdout_and_uses_resolved_binary(monkeypatch):
    calls = _fake_fio(monkeypatch, 0, MMAP_JSON.read_text(), "")
    r = fio.run(fio.mmap_seqread_job("/f", 4096, 4096), timeout_s=5)
    assert r.total_ios == 16 and calls[0][0] == "/usr/bin/fio"


def test_run_timeout(monkeypatch):
    def fake_run(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(fio.shutil, "which", lambda name: "/usr/bin/fio")
    monkeypatch.setattr(fio.subprocess, "run", fake_run)
    with pytest.raises(GuestError, match="within 0.5 s"):
        fio.run(fio.mmap_seqread_job("/f", 4096, 4096), timeout_s=0.5)


# --- the real fio -----------------------------------------------------------------------------


def _o_direct_supported(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return False
    os.close(fd)
    return True


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed (apt-get install -y fio)")
@pytest.mark.parametrize("kind", ["odirect", "mmap"])
def test_real_fio_on_a_tiny_file(tmp_path, kind):
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(1 << 20))
    if kind == "odirect":
        if not _o_direct_supported(data):
            pytest.skip(f"the filesystem of {tmp_path} refuses O_DIRECT")
        job = fio.odirect_randread_job(str(data), 1 << 20, 64)
        expected_ios, expected_bytes = 64, 64 * 4096
    else:
        job = fio.mmap_seqread_job(str(data), 1 << 20, 64 << 10)
        expected_ios, expected_bytes = 16, 1 << 20
    r = fio.run(job, timeout_s=60)
    assert r.fio_version.startswith("fio-")
    assert r.total_ios == expected_ios and r.io_bytes == expected_bytes
    assert r.latency_kind == "lat" and set(r.latency.percentiles) >= {"p50", "p90", "p99", "p99.9"}
    assert r.bw_bytes > 0 and r.iops > 0
    c = fio.compare(summarize([r.percentile("p50")] * 10), r.bw_bytes, r)
    assert c["p50"]["ratio"] == 1.0 and c["bw_bytes"]["within_10pct"] is True


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed (apt-get install -y fio)")
def test_real_fio_refuses_a_missing_file(tmp_path):
    job = fio.mmap_seqread_job(str(tmp_path / "absent.bin"), 1 << 20, 4096)
    with pytest.raises(GuestError, match="allow_file_create"):
        fio.run(job, timeout_s=60)
    assert not (tmp_path / "absent.bin").exists()


def test_null_engine_job_measures_only_fio_itself():
    from pmemkit.guest.fio import null_randread_job

    argv = null_randread_job("/mnt/x/f.dat", 1 << 20, 256).argv()
    assert "--ioengine=null" in argv and "--io_size=1048576" in argv and "--rw=randread" in argv
    assert not any(a.startswith("--direct=1") for a in argv)


def test_lat_log_options_and_parsing():
    from pmemkit.guest import fio

    job = fio.with_lat_log(fio.odirect_randread_job("/f", 1 << 20, 8), "/tmp/x/round0")
    argv = job.argv("fio")
    assert "--write_lat_log=/tmp/x/round0" in argv and "--log_avg_msec=0" in argv and "--log_offset=1" in argv
    assert fio.lat_log_path("/tmp/x/round0") == "/tmp/x/round0_clat.1.log"
    values, offsets = fio.parse_lat_log("3, 3792031, 0, 4096, 1011712, 0\n4, 118991, 0, 4096, 12419072, 0\n")
    assert values == [3792031, 118991] and offsets == [1011712, 12419072]
    with pytest.raises(GuestError):
        fio.parse_lat_log("1, 1068222, 0, 4096\n")  # no offset column
    with pytest.raises(GuestError):
        fio.parse_lat_log("1, x, 0, 4096, 0\n")
    seq = fio.mmap_seqread_like_pmemkit("/f", 1 << 20, 1 << 20, 2)
    assert "--invalidate=0" in seq.argv("fio") and "--loops=2" in seq.argv("fio")
