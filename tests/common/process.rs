//! Programs as child processes ([`Proc`]), the C test programs of `tests/c/`
//! compiled against the CMake-built library, and valgrind's memcheck.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{cmake, free_port, repo_root, require_tool, scratch_dir};

/// A C example (or any program) running as a child process. Its stdout and
/// stderr lines are collected; it is stopped by its PID on drop.
pub struct Proc {
    pub child: Option<Child>,
    pub name: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(program: &Path, args: &[String]) -> Proc {
        Proc::spawn_with(Command::new(program).args(args))
    }

    pub fn spawn_with(cmd: &mut Command) -> Proc {
        let name = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        for (pipe, sink) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                stdout.clone(),
            ),
            (Box::new(child.stderr.take().unwrap()), stderr.clone()),
        ] {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Proc {
            child: Some(child),
            name,
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line contains `needle`.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.stderr().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until a stderr line contains `needle`; panics with the transcript if
    /// none does within `timeout`.
    pub fn expect_stderr(&self, needle: &str, timeout: Duration) {
        assert!(
            self.wait_stderr(needle, timeout),
            "no stderr line with {needle:?} within {timeout:?}:\n{}",
            self.transcript()
        );
    }

    /// Waits until exactly `n` stdout lines start with `prefix`; panics with the
    /// transcript if fewer (within `timeout`) or more do.
    pub fn expect_stdout_lines(&self, prefix: &str, n: usize, timeout: Duration) {
        assert_eq!(
            self.wait_stdout_lines(prefix, n, timeout),
            n,
            "stdout lines starting with {prefix:?}:\n{}",
            self.transcript()
        );
    }

    /// Waits until `n` stdout lines start with `prefix`; returns how many did.
    pub fn wait_stdout_lines(&self, prefix: &str, n: usize, timeout: Duration) -> usize {
        let end = Instant::now() + timeout;
        loop {
            let count = self
                .stdout()
                .iter()
                .filter(|l| l.starts_with(prefix))
                .count();
            if count >= n || Instant::now() >= end {
                return count;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < end {
            if let Ok(Some(st)) = child.try_wait() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `sig` to the process by PID.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGTERM, then waits for a clean exit; returns its status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(Duration::from_secs(20));
        if st.is_none() {
            self.signal(libc::SIGKILL);
            if let Some(c) = self.child.as_mut() {
                let _ = c.wait();
            }
        }
        self.child = None;
        st
    }

    /// Everything the process printed, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.stdout().join("\n"),
            self.stderr().join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// The arguments with which a C example of examples-c/ reaches a broker on
/// 127.0.0.1:`port` for product `product_key`, then `extra`.
pub fn example_args(
    port: impl std::fmt::Display,
    product_key: &str,
    extra: &[&str],
) -> Vec<String> {
    let port = port.to_string();
    [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--product-key",
        product_key,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

/// The arguments that make a device (an example of examples-c/ or `rrpc device`)
/// answer `device_name` on the Alibaba custom topic `topic`.
pub fn custom_topic_device_args<'a>(device_name: &'a str, topic: &'a str) -> [&'a str; 6] {
    [
        "--dialect",
        "alibaba-custom",
        "--device-name",
        device_name,
        "--topic",
        topic,
    ]
}

/// The C example `name` of examples-c/ (CMake-built: the test needs `cmake` and
/// `cc`) started with [`example_args`].
pub fn spawn_example(
    name: &str,
    port: impl std::fmt::Display,
    product_key: &str,
    extra: &[&str],
) -> Proc {
    Proc::spawn(
        &cmake::example(name),
        &example_args(port, product_key, extra),
    )
}

/// Runs the C example `name` as [`spawn_example`] does, against a 127.0.0.1 port
/// where nothing listens: it must exit by itself, with `status`, within 10 s.
/// Returns its stderr and the port.
pub fn run_example_without_broker(
    name: &str,
    product_key: &str,
    extra: &[&str],
    status: i32,
) -> (String, u16) {
    let port = free_port();
    let mut p = spawn_example(name, port, product_key, extra);
    let st = p
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{name} exits by itself: {}", p.transcript()));
    assert_eq!(st.code(), Some(status), "{}", p.transcript());
    (p.stderr().join("\n"), port)
}

/// Compiles the C test program `tests/c/{source}` as C99 with warnings as errors
/// against the CMake-built librrpc.so, to `{name}` in a scratch directory (the test
/// needs `cmake` and `cc`).
pub fn c_harness(source: &str, name: &str) -> PathBuf {
    c_harness_with(source, name, &[])
}

/// [`c_harness`] with more compiler arguments (such as `-pthread`).
pub fn c_harness_with(source: &str, name: &str, extra: &[&str]) -> PathBuf {
    require_tool("cmake");
    require_tool("cc");
    cmake::c_build();
    let lib = cmake::build_lib_dir();
    let root = repo_root();
    let exe = scratch_dir("c-harness").join(name);
    let mut cc = Command::new("cc");
    cc.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/c").join(source))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lrrpc")
        .args(extra);
    if let Err(e) = cmake::try_run(&mut cc) {
        panic!("{source} does not compile:\n{e}");
    }
    exe
}

/// Runs a C harness; it must exit 0 and print "checks passed".
pub fn run_c_harness(exe: &Path) {
    run_c_harness_args(exe, &[]);
}

/// [`run_c_harness`] with arguments; returns the harness's stderr.
pub fn run_c_harness_args(exe: &Path, args: &[String]) -> String {
    let out = Command::new(exe)
        .args(args)
        .output()
        .expect("run the harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("checks passed"), "{stdout}");
    stderr.into_owned()
}

/// The shipped valgrind suppression file, `valgrind/rrpc.supp` (installed as
/// `share/rrpc/rrpc.supp`).
pub fn valgrind_suppressions() -> PathBuf {
    repo_root().join("valgrind/rrpc.supp")
}

/// The memcheck options the README documents for programs that use librrpc: a full
/// leak check in which definite, indirect and possible leaks are errors, exit status
/// 99 on any error, and the shipped suppression file.
pub fn valgrind_args() -> Vec<String> {
    vec![
        "--leak-check=full".into(),
        "--errors-for-leak-kinds=definite,indirect,possible".into(),
        "--show-leak-kinds=definite,indirect,possible".into(),
        "--error-exitcode=99".into(),
        format!("--suppressions={}", valgrind_suppressions().display()),
    ]
}

/// Runs a C harness under valgrind with [`valgrind_args`]: no error, no leak.
pub fn run_c_harness_under_valgrind(exe: &Path, log_name: &str) {
    run_c_harness_under_valgrind_args(exe, log_name, &[]);
}

/// [`run_c_harness_under_valgrind`] with arguments.
pub fn run_c_harness_under_valgrind_args(exe: &Path, log_name: &str, args: &[String]) {
    let mut vg = Memcheck::new(log_name);
    let out = vg
        .command
        .arg(exe)
        .args(args)
        .output()
        .expect("run valgrind");
    vg.assert_clean(Some(out.status), &String::from_utf8_lossy(&out.stderr));
}

/// valgrind's memcheck with [`valgrind_args`] (the test needs `valgrind`), its
/// report in `target/test-scratch/valgrind/<log_name>`.
pub struct Memcheck {
    /// `valgrind <options> --log-file=...`: add the program and its arguments.
    pub command: Command,
    pub log: PathBuf,
}

impl Memcheck {
    pub fn new(log_name: &str) -> Memcheck {
        Memcheck::with_options(log_name, &valgrind_args())
    }

    /// With other memcheck options than [`valgrind_args`].
    pub fn with_options(log_name: &str, options: &[String]) -> Memcheck {
        require_tool("valgrind");
        let log = scratch_dir("valgrind").join(log_name);
        let mut command = Command::new("valgrind");
        command
            .args(options)
            .arg(format!("--log-file={}", log.display()));
        Memcheck { command, log }
    }

    /// The report memcheck wrote.
    pub fn report(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The program under memcheck exited 0 (no error, no leak: memcheck's exit
    /// code is 99 otherwise) and the report says 0 errors; `transcript` (what the
    /// program printed) goes into the failure message.
    pub fn assert_clean(&self, status: Option<std::process::ExitStatus>, transcript: &str) {
        let report = self.report();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "valgrind found problems:\n{report}\n{transcript}"
        );
        assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
    }
}
