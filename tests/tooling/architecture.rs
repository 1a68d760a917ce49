//! The dependency directions of docs/architecture.md hold in the code: every
//! module of `src/` imports only what its row of the table allows, every module
//! has a row, and the `rrpc` tool never uses the C ABI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The table after the marker comment: module -> modules it may use.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let start = doc
        .find("<!-- The allowed imports")
        .expect("the marker comment before the table of allowed imports");
    let mut table = BTreeMap::new();
    for line in doc[start..].lines().skip(1) {
        let line = line.trim();
        if line.is_empty() && !table.is_empty() {
            break;
        }
        if !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`').to_string();
        let uses = cells
            .get(1)
            .map(|c| {
                c.split(',')
                    .map(|u| u.trim().trim_matches('`').to_string())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        table.insert(name, uses);
    }
    assert!(
        table.len() >= 8,
        "the table has a row per module: {table:?}"
    );
    table
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments (doc links name modules without using
/// them), lines kept so that offsets still tell the line.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The modules `code` names through `crate::`, with the offset of each,
/// including every first-level name of `use crate::{a, b::{c, d}}`.
fn crate_refs(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("crate::") {
        let at = from + found;
        from = at + "crate::".len();
        let before = &code[..at];
        if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `$crate::` in a macro, or part of a longer name
        }
        let rest = &code[from..];
        let Some(group) = rest.strip_prefix('{') else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push((at, name));
            }
            continue;
        };
        // Split the group at its top-level commas.
        let (mut depth, mut item_start) = (0usize, 0usize);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.push((at, ident(&group[item_start..i])));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push((at, ident(&group[item_start..i])));
                    item_start = i + 1;
                }
                _ => {}
            }
        }
        out.retain(|(_, n)| !n.is_empty());
    }
    out
}

fn modules_import_only_in_the_documented_direction() {
    let allowed = allowed();
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut violations = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a file").as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue; // the crate root declares and re-exports every module
        }
        modules.insert(module.clone());
        let Some(may) = allowed.get(&module) else {
            violations.push(format!(
                "src/{module}: no row in docs/architecture.md's table of allowed imports"
            ));
            continue;
        };
        let code = code(&std::fs::read_to_string(f).expect("read source"));
        for (at, used) in crate_refs(&code) {
            if used != module && !may.contains(&used) {
                let n = code[..at].matches('\n').count() + 1;
                violations.push(format!(
                    "{}:{n}: `{module}` uses `{used}`, which its row does not allow",
                    f.strip_prefix(root()).unwrap_or(f).display(),
                ));
            }
        }
    }
    for documented in allowed.keys() {
        assert!(
            modules.contains(documented),
            "docs/architecture.md lists `{documented}`, which is not a module of src/"
        );
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

fn the_tool_uses_the_rust_api_never_the_c_abi() {
    let mut files = Vec::new();
    rust_files(&root().join("cli/src"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let code = code(&std::fs::read_to_string(&f).expect("read source"));
        if let Some(at) = code.find("rrpc::ffi") {
            let n = code[..at].matches('\n').count() + 1;
            panic!("{}:{n}: the rrpc tool uses the C ABI", f.display());
        }
    }
}

fn the_reader_sees_grouped_imports_and_skips_macros_and_comments() {
    let names = |c: &str| -> Vec<String> { crate_refs(c).into_iter().map(|(_, n)| n).collect() };
    assert_eq!(
        names("use crate::{\n    dialect::X,\n    router, callback::{a, b},\n};"),
        ["dialect", "router", "callback"]
    );
    assert_eq!(names("let x = crate::clock::now_ms();"), ["clock"]);
    assert!(names("$crate::log::write(l, a)").is_empty());
    assert!(names("rrpc_crate::x").is_empty());
    assert_eq!(
        names(&code(
            "/// see [`crate::ffi`]\nuse crate::router; // crate::x\n"
        )),
        ["router"]
    );
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        modules_import_only_in_the_documented_direction,
        the_tool_uses_the_rust_api_never_the_c_abi,
        the_reader_sees_grouped_imports_and_skips_macros_and_comments,
    ]
}
