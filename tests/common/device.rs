//! The echo device on the Rust API, and the configurations and call parameters the
//! tests use most.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rrpc::session::MqttVersion;
use rrpc::{CallParams, Caller, CallerConfig, Client, ClientConfig, Dialect, Identity};

/// A device's identity without a custom topic.
pub fn identity<'a>(product_key: &'a str, device_name: &'a str) -> Identity<'a> {
    Identity {
        product_key,
        device_name,
        custom_topic: None,
    }
}

/// The identity of a device on the Alibaba system topics.
pub fn system<'a>(product_key: &'a str, device_name: &'a str) -> (Dialect, Identity<'a>) {
    (Dialect::AlibabaSystem, identity(product_key, device_name))
}

/// The identity of a device on an Alibaba custom topic.
pub fn custom<'a>(
    product_key: &'a str,
    device_name: &'a str,
    topic: &'a str,
) -> (Dialect, Identity<'a>) {
    let id = Identity {
        product_key,
        device_name,
        custom_topic: Some(topic),
    };
    (Dialect::AlibabaCustom, id)
}

/// A device client's configuration for 127.0.0.1:`port` on MQTT `protocol`, that
/// gives up connecting after 3 s.
pub fn client_config(port: u16, protocol: MqttVersion) -> ClientConfig {
    let mut cfg = ClientConfig::new("127.0.0.1", port);
    cfg.mqtt.protocol = protocol;
    cfg.mqtt.connect_timeout_ms = 3000;
    cfg
}

/// A library caller connected to 127.0.0.1:`port` on MQTT `protocol` (3 s to
/// connect).
pub fn caller(port: u16, protocol: MqttVersion) -> Caller {
    let mut cfg = CallerConfig::new("127.0.0.1", port);
    cfg.mqtt.protocol = protocol;
    cfg.mqtt.connect_timeout_ms = 3000;
    Caller::connect(cfg).expect("caller connects")
}

/// A client serving `devices` that answers every request with its payload and
/// counts the requests it handled; not started.
pub fn echo_device(
    cfg: ClientConfig,
    devices: &[(Dialect, Identity<'_>)],
) -> (Client, Arc<AtomicUsize>) {
    let c = Client::new(cfg).expect("a client");
    for (dialect, id) in devices {
        c.add_device(*dialect, id).expect("add the device");
    }
    let handled = Arc::new(AtomicUsize::new(0));
    let (r, h) = (c.replier(), handled.clone());
    c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        h.fetch_add(1, Ordering::SeqCst);
        let _ = r.reply(req.token, req.payload);
    })))
    .expect("set the handler");
    (c, handled)
}

/// [`echo_device`], started.
pub fn started_echo_device(cfg: ClientConfig, devices: &[(Dialect, Identity<'_>)]) -> Client {
    let (c, _) = echo_device(cfg, devices);
    c.start().expect("start the client");
    c
}

/// A call to the Alibaba system-topic device `product_key/device_name`.
pub fn system_call<'a>(
    product_key: &'a str,
    device_name: &'a str,
    payload: &'a [u8],
    timeout_ms: u32,
) -> CallParams<'a> {
    CallParams {
        timeout_ms: Some(timeout_ms),
        ..CallParams::new(Dialect::AlibabaSystem, product_key, device_name, payload)
    }
}
