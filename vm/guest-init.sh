#!/bin/sh
# PID 1 of the pmemkit guest (no systemd: boot time under TCG matters). The initrd has already
# loaded the modules and mounted /proc, /sys, /dev (with pts, shm), /run, /tmp and both 9p shares. This copies the
# pmemkit package from the host's read-only checkout to tmpfs (imports over 9p cost seconds under
# TCG), runs the plan, saves dmesg and powers off. Phase markers on the serial console let the host
# time each step.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
phase() { echo "PMEMKIT-PHASE $1 $(cut -d' ' -f1 /proc/uptime)"; }
off() { sync; echo o > /proc/sysrq-trigger; sleep 10; }  # minbase has no poweroff(8)
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
