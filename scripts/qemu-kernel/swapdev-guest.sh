#!/bin/sh
# The guest's /init for scripts/qemu-kernel/swapdev.sh (busybox sh): the swapdio_swapdev
# memory-pressure runs. Prints "SWAPDEV ..." lines for the host, the kernel log, QK_DONE.
# Kernel command line: swapdev.mib=N swapdev.rounds=N swapdev.faultmib=N swapdev.fail=N
# swapdev.runs=NAME,NAME,... (device file kernel device-faults file-faults)
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^swapdev\.$1=//p"; }
MIB=$(arg mib) ROUNDS=$(arg rounds) FAULTMIB=$(arg faultmib) FAIL=$(arg fail)
RUNS=$(arg runs | tr ',' ' ')
# The host's stall watchdog sends sysrq keys (blocked tasks, backtraces) through QEMU.
echo 1 >/proc/sys/kernel/sysrq
for m in virtio_pci virtio_blk crc32c_generic ext4; do modprobe $m || echo "SWAPDEV FAIL modprobe $m"; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o noatime /dev/vda /mnt || echo "SWAPDEV FAIL mount"
F=/mnt/swapfile
PAGES=$(($(stat -c %s $F) / 4096))
# The file outside its slots: the header page (slot 0: the module keeps the outer header
# in memory) and the last MiB (past the header's last page: no slot maps there).
outside() { { dd if=$F bs=4096 count=1; dd if=$F bs=4096 skip=$((PAGES - 256)); } 2>/dev/null | md5sum | cut -d' ' -f1; }
echo 3 >/proc/sys/vm/drop_caches
SUM0=$(outside)
echo "SWAPDEV info mem_total_kib=$(sed -n 's/MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) swapfile_pages=$PAGES workload_mib=$MIB rounds=$ROUNDS"

# run NAME MIB ROUNDS DEVICE [MODULE-ARGS...]: one workload run on one swap device; with
# module arguments, /dev/swapdio0 is set up (insmod, mkswap) before and torn down after.
run() {
  name=$1 mib=$2 rounds=$3 dev=$4
  shift 4
  if [ $# -gt 0 ]; then
    insmod /swapdio_swapdev.ko file=$F "$@" || { echo "SWAPDEV FAIL $name: insmod"; return; }
    mkswap $dev >/dev/null || echo "SWAPDEV FAIL $name: mkswap"
  fi
  swapon $dev || { echo "SWAPDEV FAIL $name: swapon"; return; }
  (while sleep 10; do echo "SWAPDEV progress $name $(grep -E '^(pswpin|pswpout|nr_writeback|nr_free_pages) ' /proc/vmstat | tr '\n' ' ')"; done) &
  ticker=$!
  /workload "$mib" "$rounds" >/tmp/w.out
  rc=$?
  kill $ticker
  swapoff $dev || echo "SWAPDEV FAIL $name: swapoff"
  if [ $# -gt 0 ]; then rmmod swapdio_swapdev || echo "SWAPDEV FAIL $name: rmmod"; fi
  echo 3 >/proc/sys/vm/drop_caches
  same=yes
  [ "$(outside)" = "$SUM0" ] || same=no
  echo "SWAPDEV result run=$name rc=$rc outside_slots_unchanged=$same $(sed -n 's/^WORKLOAD //p' /tmp/w.out)"
}

for r in $RUNS; do
  case $r in
  device) run device "$MIB" "$ROUNDS" /dev/swapdio0 mode=device ;;
  file) run file "$MIB" "$ROUNDS" /dev/swapdio0 mode=file ;;
  kernel) run kernel "$MIB" "$ROUNDS" $F ;;
  device-faults) run device-faults "$FAULTMIB" 1 /dev/swapdio0 mode=device fail_write_every=$FAIL ;;
  file-faults) run file-faults "$FAULTMIB" 1 /dev/swapdio0 mode=file fail_write_every=$FAIL ;;
  *) echo "SWAPDEV FAIL unknown run $r" ;;
  esac
done
umount /mnt || echo "SWAPDEV FAIL umount"
dmesg
echo QK_DONE
poweroff -f
