//! The embedded broker's settings: one MQTT 3.1.1 listener, 4 MiB payloads,
//! 10,000 connections. `rrpc broker` and `rrpc demo` run with them, and the
//! tests' in-process broker includes this file (`#[path]`), so that the tests
//! run against the broker users start.

use std::collections::HashMap;
use std::net::SocketAddr;

/// rumqttd's configuration for a listener on `addr`.
pub fn rumqttd_config(addr: SocketAddr) -> rumqttd::Config {
    let mut v4 = HashMap::new();
    v4.insert(
        "v4".to_string(),
        rumqttd::ServerSettings {
            name: "v4".to_string(),
            listen: addr,
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
    rumqttd::Config {
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
    }
}
