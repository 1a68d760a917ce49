#!/usr/bin/env bash
# Fuzzes the JT/T 808 stream decoder (fuzz/fuzz_targets/stream_decoder.rs) for a
# bounded time and exits non-zero on any crash or panic libFuzzer reports.
#
#   scripts/fuzz.sh                       # 60 s
#   RRPC_FUZZ_SECONDS=600 scripts/fuzz.sh
#
# Runs on the stable toolchain: the target is built without sanitizers
# (--sanitizer none). Should a cargo-fuzz release pass nightly-only flags even
# then, the build is retried with RUSTC_BOOTSTRAP=1, for this build only.
# Installs cargo-fuzz if it is missing. New corpus entries go to
# fuzz/corpus/stream_decoder (not committed); fuzz/seeds/stream_decoder holds
# the published test vectors as starting points. A crash leaves its input in
# fuzz/artifacts/stream_decoder/; replay it with
#   cargo fuzz run --sanitizer none stream_decoder <file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${RRPC_FUZZ_SECONDS:-60}"
target=stream_decoder

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== cargo fuzz build --sanitizer none $target"
if ! cargo fuzz build --sanitizer none "$target"; then
    echo "== retrying with RUSTC_BOOTSTRAP=1 (nightly-only flags on a stable toolchain)"
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build --sanitizer none "$target"
fi

corpus="fuzz/corpus/$target"
mkdir -p "$corpus"
echo "== cargo fuzz run $target for ${seconds}s"
cargo fuzz run --sanitizer none "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1
echo "== fuzzing: no crash in ${seconds}s"
