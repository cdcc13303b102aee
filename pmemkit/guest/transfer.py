"""What the experiments share to move bytes and judge the result: one verdict, one partner file, one
region carve-out, one sha256 over a whole range.

Why one module: the same short transfer was `ok` in one experiment and `EIO` in another, and the
same device-dax offset rule was written three times. A short transfer is the outcome `short`
(scenario.PLAIN_OUTCOMES); a data mismatch is `EIO` with a note that pmemkit found it.
"""

from __future__ import annotations

import hashlib
import mmap
import os

import numpy as np

from pmemkit.guest.experiments import Target

MiB = 1 << 20
MISMATCH = "DATA MISMATCH found by pmemkit's check (not a kernel errno)"


def verdict(moved: int, expected: int, same: bool, what: str = "") -> tuple[str, str]:
    """(outcome, detail) of a transfer that returned `moved` of `expected` bytes; `same` is the
    comparison of every expected byte. Short beats mismatch: the missing bytes explain the rest."""
    lead = f"{what}; " if what else ""
    if moved != expected:
        return "short", f"{lead}short transfer: {moved} of {expected} bytes"
    if not same:
        return "EIO", f"{lead}{moved} bytes; {MISMATCH}"
    return "ok", f"{lead}{moved} bytes; data verified"


def pattern(seed: int, size: int) -> np.ndarray:
    """`size` reproducible random bytes: every verified transfer moves data that cannot be mistaken."""
    return np.frombuffer(np.random.default_rng(seed).bytes(size), dtype=np.uint8)


def partner_path(target: Target, name: str) -> str:
    """A file on the ordinary root disk beside the target: the other end of an O_DIRECT transfer."""
    return os.path.join(target.scratch_dir, f"pmemkit-{name}.dat")


def write_partner(target: Target, name: str, data: np.ndarray | bytes) -> str:
    """Write `data` to the partner file `name`, durably (fsync), and return its path."""
    path = partner_path(target, name)
    with open(path, "wb") as f:
        f.write(data.tobytes() if isinstance(data, np.ndarray) else data)
        f.flush()
        os.fsync(f.fileno())
    return path


def region_offset(target: Target, index: int, unit: int) -> int:
    """The mmap offset of an experiment's `index`-th region of `unit` bytes.

    Device-dax and the page-less /dev/mem control are one device each test carves a region from (at
    the physical start of the range for /dev/mem); files are created per test and start at 0.
    """
    if target.kind == "devdax":
        return index * unit
    if target.kind == "devmem":
        return int(target.params.get("phys_start", 0)) + index * unit
    return 0


def sha256_range(path: str, size: int) -> tuple[str, int]:
    """sha256 of the first `size` bytes of `path` read with O_DIRECT (no stale page cache can answer),
    and how many bytes were actually read (fewer at an early end of file)."""
    digest = hashlib.sha256()
    buf = mmap.mmap(-1, MiB)
    got = 0
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        with memoryview(buf) as view:
            while got < size:
                n = os.preadv(fd, [view], got)
                if n <= 0:
                    break
                take = min(n, size - got)
                digest.update(view[:take])
                got += take
    finally:
        os.close(fd)
        buf.close()
    return digest.hexdigest(), got
