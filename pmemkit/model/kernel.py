"""Kernel version parsing and ordering, so rules can say "holds for 4.16 <= k < 6.15".

Accepted spellings: `4.2`, `4.15`, `5.17`, `6.1.5`, `6.1.150`, `6.11-rc2`, `v6.12`, and distro
release strings such as Debian's `6.1.0-50-amd64` or `6.12.0-0.deb12.3-amd64`.

Distro choice (documented, tested): a release string `X.Y.0-<abi>-<flavour>` hides the stable
patch level (Debian's 6.1.0-50 is really 6.1.176). We read it as *the latest stable release of
X.Y*: every stable fix applies, e.g. Debian 6.1 reserves 64 B per page for map=dev, not the 128 B
of early 6.1. A release string with a non-zero patch (`5.15.7-foo`) keeps its patch level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from pmemkit.model.errors import ModelError

#: `rc` value of a final release: sorts after every -rcN of the same version.
FINAL = 1_000
#: `patch` value standing for "the newest stable release of this series" (distro strings).
LATEST_STABLE = 1_000_000
#: The oldest kernel the model answers for (the pmem driver and DAX era starts here).
OLDEST = (4, 0)
#: The newest kernel whose source the model's rules were checked against (Debian trixie-backports
#: 7.3, issue 10). A later X.Y is answered by the rules in force at NEWEST, flagged `extrapolated`.
NEWEST = (7, 3)
#: Bounds on what we read: a release string is short, a version component has few digits.
MAX_TEXT = 100
MAX_DIGITS = 6

# ASCII digits only ([0-9], re.ASCII): `\d` would accept `６１` and int() would read it as 61.
_N = rf"([0-9]{{1,{MAX_DIGITS}}})"
_VERSION_RE = re.compile(
    r"^(?:v|linux-)?" + _N + r"\." + _N + r"(?:\." + _N + r")?(?:-rc" + _N + r")?([-+~_][!-~]*)?$",
    re.IGNORECASE | re.ASCII,
)


@dataclass(frozen=True, order=True)
class Kernel:
    """A comparable kernel version; `text` keeps what the user wrote for messages."""

    major: int
    minor: int
    patch: int = 0
    rc: int = FINAL
    text: str = field(default="", compare=False)
    distro: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return self.text or self.canonical()

    def canonical(self) -> str:
        """`6.1.5`, `6.11-rc2`, or `6.1.y` for a distro kernel read as latest stable."""
        base = f"{self.major}.{self.minor}"
        if self.patch == LATEST_STABLE:
            return base + ".y"
        if self.patch:
            base += f".{self.patch}"
        if self.rc != FINAL:
            base += f"-rc{self.rc}"
        return base


@lru_cache(maxsize=512)
def parse_kernel(text: str) -> Kernel:
    """Parse a kernel version or release string; raise ModelError with the fix if we cannot."""
    raw = str(text).strip()
    m = _VERSION_RE.match(raw) if len(raw) <= MAX_TEXT else None
    if not m:
        shown = raw if len(raw) <= 40 else raw[:40] + f"... ({len(raw)} characters)"
        raise ModelError(
            f"cannot read kernel version {shown!r}: write it like 6.1, 6.1.5, 6.11-rc2 "
            f"or a release string like 6.1.0-50-amd64 (ASCII, at most {MAX_TEXT} characters, "
            f"{MAX_DIGITS} digits per number)"
        )
    major, minor = int(m.group(1)), int(m.group(2))
    patch_text, rc_text, suffix = m.group(3), m.group(4), m.group(5)
    if (major, minor) < OLDEST:
        raise ModelError(
            f"kernel {raw} is older than 4.0: the model starts at 4.0 (pmem and DAX arrived in "
            "4.0-4.3); use --kernel 4.0 or newer"
        )
    patch = int(patch_text) if patch_text else 0
    rc = int(rc_text) if rc_text else FINAL
    if rc != FINAL and patch:
        raise ModelError(f"cannot read kernel version {raw!r}: -rcN only follows X.Y, as in 6.11-rc2")
    distro = bool(suffix) and rc == FINAL and patch == 0
    if distro:
        patch = LATEST_STABLE
    return Kernel(major, minor, patch, rc, text=raw, distro=distro)


def is_extrapolated(kernel: Kernel) -> bool:
    """True for a kernel newer than NEWEST: its answers reuse the rules in force at NEWEST."""
    return (kernel.major, kernel.minor) > NEWEST


def newest_known() -> str:
    return f"{NEWEST[0]}.{NEWEST[1]}"


def extrapolation_warning(kernel: Kernel) -> str:
    """The one line text output prints for an extrapolated kernel."""
    return (
        f"warning: kernel {kernel} is newer than the newest kernel the model knows "
        f"({newest_known()}): the answer extrapolates the rules in force at {newest_known()}"
    )


def as_kernel(value: str | Kernel) -> Kernel:
    """Accept a Kernel or its spelling."""
    return value if isinstance(value, Kernel) else parse_kernel(value)


@dataclass(frozen=True)
class KernelRange:
    """Half-open range `since <= k < before`; None means unbounded on that side."""

    since: str | None = None
    before: str | None = None

    def __contains__(self, kernel: object) -> bool:
        if not isinstance(kernel, Kernel):
            return False
        if self.since is not None and kernel < parse_kernel(self.since):
            return False
        if self.before is not None and not kernel < parse_kernel(self.before):
            return False
        return True

    def __str__(self) -> str:
        if self.since and self.before:
            return f">={self.since},<{self.before}"
        if self.since:
            return f">={self.since}"
        if self.before:
            return f">=4.0,<{self.before}"
        return ">=4.0"
