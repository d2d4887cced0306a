#!/usr/bin/env bash
# Builds the kernel object and the example module, boots them in QEMU (TCG) and checks:
#   * the guest log: every PASS line, RESULT PASS, and no FAIL, oops, WARN, BUG, lockup;
#   * the disk images from the host: the swap header and every slot's page at its mapped
#     position, for the device (raw virtio disk) and the swap file (ext4 image).
# Two boots: 2 CPUs, then 1 CPU (a sync write completed from a workqueue must not spin
# on the only CPU).
#
# Usage: ffi/kernel/qemu-test.sh      exit 0 pass, 1 fail, 77 skip (reason printed)
# Environment: the settings of scripts/qemu-kernel/lib.sh (QK_FETCH=1 to use a fetched
# Debian kernel instead of the installed one, QK_KEEP=1 to keep the work directory),
# SWAPDIO_QEMU_PAGES (default 4096) minimum pages per backend.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../scripts/qemu-kernel/lib.sh
. "$root/scripts/qemu-kernel/lib.sh"
export PATH=$PATH:/usr/sbin:/sbin
pages=${SWAPDIO_QEMU_PAGES:-4096}
t0=$(date +%s)

skip() { echo "SKIP: $*"; exit 77; }
qk_require_tools || skip "$QK_SKIP_REASON"
for t in mkfs.ext4 debugfs python3 ld objcopy; do
  command -v "$t" >/dev/null || skip "missing $t (e2fsprogs, python3, binutils)"
done
qk_kernel || skip "no Debian kernel: install linux-image-amd64 linux-headers-amd64, or allow apt-get download"
echo "kernel $QK_KVER ($QK_VMLINUZ), headers $QK_KBUILD, compiler $(qk_kernel_cc)"
qk_workdir

mod=$QK_WORK/module
mkdir -p "$mod"
cp "$root"/ffi/kernel/{Kbuild,*.c,*.h} "$mod/"
"$root/ffi/build-kernel.sh" "$mod" >"$QK_WORK/build-kernel.log" 2>&1 ||
  { cat "$QK_WORK/build-kernel.log"; echo "FAIL: ffi/build-kernel.sh"; exit 1; }
qk_build_module "$mod" 2>&1 | grep -v 'Skipping BTF generation' || true
[ -f "$mod/swapdio_example.ko" ] || { echo "FAIL: module build"; exit 1; }
echo "built the object and the module in $(( $(date +%s) - t0 ))s"

cat >"$QK_WORK/init" <<EOF
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk crc32c_generic ext4; do modprobe \$m; done
mount -t ext4 /dev/vdb /mnt
dd if=/dev/zero of=/mnt/swapfile bs=1M count=18 conv=fsync 2>/dev/null
sync
insmod /swapdio_example.ko dev=/dev/vda file=/mnt/swapfile pages=$pages
echo "insmod exit status \$?"
rmmod swapdio_example
umount /mnt
sync
dmesg
echo QK_DONE
poweroff -f
EOF

status=0
for smp in 2 1; do
  dev=$QK_WORK/dev.img fs=$QK_WORK/fs.img log=$QK_WORK/guest-smp$smp.log
  rm -f "$dev" "$fs"
  truncate -s 64M "$dev"
  truncate -s 64M "$fs"
  mkfs.ext4 -q -F -b 4096 "$fs"
  qk_initramfs "$QK_WORK/initrd.gz" "$QK_WORK/init" "$mod/swapdio_example.ko" -- \
    virtio_pci virtio_blk crc32c_generic ext4
  tb=$(date +%s)
  rc=0
  QK_SMP=$smp qk_boot "$QK_WORK/initrd.gz" "$log" "$dev" "$fs" || rc=$?
  echo "--- boot with $smp CPU(s): QEMU status $rc, $(( $(date +%s) - tb ))s"
  grep -E 'swapdio_example: (PASS|FAIL|INFO|RESULT)' "$log" | sed 's/^\[[ 0-9.]*\] //' || true
  ok=1
  [ "$rc" = 0 ] || { echo "FAIL: QEMU exited with $rc"; ok=0; }
  qk_check_log "$log" || ok=0
  grep -q 'swapdio_example: RESULT PASS' "$log" || { echo "FAIL: no RESULT PASS line"; ok=0; }
  grep -q 'insmod exit status 0' "$log" || { echo "FAIL: insmod failed"; ok=0; }
  debugfs -R "dump /swapfile $QK_WORK/swapfile" "$fs" >/dev/null 2>&1 ||
    { echo "FAIL: cannot dump /swapfile from the ext4 image"; ok=0; }
  python3 "$root/ffi/kernel/hostcheck.py" "$log" device="$dev" file="$QK_WORK/swapfile" || ok=0
  if [ "$ok" = 1 ]; then echo "PASS: QEMU boot with $smp CPU(s)"; else
    echo "FAIL: QEMU boot with $smp CPU(s); guest log tail:"; tail -n 40 "$log"; status=1; fi
done
echo "qemu-test: $([ $status = 0 ] && echo PASS || echo FAIL) in $(( $(date +%s) - t0 ))s"
exit $status
