//! `rrpc credentials`: the signed MQTT credentials of a cloud device, as one JSON
//! object: what to put into an MQTT client, or to compare with another SDK.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use rrpc::credentials::{
    alibaba_instance_host, alibaba_public_host, tencent_host, AlibabaDevice, CredentialError,
    Credentials, SignMethod, TencentDevice, TENCENT_SDK_APP_ID,
};

use crate::json::Obj;
use crate::{Secret, EXIT_INVALID};

const AFTER_HELP: &str = "\
Output (stdout): one JSON object with client_id, username, password, host and port (8883 with
TLS, 1883 without). The password is a signature valid around the timestamp (Alibaba) or until
the expiry (Tencent): a device signs again at every connect. Errors: one line on stderr, exit 2.

Examples:
  rrpc credentials alibaba --product-key a1B2c3D4e5F --device-name dev1 \\
      --device-secret \"$SECRET\" --timestamp 1700000000123
  rrpc credentials tencent --product-id ABCDEFGHIJ --device-name dev1 \\
      --device-psk \"$PSK_BASE64\" --expiry 1700003600 --conn-id Ab3dE";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct CredentialsArgs {
    #[command(subcommand)]
    cloud: Cloud,
}

#[derive(Subcommand, Debug)]
enum Cloud {
    /// Alibaba IoT Platform (and its white labels such as Tuya): device-secret auth.
    Alibaba(AlibabaArgs),
    /// Tencent IoT Hub: key (PSK) auth.
    Tencent(TencentArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignArg {
    Hmacsha256,
    Hmacsha1,
}

impl SignArg {
    pub fn method(self) -> SignMethod {
        match self {
            SignArg::Hmacsha256 => SignMethod::HmacSha256,
            SignArg::Hmacsha1 => SignMethod::HmacSha1,
        }
    }
}

/// TLS or not: the port, and Alibaba's securemode.
#[derive(Args, Debug)]
struct TlsArg {
    /// The connection uses TLS (the default): port 8883, Alibaba securemode 2.
    #[arg(long, overrides_with = "no_tls")]
    tls: bool,
    /// The connection is plain TCP: port 1883, Alibaba securemode 3.
    #[arg(long)]
    no_tls: bool,
}

impl TlsArg {
    fn on(&self) -> bool {
        !self.no_tls
    }

    fn port(&self) -> u16 {
        if self.on() {
            8883
        } else {
            1883
        }
    }
}

#[derive(Args, Debug)]
struct AlibabaArgs {
    #[arg(long)]
    product_key: String,
    #[arg(long)]
    device_name: String,
    /// The DeviceSecret (never printed).
    #[arg(long)]
    device_secret: Secret,
    /// Signature time, Unix milliseconds (seconds are accepted too).
    #[arg(long)]
    timestamp: u64,
    /// The {id} of the client id (default {ProductKey}.{DeviceName}).
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long, value_enum, default_value = "hmacsha256")]
    sign_method: SignArg,
    /// The device serves a custom RRPC topic (ext=3 in the client id).
    #[arg(long)]
    custom_rrpc: bool,
    /// Region of the public instance, for the host name.
    #[arg(long, default_value = "cn-shanghai", conflicts_with = "instance_id")]
    region: String,
    /// Enterprise instance id: host {instanceId}.mqtt.iothub.aliyuncs.com.
    #[arg(long)]
    instance_id: Option<String>,
    #[command(flatten)]
    tls: TlsArg,
}

#[derive(Args, Debug)]
struct TencentArgs {
    #[arg(long)]
    product_id: String,
    #[arg(long)]
    device_name: String,
    /// The device PSK, Base64 (never printed).
    #[arg(long)]
    device_psk: Secret,
    /// When the signature expires, Unix seconds.
    #[arg(long)]
    expiry: u64,
    /// Connection id: 5 letters or digits (a device draws a new one per connect).
    #[arg(long)]
    conn_id: String,
    #[arg(long, default_value_t = TENCENT_SDK_APP_ID)]
    sdk_app_id: u32,
    #[arg(long, value_enum, default_value = "hmacsha256")]
    sign_method: SignArg,
    #[command(flatten)]
    tls: TlsArg,
}

pub fn run(args: CredentialsArgs) -> ExitCode {
    match signed(args.cloud) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rrpc credentials: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn signed(cloud: Cloud) -> Result<String, CredentialError> {
    let (c, host, port) = match cloud {
        Cloud::Alibaba(a) => {
            let mut d = AlibabaDevice::new(&a.product_key, &a.device_name, &a.device_secret.0);
            d.client_id = a.client_id;
            d.sign_method = a.sign_method.method();
            d.tls = a.tls.on();
            d.custom_rrpc = a.custom_rrpc;
            let c = d.sign(a.timestamp)?;
            let host = match &a.instance_id {
                Some(id) => alibaba_instance_host(id)?,
                None => alibaba_public_host(&a.product_key, &a.region)?,
            };
            (c, host, a.tls.port())
        }
        Cloud::Tencent(t) => {
            let mut d = TencentDevice::new(&t.product_id, &t.device_name, &t.device_psk.0);
            d.sdk_app_id = t.sdk_app_id;
            d.sign_method = t.sign_method.method();
            let c = d.sign(&t.conn_id, t.expiry)?;
            (c, tencent_host(&t.product_id)?, t.tls.port())
        }
    };
    Ok(json(&c, &host, port))
}

fn json(c: &Credentials, host: &str, port: u16) -> String {
    let mut o = Obj::new();
    o.str("client_id", &c.client_id);
    o.str("username", &c.username);
    o.str("password", &c.password);
    o.str("host", host);
    o.num("port", port);
    o.finish()
}
