#!/usr/bin/env bash
# Refreshes the committed include/rrpc.h: tests/tooling/header/generate.rs makes it from the
# doc-commented declarations of src/ffi/ (cbindgen, configured by cbindgen.toml).
# Run it after changing anything in src/ffi/, then commit the header with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
RRPC_BLESS=1 cargo test --quiet --test tooling -- --exact header::header_matches_generated
git --no-pager diff --stat -- include/rrpc.h
