//! The demonstration: an embedded MQTT broker (rumqttd, on a free 127.0.0.1
//! port), a device built on librrpc, and a handful of RRPC calls to it, each
//! printed with its round-trip time.
//!
//!     cargo run --release --example demo
//!
//! The device serves two Alibaba identities on one connection: `demo-sensor` on
//! the system topics and `demo-valve` on a custom topic. It echoes `ping`,
//! reverses text, answers binary requests with their length, and leaves requests
//! whose payload is `ignore` unanswered so that the caller times out.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rrpc::{Client, ClientConfig, Dialect, Identity};

const PK: &str = "a1DemoPk";

fn main() {
    let broker = common::Broker::rumqttd();
    eprintln!("broker: rumqttd listening on 127.0.0.1:{}", broker.port);

    // The device: one client, two devices, one handler.
    let mut cfg = ClientConfig::new("127.0.0.1", broker.port);
    cfg.router.request_timeout_ms = 2000;
    let client = Client::new(cfg).expect("valid configuration");
    let sensor = Identity {
        product_key: PK,
        device_name: "demo-sensor",
        custom_topic: None,
    };
    let valve_topic = format!("/{PK}/demo-valve/user/rrpc");
    let valve = Identity {
        product_key: PK,
        device_name: "demo-valve",
        custom_topic: Some(&valve_topic),
    };
    client
        .add_device(Dialect::AlibabaSystem, &sensor)
        .expect("add sensor");
    client
        .add_device(Dialect::AlibabaCustom, &valve)
        .expect("add valve");
    let replier = client.replier();
    let verbose = Arc::new(AtomicBool::new(true));
    let loud = verbose.clone();
    client
        .set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
            if loud.load(Ordering::Relaxed) {
                eprintln!(
                    "device: {} request {} for {}/{} ({} bytes)",
                    req.dialect,
                    req.message_id(),
                    req.product_key(),
                    req.device_name(),
                    req.payload.len()
                );
            }
            let answer: Vec<u8> = match req.payload {
                b"ignore" => return,
                b"ping" => b"pong".to_vec(),
                p if std::str::from_utf8(p).is_ok() => p.iter().rev().copied().collect(),
                p => format!("{} binary bytes", p.len()).into_bytes(),
            };
            if let Err(e) = replier.reply(req.token, &answer) {
                eprintln!("device: reply failed: {e}");
            }
        })))
        .unwrap();
    client.start().expect("device connects");
    eprintln!(
        "device: connected as {}",
        client.client_id().unwrap_or_default()
    );

    // The cloud side.
    let caller = common::Caller::connect(broker.port);
    caller.watch_custom(&valve_topic);
    // (what, dialect, device name, custom topic, payload)
    type Call<'a> = (&'a str, Dialect, &'a str, Option<&'a str>, &'a [u8]);
    let calls: [Call<'_>; 6] = [
        (
            "ping the sensor",
            Dialect::AlibabaSystem,
            "demo-sensor",
            None,
            b"ping",
        ),
        (
            "text to the sensor",
            Dialect::AlibabaSystem,
            "demo-sensor",
            None,
            b"hello world",
        ),
        (
            "binary to the sensor",
            Dialect::AlibabaSystem,
            "demo-sensor",
            None,
            &[0, 1, 2, 0, 255],
        ),
        (
            "custom topic to the valve",
            Dialect::AlibabaCustom,
            "demo-valve",
            Some(&valve_topic),
            b"open",
        ),
        (
            "a device nobody serves",
            Dialect::AlibabaSystem,
            "ghost",
            None,
            b"ping",
        ),
        (
            "a request the device ignores",
            Dialect::AlibabaSystem,
            "demo-sensor",
            None,
            b"ignore",
        ),
    ];
    let mut latencies = Vec::new();
    println!(
        "{:<30} {:<10} {:>10}  reply",
        "call", "result", "round trip"
    );
    for (what, dialect, dn, topic, payload) in calls {
        let t = Instant::now();
        let r = caller.call(dialect, PK, dn, topic, payload, Duration::from_millis(1000));
        let rtt = t.elapsed();
        match r {
            Some(reply) => {
                latencies.push(rtt);
                println!(
                    "{what:<30} {:<10} {:>8.2}ms  {}",
                    "SUCCESS",
                    rtt.as_secs_f64() * 1e3,
                    String::from_utf8(reply.clone()).unwrap_or_else(|_| format!("{reply:?}"))
                );
            }
            None => println!(
                "{what:<30} {:<10} {:>8.0}ms  (no reply within 1000 ms)",
                "TIMEOUT",
                rtt.as_secs_f64() * 1e3
            ),
        }
    }
    // A burst, for a latency figure with some statistics.
    verbose.store(false, Ordering::Relaxed);
    let mut burst: Vec<Duration> = (0..200)
        .filter_map(|i| {
            let t = Instant::now();
            let p = format!("n{i}");
            caller
                .call(
                    Dialect::AlibabaSystem,
                    PK,
                    "demo-sensor",
                    None,
                    p.as_bytes(),
                    Duration::from_secs(1),
                )
                .map(|_| t.elapsed())
        })
        .collect();
    burst.sort();
    if !burst.is_empty() {
        let pct = |q: f64| burst[((burst.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        println!(
            "\n200 sequential calls: {} answered, p50 {:.2} ms, p99 {:.2} ms (debug builds are slower; use --release)",
            burst.len(),
            pct(0.5),
            pct(0.99)
        );
    }
    let s = client.stats();
    println!(
        "device counters: {} requests, {} replied, {} expired or pending, {} own custom-topic replies recognised",
        s.requests,
        s.replied,
        s.requests - s.replied,
        s.own_replies
    );
    client.stop().expect("stop");
    assert_eq!(latencies.len(), 4, "the four served calls must succeed");
}
