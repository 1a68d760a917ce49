#!/usr/bin/env bash
# Fuzzes every target in fuzz/fuzz_targets/ for a bounded time, one after the other,
# prints the executions per target, and exits non-zero if any target crashed,
# panicked, timed out on an input or ran out of memory (libFuzzer's verdicts).
#
#   scripts/fuzz.sh                                   # 120 s in all, split among the targets
#   RRPC_FUZZ_SECONDS=1200 scripts/fuzz.sh            # a longer run
#   RRPC_FUZZ_TARGETS="stream_decoder" scripts/fuzz.sh   # some targets only
#
# RRPC_FUZZ_SECONDS is the total (default 120); each target gets an equal share, at
# least RRPC_FUZZ_MIN_SECONDS (default 10), so the whole run takes about
# max(total, targets x minimum) plus the build. Each target starts from its committed
# seeds, fuzz/seeds/<target>/ (when there are any), and keeps what it finds in
# fuzz/corpus/<target>/ (not committed). A crash leaves its input in
# fuzz/artifacts/<target>/; replay it with
#   cargo fuzz run --sanitizer none <target> <file>
# and turn it into a regression test.
#
# Runs on the stable toolchain: the targets are built without sanitizers
# (--sanitizer none). Should a cargo-fuzz release pass nightly-only flags even
# then, the build is retried with RUSTC_BOOTSTRAP=1, for this build only.
# Installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

total="${RRPC_FUZZ_SECONDS:-120}"
minimum="${RRPC_FUZZ_MIN_SECONDS:-10}"
case "$total$minimum" in
    *[!0-9]*) echo "RRPC_FUZZ_SECONDS and RRPC_FUZZ_MIN_SECONDS are whole seconds" >&2; exit 2 ;;
esac

if [ -n "${RRPC_FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$RRPC_FUZZ_TARGETS"
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi
for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "no fuzz target $t (fuzz/fuzz_targets/$t.rs)" >&2
        exit 2
    fi
done
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets in fuzz/fuzz_targets/" >&2
    exit 2
fi
share=$(( total / ${#targets[@]} ))
[ "$share" -ge "$minimum" ] || share="$minimum"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== cargo fuzz build --sanitizer none (${#targets[@]} targets: ${targets[*]})"
if ! cargo fuzz build --sanitizer none; then
    echo "== retrying with RUSTC_BOOTSTRAP=1 (nightly-only flags on a stable toolchain)"
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build --sanitizer none
fi

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    seeds=()
    if [ -d "fuzz/seeds/$t" ]; then
        seeds=("fuzz/seeds/$t")
    fi
    echo "== cargo fuzz run $t for ${share}s (seeds: ${seeds[*]:-none})"
    # -timeout: one input taking 10 s is a hang; libFuzzer reports it as a failure.
    if cargo fuzz run --sanitizer none "$t" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$share" -timeout=10 -print_final_stats=1 >"$logs/$t.log" 2>&1; then
        verdict=ok
    else
        verdict=FAILED
        failed+=("$t")
    fi
    tail -n 15 "$logs/$t.log"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)"
    summary+=("$(printf '%-24s %12s executions in %4ss  %s' "$t" "${execs:-?}" "$share" "$verdict")")
    if [ "$verdict" = FAILED ]; then
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to|deadly signal' "$logs/$t.log" | head -n 20 || true
    fi
done

echo "== fuzzing summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "== fuzzing FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
echo "== fuzzing: no crash in ${#targets[@]} targets, ${share}s each"
