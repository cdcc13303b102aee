"""The guest's kernel: a Debian kernel series (5.10 … latest) or the user's own build, each a layer.

Why layers: the bookworm root (pmemkit.vm.image) is the same for every kernel; a kernel is
vmlinux + initrd + a modules disk, cached by what it was built from (`kernels/<release>-<hash>`),
so adding a kernel to a warm cache costs only that layer. A Debian series is resolved to exact
packages by pmemkit.vm.kernel_apt; the user's own kernel (image + modules tree, or .deb files) has
its config checked here before anything is built or booted. Whatever was booted is recorded in
the layer manifest, environment.json and the report.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pmemkit.vm import kernel_config, layers
from pmemkit.vm.errors import ImageBuildError, VmConfigError
from pmemkit.vm.kernel_apt import SERIES, resolve

KIND = "kernels"
DEFAULT_KERNEL = "6.1"
#: Files of `vm/` that define a kernel layer (with the packages or the user's files).
RECIPE_FILES = ("build-kernel.py", "initrd-init.sh", "extract-vmlinux.py")
KERNEL_FILES = ("vmlinux", "initrd.img", "modules.raw", "config", "manifest.json")
BUILD_TOOLS = ("apt-get", "dpkg-deb", "mkfs.ext4", "busybox", "cpio", "gzip", "depmod", "modprobe", "zstd")


class KernelChoiceError(VmConfigError):
    """A --kernel, --kernel-image, --modules or --kernel-config the user must correct (exit 2)."""


@dataclass(frozen=True)
class KernelSpec:
    """What the user asked for: a Debian series, their own image + modules (+ config), or their
    own kernel .deb files."""

    series: str | None = DEFAULT_KERNEL
    image: Path | None = None
    modules: Path | None = None
    config: Path | None = None
    debs: tuple[Path, ...] = ()

    @property
    def custom(self) -> bool:
        """The user's image + modules tree (checked before anything is built)."""
        return self.image is not None

    def label(self) -> str:
        if self.custom:
            return f"own kernel {self.image}"
        if self.debs:
            return f"own packages {', '.join(d.name for d in self.debs)}"
        return f"Debian {self.series}"


@dataclass(frozen=True)
class KernelLayer:
    """A built kernel layer: what qemu boots (vmlinux, initrd) and attaches (modules disk)."""

    key: str
    path: Path

    @property
    def vmlinux(self) -> Path:
        return self.path / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"

    @property
    def modules_disk(self) -> Path:
        return self.path / "modules.raw"

    @property
    def config(self) -> Path:
        return self.path / "config"

    def manifest(self) -> dict[str, Any]:
        return layers.Layer(KIND, self.key, self.path, KERNEL_FILES).manifest()

    @property
    def release(self) -> str:
        return str(self.manifest().get("kernel_release", "?"))


def parse_series(text: str) -> str:
    """`--kernel` value → a known series; one line naming the choices otherwise."""
    value = text.strip().lower()
    if value in SERIES:
        return value
    known = ", ".join(SERIES)
    raise KernelChoiceError(
        f"--kernel {text!r} is not a kernel pmemkit builds; choose one of {known} "
        "(or boot your own with --kernel-image PATH --modules DIR)"
    )


def make_spec(
    series: str | None,
    image: Path | None,
    modules: Path | None,
    config: Path | None,
    debs: Sequence[Path] = (),
) -> KernelSpec:
    """The options of `run`/`image` checked together: one way to name the kernel."""
    if debs:
        if series is not None or image is not None or modules is not None or config is not None:
            raise KernelChoiceError("--kernel-deb goes alone: not with --kernel, --kernel-image or --modules")
        for deb in debs:
            if not deb.is_file():
                raise KernelChoiceError(f"--kernel-deb {deb}: no such file")
            if deb.suffix != ".deb":
                raise KernelChoiceError(f"--kernel-deb {deb}: not a .deb file")
        return KernelSpec(None, debs=tuple(sorted({d.resolve() for d in debs})))
    if image is None:
        if modules is not None or config is not None:
            raise KernelChoiceError("--modules and --kernel-config go with --kernel-image PATH")
        return KernelSpec(parse_series(series or DEFAULT_KERNEL))
    if series is not None:
        raise KernelChoiceError("give --kernel SERIES or --kernel-image PATH, not both")
    if modules is None:
        raise KernelChoiceError(
            "--kernel-image needs --modules DIR (the `make modules_install INSTALL_MOD_PATH=DIR` tree)"
        )
    if not image.is_file():
        raise KernelChoiceError(f"--kernel-image {image}: no such file")
    if not modules.is_dir():
        raise KernelChoiceError(f"--modules {modules}: no such directory")
    if config is not None and not config.is_file():
        raise KernelChoiceError(f"--kernel-config {config}: no such file")
    return KernelSpec(None, image.resolve(), modules.resolve(), config.resolve() if config else None)


# --- recipe -------------------------------------------------------------------------------------


def recipe_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "vm"


def recipe_hash(recipe: Path | None = None) -> str:
    """A kernel layer's recipe key (with the kernel's own packages added by the caller)."""
    return layers.recipe_digest(recipe or recipe_dir(), RECIPE_FILES)


@cache
def _script(name: str) -> ModuleType:
    """A recipe script of `vm/` loaded as a module (its pure helpers, not its main)."""
    path = recipe_dir() / name
    spec = importlib.util.spec_from_file_location(name.replace("-", "_").removesuffix(".py"), path)
    if spec is None or spec.loader is None:
        raise ImageBuildError(f"recipe file {path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def layer_key(release: str, inputs: Iterable[str], recipe: str) -> str:
    """`<release>-<12 hex>`: readable in the cache, changed by any input or recipe change."""
    digest = hashlib.sha256(recipe.encode())
    for item in inputs:
        digest.update(b"\0" + item.encode())
    safe = re.sub(r"[^A-Za-z0-9.+_-]", "_", release).lstrip(".") or "kernel"
    return f"{safe}-{digest.hexdigest()[:12]}"


# --- the user's own kernel ----------------------------------------------------------------------


def custom_release(spec: KernelSpec) -> Path:
    """The `<release>` folder of the user's modules tree (one line if there is not exactly one)."""
    assert spec.modules is not None
    try:
        return Path(_script("build-kernel.py").modules_tree(spec.modules))
    except _script("build-kernel.py").BuildError as exc:
        raise KernelChoiceError(str(exc)) from None


def find_custom_config(spec: KernelSpec, moddir: Path) -> tuple[str, str]:
    """(config text, where it came from): --kernel-config, the build tree, beside the image, or
    the image itself (CONFIG_IKCONFIG)."""
    assert spec.image is not None
    rel = moddir.name
    candidates = [spec.config] if spec.config else []
    candidates += [
        moddir / "build" / ".config",
        moddir / "config",
        spec.image.parent / ".config",
        spec.image.parent / f"config-{rel}",
        spec.image.parent / "config",
    ]
    for path in candidates:
        if path is not None and path.is_file():
            return path.read_text(errors="replace"), str(path)
    try:
        vmlinux = _script("extract-vmlinux.py").extract(spec.image.read_bytes())
    except SystemExit:
        vmlinux = b""
    text = kernel_config.embedded_config(vmlinux)
    if text is not None:
        return text, f"{spec.image} (CONFIG_IKCONFIG)"
    raise KernelChoiceError(
        f"no .config found for {spec.image} (looked in {moddir}/build/.config, beside the image and "
        "inside it): give --kernel-config FILE"
    )


def check_config(
    text: str, release: str, where: str, sources: Iterable[str] = (), filesystems: Iterable[str] = ()
) -> None:
    """Refuse (exit 2, one line naming every missing option) a kernel pmemkit cannot run."""
    try:
        config = kernel_config.parse_config(text)
    except kernel_config.KernelConfigError as exc:
        raise KernelChoiceError(f"{where}: {exc}") from None
    missing = kernel_config.missing_options(config, kernel_config.required_options(sources, filesystems))
    if missing:
        raise KernelChoiceError(kernel_config.refusal(release, missing))


def check_custom(spec: KernelSpec, sources: Iterable[str] = (), filesystems: Iterable[str] = ()) -> Path:
    """Before anything is built or booted: the user's kernel has what this run needs."""
    moddir = custom_release(spec)
    text, where = find_custom_config(spec, moddir)
    check_config(text, moddir.name, where, sources, filesystems)
    return moddir


def _tree_signature(path: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        if item.is_file() and not item.is_symlink():
            st = item.stat()
            digest.update(f"{item.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()


# --- the layer ----------------------------------------------------------------------------------


def _preflight() -> None:
    missing = [
        tool
        for tool in BUILD_TOOLS
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None
    ]
    if missing:
        raise ImageBuildError(
            f"{', '.join(missing)} not installed, so a kernel layer cannot be built: run `make deps` "
            "(or scripts/install-host-deps.sh)"
        )


def ensure_kernel(
    spec: KernelSpec,
    progress: Callable[[str], None] = print,
    rebuild: bool = False,
) -> KernelLayer:
    """The cached layer of this kernel, resolving and building it first when needed."""
    recipe = recipe_hash()
    script = str(recipe_dir() / "build-kernel.py")
    config_file: Path | None = None
    if spec.custom:
        assert spec.image is not None and spec.modules is not None
        moddir = check_custom(spec)
        text, where = find_custom_config(spec, moddir)
        inputs = [
            layers.file_sha256(spec.image),
            _tree_signature(moddir),
            hashlib.sha256(text.encode()).hexdigest(),
        ]
        key = layer_key(f"own-{moddir.name}", inputs, recipe)
        meta: dict[str, Any] = {
            "kernel_choice": "own",
            "kernel_image": str(spec.image),
            "kernel_modules": str(moddir),
            "kernel_config_from": where,
        }
        scratch = layers.cache_root() / "scratch"
        try:
            scratch.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile("w", dir=scratch, prefix="kernel-config-", delete=False)
            with handle:
                handle.write(text)
        except OSError as exc:
            raise layers.cache_error(exc, scratch) from None
        config_file = Path(handle.name)
        args = ["--image", str(spec.image), "--modules", str(moddir), "--config", str(config_file)]
    elif spec.debs:  # the config is checked once the layer is built, before any boot (run.py)
        key = layer_key("debs", [layers.file_sha256(deb) for deb in spec.debs], recipe)
        meta = {"kernel_choice": "own-debs", "kernel_debs": [str(deb) for deb in spec.debs]}
        args = ["--deb", *map(str, spec.debs)]
    else:
        assert spec.series is not None
        res = resolve(spec.series, refresh=rebuild, progress=progress)
        key = layer_key(res.release, res.packages, recipe)
        meta = res.meta()
        args = ["--apt-config", str(res.apt_config), "--download", *res.packages]
    meta["kernel_recipe"] = recipe
    try:
        layer = layers.ensure_layer(
            KIND,
            key,
            lambda out: [sys.executable, script, str(out), "--meta", json.dumps(meta), *args],
            required=KERNEL_FILES,
            rebuild=rebuild,
            progress=progress,
            progress_prefix="[kernel",
            preflight=_preflight,
        )
    finally:
        if config_file is not None:
            config_file.unlink(missing_ok=True)
    return KernelLayer(key, layer.path)


def cached_kernels() -> list[KernelLayer]:
    """Every kernel layer in the cache (whatever its recipe)."""
    base = layers.cache_root() / KIND
    if not base.is_dir():
        return []
    return [
        KernelLayer(p.name, p)
        for p in sorted(base.iterdir())
        if p.is_dir() and not p.name.startswith(".") and ".partial-" not in p.name and ".old-" not in p.name
    ]


def verify_kernels(quick: bool = False) -> list[tuple[Path, list[str]]]:
    """Every cached kernel layer checked: (its folder, problems)."""
    return [(k.path, layers.problems(KIND, k.key, KERNEL_FILES, quick=quick)) for k in cached_kernels()]


def prune_kernels() -> layers.Pruned:
    """Remove kernel layers built by another kernel recipe (and stale partial builds)."""
    recipe = recipe_hash()
    keep = set()
    for kernel in cached_kernels():
        try:
            if kernel.manifest().get("kernel_recipe") == recipe:
                keep.add(kernel.key)
        except ImageBuildError:
            pass
    return layers.prune(KIND, keep)
