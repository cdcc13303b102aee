"""The experiments' own code on the host's kernel, on the targets that need no pmem.

Anonymous memory and a page-cache file exist everywhere, so the mmap and O_DIRECT experiments run
here for real (quick profile): every operation yields an observation with a valid outcome and
verified data. The DAX targets are covered by tests/vm.
"""

import os

import pytest

from pmemkit.guest.experiments import Target, get, load_all, runs_on
from pmemkit.scenario import Scenario


def _target(kind, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    scenario = Scenario(kernel=os.uname().release, source="baseline", mode=kind)
    return Target(kind, str(tmp_path), kind, scenario, str(scratch), {"accel": "host"}, {"profile": "quick"})


def _direct_io_works(path):
    try:
        fd = os.open(path / "probe", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    return True


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
    if not _direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not support O_DIRECT on this host")
    obs = list(get("odirect")(_target(kind, tmp_path), {"profile": "quick"}))
    ops = {o.operation: o for o in obs}
    buffer = "anon" if kind == "anon" else "pagecache-mmap"
    for op in (
        f"odirect-read-into-{buffer}",
        f"odirect-write-from-{buffer}",
        f"buffered-read-into-{buffer}",
        f"odirect-read-into-{buffer}:after-fork",
        f"odirect-read-into-{buffer}:unfaulted",
    ):
        assert ops[op].outcome == "ok", ops[op].to_dict()
    # O_DIRECT read into a read-only mapping must be refused: the kernel cannot write there
    assert ops[f"odirect-read-into-{buffer}:read-only"].outcome == "EFAULT"
    rows = ops[f"odirect-latency-{buffer}"].metrics["rows"]
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
