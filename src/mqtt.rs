//! The one way librrpc opens an MQTT connection with rumqttc, for the device
//! client and the caller alike.

use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions};

/// Room for a topic and the MQTT headers on top of a payload limit.
pub(crate) const PACKET_OVERHEAD: usize = 64 * 1024 + 16;

/// What a connection needs. Values are validated by the callers, so none of
/// rumqttc's asserting setters can fire.
pub(crate) struct Connection<'a> {
    pub client_id: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub keep_alive_s: u16,
    pub clean_session: bool,
    /// Largest payload in either direction.
    pub max_payload: usize,
    /// Capacity of the request channel between the application and the event loop.
    pub channel_capacity: usize,
    pub connect_timeout_ms: u32,
}

impl Connection<'_> {
    /// The options, for callers that add to them (a last will) before connecting.
    pub fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(self.client_id, self.host, self.port);
        o.set_keep_alive(Duration::from_secs(u64::from(self.keep_alive_s)));
        o.set_clean_session(self.clean_session);
        if let Some(user) = self.username {
            o.set_credentials(user, self.password.unwrap_or_default());
        }
        let limit = self.max_payload.saturating_add(PACKET_OVERHEAD);
        o.set_max_packet_size(limit, limit);
        o.set_request_channel_capacity(self.channel_capacity);
        o
    }

    /// The client and event loop for `options`, with TCP_NODELAY (rumqttc leaves
    /// Nagle on, which stalls pipelined messages by ~40 ms) and the connect timeout
    /// (rounded up to whole seconds, at least one).
    pub fn open(&self, options: MqttOptions) -> (AsyncClient, EventLoop) {
        let (client, mut eventloop) = AsyncClient::new(options, self.channel_capacity);
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(u64::from(self.connect_timeout_ms.div_ceil(1000)).max(1));
        eventloop.set_network_options(net);
        (client, eventloop)
    }
}
