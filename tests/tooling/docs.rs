//! The documentation holds: every fenced code block of `README.md` and `docs/*.md` is
//! compiled, run or checked according to its language tag, and every relative link
//! points to an existing file and heading. `docs/testing.md` ("The documentation's
//! code blocks") says what each tag gets and how a block is marked.
//!
//! C blocks are compiled against `include/rrpc.h` and linked against the library of
//! the tests' CMake build (`common::cmake::library_build`); shell, console, CMake and
//! Mosquitto blocks run against a staged install of that build
//! (`target/test-scratch/docs/stage`), with the `rrpc` tool it holds. Rust blocks are
//! doc tests (`src/lib.rs` includes every page under `#[cfg(doctest)]`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::cmake;

// ---- The pages and their blocks ---------------------------------------------------------------

/// README.md and every page of docs/, as paths relative to the repository root.
fn pages() -> Vec<PathBuf> {
    let root = common::repo_root();
    let mut pages = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.strip_prefix(root).expect("under the root").to_path_buf())
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn read(page: &Path) -> String {
    std::fs::read_to_string(common::repo_root().join(page))
        .unwrap_or_else(|e| panic!("read {}: {e}", page.display()))
}

/// One fenced code block.
#[derive(Clone, Debug)]
struct Block {
    page: PathBuf,
    /// The line of the opening fence, from 1.
    line: usize,
    /// The first word of the info string (`rust` for "rust,no_run").
    lang: String,
    /// The whole info string.
    info: String,
    /// The text of an HTML comment on the line before the fence, without `<!--`, `-->`.
    marker: Option<String>,
    /// The block's lines, the fence's indentation removed.
    text: String,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{}", self.page.display(), self.line)
    }

    /// The line of the block's first content line, for `#line`.
    fn first_line(&self) -> usize {
        self.line + 1
    }
}

fn fence(line: &str) -> Option<(usize, &str)> {
    let t = line.trim_start();
    let indent = line.len() - t.len();
    t.strip_prefix("```").map(|rest| (indent, rest.trim()))
}

fn blocks_of(page: &Path) -> Vec<Block> {
    let text = read(page);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some((indent, info)) = fence(lines[i]) else {
            i += 1;
            continue;
        };
        let marker = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim())
            .and_then(|l| l.strip_prefix("<!--")?.strip_suffix("-->"))
            .map(|m| m.trim().to_string());
        let start = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && !matches!(fence(lines[i]), Some((_, ""))) {
            let l = lines[i];
            let cut = l.len() - l.trim_start().len();
            body.push(&l[cut.min(indent)..]);
            i += 1;
        }
        assert!(
            i < lines.len(),
            "{}:{}: a code block is never closed",
            page.display(),
            start + 1
        );
        i += 1;
        out.push(Block {
            page: page.to_path_buf(),
            line: start + 1,
            lang: info
                .split(|c: char| c == ',' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string(),
            info: info.to_string(),
            marker,
            text: body.iter().map(|l| format!("{l}\n")).collect(),
        });
    }
    out
}

fn all_blocks() -> Vec<Block> {
    pages().iter().flat_map(|p| blocks_of(p)).collect()
}

/// The README's C quickstart: its one C block.
fn quickstart() -> Block {
    let c: Vec<Block> = blocks_of(Path::new("README.md"))
        .into_iter()
        .filter(|b| b.lang == "c")
        .collect();
    assert_eq!(c.len(), 1, "README.md holds one C block, the quickstart");
    c[0].clone()
}

const LANGUAGES: &[&str] = &[
    "c", "rust", "sh", "console", "cmake", "conf", "json", "xml", "text",
];

/// Collects failures so that one run reports every broken block.
#[derive(Default)]
struct Failures(Mutex<Vec<String>>);

impl Failures {
    fn add(&self, block: &Block, why: impl std::fmt::Display) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{}: {why}", block.at()));
    }

    fn check(self, what: &str) {
        let f = self.0.into_inner().unwrap();
        assert!(f.is_empty(), "{what}:\n{}", f.join("\n\n"));
    }
}

// ---- Tests that need nothing but the files ----------------------------------------------------

fn every_block_has_a_language_the_test_knows() {
    let blocks = all_blocks();
    assert!(blocks.len() > 20, "the pages hold {} blocks", blocks.len());
    let failures = Failures::default();
    for b in &blocks {
        if !LANGUAGES.contains(&b.lang.as_str()) {
            failures.add(
                b,
                format!(
                    "a block tagged `{}` cannot be checked: use one of {LANGUAGES:?}",
                    b.info
                ),
            );
        }
        if b.lang == "rust" {
            let attrs: Vec<&str> = b.info.split(',').skip(1).map(str::trim).collect();
            if attrs.iter().any(|a| *a == "ignore" || *a == "text") {
                failures.add(b, "a Rust block is compiled: `ignore` would skip it");
            }
        }
        if b.lang == "c" && !is_program(b) && fragment_kind(b).is_none() {
            failures.add(
                b,
                "a C block is a program (with `int main(`) or is marked \
                 `<!-- fragment -->` or `<!-- file fragment -->`",
            );
        }
    }
    failures.check("code blocks without a checkable language");
}

fn every_page_is_a_doc_test_module() {
    let lib = read(Path::new("src/lib.rs"));
    for page in pages() {
        let include = format!("include_str!(\"../{}\")", page.display());
        assert!(
            lib.contains(&include),
            "src/lib.rs does not include {} under #[cfg(doctest)]: its Rust blocks would \
             not be compiled",
            page.display()
        );
    }
}

fn the_readme_keeps_its_two_commands() {
    let readme = read(Path::new("README.md"));
    let sh = blocks_of(Path::new("README.md"))
        .into_iter()
        .find(|b| b.lang == "sh")
        .expect("the README's first shell block: the two commands");
    for command in ["cargo run --release -p rrpc-cli -- demo", "scripts/test.sh"] {
        assert!(
            sh.text.lines().any(|l| l.trim() == command),
            "{}: the two commands are `{command}` and its sibling",
            sh.at()
        );
    }
    let ci = read(Path::new(".ci/run"));
    assert!(
        ci.lines().any(|l| l.trim() == "scripts/test.sh"),
        ".ci/run runs the README's test command"
    );
    assert!(readme.lines().count() <= 200, "the README stays short");
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The lines of a page outside its code blocks, with their numbers.
fn prose(page: &Path) -> Vec<(usize, String)> {
    let text = read(page);
    let mut out = Vec::new();
    let mut open = false;
    for (n, line) in text.lines().enumerate() {
        if fence(line).is_some() {
            open = !open;
            continue;
        }
        if !open {
            out.push((n + 1, line.to_string()));
        }
    }
    out
}

fn anchors_of(page: &Path) -> BTreeSet<String> {
    prose(page)
        .iter()
        .filter_map(|(_, l)| {
            let t = l.trim_start();
            let hashes = t.len() - t.trim_start_matches('#').len();
            (hashes > 0 && t[hashes..].starts_with(' ')).then(|| anchor(&t[hashes..]))
        })
        .collect()
}

/// `[text](target)` links of one line, code spans left out.
fn links(line: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            plain.push(c);
        }
    }
    let mut out = Vec::new();
    let mut rest = plain.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                out.push(after[..j].to_string());
                rest = &after[j..];
            }
            None => break,
        }
    }
    out
}

fn links_point_to_existing_files_and_headings() {
    let root = common::repo_root();
    let mut failures = Vec::new();
    let mut count = 0;
    for page in pages() {
        let dir = page.parent().unwrap_or(Path::new("")).to_path_buf();
        for (n, line) in prose(&page) {
            for target in links(&line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                count += 1;
                let (path, frag) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() {
                    page.clone()
                } else {
                    normalize(&dir.join(path))
                };
                let at = format!("{}:{n}: link `{target}`", page.display());
                if !root.join(&file).exists() {
                    failures.push(format!("{at}: {} does not exist", file.display()));
                    continue;
                }
                if let Some(frag) = frag {
                    if file.extension().is_some_and(|x| x == "md")
                        && !anchors_of(&file).contains(frag)
                    {
                        failures.push(format!(
                            "{at}: {} has no heading with the anchor #{frag}",
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        count > 50,
        "only {count} links found: the link scanner is broken"
    );
    assert!(
        failures.is_empty(),
        "broken links:\n{}",
        failures.join("\n")
    );
}

/// `docs/../README.md` as `README.md`.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn the_tests_security_names_exist() {
    let root = common::repo_root();
    let mut sources = String::new();
    for dir in ["tests", "cli/tests", "src"] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for f in files {
            sources.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
    }
    let mut names = BTreeSet::new();
    let lines = prose(Path::new("docs/security.md"));
    for span in lines
        .iter()
        .flat_map(|(_, l)| l.split('`').skip(1).step_by(2))
    {
        if span.contains("::")
            && span
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
        {
            names.insert(span.rsplit("::").next().unwrap().to_string());
        }
    }
    assert!(names.len() > 20, "security.md names {} tests", names.len());
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !sources.contains(&format!("fn {n}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/security.md names tests that do not exist: {missing:?}"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn json_and_xml_blocks_are_well_formed() {
    let failures = Failures::default();
    let mut n = 0;
    for b in all_blocks() {
        let r = match b.lang.as_str() {
            "json" => json::check(&b.text),
            "xml" => xml_check(&b.text),
            _ => continue,
        };
        n += 1;
        if let Err(e) = r {
            failures.add(&b, e);
        }
    }
    assert!(n >= 2, "the pages hold a JSON and an XML block");
    failures.check("malformed JSON or XML");
}

/// A small JSON reader: accepts exactly one JSON value.
mod json {
    pub fn check(text: &str) -> Result<(), String> {
        let b = text.as_bytes();
        let mut i = value(b, skip(b, 0))?;
        i = skip(b, i);
        if i != b.len() {
            return Err(format!("byte {i}: text after the JSON value"));
        }
        Ok(())
    }

    fn skip(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }

    fn value(b: &[u8], i: usize) -> Result<usize, String> {
        match b.get(i) {
            Some(b'{') => seq(b, i + 1, b'}', true),
            Some(b'[') => seq(b, i + 1, b']', false),
            Some(b'"') => string(b, i),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_digit() || b"+-.eE".contains(&b[j])) {
                    j += 1;
                }
                Ok(j)
            }
            _ => {
                for word in [&b"true"[..], b"false", b"null"] {
                    if b[i..].starts_with(word) {
                        return Ok(i + word.len());
                    }
                }
                Err(format!("byte {i}: not a JSON value"))
            }
        }
    }

    fn string(b: &[u8], i: usize) -> Result<usize, String> {
        let mut j = i + 1;
        while j < b.len() {
            match b[j] {
                b'\\' => j += 2,
                b'"' => return Ok(j + 1),
                c if c < 0x20 => return Err(format!("byte {j}: a control character in a string")),
                _ => j += 1,
            }
        }
        Err(format!("byte {i}: a string is never closed"))
    }

    fn seq(b: &[u8], mut i: usize, close: u8, object: bool) -> Result<usize, String> {
        i = skip(b, i);
        if b.get(i) == Some(&close) {
            return Ok(i + 1);
        }
        loop {
            if object {
                i = string(b, skip(b, i))?;
                i = skip(b, i);
                if b.get(i) != Some(&b':') {
                    return Err(format!("byte {i}: `:` expected"));
                }
                i += 1;
            }
            i = skip(b, value(b, skip(b, i))?);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(c) if *c == close => return Ok(i + 1),
                _ => return Err(format!("byte {i}: `,` or `{}` expected", close as char)),
            }
        }
    }
}

/// Elements open and close in order; the `<?xml ...?>` prolog is allowed.
fn xml_check(text: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text;
    let mut roots = 0;
    while let Some(i) = rest.find('<') {
        let end = rest[i..]
            .find('>')
            .ok_or_else(|| "a tag is never closed".to_string())?;
        let tag = &rest[i + 1..i + end];
        rest = &rest[i + end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            if stack.is_empty() {
                roots += 1;
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
    }
    match (stack.is_empty(), roots) {
        (true, 1) => Ok(()),
        (false, _) => Err(format!("elements never closed: {stack:?}")),
        (true, n) => Err(format!("{n} root elements")),
    }
}

// ---- The library, a staged install, running programs ------------------------------------------

/// Whether the C toolchain, CMake and the library build are there (false: skipped).
/// Skips the running test when there is no C build (fails it under CI).
fn require_c_build() {
    common::require_tool("cc");
    common::require_tool("cmake");
}

/// The CMake-built library directory (`librrpc.so` with its symbol versions).
fn lib_dir() -> PathBuf {
    cmake::library_build().join("lib")
}

/// `cmake --install` of the tests' build into a scratch prefix, once: the library, the
/// header, the CMake package, rrpc.pc and the `rrpc` tool.
fn stage() -> &'static Path {
    static STAGE: OnceLock<PathBuf> = OnceLock::new();
    STAGE.get_or_init(|| {
        let build = cmake::library_build();
        let stage = scratch().join("stage");
        let _ = std::fs::remove_dir_all(&stage);
        let _lock = cmake::FileLock::exclusive(&common::repo_root().join("target/cmake-test.lock"))
            .expect("the CMake build's lock");
        cmake::run(
            Command::new("cmake")
                .arg("--install")
                .arg(build)
                .arg("--prefix")
                .arg(&stage),
        );
        assert!(
            stage.join("bin/rrpc").is_file(),
            "the staged install holds the rrpc tool"
        );
        stage
    })
}

fn scratch() -> PathBuf {
    common::scratch_dir("docs")
}

/// A scratch directory of its own for one block.
fn block_dir(b: &Block) -> PathBuf {
    let stem = b.page.file_stem().unwrap().to_string_lossy().to_string();
    let d = scratch().join(format!("{stem}-{}", b.line));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("block dir");
    d
}

/// The output of a finished command: its status, stdout and stderr.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn describe(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to its end, for at most `timeout` (then kills it: a failure).
fn run_for(cmd: &mut Command, timeout: Duration) -> Ran {
    let mut p = common::Proc::spawn_with(cmd);
    let status = p.wait_exit(timeout);
    if status.is_some() {
        p.child = None; // reaped: nothing to kill
    }
    let ran = Ran {
        ok: status.is_some_and(|s| s.success()),
        stdout: p.stdout().iter().map(|l| format!("{l}\n")).collect(),
        stderr: p.stderr().iter().map(|l| format!("{l}\n")).collect(),
    };
    if status.is_none() {
        p.signal(libc::SIGKILL);
        return Ran {
            ok: false,
            stderr: format!("{}(killed after {timeout:?})\n", ran.stderr),
            ..ran
        };
    }
    ran
}

// ---- C blocks ---------------------------------------------------------------------------------

fn is_program(b: &Block) -> bool {
    b.text.lines().any(|l| l.starts_with("int main("))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fragment {
    /// Statements, compiled as the body of a function.
    Body,
    /// Declarations and functions, compiled at file scope.
    File,
}

/// The kind of a fragment, and the C its marker adds, from `<!-- fragment -->`,
/// `<!-- file fragment: extern int fd; -->`.
fn fragment_kind(b: &Block) -> Option<(Fragment, String)> {
    let m = b.marker.as_deref()?;
    let (head, decls) = match m.split_once(':') {
        Some((h, d)) => (h.trim(), d.trim().to_string()),
        None => (m, String::new()),
    };
    match head {
        "fragment" => Some((Fragment::Body, decls)),
        "file fragment" => Some((Fragment::File, decls)),
        _ => None,
    }
}

const STRICT: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// What every fragment may use without declaring it (docs/testing.md lists it).
const FRAGMENT_PRELUDE: &str = "\
#define _POSIX_C_SOURCE 200809L
#include <rrpc.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
extern rrpc_client *client;
extern rrpc_router *router;
extern rrpc_caller *caller;
extern rrpc_jt808_adapter *adapter;
extern const rrpc_request *req;
extern uint64_t token;
extern uint64_t now_ms;
";

/// The source a C block is compiled from, with `#line` pointing into the page.
fn c_source(b: &Block) -> String {
    let line = format!("#line {} \"{}\"\n", b.first_line(), b.page.display());
    match fragment_kind(b) {
        None => format!("{line}{}", b.text),
        Some((Fragment::Body, decls)) => format!(
            "{FRAGMENT_PRELUDE}{decls}\nvoid rrpc_docs_fragment(void);\n\
             void rrpc_docs_fragment(void)\n{{\n{line}{}}}\n",
            b.text
        ),
        Some((Fragment::File, decls)) => format!("{FRAGMENT_PRELUDE}{decls}\n{line}{}", b.text),
    }
}

/// Libraries a program needs for the headers it includes, and the header that shows
/// they are installed.
const C_LIBS: &[(&str, &str, &str)] = &[
    ("<mosquitto.h>", "/usr/include/mosquitto.h", "-lmosquitto"),
    (
        "<MQTTClient.h>",
        "/usr/include/MQTTClient.h",
        "-lpaho-mqtt3c",
    ),
    ("<pthread.h>", "/usr/include/pthread.h", "-pthread"),
];

/// Compiles (and, for a program, links) one C block; the executable's path.
fn compile_c(b: &Block) -> Result<Option<PathBuf>, String> {
    let dir = block_dir(b);
    let src = dir.join("block.c");
    std::fs::write(&src, c_source(b)).expect("write the block");
    let root = common::repo_root();
    let mut cmd = Command::new("cc");
    cmd.args(STRICT)
        .arg("-I")
        .arg(root.join("include"))
        .current_dir(root);
    if fragment_kind(b).is_some() {
        cmd.args(["-Wno-unused-function", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(dir.join("block.o"));
        return cmake::try_run(&mut cmd).map(|_| None);
    }
    let exe = dir.join("block");
    cmd.arg(&src).arg("-o").arg(&exe);
    let lib = lib_dir();
    cmd.arg("-L")
        .arg(&lib)
        .arg("-lrrpc")
        .arg(format!("-Wl,-rpath,{}", lib.display()));
    for (include, header, flag) in C_LIBS {
        if b.text.contains(&format!("#include {include}")) {
            if !Path::new(header).exists() {
                if std::env::var_os("CI").is_some() {
                    return Err(format!("{header} is missing: CI installs it"));
                }
                eprintln!("SKIPPED: {}: {header} is not installed", b.at());
                return Ok(None);
            }
            cmd.arg(flag);
        }
    }
    cmake::try_run(&mut cmd).map(|_| Some(exe))
}

/// The `text` block marked `<!-- output -->` right after `b` on its page, if any.
fn expected_output(b: &Block) -> Option<String> {
    let blocks = blocks_of(&b.page);
    let i = blocks.iter().position(|x| x.line == b.line)?;
    blocks
        .get(i + 1)
        .filter(|n| n.lang == "text" && n.marker.as_deref() == Some("output"))
        .map(|n| n.text.clone())
}

fn c_blocks_compile_and_the_runnable_ones_run() {
    require_c_build();
    let failures = Failures::default();
    let mut programs = 0;
    let mut fragments = 0;
    for b in all_blocks().into_iter().filter(|b| b.lang == "c") {
        let exe = match compile_c(&b) {
            Ok(exe) => exe,
            Err(e) => {
                failures.add(&b, format!("does not compile:\n{e}"));
                continue;
            }
        };
        if fragment_kind(&b).is_some() {
            fragments += 1;
            continue;
        }
        programs += 1;
        let Some(exe) = exe else { continue };
        if b.marker.as_deref() == Some("run") {
            let ran = run_for(&mut Command::new(&exe), Duration::from_secs(20));
            if !ran.ok {
                failures.add(&b, format!("the program failed\n{}", ran.describe()));
            } else if let Some(want) = expected_output(&b) {
                if ran.stdout != want {
                    failures.add(
                        &b,
                        format!(
                            "the output differs from the block after it\n--- shown ---\n{want}{}",
                            ran.describe()
                        ),
                    );
                }
            }
        }
    }
    assert!(
        programs >= 4 && fragments >= 4,
        "{programs} programs, {fragments} fragments"
    );
    failures.check("C blocks");
}

/// The README's quickstart runs against a broker and answers a call from the Rust
/// caller; the programs marked `<!-- run: quickstart -->` then call it too.
fn the_readme_quickstart_answers_calls() {
    require_c_build();
    let qs = quickstart();
    let exe = compile_c(&qs)
        .unwrap_or_else(|e| panic!("{}: the quickstart does not compile:\n{e}", qs.at()))
        .expect("the quickstart needs no optional library");
    let broker = common::Broker::rumqttd();
    let mut device = common::Proc::spawn(&exe, &[broker.port.to_string()]);
    device.expect_stderr("quickstart: connected", Duration::from_secs(15));

    let caller = rrpc::Caller::connect(rrpc::CallerConfig::new("127.0.0.1", broker.port))
        .expect("a caller on the test broker");
    let response = caller.call(&rrpc::CallParams {
        timeout_ms: Some(5000),
        ..rrpc::CallParams::new(rrpc::Dialect::AlibabaSystem, "a1B2c3", "dev1", b"hello")
    });
    assert_eq!(
        response.rrpc_code,
        Some(rrpc::RrpcCode::Success),
        "{response:?}\n{}",
        device.transcript()
    );
    assert_eq!(response.payload.as_deref(), Some(&b"ok"[..]));

    let failures = Failures::default();
    let callers: Vec<Block> = all_blocks()
        .into_iter()
        .filter(|b| b.lang == "c" && b.marker.as_deref() == Some("run: quickstart"))
        .collect();
    assert!(!callers.is_empty(), "a page calls the quickstart from C");
    for b in callers {
        match compile_c(&b) {
            Ok(Some(exe)) => {
                let ran = run_for(
                    Command::new(exe).arg(broker.port.to_string()),
                    Duration::from_secs(20),
                );
                if !ran.ok {
                    failures.add(
                        &b,
                        format!("calling the quickstart failed\n{}", ran.describe()),
                    );
                }
            }
            Ok(None) => {}
            Err(e) => failures.add(&b, format!("does not compile:\n{e}")),
        }
    }
    assert!(device.wait_stdout_lines("request ", 2, Duration::from_secs(5)) >= 2);
    device.terminate();
    failures.check("programs that call the quickstart");
}

// ---- Shell, console, CMake and Mosquitto blocks -----------------------------------------------

/// One command of a shell block: its words (quotes removed), and its text as written.
#[derive(Debug, Clone)]
struct ShellCommand {
    words: Vec<String>,
    raw: String,
    background: bool,
}

/// Splits shell text into commands: continuation lines joined, comments dropped, and
/// `&&`, `||`, `;`, `|`, `&` between commands (outside quotes and `$(...)`).
fn shell_commands(text: &str) -> Vec<ShellCommand> {
    let joined = text.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let chars: Vec<char> = line.chars().collect();
        let (mut quote, mut depth) = (None::<char>, 0usize);
        let mut cmd = String::new();
        let mut i = 0;
        let mut push = |cmd: &mut String, background: bool| {
            let raw = cmd.trim().to_string();
            if !raw.is_empty() {
                out.push(ShellCommand {
                    words: words(&raw),
                    raw,
                    background,
                });
            }
            cmd.clear();
        };
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '$') if next == Some('(') => {
                    depth += 1;
                    cmd.push_str("$(");
                    i += 2;
                    continue;
                }
                (None, ')') if depth > 0 => depth -= 1,
                (None, '#') if depth == 0 && (i == 0 || chars[i - 1].is_whitespace()) => break,
                (None, '&' | '|' | ';') if depth == 0 => {
                    let double = next == Some(c) && c != ';';
                    push(&mut cmd, c == '&' && !double);
                    i += if double { 2 } else { 1 };
                    continue;
                }
                _ => {}
            }
            cmd.push(c);
            i += 1;
        }
        push(&mut cmd, false);
    }
    out
}

/// The words of one command: split at blanks outside quotes and `$(...)`, quotes removed.
fn words(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let (mut quote, mut depth, mut any) = (None::<char>, 0usize, false);
    let chars: Vec<char> = raw.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') if depth == 0 => {
                quote = Some(c);
                any = true;
            }
            (None, '$') if chars.get(i + 1) == Some(&'(') => {
                depth += 1;
                word.push_str("$(");
                i += 2;
                any = true;
                continue;
            }
            (None, ')') if depth > 0 => {
                depth -= 1;
                word.push(c);
            }
            (None, c) if c.is_whitespace() && depth == 0 => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (None, c) => {
                word.push(c);
                any = true;
            }
        }
        i += 1;
    }
    if any {
        out.push(word);
    }
    out
}

/// What the shell checks need: the staged install and the answers of `rrpc --help`.
struct Shell {
    stage: PathBuf,
    help: Mutex<HashMap<Vec<String>, Option<String>>>,
}

impl Shell {
    fn new() -> Shell {
        Shell {
            stage: stage().to_path_buf(),
            help: Mutex::new(HashMap::new()),
        }
    }

    fn rrpc(&self) -> PathBuf {
        self.stage.join("bin/rrpc")
    }

    /// `rrpc <path...> --help`, or None when that subcommand does not exist.
    fn help(&self, path: &[String]) -> Option<String> {
        let mut cache = self.help.lock().unwrap();
        cache
            .entry(path.to_vec())
            .or_insert_with(|| {
                let o = Command::new(self.rrpc())
                    .args(path)
                    .arg("--help")
                    .output()
                    .expect("run rrpc --help");
                o.status
                    .success()
                    .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
            })
            .clone()
    }
}

/// What to do with one command.
enum Action {
    /// Checked for what it names; nothing to run.
    Checked,
    /// Run `rrpc` with these arguments.
    Rrpc(Vec<String>),
    /// Run the command's text with `sh -c` in a directory.
    Sh { raw: String, in_scratch: bool },
}

/// The arguments of an `rrpc` command: `rrpc`, `target/release/rrpc`, or
/// `cargo run ... -p rrpc-cli -- ARGS`.
fn rrpc_args(words: &[String]) -> Option<Vec<String>> {
    let program = words.first()?;
    if program == "rrpc" || program.ends_with("/rrpc") {
        return Some(words[1..].to_vec());
    }
    if program == "cargo" && words.get(1).map(String::as_str) == Some("run") {
        let sep = words.iter().position(|w| w == "--")?;
        if words[..sep]
            .windows(2)
            .any(|w| w[0] == "-p" && w[1] == "rrpc-cli")
        {
            return Some(words[sep + 1..].to_vec());
        }
    }
    None
}

/// Subcommands of `rrpc` that run without a broker or a network.
fn rrpc_runs_alone(args: &[String]) -> bool {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    matches!(
        a.as_slice(),
        ["demo", ..] | ["jt808", "decode", ..] | ["jt808", "encode", ..] | ["credentials", ..]
    ) || a
        .iter()
        .any(|w| *w == "--help" || *w == "-h" || *w == "--version")
}

/// Known programs that are only named, with nothing to check beyond that.
const NAMED_ONLY: &[&str] = &[
    "cd", "cpack", "dpkg", "rustup", "readelf", "apt-get", "sudo", "ldconfig", "strip", "nm",
    "git", "echo", "export", "doxygen",
];

fn cargo_packages() -> BTreeSet<String> {
    ["Cargo.toml", "cli/Cargo.toml"]
        .iter()
        .filter_map(|f| {
            read(Path::new(f)).lines().find_map(|l| {
                l.strip_prefix("name = \"")?
                    .strip_suffix('"')
                    .map(String::from)
            })
        })
        .collect()
}

/// `[features]` names and `[profile.X]` names of the root Cargo.toml.
fn cargo_features_and_profiles() -> (BTreeSet<String>, BTreeSet<String>) {
    let toml = read(Path::new("Cargo.toml"));
    let mut features = BTreeSet::new();
    let mut profiles: BTreeSet<String> = ["dev", "release", "test", "bench"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut section = String::new();
    for l in toml.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            section = l.trim_matches(|c| c == '[' || c == ']').to_string();
            if let Some(p) = section.strip_prefix("profile.") {
                profiles.insert(p.to_string());
            }
        } else if section == "features" {
            if let Some((name, _)) = l.split_once('=') {
                if !name.trim().starts_with('#') {
                    features.insert(name.trim().to_string());
                }
            }
        }
    }
    (features, profiles)
}

/// The value after `flag` (`--test x`) or in `flag=x`.
fn flag_values<'a>(words: &'a [String], flag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if w == flag {
            if let Some(v) = words.get(i + 1) {
                out.push(v.as_str());
            }
        } else if let Some(v) = w.strip_prefix(&format!("{flag}=")) {
            out.push(v);
        }
    }
    out
}

fn exists(p: &str) -> bool {
    common::repo_root().join(p).exists()
}

fn check_cargo(words: &[String]) -> Result<(), String> {
    let sub = words.get(1).map(String::as_str).unwrap_or("");
    if ![
        "build", "run", "test", "bench", "doc", "clippy", "fmt", "install", "fuzz",
    ]
    .contains(&sub)
    {
        return Err(format!(
            "`cargo {sub}`: a cargo command the test does not know"
        ));
    }
    let packages = cargo_packages();
    for p in flag_values(words, "-p")
        .into_iter()
        .chain(flag_values(words, "--package"))
    {
        if !packages.contains(p) {
            return Err(format!("no cargo package {p} (there are {packages:?})"));
        }
    }
    let (features, profiles) = cargo_features_and_profiles();
    for p in flag_values(words, "--profile") {
        if !profiles.contains(p) {
            return Err(format!("no cargo profile {p}"));
        }
    }
    for list in flag_values(words, "--features") {
        for f in list.split(',').filter(|f| !f.is_empty()) {
            if !features.contains(f) {
                return Err(format!("no cargo feature {f}"));
            }
        }
    }
    for t in flag_values(words, "--test") {
        if ![
            format!("tests/{t}.rs"),
            format!("tests/{t}/main.rs"),
            format!("cli/tests/{t}.rs"),
        ]
        .iter()
        .any(|p| exists(p))
        {
            return Err(format!("no test target {t}"));
        }
    }
    for b in flag_values(words, "--bench") {
        if !exists(&format!("benches/{b}.rs")) && !exists(&format!("benches/{b}/main.rs")) {
            return Err(format!("no bench {b}"));
        }
    }
    for e in flag_values(words, "--example") {
        if !exists(&format!("examples/{e}.rs")) {
            return Err(format!("no example {e}"));
        }
    }
    Ok(())
}

/// Every `-DNAME=...` is a CMake variable of the project (an `option` or a cache
/// `set`) or one of CMake's own (`CMAKE_...`).
fn check_cmake(words: &[String]) -> Result<(), String> {
    let lists = read(Path::new("CMakeLists.txt"));
    for (i, w) in words.iter().enumerate() {
        let def = if w == "-D" {
            words.get(i + 1).map(String::as_str)
        } else {
            w.strip_prefix("-D")
        };
        let Some(def) = def else { continue };
        let name = def.split(['=', ':']).next().unwrap_or("");
        if name.starts_with("CMAKE_") {
            continue;
        }
        let declared = lists.contains(&format!("option({name} "))
            || lists.contains(&format!("set({name} "))
            || lists.contains(&format!("set({name}\n"));
        if !declared {
            return Err(format!("-D{name}: CMakeLists.txt has no such option"));
        }
    }
    Ok(())
}

/// Checks one command; what to run, if anything.
fn classify(shell: &Shell, cmd: &ShellCommand) -> Result<Action, String> {
    let words: Vec<String> = cmd
        .words
        .iter()
        .skip_while(|w| {
            w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
        })
        .cloned()
        .collect();
    let Some(program) = words.first().cloned() else {
        return Ok(Action::Checked);
    };
    if let Some(args) = rrpc_args(&words) {
        if rrpc_runs_alone(&args) && !cmd.background {
            return Ok(Action::Rrpc(args));
        }
        let mut path: Vec<String> = Vec::new();
        for a in args.iter().take_while(|a| !a.starts_with('-')) {
            let mut p = path.clone();
            p.push(a.clone());
            if shell.help(&p).is_none() {
                break;
            }
            path = p;
        }
        let help = shell
            .help(&path)
            .ok_or_else(|| format!("`rrpc {}` does not exist", path.join(" ")))?;
        if path.is_empty() {
            return Err(format!("`rrpc {}`: not a subcommand", args.join(" ")));
        }
        for a in args.iter().filter(|a| a.starts_with("--")) {
            let flag = a.split('=').next().unwrap();
            let shown = help.match_indices(flag).any(|(i, _)| {
                !help[i + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
            });
            if !shown {
                return Err(format!("`rrpc {}` has no option {flag}", path.join(" ")));
            }
        }
        return Ok(Action::Checked);
    }
    match program.as_str() {
        "cargo" => check_cargo(&words).map(|_| Action::Checked),
        "cmake" => check_cmake(&words).map(|_| Action::Checked),
        "cc" | "gcc" | "clang" | "pkg-config" => Ok(Action::Sh {
            raw: cmd.raw.clone(),
            in_scratch: true,
        }),
        "mosquitto_passwd" | "cp" => Ok(Action::Sh {
            raw: cmd.raw.clone(),
            in_scratch: false,
        }),
        "valgrind" => {
            common::require_tool("valgrind");
            let o = Command::new("valgrind")
                .arg("--help")
                .output()
                .map_err(|e| e.to_string())?;
            let help = String::from_utf8_lossy(&o.stdout);
            for a in words.iter().filter(|a| a.starts_with("--")) {
                let flag = a.split('=').next().unwrap();
                if !help.contains(flag) {
                    return Err(format!("valgrind has no option {flag}"));
                }
            }
            Ok(Action::Checked)
        }
        p if p.starts_with("scripts/") || p.starts_with(".ci/") => {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(common::repo_root().join(p))
                .map_err(|_| format!("{p} does not exist"))?;
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(format!("{p} is not executable"));
            }
            Ok(Action::Checked)
        }
        p if p.starts_with("build/examples-c/") => {
            let name = &p["build/examples-c/".len()..];
            let source =
                std::fs::read_to_string(common::repo_root().join(format!("examples-c/{name}.c")))
                    .map_err(|_| format!("no example examples-c/{name}.c"))?;
            for a in words.iter().filter(|a| a.starts_with("--")) {
                if !source.contains(&format!("\"{a}\"")) {
                    return Err(format!("examples-c/{name}.c takes no option {a}"));
                }
            }
            Ok(Action::Checked)
        }
        p if NAMED_ONLY.contains(&p) => {
            for a in &words[1..] {
                let repo_path = a.starts_with("docs/") || a.starts_with("scripts/");
                if repo_path && !exists(a) {
                    return Err(format!("{a} does not exist"));
                }
            }
            Ok(Action::Checked)
        }
        p => Err(format!("`{p}`: a program the test does not know")),
    }
}

/// Where `/etc/mosquitto/` of a page's commands goes.
fn etc_mosquitto(page_dir: &Path) -> PathBuf {
    page_dir.join("etc/mosquitto")
}

/// Runs one runnable command; its output.
fn execute(shell: &Shell, action: Action, page_dir: &Path) -> Option<Ran> {
    let root = common::repo_root();
    let timeout = Duration::from_secs(120);
    match action {
        Action::Checked => None,
        Action::Rrpc(args) => Some(run_for(
            Command::new(shell.rrpc()).args(&args).current_dir(page_dir),
            timeout,
        )),
        Action::Sh { raw, in_scratch } => {
            let etc = etc_mosquitto(page_dir);
            std::fs::create_dir_all(&etc).expect("etc dir");
            let raw = raw.replace("/etc/mosquitto/", &format!("{}/", etc.display()));
            let program = raw.split_whitespace().next().unwrap_or("sh").to_string();
            if !common::harness::have_tool(&program) {
                common::skip(format!("{program} is not installed"));
            }
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(&raw)
                .current_dir(if in_scratch { page_dir } else { root })
                .env(
                    "PKG_CONFIG_PATH",
                    shell.stage.join("lib/pkgconfig").as_os_str(),
                );
            Some(run_for(&mut cmd, timeout))
        }
    }
}

/// A page's scratch directory, with `main.c` (the README's quickstart) in it.
fn page_dir(page: &Path) -> PathBuf {
    let stem = page.file_stem().unwrap().to_string_lossy().to_string();
    let d = scratch().join(format!("page-{stem}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("page dir");
    std::fs::write(d.join("main.c"), quickstart().text).expect("main.c");
    d
}

fn check_sh(shell: &Shell, b: &Block, dir: &Path, failures: &Failures) {
    let syntax = Command::new("sh")
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b.text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("sh -n");
    if !syntax.status.success() {
        failures.add(
            b,
            format!("sh -n: {}", String::from_utf8_lossy(&syntax.stderr)),
        );
        return;
    }
    let commands = shell_commands(&b.text);
    if commands.is_empty() {
        failures.add(b, "a shell block without a command");
    }
    for c in commands {
        match classify(shell, &c) {
            Err(e) => failures.add(b, format!("`{}`: {e}", c.raw)),
            Ok(action) => {
                if let Some(ran) = execute(shell, action, dir) {
                    if !ran.ok {
                        failures.add(b, format!("`{}` failed\n{}", c.raw, ran.describe()));
                    }
                }
            }
        }
    }
}

fn check_console(shell: &Shell, b: &Block, dir: &Path, failures: &Failures) {
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in b.text.lines() {
        if let Some(c) = line.strip_prefix("$ ") {
            steps.push((c.to_string(), String::new()));
        } else if let Some((_, out)) = steps.last_mut() {
            out.push_str(line);
            out.push('\n');
        } else {
            failures.add(b, "a console block starts with `$ ` and a command");
            return;
        }
    }
    for (command, want) in steps {
        let cmds = shell_commands(&command);
        let [c] = cmds.as_slice() else {
            failures.add(b, format!("`{command}`: one command per `$ ` line"));
            continue;
        };
        match classify(shell, c) {
            Err(e) => failures.add(b, format!("`{command}`: {e}")),
            Ok(Action::Checked) => failures.add(
                b,
                format!("`{command}` cannot run here: show it in an `sh` block instead"),
            ),
            Ok(action) => {
                if let Some(ran) = execute(shell, action, dir) {
                    let got = format!("{}{}", ran.stdout, ran.stderr);
                    if got != want {
                        failures.add(
                            b,
                            format!("`{command}` prints otherwise\n--- shown ---\n{want}--- printed ---\n{got}"),
                        );
                    }
                }
            }
        }
    }
}

fn check_cmake_block(shell: &Shell, b: &Block, failures: &Failures) {
    let dir = block_dir(b);
    if b.text.contains("find_package(rrpc") {
        std::fs::write(dir.join("CMakeLists.txt"), &b.text).expect("CMakeLists.txt");
        std::fs::write(dir.join("main.c"), quickstart().text).expect("main.c");
        let build = dir.join("build");
        let configure = cmake::try_run(
            Command::new("cmake")
                .arg("-S")
                .arg(&dir)
                .arg("-B")
                .arg(&build)
                .arg(format!("-DCMAKE_PREFIX_PATH={}", shell.stage.display())),
        );
        let built = configure
            .and_then(|_| cmake::try_run(Command::new("cmake").arg("--build").arg(&build)));
        if let Err(e) = built {
            failures.add(
                b,
                format!("the project does not build against the install:\n{e}"),
            );
        }
    } else if b.text.contains("CMAKE_SYSTEM_NAME") {
        let file = dir.join("toolchain.cmake");
        std::fs::write(&file, &b.text).expect("toolchain file");
        if let Err(e) = cmake::try_run(Command::new("cmake").arg("-P").arg(&file)) {
            failures.add(b, format!("cmake -P:\n{e}"));
        }
    } else {
        failures.add(
            b,
            "a CMake block is a project with find_package(rrpc) or a toolchain file",
        );
    }
}

/// Mosquitto starts with the block as its configuration, `/etc/mosquitto/` moved.
fn check_conf(b: &Block, dir: &Path, failures: &Failures) {
    common::require_tool("mosquitto");
    let port = common::free_port();
    let etc = etc_mosquitto(dir);
    let text = b
        .text
        .replace("/etc/mosquitto/", &format!("{}/", etc.display()));
    let conf = block_dir(b).join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\n{text}")).expect("conf");
    let mut broker = common::Proc::spawn_with(Command::new("mosquitto").arg("-c").arg(&conf));
    let end = Instant::now() + Duration::from_secs(10);
    let mut listening = false;
    while Instant::now() < end {
        if common::wait_listening(port, Duration::from_millis(200)) {
            listening = true;
            break;
        }
        if broker
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
        {
            broker.child = None; // exited and reaped
            break;
        }
    }
    if !listening {
        failures.add(
            b,
            format!("Mosquitto does not start with it\n{}", broker.transcript()),
        );
    }
    broker.terminate();
}

fn shell_console_cmake_and_conf_blocks_run_or_name_what_exists() {
    require_c_build();
    let shell = Shell::new();
    let failures = Failures::default();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for page in pages() {
        let dir = page_dir(&page);
        for b in blocks_of(&page) {
            let lang = match b.lang.as_str() {
                "sh" => "sh",
                "console" => "console",
                "cmake" => "cmake",
                "conf" => "conf",
                _ => continue,
            };
            *seen.entry(lang).or_default() += 1;
            match lang {
                "sh" => check_sh(&shell, &b, &dir, &failures),
                "console" => check_console(&shell, &b, &dir, &failures),
                "cmake" => check_cmake_block(&shell, &b, &failures),
                _ => check_conf(&b, &dir, &failures),
            }
        }
    }
    assert!(
        seen.get("sh").copied().unwrap_or(0) >= 5
            && seen.contains_key("console")
            && seen.contains_key("cmake"),
        "blocks seen: {seen:?}"
    );
    failures.check("shell, console, CMake and Mosquitto blocks");
}

// ---- The test's own parsers ---------------------------------------------------------------------

fn the_shell_splitter_reads_what_the_pages_write() {
    let c = shell_commands(
        "cmake -S . -B build && cmake --build build   # the library\n\
         cc main.c $(pkg-config --cflags --libs rrpc) -o 'my device'\n\
         rrpc call --port 1883 \\\n    --payload 'a # b' &\n",
    );
    let raw: Vec<&str> = c.iter().map(|c| c.raw.as_str()).collect();
    assert_eq!(
        raw,
        [
            "cmake -S . -B build",
            "cmake --build build",
            "cc main.c $(pkg-config --cflags --libs rrpc) -o 'my device'",
            "rrpc call --port 1883      --payload 'a # b'",
        ]
    );
    assert_eq!(c[2].words[2], "$(pkg-config --cflags --libs rrpc)");
    assert_eq!(c[2].words[4], "my device");
    assert!(c[3].background && !c[0].background);
    assert_eq!(c[3].words.last().unwrap(), "a # b");
    assert_eq!(
        anchor("The `rrpc device` command"),
        "the-rrpc-device-command"
    );
    assert_eq!(anchor("JT/T 808"), "jtt-808");
    assert!(json::check("{\"a\":[1,-2.5e3,true,null,\"x\\\"\"]}").is_ok());
    assert!(json::check("{\"a\":1,}").is_err());
    assert!(xml_check("<?xml version='1.0'?>\n<a><b>t</b></a>").is_ok());
    assert!(xml_check("<a><b></a>").is_err());
}

pub fn tests() -> Vec<common::harness::Test> {
    crate::tests![
        every_block_has_a_language_the_test_knows,
        every_page_is_a_doc_test_module,
        the_readme_keeps_its_two_commands,
        links_point_to_existing_files_and_headings,
        the_tests_security_names_exist,
        json_and_xml_blocks_are_well_formed,
        c_blocks_compile_and_the_runnable_ones_run needs ["cc", "cmake"],
        the_readme_quickstart_answers_calls needs ["cc", "cmake"],
        shell_console_cmake_and_conf_blocks_run_or_name_what_exists
            needs ["cc", "cmake", "mosquitto", "pkg-config", "valgrind"],
        the_shell_splitter_reads_what_the_pages_write,
    ]
}
