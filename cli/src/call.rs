//! `rrpc call`: one RRpc call through librrpc's `Caller`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use rrpc::caller::{
    check_protocol, decode_request_base64, validate_params, CODE_INVALID_PARAMETER,
    CODE_SYSTEM_EXCEPTION,
};
use rrpc::presence::PresenceTopics;
use rrpc::{CallParams, Caller, CallerConfig, Dialect, RrpcCode, RrpcResponse};

use crate::dialect_file::DialectOpts;
use crate::{
    local_response, Conn, EXIT_HALFCONN, EXIT_INVALID, EXIT_OFFLINE, EXIT_SYSTEM, EXIT_TIMEOUT,
    EXIT_UNKNOWN,
};

pub const AFTER_HELP: &str = "\
Output (stdout): the RRpc API's response, in JSON (one line) or XML, with the fields RequestId,
Success, Code and ErrorMessage (when Success is false), MessageId, RrpcCode, PayloadBase64Byte
(the device's reply, Base64), and ReplyStatus (an extension: the status of the device's reply
topic, for dialects whose reply carries one, such as azure; Tencent's code for tencent-action).
Errors are also explained in one line on stderr.

Envelope dialects (tencent-action, thingsboard-gateway) carry the message id and --name (the
actionId, the gateway's data.method) in a JSON body around the payload, which must then be
one JSON value (empty means {}); the reply's response (Tencent) or data (ThingsBoard) is
PayloadBase64Byte. A thingsboard-gateway call names the sub-device with --device-name; its
MessageId is a positive 32-bit number, as ThingsBoard's own ids.

RrpcCode:
  SUCCESS   the device answered in time
  TIMEOUT   no answer within --timeout
  OFFLINE   the device's presence says offline: nothing was sent, the answer comes at once
  HALFCONN  the device was online when the request went out and its connection dropped
            (its last will arrived) before it answered
  UNKNOWN   this caller's own connection to the broker failed during the call
OFFLINE and HALFCONN need devices that announce their presence (`rrpc device` does,
librrpc devices with presence on do); other devices end in SUCCESS or TIMEOUT.

Exit status:
  0  SUCCESS
  2  invalid parameters: Success=false with Code InvalidParameter, or a usage error
     (then only clap's message, on stderr)
  3  TIMEOUT
  4  OFFLINE
  5  HALFCONN
  6  UNKNOWN
  7  broker unreachable or another system error (Success=false, Code iot.system.SystemException)

Examples:
  rrpc call --port 1883 --product-key a1B2c3 --device-name dev1 --payload hello --timeout 3000
  rrpc call --port 1883 --product-key a1B2c3 --device-name dev1 \\
            --request-base64 aGVsbG8gd29ybGQ= --timeout 1000 --format xml
  rrpc call --port 1883 --product-key a1B2c3 --device-name dev1 --payload on --timeout 2000 \\
            --topic /a1B2c3/dev1/user/update                      # custom RRPC topic
  rrpc call --port 1883 --dialect tencent --product-key PRODID --device-name test01 --payload x
  rrpc call --port 1883 --dialect azure --name reboot --payload '{}'
  rrpc call --port 1883 --dialect tencent-action --product-key PRODID --device-name test01 \\
            --name reboot --payload '{\"delay\":1}'
  rrpc call --port 1883 --dialect thingsboard-gateway --device-name 'Sensor A' \\
            --name toggle_gpio --payload '{\"pin\":1}'
  rrpc call --port 1883 --mqtt-version 5 --dialect mqtt5 --topic plant/m7/rpc --payload x
  rrpc call --port 1883 --dialect-file acme.dialect --dialect acme --device-name dev1 --payload x";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

#[derive(Args, Debug)]
#[command(
    after_help = AFTER_HELP,
    group(ArgGroup::new("request").required(true).args(["payload", "request_base64"]))
)]
pub struct CallArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// ProductKey (Tencent: productId) of the device, for dialects whose topics carry one.
    #[arg(long, default_value = "")]
    pub product_key: String,
    /// DeviceName of the device, for dialects whose topics carry one.
    #[arg(long, default_value = "")]
    pub device_name: String,
    /// The request, as text.
    #[arg(long, value_name = "TEXT")]
    pub payload: Option<String>,
    /// The request, Base64-encoded (the API's RequestBase64Byte): for binary requests.
    #[arg(long, value_name = "B64")]
    pub request_base64: Option<String>,
    /// How long to wait for the answer, in ms: 1000 to 8000 for alibaba and
    /// alibaba-custom (required there); other dialects wait their default
    /// (tencent 4000) unless told otherwise.
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u32>,
    #[command(flatten)]
    pub dialect: DialectOpts,
    /// The method, service or command name, for dialects whose request topic
    /// or envelope carries one (alibaba-service, azure, tencent-action's actionId,
    /// thingsboard-gateway's method, or a --dialect-file dialect with {name}).
    #[arg(long, value_name = "METHOD")]
    pub name: Option<String>,
    /// Custom RRPC topic (Alibaba), such as /a1B2c3/dev1/user/update; for
    /// mqtt5 the topic the request is published on (no wildcards).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// mqtt5: the Response Topic the reply is asked on (default
    /// rrpc/caller/{client id}/response).
    #[arg(long, value_name = "TOPIC")]
    pub response_topic: Option<String>,
    /// JT/T 808 pass-through type: 0, 11, 65, 66 or 240 to 255.
    #[arg(long, value_name = "N")]
    pub content_type: Option<u32>,
    /// Output format of the response.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// How long to wait for the broker, in ms.
    #[arg(long, value_name = "MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u32).range(1..=600_000))]
    pub connect_timeout_ms: u32,
    /// Do not follow device presence (OFFLINE and HALFCONN then never happen).
    #[arg(long)]
    pub no_presence: bool,
}

/// The exit status for a response (see AFTER_HELP).
pub fn exit_status(r: &RrpcResponse) -> u8 {
    if !r.success {
        return if r.code.as_deref() == Some(CODE_INVALID_PARAMETER) {
            EXIT_INVALID
        } else {
            EXIT_SYSTEM
        };
    }
    match r.rrpc_code {
        Some(RrpcCode::Success) => 0,
        Some(RrpcCode::Timeout) => EXIT_TIMEOUT,
        Some(RrpcCode::Offline) => EXIT_OFFLINE,
        Some(RrpcCode::HalfConn) => EXIT_HALFCONN,
        Some(RrpcCode::Unknown) => EXIT_UNKNOWN,
        None => EXIT_SYSTEM,
    }
}

fn print_response(r: &RrpcResponse, format: Format) {
    match format {
        Format::Json => println!("{}", r.to_json()),
        Format::Xml => print!("{}", r.to_xml()),
    }
}

/// Prints a response made here, explains it on stderr, and gives its exit status.
fn fail(code: &str, message: String, format: Format) -> ExitCode {
    eprintln!("rrpc call: {message}");
    let r = local_response(code, message);
    print_response(&r, format);
    ExitCode::from(exit_status(&r))
}

pub fn run(a: CallArgs) -> ExitCode {
    let payload: Vec<u8> = match (&a.payload, &a.request_base64) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(b64)) => match decode_request_base64(b64) {
            Ok(p) => p,
            Err(e) => return fail(CODE_INVALID_PARAMETER, e, a.format),
        },
        (None, None) => unreachable!("clap requires one of --payload and --request-base64"),
    };
    let dialect = match a.dialect.resolve() {
        Ok(d) => d,
        Err(e) => return fail(CODE_INVALID_PARAMETER, e, a.format),
    };
    let params = CallParams {
        dialect,
        product_key: &a.product_key,
        device_name: &a.device_name,
        payload: &payload,
        timeout_ms: a.timeout,
        custom_topic: a.topic.as_deref(),
        content_type: a.content_type,
        name: a.name.as_deref(),
    };
    let mut cfg = CallerConfig::new(a.conn.host.clone(), a.conn.port);
    cfg.mqtt.username = a.conn.username.clone();
    cfg.mqtt.password = match a.conn.password() {
        Ok(p) => p,
        Err(why) => return fail(CODE_INVALID_PARAMETER, why, a.format),
    };
    cfg.mqtt.connect_timeout_ms = a.connect_timeout_ms;
    cfg.mqtt.tls = a.conn.tls_config();
    cfg.mqtt.protocol = a.conn.mqtt_version;
    cfg.presence = (!a.no_presence).then(PresenceTopics::default);
    cfg.response_topic = a.response_topic.clone();
    // The library checks the parameters again in `call`; checking first means bad
    // input is reported as such even when the broker is down.
    if let Err(why) = validate_params(&params, cfg.max_payload)
        .and_then(|()| check_protocol(dialect, cfg.mqtt.protocol))
        .and_then(|()| cfg.validate_bounds())
    {
        return fail(CODE_INVALID_PARAMETER, why, a.format);
    }

    // Belt and braces: whatever happens below, the process ends shortly after the
    // connect timeout plus the call timeout.
    let call_ms = params
        .timeout_ms
        .unwrap_or_else(|| dialect.default_timeout_ms());
    let limit_ms = u64::from(cfg.mqtt.connect_timeout_ms) + u64::from(call_ms) + 3000;
    let format = a.format;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(limit_ms));
        let msg = format!(
            "A system exception occurred: no outcome within {limit_ms} ms (connect timeout + call timeout + 3 s)"
        );
        eprintln!("rrpc call: {msg}");
        print_response(&local_response(CODE_SYSTEM_EXCEPTION, msg), format);
        std::process::exit(i32::from(EXIT_SYSTEM));
    });

    let caller = match Caller::connect(cfg) {
        Ok(c) => c,
        Err(rrpc::caller::CallerError::InvalidArgument(m)) => {
            return fail(CODE_INVALID_PARAMETER, m, a.format)
        }
        Err(e) => {
            return fail(
                CODE_SYSTEM_EXCEPTION,
                format!("A system exception occurred: cannot reach the broker: {e}"),
                a.format,
            )
        }
    };
    let r = caller.call(&params);
    let status = exit_status(&r);
    match (&r.rrpc_code, &r.error_message) {
        (Some(RrpcCode::Success), _) => {}
        (Some(code), _) => eprintln!(
            "rrpc call: {code}: {}",
            match code {
                RrpcCode::Timeout => format!("no answer within {call_ms} ms"),
                RrpcCode::Offline => "the device is offline (its presence says so)".to_string(),
                RrpcCode::HalfConn => "the device's connection dropped during the call".to_string(),
                _ => "the connection to the broker failed during the call".to_string(),
            }
        ),
        (None, Some(m)) => eprintln!("rrpc call: {m}"),
        (None, None) => {}
    }
    if r.rrpc_code == Some(RrpcCode::Unknown) && params.dialect == Dialect::Tencent {
        eprintln!("rrpc call: note: some brokers (rumqttd) drop clients that subscribe to '$' topics such as Tencent's $rrpc/txd/...; Mosquitto accepts them");
    }
    print_response(&r, a.format);
    drop(caller); // disconnects cleanly (bounded by the library)
    ExitCode::from(status)
}
