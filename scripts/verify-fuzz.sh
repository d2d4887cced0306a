#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on any crash,
# panic, timeout or out-of-memory. Needs a nightly toolchain and cargo-fuzz (installed
# here if missing).
#
#   scripts/verify-fuzz.sh            # 60 s per target (the CI smoke run)
#   scripts/verify-fuzz.sh 600        # 10 min per target
#   scripts/verify-fuzz.sh 60 lifecycle activation   # chosen targets only
#
# The committed seeds (fuzz/corpus/<target>/) are read but never modified: new inputs go
# to a scratch corpus. A crash leaves its input in fuzz/artifacts/<target>/ and prints
# the `cargo fuzz run` command that reproduces it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(header activation lifecycle c_abi api_surface nbd_handshake nbd_replies)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "corpus/$t"
  echo "== fuzz $t for ${secs}s"
  log="$scratch/$t.log"
  if ! cargo +nightly fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    grep -v '^\s*[0-9]*: \|^\s*at ' "$log" | tail -40
    echo "FAILED: fuzz target $t"; exit 1
  fi
  grep -E '^Done|stat::number_of_executed_units|stat::peak_rss_mb' "$log" | tr '\n' ' '; echo
done
echo "fuzz: all targets ran ${secs}s each without a crash"
