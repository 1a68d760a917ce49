#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors), then every test.
# The end-to-end tests build the C examples with CMake (which drives a release
# cargo build in target/cmake-test), start rumqttd in-process and Mosquitto on
# free 127.0.0.1 ports, and run the examples as real processes, some under
# valgrind. The tooling tests build the C reference (Doxygen, into
# target/doc-c/html; a warning fails it) and compare the library's ABI with abi/
# (libabigail). The test binaries are one per layer (tests/README.md); a test whose
# tool (cmake, mosquitto, valgrind, ...) is missing is reported as skipped, and with
# CI set it fails instead. Last, every fuzz target is fuzzed for a bounded time (scripts/fuzz.sh:
# RRPC_FUZZ_SECONDS in all, 120 by default, split among the targets with at least
# 10 s each; 0 skips it outside CI).
#
# First it makes sure the Debian packages the tests use are there
# (scripts/install-deps.sh: installs them as root, otherwise names the command);
# with CI set a missing package is an error, without CI the tests that need it skip.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target

if ! scripts/install-deps.sh; then
    if [ -n "${CI:-}" ]; then
        echo "CI is set: the test suite needs those packages" >&2
        exit 1
    fi
    echo "(continuing: the tests that need them skip)" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== lean builds: the cargo feature sets of a device-only library (clippy -D warnings, unit tests)"
for features in "" client client,mqtt5 client,tls client,tls,credentials caller jt808; do
    echo "-- --no-default-features --features '$features'"
    cargo clippy --quiet -p rrpc --lib --no-default-features --features "$features" -- -D warnings
done
cargo test --quiet -p rrpc --lib --no-default-features --features client,credentials
echo "== cargo doc (the library's API documentation; rustdoc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p rrpc
echo "== cargo test"
# Unit, integration and doc tests; every test binary runs even when an earlier one
# failed (--no-fail-fast), so that the closing line counts them all.
set +e
cargo test --no-fail-fast 2>&1 | tee target/test-output.log
test_status=${PIPESTATUS[0]}
set -e

fuzz_seconds="${RRPC_FUZZ_SECONDS:-120}"
if [ "$test_status" = 0 ] && { [ "$fuzz_seconds" != 0 ] || [ -n "${CI:-}" ]; }; then
    echo "== fuzzing every target in fuzz/fuzz_targets/ (scripts/fuzz.sh)"
    RRPC_FUZZ_SECONDS="$([ "$fuzz_seconds" = 0 ] && echo 120 || echo "$fuzz_seconds")" \
        scripts/fuzz.sh 2>&1 | tail -n 40
fi

# One closing line for the whole run, summed over every test binary: a skipped
# test is one that did not run (a tool missing: the runner says which; or an
# ignored Rust test). With CI set a skipped test fails the run.
awk -v ci="${CI:-}" -v status="$test_status" '
    /^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/) p += $i
            if ($(i+1) ~ /^failed/) f += $i
            if ($(i+1) ~ /^ignored/) k += $i
        }
    }
    END {
        printf "total: %d passed, %d failed, %d skipped\n", p, f, k
        if (k > 0 && ci != "") print "CI is set: no test may be skipped" > "/dev/stderr"
        exit (f > 0 || status != 0 || (k > 0 && ci != ""))
    }' target/test-output.log
