//! Generates the C header from the doc-commented `src/ffi/` sources and gives
//! `librrpc.so` its soname.
//!
//! A build script writes only into `OUT_DIR`: the committed `include/rrpc.h` is a
//! copy that `tests/header.rs` compares against the generated one, and
//! `scripts/update-header.sh` refreshes.

use std::env;
use std::path::PathBuf;

/// Macros the declarations use, after the version.
const PROLOGUE: &str = r#"
/**
 * Marks every function that returns an rrpc_status: ignoring the status is a
 * compiler warning. To drop one on purpose, test it:
 * `if (rrpc_client_free(client) != RRPC_STATUS_OK) { ... }`.
 */
#if defined(__cplusplus) && __cplusplus >= 201703L
#define RRPC_NODISCARD [[nodiscard]]
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 202311L
#define RRPC_NODISCARD [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define RRPC_NODISCARD __attribute__((warn_unused_result))
#else
#define RRPC_NODISCARD
#endif

/**
 * Whether a struct the library handed over (`rrpc_request`,
 * `rrpc_connection_event`, `rrpc_jt808_event`: they start with `struct_size`)
 * has `field`: true when the library that made it knows the field.
 */
#define RRPC_HAS_FIELD(ptr, type, field) \
    ((size_t)(ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))
"#;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let version = env::var("CARGO_PKG_VERSION").expect("CARGO_PKG_VERSION");
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("major");
    let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("minor");

    // ABI compatibility follows SemVer: before 1.0 every minor release may break
    // it, so the soname carries major.minor; from 1.0 on, the major alone.
    let soname_version = if major == "0" {
        format!("0.{minor}")
    } else {
        major.clone()
    };
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librrpc.so.{soname_version}");
    }
    println!("cargo:rustc-env=RRPC_SONAME_VERSION={soname_version}");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml must parse");
    let header = out_dir.join("rrpc.h");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .with_after_include(format!(
            "\n#define RRPC_VERSION \"{version}\"\n#define RRPC_VERSION_MAJOR {major}\n#define RRPC_VERSION_MINOR {minor}\n#define RRPC_VERSION_PATCH {}\n{}",
            env::var("CARGO_PKG_VERSION_PATCH").expect("patch"),
            PROLOGUE
        ))
        .generate()
        .expect("cbindgen could not generate rrpc.h")
        .write_to_file(&header);

    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
}
