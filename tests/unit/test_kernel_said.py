"""The report's "kernel said" column quotes the line that decided a DAX mount, not the first one.

Lines from Debian 5.10's dmesg (pmemkit run 20261207-010700): xfs prints its DAX banner before it
refuses DAX on a reflink filesystem.
"""

from pmemkit.guest.prepare import _reason

XFS_510 = [
    "XFS (pmem1): EXPERIMENTAL big timestamp feature in use. Use at your own risk!",
    "XFS (pmem1): DAX enabled. Warning: EXPERIMENTAL, use at your own risk",
    "XFS (pmem1): DAX and reflink cannot be used together!",
]


def test_the_refusal_not_the_banner():
    assert _reason(XFS_510, "Invalid argument") == "XFS (pmem1): DAX and reflink cannot be used together!"


def test_a_fallback_line_wins_over_earlier_dax_lines():
    lines = [
        "EXT4-fs (pmem0): DAX enabled.",
        "EXT4-fs (pmem0): DAX unsupported by block device. Turning off DAX.",
    ]
    assert _reason(lines, "x").endswith("Turning off DAX.")


def test_no_dax_words_gives_the_default():
    assert _reason(["EXT4-fs (pmem0): mounted filesystem"], "Invalid argument") == "Invalid argument"
