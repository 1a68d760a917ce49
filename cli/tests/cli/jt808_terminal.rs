//! `rrpc jt808 terminal` against a small platform written here with
//! std::net and the library's codec: registration, authentication, 0x8900
//! answered by 0x0001 and 0x0900 (whole and sub-packaged, 2013 and 2019), the
//! --result and --answer choices, many terminals, and the exit statuses.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rrpc::jt808::{
    encode_frame, split_passthrough, Body, Frame, Header, Phone, Reassembler, ResponseResult,
    StreamDecoder, Version,
};

use crate::rrpc;

const WAIT: Duration = Duration::from_secs(20);

/// A running `rrpc jt808 terminal`: stdout lines as they come, stderr in full.
struct Sim {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Sim {
    fn start(args: &[&str]) -> Sim {
        let mut all = vec!["jt808", "terminal"];
        all.extend_from_slice(args);
        let mut child = Command::new(rrpc())
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rrpc");
        let out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let e2 = Arc::clone(&stderr);
        let readers = vec![
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines() {
                    let Ok(l) = l else { break };
                    let _ = tx.send(l);
                }
            }),
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    e2.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }),
        ];
        Sim {
            child,
            lines,
            stderr,
            readers,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to end (killing it after WAIT); returns its exit
    /// status, its stdout lines and its stderr.
    fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("rrpc did not exit; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let lines = self.lines.try_iter().collect();
        (status.code(), lines, self.stderr())
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill with the pid of our own child process.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One terminal's connection, as the platform sees it.
struct Conn {
    stream: TcpStream,
    decoder: StreamDecoder,
    serial: u16,
    phone: Option<Phone>,
}

impl Conn {
    fn accept(listener: &TcpListener) -> Conn {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        Conn {
            stream,
            decoder: StreamDecoder::default(),
            serial: 0,
            phone: None,
        }
    }

    /// The next frame, or `None` when nothing comes within `limit`.
    fn recv_within(&mut self, limit: Duration) -> Option<Frame> {
        self.stream.set_read_timeout(Some(limit)).expect("timeout");
        let mut buf = [0u8; 4096];
        let f = loop {
            if let Some(r) = self.decoder.next_frame() {
                break Some(r.expect("the terminal sends valid frames"));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("the terminal closed the connection"),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break None
                }
                Err(e) => panic!("read: {e}"),
            }
        };
        self.stream.set_read_timeout(Some(WAIT)).expect("timeout");
        if let Some(f) = &f {
            self.phone = Some(f.header.phone);
        }
        f
    }

    fn recv(&mut self) -> Frame {
        self.recv_within(WAIT)
            .expect("a frame from the terminal in time")
    }

    /// Reads until the terminal closes the connection (its end of a run).
    fn recv_eof(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn header(&mut self, msg_id: u16) -> Header {
        let phone = self.phone.expect("a frame received before sending");
        let h = Header::new(msg_id, phone, self.serial);
        self.serial = self.serial.wrapping_add(1);
        h
    }

    fn send(&mut self, msg_id: u16, body: &[u8]) {
        let h = self.header(msg_id);
        let mut wire = Vec::new();
        encode_frame(&h, body, &mut wire).expect("encode");
        self.stream.write_all(&wire).expect("write");
    }

    fn send_general(&mut self, reply_serial: u16, reply_id: u16, result: u8) {
        let mut b = Vec::new();
        Body::GeneralResponse {
            reply_serial,
            reply_id,
            result: ResponseResult::from_code(0x8001, result),
        }
        .write(&mut b);
        self.send(0x8001, &b);
    }

    /// Registration and authentication with `code`; returns both requests.
    fn login(&mut self, code: &[u8]) -> (Frame, Frame) {
        let reg = self.recv();
        assert_eq!(reg.header.msg_id, 0x0100, "{reg:?}");
        let mut body = reg.header.serial.to_be_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(code);
        self.send(0x8100, &body);
        let auth = self.recv();
        assert_eq!(auth.header.msg_id, 0x0102, "{auth:?}");
        self.send_general(auth.header.serial, 0x0102, 0);
        (reg, auth)
    }

    /// Sends a 0x8900 and returns its serial.
    fn downlink(&mut self, content_type: u8, content: &[u8]) -> u16 {
        let serial = self.serial;
        let mut b = Vec::new();
        Body::Passthrough {
            content_type,
            content,
        }
        .write(&mut b);
        self.send(0x8900, &b);
        serial
    }
}

fn expect_general(f: &Frame, reply_serial: u16, result: ResponseResult) {
    assert_eq!(f.header.msg_id, 0x0001, "{f:?}");
    assert_eq!(
        f.parse_body().expect("0x0001 body"),
        Body::GeneralResponse {
            reply_serial,
            reply_id: 0x8900,
            result
        }
    );
}

fn expect_passthrough(f: &Frame, content_type: u8, content: &[u8]) {
    assert_eq!(f.header.msg_id, 0x0900, "{f:?}");
    assert_eq!(
        f.parse_body().expect("0x0900 body"),
        Body::Passthrough {
            content_type,
            content
        }
    );
}

fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    (l, addr)
}

fn wait_line(sim: &Sim, want: &str) {
    match sim.lines.recv_timeout(WAIT) {
        Ok(l) => assert_eq!(l, want),
        Err(_) => panic!("no {want:?} on stdout; stderr:\n{}", sim.stderr()),
    }
}

/// `rrpc jt808 terminal --phone {phone}` (and `extra`) connected to a platform
/// here and logged in with the authentication code `code`; unless `--quiet`, its
/// ready line seen. The simulator, the platform's end of the connection, and the
/// registration and authentication frames.
fn logged_in(phone: &str, extra: &[&str], code: &[u8]) -> (Sim, Conn, Frame, Frame) {
    let (l, addr) = listener();
    let mut args = vec!["--connect", addr.as_str(), "--phone", phone];
    args.extend_from_slice(extra);
    let sim = Sim::start(&args);
    let mut c = Conn::accept(&l);
    let (reg, auth) = c.login(code);
    if !extra.contains(&"--quiet") {
        wait_line(&sim, &format!("terminal {phone} ready"));
    }
    (sim, c, reg, auth)
}

/// The counters line at exit.
fn counters(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.contains("frames in"))
        .unwrap_or_else(|| panic!("no counters in stderr:\n{stderr}"))
}

/// Login, one 0x8900 "AT+X" on serial port 1 answered by 0x0001 and 0x0900,
/// then the platform closes: exit 3.
fn echo(version: &str, phone: &str, digits: &str) -> (Frame, Frame) {
    let (sim, mut c, reg, auth) = logged_in(phone, &["--version", version], b"AUTH-1");
    assert_eq!(reg.header.serial, 0);
    assert_eq!(auth.header.serial, 1);
    assert_eq!(reg.header.phone.digits().unwrap(), digits);

    c.serial = 7;
    let s = c.downlink(0x41, b"AT+X");
    let ack = c.recv();
    expect_general(&ack, s, ResponseResult::Ok);
    assert_eq!(ack.header.serial, 2);
    let up = c.recv();
    expect_passthrough(&up, 0x41, b"AT+X");
    assert_eq!(up.header.serial, 3);
    for f in [&ack, &up] {
        assert_eq!(f.header.phone, reg.header.phone);
        assert_eq!(f.header.version, reg.header.version);
    }

    drop(c);
    let (code, _, err) = sim.finish();
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("the adapter closed the connection"), "{err}");
    assert_eq!(
        counters(&err),
        "rrpc jt808 terminal: frames in 3, frames out 4, 0x8900 received 1, 0x0900 sent 1, decode errors 0"
    );
    (reg, auth)
}

fn echo_2013() {
    let (reg, auth) = echo("2013", "13800138000", "013800138000");
    assert_eq!(reg.header.version, Version::V2013);
    // province, city, manufacturer 5, model 20, terminal id 7, colour, plate.
    assert_eq!(reg.body.len(), 2 + 2 + 5 + 20 + 7 + 1 + 4);
    assert!(reg.body.ends_with(b"TEST"));
    assert_eq!(auth.body, b"AUTH-1");
}

fn echo_2019() {
    let (reg, auth) = echo("2019", "17299841738", "00000000017299841738");
    assert_eq!(reg.header.version, Version::V2019);
    assert_eq!(reg.header.protocol_version, 1);
    // province, city, manufacturer 11, model 30, terminal id 30, colour, plate.
    assert_eq!(reg.body.len(), 2 + 2 + 11 + 30 + 30 + 1 + 4);
    assert!(reg.body.ends_with(b"TEST"));
    // Code length, code, IMEI 15, software version 20.
    assert_eq!(auth.body.len(), 1 + 6 + 15 + 20);
    assert_eq!(&auth.body[..7], b"\x06AUTH-1");
    assert!(auth.body[7..22].iter().all(u8::is_ascii_digit));
}

fn subpackaged_downlink_is_reassembled_and_answered_subpackaged() {
    let (sim, mut c, _, _) = logged_in("13800138001", &["--quiet"], b"");
    // Every byte value, 0x7e and 0x7d included, so escaping is exercised too.
    let content: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    let template = c.header(0x8900);
    let first = 65534; // the packets' serials wrap past 65535
    let template = Header {
        serial: first,
        ..template
    };
    let packets = split_passthrough(&template, 0xf0, &content, 1023).expect("split");
    assert_eq!(packets.len(), 3);
    for p in &packets {
        c.stream.write_all(p).expect("write");
    }
    for i in 0..3u16 {
        let ack = c.recv();
        expect_general(&ack, first.wrapping_add(i), ResponseResult::Ok);
    }
    let mut reasm = Reassembler::default();
    let mut whole = None;
    let mut serials = Vec::new();
    while whole.is_none() {
        let f = c.recv();
        assert_eq!(f.header.msg_id, 0x0900);
        let p = f.header.package.expect("a sub-packaged 0x0900");
        assert_eq!(p.count, 3);
        serials.push(f.header.serial);
        whole = reasm.push(f, 0).expect("reassemble");
    }
    assert_eq!(serials, [5, 6, 7]);
    expect_passthrough(&whole.expect("whole"), 0xf0, &content);

    drop(c);
    let (code, lines, err) = sim.finish();
    assert_eq!(code, Some(3), "{err}");
    assert!(lines.is_empty(), "--quiet: {lines:?}");
    assert!(
        counters(&err).ends_with(
            "frames in 5, frames out 8, 0x8900 received 1, 0x0900 sent 1, decode errors 0"
        ),
        "{err}"
    );
}

fn not_supported_acknowledges_with_3_and_does_not_answer() {
    let (sim, mut c, _, _) = logged_in("13800138002", &["--result", "not-supported"], b"k");
    for _ in 0..2 {
        let s = c.downlink(0x41, b"AT+X");
        expect_general(&c.recv(), s, ResponseResult::NotSupported);
    }
    assert!(c.recv_within(Duration::from_millis(500)).is_none());
    drop(c);
    let (code, _, err) = sim.finish();
    assert_eq!(code, Some(3), "{err}");
    assert!(
        counters(&err).ends_with("0x8900 received 2, 0x0900 sent 0, decode errors 0"),
        "{err}"
    );
}

fn upper_answer_after_the_delay_and_heartbeats() {
    let (sim, mut c, _, _) = logged_in(
        "013800138003",
        &[
            "--answer",
            "upper",
            "--answer-delay-ms",
            "300",
            "--heartbeat-secs",
            "1",
        ],
        b"k",
    );
    let s = c.downlink(0x42, b"at+x=\x01\xff");
    expect_general(&c.recv(), s, ResponseResult::Ok);
    let acked = Instant::now();
    let mut heartbeats = 0;
    loop {
        let f = c.recv();
        if f.header.msg_id == 0x0002 {
            assert!(f.body.is_empty());
            heartbeats += 1;
            continue;
        }
        assert!(acked.elapsed() >= Duration::from_millis(250), "{f:?}");
        expect_passthrough(&f, 0x42, b"AT+X=\x01\xff");
        break;
    }
    while heartbeats == 0 {
        let f = c.recv_within(Duration::from_secs(3)).expect("a heartbeat");
        assert_eq!(f.header.msg_id, 0x0002, "{f:?}");
        heartbeats += 1;
    }
    sim.signal(libc::SIGINT);
    c.recv_eof();
    let (code, _, err) = sim.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("SIGINT"), "{err}");
}

fn a_bad_frame_is_reported_and_the_terminal_goes_on() {
    let (sim, mut c, _, _) = logged_in("13800138004", &[], b"k");
    // A 0x8001 whose checksum byte (byte 18: flag, 12 header and 5 body bytes
    // before it) is off by one.
    let h = c.header(0x8001);
    let mut wire = Vec::new();
    encode_frame(&h, &[0, 1, 0x01, 0x02, 0], &mut wire).expect("encode");
    let n = wire.len();
    wire[n - 2] ^= 1;
    c.stream.write_all(&wire).expect("write");
    let s = c.downlink(0x41, b"ping");
    expect_general(&c.recv(), s, ResponseResult::Ok);
    expect_passthrough(&c.recv(), 0x41, b"ping");
    drop(c);
    let (code, _, err) = sim.finish();
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("terminal 13800138004: frame dropped: byte 18: checksum"),
        "{err}"
    );
    assert!(counters(&err).ends_with("decode errors 1"), "{err}");
}

/// `count` terminals from 13800138000 log in; one `terminals ready` line;
/// SIGTERM ends them all with status 0.
fn many_terminals(count: u32) {
    let (l, addr) = listener();
    let n = count.to_string();
    let sim = Sim::start(&[
        "--connect",
        &addr,
        "--phone",
        "13800138000",
        "--count",
        &n,
        "--version",
        "2019",
    ]);
    let mut platforms = Vec::new();
    for _ in 0..count {
        let mut c = Conn::accept(&l);
        platforms.push(std::thread::spawn(move || {
            let (reg, _) = c.login(b"k");
            c.recv_eof();
            reg.header.phone.digits().expect("BCD phone")
        }));
    }
    wait_line(&sim, &format!("terminals ready {count}"));
    sim.signal(libc::SIGTERM);
    let mut phones: Vec<String> = platforms
        .into_iter()
        .map(|t| t.join().expect("platform thread"))
        .collect();
    phones.sort();
    let want: Vec<String> = (0..u64::from(count))
        .map(|i| format!("{:020}", 13_800_138_000u64 + i))
        .collect();
    assert_eq!(phones, want);
    let (code, lines, err) = sim.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(lines.is_empty(), "one ready line only: {lines:?}");
    assert!(err.contains("SIGTERM: stopping"), "{err}");
}

fn fifty_terminals_all_get_ready() {
    many_terminals(50);
}

/// The scale the command is made for (a thread per connection on the platform
/// side here: ~1.5 s).
fn a_thousand_terminals_all_get_ready() {
    many_terminals(1000);
}

fn refused_registration_exits_7() {
    let (l, addr) = listener();
    let sim = Sim::start(&["--connect", &addr, "--phone", "13800138005"]);
    let mut c = Conn::accept(&l);
    let reg = c.recv();
    let mut body = reg.header.serial.to_be_bytes().to_vec();
    body.push(3);
    c.send(0x8100, &body);
    let (code, lines, err) = sim.finish();
    assert_eq!(code, Some(7), "{err}");
    assert!(lines.is_empty());
    assert!(
        err.contains(
            "terminal 13800138005: registration refused: 0x8100 result 3 (terminal already registered)"
        ),
        "{err}"
    );
}

fn bad_arguments_exit_2() {
    let run = |args: &[&str]| Sim::start(args).finish();
    for (args, want) in [
        (
            &["--connect", "127.0.0.1:1", "--phone", "1380013800a"][..],
            "--phone \"1380013800a\": phone number character 10 is 'a', not a digit",
        ),
        (
            &["--connect", "127.0.0.1:1", "--phone", "1234567890123"][..],
            "at most 12 fit",
        ),
        (
            &["--connect", "nonsense", "--phone", "13800138000"][..],
            "--connect \"nonsense\": no port",
        ),
        (
            &["--connect", "127.0.0.1:99999", "--phone", "13800138000"][..],
            "port \"99999\" is not a number from 1 to 65535",
        ),
        (
            &[
                "--connect",
                "127.0.0.1:1",
                "--phone",
                "999999999999",
                "--count",
                "2",
            ][..],
            "terminal 2 has phone 1000000000000",
        ),
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

fn unreachable_adapter_exits_7() {
    let (l, addr) = listener();
    drop(l);
    let (code, lines, err) = Sim::start(&["--connect", &addr, "--phone", "13800138000"]).finish();
    assert_eq!(code, Some(7), "{err}");
    assert!(lines.is_empty());
    assert!(
        err.contains(&format!("terminal 13800138000: cannot connect to {addr}")),
        "{err}"
    );
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        echo_2013,
        echo_2019,
        subpackaged_downlink_is_reassembled_and_answered_subpackaged,
        not_supported_acknowledges_with_3_and_does_not_answer,
        upper_answer_after_the_delay_and_heartbeats,
        a_bad_frame_is_reported_and_the_terminal_goes_on,
        fifty_terminals_all_get_ready,
        a_thousand_terminals_all_get_ready,
        refused_registration_exits_7,
        bad_arguments_exit_2,
        unreachable_adapter_exits_7,
    ]
}
