"""The guest image: built from the recipe in `vm/`, cached by the recipe's hash, never half-trusted.

Why a hash key: a recipe change must rebuild, an unchanged recipe must reuse (a cold build takes
minutes). Why a temporary folder and a rename: an interrupted build must never leave a folder
that looks like a finished image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pmemkit.vm.errors import ImageBuildError

#: Files of `vm/` that define the image; any change to one of them changes the image id.
RECIPE_FILES = (
    "packages.txt",
    "build-image.sh",
    "initrd-init.sh",
    "guest-init.sh",
    "extract-vmlinux.py",
    "apt-mirror.py",
)
IMAGE_FILES = ("vmlinux", "initrd.img", "rootfs.raw", "manifest.json")


def repo_root() -> Path:
    """The checkout pmemkit runs from (shared read-only with the guest)."""
    return Path(__file__).resolve().parents[2]


def recipe_dir() -> Path:
    return repo_root() / "vm"


def cache_dir() -> Path:
    """`$PMEMKIT_CACHE`, else `~/.cache/pmemkit`."""
    env = os.environ.get("PMEMKIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pmemkit"


def recipe_hash(recipe: Path | None = None) -> str:
    """sha256 over the recipe files' names and contents, 16 hex digits."""
    recipe = recipe or recipe_dir()
    digest = hashlib.sha256()
    for name in RECIPE_FILES:
        path = recipe / name
        if not path.is_file():
            raise ImageBuildError(f"recipe file {path} is missing: the checkout is incomplete")
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class GuestImage:
    """A finished, cached image: what qemu boots."""

    image_id: str
    path: Path

    @property
    def vmlinux(self) -> Path:
        return self.path / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs.raw"

    def manifest(self) -> dict:
        return json.loads((self.path / "manifest.json").read_text())


def _complete(path: Path) -> bool:
    return all((path / name).is_file() for name in IMAGE_FILES)


def find_image(image_id: str | None = None) -> GuestImage | None:
    """The cached image of the current recipe, or None."""
    image_id = image_id or recipe_hash()
    path = cache_dir() / "images" / image_id
    return GuestImage(image_id, path) if _complete(path) else None


def ensure_image(progress: Callable[[str], None] = print, rebuild: bool = False) -> GuestImage:
    """Return the cached image of the current recipe, building it first when missing."""
    image_id = recipe_hash()
    images = cache_dir() / "images"
    images.mkdir(parents=True, exist_ok=True)
    final = images / image_id
    with open(images / f".{image_id}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build of the same recipe waits here
        if rebuild and final.exists():
            shutil.rmtree(final)
        if _complete(final):
            return GuestImage(image_id, final)
        if final.exists():
            shutil.rmtree(final)  # a folder without every file is not an image
        _build(image_id, final, progress)
        return GuestImage(image_id, final)


def _build(image_id: str, final: Path, progress: Callable[[str], None]) -> None:
    script = recipe_dir() / "build-image.sh"
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "debootstrap is not installed, so the guest image cannot be built: "
            "run `make deps` (or scripts/install-host-deps.sh)"
        )
    work = final.with_name(f"{final.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    log_path = final.parent / f"{image_id}.build.log"
    progress(f"building guest image {image_id} (a few minutes; log: {log_path})")
    start = time.monotonic()
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                ["bash", str(script), str(work), image_id],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if line.startswith("[image"):
                    progress(line.rstrip())
            rc = proc.wait()
        if rc != 0:
            tail = log_path.read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise ImageBuildError(f"guest image build failed (exit {rc}): {tail[0]} — full log: {log_path}")
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    progress(f"guest image ready in {time.monotonic() - start:.0f} s: {final}")
