//! `rrpc device`: an echo device on librrpc's `Client`.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use rrpc::presence::PresenceTopics;
use rrpc::{Client, ClientConfig, ClientError, Dialect, Identity, Replier, Request};

use crate::dialect_file::DialectOpts;
use crate::{signals, Conn, Secret, EXIT_INVALID, EXIT_SYSTEM};

pub const AFTER_HELP: &str = "\
The device answers every request with its own payload (QoS 0), at once or after --delay-ms,
with status --reply-status (200 by default) where the dialect's reply topic carries one, and
prints one line per request on stdout:
  request <dialect> <pk>/<dn> id=<message id> len=<bytes>[ content-type=<n>][ name=<name>]
It runs until SIGINT or SIGTERM, then disconnects cleanly.

Presence (on unless --no-presence): the device publishes a retained `online <client-id>` on
rrpc/presence/<pk>/<dn> when it connects and a retained `offline` when it stops, and leaves a
last will so that the broker says `offline` for it if it dies. Callers that follow presence
(`rrpc call` does) then answer OFFLINE at once for a stopped device instead of waiting for
the timeout, and HALFCONN when the device drops in the middle of a call.

Exit status: 0 stopped by a signal, 2 invalid arguments or identities, 7 broker unreachable.

Examples:
  rrpc device --port 1883 --product-key a1B2c3 --device-name dev1 --device-name dev2
  rrpc device --port 1883 --product-key a1B2c3 --device-name dev1 \\
              --dialect alibaba-custom --topic /a1B2c3/dev1/user/update
  rrpc device --port 1883 --dialect tencent --product-key PRODID --device-name test01
  rrpc device --port 1883 --dialect azure --device-name dev1 --reply-status 404
  rrpc device --port 1883 --dialect tencent-action --product-key PRODID --device-name test01
  rrpc device --port 1883 --dialect thingsboard-gateway --device-name 'Sensor A' \\
              --device-name 'Sensor B'                  # one gateway, two sub-devices
  rrpc device --port 1883 --mqtt-version 5 --dialect mqtt5 --topic 'plant/+/rpc' --device-name m
  rrpc device --port 1883 --dialect-file acme.dialect --dialect acme --device-name dev1";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct DeviceArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// ProductKey (Tencent: productId) of the devices, for dialects whose topics carry one.
    #[arg(long, default_value = "")]
    pub product_key: String,
    /// DeviceName to serve; repeat it to serve several devices on one connection.
    #[arg(long, required = true)]
    pub device_name: Vec<String>,
    /// Topic conventions (alibaba with --topic means alibaba-custom).
    #[command(flatten)]
    pub dialect: DialectOpts,
    /// The status of every reply, for dialects whose reply topic carries one
    /// (azure, or a --dialect-file dialect with {status}): 100 to 599. Default 200.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(100..=599))]
    pub reply_status: Option<u16>,
    /// Custom RRPC topic (alibaba-custom), such as /a1B2c3/dev1/user/update;
    /// for mqtt5 the request filter served (`+`/`#` allowed), such as plant/+/rpc.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Do not announce presence (callers then see TIMEOUT, never OFFLINE or HALFCONN).
    #[arg(long)]
    pub no_presence: bool,
    /// Answer each request after this many ms, from another thread.
    #[arg(long, value_name = "MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub delay_ms: u64,
    /// MQTT client id (default: derived, unique per process and device set). With
    /// --device-secret on Alibaba dialects: the {id} part of the signed client id
    /// (default {ProductKey}.{DeviceName}).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Sign the MQTT credentials with this secret at start, as the cloud expects
    /// (one --device-name): Alibaba dialects the DeviceSecret, Tencent the device
    /// PSK in Base64. Replaces --username and --password. See `rrpc credentials`.
    #[arg(long, value_name = "SECRET", conflicts_with_all = ["username", "password", "password_file"])]
    pub device_secret: Option<Secret>,
    /// HMAC of the signature (with --device-secret).
    #[arg(
        long,
        value_enum,
        default_value = "hmacsha256",
        requires = "device_secret"
    )]
    pub sign_method: crate::credentials::SignArg,
    /// How long to wait for the broker at start, in ms.
    #[arg(long, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..=600_000))]
    pub connect_timeout_ms: u32,
}

/// A client config for `conn`, with presence announcements when `presence`.
pub fn client_config(conn: &Conn, presence: bool) -> Result<ClientConfig, String> {
    let mut cfg = ClientConfig::new(conn.host.clone(), conn.port);
    cfg.mqtt.username = conn.username.clone();
    cfg.mqtt.password = conn.password()?;
    cfg.mqtt.tls = conn.tls_config();
    cfg.mqtt.protocol = conn.mqtt_version;
    if presence {
        cfg.presence = Some(PresenceTopics::default());
    }
    Ok(cfg)
}

/// How long a Tencent signature of `rrpc device` is valid, from its connect.
const TENCENT_VALIDITY_S: u64 = 3600;

/// The cloud's signed credentials for the one device, as client id, user name and
/// password of `cfg`, signed now; Tencent's, which expire, are signed again before
/// every connection attempt (valid for an hour from it, with a fresh connection id).
fn sign_in(
    cfg: &mut ClientConfig,
    a: &DeviceArgs,
    dialect: Dialect,
    secret: &str,
) -> Result<(), String> {
    use rrpc::credentials::{tencent_conn_id, AlibabaDevice, TencentDevice};
    let [dn] = a.device_name.as_slice() else {
        return Err("--device-secret signs for one device: give one --device-name".into());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("system clock: {e}"))?;
    let signed = match dialect {
        Dialect::Tencent => {
            let mut d = TencentDevice::new(&a.product_key, dn, secret);
            d.sign_method = a.sign_method.method();
            let first = d.sign(&tencent_conn_id(), now.as_secs() + TENCENT_VALIDITY_S);
            cfg.mqtt.signer = Some(std::sync::Arc::new(move |unix_ms: u64| {
                let c = d
                    .sign(&tencent_conn_id(), unix_ms / 1000 + TENCENT_VALIDITY_S)
                    .map_err(|e| e.to_string())?;
                Ok((c.username, c.password))
            }));
            first
        }
        Dialect::AlibabaSystem | Dialect::AlibabaCustom | Dialect::AlibabaService => {
            let mut d = AlibabaDevice::new(&a.product_key, dn, secret);
            d.client_id = a.client_id.clone();
            d.sign_method = a.sign_method.method();
            d.tls = cfg.mqtt.tls.is_some();
            d.custom_rrpc = a.topic.is_some();
            d.sign(now.as_millis() as u64)
        }
        d => {
            return Err(format!(
                "--device-secret signs for Alibaba and Tencent, not for the {d} dialect"
            ))
        }
    }
    .map_err(|e| format!("--device-secret: {e}"))?;
    cfg.mqtt.client_id = Some(signed.client_id);
    cfg.mqtt.username = Some(signed.username);
    cfg.mqtt.password = Some(signed.password);
    Ok(())
}

/// Answers requests after a fixed delay, in arrival order, on one thread.
struct Delayed {
    tx: mpsc::Sender<(Instant, u64, Vec<u8>)>,
}

/// The status every reply of `rrpc device` carries (`--reply-status`).
type Status = Option<u16>;

impl Delayed {
    fn start(replier: Replier, status: Status) -> Delayed {
        let (tx, rx) = mpsc::channel::<(Instant, u64, Vec<u8>)>();
        std::thread::spawn(move || {
            // Ends when the handler (and with it the sender) is dropped.
            for (due, token, payload) in rx {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                if let Err(e) = replier.reply_with_status(token, status, &payload) {
                    eprintln!("rrpc device: delayed reply failed: {e}");
                }
            }
        });
        Delayed { tx }
    }
}

fn dialect_and_topic(a: &DeviceArgs) -> Result<Dialect, String> {
    let d = a.dialect.resolve()?;
    match (d, &a.topic) {
        (Dialect::AlibabaSystem | Dialect::AlibabaCustom, Some(_)) => Ok(Dialect::AlibabaCustom),
        (d, None) if d.needs_custom_topic() => Err(format!("--dialect {d} needs --topic")),
        (d, Some(_)) if d.uses_mqtt5_properties() => Ok(d),
        (_, Some(_)) => {
            Err("--topic (custom RRPC topics) exists only for Alibaba and mqtt5".to_string())
        }
        (d, None) => Ok(d),
    }
}

pub fn run(a: DeviceArgs) -> ExitCode {
    let invalid = |m: String| {
        eprintln!("rrpc device: {m}");
        ExitCode::from(EXIT_INVALID)
    };
    let dialect = match dialect_and_topic(&a) {
        Ok(d) => d,
        Err(m) => return invalid(m),
    };
    if a.topic.is_some() && a.device_name.len() > 1 {
        return invalid(
            "a custom topic serves one device: give one --device-name with --topic".to_string(),
        );
    }
    let mut cfg = match client_config(&a.conn, !a.no_presence) {
        Ok(c) => c,
        Err(m) => return invalid(m),
    };
    cfg.mqtt.client_id = a.client_id.clone();
    if let Some(secret) = &a.device_secret {
        if let Err(m) = sign_in(&mut cfg, &a, dialect, &secret.0) {
            return invalid(m);
        }
    }
    cfg.mqtt.connect_timeout_ms = a.connect_timeout_ms;
    let client = match Client::new(cfg) {
        Ok(c) => c,
        Err(e) => return invalid(e.to_string()),
    };
    for dn in &a.device_name {
        let id = Identity {
            product_key: &a.product_key,
            device_name: dn,
            custom_topic: a.topic.as_deref(),
        };
        match client.add_device(dialect, &id) {
            Ok(d) => eprintln!(
                "rrpc device: serving {dialect} {}/{dn} on {}",
                a.product_key,
                d.filter()
            ),
            Err(e) => return invalid(format!("device {}/{dn}: {e}", a.product_key)),
        }
    }
    let replier = client.replier();
    let status = a.reply_status;
    let delayed = (a.delay_ms > 0).then(|| Delayed::start(replier.clone(), status));
    let delay = Duration::from_millis(a.delay_ms);
    client
        .set_handler(Some(Box::new(move |req: &Request<'_>| {
            let ct = req
                .content_type
                .map(|c| format!(" content-type={c}"))
                .unwrap_or_default();
            let name = req.name().map(|n| format!(" name={n}")).unwrap_or_default();
            println!(
                "request {} {}/{} id={} len={}{ct}{name}",
                req.dialect,
                req.product_key(),
                req.device_name(),
                req.message_id(),
                req.payload.len()
            );
            let sent = match &delayed {
                Some(d) => {
                    d.tx.send((Instant::now() + delay, req.token, req.payload.to_vec()))
                        .map_err(|_| "the reply thread ended".to_string())
                }
                None => replier
                    .reply_with_status(req.token, status, req.payload)
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = sent {
                eprintln!("rrpc device: reply to {} failed: {e}", req.message_id());
            }
        })))
        .expect("set from the main thread, never from inside the handler");
    if let Err(e) = signals::install() {
        eprintln!("rrpc device: cannot install signal handlers: {e}");
        return ExitCode::from(EXIT_SYSTEM);
    }
    if let Err(e) = client.start() {
        eprintln!("rrpc device: {e}");
        if dialect == Dialect::Tencent {
            eprintln!("rrpc device: note: some brokers (rumqttd) drop clients that subscribe to '$' topics such as Tencent's $rrpc/rxd/...; Mosquitto accepts them");
        }
        return ExitCode::from(match e {
            ClientError::InvalidArgument(_) | ClientError::Device(_) => EXIT_INVALID,
            _ => EXIT_SYSTEM,
        });
    }
    eprintln!(
        "rrpc device: connected as {} (presence {})",
        client.client_id().unwrap_or_default(),
        if a.no_presence { "off" } else { "on" }
    );
    let sig = signals::wait(|| false).unwrap_or(libc::SIGTERM);
    eprintln!("rrpc device: {}: stopping", signals::name(sig));
    client
        .set_handler(None)
        .expect("set from the main thread, never from inside the handler");
    if let Err(e) = client.stop() {
        eprintln!("rrpc device: stop: {e}");
        return ExitCode::from(EXIT_SYSTEM);
    }
    let s = client.stats();
    eprintln!(
        "rrpc device: stopped after {} request(s), {} replied, {} own replies ignored",
        s.requests, s.replied, s.own_replies
    );
    ExitCode::SUCCESS
}
