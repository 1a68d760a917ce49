//! The C ABI of the shared library that CMake links (CMakeLists.txt, "librrpc.so with
//! symbol versions"): every function of `rrpc.h` exported at the version `librrpc.map`
//! gives it (`RRPC_1.0`, or the later node that names it) and nothing else; the ABI the same as the dump in `abi/` (`scripts/abi.sh`, libabigail),
//! which catches the breaks and lets a struct grow at its end; programs built against
//! an older header keep working, a newer header is refused; panics still unwind
//! through the link recipe.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;
use crate::common::cmake::{self, library_build};

fn require_tools(tools: &[&str]) {
    tools.iter().for_each(|t| common::require_tool(t));
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

fn exported_functions_are_versioned_and_are_the_header_s() {
    require_tools(&["cmake", "cc", "readelf"]);
    let lib = library();
    let later = later_nodes();
    let mut names = BTreeSet::new();
    let mut wrong = Vec::new();
    for sym in exported(&lib) {
        if sym == "RRPC_1.0" || later.iter().any(|(node, _)| *node == sym) {
            continue; // a version node's own definition
        }
        // A function is at the node of librrpc.map that names it, else at RRPC_1.0.
        let expected = |name: &str| {
            later
                .iter()
                .find(|(_, names)| names.contains(name))
                .map_or("RRPC_1.0", |(node, _)| node.as_str())
        };
        match sym.split_once("@@") {
            Some((name, version)) if name.starts_with("rrpc_") && version == expected(name) => {
                names.insert(name.to_owned());
            }
            _ => wrong.push(sym),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} exports symbols that are not rrpc_ functions at the version librrpc.map gives \
         them: {wrong:?}",
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

/// The version nodes of librrpc.map after RRPC_1.0, each with the functions it
/// names exactly (`RRPC_1.1 { global: rrpc_x; rrpc_y; } RRPC_1.0;`).
fn later_nodes() -> Vec<(String, BTreeSet<String>)> {
    let map =
        std::fs::read_to_string(common::repo_root().join("librrpc.map")).expect("read librrpc.map");
    // Without the comments: the opening one shows a node as an example.
    let mut text = String::new();
    let mut rest = map.as_str();
    while let Some(at) = rest.find("/*") {
        text.push_str(&rest[..at]);
        rest = rest[at..].split_once("*/").map_or("", |(_, after)| after);
    }
    text.push_str(rest);
    let mut nodes = Vec::new();
    for block in text.split('}') {
        let Some((head, body)) = block.split_once('{') else {
            continue;
        };
        let node = head
            .split(';')
            .next_back()
            .unwrap_or("")
            .split_whitespace()
            .next_back()
            .unwrap_or("")
            .to_owned();
        if node.is_empty() || node == "RRPC_1.0" {
            continue;
        }
        let names = body
            .split(';')
            .map(|n| n.trim().trim_start_matches("global:").trim())
            .filter(|n| n.starts_with("rrpc_") && !n.contains('*'))
            .map(str::to_owned)
            .collect();
        nodes.push((node, names));
    }
    nodes
}

/// Runs `scripts/abi.sh <mode>` on the CMake-built library with `header` (default: the
/// committed one) and the dump directory `abi_dir` (default: `abi/`).
fn abi_sh(mode: &str, header: Option<&Path>, abi_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(common::repo_root().join("scripts/abi.sh"));
    cmd.arg(mode).arg(library());
    if let Some(h) = header {
        cmd.env("RRPC_ABI_HEADER", h);
    }
    if let Some(d) = abi_dir {
        cmd.env("RRPC_ABI_DIR", d);
    }
    run(&mut cmd)
}

fn transcript(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn abi_matches_the_committed_dump() {
    require_tools(&["cmake", "cc", "c++", "readelf", "abidw", "abidiff"]);
    let out = abi_sh("check", None, None);
    assert!(
        out.status.success(),
        "the ABI differs from abi/: a compatible change is recorded with `scripts/abi.sh \
         update`, an incompatible one needs a new soname (docs/building.md)\n{}",
        transcript(&out)
    );
}

/// The header with `old` (which must occur once) replaced by `new`.
fn edited(h: &str, old: &str, new: &str) -> String {
    assert_eq!(h.matches(old).count(), 1, "rrpc.h should hold {old:?} once");
    h.replacen(old, new, 1)
}

/// The body of `typedef struct <name> { ... }` in `h`, closing line excluded.
fn struct_body<'h>(h: &'h str, name: &str) -> &'h str {
    let start = h
        .find(&format!("typedef struct {name} {{\n"))
        .unwrap_or_else(|| panic!("rrpc.h defines no struct {name}"));
    let end = start
        + h[start..]
            .find(&format!("}} {name};"))
            .expect("the struct's end");
    &h[start..end]
}

/// `h` with `field` (a whole declaration line such as "    uint32_t max_devices;") of
/// struct `name` replaced by `with` (which may be empty).
fn edit_field(h: &str, name: &str, field: &str, with: &str) -> String {
    let body = struct_body(h, name);
    let line = format!("{field}\n");
    assert!(body.contains(&line), "struct {name} has no line {field:?}");
    h.replacen(body, &body.replacen(&line, with, 1), 1)
}

/// `h` with `line` added at the end of struct `name`.
fn append_field(h: &str, name: &str, line: &str) -> String {
    let body = struct_body(h, name);
    h.replacen(body, &format!("{body}{line}\n"), 1)
}

fn write_header(name: &str, text: &str) -> PathBuf {
    let dir = common::scratch_dir("abi").join(name);
    std::fs::create_dir_all(&dir).expect("create dir");
    let path = dir.join("rrpc.h");
    std::fs::write(&path, text).expect("write the edited header");
    path
}

/// The check has teeth: a removed function, a field whose type changed and a field
/// inserted before the end each fail it (and `update` refuses to record them for the
/// same soname); a field appended to a struct that starts with struct_size passes.
fn abi_check_refuses_breaks_and_lets_structs_grow_at_their_end() {
    require_tools(&["cmake", "cc", "c++", "readelf", "abidw", "abidiff"]);
    let h = header();
    let breaks = [
        (
            "removed-function",
            edited(
                &h,
                "RRPC_NODISCARD rrpc_status rrpc_router_free(struct rrpc_router *router);",
                "",
            ),
        ),
        (
            "changed-field-type",
            edit_field(
                &h,
                "rrpc_router_config",
                "    uint32_t max_payload;",
                "    uint64_t max_payload;\n",
            ),
        ),
        (
            "field-inserted-in-the-middle",
            edit_field(
                &h,
                "rrpc_router_config",
                "    uint32_t max_payload;",
                "    uint32_t inserted;\n    uint32_t max_payload;\n",
            ),
        ),
        (
            "changed-enum-value",
            edited(
                &h,
                "RRPC_STATUS_STRUCT_SIZE = 23,",
                "RRPC_STATUS_STRUCT_SIZE = 24,",
            ),
        ),
    ];
    // `update` works on a copy of the dumps: the committed ones stay as they are.
    let dumps = common::scratch_dir("abi").join("dumps");
    let _ = std::fs::remove_dir_all(&dumps);
    std::fs::create_dir_all(&dumps).expect("create dir");
    for entry in std::fs::read_dir(common::repo_root().join("abi")).expect("read abi/") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), dumps.join(entry.file_name())).expect("copy a dump");
    }
    let committed = std::fs::read(dumps.join("librrpc.so.1.abi")).expect("the dump");
    for (name, text) in &breaks {
        let edited = write_header(name, text);
        let out = abi_sh("check", Some(&edited), None);
        assert!(
            !out.status.success(),
            "{name}: the ABI check should fail\n{}",
            transcript(&out)
        );
        let out = abi_sh("update", Some(&edited), Some(&dumps));
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("refused"),
            "{name}: update should refuse a break of the same soname\n{}",
            transcript(&out)
        );
        assert_eq!(
            std::fs::read(dumps.join("librrpc.so.1.abi")).expect("the dump"),
            committed,
            "{name}: a refused update changed the dump"
        );
    }

    let grown = write_header(
        "appended-field",
        &append_field(&h, "rrpc_router_config", "    uint32_t appended;"),
    );
    let out = abi_sh("check", Some(&grown), None);
    assert!(
        out.status.success(),
        "a field appended to rrpc_router_config should pass\n{}",
        transcript(&out)
    );

    // A soname without a dump (a new major version): check says so, update writes it.
    let fresh = common::scratch_dir("abi").join("new-soname");
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).expect("create dir");
    std::fs::copy(
        dumps.join("growing-structs.suppr"),
        fresh.join("growing-structs.suppr"),
    )
    .expect("copy the suppressions");
    let out = abi_sh("check", None, Some(&fresh));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no ABI dump"),
        "{}",
        transcript(&out)
    );
    let out = abi_sh("update", None, Some(&fresh));
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        fresh.join("librrpc.so.1.abi").is_file() && fresh.join("librrpc.so.1.symbols").is_file()
    );
}

/// Compiles tests/c/abi_compat.c with `define` against `header_text` (in a directory of
/// its own) and the CMake-built library, runs it, and checks it passed.
fn run_compat(name: &str, define: &str, header_text: &str) {
    let header = write_header(name, header_text);
    let exe = header.with_file_name("abi_compat");
    let lib_dir = lib_dir();
    let out = run(Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(format!("-D{define}"))
        .arg("-I")
        .arg(header.parent().expect("dir"))
        .arg(common::repo_root().join("tests/c/abi_compat.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lrrpc"));
    assert!(out.status.success(), "{name}: {}", transcript(&out));
    assert_checks_pass(&exe, name);
}

/// Runs the C program `exe`: it must exit 0 and print "checks passed"; `what` heads
/// the failure message.
fn assert_checks_pass(exe: &Path, what: &str) {
    let out = run(&mut Command::new(exe));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("checks passed"),
        "{what}: {}",
        transcript(&out)
    );
}

/// A program built against an older rrpc.h (shorter settings and stats structs) runs
/// against this library: the fields its structs lack take their defaults, nothing is
/// read or written past them.
fn programs_built_against_an_older_header_keep_working() {
    require_tools(&["cmake", "cc"]);
    let h = header();
    let h = edit_field(&h, "rrpc_router_config", "    uint32_t max_devices;", "");
    let h = edit_field(
        &h,
        "rrpc_mqtt_config",
        "    uint32_t max_incoming_packet;",
        "",
    );
    let h = edit_field(&h, "rrpc_router_stats", "    uint64_t devices;", "");
    run_compat("older-header", "OLD_HEADER", &h);
}

/// A program built against a newer rrpc.h (a field this library does not know at the
/// end of rrpc_router_config) is refused with RRPC_STATUS_STRUCT_SIZE naming the struct.
fn a_newer_header_is_refused_with_struct_size() {
    require_tools(&["cmake", "cc"]);
    let h = append_field(
        &header(),
        "rrpc_router_config",
        "    uint32_t future_field;",
    );
    run_compat("newer-header", "NEWER_HEADER", &h);
}

/// The link recipe of librrpc.so (whole archive, version script, section GC, the
/// staticlib's system libraries) keeps unwinding: the same link line, taken from the
/// build tree, makes a library of a small Rust staticlib whose exported function panics
/// and catches the panic, and a C program gets the caught result.
fn the_link_recipe_keeps_panics_unwinding() {
    require_tools(&["cmake", "cc", "readelf"]);
    let build = library_build();
    let link_txt = build.join("CMakeFiles/rrpc_shared.dir/link.txt");
    let Ok(link) = std::fs::read_to_string(&link_txt) else {
        common::skip(format!(
            "{} is missing (not a Makefile generator)",
            link_txt.display()
        ));
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
    assert_checks_pass(&exe, "a panic inside the linked library was not caught");
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        exported_functions_are_versioned_and_are_the_header_s needs ["cmake", "cc", "readelf"],
        abi_matches_the_committed_dump needs ["cmake", "cc", "c++", "readelf", "abidw", "abidiff"],
        abi_check_refuses_breaks_and_lets_structs_grow_at_their_end
            needs ["cmake", "cc", "c++", "readelf", "abidw", "abidiff"],
        programs_built_against_an_older_header_keep_working needs ["cmake", "cc"],
        a_newer_header_is_refused_with_struct_size needs ["cmake", "cc"],
        the_link_recipe_keeps_panics_unwinding needs ["cmake", "cc", "readelf"],
    ]
}
