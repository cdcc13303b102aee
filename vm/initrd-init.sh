#!/bin/busybox sh
# /init of pmemkit's small initrd. Static busybox does all the early work (every exec of a dynamic
# program costs ~0.2 s under TCG): load the modules for the root disk, the 9p shares and every pmem
# source, mount root, this kernel's modules disk (/dev/vdb, read-only, at /lib/modules: the root is
# shared by every kernel and has none), the shares and the pseudo filesystems, then hand over to
# the guest init.
# Anything that fails prints PMEMKIT-FATAL and powers off: the host reports it, nobody is left
# facing a shell they cannot type into.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() { echo "PMEMKIT-FATAL initrd: $*"; echo o > /proc/sysrq-trigger; while :; do sleep 1; done; }
echo "PMEMKIT-PHASE initrd $(cut -d' ' -f1 /proc/uptime)"
while read -r mod; do
  insmod "/modules/$mod" 2>/dev/null || echo "initrd: insmod $mod failed"
done < /modules/order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -b /dev/vda ] || die "no /dev/vda: the root disk did not appear"
mount -t ext4 -o rw /dev/vda /newroot || die "cannot mount the root disk /dev/vda"
r=/newroot
i=0
while [ ! -b /dev/vdb ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
mount -t ext4 -o ro /dev/vdb $r/lib/modules || die "cannot mount the modules disk /dev/vdb at /lib/modules"
[ -d "$r/lib/modules/$(uname -r)" ] || die "the modules disk has no /lib/modules/$(uname -r)"
mount -t tmpfs tmpfs $r/run
mkdir $r/run/pmemkit && cp /bin/busybox $r/run/pmemkit/busybox  # the guest's power-off path, off the root disk
mount -t tmpfs tmpfs $r/tmp
mkdir -p $r/mnt/pmemkit-src $r/mnt/pmemkit-out
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro,cache=loose" pmemkit_src $r/mnt/pmemkit-src || die "cannot mount the source share"
mount -t 9p -o "$opts" pmemkit_out $r/mnt/pmemkit-out || die "cannot mount the results share"
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
for fs in proc sys dev; do mount --move /$fs $r/$fs; done
exec switch_root $r /sbin/pmemkit-init
