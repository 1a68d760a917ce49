//! Shared test helpers: brokers on free loopback ports, a test caller, and C
//! example processes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rrpc::dialect::{self, Dialect};

pub mod cmake;
pub mod pki;
pub mod proxy;

/// Whether `tool` is on PATH. Under CI (`CI` set) a missing tool fails the test:
/// CI installs everything the suite needs, so absence there is a bug.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is required by this test and CI must install it");
        }
        eprintln!("SKIPPED: {tool} is not installed (CI installs it; see .ci/run)");
    }
    found
}

/// The repository root: the nearest directory above the crate under test that
/// holds CMakeLists.txt (the library's own directory, or the parent of `cli/`).
pub fn repo_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let start = Path::new(env!("CARGO_MANIFEST_DIR"));
        start
            .ancestors()
            .find(|d| d.join("CMakeLists.txt").exists())
            .unwrap_or(start)
            .to_path_buf()
    })
}

/// A directory under target/ for this test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = repo_root().join("target/test-scratch").join(name);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Owned copies of command-line arguments.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_listening(port: u16, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    while Instant::now() < end {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Which broker a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerKind {
    Rumqttd,
    Mosquitto,
}

/// A running broker. Mosquitto is a child process stopped by its PID on drop;
/// rumqttd runs in this test process on its own thread until the process ends.
pub struct Broker {
    pub kind: BrokerKind,
    pub port: u16,
    mosquitto: Option<Child>,
    conf: Option<PathBuf>,
}

impl Broker {
    /// Starts a broker of `kind` on a free loopback port; `None` when Mosquitto is
    /// not installed outside CI.
    pub fn start(kind: BrokerKind) -> Option<Broker> {
        match kind {
            BrokerKind::Rumqttd => Some(Broker::rumqttd()),
            BrokerKind::Mosquitto => Broker::mosquitto(),
        }
    }

    pub fn rumqttd() -> Broker {
        Broker::rumqttd_on(free_port())
    }

    /// In-process rumqttd on a given port (for tests that start the device first).
    pub fn rumqttd_on(port: u16) -> Broker {
        let mut v4 = HashMap::new();
        v4.insert(
            "v4".to_string(),
            rumqttd::ServerSettings {
                name: "v4".to_string(),
                listen: ([127, 0, 0, 1], port).into(),
                tls: None,
                next_connection_delay_ms: 1,
                connections: rumqttd::ConnectionSettings {
                    connection_timeout_ms: 60_000,
                    max_payload_size: 4 * 1024 * 1024,
                    max_inflight_count: 500,
                    auth: None,
                    external_auth: None,
                    dynamic_filters: true,
                },
            },
        );
        let config = rumqttd::Config {
            id: 0,
            router: rumqttd::RouterConfig {
                max_connections: 10_010,
                max_outgoing_packet_count: 2000,
                max_segment_size: 100 * 1024 * 1024,
                max_segment_count: 10,
                ..Default::default()
            },
            v4: Some(v4),
            ..Default::default()
        };
        std::thread::Builder::new()
            .name(format!("rumqttd-{port}"))
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    eprintln!("rumqttd on {port} stopped: {e}");
                }
            })
            .expect("spawn rumqttd");
        assert!(
            wait_listening(port, Duration::from_secs(10)),
            "rumqttd did not listen on {port}"
        );
        Broker {
            kind: BrokerKind::Rumqttd,
            port,
            mosquitto: None,
            conf: None,
        }
    }

    pub fn mosquitto() -> Option<Broker> {
        Broker::mosquitto_with("allow_anonymous true\n")
    }

    /// Mosquitto with extra configuration lines (authentication, for instance).
    pub fn mosquitto_with(extra_conf: &str) -> Option<Broker> {
        if !require_tool("mosquitto") {
            return None;
        }
        let port = free_port();
        let conf = scratch_dir("mosquitto").join(format!("mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nmax_packet_size 4194304\npersistence false\n{extra_conf}"),
        )
        .expect("write mosquitto.conf");
        let mut b = Broker {
            kind: BrokerKind::Mosquitto,
            port,
            mosquitto: None,
            conf: Some(conf),
        };
        b.restart();
        Some(b)
    }

    /// Mosquitto that refuses anonymous clients and knows one user; `None` (after
    /// `require_tool`) when mosquitto or mosquitto_passwd is missing outside CI.
    pub fn mosquitto_with_user(user: &str, password: &str) -> Option<Broker> {
        if !require_tool("mosquitto_passwd") {
            return None;
        }
        let dir = scratch_dir("auth");
        let pwfile = dir.join(format!("passwd-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::remove_file(&pwfile);
        let st = std::process::Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&pwfile)
            .args([user, password])
            .status()
            .expect("run mosquitto_passwd");
        assert!(st.success(), "mosquitto_passwd failed");
        Broker::mosquitto_with(&format!(
            "allow_anonymous false\npassword_file {}\n",
            pwfile.display()
        ))
    }

    /// Mosquitto only: starts it again on the same port after [`Broker::kill`].
    pub fn restart(&mut self) {
        assert_eq!(
            self.kind,
            BrokerKind::Mosquitto,
            "only Mosquitto can be restarted"
        );
        let conf = self.conf.as_ref().expect("config");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.mosquitto = Some(child);
        assert!(
            wait_listening(self.port, Duration::from_secs(10)),
            "mosquitto did not listen on {}",
            self.port
        );
    }

    /// Mosquitto only: kills the broker process by its PID (SIGKILL: no clean
    /// DISCONNECTs, like a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.mosquitto.take() {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.mosquitto.take() {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// Every broker kind the end-to-end tests run against (Mosquitto only when
/// installed, or always under CI).
pub fn brokers() -> Vec<Broker> {
    [BrokerKind::Rumqttd, BrokerKind::Mosquitto]
        .into_iter()
        .filter_map(Broker::start)
        .collect()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A unique Alibaba-style 64-bit decimal message id.
pub fn message_id() -> String {
    let base = 889_455_942_124_347_392u64;
    (base + (std::process::id() as u64) * 1_000_000 + NEXT_ID.fetch_add(1, Ordering::Relaxed))
        .to_string()
}

type Waiters = Arc<Mutex<HashMap<String, mpsc::Sender<Vec<u8>>>>>;

/// A minimal cloud-side caller for tests: publishes requests on a dialect's
/// request topic and waits for the response with the same message id.
pub struct Caller {
    client: rumqttc::Client,
    waiters: Waiters,
    subacks: Mutex<mpsc::Receiver<()>>,
}

impl Caller {
    /// Connects and subscribes the Alibaba system response wildcard (Tencent and
    /// custom topics are added by [`Caller::watch_tencent`] and
    /// [`Caller::watch_custom`]: rumqttd refuses `$` filters).
    pub fn connect(port: u16) -> Caller {
        let mut o =
            rumqttc::MqttOptions::new(format!("test-caller-{}", message_id()), "127.0.0.1", port);
        o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = rumqttc::Client::new(o, 1000);
        // rumqttc leaves Nagle on: without this the caller's own requests stall ~40 ms.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        connection.eventloop.set_network_options(net);
        let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
        let (suback_tx, subacks) = mpsc::channel();
        let w = waiters.clone();
        std::thread::spawn(move || {
            // Custom-topic requests come back to the caller too (same topic): the
            // first delivery of an id is our own request, the second the reply.
            let mut seen_custom: HashMap<String, u32> = HashMap::new();
            for ev in connection.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let id = match response_id(&p.topic) {
                            Some((id, true)) => {
                                let n = seen_custom.entry(id.clone()).or_insert(0);
                                *n += 1;
                                if *n == 1 {
                                    continue;
                                }
                                id
                            }
                            Some((id, false)) => id,
                            None => continue,
                        };
                        if let Some(tx) = w.lock().unwrap().remove(&id) {
                            let _ = tx.send(p.payload.to_vec());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = suback_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        let c = Caller {
            client,
            waiters,
            subacks: Mutex::new(subacks),
        };
        c.subscribe(&Dialect::AlibabaSystem.response_wildcard(None));
        c
    }

    fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, rumqttc::QoS::AtMostOnce)
            .expect("queue subscribe");
        self.subacks
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10))
            .expect("SUBACK from the broker");
    }

    /// Subscribes Tencent responses (`$rrpc/txd/+/+/+`). Mosquitto only: rumqttd
    /// 0.20 refuses filters that start with `$` and drops the connection.
    pub fn watch_tencent(&self) {
        self.subscribe(&Dialect::Tencent.response_wildcard(None));
    }

    /// Subscribes the custom topic's RRPC wildcard (`/ext/rrpc/+{topic}`).
    pub fn watch_custom(&self, custom_topic: &str) {
        self.subscribe(&Dialect::AlibabaCustom.response_wildcard(Some(custom_topic)));
    }

    /// Publishes a request (QoS 0) for `id` on `topic` and waits for its response.
    pub fn call_topic(
        &self,
        topic: &str,
        id: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        self.waiters.lock().unwrap().insert(id.to_string(), tx);
        self.client
            .publish(topic, rumqttc::QoS::AtMostOnce, false, payload.to_vec())
            .expect("queue publish");
        let r = rx.recv_timeout(timeout).ok();
        self.waiters.lock().unwrap().remove(id);
        r
    }

    /// Calls a device of `dialect` with a fresh message id.
    pub fn call(
        &self,
        dialect: Dialect,
        pk: &str,
        dn: &str,
        custom_topic: Option<&str>,
        payload: &[u8],
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        let id = message_id();
        let ident = dialect::Identity {
            product_key: pk,
            device_name: dn,
            custom_topic,
        };
        self.call_topic(&dialect.request_topic(&ident, &id), &id, payload, timeout)
    }

    /// Calls until the device answers (it may still be subscribing), for up to
    /// `total`; returns the first answer.
    pub fn call_until_answered(
        &self,
        dialect: Dialect,
        pk: &str,
        dn: &str,
        custom_topic: Option<&str>,
        payload: &[u8],
        total: Duration,
    ) -> Option<Vec<u8>> {
        let end = Instant::now() + total;
        while Instant::now() < end {
            if let Some(r) = self.call(
                dialect,
                pk,
                dn,
                custom_topic,
                payload,
                Duration::from_millis(300),
            ) {
                return Some(r);
            }
        }
        None
    }

    /// Calls the Alibaba (system topic) device `pk/dn` once per payload, in order, and
    /// checks that each answer is `reply_prefix` followed by the payload; each call waits
    /// up to 20 s. With `ready_line`, the device says on stderr when it is subscribed:
    /// that is waited for (up to `ready`) first. Without, the first call is repeated
    /// until answered, for up to `ready`, each attempt waiting 5 s: an attempt the device
    /// received is one of the requests it counts, so it must not time out merely
    /// because the device is slow (valgrind, a sanitizer, a loaded machine).
    pub fn expect_echoes(
        &self,
        pk: &str,
        dn: &str,
        payloads: &[Vec<u8>],
        reply_prefix: &[u8],
        (ready_line, ready): (Option<&str>, Duration),
        dev: &Proc,
    ) {
        if let Some(line) = ready_line {
            assert!(dev.wait_stderr(line, ready), "{}", dev.transcript());
        }
        for (i, p) in payloads.iter().enumerate() {
            let d = Dialect::AlibabaSystem;
            let r = if i == 0 && ready_line.is_none() {
                let end = Instant::now() + ready;
                let mut r = None;
                while r.is_none() && Instant::now() < end {
                    r = self.call(d, pk, dn, None, p, Duration::from_secs(5));
                }
                r
            } else {
                self.call(d, pk, dn, None, p, Duration::from_secs(20))
            };
            let mut want = reply_prefix.to_vec();
            want.extend_from_slice(p);
            assert!(r == Some(want), "call {i}: {r:?}\n{}", dev.transcript());
        }
    }

    /// Publishes raw bytes on any topic (for malformed-topic tests).
    pub fn publish_raw(&self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, rumqttc::QoS::AtMostOnce, false, payload.to_vec())
            .expect("queue publish");
    }
}

/// The message id of a response topic of any dialect, and whether it is a
/// custom-topic one.
fn response_id(topic: &str) -> Option<(String, bool)> {
    for d in Dialect::ALL {
        if let Ok(p) = d.parse_response(topic) {
            return Some((p.message_id.to_string(), d == Dialect::AlibabaCustom));
        }
    }
    None
}

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

/// Compiles the C test program `tests/c/{source}` as C99 with warnings as errors
/// against the CMake-built librrpc.so, to `{name}` in a scratch directory; `None`
/// when cmake or cc is missing outside CI.
pub fn c_harness(source: &str, name: &str) -> Option<PathBuf> {
    c_harness_with(source, name, &[])
}

/// [`c_harness`] with more compiler arguments (such as `-pthread`).
pub fn c_harness_with(source: &str, name: &str, extra: &[&str]) -> Option<PathBuf> {
    if !require_tool("cmake") || !require_tool("cc") {
        return None;
    }
    cmake::c_build();
    let lib = cmake::build_lib_dir();
    let root = repo_root();
    let exe = scratch_dir("c-harness").join(name);
    let out = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/c").join(source))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lrrpc")
        .args(extra)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "{source} does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
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
    if !require_tool("valgrind") {
        return;
    }
    let log = scratch_dir("valgrind").join(log_name);
    let out = Command::new("valgrind")
        .args(valgrind_args())
        .arg(format!("--log-file={}", log.display()))
        .arg(exe)
        .args(args)
        .output()
        .expect("run valgrind");
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
}

/// Publishes one QoS 1 message (retained or not, up to 1 MiB) from a client of
/// its own and waits for the broker's PUBACK.
pub fn publish_acked(port: u16, topic: &str, payload: &[u8], retain: bool) {
    let mut o = rumqttc::MqttOptions::new(format!("pub-{}", message_id()), "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = rumqttc::Client::new(o, 10);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.to_vec())
        .unwrap();
    for ev in conn.iter() {
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("publishing {topic}: {e}"),
        }
    }
    let _ = client.disconnect();
}

/// Polls `done` every 20 ms until it is true; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
