//! A throwaway certificate authority for tests, demos and local servers.

use std::path::{Path, PathBuf};

use burrow_transport::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and one leaf certificate for `localhost`, `127.0.0.1` and `::1` (plus extra names).
pub struct TestPki {
    /// The CA certificate (DER), to trust.
    pub ca_der: CertificateDer<'static>,
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The leaf certificate chain (PEM: leaf then CA).
    pub chain_pem: String,
    /// The leaf private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The leaf chain (DER).
    pub chain_der: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl TestPki {
    /// Generates a fresh CA and leaf. Errors only if the crypto library fails.
    pub fn generate(extra_names: &[&str]) -> Result<TestPki, rcgen::Error> {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "burrow test CA");
        let ca_key = rcgen::KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        names.extend(extra_names.iter().map(|s| s.to_string()));
        let leaf_params = rcgen::CertificateParams::new(names)?;
        let leaf_key = rcgen::KeyPair::generate()?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;
        Ok(TestPki {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key_pem: leaf_key.serialize_pem(),
            chain_der: vec![leaf.der().clone(), ca.der().clone()],
            key_der: leaf_key.serialize_der(),
        })
    }

    /// The leaf private key (DER).
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// Writes `ca.pem`, `cert.pem` (chain) and `key.pem` into `dir`; returns their paths.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<(PathBuf, PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let ca = dir.join("ca.pem");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&ca, &self.ca_pem)?;
        std::fs::write(&cert, &self.chain_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((ca, cert, key))
    }
}

/// Starts an in-process burrow-proxy for tests on `listeners` (`http://127.0.0.1:0`,
/// `h3://…`, `socks5://…`), allowed to reach loopback, with `pki`'s leaf as its TLS
/// identity when given.
pub async fn test_proxy(
    listeners: &[&str],
    pki: Option<&TestPki>,
) -> Result<burrow_proxy::server::Running, burrow_transport::Error> {
    use burrow_proxy::server::{self, Listen, Proxy, ProxyConfig, Rules};
    let cfg = ProxyConfig {
        listeners: listeners
            .iter()
            .map(|l| Listen::parse(l))
            .collect::<Result<_, _>>()?,
        identity: pki.map(|p| (p.chain_der.clone(), std::sync::Arc::new(p.key()))),
        rules: Rules::loopback(),
        ..ProxyConfig::default()
    };
    server::start(Proxy::new(cfg, None, None)?).await
}
