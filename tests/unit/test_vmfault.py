"""Issue 12 Why #5: dax_pmd_fault_done results named per kernel version, raw values kept."""

from __future__ import annotations

from pmemkit.guest import vmfault
from pmemkit.guest.tracefs import TraceEvent

K61 = "6.1.0-57-amd64"
K612 = "6.12.118-amd64"
#: Recorded in pmemkit's guest (6.1.0-57-amd64, TCG, 1 vCPU, memmap:256M ext4 -o dax=always) with
#: `pmemkit exec --pmem memmap:256M --fs ext4 --copy-in pmdtrace.py -- python3 pmdtrace.py`: a 2 MiB
#: file (max_pgoff 0x200) mapped shared (NOPAGE) and private with a write (FALLBACK).
NOPAGE = (
    "         python3-145     [000] .....    19.975087: dax_pmd_fault_done: dev 259:0 ino 0xc shared "
    "WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE address 0x7f52fa800000 vm_start 0x7f52fa800000 "
    "vm_end 0x7f52faa00000 pgoff 0x0 max_pgoff 0x200 NOPAGE"
)
FALLBACK = (
    "         python3-148     [000] .....    20.018034: dax_pmd_fault_done: dev 259:0 ino 0xc private "
    "WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE address 0x7f52fa801000 vm_start 0x7f52fa800000 "
    "vm_end 0x7f52faa00000 pgoff 0x1 max_pgoff 0x200 FALLBACK"
)
#: Not recorded (the race needs two CPUs faulting one mm): the recorded line as the kernel prints it
#: for a result of 0 — "... max_pgoff %#lx %s" with an empty %s (include/trace/events/fs_dax.h 6.1).
ZERO_RESULT = NOPAGE.removesuffix("NOPAGE")
HEAD = NOPAGE.removesuffix(" NOPAGE")


def test_a_line_ending_in_0x200_is_a_zero_result_not_a_result_named_0x200():
    result, max_pgoff = vmfault.parse_line(ZERO_RESULT, K61)
    assert max_pgoff == 0x200 and result.value == 0 and result.key == "0"
    # what the old parser did with the same line: it took max_pgoff for the result
    old = TraceEvent.__new__(TraceEvent)
    old.lines = [ZERO_RESULT]
    assert dict(old.results()) == {"0x200": 1}


def test_counts_keep_names_and_the_printed_forms():
    summary = vmfault.summarize_lines([NOPAGE, NOPAGE, FALLBACK, ZERO_RESULT], K61)
    assert summary["counts"] == {"NOPAGE": 2, "FALLBACK": 1, "0": 1}
    assert summary["printed"] == {"NOPAGE": 2, "FALLBACK": 1, "(empty: result 0)": 1}
    assert summary["raw_lines"][3].endswith("max_pgoff 0x200")
    assert "6.1" in summary["vm_fault_names_from"]


def test_a_raw_0x200_result_is_named_locked_on_6_1():
    """A result printed as hex (a tracepoint table without the bit) is named from the enum."""
    result = vmfault.decode("0x200", K61)
    assert result.names == ("LOCKED",) and result.decoded_here == ("LOCKED",)
    line = HEAD.replace("max_pgoff 0x200", "max_pgoff 0x400") + " NOPAGE|0x4000"
    parsed, max_pgoff = vmfault.parse_line(line, K61)
    assert max_pgoff == 0x400 and parsed.key == "NOPAGE|COMPLETED" and parsed.decoded_here == ("COMPLETED",)


def test_bits_follow_the_kernel_version():
    assert vmfault.decode("0x8", K61).names == ("WRITE",)
    assert vmfault.decode("0x8", K612).names == ("0x8",)  # VM_FAULT_WRITE is gone in 6.12
    assert vmfault.decode("0x4000", "5.10.0-30-amd64").names == ("0x4000",)  # no COMPLETED in 5.10
    assert vmfault.decode("0x30100", K61).names == ("NOPAGE", "HINDEX=3")
    assert vmfault.decode("NOPAGE|SOMETHING_NEW", K61).key == "SOMETHING_NEW"


def test_lines_of_other_events_are_not_counted():
    other = (
        "python3-231 [000] 1.0: dax_pmd_fault: dev 259:2 ino 0xc shared WRITE address 0x1 max_pgoff 0x200 "
    )
    summary = vmfault.summarize_lines([other, NOPAGE], K61)
    assert summary["counts"] == {"NOPAGE": 1} and summary["unparsed_lines"] == 1
