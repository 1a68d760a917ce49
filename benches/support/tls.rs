//! TLS for the benches that compare over TLS: test certificates made at run time
//! (tests/common/pki.rs), the Mosquitto listener lines, and the rustls client
//! configuration (ring, like the library) that the bench's own rumqttc connections
//! (the caller, the bare device) use once [`enable`] or [`use_ca`] was called.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::common::pki::Pki;

struct Tls {
    ca: PathBuf,
    /// The broker's certificate and key (only in the process that made them).
    server: Option<(PathBuf, PathBuf)>,
    client: Arc<ClientConfig>,
}

static TLS: OnceLock<Tls> = OnceLock::new();

/// Makes a CA and a server certificate for 127.0.0.1 under `dir`, and turns TLS on
/// for this process. Returns the CA file (for the devices' `--ca-file`).
pub fn enable(dir: &str) -> PathBuf {
    let pki = Pki::new(dir);
    let server = pki.server("broker", false);
    let ca = pki.path("ca.pem");
    set(&ca, Some(server));
    ca
}

/// Turns TLS on for this process (a child process of a bench), trusting `ca`.
pub fn use_ca(ca: &Path) {
    set(ca, None);
}

fn set(ca: &Path, server: Option<(PathBuf, PathBuf)>) {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read the CA file") {
        roots
            .add(c.expect("a PEM certificate"))
            .expect("a CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let _ = TLS.set(Tls {
        ca: ca.to_path_buf(),
        server,
        client: Arc::new(client),
    });
}

/// The rustls configuration for the bench's connections, when TLS is on.
pub fn client() -> Option<Arc<ClientConfig>> {
    TLS.get().map(|t| t.client.clone())
}

/// The CA file, when TLS is on.
pub fn ca_file() -> Option<PathBuf> {
    TLS.get().map(|t| t.ca.clone())
}

/// Lines that make the listener just written a TLS listener ("" when TLS is off).
/// With TLS the broker also sets TCP_NODELAY: it writes a large message as several
/// TLS records, and with Nagle on the last partial segment waits for a delayed ACK
/// (64 KiB round trips took ~88 ms for both contenders).
pub fn listener_conf() -> String {
    match TLS.get().and_then(|t| t.server.as_ref()) {
        Some((cert, key)) => format!(
            "certfile {}\nkeyfile {}\nset_tcp_nodelay true\n",
            cert.display(),
            key.display()
        ),
        None => String::new(),
    }
}
