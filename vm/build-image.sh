#!/usr/bin/env bash
# Build pmemkit's guest root into OUTDIR (which must not exist yet): a Debian bookworm root made
# with debootstrap from the host's own apt mirror, without a kernel or kernel modules (those are
# per-kernel layers, vm/build-kernel.py), as rootfs.raw made with `mkfs.ext4 -d` (no loop mounts).
# The caller (pmemkit.vm.image) builds into a temporary folder and renames it when this script
# succeeds, so an interrupted build never leaves an image a later run would trust.
# Usage: build-image.sh OUTDIR IMAGE_ID
set -euo pipefail
out=${1:?usage: build-image.sh OUTDIR IMAGE_ID}
image_id=${2:?usage: build-image.sh OUTDIR IMAGE_ID}
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
log() { echo "[image $(date +%T)] $*"; }
fail() { echo "build-image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap and chroot need it); run: sudo make image"
for cmd in debootstrap mkfs.ext4 python3 gcc sha256sum; do
  command -v "$cmd" >/dev/null || fail "missing '$cmd': run scripts/install-host-deps.sh"
done
[ ! -e "$out" ] || fail "$out exists already"

# The mirror is whatever the host's apt uses for $suite: no host name is written in this repo.
mirror=$(python3 "$here/apt-mirror.py" "$suite") || fail "no Debian mirror for $suite in the host's apt sources"
log "mirror: $mirror"

mkdir -p "$out"
root=$out/root

# pmemkit's timing helper (pmemkit/guest/native/prtime.c, part of the image key in vm/image.py):
# compiled here on the host, static so it needs nothing from the guest's libc, installed below as
# /usr/local/lib/pmemkit/prtime with prtime.json (its sha256, the compiler, the source's sha256).
helper_src=$(cd "$here/.." && pwd)/pmemkit/guest/native/prtime.c
[ -f "$helper_src" ] || fail "missing $helper_src: the checkout is incomplete"
log "timing helper: gcc -O2 -static $(basename "$helper_src")"
gcc -O2 -static -o "$out/prtime" "$helper_src" 2>"$out/prtime-gcc.log" \
  || { cat "$out/prtime-gcc.log" >&2; fail "gcc could not build the timing helper (needs gcc and libc6-dev)"; }
helper_sha=$(sha256sum "$out/prtime" | cut -d' ' -f1)
helper_cc=$(gcc --version | head -n1)
helper_src_sha=$(sha256sum "$helper_src" | cut -d' ' -f1)
helper_json=$(python3 -c 'import json, sys; print(json.dumps({"sha256": sys.argv[1], "compiler": sys.argv[2],
  "cflags": "-O2 -static", "source_sha256": sys.argv[3]}))' "$helper_sha" "$helper_cc" "$helper_src_sha")
packages=$(grep -v '^\s*#' "$here/packages.txt" | xargs | tr ' ' ,)
log "debootstrap $suite (minbase + $packages)"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$out/debootstrap.log" 2>&1 \
  || { tail -n 20 "$out/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }

# No kernel here: every kernel is a layer of its own (vm/build-kernel.py: vmlinux, initrd and a
# modules disk the initrd mounts read-only at /lib/modules), so this root serves them all.
mkdir -p "$root/lib/modules"

log "guest root: pmemkit init, marker, trimming"
install -m 0755 "$here/guest-init.sh" "$root/sbin/pmemkit-init"
install -D -m 0755 "$out/prtime" "$root/usr/local/lib/pmemkit/prtime"
echo "$helper_json" >"$root/usr/local/lib/pmemkit/prtime.json"
echo "$image_id" >"$root/etc/pmemkit-vm"
echo pmemkit-guest >"$root/etc/hostname"
mkdir -p "$root"/mnt/pmemkit-src "$root"/mnt/pmemkit-out "$root"/mnt/pmemkit
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package}=${Version}\n' >"$out/packages.lock"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
  "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale

log "rootfs.raw (mkfs.ext4 -d, no loop mount)"
mkfs.ext4 -q -F -L pmemkit-root -d "$root" "$out/rootfs.raw" 1536M
rm -rf "$root"
printf '{"image_id": "%s", "suite": "%s", "built": "%s", "prtime": %s}\n' "$image_id" "$suite" \
  "$(date -u +%FT%TZ)" "$helper_json" >"$out/manifest.json"
log "done: $out"
