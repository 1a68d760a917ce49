//! The committed C header is the generated one, and it compiles as C99 and C++11
//! with every warning an error.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn header_matches_generated() {
    let generated = Path::new(env!("OUT_DIR")).join("rrpc.h");
    let generated = std::fs::read_to_string(&generated).expect("build.rs writes OUT_DIR/rrpc.h");
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/rrpc.h");
    if std::env::var_os("RRPC_BLESS").is_some() {
        std::fs::write(&committed_path, &generated).expect("write include/rrpc.h");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/rrpc.h differs from the header build.rs generates; run scripts/update-header.sh and commit it"
    );
}

/// Every name the header defines as a macro or an enum constant belongs to the
/// library's namespace: a Rust constant that cbindgen picked up by accident (its
/// `[export] exclude` list keeps the Rust API's own constants out) fails here.
#[test]
fn header_defines_only_rrpc_names() {
    let h = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/rrpc.h"))
        .expect("read include/rrpc.h");
    let foreign: Vec<&str> = h
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("#define "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| !name.starts_with("RRPC_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "macros outside the RRPC_ namespace: {foreign:?}"
    );
}

fn compile(compiler: &str, std: &str, lang: &str) {
    if !common::require_tool(compiler) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = common::scratch_dir("header").join(format!("smoke-{std}.o"));
    let o = Command::new(compiler)
        .args([
            "-x",
            lang,
            &format!("-std={std}"),
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-c",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/header_smoke.c"))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run the compiler");
    assert!(
        o.status.success(),
        "rrpc.h does not compile as {std}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn header_compiles_as_c99() {
    compile("cc", "c99", "c");
}

#[test]
fn header_compiles_as_cxx11() {
    compile("c++", "c++11", "c++");
}

/// Every `@param` in the header names a parameter of its function (clang checks
/// the Doxygen comments against the declarations), so the docs and the
/// signatures cannot drift apart.
#[test]
fn header_docs_name_the_real_parameters() {
    if !common::require_tool("clang") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new("clang")
        .args([
            "-x",
            "c",
            "-std=c99",
            "-fsyntax-only",
            "-Wdocumentation",
            "-Wdocumentation-unknown-command",
            "-Werror",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/header_smoke.c"))
        .output()
        .expect("run clang");
    assert!(
        o.status.success(),
        "rrpc.h's doc comments do not match its declarations:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every parameter of every function in the header is documented by an
/// `@param` line of its doc comment (clang's check above catches names that do
/// not exist; this one catches parameters left out).
#[test]
fn header_docs_document_every_parameter() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/rrpc.h"))
            .expect("read rrpc.h");
    let mut missing = Vec::new();
    let mut rest = header.as_str();
    let mut functions = 0;
    while let Some(start) = rest.find("/**") {
        let Some(end) = rest[start..].find("*/") else {
            break;
        };
        let doc = &rest[start..start + end];
        let after = &rest[start + end + 2..];
        rest = after;
        // The declaration right after the comment: a function when it has `(`
        // before its `;` and is not a typedef or a struct member.
        let Some(semi) = after.find(';') else { break };
        let decl = after[..semi].trim();
        if decl.starts_with("typedef") || decl.contains('{') || decl.contains("/*") {
            continue;
        }
        let (Some(open), Some(close)) = (decl.find('('), decl.rfind(')')) else {
            continue;
        };
        let name = decl[..open]
            .split_whitespace()
            .last()
            .unwrap_or("")
            .trim_start_matches('*');
        if !name.starts_with("rrpc_") {
            continue;
        }
        functions += 1;
        for param in decl[open + 1..close].split(',') {
            let param = param.trim();
            if param.is_empty() || param == "void" {
                continue;
            }
            let pname = param
                .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("");
            let documented = doc.lines().any(|l| {
                let l = l.trim_start_matches([' ', '*']).trim_start();
                l.starts_with("@param")
                    && l.split_whitespace()
                        .nth(1)
                        .is_some_and(|w| w.split(',').any(|n| n == pname))
            });
            if !documented {
                missing.push(format!("{name}: {pname}"));
            }
        }
    }
    assert!(functions > 60, "found {functions} documented functions");
    assert!(
        missing.is_empty(),
        "parameters without an @param line in rrpc.h:\n{}",
        missing.join("\n")
    );
}
