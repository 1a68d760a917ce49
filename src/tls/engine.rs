//! The rustls client configuration made from a [`TlsConfig`] (ring as the crypto
//! provider), and handshake errors in words. Built with the `tls` feature.

use std::path::Path;
use std::sync::Arc;

use super::{err, TlsConfig, TlsError, HANDSHAKE_FAILED};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring as ring_provider, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as RustlsError, RootCertStore,
    SignatureScheme,
};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring_provider::default_provider())
}

/// The certificates of a PEM file: at least one, each well-formed.
fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display();
    std::fs::metadata(path).or_else(|e| err(format!("{what} {shown}: {e}")))?;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .or_else(|e| err(format!("{what} {shown}: {e}")))?
        .collect::<Result<_, _>>()
        .or_else(|e| err(format!("{what} {shown}: malformed PEM ({e})")))?;
    if certs.is_empty() {
        return err(format!("{what} {shown}: no PEM certificate in it"));
    }
    Ok(certs)
}

fn roots(cfg: &TlsConfig) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            for c in certs(path, "CA file")? {
                store.add(c).or_else(|e| {
                    err(format!(
                        "CA file {}: malformed or unusable CA certificate ({e})",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system store may hold certificates webpki cannot use: skip them.
                let _ = store.add(c);
            }
            if store.is_empty() {
                return err("no CA certificates found in the system store; give a CA file");
            }
        }
    }
    Ok(store)
}

/// The rustls client configuration for `cfg`, checked now: files read, PEM
/// parsed, the client key matched against its certificate.
pub(super) fn client_config(cfg: &TlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .or_else(|e| err(format!("TLS protocol versions: {e}")))?;
    let certificates = if cfg.insecure_skip_verify {
        Certificates::Any
    } else {
        let roots = Arc::new(roots(cfg)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .or_else(|e| err(format!("certificate verifier: {e}")))?;
        let name = match &cfg.server_name {
            None => None,
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .or_else(|_| err(format!("server name {name:?} is not a DNS name or IP")))?,
            ),
        };
        Certificates::Checked { webpki, name }
    };
    let verifier = Arc::new(Verifier {
        certificates,
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&cfg.cert_file, &cfg.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certs(cert, "client certificate file")?;
            let shown = key.display();
            std::fs::metadata(key).or_else(|e| err(format!("client key file {shown}: {e}")))?;
            let der = PrivateKeyDer::from_pem_file(key).or_else(|_| {
                err(format!(
                    "client key file {shown}: no well-formed PEM private key in it"
                ))
            })?;
            let signer = provider
                .key_provider
                .load_private_key(der.clone_key())
                .or_else(|e| err(format!("client key file {shown}: unusable key ({e})")))?;
            rustls::sign::CertifiedKey::new(chain.clone(), signer)
                .keys_match()
                .or_else(|_| {
                    err(format!(
                        "client key file {shown} does not match the client certificate {}",
                        cert.display()
                    ))
                })?;
            builder
                .with_client_auth_cert(chain, der)
                .or_else(|e| err(format!("client certificate and key: {e}")))?
        }
        _ => return err("a client certificate needs its key, and a key its certificate"),
    };
    config.alpn_protocols = cfg.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// What went wrong in a TLS handshake, in words, when `e` carries a rustls error.
pub(crate) fn handshake_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(r) = x.downcast_ref::<RustlsError>() {
            return Some(explain(r));
        }
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(r) = inner.downcast_ref::<RustlsError>() {
                    return Some(explain(r));
                }
            }
        }
        cur = x.source();
    }
    None
}

fn explain(e: &RustlsError) -> String {
    let what = match e {
        RustlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "the server's certificate is not signed by a trusted CA (unknown issuer)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for this host name (see the server name option)"
                    .into()
            }
            other => format!("the server's certificate was refused ({other:?})"),
        },
        RustlsError::AlertReceived(a) => format!(
            "the server ended the handshake with the alert {a:?} (a client certificate it does not accept, or none)"
        ),
        RustlsError::InvalidMessage(_) | RustlsError::InappropriateMessage { .. } => {
            format!("the server does not speak TLS on this port ({e})")
        }
        other => other.to_string(),
    };
    format!("{HANDSHAKE_FAILED}{what}")
}

/// Which server certificates a [`Verifier`] accepts.
#[derive(Debug)]
enum Certificates {
    /// `insecure_skip_verify`: any certificate; the handshake's signatures are
    /// still checked, so the session keys belong to whoever holds the
    /// certificate's key, whoever that is.
    Any,
    /// Those that chain to the trusted roots and are valid for `name` when one
    /// is configured, else for the host.
    Checked {
        webpki: Arc<WebPkiServerVerifier>,
        name: Option<ServerName<'static>>,
    },
}

/// The server certificate verifier of every TLS connection: the certificate as
/// [`Certificates`] says, the handshake's signatures always with the provider's
/// algorithms (as rustls' own verifier checks them).
#[derive(Debug)]
struct Verifier {
    certificates: Certificates,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The handshake signature checks of [`ServerCertVerifier`], each by rustls'
/// function of the same name with the verifier's `algorithms`.
macro_rules! verify_signatures_with_algorithms {
    ($($verify:ident),+) => {
        $(
            fn $verify(
                &self,
                message: &[u8],
                cert: &CertificateDer<'_>,
                dss: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, RustlsError> {
                rustls::crypto::$verify(message, cert, dss, &self.algorithms)
            }
        )+
    };
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, RustlsError> {
        match &self.certificates {
            Certificates::Any => Ok(ServerCertVerified::assertion()),
            Certificates::Checked { webpki, name } => webpki.verify_server_cert(
                end_entity,
                intermediates,
                name.as_ref().unwrap_or(server_name),
                ocsp_response,
                now,
            ),
        }
    }

    verify_signatures_with_algorithms!(verify_tls12_signature, verify_tls13_signature);

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
