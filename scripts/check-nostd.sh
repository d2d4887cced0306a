#!/usr/bin/env bash
# Proves the no_std core is really no_std:
#  1. `cargo build -p swapdio --no-default-features` succeeds (no std, no alloc);
#  2. the optimised library references no libc symbol: its undefined symbols are only
#     Rust's own (mangled, or LLVM's cross-unit anon.*) and the compiler intrinsics
#     memcpy/memmove/memset/memcmp/bcmp that the kernel also exports;
#  3. it references no core::panicking symbol at all: no panic is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -p swapdio --no-default-features
cargo build -p swapdio --no-default-features --features alloc
cargo build -p swapdio --no-default-features --release
rlib="$target/release/libswapdio.rlib"
undef=$(nm -u --format=just-symbols "$rlib" 2>/dev/null | sort -u)
foreign=$(grep -vE '^(_ZN|_R|anon\.)' <<<"$undef" | grep -vxE 'memcpy|memmove|memset|memcmp|bcmp' || true)
if [ -n "$foreign" ]; then
  echo "no_std check FAILED: libswapdio.rlib references non-Rust symbols:"; echo "$foreign"; exit 1
fi
panics=$(grep -c 'panicking' <<<"$undef" || true)
if [ "$panics" != 0 ]; then
  echo "no_std check FAILED: $panics references to core::panicking (a panic is reachable):"
  grep 'panicking' <<<"$undef" | head; exit 1
fi
echo "no_std check passed: undefined symbols limited to Rust core and $(grep -xE 'memcpy|memmove|memset|memcmp|bcmp' <<<"$undef" | tr '\n' ' '); no panic path"
