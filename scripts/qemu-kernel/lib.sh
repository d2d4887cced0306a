# shellcheck shell=bash
# Reusable helpers to build an out-of-tree module against a Debian kernel and run it in
# QEMU (TCG: no KVM needed) from a busybox initramfs. Source it from bash:
#
#   . scripts/qemu-kernel/lib.sh
#   qk_require_tools || { echo "SKIP: $QK_SKIP_REASON"; exit 0; }
#   qk_kernel                       # sets QK_KVER QK_VMLINUZ QK_MODDIR QK_KBUILD
#   qk_workdir                      # sets QK_WORK (removed by qk_cleanup; trap set)
#   qk_build_module DIR             # make -C $QK_KBUILD M=DIR modules (the kernel's compiler)
#   qk_initramfs OUT.cpio.gz INIT_SCRIPT [FILE...] -- [MODULE...]
#                                   # busybox + FILEs in / + MODULEs (and their deps) from
#                                   # $QK_MODDIR, loadable in the guest with `modprobe NAME`
#   qk_boot INITRD LOG [DISK.img...]  # boot, serial console to LOG, each disk as virtio-blk
#                                   # (/dev/vda, /dev/vdb, ...); returns QEMU's status
#   qk_check_log LOG                # fails on FAIL lines, oops, WARN, BUG, soft lockup,
#                                   # panic, or a missing "QK_DONE" marker
#
# Settings (environment, all optional):
#   QK_ROOT     an extracted Debian root holding boot/vmlinuz-*, lib/modules/VER and
#               usr/src/linux-headers-VER (made by qk_fetch_debian); default: use the
#               host's installed linux-image-amd64/linux-headers-amd64, else fetch into
#               QK_CACHE
#   QK_FETCH=1  never use the host's installed kernel: fetch and extract (CI does this, so
#               the host's /boot and initramfs hooks are never touched)
#   QK_CACHE    where qk_fetch_debian downloads and extracts (default target/qemu-kernel)
#   QK_SMP (2) QK_MEM (512, MiB) QK_TIMEOUT (300, seconds) QK_APPEND (extra kernel args)
#   QK_MONITOR  a path: QEMU's human monitor listens on that unix socket (qk_monitor)
#   QK_KEEP=1   keep QK_WORK after qk_cleanup (for debugging)
#
# The guest's /init is the caller's INIT_SCRIPT (busybox sh). It may use qk_* nothing: the
# library puts /bin/busybox and its applets, /lib/modules/VER (modules.dep) in place, and
# the init script must mount what it needs, print its results, then "QK_DONE" and
# `poweroff -f` (the kernel is booted with panic=-1 and QEMU with -no-reboot, so a panic
# ends the run too). Packages: qemu-system-x86 busybox-static cpio gcc-12 make, plus
# linux-image-amd64 and linux-headers-amd64 (installed, or fetched by qk_fetch_debian).

QK_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QK_REPO=$(cd "$QK_LIB_DIR/../.." && pwd)
: "${QK_CACHE:=${CARGO_TARGET_DIR:-$QK_REPO/target}/qemu-kernel}"
: "${QK_SMP:=2}" "${QK_MEM:=512}" "${QK_TIMEOUT:=300}" "${QK_APPEND:=}"
QK_SKIP_REASON=""
QK_QEMU_PID=""

qk_log() { echo "qemu-kernel: $*" >&2; }

# qk_require_tools: returns 1 and sets QK_SKIP_REASON if a tool is missing.
qk_require_tools() {
  local missing=() t
  for t in qemu-system-x86_64 cpio make gcc timeout gzip file; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  qk_busybox >/dev/null 2>&1 || missing+=("busybox (static: busybox-static)")
  if [ ${#missing[@]} -gt 0 ]; then
    QK_SKIP_REASON="missing ${missing[*]} (apt-get install qemu-system-x86 busybox-static cpio gcc-12 make)"
    return 1
  fi
  if [ "$(uname -m)" != x86_64 ]; then QK_SKIP_REASON="host is not x86-64"; return 1; fi
  return 0
}

# qk_busybox: prints the path of a statically linked busybox.
qk_busybox() {
  local b
  for b in /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null)"; do
    [ -n "$b" ] && [ -x "$b" ] || continue
    if file -L "$b" 2>/dev/null | grep -q 'statically linked' || ! ldd "$b" >/dev/null 2>&1; then
      echo "$b"; return 0
    fi
  done
  return 1
}

# qk_versions ROOT: kernel versions under ROOT with a vmlinuz, modules and a build tree,
# newest first.
qk_versions() {
  local root=$1 v
  for v in $(ls "$root/lib/modules" 2>/dev/null | sort -rV); do
    [ -f "$root/boot/vmlinuz-$v" ] && [ -f "$root/lib/modules/$v/modules.dep" ] &&
      [ -d "$root/usr/src/linux-headers-$v" ] && echo "$v"
  done
}

# qk_fetch_debian [DEST]: downloads linux-image-amd64, linux-headers-amd64 and what they
# pull in (image, headers, common headers, kbuild) with `apt-get download` and extracts
# them into DEST (default $QK_CACHE/root) without installing anything. Sets QK_ROOT.
qk_fetch_debian() {
  local dest=${1:-$QK_CACHE/root} debs=$QK_CACHE/debs pkgs p image headers
  command -v apt-get >/dev/null || { qk_log "apt-get not found"; return 1; }
  mkdir -p "$debs" "$dest"
  image=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)
  headers=$(apt-cache depends linux-headers-amd64 | sed -n 's/^ *Depends: \(linux-headers-[0-9].*\)/\1/p' | head -n1)
  [ -n "$image" ] && [ -n "$headers" ] || { qk_log "cannot resolve the Debian kernel packages"; return 1; }
  pkgs="$image $headers $(apt-cache depends "$headers" |
    sed -n 's/^ *Depends: \(linux-headers-[0-9].*-common\|linux-kbuild-[0-9.]*\)$/\1/p' | tr '\n' ' ')"
  qk_log "fetching $pkgs"
  # shellcheck disable=SC2086
  (cd "$debs" && apt-get -o APT::Sandbox::User=root download $pkgs >/dev/null) || return 1
  for p in "$debs"/*.deb; do dpkg-deb -x "$p" "$dest"; done
  # modules.dep is made at install time: make it here.
  local v
  for v in $(ls "$dest/lib/modules"); do PATH=$PATH:/usr/sbin:/sbin depmod -b "$dest" "$v" || return 1; done
  # The headers' Makefile includes the common tree by absolute path: point it into DEST.
  local mk
  for mk in "$dest"/usr/src/linux-headers-*/Makefile; do
    sed -i "s|include /usr/src/|include $dest/usr/src/|" "$mk"
  done
  QK_ROOT=$dest
}

# qk_kernel: finds the kernel to boot and build against (never a hard-coded version).
# Sets QK_KVER, QK_VMLINUZ, QK_MODDIR, QK_KBUILD, QK_ROOT.
qk_kernel() {
  local v
  if [ -z "${QK_ROOT:-}" ]; then
    v=$(qk_versions / | head -n1)
    if [ "${QK_FETCH:-0}" != 1 ] && [ -n "$v" ] && [ -r "/boot/vmlinuz-$v" ]; then
      QK_ROOT=/
    elif [ -n "$(qk_versions "$QK_CACHE/root" | head -n1)" ]; then
      QK_ROOT=$QK_CACHE/root
    else
      qk_fetch_debian || return 1
    fi
  fi
  QK_KVER=$(qk_versions "$QK_ROOT" | head -n1)
  [ -n "$QK_KVER" ] || { qk_log "no kernel with modules and headers under $QK_ROOT"; return 1; }
  QK_ROOT=${QK_ROOT%/}
  QK_VMLINUZ=$QK_ROOT/boot/vmlinuz-$QK_KVER
  QK_MODDIR=$QK_ROOT/lib/modules/$QK_KVER
  QK_KBUILD=$QK_ROOT/usr/src/linux-headers-$QK_KVER
  [ -r "$QK_VMLINUZ" ] || { qk_log "$QK_VMLINUZ is not readable"; return 1; }
  export QK_KVER QK_VMLINUZ QK_MODDIR QK_KBUILD QK_ROOT
}

# qk_kernel_cc: the compiler the kernel was built with (gcc-12 for Debian 6.1).
qk_kernel_cc() {
  local cc
  cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="gcc-\([0-9]*\) .*/gcc-\1/p' "$QK_KBUILD/.config" 2>/dev/null)
  if [ -n "$cc" ] && command -v "$cc" >/dev/null; then echo "$cc"; else echo gcc; fi
}

# qk_workdir: a fresh temporary directory in QK_WORK, removed by qk_cleanup (EXIT trap).
qk_workdir() {
  QK_WORK=$(mktemp -d "${TMPDIR:-/tmp}/qemu-kernel.XXXXXX")
  trap qk_cleanup EXIT
  trap 'exit 130' INT TERM
}

# qk_cleanup: stops the QEMU this library started (by its pid) and removes QK_WORK.
qk_cleanup() {
  if [ -n "$QK_QEMU_PID" ] && kill -0 "$QK_QEMU_PID" 2>/dev/null; then
    kill "$QK_QEMU_PID" 2>/dev/null; wait "$QK_QEMU_PID" 2>/dev/null
  fi
  QK_QEMU_PID=""
  if [ -n "${QK_WORK:-}" ] && [ "${QK_KEEP:-0}" != 1 ]; then rm -rf "$QK_WORK"; fi
}

# qk_build_module DIR [MAKE ARGS...]: builds the out-of-tree module in DIR.
qk_build_module() {
  local dir=$1; shift
  make -s -C "$QK_KBUILD" M="$dir" CC="$(qk_kernel_cc)" "$@" modules
}

# qk_module_deps NAME...: relative paths (modules.dep order: dependencies first) of the
# named modules of QK_MODDIR and everything they depend on.
qk_module_deps() {
  local dep=$QK_MODDIR/modules.dep name line seen=" " out=() m
  for name in "$@"; do
    line=$(grep -E "/${name//_/[_-]}\.ko(\.[a-z]+)?:" "$dep" | head -n1)
    [ -n "$line" ] || { qk_log "module $name not found in $dep"; return 1; }
    # shellcheck disable=SC2086
    for m in $(echo ${line#*:} | tr ' ' '\n' | tac) "${line%%:*}"; do
      case $seen in *" $m "*) ;; *) seen="$seen$m "; out+=("$m") ;; esac
    done
  done
  printf '%s\n' "${out[@]}"
}

# qk_initramfs OUT INIT [FILE...] [-- MODULE...]: a gzip'ed cpio with static busybox and
# its applets, INIT as /init, each FILE in / (by basename), and the named modules of the
# kernel with their dependencies under /lib/modules/VER (load them with `modprobe NAME`).
qk_initramfs() {
  local out=$1 init=$2 dir f m bb
  shift 2
  dir=$(mktemp -d "${QK_WORK:-${TMPDIR:-/tmp}}/initramfs.XXXXXX")
  mkdir -p "$dir"/{bin,sbin,dev,proc,sys,tmp,mnt,lib/modules/"$QK_KVER"}
  bb=$(qk_busybox) || { qk_log "no static busybox"; return 1; }
  cp "$bb" "$dir/bin/busybox"
  for f in $("$bb" --list); do
    [ "$f" = busybox ] || ln -sf busybox "$dir/bin/$f"
  done
  for f in modprobe insmod rmmod poweroff reboot; do ln -sf ../bin/busybox "$dir/sbin/$f"; done
  cp "$init" "$dir/init"; chmod +x "$dir/init"
  while [ $# -gt 0 ] && [ "$1" != -- ]; do cp "$1" "$dir/"; shift; done
  [ "${1:-}" = -- ] && shift
  if [ $# -gt 0 ]; then
    for m in $(qk_module_deps "$@"); do
      mkdir -p "$dir/lib/modules/$QK_KVER/$(dirname "$m")"
      cp "$QK_MODDIR/$m" "$dir/lib/modules/$QK_KVER/$m"
    done
  fi
  for f in modules.dep modules.alias modules.builtin modules.order; do
    [ -f "$QK_MODDIR/$f" ] && cp "$QK_MODDIR/$f" "$dir/lib/modules/$QK_KVER/"
  done
  (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
  rm -rf "$dir"
}

# qk_boot INITRD LOG [DISK...]: boots the kernel under TCG with the serial console in LOG,
# each DISK a raw virtio-blk drive. Returns QEMU's status (124: QK_TIMEOUT expired).
qk_boot() {
  local initrd=$1 log=$2 drives=() d rc=0
  shift 2
  for d in "$@"; do drives+=(-drive "file=$d,if=virtio,format=raw,cache=unsafe"); done
  timeout --foreground "$QK_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m "$QK_MEM" \
    -smp "$QK_SMP" -nographic -no-reboot -nic none -kernel "$QK_VMLINUZ" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 rdinit=/init loglevel=4 $QK_APPEND" \
    ${QK_MONITOR:+-monitor "unix:$QK_MONITOR,server,nowait"} "${drives[@]}" </dev/null >"$log" 2>&1 &
  QK_QEMU_PID=$!
  wait "$QK_QEMU_PID" || rc=$?
  QK_QEMU_PID=""
  return "$rc"
}

# qk_monitor CMD...: sends each CMD to the QEMU monitor at QK_MONITOR (e.g. "sendkey
# alt-sysrq-w" to make the guest dump its blocked tasks on the console, "quit").
qk_monitor() {
  [ -n "${QK_MONITOR:-}" ] && [ -S "$QK_MONITOR" ] || return 1
  python3 - "$QK_MONITOR" "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
for cmd in sys.argv[2:]:
    s.sendall(cmd.encode() + b"\n")
    time.sleep(1)
s.close()
PY
}

# qk_check_log LOG: prints the verdict; fails on a FAIL line, an oops, WARN, BUG, soft or
# hard lockup, RCU stall, panic, hung task, OOM kill, or a missing QK_DONE marker (the
# guest did not finish).
qk_check_log() {
  local log=$1 bad
  bad=$(grep -nE '(^|[^A-Za-z])FAIL([^A-Za-z]|$)|Oops|WARNING:|BUG:|soft lockup|hard LOCKUP|rcu_sched self-detected stall|rcu: INFO|Kernel panic|general protection fault|Call Trace|blocked for more than|Out of memory|oom-kill' "$log" || true)
  if [ -n "$bad" ]; then
    qk_log "guest log $log has failures:"; echo "$bad" | head -n 40 >&2; return 1
  fi
  grep -q 'QK_DONE' "$log" || { qk_log "guest did not finish (no QK_DONE marker):"; tail -n 30 "$log" >&2; return 1; }
}
