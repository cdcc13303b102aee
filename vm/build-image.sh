#!/usr/bin/env bash
# Build pmemkit's guest image into OUTDIR (which must not exist yet): a Debian bookworm root made
# with debootstrap from the host's own apt mirror, Debian's kernel unpacked from its .deb, an ELF
# vmlinux for PVH boot, a small busybox initrd, and rootfs.raw made with `mkfs.ext4 -d` (no loop
# mounts). The caller (pmemkit.vm.image) builds into a temporary folder and renames it when this
# script succeeds, so an interrupted build never leaves an image a later run would trust.
# Usage: build-image.sh OUTDIR IMAGE_ID
set -euo pipefail
out=${1:?usage: build-image.sh OUTDIR IMAGE_ID}
image_id=${2:?usage: build-image.sh OUTDIR IMAGE_ID}
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
log() { echo "[image $(date +%T)] $*"; }
fail() { echo "build-image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap and chroot need it); run: sudo make image"
for cmd in debootstrap mkfs.ext4 busybox cpio gzip depmod modprobe dpkg-deb apt-get python3; do
  command -v "$cmd" >/dev/null || fail "missing '$cmd': run scripts/install-host-deps.sh"
done
[ ! -e "$out" ] || fail "$out exists already"

# The mirror is whatever the host's apt uses for $suite: no host name is written in this repo.
mirror=$(python3 "$here/apt-mirror.py" "$suite") || fail "no Debian mirror for $suite in the host's apt sources"
log "mirror: $mirror"

mkdir -p "$out"
root=$out/root
packages=$(grep -v '^\s*#' "$here/packages.txt" | xargs | tr ' ' ,)
log "debootstrap $suite (minbase + $packages)"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$out/debootstrap.log" 2>&1 \
  || { tail -n 20 "$out/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }

# Debian's kernel without its initramfs hooks (which would build a 36 MB initrd we do not use).
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then apt-get update -qq; kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); fi
[ -n "$kpkg" ] || fail "apt knows no linux-image-amd64 (run apt-get update)"
kver=${kpkg#linux-image-}
log "kernel $kpkg"
(cd "$out" && apt-get download -q "$kpkg" >/dev/null) || fail "apt-get download $kpkg failed"
# --keep-directory-symlink: bookworm roots are merged-/usr; plain extraction would replace the
# /lib symlink by a directory holding only the modules, and no program would find libc.
dpkg-deb --fsys-tarfile "$out"/"$kpkg"_*.deb | tar -x -C "$root" --keep-directory-symlink
rm -f "$out"/"$kpkg"_*.deb
moddir=$root/lib/modules/$kver/kernel
# Drivers the guest never loads (graphics, wireless, media, sound, real NICs, RDMA HW): less to pack.
rm -rf "$moddir"/drivers/{gpu,media,net/wireless,net/ethernet,infiniband,staging,bluetooth,iio,hid,input,usb,isdn,mmc} \
  "$moddir"/sound "$moddir"/net/{wireless,mac80211,bluetooth}
depmod -b "$root" "$kver"

log "vmlinux (ELF, for PVH boot)"
python3 "$here/extract-vmlinux.py" "$root/boot/vmlinuz-$kver" "$out/vmlinux"
cp "$root/boot/config-$kver" "$out/config"

log "initrd (busybox + modules for the root disk, 9p and pmem)"
ird=$out/initrd.d
mkdir -p "$ird"/{bin,proc,sys,dev,newroot,modules}
cp "$(command -v busybox)" "$ird/bin/busybox"
install -m 0755 "$here/initrd-init.sh" "$ird/init"
: >"$ird/modules/order"
# One module per call: modprobe reads any further words as module parameters.
# Root disk, 9p shares, and the drivers of every pmem source (NFIT, virtio-pmem, dax). Not nd_e820:
# pmemkit loads it itself, after the page-less control has used the legacy range through /dev/mem.
initrd_modules="virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p nfit nd_pmem nd_btt
  dax_pmem device_dax virtio_pmem"
for m in $initrd_modules; do modprobe -d "$root" -S "$kver" --show-depends "$m"; done \
  | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
    name=$(basename "$ko")
    case "$name" in
      *.ko.xz) xz -dc "$ko" >"$ird/modules/${name%.xz}"; name=${name%.xz} ;;
      *.ko.zst) zstd -dcq "$ko" >"$ird/modules/${name%.zst}"; name=${name%.zst} ;;
      *) cp "$ko" "$ird/modules/$name" ;;
    esac
    echo "$name" >>"$ird/modules/order"
  done
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initrd.img"
rm -rf "$ird"

log "guest root: pmemkit init, marker, trimming"
install -m 0755 "$here/guest-init.sh" "$root/sbin/pmemkit-init"
echo "$image_id" >"$root/etc/pmemkit-vm"
echo pmemkit-guest >"$root/etc/hostname"
mkdir -p "$root"/mnt/pmemkit-src "$root"/mnt/pmemkit-out "$root"/mnt/pmemkit
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package}=${Version}\n' >"$out/packages.lock"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
  "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale "$root"/boot/vmlinuz-* \
  "$root"/boot/System.map-*

log "rootfs.raw (mkfs.ext4 -d, no loop mount)"
mkfs.ext4 -q -F -L pmemkit-root -d "$root" "$out/rootfs.raw" 1536M
rm -rf "$root"
printf '{"image_id": "%s", "kernel_package": "%s", "kernel_release": "%s", "suite": "%s", "built": "%s"}\n' \
  "$image_id" "$kpkg" "$kver" "$suite" "$(date -u +%FT%TZ)" >"$out/manifest.json"
log "done: $out"
