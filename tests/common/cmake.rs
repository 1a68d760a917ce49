//! The CMake build of librrpc and examples-c/, shared by the test suites.
//!
//! [`c_build`] configures and builds the top-level `CMakeLists.txt` into
//! `target/cmake-test` (cargo profile `release`, with the `rrpc` tool: one cargo run
//! builds the library and the tool), once per test process. CMake runs
//! cargo itself with its own target directory, `target/cmake-test/cargo-target`, so it
//! never waits on the build-directory lock of the `cargo test` that runs us. Several
//! test binaries may call it at the same time: an flock on `target/cmake-test.lock`
//! makes them build one after the other (the later ones find everything up to date).
//!
//! A test that builds declares that it needs `cmake` and `cc` (each build checks it
//! with [`require_tool`]).

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::{require_tool, skip};

/// The repository root (where the workspace Cargo.toml and CMakeLists.txt live).
pub fn repo_root() -> &'static Path {
    super::repo_root()
}

/// The CMake build directory [`c_build`] uses: `target/cmake-test`.
pub fn build_dir() -> PathBuf {
    repo_root().join("target/cmake-test")
}

/// The cargo `--target-dir` of the CMake builds: `target/cmake-test/cargo-target`.
/// Other CMake builds in the tests point `RRPC_CARGO_TARGET_DIR` here so cargo does not
/// compile everything again.
pub fn cargo_target_dir() -> PathBuf {
    build_dir().join("cargo-target")
}

/// The cargo that runs the tests (`$CARGO`), so CMake builds with the same toolchain.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// `-D` options every test configure passes for the librrpc part: the cargo to use,
/// the shared cargo target dir, release profile, `--offline` (the outer `cargo test`
/// has already fetched every dependency; the tests must not touch the network), and the
/// `rrpc` tool: cargo unifies the dependencies' features over everything one run builds,
/// so builds with and without the tool would not share their compiled dependencies.
pub fn rrpc_cmake_defines() -> Vec<String> {
    vec![
        format!("-DCARGO={}", cargo()),
        format!("-DRRPC_CARGO_TARGET_DIR={}", cargo_target_dir().display()),
        "-DRRPC_CARGO_PROFILE=release".to_owned(),
        "-DRRPC_CARGO_FLAGS=--offline".to_owned(),
        "-DRRPC_BUILD_TOOL=ON".to_owned(),
    ]
}

/// Configures and builds the top-level CMake project once per test process and returns
/// its build directory (`target/cmake-test`). Panics, showing the failing command's
/// output, if the build fails.
pub fn c_build() -> &'static Path {
    require_tool("cmake");
    require_tool("cc");
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let examples = ["-DRRPC_BUILD_EXAMPLES=ON".into()];
    build_tree_once(&BUILT, "the CMake build", build_dir(), &examples, None)
}

/// Configures the top-level project as [`c_build`] does and builds the library alone
/// (the `rrpc_shared` target: `lib/librrpc.so` with its symbol versions, and
/// `lib/librrpc.a`), once per test process; for tests that need the library but not
/// the examples. Returns the build directory, `target/cmake-test`.
pub fn library_build() -> &'static Path {
    require_tool("cmake");
    require_tool("cc");
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let examples = ["-DRRPC_BUILD_EXAMPLES=ON".into()];
    let library = Some("rrpc_shared");
    build_tree_once(&BUILT, "the CMake build", build_dir(), &examples, library)
}

/// Configures the top-level project into `dir` with `defines` and builds it (or only
/// `target`), under the lock of the CMake trees, the first time `built` is asked;
/// returns `dir`. Panics, showing the failing command's output, if `what` (the kind of
/// build) failed, that time or before.
fn build_tree_once(
    built: &'static OnceLock<Result<PathBuf, String>>,
    what: &str,
    dir: PathBuf,
    defines: &[String],
    target: Option<&str>,
) -> &'static Path {
    let result = built.get_or_init(|| {
        let _lock = FileLock::exclusive(&repo_root().join("target/cmake-test.lock"))?;
        configure_and_build_target(&dir, defines, target)?;
        Ok(dir)
    });
    match result {
        Ok(dir) => dir,
        Err(e) => panic!("{what} of librrpc failed:\n{e}"),
    }
}

/// The C example `name` of the CMake tree `tree` (`tree/examples-c/<name>`); `what`
/// names the build in the failure message when it is missing.
fn built_example(tree: &Path, name: &str, what: &str) -> PathBuf {
    let path = tree.join("examples-c").join(name);
    assert!(path.is_file(), "{what} did not produce {}", path.display());
    path
}

/// `target/cmake-test/examples-c/<name>`, built by [`c_build`] (called here).
pub fn example(name: &str) -> PathBuf {
    built_example(c_build(), name, "the CMake build")
}

/// A program of the Paho MQTT C examples in `dir/examples-c/` (a CMake build tree):
/// CMake builds them only where it finds Paho, so without it the running test is
/// skipped (failed under CI, which installs libpaho-mqtt-dev).
pub fn paho_program(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join("examples-c").join(name);
    if !path.is_file() {
        skip(format!(
            "{name} was not built (Paho MQTT C not found; apt-get install libpaho-mqtt-dev)"
        ));
    }
    path
}

/// The build tree's library directory: `lib/librrpc.so`, `lib/librrpc.so.<soversion>`
/// and `lib/librrpc.a`.
pub fn build_lib_dir() -> PathBuf {
    c_build().join("lib")
}

/// The sanitizers of [`sanitized_build`] and of [`sanitizer_flags`].
pub const SANITIZERS: &str = "address,undefined";

/// Configures and builds a second CMake tree, `target/cmake-sanitize`, whose C examples
/// are built with `-DRRPC_SANITIZE=address,undefined`, once per test process, and
/// returns it. The library is the one [`c_build`] made (same cargo target dir and
/// options, so cargo has nothing to do); only the examples are compiled again.
pub fn sanitized_build() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    c_build();
    let dir = repo_root().join("target/cmake-sanitize");
    let defines = [
        "-DRRPC_BUILD_EXAMPLES=ON".into(),
        format!("-DRRPC_SANITIZE={SANITIZERS}"),
    ];
    build_tree_once(&BUILT, "the sanitizer CMake build", dir, &defines, None)
}

/// `target/cmake-sanitize/examples-c/<name>`, built by [`sanitized_build`].
pub fn sanitized_example(name: &str) -> PathBuf {
    built_example(sanitized_build(), name, "the sanitizer CMake build")
}

/// Compiler and linker flags of a C program built with `sanitizers` (for
/// `-fsanitize=`): every report is fatal, with frame pointers and debug info for
/// readable stacks. The same flags as `RRPC_SANITIZE` in CMake.
pub fn sanitizer_flags(sanitizers: &str) -> Vec<String> {
    vec![
        format!("-fsanitize={sanitizers}"),
        "-fno-sanitize-recover=all".into(),
        "-fno-omit-frame-pointer".into(),
        "-g".into(),
    ]
}

/// The environment a sanitized program runs with: leaks checked at exit, the first
/// report ends the program with a failing status (a distinct one per sanitizer),
/// stacks printed. ThreadSanitizer reads `tests/c/tsan.supp`: it ignores the libc
/// calls librrpc makes, whose synchronization it cannot see (the file says why).
pub fn sanitizer_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86:\
             detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
                .into(),
        ),
        ("LSAN_OPTIONS", "exitcode=87".into()),
        (
            "UBSAN_OPTIONS",
            "halt_on_error=1:print_stacktrace=1:exitcode=88".into(),
        ),
        (
            "TSAN_OPTIONS",
            format!(
                "halt_on_error=1:exitcode=89:second_deadlock_stack=1:suppressions={}",
                repo_root().join("tests/c/tsan.supp").display()
            ),
        ),
    ]
}

/// Configures the top-level project into `dir` with [`rrpc_cmake_defines`] and `extra`
/// (later -D options win), then builds it. Configuring every time is cheap and picks up
/// CMakeLists.txt edits and a changed $CARGO.
pub fn configure_and_build(dir: &Path, extra: &[String]) -> Result<(), String> {
    configure_and_build_target(dir, extra, None)
}

/// [`configure_and_build`], building only `target` when one is given.
pub fn configure_and_build_target(
    dir: &Path,
    extra: &[String],
    target: Option<&str>,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(repo_root())
        .arg("-B")
        .arg(dir)
        .args(rrpc_cmake_defines())
        .args(extra);
    try_run(&mut configure)?;

    let mut build = Command::new("cmake");
    build.arg("--build").arg(dir).args(["--parallel", "2"]);
    if let Some(t) = target {
        build.args(["--target", t]);
    }
    try_run(&mut build)?;
    Ok(())
}

/// The host's target triple, from `rustc -vV` (the rustc next to `$CARGO` when it is set).
pub fn host_triple() -> String {
    let cargo = cargo();
    let rustc = Path::new(&cargo)
        .parent()
        .map(|d| d.join("rustc"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("rustc"));
    let out = run(Command::new(rustc).arg("-vV"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_owned()
}

/// An exclusive flock, released when dropped (the file is closed).
pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn exclusive(path: &Path) -> Result<FileLock, String> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("open lock file {}: {e}", path.display()))?;
        loop {
            // SAFETY: flock on a file descriptor we own and keep open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("flock {}: {err}", path.display()));
            }
        }
    }
}

/// Last `max` bytes of `s` (on a char boundary), so a cargo build log stays readable.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The command, its exit status, stdout and stderr, for failure messages.
pub fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {cmd:?}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 16_000),
        tail(&String::from_utf8_lossy(&out.stderr), 16_000),
    )
}

/// Runs `cmd` to completion; an error (with its output) unless it exits 0.
pub fn try_run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(describe(cmd, &out))
    }
}

/// Runs `cmd`; panics with its output unless it exits 0.
pub fn run(cmd: &mut Command) -> Output {
    match try_run(cmd) {
        Ok(out) => out,
        Err(e) => panic!("command failed:\n{e}"),
    }
}
