"""Debian kernels through a private apt configuration: a series (5.10 … latest) → exact packages.

Why private: the other suites (bullseye, trixie, trixie-backports, sid) must never be added to
the host's own sources. pmemkit keeps their lists under its cache (`apt/<series>/`), asks the
mirror the host's apt already reaches (vm/apt-mirror.py), and resolves `linux-image-amd64` to
`linux-image-<release>=<version>` plus, from Debian's 7.x kernels on, the split
`linux-binary-`, `linux-modules-` and `linux-base-` packages. The lists are fetched when missing
or older than a week (or on `pmemkit image --rebuild`); old lists that cannot be refreshed are
kept with a warning, so a warm cache runs offline.
"""

from __future__ import annotations

import fcntl
import importlib.util
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pmemkit.vm import layers
from pmemkit.vm.errors import ImageBuildError

#: Series → the Debian suites that carry it (newest version among them wins).
SERIES: dict[str, tuple[str, ...]] = {
    "5.10": ("bullseye", "bullseye-security"),
    "6.1": ("bookworm", "bookworm-security"),
    "6.12": ("trixie", "trixie-security"),
    "7.3": ("trixie-backports",),
    "latest": ("sid",),
}
LISTS_MAX_AGE_S = 7 * 24 * 3600
META_PACKAGE = "linux-image-amd64"
_SPLIT = ("linux-binary-", "linux-modules-", "linux-base-")
_DEP = re.compile(r"^\s*([a-z0-9][a-z0-9.+-]*)(?::[a-z0-9]+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?\s*$")


@cache
def _apt_mirror() -> ModuleType:
    """vm/apt-mirror.py (the root's build uses it too) loaded as a module."""
    path = Path(__file__).resolve().parents[2] / "vm" / "apt-mirror.py"
    spec = importlib.util.spec_from_file_location("apt_mirror", path)
    if spec is None or spec.loader is None:
        raise ImageBuildError(f"recipe file {path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Resolution:
    """A Debian series resolved to exact packages."""

    series: str
    release: str
    packages: tuple[str, ...]  # name=version, the image package first
    suites: tuple[str, ...]
    mirrors: tuple[str, ...]
    apt_config: Path

    def meta(self) -> dict[str, Any]:
        image = self.packages[0].split("=", 1)
        return {
            "kernel_choice": self.series,
            "kernel_package": image[0],
            "kernel_version": image[1],
            "kernel_packages": list(self.packages),
            "suites": list(self.suites),
            "mirrors": list(self.mirrors),
        }


def parse_candidate(policy: str) -> str | None:
    """`apt-cache policy PKG` → the candidate version (None when apt has none)."""
    for line in policy.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate":
            value = value.strip()
            return None if value in ("", "(none)") else value
    return None


def parse_depends(show: str) -> list[tuple[str, str | None]]:
    """The first stanza's Depends of `apt-cache show`: (name, exact version or None), every
    alternative of an `a | b` listed."""
    for line in show.splitlines():
        if not line.strip():
            break
        if line.startswith("Depends:"):
            found = []
            for clause in line.split(":", 1)[1].split(","):
                for alt in clause.split("|"):
                    match = _DEP.match(alt)
                    if match:
                        found.append((match.group(1), match.group(3) if match.group(2) == "=" else None))
            return found
    return []


def image_package(depends: Sequence[tuple[str, str | None]]) -> tuple[str, str | None]:
    """The `linux-image-<release>` a `linux-image-amd64` depends on."""
    for name, version in depends:
        if re.match(r"linux-image-[0-9]", name):
            return name, version
    raise ImageBuildError(f"{META_PACKAGE} depends on no linux-image-<release> package")


def split_packages(depends: Sequence[tuple[str, str | None]], release: str) -> list[tuple[str, str | None]]:
    """The 7.x split of `linux-image-<release>` (binary, modules, base); [] for 6.12 and older."""
    return [(n, v) for n, v in depends if any(n == f"{prefix}{release}" for prefix in _SPLIT)]


def apt_dir(series: str) -> Path:
    return layers.cache_root() / "apt" / series


def mirror_for(suite: str) -> str:
    url = _apt_mirror().mirror_for(suite)
    if url is None:
        raise ImageBuildError(
            f"no Debian mirror for {suite} (nor bookworm) in the host's apt sources: pmemkit uses the "
            "mirror the host's apt already reaches"
        )
    return url


def write_apt_config(series: str, suites: Sequence[str] | None = None) -> tuple[Path, tuple[str, ...]]:
    """apt/<series>/{sources.list, apt.conf}: this series' suites only (or `suites`, for a folder
    that is not a kernel series, e.g. the CXL QEMU's), the host's keyring, lists and package cache
    of their own, no host status or pins. Returns (apt.conf, mirrors)."""
    base = apt_dir(series)
    mirrors = []
    lines = []
    for suite in suites or SERIES[series]:
        url = mirror_for(suite)
        mirrors.append(url)
        lines.append(f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {url} {suite} main\n")
    try:
        for sub in ("lists/partial", "cache/archives/partial", "state", "empty.d"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        _write_if_changed(base / "sources.list", "".join(lines))
        conf = "".join(
            f'{key} "{value}";\n'
            for key, value in (
                ("Dir::Etc::SourceList", base / "sources.list"),
                ("Dir::Etc::SourceParts", base / "empty.d"),
                ("Dir::Etc::Preferences", base / "empty.d" / "none"),
                ("Dir::Etc::PreferencesParts", base / "empty.d"),
                ("Dir::State", base / "state"),
                ("Dir::State::Lists", base / "lists"),
                ("Dir::State::status", "/dev/null"),
                ("Dir::Cache", base / "cache"),
                ("APT::Sandbox::User", "root"),
                ("APT::Architecture", "amd64"),
                ("APT::Architectures", "amd64"),
                ("Acquire::Languages", "none"),
            )
        )
        _write_if_changed(base / "apt.conf", conf)
    except OSError as exc:
        raise layers.cache_error(exc, base) from None
    return base / "apt.conf", tuple(mirrors)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def lists_age_s(series: str) -> float | None:
    """Seconds since the series' lists were fetched; None when they never were."""
    lists = [p for p in (apt_dir(series) / "lists").glob("*_Packages*") if p.is_file()]
    return time.time() - min(p.stat().st_mtime for p in lists) if lists else None


Runner = Callable[[list[str]], str]


def _apt(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise ImageBuildError(f"{argv[0]} is not installed: pmemkit fetches kernels with apt") from None
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"`{' '.join(argv[:4])}` did not finish within 10 minutes") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ImageBuildError(f"`{' '.join(argv[:4])} …` failed: {last}")
    return proc.stdout


def resolve(
    series: str, refresh: bool = False, run: Runner = _apt, progress: Callable[[str], None] = print
) -> Resolution:
    """The exact packages of `series` now, from its lists (fetched when missing, old or asked)."""
    conf, mirrors = write_apt_config(series)
    with _locked(conf.parent / "lock.pmemkit"):  # two pmemkits must not fetch one folder's lists at once
        age = lists_age_s(series)
        if refresh or age is None or age > LISTS_MAX_AGE_S:
            progress(f"fetching the package lists of {', '.join(SERIES[series])} (private apt config {conf})")
            try:
                run(["apt-get", "-q", "-c", str(conf), "update"])
            except ImageBuildError as exc:
                if refresh or age is None:
                    raise
                # Old lists still name packages that may be cached: offline, a warm cache still runs.
                progress(f"warning: keeping {age / 86400:.0f}-day-old package lists: {exc}")
        return _resolve_from_lists(series, conf, mirrors, run)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        handle = open(path, "a")  # noqa: SIM115 - held for the whole block
    except OSError as exc:
        raise layers.cache_error(exc, path.parent) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _resolve_from_lists(series: str, conf: Path, mirrors: tuple[str, ...], run: Runner) -> Resolution:
    cache_ = ["apt-cache", "-c", str(conf)]
    version = parse_candidate(run([*cache_, "policy", META_PACKAGE]))
    if version is None:
        raise ImageBuildError(f"{', '.join(SERIES[series])} has no {META_PACKAGE}")
    name, image_version = image_package(parse_depends(run([*cache_, "show", f"{META_PACKAGE}={version}"])))
    release = name.removeprefix("linux-image-")
    if series != "latest" and not release.startswith(f"{series}."):
        raise ImageBuildError(
            f"{', '.join(SERIES[series])} now carries kernel {release}, not {series}: "
            "pmemkit's kernel list (pmemkit/vm/kernel_apt.py SERIES) needs updating"
        )
    image_version = image_version or parse_candidate(run([*cache_, "policy", name]))
    if image_version is None:
        raise ImageBuildError(f"{', '.join(SERIES[series])} has no {name}")
    packages = [f"{name}={image_version}"]
    for part, part_version in split_packages(parse_depends(run([*cache_, "show", packages[0]])), release):
        packages.append(f"{part}={part_version or image_version}")
    return Resolution(series, release, tuple(packages), SERIES[series], mirrors, conf)
