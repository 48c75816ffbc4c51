#!/usr/bin/env bash
# Coverage-guided fuzzing of every surface that reads outside data.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all of them, see fuzz/Cargo.toml) for SECONDS
# (default 60), one after the other, with cargo-fuzz on the nightly
# toolchain, then prints per target: executions per second, total
# executions, and coverage as libFuzzer counts it (`cov`: edges, `ft`:
# features). Fails if any target crashed; the crashing input is left in
# fuzz/artifacts/TARGET/. Each run starts from the committed corpus and the
# regression inputs and writes what it learns to fuzz/target/corpus/TARGET,
# never to the committed corpus (minimise into it with `cargo fuzz cmin`).
#
# Environment: FUZZ_SANITIZER (default `none`: the project is safe Rust, and
# its overflow checks come from the debug assertions cargo-fuzz builds
# with; set `address` for ASan). Targets run one at a time, so a long run
# takes one core of the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(core http tokenserver sim)
fi
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain (cargo +nightly); nothing fuzzed" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed (cargo install --locked cargo-fuzz)" >&2
    exit 2
fi

cd fuzz
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer)"
cargo +nightly fuzz build -s "$sanitizer" 2>&1 | tail -n 1

failed=0
report=()
for t in "${targets[@]}"; do
    work="target/corpus/$t"
    mkdir -p "$work" "artifacts/$t" "regressions/$t" "corpus/$t"
    log="target/fuzz-$t.log"
    dict=()
    if [ -f "dicts/$t.dict" ]; then
        dict=("-dict=dicts/$t.dict")
    fi
    echo "fuzz: $t for ${seconds}s"
    set +e
    cargo +nightly fuzz run -s "$sanitizer" "$t" "$work" "corpus/$t" "regressions/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="artifacts/$t/" "${dict[@]}" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    # The last status line libFuzzer printed: "#N DONE cov: E ft: F ...".
    status=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
    verdict=ok
    if [ "$rc" -ne 0 ]; then
        verdict="CRASH (exit $rc, see fuzz/$log and fuzz/artifacts/$t/)"
        failed=1
        grep -m 1 -A 2 -E "panicked at|ERROR: libFuzzer" "$log" | sed 's/^/    /' || true
    fi
    report+=("$(printf '%-12s %10s %12s %8s %8s  %s' "$t" "${rate:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$verdict")")
done

echo
printf '%-12s %10s %12s %8s %8s  %s\n' target execs/s "total execs" edges features verdict
printf '%s\n' "${report[@]}"
exit "$failed"
