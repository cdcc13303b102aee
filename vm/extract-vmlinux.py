#!/usr/bin/env python3
"""Extract the ELF vmlinux from a bzImage, so QEMU can boot it through PVH.

Why: under TCG the XZ decompression of Debian's bzImage costs ~2.3 s of every boot; PVH boots the
ELF directly (see shared/reference/vm-facts.md). Handles XZ (Debian 5.10, 6.1), ZSTD (6.12, 7.x) and
gzip payloads (a user's own build), and passes an ELF vmlinux through unchanged.
Usage: extract-vmlinux.py BZIMAGE_OR_VMLINUX OUTPUT
"""

import lzma
import shutil
import subprocess
import sys
import zlib

MAGICS = {"xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd", "gzip": b"\x1f\x8b\x08"}


def _try(kind: str, blob: bytes) -> bytes | None:
    try:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(blob)
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)
        if shutil.which("zstd") is None:
            return None
        res = subprocess.run(["zstd", "-dcq"], input=blob, capture_output=True, check=False)
        return res.stdout or None
    except (lzma.LZMAError, zlib.error):
        return None


def extract(image: bytes) -> bytes:
    if image[:4] == b"\x7fELF":
        return image
    for kind, magic in MAGICS.items():
        pos = image.find(magic)
        while pos != -1:
            out = _try(kind, image[pos:])
            if out and out[:4] == b"\x7fELF":
                return out
            pos = image.find(magic, pos + 1)
    hint = "" if shutil.which("zstd") else " (zstd is not installed: 6.12 and newer kernels need it)"
    raise SystemExit(f"extract-vmlinux: no XZ, ZSTD or gzip ELF payload found{hint}")


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: extract-vmlinux.py BZIMAGE OUTPUT")
    with open(sys.argv[1], "rb") as f:
        elf = extract(f.read())
    with open(sys.argv[2], "wb") as f:
        f.write(elf)


if __name__ == "__main__":
    main()
