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
