"""The CLI's contract: bad input gives one line `pmemkit: error: …` and a non-zero exit, no traceback."""

from click.testing import CliRunner

from pmemkit.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_help_teaches():
    result = invoke("--help")
    assert result.exit_code == 0 and "struct page" in result.output
    run_help = invoke("run", "--help").output
    assert "memmap:SIZE[@START]" in run_help and "--accel" in run_help


def _one_line_error(result, code, needle):
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("pmemkit: error:") and needle in lines[-1]
    assert "Traceback" not in result.output


def test_bad_pmem_spec():
    _one_line_error(invoke("run", "--pmem", "floppy:1G"), 2, "unknown pmem source")


def test_memmap_that_does_not_fit():
    _one_line_error(invoke("run", "--pmem", "memmap:3G@1G", "--accel", "tcg"), 2, "above the 3G")


def test_unknown_suite():
    _one_line_error(invoke("run", "--suite", "nosuch"), 2, "unknown suite")


def test_unknown_fs():
    _one_line_error(invoke("run", "--fs", "btrfs"), 2, "unknown --fs entry")


def test_bad_memory_size():
    _one_line_error(invoke("run", "--memory", "lots"), 2, "cannot read --memory")


def test_prepare_outside_vm_refuses(tmp_path):
    _one_line_error(invoke("prepare", "/dev/sda"), 7, "refused /dev/sda")


def test_missing_qemu(monkeypatch):
    import pmemkit.vm.run as run_mod

    monkeypatch.setattr(run_mod.shutil, "which", lambda name: None)
    _one_line_error(invoke("run", "--accel", "tcg"), 4, "qemu-system-x86_64 is not installed")


# --- one error contract for every command; every run input checked first (issue 8 f9, issue 9 i5) ---

import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pmemkit.vm.layout import GiB, HostLimits  # noqa: E402

HOST_24G = HostLimits(23 * GiB, Path("/cache/scratch"), 78 * GiB, False, None, 40, True)


class Booted(Exception):
    """The stubbed VM entry point was reached: validation passed."""


@pytest.fixture
def no_vm(monkeypatch, tmp_path):
    """Replace the VM entry point and the host's figures: nothing boots, results do not depend on the host."""
    import pmemkit.pipeline as pipeline
    import pmemkit.vm.layout as layout_mod

    seen = []

    def stub(options, progress=None):
        seen.append(options)
        raise Booted()

    monkeypatch.setattr(pipeline, "run", stub)
    monkeypatch.setattr(layout_mod, "read_host", lambda scratch, accel: dataclasses.replace(HOST_24G))
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    return seen


def _one_line_exit_2(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("pmemkit: error: "), result.stderr
    assert "Usage:" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--bogus"],
        ["--bogus"],
        ["nosuch"],
        ["run", "--accel", "foo"],
        ["run", "--pmem"],
        ["prepare"],
        ["image", "--bogus"],
        ["report", "/nonexistent/run"],
        ["report", "/tmp/a\x00b"],
        ["model", "predict", "--bogus"],
        ["model", "nosuch"],
    ],
)
def test_usage_errors_are_one_line_exit_2(argv):
    _one_line_exit_2(invoke(*argv))


def test_usage_error_names_the_help_to_read():
    assert "try `pmemkit run --help`" in invoke("run", "--bogus").stderr
    assert invoke("run", "--help").exit_code == 0 and "--pmem" in invoke("run", "--help").output


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--timeout", "nan"], "--timeout 'nan'"),
        (["--timeout", "inf"], "--timeout 'inf'"),
        (["--timeout", "-5"], "--timeout"),
        (["--timeout", "６１"], "--timeout"),
        (["--suite", ""], "--suite '' is empty"),
        (["--suite", ","], "is empty"),
        (["--fs", ""], "--fs '' is empty"),
        (["--fs", "ext4,ext4"], "twice"),
        (["--pmem", "memmap:2G@"], "no START"),
        (["--pmem", "nvdimm:1G,mode=raw,mode=fsdax"], "given twice"),
        (["--pmem", "nvdimm:1G,mode="], "no value"),
        (["--pmem", "memmap:５１２M"], "cannot read SIZE"),
        (["--pmem", "nvdimm:16777216T"], "too large"),
        (["--pmem", "nvdimm:1T"], "40 phys-bits"),
        (["--pmem", "virtio-pmem:1T"], "40 phys-bits"),
        (["--pmem", "nvdimm:16T"], "40 phys-bits"),
        (["--memory", "1T"], "MemAvailable"),
        (["--memory", "９G"], "cannot read --memory"),
        (["--pmem", "nvdimm:60G", "--pmem", "virtio-pmem:60G"], "free"),
    ],
)
def test_run_refuses_before_anything_starts(no_vm, argv, needle):
    result = invoke("run", *argv)
    _one_line_exit_2(result)
    assert needle in result.stderr and no_vm == []


def test_valid_run_reaches_the_vm_with_parsed_values(no_vm):
    result = invoke(
        "run",
        "--pmem",
        "nvdimm:512M",
        "--suite",
        "smoke",
        "--fs",
        "xfs",
        "--timeout",
        "2.5",
        "--memory",
        "3G",
    )
    assert isinstance(result.exception, Booted), result.output
    (options,) = no_vm
    assert options.timeout_s == 2.5 and options.memory == 3 * GiB and options.filesystems == ["xfs"]


@pytest.mark.parametrize(
    "argv",
    [
        ["model", "size", "--kernel", "6.1", "--mode", "fsdax", "--size", "9" * 400],
        ["model", "size", "--kernel", "6.1", "--mode", "fsdax", "--size", "1G", "--align", "9" * 5000],
        ["model", "size", "--kernel", "6.1", "--mode", "fsdax", "--size", "５１２M"],
        [
            "model",
            "predict",
            "--kernel",
            "6.1",
            "--pmem",
            "nvdimm",
            "--mode",
            "fsdax",
            "--op",
            "dax-mount",
            "--align",
            "9" * 5000,
        ],
    ],
)
def test_model_sizes_use_the_one_reader(argv):
    _one_line_exit_2(invoke(*argv))
