#!/bin/busybox sh
# /init of pmemkit's small initrd: load the few modules needed to reach the root disk, mount it,
# hand over to the guest init. Anything that fails drops a message on the console and powers off
# (the host sees qemu exit and reports the console), never a shell nobody can type into.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() { echo "PMEMKIT-FATAL initrd: $*"; echo o > /proc/sysrq-trigger; sleep 5; poweroff -f; }
echo "PMEMKIT-PHASE initrd $(cut -d' ' -f1 /proc/uptime)"
while read -r mod; do
  insmod "/modules/$mod" || echo "initrd: insmod $mod failed"
done < /modules/order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -b /dev/vda ] || die "no /dev/vda: the root disk did not appear"
mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || die "cannot mount /dev/vda"
mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot /sbin/pmemkit-init
