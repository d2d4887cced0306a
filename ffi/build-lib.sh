#!/bin/sh
# Builds the no_std C archive and installs it with the header and pkg-config file:
#   $PREFIX/lib/libswapdio.a  $PREFIX/include/swapdio.h  $PREFIX/lib/pkgconfig/swapdio.pc
# Usage: ffi/build-lib.sh [PREFIX]   (default: $CARGO_TARGET_DIR/swapdio-c or target/swapdio-c)
# Set SWAPDIO_STD=1 to build the std archive instead (adds swapdio_engine_new; needs libc,
# libpthread, libdl and libgcc_s at link time: pkg-config --static swapdio prints them).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
prefix=${1:-$target/swapdio-c}
cargo=${CARGO:-cargo}
if [ "${SWAPDIO_STD:-0}" = 1 ]; then
    features="--features std"
    libs_private="-lpthread -ldl -lgcc_s -lc -lm"
    cflags="-DSWAPDIO_STD"
else
    features="--no-default-features"
    libs_private=""
    cflags=""
fi
# The ffi profile is release with panic = "abort" (root Cargo.toml).
# shellcheck disable=SC2086
"$cargo" rustc --manifest-path "$root/Cargo.toml" -p swapdio-ffi --lib $features --profile ffi \
    --crate-type staticlib --quiet
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp "$target/ffi/libswapdio_ffi.a" "$prefix/lib/libswapdio.a"
cp "$root/include/swapdio.h" "$prefix/include/swapdio.h"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/ffi/Cargo.toml" | head -n 1)
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@LIBS_PRIVATE@|$libs_private|" \
    -e "s|@CFLAGS@|$cflags|" "$root/ffi/swapdio.pc.in" > "$prefix/lib/pkgconfig/swapdio.pc"
echo "$prefix"
