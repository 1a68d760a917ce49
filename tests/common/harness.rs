//! The runner of every test binary (`harness = false`): each module of a binary
//! lists its tests with [`tests!`](crate::tests), naming the tools each needs, and the
//! binary's `main` hands the lists to [`main`].
//!
//! Why not Rust's built-in harness: it cannot skip a test at run time, so a test
//! whose tool (Mosquitto, cmake, valgrind, ...) is missing could only return early
//! and be reported as passed. [libtest-mimic] runs the same command line (`cargo
//! test FILTER`, `--list`, `--test-threads`, `--exact`, `--skip`, `--nocapture`,
//! which is a no-op: it never captures output) and reports such a test as
//! *ignored, with the reason*; the summary counts it. With `CI` set a missing tool
//! fails the test instead: CI installs every tool, so nothing may be skipped there.
//!
//! A test declares what it needs; [`require_tool`] (called by the helpers that start
//! Mosquitto, build with CMake, run valgrind, ...) checks at run time that the
//! running test declared the tool, so that a missing declaration fails on a machine
//! that has every tool instead of passing unnoticed. Conditions that are not a
//! program on PATH (a library CMake did not find, a Mosquitto plugin) call [`skip`].
//!
//! [libtest-mimic]: https://docs.rs/libtest-mimic

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::{Mutex, Once};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// One test: its name (the function's), the function, and the programs it needs on
/// PATH. Made by [`tests!`](crate::tests).
pub struct Test {
    pub name: &'static str,
    pub run: fn(),
    pub needs: &'static [&'static str],
}

/// The tests of a module: `tests![a, b needs ["mosquitto"], c needs ["cmake", "cc"]]`
/// is a `Vec<Test>` of the functions `a`, `b` and `c`, `b` needing Mosquitto and `c`
/// a C build. A test function that is not listed is dead code, which the build
/// refuses (`-D warnings`).
#[macro_export]
macro_rules! tests {
    ($($name:ident $(needs [$($tool:expr),* $(,)?])?),* $(,)?) => {
        vec![$($crate::common::harness::Test {
            name: stringify!($name),
            run: $name,
            needs: &[$($($tool),*)?],
        }),*]
    };
}

/// The two tests of a C harness `tests/c/{stem}.c` (built with the extra compiler
/// arguments, if any): `$plain` runs it as a process, `$valgrind` runs it again
/// under valgrind, clean (no error, no leak). List both in the module's
/// [`tests!`](crate::tests), needing `cmake` and `cc` (and `valgrind`), or write
/// `c_harness_tests!(module "stem": plain, valgrind)` for a module of only these two.
#[macro_export]
macro_rules! c_harness_tests {
    ($stem:literal $([$($arg:literal),*])?: $plain:ident, $valgrind:ident) => {
        fn $plain() {
            let exe = $crate::common::c_harness_with(
                concat!($stem, ".c"), $stem, &[$($($arg),*)?]);
            $crate::common::run_c_harness(&exe);
        }

        fn $valgrind() {
            let exe = $crate::common::c_harness_with(
                concat!($stem, ".c"), concat!($stem, "_vg"), &[$($($arg),*)?]);
            $crate::common::run_c_harness_under_valgrind(&exe, concat!($stem, ".log"));
        }
    };
    // A module whose tests are the harness's two: its `tests()` too.
    (module $stem:literal: $plain:ident, $valgrind:ident) => {
        $crate::c_harness_tests!($stem: $plain, $valgrind);

        pub fn tests() -> Vec<$crate::common::Test> {
            $crate::tests![
                $plain needs ["cmake", "cc"],
                $valgrind needs ["cmake", "cc", "valgrind"],
            ]
        }
    };
}

/// The tests of a binary's modules for [`main`], by module name:
/// `common::harness::main(crate::modules![a, b])` in its `main.rs` runs the tests of
/// the modules `a` and `b` (each declared there with `mod`, each with a `pub fn
/// tests()` made by [`tests!`](crate::tests)) as `a::...` and `b::...`.
#[macro_export]
macro_rules! modules {
    ($($module:ident),+ $(,)?) => {
        vec![$((stringify!($module), $module::tests())),+]
    };
}

/// The panic payload of [`skip`].
struct Skip(String);

/// Ends the running test as skipped (ignored, with `reason`), or as failed when `CI`
/// is set. For what cannot be declared as a tool on PATH.
pub fn skip(reason: impl Into<String>) -> ! {
    std::panic::panic_any(Skip(reason.into()))
}

/// Whether `CI` is set: then nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Whether `tool` is on PATH (looked up once per process).
pub fn have_tool(tool: &str) -> bool {
    static FOUND: Mutex<Option<HashMap<String, bool>>> = Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    *found
        .get_or_insert_with(HashMap::new)
        .entry(tool.to_owned())
        .or_insert_with(|| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
}

thread_local! {
    /// The tools the test running on this thread declared (`None` off a test's thread).
    static DECLARED: RefCell<Option<&'static [&'static str]>> = const { RefCell::new(None) };
}

/// Makes sure `tool` is on PATH, else skips the running test (fails it under CI).
/// On a test's own thread the test must have declared the tool in its module's
/// [`tests!`](crate::tests): an undeclared one fails the test.
pub fn require_tool(tool: &str) {
    DECLARED.with(|d| {
        if let Some(declared) = *d.borrow() {
            assert!(
                declared.contains(&tool),
                "this test uses {tool}: declare it (`needs [\"{tool}\", ...]`) in its module's tests![]"
            );
        }
    });
    if !have_tool(tool) {
        skip(format!("{tool} is not installed"));
    }
}

/// Runs the tests of every `(module, tests)` of a binary with libtest-mimic's
/// command line, and exits with its status. Test names are `module::function`.
pub fn main(modules: Vec<(&'static str, Vec<Test>)>) -> ! {
    let args = Arguments::from_args();
    quiet_skips();
    let trials = modules
        .into_iter()
        .flat_map(|(module, tests)| {
            tests.into_iter().map(move |t| {
                Trial::ignorable_test(format!("{module}::{}", t.name), move || run(t))
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

fn run(t: Test) -> Result<Completion, Failed> {
    if let Some(tool) = t.needs.iter().find(|tool| !have_tool(tool)) {
        return skipped(format!("{tool} is not installed"));
    }
    DECLARED.with(|d| *d.borrow_mut() = Some(t.needs));
    let outcome = catch_unwind(AssertUnwindSafe(t.run));
    DECLARED.with(|d| *d.borrow_mut() = None);
    match outcome {
        Ok(()) => Ok(Completion::Completed),
        Err(payload) => match payload.downcast::<Skip>() {
            Ok(s) => skipped(s.0),
            // libtest-mimic reports the panic's message as the failure.
            Err(other) => resume_unwind(other),
        },
    }
}

fn skipped(reason: String) -> Result<Completion, Failed> {
    if under_ci() {
        Err(format!("{reason}, and CI must have it (scripts/install-deps.sh)").into())
    } else {
        Ok(Completion::ignored_with(reason))
    }
}

/// A [`skip`] is not a crash: the panic hook says nothing about it.
fn quiet_skips() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload: &(dyn Any + Send) = info.payload();
            if !payload.is::<Skip>() {
                default(info);
            }
        }));
    });
}
