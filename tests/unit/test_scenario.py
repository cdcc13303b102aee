import json

import pytest

from pmemkit import units
from pmemkit.scenario import (
    SCHEMA_VERSION,
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


# --- the one reader of sizes and numbers (issue 8, finding 9) ----------------------------------


@pytest.mark.parametrize("text", ["５１２M", "٦١", "𝟔𝟏G", "६१", "1２", "²", "\u200b1"])
def test_parse_size_refuses_non_ascii_digits(text):
    with pytest.raises(ScenarioError, match="cannot read size"):
        parse_size(text)


@pytest.mark.parametrize(
    "text", ["9" * 400, "9" * 5000, "16777216T", "18446744073709551616", "2P", "99999999999999999"]
)
def test_parse_size_is_bounded(text):
    with pytest.raises(ScenarioError, match="too (large|long)"):
        parse_size(text)


def test_parse_size_limits_and_units():
    assert parse_size("1P") == units.MAX_SIZE and parse_size("1024T") == 1 << 50
    assert parse_size("512B") == 512 and parse_size("1KiB") == 1024 and parse_size(" 2 MB ") == 2 << 20
    with pytest.raises(ScenarioError, match="minimum"):
        parse_size("512K", "--memory", minimum=1 << 20)
    for bad in ("512i", "1e3", "0x10", "1_000", "+1", "1.0G", "nan", True, -1, 1 << 51):
        with pytest.raises(ScenarioError):
            parse_size(bad)
    assert format_size(1 << 50) == "1P" and parse_size(format_size(3 << 40)) == 3 << 40


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("memmap:2G@", "no START"),
        ("memmap:@1G", "no SIZE"),
        ("nvdimm:1G,mode=", "has no value"),
        ("nvdimm:1G,mode=raw,mode=fsdax", "given twice"),
        ("nvdimm:1G,mode=fsdax,map=mem,map=dev", "given twice"),
        ("nvdimm:1G,", "cannot read option"),
        ("memmap:５１２M", "cannot read SIZE"),
        ("nvdimm:16777216T", "too large"),
        ("memmap:512M@" + "9" * 400, "too long"),
    ],
)
def test_pmem_spec_refuses_empty_repeated_and_unbounded(spec, needle):
    with pytest.raises(ScenarioError, match=needle):
        PmemConfig.parse(spec)


@pytest.mark.parametrize(
    "text", ["nan", "NaN", "inf", "-inf", "-1", "0", "0.0", "1e3", "６１", "", " ", "604801"]
)
def test_parse_seconds_refuses_non_finite_and_out_of_range(text):
    with pytest.raises(units.InputError):
        units.parse_seconds(text)


def test_parse_seconds_reads_plain_decimals():
    assert units.parse_seconds("600") == 600.0 and units.parse_seconds("2.5") == 2.5
    with pytest.raises(units.InputError):
        units.parse_seconds(float("nan"))


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "empty"),
        (",", "empty"),
        (" , ", "empty"),
        ("a,,b", "empty entry"),
        ("a,a", "twice"),
        ("a,-b", "unknown"),
        ("a\nb", "unknown"),
    ],
)
def test_parse_list_refuses_empty_and_repeated(text, needle):
    with pytest.raises(units.InputError, match=needle):
        units.parse_list(text, "--suite")


def test_parse_list_and_int():
    assert units.parse_list(" ext4 , xfs", "--fs", ("ext4", "xfs")) == ["ext4", "xfs"]
    with pytest.raises(units.InputError, match="unknown --fs entry 'btrfs'"):
        units.parse_list("btrfs", "--fs", ("ext4", "xfs"))
    assert units.parse_int("0150", "patch", maximum=10_000) == 150
    for bad in ("٦", "-1", "1" * 5000, "10001", "", "1.0"):
        with pytest.raises(units.InputError):
            units.parse_int(bad, "patch", maximum=10_000)


def test_every_scenario_error_is_an_input_error():
    assert issubclass(ScenarioError, units.InputError) and issubclass(units.InputError, ValueError)


def test_schema_1_variants_are_split_into_the_variant_field_on_reading():
    """Schema 1 wrote `op:variant`; reading converts it once, so old runs re-render (issue 9)."""
    sc = Scenario(kernel="6.1.0-56-amd64", source="nvdimm", mode="fsdax", map="mem", fs="ext4")
    old = Observation("odirect", "x", "ok", sc).to_dict() | {"schema": 1}
    read = Observation.from_dict(old | {"operation": "odirect-read-into-dax:read-only", "outcome": "EFAULT"})
    assert (read.operation, read.variant, read.schema) == (
        "odirect-read-into-dax",
        "read-only",
        SCHEMA_VERSION,
    )
    plain = Observation.from_dict(old | {"operation": "odirect-read-into-dax"})
    assert (plain.operation, plain.variant) == ("odirect-read-into-dax", None)
    assert read.shown() == "odirect-read-into-dax:read-only" and plain.shown() == "odirect-read-into-dax"
    new = Observation("odirect", "odirect-read-into-dax", "ok", sc, variant="after-fork")
    assert SCHEMA_VERSION == 2 and Observation.from_dict(json.loads(new.to_json())) == new
    with pytest.raises(ScenarioError, match="observation schema 3 is not 2"):
        Observation.from_dict(new.to_dict() | {"schema": 3})
