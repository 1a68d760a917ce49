//! The C ABI of the shared library that CMake links (CMakeLists.txt, "librrpc.so with
//! symbol versions"): every function of `rrpc.h` exported at version `RRPC_1.0` and
//! nothing else; panics still unwind through the link recipe.

mod common;

use common::cmake::{self, library_build};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn have_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| common::require_tool(t))
}

/// The build tree's library directory (`lib/`), the library built.
fn lib_dir() -> PathBuf {
    library_build().join("lib")
}

/// The library the build tree links its examples with: `lib/librrpc.so`.
fn library() -> PathBuf {
    lib_dir().join("librrpc.so")
}

fn header() -> String {
    std::fs::read_to_string(common::repo_root().join("include/rrpc.h")).expect("read rrpc.h")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"))
}

/// The functions `header_text` declares: every `rrpc_` name followed by `(` once the
/// preprocessor has removed comments and macros (as `scripts/abi.sh` reads it).
fn declared_functions(header_text: &str) -> BTreeSet<String> {
    let dir = common::scratch_dir("abi").join("declared");
    std::fs::create_dir_all(&dir).expect("create dir");
    std::fs::write(dir.join("rrpc.h"), header_text).expect("write header");
    let out = run(Command::new("cc")
        .args(["-E", "-P", "-x", "c", "-I"])
        .arg(&dir)
        .arg(dir.join("rrpc.h")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("rrpc_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let after = tail[len..].trim_start();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && after.starts_with('(')
        {
            names.insert(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// The defined dynamic symbols of `lib`, as readelf prints them (`name@@VERSION`).
fn exported(lib: &Path) -> Vec<String> {
    let out = run(Command::new("readelf").args(["--dyn-syms", "-W"]).arg(lib));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[0].ends_with(':') && f[6] != "UND" && f[6] != "Ndx")
                .then(|| f[7].to_owned())
        })
        .collect()
}

#[test]
fn exported_functions_are_versioned_and_are_the_header_s() {
    if !have_tools(&["cmake", "cc", "readelf"]) {
        return;
    }
    let lib = library();
    let mut names = BTreeSet::new();
    let mut wrong = Vec::new();
    for sym in exported(&lib) {
        if sym == "RRPC_1.0" {
            continue; // the version node's own definition
        }
        match sym.split_once("@@") {
            Some((name, "RRPC_1.0")) if name.starts_with("rrpc_") => {
                names.insert(name.to_owned());
            }
            _ => wrong.push(sym),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} exports symbols that are not rrpc_ functions at version RRPC_1.0: {wrong:?}",
        lib.display()
    );
    let declared = declared_functions(&header());
    assert!(declared.len() > 60, "found only {declared:?} in rrpc.h");
    let missing: Vec<_> = declared.difference(&names).collect();
    let extra: Vec<_> = names.difference(&declared).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "rrpc.h and librrpc.so disagree: declared but not exported {missing:?}, exported but \
         not declared {extra:?}"
    );
}

fn transcript(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The link recipe of librrpc.so (whole archive, version script, section GC, the
/// staticlib's system libraries) keeps unwinding: the same link line, taken from the
/// build tree, makes a library of a small Rust staticlib whose exported function panics
/// and catches the panic, and a C program gets the caught result.
#[test]
fn the_link_recipe_keeps_panics_unwinding() {
    if !have_tools(&["cmake", "cc", "readelf"]) {
        return;
    }
    let build = library_build();
    let link_txt = build.join("CMakeFiles/rrpc_shared.dir/link.txt");
    let Ok(link) = std::fs::read_to_string(&link_txt) else {
        eprintln!(
            "SKIPPED: {} is missing (not a Makefile generator)",
            link_txt.display()
        );
        return;
    };
    let dir = common::scratch_dir("abi").join("unwind");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create dir");

    let cargo = cmake::cargo();
    let rustc = Path::new(&cargo)
        .parent()
        .map(|d| d.join("rustc"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("rustc"));
    std::fs::write(
        dir.join("probe.rs"),
        "#[no_mangle]\npub extern \"C\" fn rrpc_probe_unwind(n: i32) -> i32 {\n    \
         match std::panic::catch_unwind(|| if n > 0 { panic!(\"probe {n}\") } else { n }) {\n        \
         Ok(v) => v,\n        Err(_) => -1,\n    }\n}\n",
    )
    .expect("write probe.rs");
    let out = run(Command::new(&rustc)
        .args([
            "--crate-type",
            "staticlib",
            "--edition",
            "2021",
            "-O",
            "-C",
            "panic=unwind",
            "-o",
        ])
        .arg(dir.join("libprobe.a"))
        .arg(dir.join("probe.rs")));
    assert!(out.status.success(), "{}", transcript(&out));

    // The recipe with the probe's archive in place of librrpc.a and its own output.
    let mut words: Vec<String> = Vec::new();
    let mut replaced_archive = false;
    let mut it = link.split_whitespace().map(|w| w.trim_matches('"'));
    while let Some(w) = it.next() {
        if w == "-o" {
            it.next();
            words.push("-o".into());
            words.push(dir.join("librrpc.so.1").display().to_string());
        } else if w.ends_with("librrpc.a") {
            words.push(dir.join("libprobe.a").display().to_string());
            replaced_archive = true;
        } else {
            words.push(w.to_owned());
        }
    }
    assert!(replaced_archive, "no librrpc.a in {link}");
    let (linker, args) = words.split_first().expect("a link command");
    let out = run(Command::new(linker).args(args).current_dir(build));
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        exported(&dir.join("librrpc.so.1")).contains(&"rrpc_probe_unwind@@RRPC_1.0".to_owned()),
        "the probe's function should be exported at RRPC_1.0"
    );

    std::fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\nint rrpc_probe_unwind(int n);\nint main(void)\n{\n    \
         if (rrpc_probe_unwind(0) != 0 || rrpc_probe_unwind(7) != -1) {\n        \
         return 1;\n    }\n    puts(\"checks passed\");\n    return 0;\n}\n",
    )
    .expect("write main.c");
    let exe = dir.join("main");
    let out = run(Command::new("cc")
        .arg(dir.join("main.c"))
        .arg("-o")
        .arg(&exe)
        .arg(dir.join("librrpc.so.1"))
        .arg(format!("-Wl,-rpath,{}", dir.display())));
    assert!(out.status.success(), "{}", transcript(&out));
    let out = run(&mut Command::new(&exe));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("checks passed"),
        "a panic inside the linked library was not caught:\n{}",
        transcript(&out)
    );
}
