//! RRpc calls with a ContentType travelling to JT/T 808 terminals and back, as
//! real processes: Mosquitto, the C example `jt808_adapter` (an RRPC device client
//! plus a TCP server for terminals, on the library's adapter), simulated terminals
//! (`rrpc jt808 terminal`), and calls from the library's caller and `rrpc call`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode, RrpcResponse};
use rrpc::Dialect;

use crate::common;
use crate::common::{strings, Broker, Proc};
use crate::rrpc;

const PK: &str = "a1Jt808Pk";
const READY: Duration = Duration::from_secs(20);

/// The adapter example (its process) and the port it listens on for terminals.
struct Adapter {
    proc: Proc,
    listen: u16,
}

impl std::ops::Deref for Adapter {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

/// The adapter example on the broker on `port`, listening for terminals.
fn adapter(port: u16, extra: &[&str]) -> Adapter {
    let listen = common::free_port();
    let mut a = common::example_args(port, PK, &["--listen-port", &listen.to_string()]);
    a.extend(strings(extra));
    let p = Proc::spawn(&common::cmake::example("jt808_adapter"), &a);
    assert!(p.wait_stderr("listening on", READY), "{}", p.transcript());
    Adapter { proc: p, listen }
}

impl Adapter {
    /// `rrpc jt808 terminal` with `count` terminals from `phone`, once all are ready
    /// and the adapter has registered each as a device.
    fn terminals(&self, phone: u64, count: usize, extra: &[&str]) -> Proc {
        let mut a = strings(&["jt808", "terminal", "--connect"]);
        a.push(format!("127.0.0.1:{}", self.listen));
        a.extend(strings(&["--phone"]));
        a.push(phone.to_string());
        a.extend(strings(&["--count"]));
        a.push(count.to_string());
        a.extend(strings(extra));
        let t = Proc::spawn(&rrpc(), &a);
        assert_eq!(
            t.wait_stdout_lines(&format!("terminals ready {count}"), 1, READY),
            1,
            "{}",
            t.transcript()
        );
        for i in 0..count as u64 {
            let line = format!("terminal {} online", phone + i);
            assert_eq!(
                self.wait_stdout_lines(&line, 1, READY),
                1,
                "{}",
                self.transcript()
            );
        }
        t
    }
}

/// A caller on the broker on `port`.
fn caller(port: u16) -> Caller {
    Caller::connect(CallerConfig::new("127.0.0.1", port)).expect("connect the caller")
}

fn call(c: &Caller, dn: &str, payload: &[u8], content_type: Option<u32>) -> RrpcResponse {
    c.call(&CallParams {
        dialect: Dialect::AlibabaSystem,
        product_key: PK,
        device_name: dn,
        payload,
        timeout_ms: Some(5000),
        custom_topic: None,
        content_type,
        name: None,
    })
}

fn text(r: &RrpcResponse) -> String {
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
    String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned()
}

fn every_content_type_class_reaches_the_terminal_and_comes_back() {
    let b = Broker::mosquitto();
    let adapter = adapter(b.port, &[]);
    // Terminals that answer each 0x8900 with 0x0001 (ok) and a 0x0900 of the same
    // type whose content is upper-cased: 2013 and 2019 editions.
    let _t13 = adapter.terminals(13_800_138_000, 3, &["--answer", "upper"]);
    let _t19 = adapter.terminals(
        13_900_139_000,
        2,
        &["--answer", "upper", "--version", "2019"],
    );
    let c = caller(b.port);

    // GNSS, serial ports, user-defined: the 0x0900 answer is the reply.
    for (dn, ct) in [
        ("13800138000", 0u32),
        ("13800138001", 65),
        ("13800138002", 66),
        ("13900139000", 240),
        ("13900139001", 255),
    ] {
        let r = call(&c, dn, format!("at+gps {ct}").as_bytes(), Some(ct));
        assert_eq!(text(&r), format!("AT+GPS {ct}"), "{dn} ct {ct}");
    }
    // The IC card completes on the terminal's 0x0001 (its answer may take 30 s);
    // the 0x0900 that follows arrives as an uplink.
    let r = call(&c, "13800138000", b"card", Some(11));
    let ack = text(&r);
    assert!(
        ack.starts_with("{\"jt808\":\"ack\",\"result\":0,\"serial\":"),
        "{ack}"
    );
    assert_eq!(
        adapter.wait_stdout_lines("uplink 13800138000 type=11 len=4", 1, READY),
        1,
        "{}",
        adapter.transcript()
    );
    // No ContentType: answered with an error, nothing sent to the terminal.
    let r = call(&c, "13800138001", b"x", None);
    assert_eq!(
        text(&r),
        "{\"jt808\":\"error\",\"reason\":\"no ContentType\"}"
    );
    // The caller refuses a ContentType outside the RRpc set before sending.
    let r = call(&c, "13800138001", b"x", Some(0x83));
    assert_eq!(r.code.as_deref(), Some("InvalidParameter"), "{r:?}");

    // Through the command line, as the README shows it.
    let mut a = strings(&["call", "--host", "127.0.0.1", "--port"]);
    a.push(b.port.to_string());
    a.extend(strings(&[
        "--product-key",
        PK,
        "--device-name",
        "13800138002",
        "--payload",
        "hello terminal",
        "--timeout",
        "5000",
        "--content-type",
        "65",
    ]));
    let out = std::process::Command::new(rrpc())
        .args(&a)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(json["RrpcCode"], "SUCCESS", "{json}");
    assert_eq!(json["PayloadBase64Byte"], "SEVMTE8gVEVSTUlOQUw=", "{json}"); // HELLO TERMINAL
}

fn failures_and_disconnects_answer_the_call_at_once() {
    let b = Broker::mosquitto();
    let adapter = adapter(b.port, &[]);
    let _refusing = adapter.terminals(13_700_000_000, 1, &["--result", "not-supported"]);
    let slow = adapter.terminals(13_700_000_100, 1, &["--answer-delay-ms", "60000"]);
    let c = Arc::new(caller(b.port));

    // The terminal's 0x0001 "not supported" is the reply, at once.
    let t = Instant::now();
    let r = call(&c, "13700000000", b"AT", Some(66));
    let body = text(&r);
    assert!(
        body.starts_with(
            "{\"jt808\":\"error\",\"reason\":\"not supported\",\"result\":3,\"serial\":"
        ),
        "{body}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A call pending on a terminal that disconnects is answered, not left to time out.
    let c2 = c.clone();
    let pending = std::thread::spawn(move || call(&c2, "13700000100", b"wait", Some(65)));
    assert_eq!(
        adapter.wait_stdout_lines("request 13700000100 ct=65", 1, READY),
        1,
        "{}",
        adapter.transcript()
    );
    std::thread::sleep(Duration::from_millis(200)); // the 0x8900 is out, its ack back
    let t = Instant::now();
    slow.signal(libc::SIGKILL);
    let r = pending.join().unwrap();
    assert_eq!(
        text(&r),
        "{\"jt808\":\"error\",\"reason\":\"terminal disconnected\"}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // And later calls to it say so.
    let r = call(&c, "13700000100", b"again", Some(65));
    assert_eq!(
        text(&r),
        "{\"jt808\":\"error\",\"reason\":\"terminal not connected\"}"
    );
}

/// A raw TCP connection to the adapter, speaking for whatever phone it likes.
struct Raw {
    stream: std::net::TcpStream,
    decoder: rrpc::jt808::StreamDecoder,
    serial: u16,
}

impl Raw {
    fn connect(listen: u16) -> Raw {
        let stream = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Raw {
            stream,
            decoder: rrpc::jt808::StreamDecoder::default(),
            serial: 0,
        }
    }

    fn send(&mut self, phone: &str, msg_id: u16, body: &[u8]) {
        use std::io::Write;
        let phone = rrpc::jt808::Phone::from_digits(phone, rrpc::jt808::Version::V2013).unwrap();
        let mut w = Vec::new();
        rrpc::jt808::encode_frame(
            &rrpc::jt808::Header::new(msg_id, phone, self.serial),
            body,
            &mut w,
        )
        .unwrap();
        self.serial += 1;
        self.stream.write_all(&w).unwrap();
    }

    /// The next frame with message id `msg_id` the adapter sends.
    fn expect(&mut self, msg_id: u16) -> rrpc::jt808::Frame {
        use std::io::Read;
        let mut buf = [0u8; 1024];
        loop {
            while let Some(f) = self.decoder.next_frame() {
                let f = f.unwrap();
                if f.header.msg_id == msg_id {
                    return f;
                }
            }
            let n = self
                .stream
                .read(&mut buf)
                .expect("an answer from the adapter");
            assert!(n > 0, "the adapter closed the connection");
            self.decoder.push(&buf[..n]);
        }
    }
}

/// Any TCP connection could claim any terminal's phone with one heartbeat: its
/// downlinks went to the claimant, spoofed 0x0001/0x0900 completed its calls,
/// and hanging up failed them. Now only an authenticated connection speaks for
/// a phone, a registered phone cannot be registered again for its code, and a
/// registration is freed when its connection closes.
fn a_connection_that_did_not_authenticate_cannot_speak_for_a_terminal() {
    let b = Broker::mosquitto();
    let adapter = adapter(b.port, &[]);
    let victim = "13500000000";
    let _t = adapter.terminals(13_500_000_000, 1, &["--answer-delay-ms", "1500"]);
    let c = Arc::new(caller(b.port));
    let c2 = c.clone();
    let pending = std::thread::spawn(move || call(&c2, victim, b"real question", Some(65)));
    assert_eq!(
        adapter.wait_stdout_lines(&format!("request {victim} ct=65"), 1, READY),
        1,
        "{}",
        adapter.transcript()
    );

    let mut attacker = Raw::connect(adapter.listen);
    // Registering the victim's phone again: refused, no code handed out.
    attacker.send(victim, 0x0100, &[0; 25]);
    let r = attacker.expect(0x8100);
    assert_eq!(r.body.len(), 3, "{:?}", r.body);
    assert_eq!(r.body[2], 3, "0x8100 result 3: terminal already registered");
    // A guessed code: refused.
    attacker.send(victim, 0x0102, b"0000000000000000");
    let r = attacker.expect(0x8001);
    assert_eq!(r.body[4], 1, "0x8001 result 1 to the 0x0102");
    // A heartbeat, then acks (failure) for every plausible serial and a forged
    // answer: none of it may complete the victim's call.
    attacker.send(victim, 0x0002, &[]);
    attacker.expect(0x8001);
    for serial in 0..32u16 {
        let mut body = serial.to_be_bytes().to_vec();
        body.extend_from_slice(&[0x89, 0x00, 1]);
        attacker.send(victim, 0x0001, &body);
    }
    attacker.send(victim, 0x0900, b"\x41forged");
    attacker.send(victim, 0x0002, &[]);
    attacker.expect(0x8001); // everything before it was read
                             // Hanging up fails nothing either.
    drop(attacker);
    let r = pending.join().unwrap();
    assert_eq!(text(&r), "real question", "{}", adapter.transcript());
    assert!(
        adapter
            .stderr()
            .iter()
            .any(|l| l.contains(&format!("authentication of {victim} on connection"))),
        "{}",
        adapter.transcript()
    );

    // A terminal that leaves frees its registration: the phone registers again.
    let phone = "13500000100";
    let mut first = Raw::connect(adapter.listen);
    first.send(phone, 0x0100, &[0; 25]);
    let r = first.expect(0x8100);
    assert_eq!((r.body[2], r.body.len()), (0, 3 + 16), "{:?}", r.body);
    let code = r.body[3..].to_vec();
    first.send(phone, 0x0102, &code);
    assert_eq!(first.expect(0x8001).body[4], 0);
    // The code is random per terminal.
    let mut other = Raw::connect(adapter.listen);
    other.send("13500000101", 0x0100, &[0; 25]);
    let r = other.expect(0x8100);
    assert_eq!(r.body[2], 0);
    assert_ne!(r.body[3..], code[..]);
    drop(first);
    // The adapter sees the close on its next wake-up; until then, result 3.
    let start = Instant::now();
    loop {
        let mut again = Raw::connect(adapter.listen);
        again.send(phone, 0x0100, &[0; 25]);
        let result = again.expect(0x8100).body[2];
        if result == 0 {
            break;
        }
        assert_eq!(result, 3);
        assert!(start.elapsed() < READY, "{}", adapter.transcript());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The adapter under valgrind memcheck: terminals come and go, calls succeed and
/// fail, and at SIGTERM everything is freed (no errors, no definite or indirect leak).
fn adapter_runs_clean_under_valgrind() {
    let b = Broker::mosquitto();
    let listen = common::free_port();
    let options = common::strings(&[
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--show-leak-kinds=definite,indirect",
        "--error-exitcode=99",
    ]);
    let mut vg = common::Memcheck::with_options("jt808_adapter.log", &options);
    vg.command
        .arg(common::cmake::example("jt808_adapter"))
        .args(common::example_args(
            b.port,
            PK,
            &["--listen-port", &listen.to_string()],
        ));
    let mut adapter = Adapter {
        proc: Proc::spawn_with(&mut vg.command),
        listen,
    };
    assert!(
        adapter.wait_stderr("listening on", Duration::from_secs(60)),
        "{}",
        adapter.transcript()
    );
    let t = adapter.terminals(13_600_000_000, 2, &["--answer", "echo"]);
    let c = caller(b.port);
    for (i, ct) in [65u32, 11, 240].into_iter().enumerate() {
        let r = call(&c, "13600000000", format!("vg{i}").as_bytes(), Some(ct));
        assert_eq!(
            r.rrpc_code,
            Some(RrpcCode::Success),
            "{r:?}\n{}",
            adapter.transcript()
        );
    }
    let r = call(&c, "13600000001", b"x", None);
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
    drop(t); // the terminals' process is stopped: the adapter closes their sockets
    let st = adapter.proc.terminate();
    vg.assert_clean(st, &adapter.transcript());
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        every_content_type_class_reaches_the_terminal_and_comes_back needs ["mosquitto", "cmake", "cc"],
        failures_and_disconnects_answer_the_call_at_once needs ["mosquitto", "cmake", "cc"],
        a_connection_that_did_not_authenticate_cannot_speak_for_a_terminal needs ["mosquitto", "cmake", "cc"],
        adapter_runs_clean_under_valgrind needs ["mosquitto", "cmake", "cc", "valgrind"],
    ]
}
