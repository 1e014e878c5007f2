#!/usr/bin/env bash
# CI-sized fuzzing: builds every target of this directory and runs each for a short,
# bounded time over its committed seeds, failing on the first crash, timeout or
# out-of-memory. See README.md ("CI-sized run").
#
# Environment (all optional):
#   FUZZ_SECONDS      seconds per target (default 20)
#   FUZZ_TARGETS      space-separated targets (default: all, from `cargo fuzz list`)
#   FUZZ_SANITIZER    cargo-fuzz sanitizer (default `none`: the code is
#                     forbid(unsafe_code), and ASan roughly halves the speed)
#   CARGO_TARGET_DIR  where to build (default fuzz/target)
#   FUZZ_NICE         nice level for the fuzzers (default 19: CI shares its cores)
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-none}
nice_level=${FUZZ_NICE:-19}
# cargo-fuzz needs nightly-only flags; on a stable toolchain this unlocks them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz/ci.sh: cargo-fuzz is not installed and 'cargo install cargo-fuzz' failed (see above)" >&2
        exit 1
    fi
fi

start=$(date +%s)
if [ -n "${FUZZ_TARGETS:-}" ]; then
    targets=$FUZZ_TARGETS
    for t in $targets; do
        cargo fuzz build -s "$sanitizer" "$t"
    done
else
    targets=$(cargo fuzz list)
    cargo fuzz build -s "$sanitizer"
fi
echo "fuzz/ci.sh: built in $(($(date +%s) - start)) s"

failed=()
for t in $targets; do
    corpus=$(mktemp -d)
    dict=()
    [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
    echo "fuzz/ci.sh: $t for ${seconds} s"
    # The seeds directory comes second: libFuzzer writes new inputs only into the first.
    if ! nice -n "$nice_level" cargo fuzz run -s "$sanitizer" "$t" "$corpus" "fuzz/seeds/$t" -- \
        "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>"$corpus.log"; then
        tail -n 40 "$corpus.log" >&2
        failed+=("$t")
    else
        grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$corpus.log" | tail -n 2 || true
    fi
    rm -rf "$corpus" "$corpus.log"
done

echo "fuzz/ci.sh: finished in $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/ci.sh: crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
