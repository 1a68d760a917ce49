#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors), then every test.
# The end-to-end tests build the C examples with CMake (which drives a release
# cargo build in target/cmake-test), start rumqttd in-process and Mosquitto on
# free 127.0.0.1 ports, and run the examples as real processes, some under
# valgrind. tests/header/ also builds the C reference (Doxygen, into
# target/doc-c/html; a warning fails it), and tests/abi.rs compares the library's
# ABI with abi/ (libabigail). With CI set, a missing cmake/mosquitto/valgrind fails instead of
# skipping. Last, every fuzz target is fuzzed for a bounded time (scripts/fuzz.sh:
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
# Plain `cargo test`: unit, integration and doc tests, and it builds the examples
# (tests/demo.rs runs the demo binary it leaves in target/debug/examples/).
cargo test 2>&1 | tee target/test-output.log

fuzz_seconds="${RRPC_FUZZ_SECONDS:-120}"
if [ "$fuzz_seconds" != 0 ] || [ -n "${CI:-}" ]; then
    echo "== fuzzing every target in fuzz/fuzz_targets/ (scripts/fuzz.sh)"
    RRPC_FUZZ_SECONDS="$([ "$fuzz_seconds" = 0 ] && echo 120 || echo "$fuzz_seconds")" \
        scripts/fuzz.sh 2>&1 | tail -n 40
fi

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f; exit (f > 0) }' target/test-output.log
