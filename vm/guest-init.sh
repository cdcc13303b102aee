#!/bin/sh
# PID 1 of the pmemkit guest (no systemd: boot time under TCG matters). The initrd has already
# loaded the modules and mounted /proc, /sys, /dev (with pts, shm), /run, /tmp and both 9p shares. This copies the
# pmemkit package from the host's read-only checkout to tmpfs (imports over 9p cost seconds under
# TCG), runs the plan, saves dmesg and powers off. Phase markers on the serial console let the host
# time each step.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
phase() { echo "PMEMKIT-PHASE $1 $(cut -d' ' -f1 /proc/uptime)"; }
# Power off with nothing from the root disk: sysrq o shuts the disks down while PID 1 still runs,
# and anything it then needs from the disk (exec'ing sleep, or a page of the shell itself) fails;
# when init then runs off the end of this script the kernel panics "Attempted to kill init" (seen
# on 7.3 in one boot of two, after every observation had been written). So PID 1 first becomes the
# static busybox the initrd left on tmpfs (/run/pmemkit/busybox), and only that triggers the
# power-off and waits. Without it (an old initrd), the wait is a read of a FIFO on tmpfs that no
# one writes, then a builtin loop: init never exits. minbase has no poweroff(8).
bb=/run/pmemkit/busybox
off() {
  sync
  [ -x "$bb" ] && exec "$bb" sh -c "echo o > /proc/sysrq-trigger; exec $bb sleep 2147483647"
  mkfifo /run/pmemkit-halt 2>/dev/null
  echo o > /proc/sysrq-trigger
  read -r _ < /run/pmemkit-halt
  while :; do :; done
}
phase init
mkdir -p /tmp/src && cp -a /mnt/pmemkit-src/pmemkit /tmp/src/ || { echo "PMEMKIT-FATAL no pmemkit source on the share"; off; }
cd /mnt/pmemkit-out || { echo "PMEMKIT-FATAL no results share"; off; }
phase python
PYTHONPATH=/tmp/src python3 -m pmemkit guest-run --plan /mnt/pmemkit-out/plan.json --out /mnt/pmemkit-out
rc=$?
dmesg > /mnt/pmemkit-out/dmesg.txt 2>/dev/null
phase "done rc=$rc"
cd /
umount /mnt/pmemkit-out 2>/dev/null
off
