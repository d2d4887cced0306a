#!/bin/sh
# Builds the no_std C library as an object a Linux x86-64 module links (Kbuild), and gates it.
#
# Usage: ffi/build-kernel.sh [OUTDIR] [NAME]
#   OUTDIR  where the results go (default: $CARGO_TARGET_DIR/kernel-obj or target/kernel-obj)
#   NAME    object name in the module's Kbuild (default: swapdio_rs)
# Produces, in OUTDIR:
#   NAME.o_shipped   relocatable object: exactly the functions include/swapdio.h declares
#                    (derived from the header), every other symbol local
#   .NAME.o.cmd      the command file Kbuild/modpost expect next to every object
#   swapdio.h        a copy of include/swapdio.h
#   exports.txt      the exported function names, one per line
#   stack-report.txt size, relocation types and the static stack depth per exported function
# Use it from a module's Kbuild file:
#   obj-m += mymod.o
#   mymod-y := mymod_main.o NAME.o
# with OUTDIR's NAME.o_shipped and .NAME.o.cmd copied (or built) into the module directory;
# the C side defines swapdio_panic_hook() (BUG()) and the kernel provides mem*/bcmp.
#
# The build FAILS on any gate of ffi/kernel-objcheck.py: SSE/AVX instructions, red-zone
# accesses, relocation types the module loader rejects (GOTPCREL, REX_GOTPCRELX, R_X86_64_32),
# undefined symbols beyond mem*/bcmp and swapdio_panic_hook, core::fmt/core::panicking code,
# and stack depth above the budgets:
#   SWAPDIO_STACK_BUDGET_CALLBACK  bytes from any entry point to a callback (default 2048)
#   SWAPDIO_STACK_BUDGET_TOTAL     bytes from any entry point to any leaf  (default 3072)
# Environment: CARGO (cargo binary), CARGO_TARGET_DIR; the Rust build goes to
# $CARGO_TARGET_DIR/kernel-build so its flags never invalidate the userspace builds.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
out=${1:-$target/kernel-obj}
name=${2:-swapdio_rs}
cargo=${CARGO:-cargo}
budget_cb=${SWAPDIO_STACK_BUDGET_CALLBACK:-2048}
budget_total=${SWAPDIO_STACK_BUDGET_TOTAL:-3072}
header=$root/include/swapdio.h
check="python3 $root/ffi/kernel-objcheck.py"
build=$target/kernel-build
triple=x86_64-unknown-linux-gnu

[ "$(uname -m)" = x86_64 ] || { echo "build-kernel.sh: only x86-64 is supported" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Kernel codegen: no PIC/GOT (static, relro off), addresses in the top 2 GiB (code-model
# kernel), no red zone (interrupts share the stack), no SSE (the kernel does not save FPU
# state and its stack is 8-byte aligned), no unwind tables or bitcode to carry along.
# `--target` keeps these flags off build scripts and proc-macros (host crates).
# -sse/-sse2 on x86-64 triggers one future-incompatibility warning per crate (rust#116344).
RUSTFLAGS="-C relocation-model=static -C code-model=kernel -C no-redzone=yes \
-C target-feature=-sse,-sse2 -C relro-level=off -C force-unwind-tables=no -C debuginfo=0 \
-C embed-bitcode=no" CARGO_TARGET_DIR=$build \
    "$cargo" rustc --manifest-path "$root/Cargo.toml" -p swapdio-ffi --lib --no-default-features \
    --profile ffi --crate-type staticlib --target "$triple" --quiet 2>"$out/rustc.log" || {
    cat "$out/rustc.log" >&2; exit 1; }
grep -v -e 'future-incompat' -e 'unstable feature specified for' -e 'rust-lang/rust/issues/116344' \
    -e '^ *= note' -e '^warning: `swapdio' -e '^$' -e 'cargo report' "$out/rustc.log" >&2 || true
archive=$build/$triple/ffi/libswapdio_ffi.a

$check exports "$header" > "$out/exports.txt"
undefs=$(sed 's/^/-u /' "$out/exports.txt" | tr '\n' ' ')
keep=$(sed 's/^/--keep-global-symbol=/' "$out/exports.txt" | tr '\n' ' ')
tmp=$out/.$name.tmp.o
# Link what the exports reach into one object, drop everything else, then make every symbol
# but the exports local (the kernel's namespace must see only swapdio_*).
# shellcheck disable=SC2086
ld -r --gc-sections $undefs -o "$tmp" --whole-archive "$archive" 2>/dev/null ||
    # shellcheck disable=SC2086
    ld -r --gc-sections $undefs -o "$tmp" "$archive"
# shellcheck disable=SC2086
objcopy $keep --remove-section=.llvmbc --remove-section=.llvmcmd --remove-section=.eh_frame \
    --remove-section=.rela.eh_frame --remove-section=.comment --remove-section=.note.GNU-stack --strip-debug \
    "$tmp" "$out/$name.o_shipped"
rm -f "$tmp"
# A non-executable-stack note keeps the kernel's linker quiet about the stack.
objcopy --add-section .note.GNU-stack=/dev/null --set-section-flags .note.GNU-stack=contents,readonly \
    "$out/$name.o_shipped"
printf 'cmd_%s.o := cat %s.o_shipped > %s.o\n' "$name" "$name" "$name" > "$out/.$name.o.cmd"
cp "$header" "$out/swapdio.h"

$check check "$out/$name.o_shipped" "$header" --budget-callback "$budget_cb" \
    --budget-total "$budget_total" --report "$out/stack-report.txt"
echo "$out"
