//! Signed MQTT credentials for the clouds RRPC comes from: the client id, user
//! name and password a device computes from its device secret.
//!
//! - **Alibaba IoT Platform** (and clouds that copy its scheme, such as Tuya's):
//!   device-secret authentication. Client id `{id}|securemode=2,signmethod=hmacsha256,timestamp={ts}|`
//!   (securemode 2 with TLS, 3 without; `ext=3` when the device serves a custom RRPC
//!   topic), `{id}` being `{ProductKey}.{DeviceName}` unless given; user name
//!   `{DeviceName}&{ProductKey}`; password the lowercase hex HMAC, keyed with the
//!   DeviceSecret, of `clientId{id}deviceName{dn}productKey{pk}timestamp{ts}`.
//! - **Tencent IoT Hub**: key authentication. Client id `{ProductId}{DeviceName}`;
//!   user name `{ProductId}{DeviceName};{sdkappid};{connid};{expiry}`; password the
//!   lowercase hex HMAC, keyed with the Base64-decoded device PSK, of the user name,
//!   followed by `;hmacsha256` or `;hmacsha1`.
//!
//! The HMACs come from `ring`, the crate that also provides TLS. Secrets never
//! appear in `Debug` output or error messages: [`Credentials`] prints its password
//! as `<redacted>`, and errors name the field, never its value.
//!
//! A signature is valid for a while around its timestamp (Alibaba) or until its
//! expiry (Tencent), so a device signs again at every connect.

use std::fmt;

use base64::Engine as _;
use ring::hmac;

use crate::dialect::validate_part;
use crate::encoding::hex;

/// The HMAC of a signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignMethod {
    /// HMAC-SHA256: what Alibaba's LinkSDK C 4.x and Tencent's C SDK use.
    #[default]
    HmacSha256,
    /// HMAC-SHA1: older SDKs (Alibaba's and Tencent's Python SDKs).
    HmacSha1,
}

impl SignMethod {
    /// `hmacsha256` or `hmacsha1`, as the clouds spell it.
    pub fn name(self) -> &'static str {
        match self {
            SignMethod::HmacSha256 => "hmacsha256",
            SignMethod::HmacSha1 => "hmacsha1",
        }
    }

    /// The method named `hmacsha256` or `hmacsha1` (any case).
    pub fn from_name(name: &str) -> Option<SignMethod> {
        match name.to_ascii_lowercase().as_str() {
            "hmacsha256" => Some(SignMethod::HmacSha256),
            "hmacsha1" => Some(SignMethod::HmacSha1),
            _ => None,
        }
    }

    /// Lowercase hex HMAC of `message` keyed with `key`.
    fn sign_hex(self, key: &[u8], message: &[u8]) -> String {
        let alg = match self {
            SignMethod::HmacSha256 => hmac::HMAC_SHA256,
            SignMethod::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        };
        let tag = hmac::sign(&hmac::Key::new(alg, key), message);
        hex(tag.as_ref())
    }
}

/// `Debug` for a struct holding secrets: every field in order, by name, a
/// field marked `redacted` as `<redacted>`.
macro_rules! debug_redacting {
    ($ty:ident { $($field:ident $(: $redacted:ident)?),+ $(,)? }) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(
                        stringify!($field),
                        debug_redacting!(@shown self.$field $(, $redacted)?),
                    ))+
                    .finish()
            }
        }
    };
    (@shown $value:expr, redacted) => { &"<redacted>" };
    (@shown $value:expr) => { &$value };
}

/// What a device presents in its MQTT CONNECT. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub username: String,
    pub password: String,
}

debug_redacting!(Credentials {
    client_id,
    username,
    password: redacted,
});

/// Why credentials could not be computed. The message names the field and the
/// rule, never a secret's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct CredentialError {
    pub field: &'static str,
    pub reason: String,
}

impl CredentialError {
    /// Whether the refused field names the device (product key or id, device
    /// name, client id) rather than a secret, a time or a host part.
    pub fn is_identity(&self) -> bool {
        matches!(
            self.field,
            "product key" | "product id" | "device name" | "client id"
        )
    }
}

fn refuse<T>(field: &'static str, reason: impl Into<String>) -> Result<T, CredentialError> {
    Err(CredentialError {
        field,
        reason: reason.into(),
    })
}

/// The separators of the signed strings (`&` joins the Alibaba user name, `|`, `,`
/// and `=` frame its client id's parameters, `;` joins the Tencent user name): an
/// identity field that held one could be read as another field.
const SEPARATORS: &str = "&|,;=";

/// An identity field: non-empty, at most 128 bytes, no `+ # /`, NUL or control
/// character (the rules of topic identities, [`validate_part`]), and none of
/// [`SEPARATORS`].
fn check_field(field: &'static str, value: &str) -> Result<(), CredentialError> {
    check_field_except(field, value, "")
}

/// [`check_field`], with the separators in `allowed` let through.
fn check_field_except(
    field: &'static str,
    value: &str,
    allowed: &str,
) -> Result<(), CredentialError> {
    validate_part(field, value).map_err(|e| CredentialError {
        field,
        reason: e.reason.to_string(),
    })?;
    let forbidden = |c: &char| SEPARATORS.contains(*c) && !allowed.contains(*c);
    if let Some(c) = value.chars().find(forbidden) {
        return refuse(field, format!("contains the separator '{c}'"));
    }
    Ok(())
}

/// A secret: non-empty, at most 1024 bytes. Its value is never echoed.
fn check_secret(field: &'static str, value: &str) -> Result<(), CredentialError> {
    if value.is_empty() {
        return refuse(field, "is empty");
    }
    if value.len() > MAX_SECRET_LEN {
        return refuse(field, "is longer than 1024 bytes");
    }
    Ok(())
}

const MAX_SECRET_LEN: usize = 1024;

/// The largest timestamp or expiry accepted: 13 decimal digits, which holds both
/// Unix seconds and Unix milliseconds (the clouds and their SDKs use either).
pub const MAX_TIME: u64 = 9_999_999_999_999;

fn check_time(field: &'static str, value: u64) -> Result<(), CredentialError> {
    if value == 0 || value > MAX_TIME {
        return refuse(field, format!("must be 1 to {MAX_TIME}"));
    }
    Ok(())
}

/// An Alibaba IoT Platform device with device-secret authentication.
#[derive(Clone)]
pub struct AlibabaDevice {
    pub product_key: String,
    pub device_name: String,
    /// The DeviceSecret. Never printed.
    pub device_secret: String,
    /// The `{id}` part of the client id; `None`: `{ProductKey}.{DeviceName}` (LinkSDK C).
    pub client_id: Option<String>,
    pub sign_method: SignMethod,
    /// Whether the connection uses TLS (securemode 2) or not (securemode 3).
    pub tls: bool,
    /// Whether the device serves a custom RRPC topic: adds `ext=3` to the client id,
    /// which is how the platform learns to send custom-topic RRPC requests.
    pub custom_rrpc: bool,
}

debug_redacting!(AlibabaDevice {
    product_key,
    device_name,
    device_secret: redacted,
    client_id,
    sign_method,
    tls,
    custom_rrpc,
});

impl AlibabaDevice {
    /// A device with the defaults: client id `{pk}.{dn}`, HMAC-SHA256, TLS, no
    /// custom RRPC topic.
    pub fn new(product_key: &str, device_name: &str, device_secret: &str) -> AlibabaDevice {
        AlibabaDevice {
            product_key: product_key.to_string(),
            device_name: device_name.to_string(),
            device_secret: device_secret.to_string(),
            client_id: None,
            sign_method: SignMethod::default(),
            tls: true,
            custom_rrpc: false,
        }
    }

    /// The credentials signed at `timestamp` (Unix milliseconds as LinkSDK C sends
    /// them; seconds are accepted too, as the Python SDK sends them).
    pub fn sign(&self, timestamp: u64) -> Result<Credentials, CredentialError> {
        check_field("product key", &self.product_key)?;
        check_field("device name", &self.device_name)?;
        check_secret("device secret", &self.device_secret)?;
        check_time("timestamp", timestamp)?;
        let id = match &self.client_id {
            Some(id) => {
                // `&` is allowed: the Python SDK's id is `{pk}&{dn}`.
                check_field_except("client id", id, "&")?;
                id.clone()
            }
            None => format!("{}.{}", self.product_key, self.device_name),
        };
        let (pk, dn) = (&self.product_key, &self.device_name);
        let content = format!("clientId{id}deviceName{dn}productKey{pk}timestamp{timestamp}");
        let password = self
            .sign_method
            .sign_hex(self.device_secret.as_bytes(), content.as_bytes());
        let mode = if self.tls { 2 } else { 3 };
        let ext = if self.custom_rrpc { ",ext=3" } else { "" };
        Ok(Credentials {
            client_id: format!(
                "{id}|securemode={mode},signmethod={},timestamp={timestamp}{ext}|",
                self.sign_method.name()
            ),
            username: format!("{dn}&{pk}"),
            password,
        })
    }
}

/// The MQTT host of a public-instance Alibaba device:
/// `{ProductKey}.iot-as-mqtt.{region}.aliyuncs.com` (port 1883, 8883 with TLS).
pub fn alibaba_public_host(product_key: &str, region: &str) -> Result<String, CredentialError> {
    check_field("product key", product_key)?;
    check_host_label("region", region)?;
    Ok(format!("{product_key}.iot-as-mqtt.{region}.aliyuncs.com"))
}

/// The MQTT host of a device of an Alibaba enterprise instance:
/// `{instanceId}.mqtt.iothub.aliyuncs.com`.
pub fn alibaba_instance_host(instance_id: &str) -> Result<String, CredentialError> {
    check_host_label("instance id", instance_id)?;
    Ok(format!("{instance_id}.mqtt.iothub.aliyuncs.com"))
}

/// A DNS label: 1-63 letters, digits and hyphens.
fn check_host_label(field: &'static str, value: &str) -> Result<(), CredentialError> {
    if value.is_empty() || value.len() > 63 {
        return refuse(field, "must be 1 to 63 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return refuse(field, "may hold only letters, digits and '-'");
    }
    Ok(())
}

/// The `sdkappid` of Tencent IoT Hub's documented MQTT key authentication.
pub const TENCENT_SDK_APP_ID: u32 = 12010126;

/// A Tencent IoT Hub device with key (PSK) authentication.
#[derive(Clone)]
pub struct TencentDevice {
    pub product_id: String,
    pub device_name: String,
    /// The device PSK, Base64 as the console shows it. Never printed.
    pub device_psk: String,
    /// The `sdkappid` field of the user name ([`TENCENT_SDK_APP_ID`] by default).
    pub sdk_app_id: u32,
    pub sign_method: SignMethod,
}

debug_redacting!(TencentDevice {
    product_id,
    device_name,
    device_psk: redacted,
    sdk_app_id,
    sign_method,
});

impl TencentDevice {
    /// A device with the defaults: sdkappid 12010126, HMAC-SHA256.
    pub fn new(product_id: &str, device_name: &str, device_psk: &str) -> TencentDevice {
        TencentDevice {
            product_id: product_id.to_string(),
            device_name: device_name.to_string(),
            device_psk: device_psk.to_string(),
            sdk_app_id: TENCENT_SDK_APP_ID,
            sign_method: SignMethod::default(),
        }
    }

    /// The credentials for connection id `conn_id` (5 letters or digits, random per
    /// connect: [`tencent_conn_id`]) valid until `expiry` (Unix seconds; some SDKs
    /// send milliseconds).
    pub fn sign(&self, conn_id: &str, expiry: u64) -> Result<Credentials, CredentialError> {
        check_field("product id", &self.product_id)?;
        check_field("device name", &self.device_name)?;
        check_secret("device PSK", &self.device_psk)?;
        if conn_id.len() != 5 || !conn_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return refuse("connection id", "must be 5 letters or digits");
        }
        check_time("expiry", expiry)?;
        let psk = base64::engine::general_purpose::STANDARD
            .decode(self.device_psk.trim())
            .or_else(|_| refuse("device PSK", "is not Base64"))?;
        if psk.is_empty() {
            return refuse("device PSK", "is empty once decoded");
        }
        let client_id = format!("{}{}", self.product_id, self.device_name);
        let username = format!("{client_id};{};{conn_id};{expiry}", self.sdk_app_id);
        let sign = self.sign_method.sign_hex(&psk, username.as_bytes());
        Ok(Credentials {
            client_id,
            password: format!("{sign};{}", self.sign_method.name()),
            username,
        })
    }
}

/// The MQTT host of a Tencent IoT Hub product: `{ProductId}.iotcloud.tencentdevices.com`
/// (port 1883, 8883 with TLS).
pub fn tencent_host(product_id: &str) -> Result<String, CredentialError> {
    check_host_label("product id", product_id)?;
    Ok(format!("{product_id}.iotcloud.tencentdevices.com"))
}

/// A fresh connection id for [`TencentDevice::sign`]: 5 random letters and digits.
pub fn tencent_conn_id() -> String {
    const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 5];
    crate::random::fill(&mut bytes);
    bytes
        .iter()
        .map(|&b| ALNUM[usize::from(b) % ALNUM.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed by the vendors' own device SDKs for these inputs, by
    // `scripts/vendor-vectors.py` (its docstring says how to install them): the SDK
    // is driven through its connection set-up with the clock fixed, and what it
    // hands to paho-mqtt is recorded.

    /// aliyun-iot-linkkit 1.2.13 (PyPI), `LinkKit.__config_mqtt_client_internal`:
    /// client id `{pk}&{dn}`, HMAC-SHA1, timestamp in seconds. Its client id carries
    /// more fields than ours (`ext=1,_ss=1,lan=Python,...`), so the user name and
    /// password are compared, and the host of `__generate_endpoint`.
    #[test]
    fn alibaba_hmacsha1_as_the_python_sdk() {
        // Product key, device name, device secret, timestamp, the SDK's password.
        let vectors = [
            (
                "a1B2c3D4e5F",
                "sensor-01",
                "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U",
                1700000000,
                "44a1a7816039b48ee97e2ac5fcc34519c99597b2",
            ),
            (
                "hm1PqLz8Wc2",
                "valve_7",
                "0123456789abcdef0123456789abcdef",
                1712345678,
                "0a57b65ac108b04603e9ce2a6fadd9ff4ed9f631",
            ),
        ];
        // The SDK's device: client id `{pk}&{dn}`, HMAC-SHA1.
        let sdk_device = |pk: &str, dn: &str, secret: &str| {
            let mut d = AlibabaDevice::new(pk, dn, secret);
            d.client_id = Some(format!("{pk}&{dn}"));
            d.sign_method = SignMethod::HmacSha1;
            d
        };
        for (pk, dn, secret, timestamp, password) in vectors {
            let c = sdk_device(pk, dn, secret).sign(timestamp).unwrap();
            assert_eq!(c.username, format!("{dn}&{pk}"), "{dn}");
            assert_eq!(c.password, password, "{dn}");
        }
        let (pk, dn, secret, _, password) = vectors[0];
        let mut d = sdk_device(pk, dn, secret);
        assert_eq!(
            d.sign(1700000000).unwrap().client_id,
            "a1B2c3D4e5F&sensor-01|securemode=2,signmethod=hmacsha1,timestamp=1700000000|"
        );
        d.tls = false;
        let c = d.sign(1700000000).unwrap();
        assert_eq!(c.password, password);
        assert!(c.client_id.contains("|securemode=3,"));
        assert_eq!(
            alibaba_public_host("a1B2c3D4e5F", "cn-shanghai").unwrap(),
            "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com"
        );
        assert_eq!(
            alibaba_instance_host("iot-06z00abc1de2fgh").unwrap(),
            "iot-06z00abc1de2fgh.mqtt.iothub.aliyuncs.com"
        );
    }

    /// aliyun-iot-linkkit 1.2.13, `H2Client.__fill_auth_header`: the same signature
    /// with HMAC-SHA256 and a millisecond timestamp, for client id `{pk}.{dn}` (the
    /// LinkSDK C 4.x default, and ours).
    #[test]
    fn alibaba_hmacsha256_as_the_python_sdk() {
        let d = AlibabaDevice::new(
            "a1B2c3D4e5F",
            "sensor-01",
            "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U",
        );
        let c = d.sign(1700000000123).unwrap();
        assert_eq!(
            c.password,
            "6c7ec5593a51edd2896a0a671054a08bf9ca882d1beadcea1097bdbbaa565bc2"
        );
        assert_eq!(
            c.client_id,
            "a1B2c3D4e5F.sensor-01|securemode=2,signmethod=hmacsha256,timestamp=1700000000123|"
        );
        let mut d = d;
        d.custom_rrpc = true;
        assert!(d
            .sign(1)
            .unwrap()
            .client_id
            .ends_with(",timestamp=1,ext=3|"));
    }

    /// tencent-iot-device 1.0.0 (PyPI), `AsyncConnClient._generate_pwss`: sdkappid
    /// 21010406, the expiry field a millisecond time, HMAC-SHA1, the connection id
    /// drawn by `random.sample` (fixed here).
    #[test]
    fn tencent_hmacsha1_as_the_python_sdk() {
        let mut d = TencentDevice::new("ABCDEFGHIJ", "dev001", "bXlfZGV2aWNlX3BzazEyMw==");
        d.sdk_app_id = 21010406;
        d.sign_method = SignMethod::HmacSha1;
        let c = d.sign("Ab3dE", 1700000000123).unwrap();
        assert_eq!(c.client_id, "ABCDEFGHIJdev001");
        assert_eq!(c.username, "ABCDEFGHIJdev001;21010406;Ab3dE;1700000000123");
        assert_eq!(
            c.password,
            "507ae7d8fe4f61be26963ba8badc47f29aab108c;hmacsha1"
        );

        let mut d = TencentDevice::new("Q7X0N2K1ZP", "pump-22", "c2VjcmV0LXBzay12YWx1ZS0wOTg3");
        d.sdk_app_id = 21010406;
        d.sign_method = SignMethod::HmacSha1;
        let c = d.sign("z9Y8x", 1712345678901).unwrap();
        assert_eq!(c.username, "Q7X0N2K1ZPpump-22;21010406;z9Y8x;1712345678901");
        assert_eq!(
            c.password,
            "5a563bf1b30c859ecc7a76c34338a7628cceb882;hmacsha1"
        );
    }

    /// HMAC-SHA256 with the documented sdkappid: no device SDK on a registry signs
    /// Tencent MQTT connects with SHA-256, so this value comes from Python's `hmac`
    /// module with the formula of Tencent's documentation:
    /// `hmac.new(base64.b64decode(psk), username.encode(), hashlib.sha256).hexdigest()`.
    #[test]
    fn tencent_hmacsha256_documented_formula() {
        let d = TencentDevice::new("ABCDEFGHIJ", "dev001", "bXlfZGV2aWNlX3BzazEyMw==");
        let c = d.sign("Ab3dE", 1700003600).unwrap();
        assert_eq!(c.username, "ABCDEFGHIJdev001;12010126;Ab3dE;1700003600");
        assert_eq!(c.password, TENCENT_SHA256_EXPECTED);
        assert_eq!(
            tencent_host("ABCDEFGHIJ").unwrap(),
            "ABCDEFGHIJ.iotcloud.tencentdevices.com"
        );
    }

    const TENCENT_SHA256_EXPECTED: &str =
        "4d841733dc15c85047eb9ac7fbedd85ca3cd92ebbe75d7bd6756d5aa7298e0f0;hmacsha256";

    #[test]
    fn bad_input_is_refused_by_field_without_the_secret() {
        let secret = "TopSecretValue42";
        let ok = AlibabaDevice::new("pk1", "dev1", secret);
        let cases: Vec<(AlibabaDevice, u64, &str)> = vec![
            (
                AlibabaDevice::new("", "dev1", secret),
                1,
                "product key is empty",
            ),
            (
                AlibabaDevice::new("pk/1", "dev1", secret),
                1,
                "product key contains the topic separator '/'",
            ),
            (
                AlibabaDevice::new("pk1", "dev+", secret),
                1,
                "device name contains an MQTT wildcard ('+' or '#')",
            ),
            (
                AlibabaDevice::new("pk1", "de\0v", secret),
                1,
                "device name contains a NUL byte",
            ),
            (
                AlibabaDevice::new("pk1", "dev|1", secret),
                1,
                "device name contains the separator '|'",
            ),
            (
                AlibabaDevice::new("pk1", "dev1", ""),
                1,
                "device secret is empty",
            ),
            (ok.clone(), 0, "timestamp must be 1 to 9999999999999"),
            (
                ok.clone(),
                MAX_TIME + 1,
                "timestamp must be 1 to 9999999999999",
            ),
        ];
        for (d, ts, want) in cases {
            let e = d.sign(ts).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        let mut d = ok.clone();
        d.client_id = Some("a,b".into());
        assert_eq!(
            d.sign(1).unwrap_err().to_string(),
            "client id contains the separator ','"
        );
        assert!(!format!("{ok:?}").contains(secret));
        assert!(!format!("{:?}", ok.sign(1).unwrap()).contains(&ok.sign(1).unwrap().password));

        let psk = "bXlfZGV2aWNlX3BzazEyMw==";
        let t = TencentDevice::new("PID", "dev1", psk);
        assert_eq!(
            t.sign("abcd", 1).unwrap_err().to_string(),
            "connection id must be 5 letters or digits"
        );
        assert_eq!(
            t.sign("ab;de", 1).unwrap_err().to_string(),
            "connection id must be 5 letters or digits"
        );
        assert_eq!(
            t.sign("abcde", 0).unwrap_err().to_string(),
            "expiry must be 1 to 9999999999999"
        );
        let bad = TencentDevice::new("PID", "dev1", "not base64!");
        assert_eq!(
            bad.sign("abcde", 1).unwrap_err().to_string(),
            "device PSK is not Base64"
        );
        assert!(!bad
            .sign("abcde", 1)
            .unwrap_err()
            .to_string()
            .contains("not base64!"));
        let empty = TencentDevice::new("PID", "dev1", "");
        assert_eq!(
            empty.sign("abcde", 1).unwrap_err().to_string(),
            "device PSK is empty"
        );
        assert!(!format!("{t:?}").contains(psk));
        assert_eq!(
            format!("{t:?}"),
            "TencentDevice { product_id: \"PID\", device_name: \"dev1\", device_psk: \"<redacted>\", \
             sdk_app_id: 12010126, sign_method: HmacSha256 }"
        );
        assert!(alibaba_public_host("pk1", "cn.shanghai").is_err());
        assert!(alibaba_instance_host("").is_err());
        assert!(tencent_host("a/b").is_err());
    }

    #[test]
    fn conn_ids_are_five_alphanumerics_and_vary() {
        let ids: Vec<String> = (0..20).map(|_| tencent_conn_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 5);
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert!(distinct.len() > 15, "{ids:?}");
    }

    #[test]
    fn sign_method_names() {
        assert_eq!(
            SignMethod::from_name("HmacSHA1"),
            Some(SignMethod::HmacSha1)
        );
        assert_eq!(
            SignMethod::from_name("hmacsha256"),
            Some(SignMethod::HmacSha256)
        );
        assert_eq!(SignMethod::from_name("md5"), None);
    }
}
