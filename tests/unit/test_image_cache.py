"""The image cache: keyed by the recipe's hash, reused when unchanged, never trusting a half build.

The real recipe takes minutes (tests/vm covers it); here a tiny build script stands in for it so
the cache logic itself is exercised: reuse, rebuild on change, cleanup after a failed build.
"""

import pytest

import pmemkit.vm.image as image
from pmemkit.vm.errors import ImageBuildError

BUILD = """#!/usr/bin/env bash
set -e
mkdir -p "$1"
echo "[image] step"
for f in vmlinux initrd.img rootfs.raw; do echo x > "$1/$f"; done
[ -z "$FAIL_BUILD" ] || { echo half > "$1/partial"; exit 3; }
echo "{\\"image_id\\": \\"$2\\"}" > "$1/manifest.json"
"""


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    rdir = tmp_path / "vm"
    rdir.mkdir()
    for name in image.RECIPE_FILES:
        (rdir / name).write_text(f"# {name}\n")
    (rdir / "build-image.sh").write_text(BUILD)
    monkeypatch.setattr(image, "recipe_dir", lambda: rdir)
    monkeypatch.setattr(image.shutil, "which", lambda name: "/usr/sbin/debootstrap")
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    return rdir


def test_build_then_reuse_then_rebuild_on_change(recipe):
    messages = []
    first = image.ensure_image(messages.append)
    assert first.manifest()["image_id"] == first.image_id
    assert any("building" in m for m in messages)
    messages.clear()
    again = image.ensure_image(messages.append)
    assert again.path == first.path and not messages  # reused, nothing rebuilt
    (recipe / "packages.txt").write_text("python3\nfio\n")
    changed = image.ensure_image(messages.append)
    assert changed.image_id != first.image_id and messages


def test_failed_build_leaves_nothing_trusted(recipe, monkeypatch):
    monkeypatch.setenv("FAIL_BUILD", "1")
    with pytest.raises(ImageBuildError, match="exit 3"):
        image.ensure_image(lambda m: None)
    images = image.cache_dir() / "images"
    assert image.find_image(image.recipe_hash(recipe)) is None
    assert not [p for p in images.iterdir() if p.is_dir()]  # no partial folder left behind


def test_missing_recipe_file(recipe):
    (recipe / "guest-init.sh").unlink()
    with pytest.raises(ImageBuildError, match="missing"):
        image.recipe_hash(recipe)
