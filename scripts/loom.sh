#!/usr/bin/env bash
# Runs the loom suite (tests/loom/) and fails if it ran no test: outside
# the loom cfg that file compiles to nothing, so a green run that ran zero
# tests would prove nothing.
#
# The cfg is our own (`tokenflight_loom`), not `loom`: a plain `--cfg loom`
# would also switch tokio into loom mode. Its own target dir keeps the
# differently configured build from invalidating the normal one.
#
# Each model sets a preemption bound of 3 unless LOOM_MAX_PREEMPTIONS says
# otherwise (see `PREEMPTIONS` in tests/loom/common.rs for why that suffices).
# The models judge the handles from their own report: the `observe` feature.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="${RUSTFLAGS:-} --cfg tokenflight_loom"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --release --features observe --test loom -- --test-threads=2 "$@" 2>&1 | tee "$log"

passed="$(sed -n 's/^test result: ok\. \([0-9]\+\) passed.*/\1/p' "$log" | tail -1)"
if [[ -z "$passed" || "$passed" -eq 0 ]]; then
    echo "loom: no test ran; is tests/loom/ still under cfg(tokenflight_loom)?" >&2
    exit 1
fi
echo "loom: $passed models passed"
