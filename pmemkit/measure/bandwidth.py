"""Bandwidth from bytes moved and nanoseconds spent, and ratios for side-by-side comparisons.

Units, stated because benchmark tools disagree: `MB/s` is decimal (10**6 bytes per second, fio's
figure in parentheses), `MiB/s` and `GiB/s` are binary (2**20 and 2**30, fio's main figure).
`ratio(a, b)` is a / b for comparing like with like (pmemkit vs fio, DAX vs anonymous memory) and
returns None when the comparison has no meaning (a missing figure, b == 0, NaN or infinity), so a
report prints "—" rather than a fake number.

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from pmemkit.measure.errors import MeasureError

NS_PER_S = 1_000_000_000
MB = 1_000_000
MIB = 1 << 20
GIB = 1 << 30


def bytes_per_s(nbytes: int | float, elapsed_ns: int | float) -> float:
    """Bytes per second for `nbytes` moved in `elapsed_ns` nanoseconds.

    Raises MeasureError for negative bytes or a non-positive / non-finite elapsed time (a zero
    elapsed time means the clock did not advance: time more work per sample).
    """
    if not isinstance(nbytes, int | float) or isinstance(nbytes, bool) or not math.isfinite(nbytes):
        raise MeasureError(f"bytes moved must be a finite number, not {nbytes!r}")
    if nbytes < 0:
        raise MeasureError(f"bytes moved must not be negative: {nbytes}")
    if (
        not isinstance(elapsed_ns, int | float)
        or isinstance(elapsed_ns, bool)
        or not math.isfinite(elapsed_ns)
        or elapsed_ns <= 0
    ):
        raise MeasureError(
            f"elapsed time must be a positive number of ns, not {elapsed_ns!r}: "
            "time more work so the clock advances"
        )
    return nbytes * NS_PER_S / elapsed_ns


def mb_per_s(nbytes: int | float, elapsed_ns: int | float) -> float:
    """Decimal megabytes (10**6 B) per second."""
    return bytes_per_s(nbytes, elapsed_ns) / MB


def mib_per_s(nbytes: int | float, elapsed_ns: int | float) -> float:
    """Binary mebibytes (2**20 B) per second."""
    return bytes_per_s(nbytes, elapsed_ns) / MIB


def gib_per_s(nbytes: int | float, elapsed_ns: int | float) -> float:
    """Binary gibibytes (2**30 B) per second."""
    return bytes_per_s(nbytes, elapsed_ns) / GIB


def bandwidth(nbytes: int | float, elapsed_ns: int | float) -> dict[str, Any]:
    """A JSON-ready bandwidth record: the inputs and the rate in B/s, MB/s, MiB/s and GiB/s."""
    rate = bytes_per_s(nbytes, elapsed_ns)
    return {
        "bytes": nbytes,
        "elapsed_ns": elapsed_ns,
        "bytes_per_s": rate,
        "mb_per_s": rate / MB,
        "mib_per_s": rate / MIB,
        "gib_per_s": rate / GIB,
    }


def ratio(a: int | float | None, b: int | float | None) -> float | None:
    """a / b, or None when that means nothing: either is None, NaN or infinite, or b == 0.

    ratio(0, x) is 0.0 for any x != 0. The caller chooses the orientation; the issue's convention
    is pmemkit / fio and DAX / anonymous, so 1.0 means "the same".
    """
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return None
    return a / b


def within(a: int | float | None, b: int | float | None, tolerance: float = 0.10) -> bool | None:
    """True if a is within ±tolerance of b (|a/b - 1| <= tolerance); None if `ratio` is None."""
    r = ratio(a, b)
    if r is None:
        return None
    return abs(r - 1.0) <= tolerance
