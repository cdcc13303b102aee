import json

import pytest

from pmemkit.scenario import (
    Observation,
    PmemConfig,
    Scenario,
    ScenarioError,
    format_size,
    is_outcome,
    parse_size,
)


@pytest.mark.parametrize(
    "text,expected",
    [("512M", 512 << 20), ("1G", 1 << 30), ("16GiB", 16 << 30), ("4096", 4096), ("2MB", 2 << 20), (7, 7)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1.5G", "-1", "12X"])
def test_parse_size_rejects(text):
    with pytest.raises(ScenarioError):
        parse_size(text)


def test_format_size_round_trips():
    for n in (512 << 20, 1 << 30, 3 << 30, 4096, 1000):
        assert parse_size(format_size(n)) == n


def test_pmem_spec_defaults_and_round_trip():
    cfg = PmemConfig.parse("nvdimm:1G")
    assert (cfg.source, cfg.size, cfg.mode, cfg.map) == ("nvdimm", 1 << 30, "fsdax", "mem")
    for spec in [
        "memmap:512M",
        "memmap:512M@1G",
        "nvdimm:512M,mode=raw",
        "nvdimm:1G,mode=devdax,map=dev",
        "virtio-pmem:256M",
    ]:
        assert PmemConfig.parse(PmemConfig.parse(spec).spec()) == PmemConfig.parse(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "memmap",
        "memmap:",
        "floppy:1G",
        "nvdimm:1G,mode=weird",
        "nvdimm:1G,map=dev,mode=raw",
        "memmap:512M,mode=fsdax",
        "virtio-pmem:1G@1G",
        "nvdimm:1G,colour=red",
        "memmap:0",
    ],
)
def test_pmem_spec_rejects(spec):
    with pytest.raises(ScenarioError):
        PmemConfig.parse(spec)


def test_outcome_names():
    for ok in ["ok", "fallback", "n/a", "EINVAL", "EOPNOTSUPP", "skipped:no-device"]:
        assert is_outcome(ok)
    for bad in ["", "22", "einval", "skipped:", "maybe"]:
        assert not is_outcome(bad)


def test_observation_json_round_trip_and_schema_check():
    sc = Scenario(kernel="6.1.0-56-amd64", source="nvdimm", mode="fsdax", map="dev", fs="xfs")
    obs = Observation("smoke", "odirect-read-into-dax", "ok", sc, "/dev/pmem0", metrics={"bytes": 1})
    again = Observation.from_dict(json.loads(obs.to_json()))
    assert again == obs
    data = obs.to_dict() | {"schema": 999}
    with pytest.raises(ScenarioError):
        Observation.from_dict(data)
    with pytest.raises(ScenarioError):
        Observation("smoke", "x", "not-an-outcome", sc)
