#!/usr/bin/env bash
# Runs the loom models (tests/loom_*.rs), then proves each can fail: every deliberately
# broken variant (`--cfg swapdio_broken="..."`, see src/pool.rs and src/engine/) is
# built (SWAPDIO_BROKEN_VARIANT, read by build.rs; equivalent to
# RUSTFLAGS="--cfg loom --cfg swapdio_broken=\"<name>\"") and run against the model that
# must catch it, and the run must FAIL with a model panic (not a build error).
#
#   scripts/verify-loom.sh            # models at their default bounds + broken variants
#   scripts/verify-loom.sh models     # models only
#   scripts/verify-loom.sh broken     # broken variants only
#
# LOOM_MAX_PREEMPTIONS overrides every model's default bound (refcount 3, others 2).
# Build dir: $CARGO_TARGET_DIR (default target/loom in the repository). The broken builds reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
target="${CARGO_TARGET_DIR:-$PWD/target/loom}"
# The models need only the std testkit: skip the Linux driver's dependencies.
features=(--no-default-features --features std)
models=(loom_refcount loom_pool loom_plug loom_split)
# variant:model that must catch it
broken=(
  release_on_first_put:loom_refcount
  pool_double_handout:loom_pool
  plug_flush_late:loom_plug
  release_before_finish:loom_plug
  unpin_twice:loom_split
)

if [ "$what" = all ] || [ "$what" = models ]; then
  for m in "${models[@]}"; do
    echo "== loom model $m"
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$target" \
      cargo test --release -q "${features[@]}" --test "$m" -- --nocapture --test-threads 1 2>&1 | grep -E "loom model|test result|panicked|FAILED" 
    test "${PIPESTATUS[0]}" = 0 || { echo "FAILED: loom model $m"; exit 1; }
  done
fi

if [ "$what" = all ] || [ "$what" = broken ]; then
  for vm in "${broken[@]}"; do
    v="${vm%%:*}" m="${vm##*:}"
    echo "== broken variant $v must be caught by $m"
    # build.rs turns SWAPDIO_BROKEN_VARIANT into `--cfg swapdio_broken="$v"` for this crate
    # only, so the dependencies built for the models are reused.
    # Build first: a build failure must not count as "caught".
    SWAPDIO_BROKEN_VARIANT="$v" RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$target" \
      cargo test --release -q "${features[@]}" --test "$m" --no-run
    set +e
    out=$(SWAPDIO_BROKEN_VARIANT="$v" RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$target" \
      LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" \
      cargo test --release -q "${features[@]}" --test "$m" -- --test-threads 1 2>&1)
    rc=$?
    set -e
    if [ "$rc" = 0 ] || ! grep -q "panicked" <<<"$out"; then
      echo "NOT CAUGHT: broken variant $v passed $m (rc=$rc)"; echo "$out" | tail -20; exit 1
    fi
    echo "caught: $(grep -m1 -A2 'panicked' <<<"$out" | sed -n 2p)"
  done
fi
echo "loom: all models pass, all broken variants caught"
