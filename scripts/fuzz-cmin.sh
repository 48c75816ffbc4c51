#!/usr/bin/env bash
# Folds what fuzzing learnt into the committed corpora, kept small.
#
#   scripts/fuzz-cmin.sh [TARGET...]
#
# For each target (default: all), adds the inputs scripts/fuzz.sh wrote to
# fuzz/target/corpus/TARGET to fuzz/corpus/TARGET and minimises the result
# with `cargo fuzz cmin`: a greedy set cover of the edges reached (hit
# counts and comparison operands are left out), which keeps a few dozen
# files where a plain merge keeps hundreds. Needs nightly and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(core http tokenserver sim)
fi
sanitizer="${FUZZ_SANITIZER:-none}"

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ -d "target/corpus/$t" ]; then
        find "target/corpus/$t" -type f -exec cp -n {} "corpus/$t/" \;
    fi
    before=$(find "corpus/$t" -type f | wc -l)
    cargo +nightly fuzz cmin -s "$sanitizer" "$t" "corpus/$t" -- \
        -set_cover_merge=1 -use_counters=0 -use_cmp=0 >"target/cmin-$t.log" 2>&1
    after=$(find "corpus/$t" -type f | wc -l)
    size=$(du -sh "corpus/$t" | cut -f1)
    echo "cmin: $t: $before files -> $after ($size)"
done
