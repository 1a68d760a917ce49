//! `rrpc jt808 terminal`: simulated JT/T 808 vehicle terminals, for testing
//! pass-through adapters without vehicles.
//!
//! Each terminal opens its own TCP connection, registers (0x0100 / 0x8100),
//! authenticates with the code it was issued (0x0102 / 0x8001: an adapter binds
//! the connection to the phone only then), then acknowledges every downlink
//! pass-through (0x8900) with a general response (0x0001) and, when told to,
//! answers it with an uplink pass-through (0x0900). All terminals run as tasks
//! on one thread: a thousand terminals are a thousand sockets, not a thousand
//! threads.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rrpc::jt808::{
    encode_frame, split_passthrough, Body, DecodeError, Frame, Header, Phone, Reassembler,
    ResponseResult, StreamDecoder, Version, MAX_BODY_LEN, MSG_DOWNLINK_PASSTHROUGH,
    MSG_PLATFORM_RESPONSE, MSG_TERMINAL_RESPONSE, MSG_UPLINK_PASSTHROUGH,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval};

use crate::jt808::VersionArg;
use crate::{signals, EXIT_INVALID, EXIT_SYSTEM};

/// Exit status when the adapter closed every connection.
const EXIT_CLOSED: u8 = 3;

/// Terminal registration.
const MSG_REGISTER: u16 = 0x0100;
/// The platform's answer to a registration.
const MSG_REGISTER_RESPONSE: u16 = 0x8100;
/// Terminal authentication.
const MSG_AUTHENTICATE: u16 = 0x0102;
/// Terminal heartbeat (empty body).
const MSG_HEARTBEAT: u16 = 0x0002;

/// Terminals connecting and logging in at the same time (the others wait), so
/// that a thousand terminals do not overflow the adapter's listen backlog.
const LOGIN_CONCURRENCY: usize = 64;

/// File descriptors kept beyond one per terminal (stdio, the runtime's own).
const SPARE_FDS: u64 = 64;

/// How long terminals get to finish the frame they are writing after a signal.
const STOP_GRACE: Duration = Duration::from_secs(1);

const AFTER_HELP: &str = "\
Each terminal connects to --connect, registers (0x0100, answered by 0x8100 with an
authentication code), authenticates with that code (0x0102, answered by 0x8001 result 0:
from then on the adapter takes this connection's frames as the terminal's), and then serves
until SIGINT or SIGTERM, or until the adapter closes its connection:
  0x8900 downlink pass-through  -> 0x0001 general response (reply serial, 0x8900, --result),
                                   one per packet when the 0x8900 is sub-packaged; then, when
                                   --result is ok and --answer is not none, after
                                   --answer-delay-ms, a 0x0900 uplink pass-through with the same
                                   type byte (sub-packaged when longer than one frame carries)
  anything else                 -> ignored (shown with --verbose)
  every --heartbeat-secs        -> 0x0002 heartbeat
Serial numbers count per terminal from 0 and wrap at 65535.

stdout: `terminal <phone> ready` once the terminal has authenticated; with --count, one line
`terminals ready <N>` once every terminal has. stderr: errors with their reason (a frame that
does not decode names the byte offset and the rule it breaks), and at exit the counters
`frames in, frames out, 0x8900 received, 0x0900 sent, decode errors` (0x8900 and 0x0900 count
whole messages, frames count packets).

Exit status: 0 stopped by SIGINT/SIGTERM, 2 invalid arguments, 3 the adapter closed every
connection, 7 a terminal could not connect, register or authenticate (refused, or no answer
within --login-timeout-ms).

Examples:
  rrpc jt808 terminal --connect 127.0.0.1:6808 --phone 13800138000
  rrpc jt808 terminal --connect 127.0.0.1:6808 --phone 13800138000 --count 1000 --quiet
  rrpc jt808 terminal --connect 127.0.0.1:6808 --phone 17299841738 --version 2019 \\
                      --answer upper --answer-delay-ms 200
  rrpc jt808 terminal --connect 127.0.0.1:6808 --phone 13800138000 --result not-supported";

// `--version` here is the protocol edition, so the tool-version flag that
// `propagate_version` gives every subcommand is turned off for this one.
/// The arguments of `rrpc jt808 terminal`.
#[derive(Args, Debug)]
#[command(disable_version_flag = true, after_help = AFTER_HELP)]
pub struct TerminalArgs {
    /// The adapter's JT/T 808 listener, HOST:PORT (such as 127.0.0.1:6808 or [::1]:6808).
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: String,
    /// Phone number of the first terminal, decimal digits (sent left-padded with zeros to 12
    /// digits in 2013, 20 in 2019).
    #[arg(long, value_name = "DIGITS")]
    pub phone: String,
    /// Run N terminals, with phones --phone, --phone + 1, ... (same number of digits), each on
    /// its own connection; prints one `terminals ready <N>` line instead of one line per terminal.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: Option<u32>,
    /// Protocol edition of every frame the terminals send (and of the registration and
    /// authentication bodies).
    #[arg(long, value_enum, default_value = "2013")]
    pub version: VersionArg,
    /// Result of the 0x0001 general response to each 0x8900 packet.
    #[arg(long, value_enum, default_value_t = ResultArg::Ok)]
    pub result: ResultArg,
    /// The 0x0900 answer to each whole 0x8900 message (only with --result ok).
    #[arg(long, value_enum, default_value_t = AnswerArg::Echo)]
    pub answer: AnswerArg,
    /// Wait this many ms between a 0x8900 message and its 0x0900 answer.
    #[arg(long, value_name = "MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub answer_delay_ms: u64,
    /// Seconds between 0x0002 heartbeats of each terminal; 0 sends none.
    #[arg(long, value_name = "S", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub heartbeat_secs: u64,
    /// How long each terminal may take to connect, register and authenticate, in ms.
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub login_timeout_ms: u64,
    /// Print no `ready` lines on stdout (errors and counters still go to stderr).
    #[arg(long)]
    pub quiet: bool,
    /// Print every frame sent and received, and every message ignored, on stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// The result byte of the 0x0001 general response to a 0x8900.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultArg {
    /// 0: success.
    Ok,
    /// 1: failure.
    Failure,
    /// 2: message error.
    MessageError,
    /// 3: not supported.
    NotSupported,
}

impl ResultArg {
    fn result(self) -> ResponseResult {
        match self {
            ResultArg::Ok => ResponseResult::Ok,
            ResultArg::Failure => ResponseResult::Failure,
            ResultArg::MessageError => ResponseResult::MessageError,
            ResultArg::NotSupported => ResponseResult::NotSupported,
        }
    }
}

/// What a terminal sends back in its 0x0900 after a 0x8900.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerArg {
    /// The content received, unchanged.
    Echo,
    /// No 0x0900 (only the 0x0001).
    None,
    /// The content received with ASCII letters upper-cased (other bytes unchanged).
    Upper,
}

/// What every terminal is told, and what they all count.
struct Shared {
    connect: String,
    addrs: Vec<SocketAddr>,
    result: ResponseResult,
    answer: AnswerArg,
    answer_delay: Duration,
    heartbeat: Option<Duration>,
    login_timeout: Duration,
    verbose: bool,
    started: Instant,
    counters: Counters,
}

/// Totals over all terminals, printed at exit.
#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    downlinks: AtomicU64,
    uplinks: AtomicU64,
    decode_errors: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "frames in {}, frames out {}, 0x8900 received {}, 0x0900 sent {}, decode errors {}",
            get(&self.frames_in),
            get(&self.frames_out),
            get(&self.downlinks),
            get(&self.uplinks),
            get(&self.decode_errors)
        )
    }
}

/// Runs `rrpc jt808 terminal` to its end and returns the exit status.
pub fn run(a: TerminalArgs) -> ExitCode {
    let fail = |status: u8, m: String| {
        eprintln!("rrpc jt808 terminal: {m}");
        ExitCode::from(status)
    };
    let version = match a.version {
        VersionArg::V2013 => Version::V2013,
        VersionArg::V2019 => Version::V2019,
    };
    let (host, port) = match parse_connect(&a.connect) {
        Ok(hp) => hp,
        Err(m) => return fail(EXIT_INVALID, m),
    };
    let count = a.count.unwrap_or(1);
    let phones = match phone_numbers(&a.phone, count, version) {
        Ok(p) => p,
        Err(m) => return fail(EXIT_INVALID, m),
    };
    if let Err(e) = signals::install() {
        return fail(EXIT_SYSTEM, format!("cannot install signal handlers: {e}"));
    }
    let addrs: Vec<SocketAddr> = match (host.as_str(), port).to_socket_addrs() {
        Ok(it) => it.collect(),
        Err(e) => return fail(EXIT_SYSTEM, format!("cannot resolve {host}: {e}")),
    };
    if addrs.is_empty() {
        return fail(EXIT_SYSTEM, format!("{host} has no address"));
    }
    if let Err(m) = raise_fd_limit(u64::from(count) + SPARE_FDS) {
        return fail(EXIT_SYSTEM, m);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_SYSTEM, format!("cannot start the runtime: {e}")),
    };
    let status = rt.block_on(async {
        let shared = Arc::new(Shared {
            connect: a.connect.clone(),
            addrs,
            result: a.result.result(),
            answer: a.answer,
            answer_delay: Duration::from_millis(a.answer_delay_ms),
            heartbeat: (a.heartbeat_secs > 0).then(|| Duration::from_secs(a.heartbeat_secs)),
            login_timeout: Duration::from_millis(a.login_timeout_ms),
            verbose: a.verbose,
            started: Instant::now(),
            counters: Counters::default(),
        });
        let status = run_terminals(phones, a.count.is_some(), a.quiet, &shared).await;
        eprintln!("rrpc jt808 terminal: {}", shared.counters.summary());
        status
    });
    ExitCode::from(status)
}

/// Checks `s` is HOST:PORT (an IPv6 host in brackets) and splits it.
fn parse_connect(s: &str) -> Result<(String, u16), String> {
    let bad =
        |why: &str| format!("--connect {s:?}: {why}; expected HOST:PORT, such as 127.0.0.1:6808");
    if let Ok(sa) = s.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(bad("port 0 cannot be connected to"));
        }
        return Ok((sa.ip().to_string(), sa.port()));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(bad("no port"));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.contains(':') || host.contains(char::is_whitespace) {
        return Err(bad("the host is not a name or an address"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad(&format!("port {port:?} is not a number from 1 to 65535")))?;
    if port == 0 {
        return Err(bad("port 0 cannot be connected to"));
    }
    Ok((host.to_string(), port))
}

/// The phone numbers of `count` terminals from `first` upwards, as decimal
/// digits of the same width as `first`, with their header fields.
fn phone_numbers(
    first: &str,
    count: u32,
    version: Version,
) -> Result<Vec<(String, Phone)>, String> {
    Phone::from_digits(first, version).map_err(|e| format!("--phone {first:?}: {e}"))?;
    // At most 20 digits (checked just above), so the number fits a u128.
    let base: u128 = first
        .parse()
        .map_err(|_| format!("--phone {first:?}: not a decimal number"))?;
    let width = first.len();
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let digits = format!("{:0width$}", base + u128::from(i));
        let phone = Phone::from_digits(&digits, version).map_err(|e| {
            format!(
                "--phone {first} with --count {count}: terminal {} has phone {digits}: {e}",
                i + 1
            )
        })?;
        out.push((digits, phone));
    }
    Ok(out)
}

/// Raises the soft limit on open files to `want` when it is lower (up to the
/// hard limit), so that `--count` terminals get their sockets.
fn raise_fd_limit(want: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(()); // unknown: let connect report EMFILE if it comes to that
    }
    let want = want as libc::rlim_t;
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= want {
        return Ok(());
    }
    if lim.rlim_max != libc::RLIM_INFINITY && lim.rlim_max < want {
        return Err(format!(
            "{want} open files needed (one per terminal, and some), the hard limit is {} (see ulimit -Hn)",
            lim.rlim_max
        ));
    }
    lim.rlim_cur = want;
    // SAFETY: `lim` is a valid rlimit; only the soft limit changes, within the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!(
            "{want} open files needed, and the limit cannot be raised: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// How one terminal ended.
enum End {
    /// SIGINT/SIGTERM (or another terminal's failure at start).
    Stopped,
    /// The adapter closed the connection of this terminal (its phone digits).
    Closed(String),
    /// Reading or writing failed after login (a reset, say).
    Failed(String),
    /// Connect, registration or authentication failed (already reported).
    NotStarted,
}

/// Starts every terminal, reports them ready, and waits for a signal or for the
/// adapter to close every connection. Returns the exit status.
async fn run_terminals(
    phones: Vec<(String, Phone)>,
    aggregate: bool,
    quiet: bool,
    shared: &Arc<Shared>,
) -> u8 {
    let n = phones.len();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<String, String>>();
    let gate = Arc::new(Semaphore::new(LOGIN_CONCURRENCY));
    let mut set = JoinSet::new();
    for (name, phone) in phones {
        set.spawn(terminal(
            name,
            phone,
            Arc::clone(shared),
            Arc::clone(&gate),
            ready_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(ready_tx);
    let signal = async {
        loop {
            if let Some(sig) = signals::received() {
                return sig;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::pin!(signal);

    // Start: every terminal logs in, or the first failure stops them all.
    let mut ready = 0;
    while ready < n {
        tokio::select! {
            r = ready_rx.recv() => match r {
                Some(Ok(name)) => {
                    ready += 1;
                    if !aggregate && !quiet {
                        println!("terminal {name} ready");
                    }
                }
                Some(Err(m)) => {
                    eprintln!("rrpc jt808 terminal: {m} ({ready} of {n} terminals were ready)");
                    stop_all(&stop_tx, &mut set).await;
                    return EXIT_SYSTEM;
                }
                // Every terminal ended without reporting: cannot happen, as each
                // reports before it serves; treat it as all connections closed.
                None => break,
            },
            sig = &mut signal => {
                eprintln!("rrpc jt808 terminal: {}: stopping", signals::name(sig));
                stop_all(&stop_tx, &mut set).await;
                return 0;
            }
        }
    }
    if ready == n && aggregate && !quiet {
        println!("terminals ready {n}");
    }

    // Serve: until a signal, or until the adapter has closed every connection.
    loop {
        tokio::select! {
            j = set.join_next() => match j {
                None => break,
                Some(Ok(End::Closed(name))) => {
                    if shared.verbose {
                        eprintln!("rrpc jt808 terminal: terminal {name}: the adapter closed the connection");
                    }
                }
                Some(Ok(End::Failed(m))) => eprintln!("rrpc jt808 terminal: {m}"),
                Some(Ok(End::Stopped | End::NotStarted)) => {}
                Some(Err(e)) => eprintln!("rrpc jt808 terminal: a terminal ended abnormally: {e}"),
            },
            sig = &mut signal => {
                eprintln!("rrpc jt808 terminal: {}: stopping", signals::name(sig));
                stop_all(&stop_tx, &mut set).await;
                return 0;
            }
        }
    }
    eprintln!(
        "rrpc jt808 terminal: the adapter closed {} ({n} of {n})",
        if n == 1 {
            "the connection"
        } else {
            "every connection"
        }
    );
    EXIT_CLOSED
}

/// Tells every terminal to stop, gives them a moment to finish the frame they
/// are writing, then aborts what is left (closing its socket).
async fn stop_all(stop: &watch::Sender<bool>, set: &mut JoinSet<End>) {
    let _ = stop.send(true);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while set.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

/// Resolves once `stop` says true (at once if it already does).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        // The sender is gone only once every terminal has ended.
        std::future::pending::<()>().await;
    }
}

/// Waits for the next heartbeat, or forever without heartbeats.
async fn tick(heartbeat: &mut Option<Interval>) {
    match heartbeat {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// One terminal, from connect to its end.
async fn terminal(
    name: String,
    phone: Phone,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<String, String>>,
    mut stop: watch::Receiver<bool>,
) -> End {
    let login = async {
        // The semaphore is never closed; without a permit, go ahead anyway.
        let _permit = gate.acquire().await.ok();
        login(&name, phone, &shared).await
    };
    let (mut inbound, mut term) = tokio::select! {
        r = login => match r {
            Ok(link) => link,
            Err(m) => {
                let _ = ready.send(Err(format!("terminal {name}: {m}")));
                return End::NotStarted;
            }
        },
        _ = stopped(&mut stop) => return End::Stopped,
    };
    let _ = ready.send(Ok(name));
    drop(ready);
    term.serve(&mut inbound, &mut stop).await
}

/// Connects, registers and authenticates, within the login timeout.
async fn login(
    name: &str,
    phone: Phone,
    shared: &Arc<Shared>,
) -> Result<(Inbound, Terminal), String> {
    let deadline = Instant::now() + shared.login_timeout;
    let ms = shared.login_timeout.as_millis();
    let stream =
        match tokio::time::timeout_at(deadline, TcpStream::connect(&shared.addrs[..])).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("cannot connect to {}: {e}", shared.connect)),
            Err(_) => {
                return Err(format!(
                    "cannot connect to {}: no connection within {ms} ms",
                    shared.connect
                ))
            }
        };
    // Frames are small and answered one by one: do not let Nagle hold them.
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut inbound = Inbound {
        reader,
        decoder: StreamDecoder::default(),
        buf: vec![0; 4096].into_boxed_slice(),
    };
    let mut term = Terminal {
        name: name.to_string(),
        phone,
        serial: 0,
        writer,
        shared: Arc::clone(shared),
        reassembler: Reassembler::default(),
        pending: VecDeque::new(),
    };

    let digits = phone.digits().unwrap_or_default();
    term.send(MSG_REGISTER, &registration_body(phone.version(), &digits))
        .await?;
    let code = tokio::time::timeout_at(
        deadline,
        term.await_frame(&mut inbound, "the 0x8100 registration response", |f| {
            if f.header.msg_id != MSG_REGISTER_RESPONSE {
                return None;
            }
            Some(parse_register_response(&f.body))
        }),
    )
    .await
    .map_err(|_| format!("no 0x8100 registration response within {ms} ms"))??;

    let auth_serial = term.serial;
    let body = authentication_body(phone.version(), &code, &digits)?;
    term.send(MSG_AUTHENTICATE, &body).await?;
    tokio::time::timeout_at(
        deadline,
        term.await_frame(&mut inbound, "the 0x8001 authentication response", |f| {
            if f.header.msg_id != MSG_PLATFORM_RESPONSE {
                return None;
            }
            match f.parse_body() {
                Ok(Body::GeneralResponse {
                    reply_id: MSG_AUTHENTICATE,
                    result,
                    ..
                }) => Some(match result {
                    ResponseResult::Ok => Ok(()),
                    r => Err(format!(
                        "authentication refused: 0x8001 result {} ({}) to 0x0102 serial {auth_serial}",
                        r.code(),
                        r.name()
                    )),
                }),
                _ => None,
            }
        }),
    )
    .await
    .map_err(|_| format!("no 0x8001 response to the 0x0102 authentication within {ms} ms"))??;
    Ok((inbound, term))
}

/// The authentication code out of a 0x8100 body (`reply serial u16 | result u8
/// | code`), or why registration failed. Any reply serial is taken: one
/// registration is in flight.
fn parse_register_response(body: &[u8]) -> Result<Vec<u8>, String> {
    let [s0, s1, result, code @ ..] = body else {
        return Err(format!(
            "0x8100 body has {} bytes, a registration response has at least 3 (reply serial, result)",
            body.len()
        ));
    };
    if *result != 0 {
        let why = match result {
            1 => "vehicle already registered",
            2 => "no such vehicle",
            3 => "terminal already registered",
            4 => "no such terminal",
            _ => "unknown result",
        };
        return Err(format!(
            "registration refused: 0x8100 result {result} ({why}) to 0x0100 serial {}",
            u16::from_be_bytes([*s0, *s1])
        ));
    }
    Ok(code.to_vec())
}

/// `text` as a fixed-width field: cut, or padded with 0x00.
fn fixed(out: &mut Vec<u8>, text: &[u8], width: usize) {
    let n = text.len().min(width);
    out.extend_from_slice(&text[..n]);
    out.resize(out.len() + width - n, 0);
}

/// The last `n` characters of `s` (all of it when shorter).
fn tail(s: &str, n: usize) -> &str {
    &s[s.len().saturating_sub(n)..]
}

/// A 0x0100 body: province u16, city u16, manufacturer id (5 bytes; 2019: 11),
/// model (20; 2019: 30), terminal id (7; 2019: 30), plate colour u8, plate.
fn registration_body(version: Version, digits: &str) -> Vec<u8> {
    let (manufacturer, model, id) = match version {
        Version::V2013 => (5, 20, 7),
        Version::V2019 => (11, 30, 30),
    };
    let mut b = Vec::with_capacity(4 + manufacturer + model + id + 5);
    b.extend_from_slice(&44u16.to_be_bytes()); // Guangdong
    b.extend_from_slice(&300u16.to_be_bytes()); // Shenzhen (4403xx)
    fixed(&mut b, b"RRPC", manufacturer);
    fixed(&mut b, b"RRPC-SIM", model);
    // The terminal id: the phone's last digits, so that terminals differ.
    fixed(&mut b, tail(digits, id).as_bytes(), id);
    b.push(1); // blue plate
    b.extend_from_slice(b"TEST");
    b
}

/// A 0x0102 body: 2013 the code; 2019 code length u8, code, IMEI (15 bytes),
/// software version (20 bytes).
fn authentication_body(version: Version, code: &[u8], digits: &str) -> Result<Vec<u8>, String> {
    match version {
        Version::V2013 => Ok(code.to_vec()),
        Version::V2019 => {
            let len = u8::try_from(code.len()).map_err(|_| {
                format!(
                    "the 0x8100 authentication code has {} bytes, a 2019 0x0102 carries at most 255",
                    code.len()
                )
            })?;
            let mut b = Vec::with_capacity(1 + code.len() + 35);
            b.push(len);
            b.extend_from_slice(code);
            let imei = format!("{:0>15}", tail(digits, 15));
            fixed(&mut b, imei.as_bytes(), 15);
            fixed(
                &mut b,
                concat!("rrpc ", env!("CARGO_PKG_VERSION")).as_bytes(),
                20,
            );
            Ok(b)
        }
    }
}

/// The reading side of a connection: frames out of the byte stream.
struct Inbound {
    reader: OwnedReadHalf,
    decoder: StreamDecoder,
    buf: Box<[u8]>,
}

impl Inbound {
    /// The next frame or decoding error; `None` when the adapter has closed the
    /// connection. Cancel-safe: bytes read are in the decoder before any await.
    async fn next(&mut self) -> std::io::Result<Option<Result<Frame, DecodeError>>> {
        loop {
            if let Some(r) = self.decoder.next_frame() {
                return Ok(Some(r));
            }
            let n = self.reader.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.decoder.push(&self.buf[..n]);
        }
    }
}

/// A 0x0900 answer waiting for its time.
struct Pending {
    due: Instant,
    content_type: u8,
    content: Vec<u8>,
}

/// The writing side of a connection and the terminal's state.
struct Terminal {
    name: String,
    phone: Phone,
    /// The serial number of the next frame sent.
    serial: u16,
    writer: OwnedWriteHalf,
    shared: Arc<Shared>,
    reassembler: Reassembler,
    /// Answers in due order (every answer waits the same delay).
    pending: VecDeque<Pending>,
}

impl Terminal {
    fn debug(&self, what: impl FnOnce() -> String) {
        if self.shared.verbose {
            eprintln!("rrpc jt808 terminal: terminal {}: {}", self.name, what());
        }
    }

    fn error(&self, what: &str) {
        eprintln!("rrpc jt808 terminal: terminal {}: {what}", self.name);
    }

    /// Sends one frame of `msg_id` with the next serial number.
    async fn send(&mut self, msg_id: u16, body: &[u8]) -> Result<(), String> {
        let header = Header::new(msg_id, self.phone, self.serial);
        let mut wire = Vec::with_capacity(body.len() + 32);
        encode_frame(&header, body, &mut wire)
            .map_err(|e| format!("cannot encode 0x{msg_id:04x}: {e}"))?;
        self.serial = self.serial.wrapping_add(1);
        self.debug(|| {
            format!(
                "out 0x{msg_id:04x} serial {} body {} bytes",
                header.serial,
                body.len()
            )
        });
        self.write(&wire, 1).await
    }

    async fn write(&mut self, wire: &[u8], frames: u64) -> Result<(), String> {
        self.writer
            .write_all(wire)
            .await
            .map_err(|e| format!("writing to the adapter: {e}"))?;
        Counters::add(&self.shared.counters.frames_out, frames);
        Ok(())
    }

    /// Counts and reports a frame that did not decode.
    fn decode_error(&self, what: &str) {
        Counters::add(&self.shared.counters.decode_errors, 1);
        self.error(what);
    }

    /// Counts and shows a frame received.
    fn received(&self, f: &Frame) {
        Counters::add(&self.shared.counters.frames_in, 1);
        self.debug(|| {
            let packet = f
                .header
                .package
                .map(|p| format!(" packet {} of {}", p.index, p.count))
                .unwrap_or_default();
            format!(
                "in 0x{:04x} serial {}{packet} body {} bytes",
                f.header.msg_id,
                f.header.serial,
                f.body.len()
            )
        });
    }

    /// Reads frames until `pick` takes one (`Some`); the others are ignored.
    async fn await_frame<T>(
        &mut self,
        inbound: &mut Inbound,
        what: &str,
        mut pick: impl FnMut(&Frame) -> Option<Result<T, String>>,
    ) -> Result<T, String> {
        loop {
            match inbound.next().await {
                Ok(Some(Ok(f))) => {
                    self.received(&f);
                    match pick(&f) {
                        Some(r) => return r,
                        None => self.debug(|| {
                            format!("ignored 0x{:04x} while waiting for {what}", f.header.msg_id)
                        }),
                    }
                }
                Ok(Some(Err(e))) => self.decode_error(&format!("frame dropped: {e}")),
                Ok(None) => return Err(format!("the adapter closed the connection before {what}")),
                Err(e) => return Err(format!("reading from the adapter: {e}")),
            }
        }
    }

    /// Serves downlink messages until the adapter closes the connection, an I/O
    /// error, or `stop`.
    async fn serve(&mut self, inbound: &mut Inbound, stop: &mut watch::Receiver<bool>) -> End {
        let mut heartbeat = self.shared.heartbeat.map(|p| {
            let mut i = tokio::time::interval_at(Instant::now() + p, p);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        loop {
            let due = self.pending.front().map(|p| p.due);
            let step = tokio::select! {
                r = inbound.next() => match r {
                    Ok(Some(Ok(f))) => self.on_frame(f).await,
                    Ok(Some(Err(e))) => {
                        self.decode_error(&format!("frame dropped: {e}"));
                        Ok(())
                    }
                    Ok(None) => return End::Closed(self.name.clone()),
                    Err(e) => Err(format!("reading from the adapter: {e}")),
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    match self.pending.pop_front() {
                        Some(p) => self.answer(p.content_type, &p.content).await,
                        None => Ok(()),
                    }
                }
                _ = tick(&mut heartbeat) => self.send(MSG_HEARTBEAT, &[]).await,
                _ = stopped(stop) => return End::Stopped,
            };
            if let Err(m) = step {
                return End::Failed(format!("terminal {}: {m}", self.name));
            }
        }
    }

    /// Handles one downlink frame.
    async fn on_frame(&mut self, f: Frame) -> Result<(), String> {
        self.received(&f);
        if f.header.msg_id != MSG_DOWNLINK_PASSTHROUGH {
            self.debug(|| format!("ignored 0x{:04x}", f.header.msg_id));
            return Ok(());
        }
        // Every packet is acknowledged with its own serial; a whole message
        // without even a type byte is a message error whatever --result says.
        let result = if f.header.package.is_none() && f.body.is_empty() {
            ResponseResult::MessageError
        } else {
            self.shared.result
        };
        let mut ack = Vec::with_capacity(5);
        Body::GeneralResponse {
            reply_serial: f.header.serial,
            reply_id: MSG_DOWNLINK_PASSTHROUGH,
            result,
        }
        .write(&mut ack);
        self.send(MSG_TERMINAL_RESPONSE, &ack).await?;

        let now_ms = u64::try_from(self.shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let whole = match self.reassembler.push(f, now_ms) {
            Ok(Some(w)) => w,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.decode_error(&format!("0x8900 packet dropped: {e}"));
                return Ok(());
            }
        };
        Counters::add(&self.shared.counters.downlinks, 1);
        let (content_type, content) = match whole.parse_body() {
            Ok(Body::Passthrough {
                content_type,
                content,
            }) => (content_type, content),
            Ok(_) => return Ok(()),
            Err(e) => {
                self.decode_error(&format!("0x8900 serial {}: {e}", whole.header.serial));
                return Ok(());
            }
        };
        if result != ResponseResult::Ok {
            return Ok(());
        }
        let content = match self.shared.answer {
            AnswerArg::None => return Ok(()),
            AnswerArg::Echo => content.to_vec(),
            AnswerArg::Upper => content.to_ascii_uppercase(),
        };
        if self.shared.answer_delay.is_zero() {
            return self.answer(content_type, &content).await;
        }
        self.pending.push_back(Pending {
            due: Instant::now() + self.shared.answer_delay,
            content_type,
            content,
        });
        Ok(())
    }

    /// Sends a 0x0900, sub-packaged when it does not fit one frame.
    async fn answer(&mut self, content_type: u8, content: &[u8]) -> Result<(), String> {
        let template = Header::new(MSG_UPLINK_PASSTHROUGH, self.phone, self.serial);
        let frames = match split_passthrough(&template, content_type, content, MAX_BODY_LEN) {
            Ok(f) => f,
            Err(e) => {
                // Only for content no frame sequence can carry: report, go on.
                self.error(&format!("cannot answer with 0x0900: {e}"));
                return Ok(());
            }
        };
        // At most 65535 frames (split_passthrough refuses more).
        self.serial = self.serial.wrapping_add(frames.len() as u16);
        self.debug(|| {
            format!(
                "out 0x0900 serial {} type 0x{content_type:02x} content {} bytes in {} frame(s)",
                template.serial,
                content.len(),
                frames.len()
            )
        });
        let wire = frames.concat();
        self.write(&wire, frames.len() as u64).await?;
        Counters::add(&self.shared.counters.uplinks, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_addresses() {
        assert_eq!(
            parse_connect("127.0.0.1:6808"),
            Ok(("127.0.0.1".into(), 6808))
        );
        assert_eq!(parse_connect("[::1]:6808"), Ok(("::1".into(), 6808)));
        assert_eq!(parse_connect("localhost:1"), Ok(("localhost".into(), 1)));
        for bad in [
            "6808",
            "host:",
            ":6808",
            "host:0",
            "host:70000",
            "a b:1",
            "::1:5",
        ] {
            assert!(parse_connect(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_count_up_with_the_same_width() {
        let p = phone_numbers("013800138998", 3, Version::V2013).unwrap();
        let digits: Vec<&str> = p.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(digits, ["013800138998", "013800138999", "013800139000"]);
        assert_eq!(
            p[2].1,
            Phone::from_digits("13800139000", Version::V2013).unwrap()
        );
        assert!(phone_numbers("999999999999", 2, Version::V2013)
            .unwrap_err()
            .contains("13 digits"));
        assert!(phone_numbers("99999999999999999999", 1, Version::V2019).is_ok());
        assert!(phone_numbers("1380013800a", 1, Version::V2013)
            .unwrap_err()
            .contains("not a digit"));
    }

    #[test]
    fn registration_and_authentication_bodies() {
        let r = registration_body(Version::V2013, "013800138000");
        assert_eq!(r.len(), 2 + 2 + 5 + 20 + 7 + 1 + 4);
        assert_eq!(&r[29..36], b"0138000");
        assert!(r.ends_with(b"\x01TEST"));
        let r = registration_body(Version::V2019, "00000000017299841738");
        assert_eq!(r.len(), 2 + 2 + 11 + 30 + 30 + 1 + 4);

        assert_eq!(
            authentication_body(Version::V2013, b"abc", "013800138000").unwrap(),
            b"abc"
        );
        let a = authentication_body(Version::V2019, b"abc", "00000000017299841738").unwrap();
        assert_eq!(a.len(), 1 + 3 + 15 + 20);
        assert_eq!(&a[..4], b"\x03abc");
        assert_eq!(&a[4..19], b"000017299841738");
        assert!(authentication_body(Version::V2019, &[b'x'; 256], "1").is_err());
    }

    #[test]
    fn registration_responses() {
        assert_eq!(
            parse_register_response(&[0, 0, 0, b'k', b'1']),
            Ok(b"k1".to_vec())
        );
        assert_eq!(parse_register_response(&[0, 0, 0]), Ok(Vec::new()));
        assert!(parse_register_response(&[0, 0, 3])
            .unwrap_err()
            .contains("terminal already registered"));
        assert!(parse_register_response(&[0, 0])
            .unwrap_err()
            .contains("at least 3"));
    }
}
