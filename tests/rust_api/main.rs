//! The Rust API over real brokers (rumqttd in this process, Mosquitto on a free
//! loopback port): the device client, the caller, the router under threads,
//! hostile networks, injected faults, TLS, MQTT 5, ACLs, and the JT/T 808 codec and
//! adapter. One module per subject; tests/common/harness.rs runs them.

#[path = "../common/mod.rs"]
mod common;

mod acl;
mod caller;
mod caller_dialects;
mod caller_trust;
mod content_type;
mod envelopes;
mod faults;
mod hostile_network;
mod jt808_adapter;
mod jt808_codec;
mod mqtt5;
mod mqtt5_rr;
mod router_concurrency;
mod tls;

fn main() {
    common::harness::main(crate::modules![
        acl,
        caller,
        caller_dialects,
        caller_trust,
        content_type,
        envelopes,
        faults,
        hostile_network,
        jt808_adapter,
        jt808_codec,
        mqtt5,
        mqtt5_rr,
        router_concurrency,
        tls
    ])
}
