#!/usr/bin/env bash
# The swapdio_swapdev test: a guest kernel (QEMU, TCG) that swaps through swapdio.
#
# Builds the kernel object of the library (ffi/build-kernel.sh), the module
# (ffi/kernel/swapdev) and the static workload, makes an ext4 image holding a swap file,
# boots the kernel (scripts/qemu-kernel/lib.sh) and, in that one boot, runs the workload
# with /dev/swapdio0 in device mode, in file mode, with the kernel's own swapon of the
# same file, then the two swapdio modes again with injected write failures. Fails on any
# FAIL line, mismatch, too little swap traffic, unbalanced pins, a changed backing file,
# or an oops/WARN/BUG/hung task/OOM kill in the guest log; prints the side-by-side table.
#
# Usage: scripts/qemu-kernel/swapdev.sh     exit 0 pass, 1 fail, 77 skip (reason printed)
# Environment (defaults in brackets): the settings of scripts/qemu-kernel/lib.sh, and
#   SWAPDEV_RAM_MIB [256] guest RAM; SWAPDEV_MIB [3*RAM] memory the workload touches;
#   SWAPDEV_ROUNDS [2] verify+rewrite rounds after the first fill;
#   SWAPDEV_SWAPFILE_MIB [MIB] swap file size; SWAPDEV_MIN_PAGES [100000] minimum
#   pswpout and pswpin per swapdio run; SWAPDEV_FAIL_EVERY [50] fail every Nth backend
#   write with -EIO in the fault runs (0: no fault runs); SWAPDEV_FAULT_MIB [2*RAM];
#   SWAPDEV_RUNS [device file kernel, then device-faults file-faults]: the runs, in order;
#   SWAPDEV_STALL_S [180]: when the guest's swap counters have not moved for that long,
#   the guest is made to print every blocked task and every CPU's backtrace (sysrq 9, w, l
#   through the QEMU monitor) and the boot is ended: a hang is reported with its stacks;
#   SWAPDEV_SAVE_LOG: copy the guest's console log there.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/qemu-kernel/lib.sh"
export PATH=$PATH:/usr/sbin:/sbin
ram=${SWAPDEV_RAM_MIB:-256}
mib=${SWAPDEV_MIB:-$((3 * ram))}
rounds=${SWAPDEV_ROUNDS:-2}
swap_mib=${SWAPDEV_SWAPFILE_MIB:-$mib}
min_pages=${SWAPDEV_MIN_PAGES:-100000}
fail_every=${SWAPDEV_FAIL_EVERY:-50}
fault_mib=${SWAPDEV_FAULT_MIB:-$((2 * ram))}
runs="device file kernel"
[ "$fail_every" -gt 0 ] && runs="$runs device-faults file-faults"
runs=${SWAPDEV_RUNS:-$runs}
stall_s=${SWAPDEV_STALL_S:-180}
t0=$(date +%s)

skip() { echo "SKIP: $*"; exit 77; }
qk_require_tools || skip "$QK_SKIP_REASON"
for t in mkfs.ext4 mkswap python3 ld objcopy; do
  command -v "$t" >/dev/null || skip "missing $t (e2fsprogs, util-linux, python3, binutils)"
done
echo 'int main(void){return 0;}' | gcc -static -x c -o /dev/null - 2>/dev/null ||
  skip "gcc cannot link static programs (libc6-dev)"
qk_kernel || skip "no Debian kernel: install linux-image-amd64 linux-headers-amd64, or allow apt-get download"
qk_workdir
echo "kernel $QK_KVER; guest RAM $ram MiB; workload $mib MiB x $rounds rounds; swap file $swap_mib MiB"

# 1. The library as a kernel object, the module, the workload.
mod=$QK_WORK/module
mkdir -p "$mod"
cp "$root"/ffi/kernel/swapdev/{Kbuild,swapdio_swapdev.h,swapdio_swapdev_*.c} "$mod/"
"$root/ffi/build-kernel.sh" "$mod" >"$QK_WORK/build-kernel.log" 2>&1 ||
  { cat "$QK_WORK/build-kernel.log"; echo "FAIL: ffi/build-kernel.sh"; exit 1; }
qk_build_module "$mod" 2>&1 | grep -v 'Skipping BTF generation' || true
[ -f "$mod/swapdio_swapdev.ko" ] || { echo "FAIL: module build"; exit 1; }
gcc -static -O2 -Wall -Wextra -Werror -o "$QK_WORK/workload" "$root/ffi/kernel/swapdev/workload.c"

# 2. An ext4 image (4 KiB blocks) holding a swap file written with data: no holes, no
#    unwritten extents (a zero block would become a hole). Its header covers all but the
#    last MiB: that tail is outside every slot, and must be unchanged at the end.
mkdir -p "$QK_WORK/fs"
head -c $(((swap_mib + 1) << 20)) /dev/zero | tr '\0' '\132' >"$QK_WORK/fs/swapfile"
mkswap "$QK_WORK/fs/swapfile" $((swap_mib << 10)) >/dev/null 2>&1
chmod 600 "$QK_WORK/fs/swapfile"
truncate -s $((swap_mib + swap_mib / 8 + 64))M "$QK_WORK/disk.img"
mkfs.ext4 -q -F -b 4096 -d "$QK_WORK/fs" "$QK_WORK/disk.img"
rm -rf "$QK_WORK/fs"

# 3. Boot: the guest script runs every case and prints SWAPDEV lines.
qk_initramfs "$QK_WORK/initrd.gz" "$root/scripts/qemu-kernel/swapdev-guest.sh" \
  "$mod/swapdio_swapdev.ko" "$QK_WORK/workload" -- virtio_pci virtio_blk crc32c_generic ext4
log=$QK_WORK/guest.log
: >"$log"
export QK_MONITOR=$QK_WORK/monitor.sock

# Stall watchdog: the guest prints its swap counters every 10 s (SWAPDEV progress). When
# they stop changing for stall_s seconds, ask the guest kernel for its blocked tasks (w),
# every CPU's backtrace (l), at console log level 9 (9: the stacks are KERN_INFO), then
# end the boot.
watchdog() {
  local last="" seen=$SECONDS cur
  while sleep 10; do
    cur=$(grep -a '^SWAPDEV \(progress\|result\)' "$log" | tail -n1 | sed 's/nr_free_pages [0-9]* nr_writeback [0-9]* //' || true)
    # The clock starts at the first progress line (booting and building are not swapping).
    if [ -z "$cur" ] || [ "$cur" != "$last" ]; then last=$cur seen=$SECONDS; continue; fi
    [ $((SECONDS - seen)) -ge "$stall_s" ] || continue
    echo "SWAPDEV host: no swap progress for ${stall_s}s: sysrq 9, w, l" >>"$QK_WORK/watchdog.log"
    qk_monitor "sendkey alt-sysrq-9" "sendkey alt-sysrq-w" "sendkey alt-sysrq-l" || true
    sleep 30
    qk_monitor quit || true
    return
  done
}
tb=$(date +%s)
rc=0
watchdog &
wd=$!
QK_MEM=$ram QK_TIMEOUT=${QK_TIMEOUT:-900} \
  QK_APPEND="zswap.enabled=0 transparent_hugepage=never swapdev.mib=$mib swapdev.rounds=$rounds \
swapdev.faultmib=$fault_mib swapdev.fail=$fail_every swapdev.runs=${runs// /,} $QK_APPEND" \
  qk_boot "$QK_WORK/initrd.gz" "$log" "$QK_WORK/disk.img" || rc=$?
kill "$wd" 2>/dev/null || true
wait "$wd" 2>/dev/null || true
echo "guest: QEMU status $rc after $(($(date +%s) - tb))s"
[ ! -s "$QK_WORK/watchdog.log" ] || cat "$QK_WORK/watchdog.log"
[ -z "${SWAPDEV_SAVE_LOG:-}" ] || cp "$log" "$SWAPDEV_SAVE_LOG"

# 4. Verdict.
sed -n 's/^.*\(swapdio_swapdev: .*\)/\1/p; /^SWAPDEV\|^workload/p' "$log"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
[ "$rc" = 0 ] || bad "QEMU exited with $rc"
qk_check_log "$log" || fail=1
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
[ ! -s "$QK_WORK/watchdog.log" ] || bad "the guest stopped swapping (stacks in the guest log)"
for run in $runs; do
  line=$(grep "^SWAPDEV result run=$run " "$log" || true)
  [ -n "$line" ] || { bad "$run: no result"; continue; }
  [ "$(echo "$line" | field rc)" = 0 ] || bad "$run: the workload failed"
  [ "$(echo "$line" | field mismatched_bytes)" = 0 ] || bad "$run: mismatched bytes"
  [ "$(echo "$line" | field outside_slots_unchanged)" = yes ] || bad "$run: the file changed outside its slots"
  case $run in device | file)
    [ "$(echo "$line" | field pswpout)" -ge "$min_pages" ] || bad "$run: fewer than $min_pages pages out"
    [ "$(echo "$line" | field pswpin)" -ge "$min_pages" ] || bad "$run: fewer than $min_pages pages in" ;;
  esac
done
while read -r l; do
  [ "$(echo "$l" | field pins)" = "$(echo "$l" | field unpins)" ] || bad "pins unbalanced: $l"
  [ "$(echo "$l" | field fail_write_every)" = 0 ] || [ "$(echo "$l" | field injected_write_errors)" -gt 0 ] ||
    bad "no write failure was injected: $l"
done < <(grep -a 'swapdio_swapdev: stats: pins=' "$log")
loads=$(echo "$runs" | tr ' ' '\n' | grep -vc '^kernel$' || true)
[ "$(grep -ac 'swapdio_swapdev: stats: pins=' "$log")" = "$loads" ] || bad "missing module statistics (unload)"

printf '\n%-14s %10s %10s %9s %13s %15s %11s\n' run pswpout pswpin seconds "swap pages/s" "bytes verified" mismatches
for run in $runs; do
  line=$(grep "^SWAPDEV result run=$run " "$log" || true)
  [ -n "$line" ] || continue
  printf '%-14s %10s %10s %9s %13s %15s %11s\n' "$run" "$(echo "$line" | field pswpout)" \
    "$(echo "$line" | field pswpin)" "$(echo "$line" | field seconds)" \
    "$(echo "$line" | field swapped_pages_per_s)" "$(echo "$line" | field bytes_verified)" \
    "$(echo "$line" | field mismatched_bytes)"
done
if [ "$fail" != 0 ]; then
  if [ -s "$QK_WORK/watchdog.log" ]; then
    echo "guest's blocked tasks and CPU backtraces (sysrq w, l):"
    sed -n '/sysrq: Show Blocked State/,/sysrq: Show State/p' "$log" | head -n 400
  fi
  echo "guest log tail:"; tail -n 40 "$log"
fi
echo "swapdev: $([ "$fail" = 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - t0))s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$fail"
