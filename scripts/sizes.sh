#!/usr/bin/env bash
# Stripped size of librrpc.so for the feature sets of the size table of docs/building.md,
# with the release and release-small (opt-level "z") profiles, next to the floor of
# any Rust cdylib that links std and catches panics (the same profile, one
# exported function): what std alone costs.
#
#   scripts/sizes.sh            # prints a Markdown table
#
# Builds into target/sizes (release LTO builds: a few minutes each on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
target=target/sizes
mkdir -p "$target"

floor_dir="$target/floor"
mkdir -p "$floor_dir/src"
cat > "$floor_dir/Cargo.toml" <<'TOML'
[package]
name = "floor"
version = "0.0.0"
edition = "2021"
publish = false
[lib]
crate-type = ["cdylib"]
[workspace]
[profile.release]
opt-level = 3
lto = "thin"
codegen-units = 1
debug = false
panic = "unwind"
[profile.release-small]
inherits = "release"
opt-level = "z"
lto = "fat"
TOML
cat > "$floor_dir/src/lib.rs" <<'RS'
#[no_mangle]
pub extern "C" fn floor_call(x: u32) -> u32 {
    std::panic::catch_unwind(|| if x == 7 { panic!("seven") } else { x + 1 }).unwrap_or(0)
}
RS

stripped_kib() {
    local copy="$target/stripped.so"
    cp "$1" "$copy"
    strip "$copy"
    echo $(( $(stat -c %s "$copy") / 1024 ))
}

sizes=()
for profile in release release-small; do
    cargo build --quiet --manifest-path "$floor_dir/Cargo.toml" --profile "$profile" \
        --target-dir "$target/floor-target"
    floor=$(stripped_kib "$target/floor-target/$profile/libfloor.so")
    sizes+=("| std floor (one function, catch_unwind) | $profile | $floor |")
    for features in default client,tls,mqtt5,credentials client,tls,credentials client,tls client,mqtt5 client; do
        if [ "$features" = default ]; then
            args=()
        else
            args=(--no-default-features --features "$features")
        fi
        cargo build --quiet -p rrpc --lib --profile "$profile" --target-dir "$target" "${args[@]}"
        sizes+=("| $features | $profile | $(stripped_kib "$target/$profile/librrpc.so") |")
    done
done
echo "| features | profile | stripped KiB |"
echo "|---|---|---:|"
printf '%s\n' "${sizes[@]}"
