#!/usr/bin/env bash
# Refreshes the committed include/rrpc.h from the header build.rs generates.
# Run it after changing anything in src/ffi/, then commit the header with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
RRPC_BLESS=1 cargo test --quiet --test header -- header_matches_generated
git --no-pager diff --stat -- include/rrpc.h
