"""Property: whatever text a user types, the CLI answers with a result or one line and exit 2.

Fixed seed (derandomize) and a few hundred examples, so `make test` stays fast; the full
four-command fuzz is scripts/fuzz-cli.py.
"""

import dataclasses
from pathlib import Path
from unittest import mock

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import pmemkit.pipeline as pipeline
import pmemkit.vm.layout as layout_mod
from pmemkit import units
from pmemkit.cli import main
from pmemkit.vm.layout import GiB, HostLimits

HOST = HostLimits(23 * GiB, Path("/nonexistent/scratch"), 78 * GiB, False, None, 40, True)
FUZZ = settings(derandomize=True, max_examples=300, deadline=None, database=None)
UNICODE_DIGITS = st.sampled_from(["５", "٦", "६", "𝟔", "١", "²"])


class Booted(Exception):
    pass


def _stub(options, progress=None):
    raise Booted()


def _run(*args):
    with (
        mock.patch.object(pipeline, "run", _stub),
        mock.patch.object(layout_mod, "read_host", lambda scratch, accel: dataclasses.replace(HOST)),
        mock.patch.object(layout_mod, "probe_file_size", lambda directory, size: None),
    ):
        return CliRunner().invoke(main, ["run", *args])


def _accepted_or_one_line(result):
    if isinstance(result.exception, Booted):
        return True
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("pmemkit: error: "), (
        result.stderr
    )
    return False


@FUZZ
@given(
    option=st.sampled_from(["--pmem", "--timeout", "--memory", "--suite", "--fs"]), value=st.text(max_size=80)
)
def test_any_run_value_is_accepted_or_refused_in_one_line(option, value):
    _accepted_or_one_line(_run(option, value))


@FUZZ
@given(
    value=st.one_of(
        st.builds(lambda d, u: f"memmap:{d}12{u}", UNICODE_DIGITS, st.sampled_from(["", "M", "G"])),
        st.builds(lambda n: "nvdimm:" + "9" * n + "M", st.integers(17, 6000)),
        st.builds(lambda k: f"nvdimm:1G,{k}=raw,{k}=fsdax", st.sampled_from(["mode", "map"])),
        st.builds(lambda s: f"{s}:512M,mode=", st.sampled_from(["memmap", "nvdimm", "virtio-pmem"])),
        st.builds(lambda s: f"memmap:{s}@", st.sampled_from(["512M", "1G"])),
    )
)
def test_hostile_pmem_specs_refused(value):
    assert not _accepted_or_one_line(_run("--pmem", value))


@FUZZ
@given(value=st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e3", ""]), UNICODE_DIGITS))
def test_non_finite_or_non_ascii_timeouts_refused(value):
    assert not _accepted_or_one_line(_run("--timeout", value))


@FUZZ
@given(value=st.from_regex(r"[ ,]*", fullmatch=True))
def test_empty_lists_refused(value):
    assert not _accepted_or_one_line(_run("--suite", value))
    assert not _accepted_or_one_line(_run("--fs", value))


@FUZZ
@given(text=st.text(max_size=100))
def test_parse_size_returns_a_bounded_int_or_input_error(text):
    try:
        value = units.parse_size(text)
    except units.InputError:
        return
    assert 0 <= value <= units.MAX_SIZE and text.isascii()


@FUZZ
@given(size=st.text(max_size=80))
def test_model_size_reads_sizes_with_the_one_reader(size):
    """Holds for `model size --size` today (the kernel reader belongs to the model's own parser)."""
    result = CliRunner().invoke(main, ["model", "size", "--kernel", "6.1", "--mode", "fsdax", "--size", size])
    if result.exit_code != 0:
        _accepted_or_one_line(result)
