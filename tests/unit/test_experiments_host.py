"""The experiments' own code on the host's kernel, on the targets that need no pmem.

Anonymous memory and a page-cache file exist everywhere, so the mmap and O_DIRECT experiments run
here for real (quick profile): every operation yields an observation with a valid outcome and
verified data. The DAX targets are covered by tests/vm.
"""

import ast
import os
from pathlib import Path

import pytest

from pmemkit.guest.experiments import Target, get, load_all, runs_on
from pmemkit.scenario import Scenario
from tests.unit.direct_io import direct_io_works


def _target(kind, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    scenario = Scenario(kernel=os.uname().release, source="baseline", mode=kind)
    return Target(kind, str(tmp_path), kind, scenario, str(scratch), {"accel": "host"}, {"profile": "quick"})


def test_registry_lists_every_experiment_with_its_kinds():
    names = set(load_all())
    assert {"smoke", "mmap", "odirect", "fio"} <= names
    assert runs_on("odirect", "devmem") and not runs_on("smoke", "anon")


@pytest.mark.parametrize("kind", ["anon", "pagecache"])
def test_mmap_experiment_on_host(kind, tmp_path):
    obs = list(get("mmap")(_target(kind, tmp_path), {"profile": "quick"}))
    ops = {o.operation: o for o in obs}
    assert {"first-touch-write", "first-touch-read", "mmap-bandwidth"} <= set(ops)
    assert ops["first-touch-write"].metrics["latency"]["count"] == (4 << 20) // 4096
    assert all(r["bytes_per_s"] > 0 for r in ops["mmap-bandwidth"].metrics["rows"])
    if kind == "pagecache":
        assert ops["map-sync"].outcome == "EOPNOTSUPP"  # no DAX, no MAP_SYNC: the kernel's answer
        assert ops["pagecache-bypass"].outcome == "fallback"
    assert not list(tmp_path.glob("pmemkit-*.dat"))  # mappings clean up their files


@pytest.mark.parametrize("kind", ["anon", "pagecache"])
def test_odirect_experiment_on_host(kind, tmp_path):
    if not direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    obs = list(get("odirect")(_target(kind, tmp_path), {"profile": "quick"}))
    ops = {(o.operation, o.variant): o for o in obs}
    assert not [o.operation for o in obs if ":" in o.operation]  # variants are a field (schema 2)
    buffer = "anon" if kind == "anon" else "pagecache-mmap"
    for op in (
        (f"odirect-read-into-{buffer}", None),
        (f"odirect-write-from-{buffer}", None),
        (f"buffered-read-into-{buffer}", None),
        (f"odirect-read-into-{buffer}", "after-fork"),
        (f"odirect-read-into-{buffer}", "unfaulted"),
    ):
        assert ops[op].outcome == "ok", ops[op].to_dict()
    # O_DIRECT read into a read-only mapping must be refused: the kernel cannot write there
    assert ops[(f"odirect-read-into-{buffer}", "read-only")].outcome == "EFAULT"
    rows = ops[(f"odirect-latency-{buffer}", None)].metrics["rows"]
    assert {r["io_bytes"] for r in rows} == {512, 4096, 65536, 1 << 20}


@pytest.mark.parametrize("kind", ["anon", "pagecache"])
def test_kapi_experiment_on_host(kind, tmp_path):
    obs = {o.operation: o for o in get("kapi")(_target(kind, tmp_path), {"profile": "quick"})}
    assert set(obs) == {
        "futex-shared",
        "vmsplice",
        "iouring-fixed-buffer",
        "longterm-pin",
        "mremap",
        "madvise",
        "fork-cow",
    }
    for op in ("futex-shared", "vmsplice", "mremap", "madvise", "fork-cow"):
        assert obs[op].outcome == "ok", obs[op].to_dict()
    assert obs["futex-shared"].metrics["wake_latency"]["count"] == 16
    # io_uring and long-term pins depend on the host kernel's config; whatever it says is a valid outcome
    assert obs["iouring-fixed-buffer"].outcome in ("ok", "EOPNOTSUPP", "ENOSYS", "EPERM", "EFAULT")
    assert obs["longterm-pin"].outcome == "ok" or obs["longterm-pin"].outcome.startswith(("E", "skipped:"))


def test_shared_probes_on_the_host(tmp_path):
    from pmemkit.guest.syscalls import files_are_dax, meminfo_bytes

    assert files_are_dax(str(tmp_path)) is False  # the host's /tmp is no DAX filesystem
    assert list(tmp_path.iterdir()) == []  # the probe file is gone again
    values = meminfo_bytes("Cached", "Dirty", "MemTotal")
    assert set(values) == {"Cached", "Dirty", "MemTotal"} and values["MemTotal"] > 1 << 20


# --- One verdict, shared helpers, page-cache fallbacks, real repetitions ----------------------------

from pmemkit.guest.experiments import observation_provenance  # noqa: E402
from pmemkit.guest.transfer import pattern, region_offset, sha256_range, verdict, write_partner  # noqa: E402
from pmemkit.scenario import is_outcome  # noqa: E402


def test_verdict_calls_a_short_transfer_short_never_ok():
    assert verdict(4096, 4096, True) == ("ok", "4096 bytes; data verified")
    outcome, detail = verdict(512, 4096, True, "O_DIRECT preadv")
    assert outcome == "short" and detail == "O_DIRECT preadv; short transfer: 512 of 4096 bytes"
    assert verdict(0, 4096, False)[0] == "short"  # the missing bytes explain the mismatch
    outcome, detail = verdict(4096, 4096, False)
    assert outcome == "EIO" and "DATA MISMATCH" in detail and "not a kernel errno" in detail
    assert all(is_outcome(verdict(n, 8, same)[0]) for n in (0, 8) for same in (True, False))


def test_shared_helpers(tmp_path):
    target = _target("devdax", tmp_path)
    assert region_offset(target, 3, 2 << 20) == 6 << 20
    devmem = Target("devmem", "/dev/mem", "x", target.scenario, str(tmp_path), {}, {"phys_start": 1 << 30})
    assert region_offset(devmem, 1, 2 << 20) == (1 << 30) + (2 << 20)
    assert region_offset(_target("anon", tmp_path), 5, 2 << 20) == 0
    data = pattern(7, 3 << 20)
    assert (
        len(data) == 3 << 20
        and (pattern(7, 16) == data[:16]).all()
        and not (pattern(8, 16) == data[:16]).all()
    )
    path = write_partner(target, "unit", data)
    assert (
        path == str(tmp_path / "scratch" / "pmemkit-unit.dat") and open(path, "rb").read() == data.tobytes()
    )
    if direct_io_works(tmp_path / "scratch"):
        import hashlib

        whole, got = sha256_range(path, 3 << 20)
        assert got == 3 << 20 and whole == hashlib.sha256(data.tobytes()).hexdigest()
        assert sha256_range(path, 4 << 20)[1] == 3 << 20  # an early end of file is counted, not hidden


def test_observation_provenance_carries_real_repetitions():
    assert observation_provenance({"kernel": "6.1"}, 16) == {"kernel": "6.1", "repetitions": 16}
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError):
            observation_provenance({}, bad)


@pytest.mark.parametrize("kind", ["anon", "pagecache"])
def test_repetitions_follow_what_the_profile_did(kind, tmp_path):
    if not direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    buffer = "anon" if kind == "anon" else "pagecache-mmap"
    odirect = {o.shown(): o for o in get("odirect")(_target(kind, tmp_path), {"profile": "quick"})}
    from pmemkit.guest.experiments.odirect import PROFILES as ODIRECT_PROFILES

    assert odirect[f"odirect-latency-{buffer}"].provenance["repetitions"] == 256
    assert ODIRECT_PROFILES["quick"]["repetitions"] == 256
    assert odirect[f"odirect-read-into-{buffer}"].provenance["repetitions"] == 1
    kapi = {o.operation: o for o in get("kapi")(_target(kind, tmp_path), {"profile": "quick"})}
    assert kapi["futex-shared"].provenance["repetitions"] == 16
    mmap_obs = {o.operation: o for o in get("mmap")(_target(kind, tmp_path), {"profile": "quick"})}
    assert mmap_obs["first-touch-write"].provenance["repetitions"] == (4 << 20) // 4096
    from pmemkit.guest.experiments.mmap import PROFILES as MMAP_PROFILES

    assert mmap_obs["mmap-bandwidth"].provenance["repetitions"] == MMAP_PROFILES["quick"]["bw_passes"] == 9


def test_a_private_mapping_after_fork_is_verified_by_the_child(tmp_path):
    if not direct_io_works(tmp_path / "scratch" if (tmp_path / "scratch").exists() else tmp_path):
        pytest.skip("no O_DIRECT here")
    obs = {
        (o.operation, o.variant): o for o in get("odirect")(_target("anon", tmp_path), {"profile": "quick"})
    }
    fork = obs[("odirect-read-into-anon", "after-fork")]
    assert (
        fork.outcome == "ok" and "checked by the child" in fork.detail and fork.metrics["bytes"] == 64 << 10
    )


def _fs_target_without_dax(tmp_path):
    """A "DAX mount" whose files are not DAX: a filesystem that fell back to the page cache."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    mount = tmp_path / "mnt"
    mount.mkdir()
    scenario = Scenario(kernel=os.uname().release, source="nvdimm", mode="raw", fs="xfs")
    return Target(
        "fs", str(mount), "/dev/pmemX", scenario, str(scratch), {"accel": "host"}, {"profile": "quick"}
    )


def test_a_page_cache_fallback_keeps_operation_names_and_says_so(tmp_path):
    if not direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    target = _fs_target_without_dax(tmp_path)
    smoke = {o.operation: o for o in get("smoke")(target, {"profile": "quick"})}
    assert smoke["pagecache-bypass"].outcome == "fallback"
    for op in ("mmap-readwrite", "odirect-read-into-dax", "odirect-write-from-dax"):
        assert smoke[op].outcome == "ok" and smoke[op].metrics["mapping"] == "pagecache", smoke[op].to_dict()
        assert "fell back to the page cache" in smoke[op].detail
    odirect = {o.shown(): o for o in get("odirect")(target, {"profile": "quick"})}
    assert "odirect-read-into-dax" in odirect and "odirect-latency-dax" in odirect
    assert {o.metrics["mapping"] for o in odirect.values()} == {"pagecache"}
    assert odirect["odirect-write-dax-file"].outcome == "ok"
    assert "data verified" in odirect["odirect-write-dax-file"].detail
    kapi = {o.operation: o for o in get("kapi")(target, {"profile": "quick"})}
    assert {"futex-shared", "vmsplice", "iouring-fixed-buffer", "fork-cow"} <= set(kapi)
    assert {o.metrics["mapping"] for o in kapi.values()} == {"pagecache"}
    mmap_obs = {o.operation: o for o in get("mmap")(target, {"profile": "quick"})}
    assert {"first-touch-write", "map-sync", "pagecache-bypass"} <= set(mmap_obs)
    assert {o.metrics["mapping"] for o in mmap_obs.values()} == {"pagecache"}
    assert mmap_obs["map-sync"].outcome == "EOPNOTSUPP"  # the kernel's page-cache answer, compared as is
    every = [*smoke, *odirect, *kapi, *mmap_obs]
    assert not [op for op in every if "pagecache-mmap" in op], every


@pytest.mark.parametrize("kind", ["anon", "pagecache"])
def test_baselines_name_their_mapping(kind, tmp_path):
    if not direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    expected = "anon" if kind == "anon" else "pagecache"
    for name in ("odirect", "kapi", "mmap"):
        obs = list(get(name)(_target(kind, tmp_path), {"profile": "quick"}))
        assert {o.metrics["mapping"] for o in obs} == {expected}, name


# --- Short transfers are `short` everywhere; verification covers every byte moved -------------------


def _half_partner(real):
    """write_partner that writes only the first half: the kernel's read of the whole then comes up short."""

    def write(target, name, data):
        return real(target, name, data[: len(data) // 2])

    return write


def test_a_short_transfer_is_short_in_smoke_and_odirect_alike(tmp_path, monkeypatch):
    if not direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    from pmemkit.guest.experiments import odirect, smoke

    monkeypatch.setattr(smoke, "write_partner", _half_partner(smoke.write_partner))
    monkeypatch.setattr(odirect, "write_partner", _half_partner(odirect.write_partner))
    target = _fs_target_without_dax(tmp_path)
    read = {o.operation: o for o in get("smoke")(target, {})}["odirect-read-into-dax"]
    assert read.outcome == "short" and "short transfer: 524288 of 1048576 bytes" in read.detail
    with odirect.Mapping(target, "short", odirect.BUFFER_BYTES) as m:
        case = odirect._read_case(target, m, "odirect-read-into-dax", prefault=True)
    assert case.outcome == "short" and case.metrics["bytes"] == odirect.CASE_BYTES // 2


def test_a_short_write_to_the_dax_file_is_short_not_ok(tmp_path, monkeypatch):
    if not direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    from pmemkit.guest.experiments import odirect

    real = odirect.direct_write_from
    monkeypatch.setattr(odirect, "direct_write_from", lambda view, dst, n: real(view, dst, n // 2))
    obs = {o.operation: o for o in odirect._dax_file_cases(_fs_target_without_dax(tmp_path))}
    written = obs["odirect-write-dax-file"]
    assert written.outcome == "short" and written.metrics["bytes"] == odirect.CASE_BYTES // 2
    assert written.metrics["mapping"] == "pagecache"


def test_raid_roundtrip_compares_every_chunk_not_only_the_last(tmp_path, monkeypatch):
    """A chunk read back wrong anywhere in the range is a mismatch (the old check saw only the last MiB)."""
    if not direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    from pmemkit.guest.experiments import raid

    device = tmp_path / "device.img"
    device.write_bytes(bytes(4 << 20))
    clean = raid._odirect_roundtrip(str(device), 4 << 20, "raid-test")
    assert clean["verified"] is True
    assert clean["read"]["moved_bytes"] == clean["write"]["moved_bytes"] == 4 << 20
    real = os.preadv

    def corrupt_second_chunk(fd, buffers, offset):
        n = real(fd, buffers, offset)
        if offset == 1 << 20:
            buffers[0][0] ^= 0xFF
        return n

    monkeypatch.setattr(raid.os, "preadv", corrupt_second_chunk)
    assert raid._odirect_roundtrip(str(device), 4 << 20, "raid-test")["verified"] is False


def _same_branches(node):
    """An `a if c else b` or an `if` statement whose two branches are the same code."""
    if isinstance(node, ast.IfExp):
        return ast.dump(node.body) == ast.dump(node.orelse)
    if isinstance(node, ast.If) and node.orelse:
        return [ast.dump(n) for n in node.body] == [ast.dump(n) for n in node.orelse]
    return False


def test_no_condition_in_pmemkit_chooses_between_two_equal_answers():
    """`"ok" if n == CASE_BYTES else "ok"` was an outcome that could not fail; none may come back."""
    root = Path(__file__).resolve().parents[2] / "pmemkit"
    found = [
        f"{path.relative_to(root.parent)}:{node.lineno}"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if _same_branches(node)
    ]
    assert found == []
    assert _same_branches(ast.parse('"ok" if n == 4 else "ok"', mode="eval").body)  # the check can fail


@pytest.mark.parametrize("kind", ["anon", "pagecache"])
def test_latencies_go_through_the_one_timing_loop(kind, tmp_path):
    """Issue 15: every latency summary says it came from measure.timing.time_each, with its overhead."""
    if not direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    from pmemkit.guest.experiments.mmap import PROFILES as MMAP_PROFILES
    from pmemkit.guest.experiments.odirect import LARGE_IO, PROFILES

    quick = PROFILES["quick"]
    odirect = [
        o for o in get("odirect")(_target(kind, tmp_path), {"profile": "quick"}) if "latency" in o.operation
    ]
    rows = odirect[0].metrics["rows"]
    assert len(rows) == 2 * len(quick["sizes"])
    for row in rows:
        timing = row["latency"]["timing"]
        want = quick["large_repetitions"] if row["io_bytes"] >= LARGE_IO else quick["repetitions"]
        assert row["latency"]["count"] == want == timing["samples"]
        assert timing["loop"].endswith("time_each") and timing["warmup"] == quick["warmup"]
        assert timing["overhead_ns"] >= 0 and "ci" in row["latency"]
    mmap_obs = {o.operation: o for o in get("mmap")(_target(kind, tmp_path), {"profile": "quick"})}
    assert mmap_obs["first-touch-write"].metrics["latency"]["timing"]["samples"] == (4 << 20) // 4096
    bw = mmap_obs["mmap-bandwidth"].metrics["rows"]
    quick_mmap = MMAP_PROFILES["quick"]
    for r in bw:  # the ratio rows take bw_passes rounds; the labelled numpy.memmap rows memmap_passes
        want = quick_mmap["memmap_passes"] if "numpy.memmap" in r["view"] else quick_mmap["bw_passes"]
        assert r["timing"]["samples"] == want
    views = {r["view"] for r in bw}
    # the same plain ndarray view on every side; numpy.memmap only in its labelled rows, files only
    assert "ndarray over the mmap buffer (np.frombuffer)" in views
    assert ("numpy.memmap slices: what a numpy user gets" in views) == (kind == "pagecache")
    if kind == "anon":
        assert "thp_enabled" in mmap_obs["first-touch-write"].metrics


def test_a_file_mapping_is_a_plain_ndarray_unless_numpy_memmap_is_asked(tmp_path):
    import numpy as np

    from pmemkit.guest.mapping import Mapping

    target = _target("pagecache", tmp_path)
    with Mapping(target, "plain", 1 << 20) as m:
        assert type(m.array) is np.ndarray and m.array.flags.writeable
        m.array[:4096] = 7
        m.flush(0, 4096)
    with Mapping(target, "np", 1 << 20, numpy_memmap=True) as m:
        assert isinstance(m.array, np.memmap)


def test_provenance_records_thp_and_cpu_placement(tmp_path):
    from pmemkit.guest import provenance
    from pmemkit.guest.targets import RUN_PROVENANCE

    assert provenance.selected_word("always [madvise] never") == "madvise"
    assert provenance.selected_word("[always] defer madvise never\n") == "always"
    (tmp_path / "enabled").write_text("always madvise [never]\n")
    assert provenance.thp_mode(tmp_path) == {"enabled": "never", "defrag": None}  # no defrag file
    cpus = provenance.cpu_placement()
    assert cpus["vcpus"] >= 1 and set(cpus["affinity"]) <= set(range(cpus["vcpus"] * 64))
    assert "thp" in RUN_PROVENANCE and "cpus" in RUN_PROVENANCE
    env = provenance.collect("tcg", "0.0")
    assert env["thp"].keys() == {"enabled", "defrag", "policy", "set_by_pmemkit", "why"}
    assert env["thp"]["set_by_pmemkit"] is False  # not pmemkit's VM: the host's THP is left alone
    assert env["cpus"]["vcpus"] == cpus["vcpus"]


def test_fio_check_runs_interleaved_on_the_same_offsets(tmp_path, monkeypatch):
    """Issue 15: fio and pmemkit alternate for R rounds over fio's own offsets, same I/O count."""
    import shutil

    if shutil.which("fio") is None or not direct_io_works(tmp_path):
        pytest.skip("fio or O_DIRECT missing on this host")
    from pmemkit.guest import prtime
    from pmemkit.guest.experiments import fiocheck

    # without the timing helper (its own test: tests/unit/test_prtime.py), the tracepoint fallback
    monkeypatch.setattr(prtime, "find_helper", lambda **_: (None, "no helper in this test"))
    assert fiocheck.PROFILES["quick"]["rounds"] == 2 and fiocheck.PROFILES["quick"]["ios"] == 1024
    quick = {**fiocheck.PROFILES["quick"], "ios": 128, "file_bytes": 4 << 20}  # the quick shape, fewer I/Os
    monkeypatch.setitem(fiocheck.PROFILES, "quick", quick)
    obs = {o.operation: o for o in get("fio")(_target("pagecache", tmp_path), {"profile": "quick"})}
    rand = obs["fio-odirect-randread"]
    assert rand.outcome == "ok", rand.detail
    assert rand.metrics["mapping"] == "pagecache"  # what the memory was, as every experiment says
    parity = rand.metrics["parity"]
    assert parity["rounds"] == quick["rounds"] and parity["same_offsets"] is True
    assert (
        rand.metrics["fio_clat"]["count"]
        == rand.metrics["pmemkit_caller"]["count"]
        == quick["ios"] * quick["rounds"]
    )
    p50 = parity["p50"]
    assert p50["lo"] <= p50["ratio"] <= p50["hi"] and len(p50["per_round"]) == quick["rounds"]
    # two rounds: a bootstrap CI over the pooled I/Os, but no verdict (that needs >= 3 rounds)
    assert p50["agrees"] is None and "rounds_ci" not in p50 and "no verdict" in rand.detail
    assert "fio_null_p50_ns" not in rand.metrics  # quick leaves fio's null engine out
    # outside pmemkit's VM tracefs is never touched: the comparison says it is caller-side
    assert parity["pmemkit_latency"].startswith("caller-side") and "own latency unavailable" in rand.detail
    seq = obs["fio-mmap-seqread"]  # quick: one mmap round, so a ratio but no CI
    assert seq.outcome == "ok" and len(seq.metrics["per_round_ratio"]) == quick["seq_rounds"] == 1
    assert seq.metrics["bw_ratio_ci"] is None and "a CI over rounds needs 3" in seq.detail
    assert seq.metrics["fio"]["fio_version"].startswith("fio-3") and seq.metrics["fio"]["bw_bytes"] > 0


def test_fio_check_says_when_one_mmap_round_gives_no_ci(tmp_path, monkeypatch):
    import shutil

    if shutil.which("fio") is None:
        pytest.skip("fio missing on this host")
    from pmemkit.guest.experiments import fiocheck

    one = {"file_bytes": 4 << 20, "ios": 8, "rounds": 1, "loops": 1, "seq_rounds": 1, "null": 0}
    seq = fiocheck._seqread(_target("pagecache", tmp_path), _fio_file(tmp_path, 4 << 20), one)
    assert seq.outcome == "ok" and len(seq.metrics["per_round_ratio"]) == 1
    assert seq.metrics["bw_ratio_ci"] is None and "a CI over rounds needs 3" in seq.detail


def _fio_file(tmp_path, size):
    from pmemkit.guest.experiments.fiocheck import _make_file

    path = tmp_path / "pmemkit-fio.dat"
    _make_file(str(path), size)
    return str(path)


def test_fio_check_gives_a_verdict_from_three_rounds(tmp_path, monkeypatch):
    import shutil

    if shutil.which("fio") is None or shutil.which("gcc") is None or not direct_io_works(tmp_path):
        pytest.skip("fio, gcc (the timing helper) or O_DIRECT missing on this host")
    from pmemkit.guest.experiments import fiocheck

    small = {"file_bytes": 4 << 20, "ios": 64, "rounds": 3, "loops": 1, "seq_rounds": 3, "null": 1}
    monkeypatch.setitem(fiocheck.PROFILES, "quick", small)
    obs = {o.operation: o for o in get("fio")(_target("pagecache", tmp_path), {"profile": "quick"})}
    p50 = obs["fio-odirect-randread"].metrics["parity"]["p50"]
    over_rounds = p50["rounds_ci"]  # the verdict's CI includes the spread between rounds
    assert p50["lo"] <= over_rounds["lo"] and over_rounds["hi"] <= p50["hi"]
    assert p50["agrees"] == (0.9 <= p50["lo"] and p50["hi"] <= 1.1)
    rand = obs["fio-odirect-randread"]
    assert rand.metrics["fio_null_p50_ns"] > 0 and rand.metrics["fio_null_clat"]["count"] == 3 * 64
    net = rand.metrics["parity"].get("net_p50")  # null engine in every round: a CI over the 3 rounds
    assert rand.metrics["pmemkit_own"] is not None, rand.detail  # the helper (gcc) or the tracepoints
    assert net is not None and net["rounds"] == 3 and net["lo"] <= net["ratio"] <= net["hi"]
    assert "net of fio's own per-I/O cost" in rand.detail
    speed = rand.metrics["parity"]["speed"]  # the machine's speed around both sides of every round
    assert len(speed["per_round_ns"]) == 3 and len(speed["own_over_fio_per_round"]) == 3
    for entry, ratio in zip(speed["per_round_ns"], speed["own_over_fio_per_round"], strict=True):
        assert len(entry["fio"]) == 2 and len(entry["own"]) == 2 and min(entry["fio"] + entry["own"]) > 0
        assert ratio == pytest.approx(sum(entry["own"]) / sum(entry["fio"]))
    assert len(speed["matched_rounds_p50_ratios"]) == len(speed["matched_rounds"])
    ci = obs["fio-mmap-seqread"].metrics["bw_ratio_ci"]
    assert ci["rounds"] == 3 and ci["lo"] <= ci["ratio"] <= ci["hi"]
