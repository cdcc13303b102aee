"""Whether a directory's filesystem takes O_DIRECT (tmpfs does not): host tests that need it skip
with the reason instead of failing on the machine's choice of /tmp."""

from __future__ import annotations

import os
from pathlib import Path


def direct_io_works(path: Path) -> bool:
    try:
        fd = os.open(path / "probe", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    return True
