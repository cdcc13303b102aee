#!/usr/bin/env bash
# Install the host packages pmemkit needs, with apt, only when something is missing (gcc and
# libc6-dev: the image build compiles the timing helper; fio: the host
# tests run the real fio parser against the real tool, as the guest does; chromium and its driver:
# a host test opens report.html in a real headless browser).
# Why a script: `make run` and `make test` must work on a fresh Debian machine with nothing
# installed by hand (README). Run as root (or through sudo).
set -euo pipefail
# command -> Debian package that provides it
declare -A need=(
  [qemu-system-x86_64]=qemu-system-x86 [qemu-img]=qemu-utils [debootstrap]=debootstrap
  [mkfs.ext4]=e2fsprogs [busybox]=busybox-static [cpio]=cpio [depmod]=kmod [xz]=xz-utils
  [zstd]=zstd [gzip]=gzip [fio]=fio [truncate]=coreutils [apt-get]=apt [dpkg-deb]=dpkg [modprobe]=kmod
  [chromium]=chromium [chromedriver]=chromium-driver [gcc]=gcc
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 \
    || missing+=("${need[$cmd]}")
done
# The image build compiles pmemkit's timing helper with `gcc -static`, which needs libc's static
# archive (libc6-dev); `run --target local` compiles it the same way when gcc is there.
dpkg-query -W -f='${Status}' libc6-dev 2>/dev/null | grep -q 'ok installed' || missing+=(libc6-dev)
# debootstrap verifies the archive with this keyring.
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | xargs)
echo "install-host-deps: installing $pkgs"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
echo "install-host-deps: done"
