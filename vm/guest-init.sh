#!/bin/sh
# PID 1 of the pmemkit guest (no systemd: boot time under TCG matters). Mounts what the run needs,
# loads the nvdimm/dax modules, runs the plan from the host's read-only checkout, saves dmesg,
# powers off. Phase markers on the serial console let the host time each step.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
phase() { echo "PMEMKIT-PHASE $1 $(cut -d' ' -f1 /proc/uptime)"; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
phase init
modprobe -a 9pnet_virtio 9p
mkdir -p /mnt/pmemkit-src /mnt/pmemkit-out
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro" pmemkit_src /mnt/pmemkit-src || echo "PMEMKIT-FATAL cannot mount the source share"
mount -t 9p -o "$opts" pmemkit_out /mnt/pmemkit-out || echo "PMEMKIT-FATAL cannot mount the results share"
# Drivers of every pmem source; a source absent from this VM simply binds nothing.
modprobe -a nfit nd_e820 nd_pmem nd_btt dax_pmem device_dax virtio_pmem 2>/dev/null
phase modules
cd /mnt/pmemkit-out || { echo o > /proc/sysrq-trigger; sleep 10; }
PYTHONPATH=/mnt/pmemkit-src PYTHONPYCACHEPREFIX=/tmp/pycache \
  python3 -m pmemkit guest-run --plan /mnt/pmemkit-out/plan.json --out /mnt/pmemkit-out
rc=$?
dmesg > /mnt/pmemkit-out/dmesg.txt 2>/dev/null
phase "done rc=$rc"
sync
umount /mnt/pmemkit-out 2>/dev/null
# minbase has no poweroff(8); the sysrq 'o' powers off at once (qemu exits with status 0).
echo o > /proc/sysrq-trigger
sleep 10
