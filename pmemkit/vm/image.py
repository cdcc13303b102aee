"""The guest root: built from the recipe in `vm/`, cached by the recipe's hash, never half-trusted.

Why a hash key: a recipe change must rebuild, an unchanged recipe must reuse (a cold build takes
minutes). The root is one layer of `pmemkit.vm.layers` (kind "images"): built beside the cached
one and swapped in at the end, its manifest lists each file's size and sha256, checked cheaply on
every use and fully by `verify_image`, and a broken image is rebuilt with a message. It holds no
kernel: every kernel (pmemkit.vm.kernels) is a layer of its own that boots this same root.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmemkit.vm import layers
from pmemkit.vm.errors import ImageBuildError

KIND = "images"
#: Files of `vm/` that define the image; any change to one of them changes the image id.
RECIPE_FILES = ("packages.txt", "build-image.sh", "guest-init.sh", "apt-mirror.py")
IMAGE_FILES = ("rootfs.raw", "manifest.json")
#: Sources the image build compiles on the host and installs into the root (the timing helper,
#: `vm/build-image.sh`), relative to the checkout: part of the key, so a change to one rebuilds.
NATIVE_FILES = ("pmemkit/guest/native/prtime.c",)


def repo_root() -> Path:
    """The checkout pmemkit runs from (shared read-only with the guest)."""
    return Path(__file__).resolve().parents[2]


def recipe_dir() -> Path:
    return repo_root() / "vm"


def cache_dir() -> Path:
    """`$PMEMKIT_CACHE`, else `~/.cache/pmemkit`."""
    return layers.cache_root()


def recipe_hash(recipe: Path | None = None) -> str:
    """The root layer's key, 16 hex digits: sha256 over the digests of the root recipe files (`vm/`)
    and of the native sources compiled into the root (`NATIVE_FILES`), names and contents."""
    recipe_part = layers.recipe_digest(recipe or recipe_dir(), RECIPE_FILES)
    native_part = layers.recipe_digest(repo_root(), NATIVE_FILES)
    return hashlib.sha256(f"{recipe_part}\0{native_part}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GuestImage:
    """A finished, cached root: the disk every kernel boots."""

    image_id: str
    path: Path

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs.raw"

    def manifest(self) -> dict[str, Any]:
        """The build's metadata and file list; an ImageBuildError (one line) when unreadable."""
        return layers.Layer(KIND, self.image_id, self.path, IMAGE_FILES).manifest()


def find_image(image_id: str | None = None) -> GuestImage | None:
    """The cached image of the current recipe if it passes the quick check, or None."""
    image_id = image_id or recipe_hash()
    layer = layers.find_layer(KIND, image_id, IMAGE_FILES)
    return GuestImage(image_id, layer.path) if layer else None


def ensure_image(progress: Callable[[str], None] = print, rebuild: bool = False) -> GuestImage:
    """Return the cached image of the current recipe, building it first when missing or broken."""
    image_id = recipe_hash()
    script = recipe_dir() / "build-image.sh"
    layer = layers.ensure_layer(
        KIND,
        image_id,
        lambda out: ["bash", str(script), str(out), image_id],
        required=IMAGE_FILES,
        rebuild=rebuild,
        progress=progress,
        progress_prefix="[image",
        preflight=_preflight,
    )
    return GuestImage(image_id, layer.path)


def verify_image(image_id: str | None = None) -> tuple[Path, list[str]]:
    """Every file of the cached image against its sha256: (its folder, problems, one line each)."""
    image_id = image_id or recipe_hash()
    return layers.layer_dir(KIND, image_id), layers.problems(KIND, image_id, IMAGE_FILES, quick=False)


def prune_images(keep: str | None = None) -> layers.Pruned:
    """Remove the images of other recipes (and stale partial builds); keeps the current recipe's."""
    return layers.prune(KIND, {keep or recipe_hash()})


def _preflight() -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "debootstrap is not installed, so the guest image cannot be built: "
            "run `make deps` (or scripts/install-host-deps.sh)"
        )
