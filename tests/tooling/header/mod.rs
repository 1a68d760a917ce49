//! The committed C header is the generated one (`generate.rs`, the generator),
//! it compiles as C99, C11, C++11 and C++17 with every warning an error, and its
//! Doxygen reference builds without a warning.

use crate::common;

mod generate;

use std::path::Path;
use std::process::Command;

/// `include/rrpc.h` is what the generator makes of `src/ffi/`; with `RRPC_BLESS`
/// set (`scripts/update-header.sh`) the test rewrites it instead.
fn header_matches_generated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = generate::generate(root).unwrap_or_else(|e| panic!("{e}"));
    let committed_path = root.join("include/rrpc.h");
    if std::env::var_os("RRPC_BLESS").is_some() {
        std::fs::write(&committed_path, &generated).expect("write include/rrpc.h");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/rrpc.h differs from the generated header; run scripts/update-header.sh and commit it"
    );
}

/// Every name the header defines as a macro or an enum constant belongs to the
/// library's namespace: a Rust constant that cbindgen picked up by accident (its
/// `[export] exclude` list keeps the Rust API's own constants out) fails here.
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

/// Compiles `source` (a C file) as `lang` in standard `std` with every warning
/// an error; the compiler's errors, if any.
fn compile(compiler: &str, std: &str, lang: &str, source: &Path) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stem = source.file_stem().unwrap_or_default().to_string_lossy();
    let out = common::scratch_dir("header").join(format!("{stem}-{compiler}-{std}.o"));
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
        .arg(source)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run the compiler");
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} does not compile with {compiler} -std={std}:\n{}",
            source.display(),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn compile_smoke(compiler: &str, std: &str, lang: &str) {
    common::require_tool(compiler);
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/header_smoke.c");
    compile(compiler, std, lang, &smoke).unwrap_or_else(|e| panic!("{e}"));
}

fn header_compiles_as_c99() {
    compile_smoke("cc", "c99", "c");
}

fn header_compiles_as_c11() {
    compile_smoke("cc", "c11", "c");
}

fn header_compiles_as_cxx11() {
    compile_smoke("c++", "c++11", "c++");
}

fn header_compiles_as_cxx17() {
    compile_smoke("c++", "c++17", "c++");
}

/// The header on its own (nothing included before it, nothing used after it)
/// with GCC and Clang in every standard it promises: C99, C11, C++11, C++17.
fn header_alone_compiles_in_every_standard() {
    let only = common::scratch_dir("header").join("only_header.c");
    std::fs::write(&only, "#include <rrpc.h>\n").expect("write only_header.c");
    let mut failures = Vec::new();
    for (compiler, std, lang) in [
        ("cc", "c99", "c"),
        ("cc", "c11", "c"),
        ("c++", "c++11", "c++"),
        ("c++", "c++17", "c++"),
        ("clang", "c99", "c"),
        ("clang", "c11", "c"),
        ("clang++", "c++11", "c++"),
        ("clang++", "c++17", "c++"),
    ] {
        common::require_tool(compiler);
        if let Err(e) = compile(compiler, std, lang, &only) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The C reference (`docs/Doxyfile`: Doxygen over `include/rrpc.h` and
/// `docs/conventions.md`) builds into `target/doc-c/html` without a single
/// warning (an undocumented parameter, field or value, an unknown command), with
/// one page per section of the header.
fn c_reference_builds_without_warnings() {
    common::require_tool("doxygen");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let html = root.join("target/doc-c/html");
    let _ = std::fs::remove_dir_all(&html);
    let o = Command::new("doxygen")
        .arg("docs/Doxyfile")
        .current_dir(root)
        .output()
        .expect("run doxygen");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && stderr.trim().is_empty(),
        "doxygen docs/Doxyfile failed or warned ({}):\n{stderr}",
        o.status
    );
    assert!(html.join("index.html").is_file(), "no index.html");
    for group in generate::groups() {
        let page = html.join(format!("group__{}.html", group.replace('_', "__")));
        assert!(
            page.is_file(),
            "the reference has no page for section {group}"
        );
    }
}

/// Every `@param` in the header names a parameter of its function (clang checks
/// the Doxygen comments against the declarations), so the docs and the
/// signatures cannot drift apart.
fn header_docs_name_the_real_parameters() {
    common::require_tool("clang");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let only = common::scratch_dir("header").join("only_header_docs.c");
    std::fs::write(&only, "#include <rrpc.h>\n").expect("write only_header_docs.c");
    let mut clang = Command::new("clang");
    clang
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
        .arg(&only);
    if let Err(e) = common::cmake::try_run(&mut clang) {
        panic!("rrpc.h's doc comments do not match its declarations:\n{e}");
    }
}

/// Every parameter of every function in the header is documented by an
/// `@param` line of its doc comment (clang's check above catches names that do
/// not exist; this one catches parameters left out).
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

/// What cbindgen writes around its items, for the generator tests below.
fn cbindgen_output(items: &str) -> String {
    format!("/* opening */\n\n#ifndef RRPC_H\n#define RRPC_H\n\n#include <stdint.h>\n\n{items}\n\n#endif  /* RRPC_H */\n")
}

/// A name no family claims stops the generator instead of disappearing from the header.
fn generator_refuses_an_item_no_family_claims() {
    let err = generate::arrange(&cbindgen_output("uint32_t rrpc_frobnicate(void);"))
        .expect_err("an unclaimed function");
    assert!(err.contains("rrpc_frobnicate"), "{err}");
}

/// A type used by a section before the section that declares it (other than through a
/// pointer to a struct, which gets a forward declaration) stops the generator.
fn generator_refuses_a_type_used_before_its_section() {
    let items = "typedef uint32_t (*rrpc_log_cb)(rrpc_jt808_event_kind kind);\n\n\
                 enum rrpc_jt808_event_kind {\n    RRPC_JT808_X = 0,\n};\n\
                 #ifndef __cplusplus\ntypedef uint32_t rrpc_jt808_event_kind;\n#endif";
    let err = generate::arrange(&cbindgen_output(items)).expect_err("a type used too early");
    assert!(
        err.contains("rrpc_log_cb") && err.contains("rrpc_jt808_event_kind"),
        "{err}"
    );
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        header_matches_generated,
        header_defines_only_rrpc_names,
        header_compiles_as_c99 needs ["cc"],
        header_compiles_as_c11 needs ["cc"],
        header_compiles_as_cxx11 needs ["c++"],
        header_compiles_as_cxx17 needs ["c++"],
        header_alone_compiles_in_every_standard needs ["cc", "c++", "clang", "clang++"],
        c_reference_builds_without_warnings needs ["doxygen"],
        header_docs_name_the_real_parameters needs ["clang"],
        header_docs_document_every_parameter,
        generator_refuses_an_item_no_family_claims,
        generator_refuses_a_type_used_before_its_section,
    ]
}
