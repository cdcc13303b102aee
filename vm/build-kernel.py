#!/usr/bin/env python3
"""Build one kernel layer of pmemkit's guest into OUT (which must not exist yet).

A kernel layer is everything that depends on the kernel and nothing else, so the bookworm root is
shared by every kernel and adding one to a warm cache costs only this:
  vmlinux       the ELF kernel (PVH boot skips the in-guest decompression: ~2.3 s under TCG)
  initrd.img    static busybox + this kernel's early modules (root disk, 9p, pmem), decompressed
  modules.raw   ext4 image (mkfs.ext4 -d, no loop mount) of /lib/modules/<release>, trimmed and
                depmod'ed; the guest mounts it read-only at /lib/modules
  config        the kernel's .config;  System.map when the kernel ships a real one
  manifest.json what was built from what (merged into the layer manifest by pmemkit.vm.layers)

The kernel comes from Debian packages (downloaded with the private apt configuration pmemkit made
under its cache, or .deb files the user gave) or from the user's own build (--image + --modules).
Debian's packaging changed over the years and this script copes with all of it: one linux-image
package (5.10 to 6.12) or the 7.x split (linux-binary: /usr/lib/modules/<rel>/vmlinuz, linux-base:
config and System.map, linux-modules), XZ or ZSTD kernels, .ko, .ko.xz or .ko.zst modules, and
modules that are renamed or built in on some kernels.
Usage:
  build-kernel.py OUT --meta JSON --apt-config FILE --download PKG=VERSION...
  build-kernel.py OUT --meta JSON --deb FILE...
  build-kernel.py OUT --meta JSON --image VMLINUX_OR_BZIMAGE --modules DIR [--config FILE]
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import importlib.util
import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Module trees the guest never loads (graphics, wireless, media, sound, real NICs, RDMA HW).
TRIM = (
    "kernel/drivers/gpu",
    "kernel/drivers/media",
    "kernel/drivers/net/wireless",
    "kernel/drivers/net/ethernet",
    "kernel/drivers/infiniband",
    "kernel/drivers/staging",
    "kernel/drivers/bluetooth",
    "kernel/drivers/iio",
    "kernel/drivers/hid",
    "kernel/drivers/input",
    "kernel/drivers/usb",
    "kernel/drivers/isdn",
    "kernel/drivers/mmc",
    "kernel/sound",
    "kernel/net/wireless",
    "kernel/net/mac80211",
    "kernel/net/bluetooth",
)
#: The initrd's modules: each entry is a list of alternative names (renamed across kernels); the
#: first one the kernel has (as a module or built in) is taken. Required entries fail the build
#: when a kernel has none of their names; optional ones are recorded as absent (the config check
#: refuses a run that needs them). Not nd_e820: pmemkit loads it itself, after the page-less
#: control has used the legacy range through /dev/mem.
INITRD_MODULES: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("virtio_pci",), True),
    (("virtio_blk",), True),
    (("crc32c_generic", "crc32c-cryptoapi", "crc32c_intel"), False),  # ext4's checksum (a library on 7.x)
    (("ext4",), True),
    (("9pnet_virtio",), True),
    (("9p",), True),
    (("nfit",), False),
    (("nd_pmem",), False),
    (("nd_btt",), False),
    (("dax_pmem",), False),
    (("device_dax",), False),
    (("virtio_pmem",), False),
)


def log(message: str) -> None:
    print(f"[kernel {datetime.datetime.now():%H:%M:%S}] {message}", flush=True)


class BuildError(Exception):
    pass


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, check=True, **kwargs)
    except FileNotFoundError:
        raise BuildError(f"missing '{argv[0]}': run scripts/install-host-deps.sh") from None
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{' '.join(argv[:3])}… failed with exit {exc.returncode}") from None


# --- pure helpers (unit-tested on the host) -----------------------------------------------------


def parse_show_depends(text: str) -> tuple[list[str], list[str]]:
    """`modprobe --show-depends` output → (module files in load order, names built in)."""
    files, builtin = [], []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "insmod":
            files.append(words[1])
        elif len(words) >= 2 and words[0] == "builtin":
            builtin.append(words[1])
    return files, builtin


def module_name(path: str) -> str:
    """`…/crc32c-cryptoapi.ko.xz` → `crc32c_cryptoapi` (the kernel's name: '-' becomes '_')."""
    name = os.path.basename(path)
    for suffix in (".xz", ".zst", ".gz"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".ko").replace("-", "_")


def builtin_names(modules_builtin: str) -> set[str]:
    """Names in a modules.builtin file (`kernel/drivers/virtio/virtio_pci.ko` per line)."""
    return {module_name(line.strip()) for line in modules_builtin.splitlines() if line.strip()}


def plan_initrd(resolve, builtins: set[str]) -> dict:
    """Resolve INITRD_MODULES for one kernel.

    `resolve(name)` returns modprobe's show-depends text, or None when the kernel has no such
    module. Returns {"files": [paths in load order], "builtin": [...], "absent": [...], "chosen":
    {wanted: name}}; raises BuildError when a required module is neither a module nor built in.
    """
    files: list[str] = []
    builtin: list[str] = []
    absent: list[str] = []
    chosen: dict[str, str] = {}
    for names, required in INITRD_MODULES:
        for name in names:
            if name.replace("-", "_") in builtins:
                builtin.append(name)
                chosen[names[0]] = f"{name} (built in)"
                break
            text = resolve(name)
            if text is None:
                continue
            deps, also_builtin = parse_show_depends(text)
            builtin += [b for b in also_builtin if b not in builtin]
            files += [f for f in deps if f not in files]
            chosen[names[0]] = name
            break
        else:
            if required:
                raise BuildError(
                    f"the kernel has no {' or '.join(names)} (neither a module nor built in), which the "
                    "initrd needs to reach the root disk and the shares"
                )
            absent.append("/".join(names))
    return {"files": files, "builtin": builtin, "absent": absent, "chosen": chosen}


def compression_of(data: bytes) -> str:
    """The compression of a kernel image's payload, as far as it can be told from its magic."""
    if data[:4] == b"\x7fELF":
        return "none (ELF)"
    for kind, magic in (("zstd", b"\x28\xb5\x2f\xfd"), ("xz", b"\xfd7zXZ\x00"), ("gzip", b"\x1f\x8b\x08")):
        if magic in data[:4 << 20]:
            return kind
    return "unknown"


def find_release_dirs(stage: Path) -> list[Path]:
    """`lib/modules/<release>` folders holding a kernel's modules (merged /usr or not)."""
    found = []
    for base in (stage / "lib/modules", stage / "usr/lib/modules"):
        if base.is_dir() and not base.is_symlink():
            found += [d for d in sorted(base.iterdir()) if d.is_dir() and not d.is_symlink()]
    return found


def modules_tree(path: Path) -> Path:
    """The `<release>` folder of a `make modules_install` tree: DIR/lib/modules/<rel>, DIR/<rel>
    or DIR itself."""
    if (path / "modules.order").is_file() or (path / "kernel").is_dir():
        return path
    candidates = find_release_dirs(path) or [
        d for d in sorted(path.iterdir()) if (d / "modules.order").is_file() or (d / "kernel").is_dir()
    ]
    if len(candidates) != 1:
        what = ", ".join(str(c) for c in candidates) or "none"
        raise BuildError(f"--modules {path}: expected one lib/modules/<release> tree, found {what}")
    return candidates[0]


# --- steps ---------------------------------------------------------------------------------------


def unpack_debs(debs: list[Path], stage: Path) -> None:
    for deb in debs:
        log(f"unpack {deb.name}")
        run(["dpkg-deb", "-x", str(deb), str(stage)])


def locate_debian(stage: Path) -> tuple[str, Path, Path | None, Path | None]:
    """(release, kernel image, config, System.map) in unpacked Debian packages."""
    dirs = [d for d in find_release_dirs(stage) if (d / "kernel").is_dir() or (d / "vmlinuz").is_file()]
    releases = sorted({d.name for d in dirs})
    if len(releases) != 1:
        raise BuildError(f"expected the packages of one kernel, found releases {releases or 'none'}")
    rel = releases[0]

    def first(*paths: Path) -> Path | None:
        return next((p for p in paths if p.is_file()), None)

    mods = [stage / "lib/modules" / rel, stage / "usr/lib/modules" / rel]
    image = first(stage / f"boot/vmlinuz-{rel}", *(m / "vmlinuz" for m in mods))
    if image is None:
        raise BuildError(
            f"no kernel image for {rel} (neither boot/vmlinuz-{rel} nor lib/modules/{rel}/vmlinuz): "
            "on Debian 7.x kernels it is in linux-binary-<version>"
        )
    config = first(stage / f"boot/config-{rel}", *(m / "config" for m in mods))
    sysmap = first(stage / f"boot/System.map-{rel}", *(m / "System.map" for m in mods))
    return rel, image, config, sysmap


def gather_modules(stage: Path, rel: str, src: Path | None) -> Path:
    """Put the modules at stage/lib/modules/<rel> (copying a user tree, moving a /usr one), trimmed."""
    dest = stage / "lib/modules" / rel
    if src is not None:
        log(f"copy modules from {src}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("build", "source"))
    else:  # Debian packages put modules under /lib or /usr/lib (7.x: split over three packages)
        usr = stage / "usr/lib/modules" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if usr.is_dir() and not dest.is_dir():
            usr.rename(dest)
        elif usr.is_dir():
            merge_into(usr, dest)
    for name in ("build", "source", "vmlinuz", "config", "System.map"):
        path = dest / name
        if path.is_symlink() or path.is_file():
            path.unlink()
    for sub in TRIM:
        shutil.rmtree(dest / sub, ignore_errors=True)
    for path in list(dest.rglob("*")):  # nothing but files and folders on the modules disk
        if path.is_symlink():
            path.unlink()
    run(["depmod", "-b", str(stage), rel])  # the trimmed tree's modules.dep, for modprobe here and in the guest
    return dest


def merge_into(src: Path, dest: Path) -> None:
    """Move every file of `src` into the same place under `dest` (folders merged)."""
    for path in sorted(src.rglob("*")):
        target = dest / path.relative_to(src)
        if path.is_dir() and not path.is_symlink():
            target.mkdir(parents=True, exist_ok=True)
        elif not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
    shutil.rmtree(src)


def decompress_module(src: Path, dest_dir: Path) -> str:
    """Copy one module into the initrd uncompressed (busybox insmod reads plain .ko only)."""
    name = src.name
    if name.endswith(".ko.xz"):
        data = lzma.decompress(src.read_bytes())
    elif name.endswith(".ko.gz"):
        data = gzip.decompress(src.read_bytes())
    elif name.endswith(".ko.zst"):
        data = run(["zstd", "-dcq", str(src)], capture_output=True).stdout
    else:
        data = src.read_bytes()
    plain = name.split(".ko")[0] + ".ko"
    (dest_dir / plain).write_bytes(data)
    return plain


def build_initrd(stage: Path, rel: str, out: Path) -> dict:
    moddir = stage / "lib/modules" / rel
    builtin_file = moddir / "modules.builtin"
    builtins = builtin_names(builtin_file.read_text()) if builtin_file.is_file() else set()

    def resolve(name: str) -> str | None:
        res = subprocess.run(
            ["modprobe", "-d", str(stage), "-S", rel, "--show-depends", name],
            capture_output=True,
            text=True,
        )
        return res.stdout if res.returncode == 0 and res.stdout.strip() else None

    plan = plan_initrd(resolve, builtins)
    ird = out / "initrd.d"
    for sub in ("bin", "proc", "sys", "dev", "newroot", "modules"):
        (ird / sub).mkdir(parents=True)
    busybox = shutil.which("busybox")
    if busybox is None:
        raise BuildError("missing 'busybox' (busybox-static): run scripts/install-host-deps.sh")
    shutil.copy(busybox, ird / "bin/busybox")
    shutil.copy(HERE / "initrd-init.sh", ird / "init")
    (ird / "init").chmod(0o755)
    order = [decompress_module(Path(f), ird / "modules") for f in plan["files"]]
    (ird / "modules/order").write_text("".join(f"{name}\n" for name in order))
    log(f"initrd: {len(order)} modules; built in: {', '.join(plan['builtin']) or 'none'}")
    with open(out / "initrd.img", "wb") as img:
        find = subprocess.Popen(["find", "."], cwd=ird, stdout=subprocess.PIPE)
        cpio = subprocess.Popen(
            ["cpio", "-o", "-H", "newc", "--quiet"], cwd=ird, stdin=find.stdout, stdout=subprocess.PIPE
        )
        gz = subprocess.Popen(["gzip", "-1"], stdin=cpio.stdout, stdout=img)
        assert find.stdout and cpio.stdout
        find.stdout.close()
        cpio.stdout.close()
        if gz.wait() or cpio.wait() or find.wait():
            raise BuildError("packing the initrd failed")
    shutil.rmtree(ird)
    return {"initrd_modules": order, "builtin": plan["builtin"], "absent": plan["absent"], "chosen": plan["chosen"]}


def build_modules_disk(stage: Path, rel: str, out: Path) -> dict:
    moddir = stage / "lib/modules" / rel
    total = sum(p.stat().st_size + 4096 for p in moddir.rglob("*") if p.is_file())
    size_mib = total * 115 // 100 // (1 << 20) + 32
    log(f"modules.raw ({size_mib} MiB, mkfs.ext4 -d, no loop mount)")
    run(
        [
            "mkfs.ext4", "-q", "-F", "-L", "pmemkit-mods", "-m", "0", "-O", "^has_journal",
            "-d", str(stage / "lib/modules"), str(out / "modules.raw"), f"{size_mib}M",
        ]
    )  # fmt: skip
    suffixes = {p.name.split(".ko", 1)[1] or "none" for p in moddir.rglob("*.ko*")}
    return {"module_compression": sorted(s.lstrip(".") for s in suffixes), "modules_disk_mib": size_mib}


def extract_vmlinux(image: Path, out: Path) -> str:
    spec = importlib.util.spec_from_file_location("extract_vmlinux", HERE / "extract-vmlinux.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = image.read_bytes()
    (out / "vmlinux").write_bytes(module.extract(data))
    return compression_of(data)


def download(apt_config: Path, packages: list[str], dest: Path) -> list[Path]:
    dest.mkdir(parents=True)
    log(f"download {' '.join(packages)}")
    run(["apt-get", "-q", "-c", str(apt_config), "download", *packages], cwd=dest, stdout=subprocess.DEVNULL)
    return sorted(dest.glob("*.deb"))


def main() -> None:
    parser = argparse.ArgumentParser(description="Build one pmemkit kernel layer.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--meta", default="{}", help="JSON object recorded in manifest.json")
    parser.add_argument("--apt-config", type=Path)
    parser.add_argument("--download", nargs="+", default=[])
    parser.add_argument("--deb", nargs="+", type=Path, default=[])
    parser.add_argument("--image", type=Path)
    parser.add_argument("--modules", type=Path)
    parser.add_argument("--config", type=Path)
    args = parser.parse_args()
    out: Path = args.out
    if out.exists():
        raise BuildError(f"{out} exists already")
    out.mkdir(parents=True)
    stage = out / "stage"
    stage.mkdir()
    meta = json.loads(args.meta)
    debs = list(args.deb)
    if args.download:
        debs += download(args.apt_config, args.download, out / "debs")
    if debs:
        unpack_debs(debs, stage)
        rel, image, config, sysmap = locate_debian(stage)
        src = None
    elif args.image and args.modules:
        src = modules_tree(args.modules.resolve())
        rel, image, config, sysmap = src.name, args.image, None, None
    else:
        raise BuildError("give --download, --deb or --image with --modules")
    config = args.config or config
    if config is None:
        raise BuildError(f"kernel {rel} comes without a config: give --kernel-config FILE")
    log(f"kernel {rel}: vmlinux (ELF, for PVH boot)")
    meta["vmlinuz_compression"] = extract_vmlinux(image, out)
    shutil.copy(config, out / "config")
    if sysmap is not None and sysmap.stat().st_size > 4096:  # 7.x ships a placeholder line
        shutil.copy(sysmap, out / "System.map")
    gather_modules(stage, rel, src)
    meta.update(build_initrd(stage, rel, out))
    meta.update(build_modules_disk(stage, rel, out))
    meta["kernel_release"] = rel
    meta["built"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    shutil.rmtree(stage)
    shutil.rmtree(out / "debs", ignore_errors=True)
    (out / "manifest.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    log(f"done: {rel}")


if __name__ == "__main__":
    try:
        main()
    except BuildError as exc:
        print(f"build-kernel: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        print(f"build-kernel: {exc}", file=sys.stderr)
        sys.exit(1)
