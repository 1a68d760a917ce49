//! `rrpc_credentials_*`: signed MQTT credentials of cloud devices, written into a
//! caller-provided `rrpc_credentials` (no allocation to free).

use std::ffi::c_char;

use super::args::{arg_flag, arg_opt_str, arg_out, arg_str};
use super::boundary::boundary;
use super::family::settings_init;
use super::misc::rrpc_bool;
use super::signed::copy_field;
pub use super::signed::{
    rrpc_credentials, RRPC_CREDENTIALS_HOST_SIZE, RRPC_CREDENTIALS_ID_SIZE,
    RRPC_CREDENTIALS_PASSWORD_SIZE,
};
use super::sized::{read_settings, settings, Settings};
use super::status::{rrpc_status, Failure};
use crate::credentials::{
    alibaba_instance_host, alibaba_public_host, tencent_conn_id, tencent_host, AlibabaDevice,
    Credentials, SignMethod, TencentDevice, TENCENT_SDK_APP_ID,
};

/// The HMAC of a signature. Pass these values where a field is `uint32_t
/// sign_method`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrpc_sign_method {
    /// HMAC-SHA256 (default): Alibaba LinkSDK C 4.x, Tencent's C SDK.
    RRPC_SIGN_METHOD_HMACSHA256 = 0,
    /// HMAC-SHA1: older SDKs.
    RRPC_SIGN_METHOD_HMACSHA1 = 1,
}

/// An `rrpc_sign_method` as C passes it.
pub type rrpc_sign_method_raw = u32;

fn sign_method(v: rrpc_sign_method_raw) -> Result<SignMethod, Failure> {
    match v {
        0 => Ok(SignMethod::HmacSha256),
        1 => Ok(SignMethod::HmacSha1),
        _ => Err(Failure::new(
            rrpc_status::RRPC_STATUS_INVALID_ARGUMENT,
            format!("sign_method {v} is neither RRPC_SIGN_METHOD_HMACSHA256 nor _HMACSHA1"),
        )),
    }
}

/// An Alibaba IoT Platform device with device-secret authentication (also the
/// white labels that copy the scheme, such as Tuya's); fill with
/// `rrpc_credentials_alibaba_params_init`.
#[repr(C)]
pub struct rrpc_credentials_alibaba_params {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_credentials_alibaba_params_init`.
    pub struct_size: u32,
    /// ProductKey. Required.
    pub product_key: *const c_char,
    /// DeviceName. Required.
    pub device_name: *const c_char,
    /// DeviceSecret. Required; never logged or put into an error message.
    pub device_secret: *const c_char,
    /// The `{id}` of the client id, or NULL (default) for `{ProductKey}.{DeviceName}`.
    pub client_id: *const c_char,
    /// RRPC_SIGN_METHOD_HMACSHA256 (default) or RRPC_SIGN_METHOD_HMACSHA1.
    pub sign_method: rrpc_sign_method_raw,
    /// Signature time: Unix ms (seconds are accepted too), 1 to 9999999999999.
    /// Required (default 0).
    pub timestamp: u64,
    /// TLS: true (default) for securemode 2 and port 8883; false for securemode 3, 1883.
    pub tls: rrpc_bool,
    /// The device serves a custom RRPC topic (`ext=3` in the client id): true, or
    /// false (default).
    pub custom_rrpc: rrpc_bool,
    /// Region of the public instance for the host, or NULL for "cn-shanghai".
    pub region: *const c_char,
    /// Enterprise instance id, or NULL (default) for the public instance.
    pub instance_id: *const c_char,
}

/// A Tencent IoT Hub device with key (PSK) authentication; fill with
/// `rrpc_credentials_tencent_params_init`.
#[repr(C)]
pub struct rrpc_credentials_tencent_params {
    /// The size of this struct as the application knows it; set by
    /// `rrpc_credentials_tencent_params_init`.
    pub struct_size: u32,
    /// ProductId. Required.
    pub product_id: *const c_char,
    /// DeviceName. Required.
    pub device_name: *const c_char,
    /// The device PSK in Base64, as the console shows it. Required; never logged.
    pub device_psk: *const c_char,
    /// Connection id, 5 letters or digits, or NULL (default) for a random one.
    pub conn_id: *const c_char,
    /// The `sdkappid` of the user name. Default 12010126.
    pub sdk_app_id: u32,
    /// RRPC_SIGN_METHOD_HMACSHA256 (default) or RRPC_SIGN_METHOD_HMACSHA1.
    pub sign_method: rrpc_sign_method_raw,
    /// When the signature expires: Unix seconds, 1 to 9999999999999. Required
    /// (default 0).
    pub expiry: u64,
    /// TLS: true (default) for port 8883; false for 1883.
    pub tls: rrpc_bool,
}

settings!(rrpc_credentials_alibaba_params {
    struct_size,
    product_key,
    device_name,
    device_secret,
    client_id,
    sign_method,
    timestamp,
    tls,
    custom_rrpc,
    region,
    instance_id,
} defaults {
    sign_method: rrpc_sign_method::RRPC_SIGN_METHOD_HMACSHA256 as u32,
    tls: 1,
});

settings!(rrpc_credentials_tencent_params {
    struct_size,
    product_id,
    device_name,
    device_psk,
    conn_id,
    sdk_app_id,
    sign_method,
    expiry,
    tls,
} defaults {
    sdk_app_id: TENCENT_SDK_APP_ID,
    sign_method: rrpc_sign_method::RRPC_SIGN_METHOD_HMACSHA256 as u32,
    tls: 1,
});

/// Fills `out_params` with the defaults (see `rrpc_credentials_alibaba_params`).
///
/// @param[out] out_params  the struct to fill.
/// @param[in]  params_size `sizeof *out_params`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_params` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `params_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_credentials_alibaba_params_init(
    out_params: *mut rrpc_credentials_alibaba_params,
    params_size: usize,
) -> rrpc_status {
    // SAFETY: `params_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_credentials_alibaba_params_init",
            out_params,
            params_size,
            "out_params",
        )
    }
}

/// Fills `out_params` with the defaults (see `rrpc_credentials_tencent_params`).
///
/// @param[out] out_params  the struct to fill.
/// @param[in]  params_size `sizeof *out_params`.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER `out_params` is NULL.
/// @retval RRPC_STATUS_STRUCT_SIZE  `params_size` is larger than this library's
///                                  struct, or smaller than 4.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_credentials_tencent_params_init(
    out_params: *mut rrpc_credentials_tencent_params,
    params_size: usize,
) -> rrpc_status {
    // SAFETY: `params_size` writable bytes per the documented contract.
    unsafe {
        settings_init(
            "rrpc_credentials_tencent_params_init",
            out_params,
            params_size,
            "out_params",
        )
    }
}

/// Signs an Alibaba device's credentials: client id
/// `{id}|securemode=2,signmethod=hmacsha256,timestamp={ts}|`, user name
/// `{DeviceName}&{ProductKey}`, password the hex HMAC of
/// `clientId{id}deviceName{dn}productKey{pk}timestamp{ts}` keyed with the
/// DeviceSecret; host `{ProductKey}.iot-as-mqtt.{region}.aliyuncs.com` or
/// `{instanceId}.mqtt.iothub.aliyuncs.com`. Sign again at every connect.
///
/// @param[in]  params          the device, from `rrpc_credentials_alibaba_params_init`.
/// @param[out] out_credentials receives the credentials; written only on success.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER      `params`, `out_credentials` or a required
///                                       string is NULL.
/// @retval RRPC_STATUS_INVALID_UTF8      a string is not UTF-8.
/// @retval RRPC_STATUS_INVALID_IDENTITY  product key, device name or client id is
///         empty, longer than 128 bytes, or holds `+ # /`, a control character or
///         a separator of the signed strings (`& | , ; =`; `&` is allowed in the
///         client id).
/// @retval RRPC_STATUS_INVALID_ARGUMENT  empty or over-long secret, timestamp out
///         of range, unknown sign_method, or a region or instance id that is not
///         a host name label. The message names the field, never the secret.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_credentials_alibaba(
    params: *const rrpc_credentials_alibaba_params,
    out_credentials: *mut rrpc_credentials,
) -> rrpc_status {
    // SAFETY: pointer contracts documented above.
    unsafe {
        sign_into(
            "rrpc_credentials_alibaba",
            params,
            out_credentials,
            sign_alibaba,
        )
    }
}

/// The Alibaba device's credentials.
///
/// # Safety
/// The strings of `p` must be NULL or NUL-terminated.
unsafe fn sign_alibaba(p: &rrpc_credentials_alibaba_params) -> Result<Signed, Failure> {
    // SAFETY: the strings' contracts are the caller's, as documented.
    let (pk, dn, secret, id, region, instance) = unsafe {
        (
            arg_str(p.product_key, "product_key")?,
            arg_str(p.device_name, "device_name")?,
            arg_str(p.device_secret, "device_secret")?,
            arg_opt_str(p.client_id, "client_id")?,
            arg_opt_str(p.region, "region")?,
            arg_opt_str(p.instance_id, "instance_id")?,
        )
    };
    let mut d = AlibabaDevice::new(pk, dn, secret);
    d.client_id = id.map(str::to_string);
    d.sign_method = sign_method(p.sign_method)?;
    d.tls = arg_flag(p.tls, "params->tls")?;
    d.custom_rrpc = arg_flag(p.custom_rrpc, "params->custom_rrpc")?;
    let credentials = d.sign(p.timestamp)?;
    let host = match instance {
        Some(i) => alibaba_instance_host(i)?,
        None => alibaba_public_host(pk, region.unwrap_or("cn-shanghai"))?,
    };
    Ok(Signed {
        credentials,
        host,
        tls: d.tls,
    })
}

/// Signs a Tencent IoT Hub device's credentials: client id
/// `{ProductId}{DeviceName}`, user name
/// `{ProductId}{DeviceName};{sdkappid};{connid};{expiry}`, password the hex HMAC
/// of the user name keyed with the Base64-decoded PSK, then `;hmacsha256` or
/// `;hmacsha1`; host `{ProductId}.iotcloud.tencentdevices.com`. Sign again at
/// every connect, with a fresh connection id.
///
/// @param[in]  params          the device, from `rrpc_credentials_tencent_params_init`.
/// @param[out] out_credentials receives the credentials; written only on success.
/// @retval RRPC_STATUS_OK
/// @retval RRPC_STATUS_NULL_POINTER      `params`, `out_credentials` or a required
///                                       string is NULL.
/// @retval RRPC_STATUS_INVALID_UTF8      a string is not UTF-8.
/// @retval RRPC_STATUS_INVALID_IDENTITY  product id or device name is empty,
///         longer than 128 bytes, or holds `+ # /`, a control character or one of
///         `& | , ; =`; or the product id is not a host name label.
/// @retval RRPC_STATUS_INVALID_ARGUMENT  empty PSK, a PSK that is not Base64, a
///         connection id that is not 5 letters or digits, expiry out of range, or
///         unknown sign_method. The message names the field, never the PSK.
#[no_mangle]
#[must_use]
pub extern "C" fn rrpc_credentials_tencent(
    params: *const rrpc_credentials_tencent_params,
    out_credentials: *mut rrpc_credentials,
) -> rrpc_status {
    // SAFETY: pointer contracts documented above.
    unsafe {
        sign_into(
            "rrpc_credentials_tencent",
            params,
            out_credentials,
            sign_tencent,
        )
    }
}

/// The Tencent device's credentials.
///
/// # Safety
/// The strings of `p` must be NULL or NUL-terminated.
unsafe fn sign_tencent(p: &rrpc_credentials_tencent_params) -> Result<Signed, Failure> {
    // SAFETY: the strings' contracts are the caller's, as documented.
    let (pid, dn, psk, conn) = unsafe {
        (
            arg_str(p.product_id, "product_id")?,
            arg_str(p.device_name, "device_name")?,
            arg_str(p.device_psk, "device_psk")?,
            arg_opt_str(p.conn_id, "conn_id")?,
        )
    };
    let mut d = TencentDevice::new(pid, dn, psk);
    d.sdk_app_id = p.sdk_app_id;
    d.sign_method = sign_method(p.sign_method)?;
    let conn = conn.map_or_else(tencent_conn_id, str::to_string);
    let credentials = d.sign(&conn, p.expiry)?;
    Ok(Signed {
        credentials,
        host: tencent_host(pid)?,
        tls: arg_flag(p.tls, "params->tls")?,
    })
}

/// Signed credentials, the broker's host, and whether the port is TLS's.
struct Signed {
    credentials: Credentials,
    host: String,
    tls: bool,
}

/// Both signing functions: reads the parameters at `params`, signs them with
/// `sign` and writes the result to `*out` (only on success).
///
/// # Safety
/// `params` must be NULL or point to settings of their `struct_size` bytes
/// whose strings are NULL or NUL-terminated; `out` NULL or writable.
unsafe fn sign_into<P: Settings>(
    function: &'static str,
    params: *const P,
    out: *mut rrpc_credentials,
    sign: unsafe fn(&P) -> Result<Signed, Failure>,
) -> rrpc_status {
    boundary(function, || {
        // SAFETY: forwarded contract.
        let p = unsafe { read_settings(params, "params") }?;
        let out = unsafe { arg_out(out, "out_credentials") }?;
        let s = unsafe { sign(&p) }?;
        fill(out, &s)
    })
}

/// Writes the credentials into `out`: every string checked to fit first, so a
/// failure writes nothing.
fn fill(out: &mut rrpc_credentials, s: &Signed) -> Result<(), Failure> {
    let (c, host) = (&s.credentials, s.host.as_str());
    let fits = |name: &str, s: &str, size: usize| {
        if s.len() < size {
            Ok(())
        } else {
            Err(Failure::new(
                rrpc_status::RRPC_STATUS_INTERNAL,
                format!(
                    "{name} of {} bytes does not fit its {size}-byte field",
                    s.len()
                ),
            ))
        }
    };
    fits("client_id", &c.client_id, RRPC_CREDENTIALS_ID_SIZE)?;
    fits("username", &c.username, RRPC_CREDENTIALS_ID_SIZE)?;
    fits("password", &c.password, RRPC_CREDENTIALS_PASSWORD_SIZE)?;
    fits("host", host, RRPC_CREDENTIALS_HOST_SIZE)?;
    copy_field(&mut out.client_id, &c.client_id);
    copy_field(&mut out.username, &c.username);
    copy_field(&mut out.password, &c.password);
    copy_field(&mut out.host, host);
    out.port = if s.tls { 8883 } else { 1883 };
    Ok(())
}
