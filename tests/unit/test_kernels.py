"""Kernel choice, Debian resolution, the user's own kernel and its config check — on the host.

The real resolution talks to a mirror and the real build takes minutes (tests/vm covers both);
here apt's answers are canned text copied from bullseye/trixie/trixie-backports lists, so what
pmemkit makes of them is checked: which packages (the 7.x split), which release, which refusals.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import pmemkit.vm.kernel_apt as kernel_apt
import pmemkit.vm.kernels as kernels
from pmemkit.cli import main
from pmemkit.vm import kernel_config
from pmemkit.vm.errors import ImageBuildError
from pmemkit.vm.layout import GiB, HostLimits

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = (FIXTURES / "kernel-config-pmemkit").read_text()
HOST_24G = HostLimits(23 * GiB, Path("/cache/scratch"), 78 * GiB, False, None, 40, True)

# What `apt-cache -c … show` printed for trixie-backports on 2026-12-07 (trimmed).
SHOW_META_73 = """Package: linux-image-amd64
Source: linux-signed-amd64 (7.3.4+1~bpo13+1)
Version: 7.3.4-1~bpo13+1
Depends: linux-base-amd64 (= 7.3.4-1~bpo13+1), linux-image-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), \
linux-modules-amd64 (= 7.3.4-1~bpo13+1)

Package: linux-image-amd64
Version: 7.2.13-1
Depends: linux-base-amd64 (= 7.2.13-1), linux-image-7.2.13+deb14-amd64 (= 7.2.13-1)
"""
SHOW_IMAGE_73 = """Package: linux-image-7.3.4+deb13-amd64
Version: 7.3.4-1~bpo13+1
Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), \
linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)
Pre-Depends: linux-base (>= 4.17~)
"""
SHOW_META_510 = """Package: linux-image-amd64
Version: 5.10.262-1
Depends: linux-image-5.10.0-46-amd64 (= 5.10.262-1)
"""
SHOW_IMAGE_510 = """Package: linux-image-5.10.0-46-amd64
Version: 5.10.262-1
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
"""
POLICY = """linux-image-amd64:
  Installed: (none)
  Candidate: {version}
  Version table:
     {version} 500
"""


def fake_apt(answers: dict[str, str], calls: list[list[str]]):
    def run(argv: list[str]) -> str:
        calls.append(argv)
        if argv[-1] == "update":
            lists = Path(argv[argv.index("-c") + 1]).parent / "lists"
            (lists / "deb.debian.org_debian_dists_x_main_binary-amd64_Packages").write_text("")
            return ""
        return answers[" ".join(argv[3:])]

    return run


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kernel_apt, "mirror_for", lambda suite: "http://mirror.example/debian")
    return tmp_path / "cache"


def test_73_resolves_to_the_split_packages_with_exact_versions(cache):
    calls: list[list[str]] = []
    answers = {
        "policy linux-image-amd64": POLICY.format(version="7.3.4-1~bpo13+1"),
        "show linux-image-amd64=7.3.4-1~bpo13+1": SHOW_META_73,
        "show linux-image-7.3.4+deb13-amd64=7.3.4-1~bpo13+1": SHOW_IMAGE_73,
    }
    res = kernel_apt.resolve("7.3", run=fake_apt(answers, calls), progress=lambda m: None)
    assert res.release == "7.3.4+deb13-amd64"
    assert res.packages == (
        "linux-image-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
        "linux-base-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
        "linux-binary-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
        "linux-modules-7.3.4+deb13-amd64=7.3.4-1~bpo13+1",
    )
    assert res.meta()["kernel_package"] == "linux-image-7.3.4+deb13-amd64"
    assert calls[0][-1] == "update"  # no lists yet: fetched first
    sources = (cache / "apt" / "7.3" / "sources.list").read_text()
    assert "trixie-backports main" in sources and "bookworm" not in sources
    conf = (cache / "apt" / "7.3" / "apt.conf").read_text()
    assert 'Dir::State::status "/dev/null"' in conf and str(cache / "apt" / "7.3" / "lists") in conf


def test_510_is_one_package_and_warm_lists_are_not_fetched_again(cache):
    answers = {
        "policy linux-image-amd64": POLICY.format(version="5.10.262-1"),
        "show linux-image-amd64=5.10.262-1": SHOW_META_510,
        "show linux-image-5.10.0-46-amd64=5.10.262-1": SHOW_IMAGE_510,
    }
    first: list[list[str]] = []
    kernel_apt.resolve("5.10", run=fake_apt(answers, first), progress=lambda m: None)
    again: list[list[str]] = []
    res = kernel_apt.resolve("5.10", run=fake_apt(answers, again), progress=lambda m: None)
    assert res.packages == ("linux-image-5.10.0-46-amd64=5.10.262-1",) and res.release == "5.10.0-46-amd64"
    assert first[0][-1] == "update" and all(argv[-1] != "update" for argv in again)
    assert res.suites == ("bullseye", "bullseye-security")


def test_a_suite_that_moved_on_is_refused_not_booted_under_the_wrong_name(cache):
    answers = {
        "policy linux-image-amd64": POLICY.format(version="7.2.13-1"),
        "show linux-image-amd64=7.2.13-1": SHOW_META_73.split("\n\n")[1],
    }
    with pytest.raises(ImageBuildError, match="carries kernel 7.2.13"):
        kernel_apt.resolve("7.3", run=fake_apt(answers, []), progress=lambda m: None)


def test_parse_depends_keeps_alternatives_and_exact_versions():
    deps = kernel_apt.parse_depends(SHOW_IMAGE_73)
    assert ("dracut", None) in deps and ("linux-initramfs-tool", None) in deps
    assert ("linux-binary-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1") in deps
    assert kernel_apt.split_packages(kernel_apt.parse_depends(SHOW_IMAGE_510), "5.10.0-46-amd64") == []
    assert kernel_apt.parse_candidate("  Candidate: (none)\n") is None


@pytest.mark.parametrize("value", ["5.10", "6.1", "6.12", "7.3", "latest", "LATEST"])
def test_known_series(value):
    assert kernels.parse_series(value) == value.lower()


@pytest.mark.parametrize("value", ["6", "6.1.0", "99.1", "", "sid", "7.3.4"])
def test_unknown_series_is_refused(value):
    with pytest.raises(kernels.KernelChoiceError, match="choose one of 5.10, 6.1, 6.12, 7.3, latest"):
        kernels.parse_series(value)


def test_layer_key_changes_with_packages_and_recipe():
    a = kernels.layer_key("6.12.118+deb13-amd64", ["linux-image-x=1"], "r1")
    assert a.startswith("6.12.118+deb13-amd64-")
    assert a != kernels.layer_key("6.12.118+deb13-amd64", ["linux-image-x=2"], "r1")
    assert a != kernels.layer_key("6.12.118+deb13-amd64", ["linux-image-x=1"], "r2")
    assert "/" not in kernels.layer_key("a/b", [], "r")


# --- the config check -----------------------------------------------------------------------------


def test_fixture_config_has_everything():
    config = kernel_config.parse_config(CONFIG)
    assert kernel_config.missing_options(config, kernel_config.required_options()) == []


def test_missing_fs_dax_is_named():
    text = CONFIG.replace("CONFIG_FS_DAX=y\n", "# CONFIG_FS_DAX is not set\n")
    with pytest.raises(kernels.KernelChoiceError) as caught:
        kernels.check_config(text, "6.9.0-pmemtest", "fixture")
    message = str(caught.value)
    assert "CONFIG_FS_DAX is not set" in message and "\n" not in message
    assert caught.value.exit_code == 2


def test_builtin_only_options_may_not_be_modules():
    text = CONFIG.replace("CONFIG_ZONE_DEVICE=y", "CONFIG_ZONE_DEVICE=m")
    with pytest.raises(kernels.KernelChoiceError, match="CONFIG_ZONE_DEVICE is m, not y"):
        kernels.check_config(text, "6.9.0", "fixture")


def test_only_the_planned_sources_and_filesystems_are_required():
    text = CONFIG.replace("CONFIG_XFS_FS=m\n", "").replace("CONFIG_VIRTIO_PMEM=m\n", "")
    kernels.check_config(text, "6.9.0", "fixture", {"memmap", "nvdimm"}, ["ext4"])
    with pytest.raises(kernels.KernelChoiceError, match="CONFIG_XFS_FS"):
        kernels.check_config(text, "6.9.0", "fixture", {"memmap"}, ["xfs"])


def test_not_a_config_is_one_line():
    with pytest.raises(kernels.KernelChoiceError, match="not a kernel config"):
        kernels.check_config("hello\n", "6.9.0", "notes.txt")


# --- the user's own kernel through the cli --------------------------------------------------------


class Booted(Exception):
    """The stubbed VM entry point was reached: validation passed."""


@pytest.fixture
def no_vm(monkeypatch, tmp_path):
    import pmemkit.pipeline as pipeline
    import pmemkit.vm.layout as layout_mod

    seen = []

    def stub(options, progress=None):
        seen.append(options)
        raise Booted()

    def no_build(*args, **kwargs):
        raise AssertionError("nothing may be built for a refused kernel")

    monkeypatch.setattr(pipeline, "run", stub)
    monkeypatch.setattr("pmemkit.vm.image.ensure_image", no_build)
    monkeypatch.setattr(kernels, "ensure_kernel", no_build)
    monkeypatch.setattr(layout_mod, "read_host", lambda scratch, accel: dataclasses.replace(HOST_24G))
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    return seen


@pytest.fixture
def own_kernel(tmp_path):
    """A `make modules_install` tree and an ELF 'vmlinux' (content does not matter before boot)."""
    image = tmp_path / "build" / "vmlinux"
    image.parent.mkdir()
    image.write_bytes(b"\x7fELF" + b"\0" * 60)
    rel = tmp_path / "mods" / "lib" / "modules" / "6.9.0-pmemtest"
    (rel / "kernel").mkdir(parents=True)
    (rel / "modules.order").write_text("")
    config = tmp_path / "build" / "config-6.9.0-pmemtest"
    config.write_text(CONFIG)
    return image, tmp_path / "mods", config


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _one_line_exit_2(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("pmemkit: error: "), result.stderr
    return lines[0]


def test_own_kernel_without_fs_dax_is_refused_before_anything_is_built(no_vm, own_kernel):
    image, mods, config = own_kernel
    config.write_text(CONFIG.replace("CONFIG_FS_DAX=y\n", ""))
    line = _one_line_exit_2(
        invoke("run", "--kernel-image", str(image), "--modules", str(mods), "--pmem", "memmap:256M")
    )
    assert "kernel 6.9.0-pmemtest cannot run pmemkit: CONFIG_FS_DAX is not set" in line
    assert no_vm == []


def test_own_kernel_with_a_good_config_reaches_the_vm(no_vm, own_kernel):
    image, mods, config = own_kernel
    result = invoke("run", "--kernel-image", str(image), "--modules", str(mods), "--pmem", "memmap:256M")
    assert isinstance(result.exception, Booted), result.output
    (options,) = no_vm
    assert options.kernel.custom and options.kernel.image == image.resolve()


def test_own_kernel_config_may_be_given(no_vm, own_kernel, tmp_path):
    image, mods, config = own_kernel
    config.unlink()
    other = tmp_path / "my.config"
    other.write_text(CONFIG.replace("CONFIG_ACPI_NFIT=m\n", ""))
    line = _one_line_exit_2(
        invoke(
            "run",
            *("--kernel-image", str(image), "--modules", str(mods), "--kernel-config", str(other)),
            *("--pmem", "nvdimm:256M"),
        )
    )
    assert "CONFIG_ACPI_NFIT is not set" in line


def test_own_kernel_without_any_config_says_where_it_looked(no_vm, own_kernel):
    image, mods, config = own_kernel
    config.unlink()
    line = _one_line_exit_2(invoke("run", "--kernel-image", str(image), "--modules", str(mods)))
    assert "no .config found" in line and "--kernel-config FILE" in line


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--kernel", "6.2"], "choose one of"),
        (["--kernel", "6.1", "--kernel-image", "/bin/true", "--modules", "/tmp"], "not both"),
        (["--kernel-image", "/bin/true"], "needs --modules"),
        (["--modules", "/tmp"], "go with --kernel-image"),
        (["--kernel-image", "/nonexistent/vmlinux", "--modules", "/tmp"], "no such file"),
        (["--kernel-image", "/bin/true", "--modules", "/nonexistent"], "no such directory"),
        (["--kernel-deb", "/nonexistent/linux-image.deb"], "no such file"),
        (["--kernel-deb", "/bin/true"], "not a .deb file"),
        (["--kernel", "7.3", "--kernel-deb", "/bin/true"], "goes alone"),
    ],
)
def test_kernel_options_refused_in_one_line(no_vm, argv, needle):
    for command in ("run", "image"):
        line = _one_line_exit_2(invoke(command, *argv))
        assert needle in line
    assert no_vm == []


def test_modules_tree_forms(tmp_path):
    spec = importlib.util.spec_from_file_location("build_kernel", kernels.recipe_dir() / "build-kernel.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rel = tmp_path / "lib" / "modules" / "6.9.0"
    (rel / "kernel").mkdir(parents=True)
    assert build.modules_tree(tmp_path) == rel  # INSTALL_MOD_PATH
    assert build.modules_tree(tmp_path / "lib" / "modules") == rel
    assert build.modules_tree(rel) == rel
    (tmp_path / "lib" / "modules" / "6.10.0" / "kernel").mkdir(parents=True)
    with pytest.raises(build.BuildError, match="expected one"):
        build.modules_tree(tmp_path)


def test_old_lists_that_cannot_be_refreshed_are_kept_with_a_warning(cache):
    answers = {
        "policy linux-image-amd64": POLICY.format(version="5.10.262-1"),
        "show linux-image-amd64=5.10.262-1": SHOW_META_510,
        "show linux-image-5.10.0-46-amd64=5.10.262-1": SHOW_IMAGE_510,
    }
    kernel_apt.resolve("5.10", run=fake_apt(answers, []), progress=lambda m: None)
    (lists,) = (cache / "apt" / "5.10" / "lists").glob("*_Packages")
    os.utime(lists, (1, 1))  # fetched in 1970

    def offline(argv: list[str]) -> str:
        if argv[-1] == "update":
            raise ImageBuildError("`apt-get -q -c x …` failed: Temporary failure resolving 'mirror'")
        return answers[" ".join(argv[3:])]

    messages: list[str] = []
    res = kernel_apt.resolve("5.10", run=offline, progress=messages.append)
    assert res.release == "5.10.0-46-amd64"
    assert any(m.startswith("warning: keeping") and "Temporary failure" in m for m in messages)
    with pytest.raises(ImageBuildError, match="Temporary failure"):
        kernel_apt.resolve("5.10", refresh=True, run=offline, progress=messages.append)


# --- build-kernel.py's pure helpers: renamed, built-in and split-package kernels -----------------


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("build_kernel_t", kernels.recipe_dir() / "build-kernel.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_initrd_plan_takes_the_renamed_crc32c_and_skips_built_ins(build):
    """7.3: crc32c_generic is crc32c-cryptoapi (.ko.xz) and virtio_pci is built in."""
    have = {
        "virtio_blk": "insmod /m/kernel/drivers/block/virtio_blk.ko.xz\n",
        "crc32c-cryptoapi": "insmod /m/kernel/crypto/crc32c-cryptoapi.ko.xz\n",
        "ext4": "insmod /m/kernel/fs/jbd2/jbd2.ko.xz\ninsmod /m/kernel/fs/ext4/ext4.ko.xz\n",
        "9pnet_virtio": "insmod /m/kernel/net/9p/9pnet.ko.xz\ninsmod /m/kernel/net/9p/9pnet_virtio.ko.xz\n",
        "9p": "insmod /m/kernel/net/9p/9pnet.ko.xz\ninsmod /m/kernel/fs/9p/9p.ko.xz\n",
        "nfit": "insmod /m/kernel/drivers/nvdimm/libnvdimm.ko.xz\ninsmod /m/nfit/nfit.ko.xz\n",
    }
    builtins = build.builtin_names("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/mbcache.ko\n")
    plan = build.plan_initrd(have.get, builtins)
    assert plan["chosen"]["crc32c_generic"] == "crc32c-cryptoapi"
    assert plan["chosen"]["virtio_pci"] == "virtio_pci (built in)"
    assert [build.module_name(f) for f in plan["files"]].count("9pnet") == 1  # shared deps once
    assert build.module_name(plan["files"][1]) == "crc32c_cryptoapi"
    assert "nd_pmem" in plan["absent"] and "virtio_pmem" in plan["absent"]  # optional: recorded


def test_initrd_plan_refuses_a_kernel_without_a_root_disk_driver(build):
    with pytest.raises(build.BuildError, match="no virtio_blk"):
        build.plan_initrd(lambda name: None, {"virtio_pci"})


def test_locate_debian_finds_the_7x_split_layout(build, tmp_path):
    rel = "7.3.4+deb13-amd64"
    mods = tmp_path / "usr/lib/modules" / rel
    (mods / "kernel").mkdir(parents=True)
    (mods / "vmlinuz").write_bytes(b"MZ" + b"\0" * 100)  # linux-binary
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / f"config-{rel}").write_text(CONFIG)  # linux-base
    found_rel, image, config, sysmap = build.locate_debian(tmp_path)
    assert (found_rel, image, config, sysmap) == (
        rel,
        mods / "vmlinuz",
        tmp_path / "boot" / f"config-{rel}",
        None,
    )


def test_locate_debian_refuses_an_empty_linux_image_package(build, tmp_path):
    (tmp_path / "usr/share/doc/linux-image-7.3.4+deb13-amd64").mkdir(parents=True)
    with pytest.raises(build.BuildError, match="found releases none"):
        build.locate_debian(tmp_path)


@pytest.mark.parametrize(
    "head,kind",
    [
        (b"\x7fELF", "none (ELF)"),
        (b"MZ..\x28\xb5\x2f\xfd", "zstd"),
        (b"MZ\xfd7zXZ\x00", "xz"),
        (b"MZ", "unknown"),
    ],
)
def test_compression_of(build, head, kind):
    assert build.compression_of(head + b"\0" * 64) == kind


def test_a_built_kernel_lacking_an_option_is_refused_before_the_run_begins(tmp_path, monkeypatch):
    """--kernel-deb and Debian kernels are checked from their layer's config, still before boot."""
    import pmemkit.pipeline as pipeline
    import pmemkit.vm.run as run_mod
    from pmemkit.scenario import PmemConfig
    from pmemkit.vm import layers
    from pmemkit.vm.image import GuestImage

    kernel = tmp_path / "kernel"
    kernel.mkdir()
    (kernel / "config").write_text(CONFIG.replace("CONFIG_X86_PMEM_LEGACY=m\n", ""))
    (kernel / "manifest.json").write_text('{"kernel_release": "6.9.0-deb"}')
    layers._write_manifest(kernel, "kernels", "k", ())
    monkeypatch.setenv("PMEMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(run_mod.shutil, "which", lambda name: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(run_mod, "ensure_image", lambda progress: GuestImage("fake", tmp_path))
    monkeypatch.setattr(run_mod, "ensure_kernel", lambda spec, progress: kernels.KernelLayer("k", kernel))
    options = run_mod.RunOptions(
        pmem=[PmemConfig.parse("memmap:256M")], suites=["smoke"], runs_dir=tmp_path / "runs"
    )
    with pytest.raises(
        kernels.KernelChoiceError, match="kernel 6.9.0-deb cannot run pmemkit: CONFIG_X86_PMEM"
    ):
        pipeline.run(options, progress=lambda message: None)
    assert not (tmp_path / "runs").exists()
