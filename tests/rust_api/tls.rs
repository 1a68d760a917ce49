//! TLS end to end through Mosquitto configured by the test, with a CA, server and
//! client certificates generated here (never committed): a device and a caller on
//! the Rust API over TLS, mutual TLS, reconnect after a broker restart, and every
//! failure with its reason: unknown CA, expired certificate, another host name,
//! malformed or missing PEM, a key that does not match its certificate, TLS to a
//! plain port and plain TCP to a TLS port (an error within the connect timeout).

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::SanType;
use rrpc::caller::{Caller, CallerConfig, CallerError, RrpcCode};
use rrpc::tls::TlsConfig;
use rrpc::{Client, ClientConfig, ClientError};

use crate::common;
use crate::common::device;
use crate::common::ffi::{assert_ok, c_defaults};
use crate::common::pki::{tls_broker, Pki};
use crate::common::Broker;

const PK: &str = "a1TlsPk";

fn tls_to(ca: &Path) -> TlsConfig {
    TlsConfig {
        ca_file: Some(ca.to_path_buf()),
        ..TlsConfig::default()
    }
}

fn device_config(port: u16, tls: TlsConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new("127.0.0.1", port);
    cfg.mqtt.tls = Some(tls);
    cfg.mqtt.connect_timeout_ms = 3000;
    cfg
}

/// An echo device over TLS, started.
fn device(port: u16, tls: TlsConfig, dn: &str) -> Client {
    device::started_echo_device(device_config(port, tls), &[device::system(PK, dn)])
}

fn caller(port: u16, tls: TlsConfig) -> Result<Caller, CallerError> {
    let mut cfg = CallerConfig::new("127.0.0.1", port);
    cfg.mqtt.tls = Some(tls);
    cfg.mqtt.connect_timeout_ms = 3000;
    Caller::connect(cfg)
}

fn call_ok(c: &Caller, dn: &str, payload: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.call(&device::system_call(PK, dn, payload, 2000));
        if r.rrpc_code == Some(RrpcCode::Success) {
            assert_eq!(r.payload.as_deref(), Some(payload));
            return;
        }
        assert!(Instant::now() < deadline, "no SUCCESS: {}", r.to_json());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The start error of a device that cannot connect, and how long it took.
fn start_error(port: u16, tls: Option<TlsConfig>) -> (ClientError, Duration) {
    let mut cfg = ClientConfig::new("127.0.0.1", port);
    cfg.mqtt.tls = tls.clone();
    cfg.mqtt.connect_timeout_ms = 3000;
    let c = Client::new(cfg).unwrap();
    let t = Instant::now();
    let e = c.start().unwrap_err();
    eprintln!(
        "start over {}: {e}",
        if tls.is_some() { "TLS" } else { "TCP" }
    );
    (e, t.elapsed())
}

fn device_and_caller_over_tls_and_again_after_a_broker_restart() {
    let pki = Pki::new("roundtrip");
    let (cert, key) = pki.server("server", false);
    let mut broker = tls_broker(&cert, &key, None);
    let ca = pki.path("ca.pem");
    // Offering ALPN to a broker that does not negotiate it changes nothing.
    let with_alpn = TlsConfig {
        alpn: vec!["mqtt".into()],
        ..tls_to(&ca)
    };
    let dev = device(broker.port, with_alpn, "tlsdev");
    let c = caller(broker.port, tls_to(&ca)).expect("caller connects over TLS");
    call_ok(&c, "tlsdev", b"over tls");
    call_ok(&c, "tlsdev", &vec![0x5a; 64 * 1024]);

    broker.kill();
    broker.restart();
    // Both reconnect (backoff up to 10 s) and resubscribe over TLS.
    call_ok(&c, "tlsdev", b"after restart");
    assert!(dev.stats().connects >= 2, "{:?}", dev.stats());
}

fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new("mutual");
    let (cert, key) = pki.server("server", false);
    let (ccert, ckey) = pki.leaf("device", &[], true, false);
    let ca = pki.path("ca.pem");
    let broker = tls_broker(&cert, &key, Some(&ca));
    let with_cert = TlsConfig {
        cert_file: Some(ccert.clone()),
        key_file: Some(ckey.clone()),
        ..tls_to(&ca)
    };
    let _dev = device(broker.port, with_cert.clone(), "mtlsdev");
    let c = caller(broker.port, with_cert).expect("caller with a client certificate");
    call_ok(&c, "mtlsdev", b"mutual");

    // Without a client certificate the broker ends the handshake (TLS 1.3
    // reports it at the first read; it is still named a TLS failure).
    let (e, took) = start_error(broker.port, Some(tls_to(&ca)));
    assert!(matches!(e, ClientError::Tls(_)), "{e:?}");
    assert!(e.to_string().contains("CertificateRequired"), "{e}");
    assert!(took < Duration::from_secs(6), "{took:?}: {e}");
}

fn certificate_failures_are_named() {
    let pki = Pki::new("failures");
    let other = Pki::new("other-ca");
    let ca = pki.path("ca.pem");

    // A CA that did not sign the server.
    let (cert, key) = pki.server("server", false);
    let broker = tls_broker(&cert, &key, None);
    let (e, _) = start_error(broker.port, Some(tls_to(&other.path("ca.pem"))));
    assert!(matches!(e, ClientError::Tls(_)), "{e:?}");
    assert!(e.to_string().contains("unknown issuer"), "{e}");
    let e = caller(broker.port, tls_to(&other.path("ca.pem"))).unwrap_err();
    assert!(matches!(e, CallerError::Tls(_)), "{e:?}");
    assert!(e.to_string().contains("unknown issuer"), "{e}");

    // Verification switched off by its named option: connects (and warns).
    let insecure = TlsConfig {
        insecure_skip_verify: true,
        ..tls_to(&other.path("ca.pem"))
    };
    let dev = device(broker.port, insecure, "insecure");
    assert!(dev.is_connected());
    drop(dev);
    drop(broker);

    // An expired server certificate.
    let (cert, key) = pki.server("expired", true);
    let broker = tls_broker(&cert, &key, None);
    let (e, _) = start_error(broker.port, Some(tls_to(&ca)));
    assert!(e.to_string().contains("expired"), "{e}");
    drop(broker);

    // A certificate for another host name, and the server-name option.
    let (cert, key) = pki.leaf(
        "elsewhere",
        &[SanType::DnsName("mqtt.example.com".try_into().unwrap())],
        false,
        false,
    );
    let broker = tls_broker(&cert, &key, None);
    let (e, _) = start_error(broker.port, Some(tls_to(&ca)));
    assert!(
        e.to_string().contains("not valid for this host name"),
        "{e}"
    );
    let named = TlsConfig {
        server_name: Some("mqtt.example.com".into()),
        ..tls_to(&ca)
    };
    let dev = device(broker.port, named, "named");
    assert!(dev.is_connected());
}

fn unusable_tls_configurations_are_refused_when_the_client_is_made() {
    let pki = Pki::new("config");
    let ca = pki.path("ca.pem");
    let (ccert, _) = pki.leaf("device", &[], true, false);
    let (_, other_key) = pki.leaf("other", &[], true, false);
    let garbage = pki.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    let empty = pki.write("empty.pem", "no PEM here\n");
    let cases: Vec<(TlsConfig, &str)> = vec![
        (tls_to(&pki.path("missing.pem")), "CA file"),
        (tls_to(&garbage), "malformed"),
        (tls_to(&empty), "no PEM certificate in it"),
        (
            TlsConfig {
                cert_file: Some(ccert.clone()),
                key_file: Some(other_key.clone()),
                ..tls_to(&ca)
            },
            "does not match the client certificate",
        ),
        (
            TlsConfig {
                cert_file: Some(ccert.clone()),
                ..tls_to(&ca)
            },
            "needs its key",
        ),
        (
            TlsConfig {
                cert_file: Some(ccert.clone()),
                key_file: Some(empty.clone()),
                ..tls_to(&ca)
            },
            "no well-formed PEM private key",
        ),
    ];
    for (tls, want) in cases {
        let e = Client::new(device_config(1883, tls.clone())).unwrap_err();
        assert!(matches!(e, ClientError::Tls(_)), "{e:?}");
        assert!(e.to_string().contains(want), "{want:?} not in {e}");
        let e = caller(1883, tls).unwrap_err();
        assert!(e.to_string().contains(want), "{want:?} not in {e}");
    }
}

fn tls_to_a_plain_port_and_plain_to_a_tls_port_fail_in_time() {
    let pki = Pki::new("ports");
    let ca = pki.path("ca.pem");
    let plain = Broker::mosquitto();
    let (e, took) = start_error(plain.port, Some(tls_to(&ca)));
    assert!(took < Duration::from_secs(6), "{took:?}: {e}");
    assert!(matches!(e, ClientError::Tls(_)), "{e:?}");
    assert!(e.to_string().contains("TLS handshake failed"), "{e}");

    let (cert, key) = pki.server("server", false);
    let secure = tls_broker(&cert, &key, None);
    let (e, took) = start_error(secure.port, None);
    assert!(matches!(e, ClientError::ConnectFailed(_)), "{e:?}");
    assert!(took < Duration::from_secs(6), "{took:?}: {e}");
}

/// The C `echo_device` over TLS (its --ca-file sets `rrpc_mqtt_config.tls` and
/// `tls_ca_file`) answering a caller over TLS; with a CA that did not sign the
/// broker it fails with RRPC_STATUS_TLS and says why.
fn c_echo_device_over_tls() {
    common::require_tool("cmake");
    common::require_tool("cc");
    let pki = Pki::new("c-device");
    let other = Pki::new("c-other");
    let (cert, key) = pki.server("server", false);
    let broker = tls_broker(&cert, &key, None);
    let ca = pki.path("ca.pem");
    let echo = common::cmake::example("echo_device");
    let args = |ca: &Path| {
        common::strings(&["--host", "127.0.0.1", "--port", &broker.port.to_string()])
            .into_iter()
            .chain(common::strings(&[
                "--product-key",
                PK,
                "--device-name",
                "cdev",
            ]))
            .chain(common::strings(&["--ca-file", &ca.display().to_string()]))
            .chain(common::strings(&["--connect-timeout-ms", "3000"]))
            .collect::<Vec<_>>()
    };
    let mut dev = common::Proc::spawn(&echo, &args(&ca));
    dev.expect_stderr("connected", Duration::from_secs(20));
    let c = caller(broker.port, tls_to(&ca)).unwrap();
    call_ok(&c, "cdev", b"from C over TLS");
    dev.terminate();

    let mut bad = common::Proc::spawn(&echo, &args(&other.path("ca.pem")));
    let st = bad
        .wait_exit(Duration::from_secs(20))
        .expect("echo_device exits");
    assert!(!st.success());
    let err = bad.stderr().join("\n");
    assert!(
        err.contains("TLS configuration or handshake failed"),
        "{err}"
    );
    assert!(err.contains("unknown issuer"), "{err}");
}

/// The C configuration: tls_* fields without `tls` are refused, an unreadable CA
/// file is RRPC_STATUS_TLS at `rrpc_client_new`.
fn c_config_tls_fields() {
    use rrpc::ffi::client::*;
    use rrpc::ffi::rrpc_status::*;
    use rrpc::ffi::session::*;
    use std::ffi::CString;

    let last = crate::common::ffi::last_error;
    let host = CString::new("127.0.0.1").unwrap();
    let missing = CString::new("/nonexistent/ca.pem").unwrap();
    let new = |tls: bool, ca: bool| {
        let mut mqtt = c_defaults(rrpc_mqtt_config_init);
        mqtt.host = host.as_ptr();
        mqtt.tls = u8::from(tls);
        if ca {
            mqtt.tls_ca_file = missing.as_ptr();
        }
        let mut cfg = c_defaults(rrpc_client_config_init);
        cfg.mqtt = &mqtt;
        let mut client = std::ptr::null_mut();
        let st = rrpc_client_new(&cfg, &mut client);
        assert_ok(rrpc_client_free(client));
        st
    };
    assert_eq!(new(false, true), RRPC_STATUS_INVALID_ARGUMENT);
    assert!(
        last().contains("config->mqtt->tls_ca_file is set but config->mqtt->tls is false"),
        "{}",
        last()
    );
    assert_eq!(new(true, true), RRPC_STATUS_TLS);
    assert!(last().contains("CA file /nonexistent/ca.pem"), "{}", last());
    assert_ok(new(false, false));
}

static C_LOG: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn keep_log(
    _ud: *mut std::ffi::c_void,
    _level: u32,
    msg: *const std::ffi::c_char,
) {
    let m = unsafe { std::ffi::CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned();
    C_LOG.lock().unwrap().push(m);
}

/// From C, `tls_insecure_skip_verify` is the only way past a certificate that
/// does not verify, and the connection it makes is logged as unverified.
fn c_insecure_skip_verify_connects_and_warns() {
    use rrpc::ffi::client::*;
    use rrpc::ffi::misc::*;
    use rrpc::ffi::rrpc_status::*;
    use rrpc::ffi::session::*;
    use std::ffi::CString;

    let pki = Pki::new("c-insecure");
    let other = Pki::new("c-insecure-other");
    let (cert, key) = pki.server("server", false);
    let broker = tls_broker(&cert, &key, None);
    assert_ok(rrpc_set_log_handler(
        Some(keep_log),
        std::ptr::null_mut(),
        rrpc_log_level::RRPC_LOG_WARN as u32,
    ));
    let host = CString::new("127.0.0.1").unwrap();
    let wrong_ca = CString::new(other.path("ca.pem").display().to_string()).unwrap();
    let (pk, dn) = (
        CString::new("a1GFjLP3xxC").unwrap(),
        CString::new("cdev").unwrap(),
    );
    let start = |insecure: bool| {
        let mut mqtt = c_defaults(rrpc_mqtt_config_init);
        mqtt.host = host.as_ptr();
        mqtt.port = broker.port;
        mqtt.tls = 1;
        mqtt.tls_ca_file = wrong_ca.as_ptr();
        mqtt.tls_insecure_skip_verify = u8::from(insecure);
        let mut cfg = c_defaults(rrpc_client_config_init);
        cfg.mqtt = &mqtt;
        let mut client = std::ptr::null_mut();
        assert_ok(rrpc_client_new(&cfg, &mut client));
        let st = rrpc_client_add_device(
            client,
            rrpc_dialect::RRPC_DIALECT_ALIBABA as u32,
            pk.as_ptr(),
            dn.as_ptr(),
            std::ptr::null(),
        );
        assert_ok(st);
        let st = rrpc_client_start(client);
        assert_ok(rrpc_client_free(client));
        st
    };
    assert_eq!(start(false), RRPC_STATUS_TLS);
    assert_ok(start(true));
    assert_ok(rrpc_set_log_handler(
        None,
        std::ptr::null_mut(),
        rrpc_log_level::RRPC_LOG_WARN as u32,
    ));
    let log = C_LOG.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|m| m.contains("WITHOUT certificate verification")
                && m.contains(&broker.port.to_string())),
        "{log:?}"
    );
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        device_and_caller_over_tls_and_again_after_a_broker_restart needs ["mosquitto"],
        mutual_tls_needs_the_client_certificate needs ["mosquitto"],
        certificate_failures_are_named needs ["mosquitto"],
        unusable_tls_configurations_are_refused_when_the_client_is_made,
        tls_to_a_plain_port_and_plain_to_a_tls_port_fail_in_time needs ["mosquitto"],
        c_echo_device_over_tls needs ["mosquitto", "cmake", "cc"],
        c_config_tls_fields,
        c_insecure_skip_verify_connects_and_warns needs ["mosquitto"],
    ]
}
