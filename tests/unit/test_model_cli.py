"""The `model` click group: outputs, JSON fields, and the one-line exit-2 error contract."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pmemkit.model_cli import model

PREDICT = [
    "predict",
    "--kernel",
    "6.1",
    "--pmem",
    "nvdimm",
    "--mode",
    "raw",
    "--fs",
    "ext4",
    "--op",
    "dax-mount",
]


def run(args: list[str]):
    return CliRunner().invoke(model, args, prog_name="pmemkit model")


def test_predict_json_fields() -> None:
    result = run([*PREDICT, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("outcome", "struct_page", "memmap_location", "rule", "sources", "kernel_range"):
        assert key in data
    assert data["outcome"] == "EINVAL"
    assert data["struct_page"] is False
    assert isinstance(data["sources"], list) and data["sources"]
    assert data["status"] == "V"


def test_predict_text() -> None:
    result = run(PREDICT)
    assert result.exit_code == 0
    assert result.stdout.startswith("EINVAL")
    assert "mount-ext4-refused" in result.stdout


def test_explain_walks_to_the_seed() -> None:
    args = [
        "explain",
        "--kernel",
        "4.15",
        "--pmem",
        "nvdimm",
        "--mode",
        "fsdax",
        "--map",
        "mem",
        "--op",
        "longterm-pin",
    ]
    result = run(args)
    assert result.exit_code == 0
    assert "EOPNOTSUPP" in result.stdout
    assert "longterm-fsdax-gup-longterm" in result.stdout
    assert "visible to user-space via the MMU" in result.stdout
    data = json.loads(run([*args, "--json"]).stdout)
    assert [s["question"] for s in data["steps"]] == [
        "exists in this kernel",
        "struct page",
        "mapping",
        "longterm-pin",
    ]


@pytest.mark.parametrize("fmt", [[], ["--markdown"], ["--json"]])
def test_table_formats(fmt: list[str]) -> None:
    result = run(["table", "--kernel", "6.12", *fmt])
    assert result.exit_code == 0
    if fmt == ["--json"]:
        data = json.loads(result.stdout)
        assert len(data["columns"]) == 8
        assert set(data["operations"]) >= {"dax-mount", "longterm-pin"}
    elif fmt == ["--markdown"]:
        assert "| dax-mount |" in result.stdout
    else:
        assert "memmap lives in" in result.stdout and "|" not in result.stdout


def test_size_json() -> None:
    result = run(
        [
            "size",
            "--kernel",
            "6.1.150",
            "--mode",
            "fsdax",
            "--map",
            "dev",
            "--size",
            "16GiB",
            "--align",
            "2MiB",
            "--json",
        ]
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    for key in ("memmap_bytes", "memmap_location", "data_offset_bytes", "usable_bytes", "dram_bytes"):
        assert key in data
    assert data["data_offset_bytes"] == 258 << 20
    assert data["usable_bytes"] + data["data_offset_bytes"] == 16 << 30
    assert data["memmap_location"] == "pmem"


def test_size_text_accepts_plain_bytes() -> None:
    result = run(["size", "--kernel", "6.1.5", "--mode", "fsdax", "--map", "dev", "--size", "1073741824"])
    assert result.exit_code == 0
    assert "data offset: 34 MiB" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--kernel", "3.19", "--pmem", "nvdimm", "--mode", "raw", "--op", "dax-mount"],
        ["predict", "--kernel", "six", "--pmem", "nvdimm", "--mode", "raw", "--op", "dax-mount"],
        ["predict", "--kernel", "6.1", "--pmem", "nvdimm", "--mode", "frob", "--op", "dax-mount"],
        ["predict", "--kernel", "6.1", "--pmem", "nvdimm", "--mode", "raw", "--op", "frob"],
        ["predict", "--kernel", "6.1", "--pmem", "tape", "--mode", "raw", "--op", "dax-mount"],
        [
            "predict",
            "--kernel",
            "6.1",
            "--pmem",
            "nvdimm",
            "--mode",
            "raw",
            "--map",
            "mem",
            "--op",
            "dax-mount",
        ],
        [
            "predict",
            "--kernel",
            "6.1",
            "--pmem",
            "nvdimm",
            "--mode",
            "raw",
            "--align",
            "3M",
            "--op",
            "dax-mount",
        ],
        ["predict", "--kernel", "6.1", "--pmem", "nvdimm", "--mode", "raw"],
        ["predict", "--no-such-flag"],
        [
            "explain",
            "--kernel",
            "6.1",
            "--pmem",
            "nvdimm",
            "--mode",
            "sector",
            "--force-raw",
            "--op",
            "dax-mount",
        ],
        ["table", "--kernel", "2.6"],
        ["table", "--kernel", "6.1", "--json", "--markdown"],
        ["table", "--kernel", "6.1", "--fs", "btrfs"],
        ["size", "--kernel", "6.1", "--mode", "fsdax", "--size", "3M"],
        ["size", "--kernel", "6.1", "--mode", "fsdax", "--size", "lots"],
        ["size", "--kernel", "6.1", "--mode", "raw", "--map", "dev", "--size", "1G"],
        ["size", "--kernel", "6.1", "--mode", "fsdax", "--size", "1G", "--align", "1M3"],
        ["frobnicate"],
    ],
)
def test_errors_are_one_line_exit_2(args: list[str]) -> None:
    result = run(args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pmemkit: error: ")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["predict", "explain", "table", "size"])
def test_help_teaches(command: str) -> None:
    result = run([command, "--help"])
    assert result.exit_code == 0
    assert "--kernel" in result.stdout
    assert "6.1.0-50-amd64" in result.stdout
