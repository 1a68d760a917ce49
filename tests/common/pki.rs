//! Test certificates, generated at test time and never committed: a CA, server
//! certificates for 127.0.0.1, client certificates, expired ones; and Mosquitto
//! with a TLS listener that uses them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use super::{scratch_dir, Broker};

/// A certificate authority and what it signed, as PEM files in one directory.
pub struct Pki {
    dir: PathBuf,
    ca: Certificate,
    ca_key: KeyPair,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = scratch_dir("tls").join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, format!("librrpc test CA {name}"));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = p.self_signed(&ca_key).unwrap();
        let pki = Pki { dir, ca, ca_key };
        pki.write("ca.pem", &pki.ca.pem());
        pki
    }

    pub fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A leaf certificate and its key as `{name}.pem` and `{name}.key`.
    pub fn leaf(
        &self,
        name: &str,
        sans: &[SanType],
        client: bool,
        expired: bool,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.subject_alt_names = sans.to_vec();
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
            p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        }
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (
            self.write(&format!("{name}.pem"), &cert.pem()),
            self.write(&format!("{name}.key"), &key.serialize_pem()),
        )
    }

    /// A server certificate for 127.0.0.1 (and `localhost`).
    pub fn server(&self, name: &str, expired: bool) -> (PathBuf, PathBuf) {
        let sans = [
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
            SanType::DnsName("localhost".try_into().unwrap()),
        ];
        self.leaf(name, &sans, false, expired)
    }
}

/// Mosquitto with one TLS listener: `cert`/`key` as its identity, `client_ca` to
/// require client certificates signed by it.
pub fn tls_broker(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Broker {
    let mut conf = format!(
        "allow_anonymous true\ncertfile {}\nkeyfile {}\n",
        cert.display(),
        key.display()
    );
    if let Some(ca) = client_ca {
        conf += &format!("cafile {}\nrequire_certificate true\n", ca.display());
    }
    Broker::mosquitto_with(&conf)
}
