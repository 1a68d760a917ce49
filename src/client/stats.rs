//! A client's counters.

use crate::counters::counter_set;
use crate::router::RouterStats;
use crate::session::ConnStats;

/// A client's counters: the router's, then the connection's, then gauges. All
/// count from the client's creation, except the gauges. This struct is also
/// the C API's `rrpc_client_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Messages received on the client's subscriptions.
    pub messages: u64,
    /// Requests accepted and handed to the callback.
    pub requests: u64,
    /// Replies sent.
    pub replied: u64,
    /// Requests whose deadline passed without a reply.
    pub expired: u64,
    /// Second deliveries of a request already handed over (dropped).
    pub duplicates: u64,
    /// Own replies that came back on a custom-topic subscription (dropped).
    pub own_replies: u64,
    /// RRPC topics that break the dialect's format (dropped, logged).
    pub malformed: u64,
    /// Well-formed requests for devices not registered (dropped).
    pub unknown_device: u64,
    /// Requests dropped because `max_pending` requests were waiting.
    pub table_full: u64,
    /// Requests dropped because the payload exceeded `max_payload`.
    pub too_large: u64,
    /// Replies refused because the deadline had passed.
    pub late_replies: u64,
    /// Replies refused for an unknown, answered or cancelled token.
    pub bad_tokens: u64,
    /// Replies that could not be queued (not connected, queue full).
    pub send_failures: u64,
    /// Messages that were not RRPC requests.
    pub not_rrpc: u64,
    /// Retained requests (never executed).
    pub retained: u64,
    /// Successful connections, reconnects included.
    pub connects: u64,
    /// Failed connection attempts and lost connections.
    pub connection_errors: u64,
    /// Subscriptions the broker refused.
    pub subscribe_failures: u64,
    /// Incoming messages over `max_payload` (dropped, connection kept), and
    /// MQTT 3.1.1 packets over `max_incoming_packet` (they end the connection).
    pub oversize: u64,
    /// Incoming packets that cannot be decoded, such as a topic that is not
    /// UTF-8 (dropped on MQTT 5; on MQTT 3.1.1 they end the connection).
    pub malformed_packets: u64,
    /// Requests a resumed persistent session delivered before the subscriptions
    /// were acknowledged again (queued while away; dropped unless `accept_queued`).
    pub stale: u64,
    /// Replies refused because the outgoing queue was full (stalled or slow link).
    pub queue_full: u64,
    /// Gauge: requests waiting for a reply now.
    pub pending: u64,
    /// Gauge: devices registered now.
    pub devices: u64,
    /// Gauge: messages waiting in the outgoing queue now.
    pub queued: u64,
    /// Gauge: payload bytes waiting in the outgoing queue now.
    pub queued_bytes: u64,
}

/// `ClientStats::of`, and `ClientStats` as a counter set: each field, in
/// order, with where its value comes from.
macro_rules! client_stats_of {
    (|$r:ident, $c:ident| { $($field:ident: $from:ident.$value:ident),+ $(,)? }) => {
        counter_set!(ClientStats as ClientCounter { $($field),+ });

        impl ClientStats {
            pub(super) fn of($r: RouterStats, $c: ConnStats) -> ClientStats {
                ClientStats { $($field: $from.$value),+ }
            }
        }
    };
}

client_stats_of!(|r, c| {
    messages: r.messages,
    requests: r.requests,
    replied: r.replied,
    expired: r.expired,
    duplicates: r.duplicates,
    own_replies: r.own_replies,
    malformed: r.malformed,
    unknown_device: r.unknown_device,
    table_full: r.table_full,
    too_large: r.too_large,
    late_replies: r.late_replies,
    bad_tokens: r.bad_tokens,
    send_failures: r.send_failures,
    not_rrpc: r.not_rrpc,
    retained: r.retained,
    connects: c.connects,
    connection_errors: c.connection_errors,
    subscribe_failures: c.subscribe_failures,
    oversize: c.oversize,
    malformed_packets: c.malformed,
    stale: c.stale,
    queue_full: c.queue_full,
    pending: r.pending,
    devices: r.devices,
    queued: c.queued,
    queued_bytes: c.queued_bytes,
});
