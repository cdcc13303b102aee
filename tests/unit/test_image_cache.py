"""The image cache: keyed by the recipe's hash, reused when unchanged, never trusting a half build.

The real recipe takes minutes (tests/vm covers it); here a tiny build script stands in for it so
the cache logic itself is exercised: reuse, rebuild on change, cleanup after a failed or killed
build (issue 8 finding 7), and a cache that checks itself (finding 11).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

import pmemkit.vm.image as image
import pmemkit.vm.kernel_apt as kernel_apt
import pmemkit.vm.kernels as kernels
from pmemkit.cli import main
from pmemkit.vm.errors import ImageBuildError

# Stands in for vm/build-image.sh: like debootstrap it leaves a child in its process group and
# (as root) a mount under the partial root; STATE gets the pids and a `hanging` marker.
BUILD = """#!/usr/bin/env bash
set -e
mkdir -p "$1/root/proc"
echo "[image] step"
sleep 300 &
echo $$ $! >>"$STATE/pids"
if [ "$(id -u)" = 0 ]; then mount -t tmpfs pmemkit-test-proc "$1/root/proc"; fi
echo "root of ${BUILD_TAG:-one}" > "$1/tag.txt"
head -c 65536 /dev/zero > "$1/rootfs.raw"
[ -z "$HANG_BUILD" ] || { touch "$STATE/hanging"; sleep 300; }
[ -z "$FAIL_BUILD" ] || { echo half > "$1/partial"; exit 3; }
[ "$(id -u)" != 0 ] || umount "$1/root/proc"
rm -r "$1/root"
echo "{\\"image_id\\": \\"$2\\", \\"suite\\": \\"bookworm\\"}" > "$1/manifest.json"
"""

# Stands in for vm/build-kernel.py: the files of a kernel layer, its release from --meta.
BUILD_KERNEL = """
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
meta = json.loads(sys.argv[sys.argv.index("--meta") + 1])
out.mkdir()
for name in ("vmlinux", "initrd.img", "modules.raw", "config"):
    (out / name).write_text(name + " of " + meta["kernel_choice"] + "\\n")
print("[kernel] built", meta["kernel_choice"], flush=True)
meta["kernel_release"] = {"6.1": "6.1.0-test", "6.12": "6.12.0-test"}.get(meta["kernel_choice"], "6.9.0-deb")
meta["args"] = sys.argv[sys.argv.index("--meta") + 2 :]
(out / "manifest.json").write_text(json.dumps(meta))
"""


@pytest.fixture
def state(tmp_path, monkeypatch):
    sdir = tmp_path / "state"
    sdir.mkdir()
    monkeypatch.setenv("STATE", str(sdir))
    yield sdir
    for pid in _pids(sdir):  # the old code orphaned them: do not let a failing test leak them
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for point in _mounts(tmp_path):
        subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture
def recipe(tmp_path, monkeypatch, state):
    rdir = tmp_path / "vm"
    rdir.mkdir()
    for name in image.RECIPE_FILES:
        (rdir / name).write_text(f"# {name}\n")
    (rdir / "build-image.sh").write_text(BUILD)
    for name in kernels.RECIPE_FILES:
        (rdir / name).write_text(f"# {name}\n")
    (rdir / "build-kernel.py").write_text(BUILD_KERNEL)
    monkeypatch.setattr(image, "recipe_dir", lambda: rdir)
    monkeypatch.setattr(kernels, "recipe_dir", lambda: rdir)
    monkeypatch.setattr(kernels, "resolve", _fake_resolve)
    monkeypatch.setattr(image.shutil, "which", lambda name: "/usr/sbin/debootstrap")
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    return rdir


def _fake_resolve(series, refresh=False, progress=print):
    release = {"6.1": "6.1.0-test", "6.12": "6.12.0-test"}[series]
    return kernel_apt.Resolution(
        series, release, (f"linux-image-{release}=1",), ("x",), ("http://m",), Path("/nonexistent")
    )


def _pids(sdir: Path) -> list[int]:
    path = sdir / "pids"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _mounts(under: Path) -> list[str]:
    base = os.path.realpath(under)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith(base + "/")]


def _leftovers(images: Path) -> list[str]:
    return sorted(p.name for p in images.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def invoke(*args):
    return CliRunner().invoke(main, list(args))


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


def test_failed_build_leaves_nothing_trusted(recipe, monkeypatch, state):
    monkeypatch.setenv("FAIL_BUILD", "1")
    with pytest.raises(ImageBuildError, match="exit 3"):
        image.ensure_image(lambda m: None)
    images = image.cache_dir() / "images"
    assert image.find_image(image.recipe_hash(recipe)) is None
    assert not [p for p in images.iterdir() if p.is_dir()]  # no partial folder left behind
    assert not [pid for pid in _pids(state) if _alive(pid)] and not _mounts(images)


def test_missing_recipe_file(recipe):
    (recipe / "guest-init.sh").unlink()
    with pytest.raises(ImageBuildError, match="missing"):
        image.recipe_hash(recipe)


# --- finding 7: rebuilds build beside the old image; every exit path cleans up -------------------


def test_failed_rebuild_keeps_the_old_image(recipe, monkeypatch):
    old = image.ensure_image(lambda m: None)
    monkeypatch.setenv("FAIL_BUILD", "1")
    monkeypatch.setenv("BUILD_TAG", "two")
    with pytest.raises(ImageBuildError, match="exit 3"):
        image.ensure_image(lambda m: None, rebuild=True)
    kept = image.find_image(old.image_id)
    assert kept is not None and (kept.path / "tag.txt").read_text() == "root of one\n"
    assert image.verify_image(old.image_id)[1] == []


def test_rebuild_swaps_in_the_new_image(recipe, monkeypatch):
    old = image.ensure_image(lambda m: None)
    monkeypatch.setenv("BUILD_TAG", "two")
    new = image.ensure_image(lambda m: None, rebuild=True)
    assert new.path == old.path and (new.path / "tag.txt").read_text() == "root of two\n"
    assert not _leftovers(new.path.parent)


DRIVER = """
import sys
from pathlib import Path
import pmemkit.vm.image as image
import pmemkit.vm.kernel_apt as kernel_apt
import pmemkit.vm.kernels as kernels
from pmemkit.cli import main
image.recipe_dir = lambda: Path(sys.argv[1])
image.shutil.which = lambda name: "/usr/sbin/debootstrap"
main(["image", "--rebuild"])
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_during_rebuild_leaves_nothing_and_keeps_the_old_image(recipe, state, tmp_path, sig):
    old = image.ensure_image(lambda m: None)
    (state / "pids").unlink()
    env = {**os.environ, "HANG_BUILD": "1", "BUILD_TAG": "two"}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(recipe)], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while not (state / "hanging").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the fake build never started"
        time.sleep(0.05)
    pids = _pids(state)
    assert pids and all(_alive(p) for p in pids)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("pmemkit: error:") and f"interrupted by {sig.name}" in lines[-1], err
    assert "qemu" not in err and "Traceback" not in err
    assert not [p for p in pids if _alive(p)], "build processes survived"
    images = old.path.parent
    assert not _mounts(tmp_path) and not _leftovers(images)
    assert image.verify_image(old.image_id)[1] == [] and (old.path / "tag.txt").read_text() == "root of one\n"


def test_exception_during_build_kills_the_session(recipe, state, monkeypatch):
    def progress(line):
        if line.startswith("[image]"):
            raise RuntimeError("progress broke")

    with pytest.raises(RuntimeError):
        image.ensure_image(progress)
    pids = _pids(state)
    assert pids and not [p for p in pids if _alive(p)]
    assert not _leftovers(image.cache_dir() / "images") and not _mounts(image.cache_dir())


# --- finding 11: a cache that checks itself ----------------------------------------------------


def test_truncated_rootfs_is_rebuilt_with_a_message(recipe):
    img = image.ensure_image(lambda m: None)
    with open(img.rootfs, "r+b") as f:
        f.truncate(4096)
    assert image.find_image(img.image_id) is None
    messages = []
    again = image.ensure_image(messages.append)
    assert again.rootfs.stat().st_size == 65536
    assert any("broken" in m and "rootfs.raw" in m and "truncated" in m for m in messages), messages


def test_corrupted_file_is_found(recipe):
    img = image.ensure_image(lambda m: None)
    st = img.rootfs.stat()
    with open(img.rootfs, "r+b") as f:
        f.seek(1000)
        f.write(b"\x7fELF")  # same size: the way a flipped block in a guest binary looks
    messages = []
    image.ensure_image(messages.append)  # changed mtime: the quick check hashes that file
    assert any("sha256" in m and "rootfs.raw" in m for m in messages), messages
    img = image.find_image(img.image_id)
    with open(img.rootfs, "r+b") as f:
        f.seek(1000)
        f.write(b"\x7fELF")
    os.utime(img.rootfs, ns=(st.st_atime_ns, img.manifest()["files"]["rootfs.raw"]["mtime_ns"]))
    result = invoke("image", "--verify")
    assert result.exit_code == 5, result.output
    lines = result.output.strip().splitlines()
    assert any("rootfs.raw does not match its sha256" in line for line in lines)
    assert lines[-1].startswith("pmemkit: error:") and "--rebuild" in lines[-1]


def test_verify_of_a_good_image(recipe):
    image.ensure_image(lambda m: None)
    result = invoke("image", "--verify")
    assert result.exit_code == 0 and "every file matches its sha256" in result.output
    data = json.loads(invoke("image", "--verify", "--json").output)
    assert data["ok"] is True and data["problems"] == []


@pytest.mark.parametrize("content", ["[1, 2]", '{"image_id": "abc", "files": {"vml', "", '"text"'])
def test_bad_manifest_is_rebuilt_without_traceback(recipe, content):
    img = image.ensure_image(lambda m: None)
    (img.path / "manifest.json").write_text(content)
    result = invoke("image", "--json")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "broken: manifest.json" in result.output
    out = json.loads(result.output[result.output.index("{") :])
    assert out["suite"] == "bookworm" and out["kernel"]["kernel_release"] == "6.1.0-test"


@pytest.fixture
def ro_cache(tmp_path, monkeypatch):
    """A tmpfs cache that the test remounts read-only (chmod does not stop root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "pmemkit-test-ro", str(cache)], check=True)
    try:
        yield lambda: subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)


def test_read_only_cache_is_one_line(recipe, ro_cache):
    img = image.ensure_image(lambda m: None)
    ro_cache()
    assert image.ensure_image(lambda m: None).path == img.path  # a good image still works read-only
    (recipe / "packages.txt").write_text("changed\n")
    result = invoke("image")
    assert result.exit_code == 5, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "Read-only file system" in lines[0] and "PMEMKIT_CACHE=" in lines[0] and "cache" in lines[0]


def test_prune_removes_other_recipes(recipe, state):
    old = image.ensure_image(lambda m: None)
    (recipe / "packages.txt").write_text("changed\n")
    current = image.ensure_image(lambda m: None)
    images = current.path.parent
    stale = images / f"{current.image_id}.partial-999999"
    (stale / "root").mkdir(parents=True)
    (stale / "root" / "junk").write_bytes(b"x" * 10000)
    result = invoke("image", "--prune")
    assert result.exit_code == 0, result.output
    assert not old.path.exists() and not stale.exists()
    assert image.verify_image(current.image_id)[1] == []
    assert f"removed {old.path}" in result.output and f"removed {stale}" in result.output
    assert "freed" in result.output
    freed = float(result.output.split("freed ")[1].split()[0])
    assert freed > 0


# --- kernels are layers of their own ---------------------------------------------------------------


def test_a_second_kernel_on_a_warm_cache_builds_only_that_kernel(recipe):
    first = invoke("image", "--json")
    assert first.exit_code == 0, first.output
    assert "building images layer" in first.output and "building kernels layer" in first.output
    second = invoke("image", "--kernel", "6.12", "--json")
    assert second.exit_code == 0, second.output
    assert "building images layer" not in second.output and "building kernels layer" in second.output
    one = json.loads(first.output[first.output.index("{") :])
    two = json.loads(second.output[second.output.index("{") :])
    assert one["image_id"] == two["image_id"] and one["path"] == two["path"]  # one shared root
    assert (one["kernel"]["kernel_release"], two["kernel"]["kernel_release"]) == ("6.1.0-test", "6.12.0-test")
    assert two["kernel"]["kernel_packages"] == ["linux-image-6.12.0-test=1"]
    assert one["kernel"]["path"] != two["kernel"]["path"]
    again = invoke("image", "--kernel", "6.12")
    assert "building" not in again.output and "guest kernel 6.12.0-test" in again.output


def test_verify_and_prune_cover_kernel_layers(recipe):
    assert invoke("image").exit_code == 0
    (kernel,) = kernels.cached_kernels()
    with open(kernel.vmlinux, "r+b") as f:
        f.truncate(3)
    result = invoke("image", "--verify")
    assert result.exit_code == 5 and "vmlinux has 3 bytes" in result.output, result.output
    (recipe / "build-kernel.py").write_text(BUILD_KERNEL + "# changed\n")
    result = invoke("image", "--prune")
    assert result.exit_code == 0 and f"removed {kernel.path}" in result.output, result.output
    assert kernels.cached_kernels() == []


def test_own_debs_are_a_layer_keyed_by_their_content(recipe, tmp_path):
    deb = tmp_path / "linux-image-6.9.0_1_amd64.deb"
    deb.write_bytes(b"!<arch>\none")
    first = invoke("image", "--kernel-deb", str(deb), "--json")
    assert first.exit_code == 0, first.output
    kernel = json.loads(first.output[first.output.index("{") :])["kernel"]
    assert kernel["kernel_choice"] == "own-debs" and kernel["args"] == ["--deb", str(deb)]
    assert invoke("image", "--kernel-deb", str(deb)).output.count("building") == 0  # cached
    deb.write_bytes(b"!<arch>\ntwo")  # a rebuilt package: a new layer
    again = invoke("image", "--kernel-deb", str(deb), "--json")
    assert "building kernels layer" in again.output
    assert json.loads(again.output[again.output.index("{") :])["kernel"]["path"] != kernel["path"]
