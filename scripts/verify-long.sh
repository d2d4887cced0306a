#!/usr/bin/env bash
# The heavier verification runs, not part of CI:
#  * every loom model at preemption bound 3 (the refcount model at 4), then the broken
#    variants at bound 3;
#  * every fuzz target for $FUZZ_SECS seconds (default 600);
#  * the fault-injection test with $SWAPDIO_FAULT_SEEDS seeds (default 400) of
#    $SWAPDIO_FAULT_OPS operations (default 10000).
#
#   scripts/verify-long.sh [loom|fuzz|faults ...]   # default: all three
set -euo pipefail
cd "$(dirname "$0")/.."
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(loom fuzz faults)
for p in "${parts[@]}"; do
  case "$p" in
    loom)
      for m in loom_refcount loom_pool loom_plug loom_split; do
        bound=3; [ "$m" = loom_refcount ] && bound=4
        echo "== loom $m at preemption bound $bound"
        RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=$bound CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/loom}" \
          cargo test --release -q --no-default-features --features std --test "$m" -- --nocapture --test-threads 1 2>&1 |
          grep -E "loom model|test result|panicked"
        test "${PIPESTATUS[0]}" = 0
      done
      LOOM_MAX_PREEMPTIONS=3 scripts/verify-loom.sh broken
      ;;
    fuzz) scripts/verify-fuzz.sh "${FUZZ_SECS:-600}" ;;
    faults)
      SWAPDIO_FAULT_SEEDS="${SWAPDIO_FAULT_SEEDS:-400}" SWAPDIO_FAULT_OPS="${SWAPDIO_FAULT_OPS:-10000}" \
        CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" \
        cargo test --release --no-default-features --features std --test fault_injection -- --nocapture 2>&1 |
        grep -E "fault injection:|test result|panicked"
      test "${PIPESTATUS[0]}" = 0
      ;;
    *) echo "unknown part $p (loom|fuzz|faults)"; exit 2 ;;
  esac
done
echo "verify-long: done"
