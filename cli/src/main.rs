//! `rrpc`: the command-line tool of librrpc. Calls devices the way the RRpc API
//! does (`call`), runs an echo device (`device`), an embedded broker (`broker`),
//! and the demonstration (`demo`). Results go to stdout, progress to stderr.

mod broker;
mod call;
mod credentials;
mod demo;
mod device;
mod dialect_file;
mod json;
mod jt808;
mod jt808_terminal;
mod rumqttd_config;
mod signals;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rrpc::RrpcResponse;

/// Exit statuses (documented in `rrpc call --help`).
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_TIMEOUT: u8 = 3;
pub const EXIT_OFFLINE: u8 = 4;
pub const EXIT_HALFCONN: u8 = 5;
pub const EXIT_UNKNOWN: u8 = 6;
pub const EXIT_SYSTEM: u8 = 7;

const LONG_ABOUT: &str = "\
rrpc: Revert-RPC (RRPC) over MQTT, from the command line.

RRPC gives the cloud synchronous calls *to* devices over MQTT: the caller publishes a request
on a device topic that carries a unique message id, and the device answers on the matching
response topic before the caller's timeout. `rrpc` speaks the RRpc API (Alibaba Cloud IoT and
its white labels such as Tuya, and Tencent IoT Hub topics) through any MQTT 3.1.1 broker, with
librrpc on both sides.";

const EXAMPLES: &str = "\
Examples:
  rrpc demo                                  # broker, device and calls in one process
  rrpc broker --bind 127.0.0.1:1883          # a broker for what follows (or use Mosquitto)
  rrpc device --port 1883 --product-key a1B2c3 --device-name dev1
  rrpc call --port 1883 --product-key a1B2c3 --device-name dev1 \\
            --payload 'hello' --timeout 3000

`rrpc call` exits with 0 SUCCESS, 2 invalid parameters, 3 TIMEOUT, 4 OFFLINE, 5 HALFCONN,
6 UNKNOWN, 7 broker unreachable or other system error. `rrpc <command> --help` for details.";

#[derive(Parser, Debug)]
#[command(
    name = "rrpc",
    version,
    about = "Revert-RPC (RRPC) over MQTT: synchronous calls from the cloud to devices",
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make one RRPC call to a device and print the RRpc response (JSON or XML).
    Call(call::CallArgs),
    /// Run an echo device built on librrpc, until SIGINT or SIGTERM.
    Device(device::DeviceArgs),
    /// Run an embedded MQTT broker (rumqttd), until SIGINT or SIGTERM.
    Broker(broker::BrokerArgs),
    /// Broker, devices and caller in one process: calls that show each RrpcCode, and latency.
    Demo(demo::DemoArgs),
    /// JT/T 808: decode a frame to JSON, encode one from flags, or simulate terminals.
    Jt808(jt808::Jt808Args),
    /// Signed MQTT credentials of a cloud device (Alibaba, Tencent), printed as JSON.
    Credentials(credentials::CredentialsArgs),
}

/// Where the broker is, and how to log in.
#[derive(Args, Clone)]
pub struct Conn {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker TCP port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// MQTT user name.
    #[arg(long)]
    pub username: Option<String>,
    /// MQTT password (needs --username). It shows in the process list: prefer
    /// --password-file.
    #[arg(long, requires = "username", conflicts_with = "password_file")]
    password: Option<String>,
    /// A file holding the MQTT password (needs --username); one trailing newline is
    /// ignored.
    #[arg(long, value_name = "FILE", requires = "username")]
    password_file: Option<std::path::PathBuf>,
    /// Connect over TLS, verified against the system's CA certificates.
    #[arg(long)]
    pub tls: bool,
    /// Connect over TLS, verified against the CA certificates of this PEM file
    /// (implies --tls).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS (implies --tls; needs --key).
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
    /// The name the broker's certificate must be valid for, when it is not --host
    /// (implies --tls).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// MQTT protocol version: 3.1.1 (also written 4, its protocol level) or 5
    /// (MQTT 5: No Local on the device's custom-topic subscriptions, reason codes
    /// in connection errors).
    #[arg(long, value_name = "3.1.1|5", default_value = "3.1.1", value_parser = mqtt_version)]
    pub mqtt_version: rrpc::session::MqttVersion,
}

fn mqtt_version(s: &str) -> Result<rrpc::session::MqttVersion, String> {
    match s {
        "3.1.1" => Some(rrpc::session::MqttVersion::V311),
        s => s
            .parse::<u8>()
            .ok()
            .and_then(rrpc::session::MqttVersion::from_number),
    }
    .ok_or_else(|| "must be 3.1.1 (or 4, its protocol level) or 5 (MQTT 5)".to_string())
}

impl Conn {
    /// The password of --password or --password-file. Errors name the file and the
    /// problem, never the content.
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else {
            return Ok(self.password.clone());
        };
        let bytes =
            std::fs::read(path).map_err(|e| format!("--password-file {}: {e}", path.display()))?;
        let mut text = String::from_utf8(bytes)
            .map_err(|_| format!("--password-file {}: not UTF-8", path.display()))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        if text.is_empty() {
            return Err(format!("--password-file {}: empty", path.display()));
        }
        Ok(Some(text))
    }
}

impl Conn {
    /// The TLS settings of the flags; `None` for plain TCP.
    pub fn tls_config(&self) -> Option<rrpc::tls::TlsConfig> {
        let on = self.tls
            || self.ca_file.is_some()
            || self.cert.is_some()
            || self.tls_server_name.is_some();
        on.then(|| rrpc::tls::TlsConfig {
            ca_file: self.ca_file.clone(),
            server_name: self.tls_server_name.clone(),
            cert_file: self.cert.clone(),
            key_file: self.key.clone(),
            ..Default::default()
        })
    }
}

/// The password stays out of `Debug` output.
impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |set: bool| if set { "<redacted>" } else { "<none>" };
        f.debug_struct("Conn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &secret(self.password.is_some()))
            .field("password_file", &self.password_file)
            .field("tls", &self.tls_config())
            .field("mqtt_version", &self.mqtt_version)
            .finish()
    }
}

/// A secret from the command line (a device secret, a PSK): `Debug` prints
/// `<redacted>`, so argument structs may derive `Debug`.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A response made here rather than by the library (Success=false): for input
/// refused before any connection, or a broker that cannot be reached.
pub fn local_response(code: &str, message: String) -> RrpcResponse {
    RrpcResponse::failed(code, message)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Call(a) => call::run(a),
        Command::Device(a) => device::run(a),
        Command::Broker(a) => broker::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Jt808(a) => jt808::run(a),
        Command::Credentials(a) => credentials::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn request_ids_are_uuids() {
        let a = local_response("x", String::new()).request_id;
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, local_response("x", String::new()).request_id);
    }
}
