//! `rrpc demo`: an embedded broker on a free loopback port, devices built on
//! librrpc (with presence), and a `Caller` making calls that show each outcome,
//! then a latency figure. Exits 0 when every call ended as expected.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use rrpc::caller::CODE_INVALID_PARAMETER;
use rrpc::presence::PresenceTopics;
use rrpc::{
    CallParams, Caller, CallerConfig, Client, ClientConfig, Dialect, Identity, Request, RrpcCode,
    RrpcResponse,
};

use crate::EXIT_SYSTEM;

const PK: &str = "a1DemoPk";

pub const AFTER_HELP: &str = "\
What runs, all in this process, on 127.0.0.1 only:
  - rumqttd on a free port;
  - one device connection (librrpc Client, presence on) serving demo-sensor (Alibaba system
    topics) and demo-valve (custom topic /a1DemoPk/demo-valve/user/rrpc); it reverses text,
    answers binary requests with their length, and ignores the payload `ignore`;
  - demo-parked, a device that connects and stops cleanly, so its presence says offline;
  - a Caller (the RRpc API's semantics) making the calls.
Each response is printed (JSON) with its round-trip time, then p50/p99 of sequential calls.
Exit status: 0 when every call ended with the expected outcome, 1 otherwise, 7 when the
broker or a connection could not be set up.";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct DemoArgs {
    /// Sequential calls for the latency figure (1 to 100000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub calls: u32,
}

fn presence_config(port: u16) -> ClientConfig {
    let mut cfg = ClientConfig::new("127.0.0.1", port);
    cfg.presence = Some(PresenceTopics::default());
    cfg
}

/// The demo device: two identities on one connection.
fn start_device(port: u16, valve_topic: &str) -> Result<Client, String> {
    let mut cfg = presence_config(port);
    cfg.router.request_timeout_ms = 2000;
    let client = Client::new(cfg).map_err(|e| e.to_string())?;
    let sensor = Identity {
        product_key: PK,
        device_name: "demo-sensor",
        custom_topic: None,
    };
    let valve = Identity {
        product_key: PK,
        device_name: "demo-valve",
        custom_topic: Some(valve_topic),
    };
    client
        .add_device(Dialect::AlibabaSystem, &sensor)
        .map_err(|e| e.to_string())?;
    client
        .add_device(Dialect::AlibabaCustom, &valve)
        .map_err(|e| e.to_string())?;
    let replier = client.replier();
    client
        .set_handler(Some(Box::new(move |req: &Request<'_>| {
            let answer: Vec<u8> = match req.payload {
                b"ignore" => return,
                b"ping" => b"pong".to_vec(),
                p if std::str::from_utf8(p).is_ok() => {
                    let text = std::str::from_utf8(p).unwrap_or_default();
                    text.chars().rev().collect::<String>().into_bytes()
                }
                p => format!("{} binary bytes", p.len()).into_bytes(),
            };
            if let Err(e) = replier.reply(req.token, &answer) {
                eprintln!("demo device: reply failed: {e}");
            }
        })))
        .expect("set from the main thread, never from inside the handler");
    client.start().map_err(|e| e.to_string())?;
    Ok(client)
}

/// A device that connects, announces itself online, and stops cleanly (retained offline).
fn park_device(port: u16) -> Result<String, String> {
    let client = Client::new(presence_config(port)).map_err(|e| e.to_string())?;
    client
        .add_device(
            Dialect::AlibabaSystem,
            &Identity {
                product_key: PK,
                device_name: "demo-parked",
                custom_topic: None,
            },
        )
        .map_err(|e| e.to_string())?;
    client.start().map_err(|e| e.to_string())?;
    let id = client.client_id().unwrap_or_default();
    client.stop().map_err(|e| e.to_string())?;
    Ok(id)
}

struct DemoCall<'a> {
    what: &'a str,
    params: CallParams<'a>,
    /// `None`: the call must be refused (Success=false, InvalidParameter).
    expect: Option<RrpcCode>,
}

fn outcome(r: &RrpcResponse) -> String {
    match (r.rrpc_code, &r.code) {
        (Some(c), _) => c.to_string(),
        (None, Some(code)) => code.clone(),
        (None, None) => "?".to_string(),
    }
}

fn reply_text(r: &RrpcResponse) -> String {
    match &r.payload {
        Some(p) => match std::str::from_utf8(p) {
            Ok(t) => format!("reply {t:?}"),
            Err(_) => format!("reply {} bytes", p.len()),
        },
        None => String::new(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(a: DemoArgs) -> ExitCode {
    let broker = match crate::broker::start(([127, 0, 0, 1], 0).into()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rrpc demo: {e}");
            return ExitCode::from(EXIT_SYSTEM);
        }
    };
    let port = broker.addr.port();
    eprintln!(
        "rrpc demo: broker (rumqttd, in this process) listening on {}",
        broker.addr
    );

    let valve_topic = format!("/{PK}/demo-valve/user/rrpc");
    let device = match start_device(port, &valve_topic) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("rrpc demo: the device could not start: {e}");
            return ExitCode::from(EXIT_SYSTEM);
        }
    };
    eprintln!(
        "rrpc demo: device connected as {}, serving {PK}/demo-sensor and {PK}/demo-valve (presence on)",
        device.client_id().unwrap_or_default()
    );
    match park_device(port) {
        Ok(id) => eprintln!(
            "rrpc demo: device {PK}/demo-parked connected as {id} and stopped cleanly: its presence now says offline"
        ),
        Err(e) => {
            eprintln!("rrpc demo: the parked device could not start: {e}");
            return ExitCode::from(EXIT_SYSTEM);
        }
    }
    let caller = match Caller::connect(CallerConfig::new("127.0.0.1", port)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rrpc demo: the caller could not connect: {e}");
            return ExitCode::from(EXIT_SYSTEM);
        }
    };
    eprintln!("rrpc demo: caller connected as {}\n", caller.client_id());
    // The caller took the retained presence snapshot when it connected; give a
    // slow broker a moment all the same (bounded).
    let end = Instant::now() + Duration::from_secs(2);
    while caller.device_online(PK, "demo-parked") != Some(false) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }

    let base = |dn: &'static str, payload: &'static [u8], timeout: u32| CallParams {
        dialect: Dialect::AlibabaSystem,
        product_key: PK,
        device_name: dn,
        payload,
        timeout_ms: Some(timeout),
        custom_topic: None,
        content_type: None,
        name: None,
    };
    let binary: &[u8] = &[0, 1, 2, 0, 255];
    let calls = [
        DemoCall {
            what: "text to demo-sensor",
            params: base("demo-sensor", b"hello world", 2000),
            expect: Some(RrpcCode::Success),
        },
        DemoCall {
            what: "binary to demo-sensor",
            params: base("demo-sensor", binary, 2000),
            expect: Some(RrpcCode::Success),
        },
        DemoCall {
            what: "custom topic to demo-valve",
            params: CallParams {
                custom_topic: Some(&valve_topic),
                ..base("demo-valve", b"open", 2000)
            },
            expect: Some(RrpcCode::Success),
        },
        DemoCall {
            what: "to demo-parked (stopped), Timeout 8000 ms",
            params: base("demo-parked", b"ping", 8000),
            expect: Some(RrpcCode::Offline),
        },
        DemoCall {
            what: "demo-sensor ignores it, Timeout 1000 ms",
            params: base("demo-sensor", b"ignore", 1000),
            expect: Some(RrpcCode::Timeout),
        },
        DemoCall {
            what: "Timeout 500 ms (below the API's 1000)",
            params: base("demo-sensor", b"ping", 500),
            expect: None,
        },
    ];
    let mut ok = true;
    for c in &calls {
        let t = Instant::now();
        let r = caller.call(&c.params);
        let rtt = t.elapsed();
        let good = match c.expect {
            Some(code) => r.success && r.rrpc_code == Some(code),
            None => !r.success && r.code.as_deref() == Some(CODE_INVALID_PARAMETER),
        };
        ok &= good;
        let expected = c
            .expect
            .map(|e| e.to_string())
            .unwrap_or_else(|| format!("refused ({CODE_INVALID_PARAMETER})"));
        println!(
            "{} {:<42} {:<16} {:>8.2} ms  {}",
            if good { "ok  " } else { "FAIL" },
            c.what,
            outcome(&r),
            ms(rtt),
            reply_text(&r)
        );
        if !good {
            println!("     expected {expected}");
        }
        println!("     {}", r.to_json());
    }

    println!(
        "\n(rumqttd leaves Nagle's algorithm on: the first message on a new connection or \
         topic may wait ~40 ms in the broker)"
    );

    // Sequential calls, for a latency figure with some statistics.
    let n = a.calls as usize;
    let mut lat = Vec::with_capacity(n);
    let mut failed = 0usize;
    for i in 0..n {
        let p = format!("n{i}");
        let params = base("demo-sensor", b"", 2000);
        let params = CallParams {
            payload: p.as_bytes(),
            ..params
        };
        let t = Instant::now();
        let r = caller.call(&params);
        let rtt = t.elapsed();
        if r.rrpc_code == Some(RrpcCode::Success) {
            lat.push(rtt);
        } else {
            failed += 1;
        }
    }
    lat.sort();
    if lat.is_empty() {
        println!("\n{n} sequential calls to demo-sensor: none answered");
    } else {
        let pct = |q: f64| ms(lat[((lat.len() - 1) as f64 * q).round() as usize]);
        println!(
            "\n{n} sequential calls to demo-sensor: {} SUCCESS, p50 {:.2} ms, p99 {:.2} ms{}",
            lat.len(),
            pct(0.5),
            pct(0.99),
            if cfg!(debug_assertions) {
                " (debug build: use --release for real figures)"
            } else {
                ""
            }
        );
    }
    ok &= failed == 0;
    let s = caller.stats();
    println!(
        "caller counters: {} calls, {} SUCCESS, {} TIMEOUT, {} OFFLINE, {} refused",
        s.calls, s.success, s.timeout, s.offline, s.refused
    );
    drop(caller);
    if let Err(e) = device.stop() {
        eprintln!("rrpc demo: device stop: {e}");
    }
    if ok {
        println!("every call ended as expected");
        ExitCode::SUCCESS
    } else {
        println!("some calls did NOT end as expected (see FAIL above)");
        ExitCode::FAILURE
    }
}
