//! TLS interception, opt-in: a CONNECT (or SOCKS) tunnel to a target the rules pick is
//! answered by the proxy itself with a certificate for the name the client asked for,
//! minted on the fly by the proxy's CA and cached; the decrypted requests inside go
//! through the proxy like forwarded ones (hooks, rules, logs), to the origin over a TLS
//! connection of their own whose certificate is verified. ALPN is negotiated separately
//! on each side (`h2` or `http/1.1`), so an HTTP/2 client may be served from an HTTP/1.1
//! origin and the reverse. Tunnels whose first byte is not a TLS handshake are relayed
//! as they are.
//!
//! QUIC is not intercepted: responses to intercepted requests lose their `Alt-Svc`, so
//! HTTP/3 clients stay on TCP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use burrow_transport::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use burrow_transport::rustls::server::{ClientHello, ResolvesServerCert};
use burrow_transport::rustls::sign::CertifiedKey;
use burrow_transport::rustls::ServerConfig;
use burrow_transport::{Error, Host, Target};

use crate::lock;

use super::routes::Pattern;

/// Most minted certificates kept; past it the cache starts over.
pub const MAX_MINTED_CERTS: usize = 1024;

/// Days a minted certificate is valid (from two days before it was minted).
pub const LEAF_VALIDITY_DAYS: i64 = 365;

/// Years a CA made by [`Ca::generate`] is valid.
pub const CA_VALIDITY_YEARS: i64 = 10;

/// Which tunnels are intercepted: targets matching `hosts` (all when empty) and none of
/// `ignore`.
#[derive(Clone, Debug, Default)]
pub struct InterceptRules {
    /// Targets to intercept (`--intercept-hosts`); empty: all.
    pub hosts: Vec<Pattern>,
    /// Targets never intercepted (`--ignore-hosts`).
    pub ignore: Vec<Pattern>,
}

impl InterceptRules {
    /// Whether a tunnel to `t` is intercepted.
    pub fn wants(&self, t: &Target) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|p| p.matches(t)))
            && !self.ignore.iter().any(|p| p.matches(t))
    }
}

/// The certificate authority that signs minted certificates.
pub struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    cert: CertificateDer<'static>,
    /// One key for every minted certificate (as mitmproxy does): minting is one signature.
    leaf_key: rcgen::KeyPair,
    leaf_signing: Arc<dyn burrow_transport::rustls::sign::SigningKey>,
    cache: Mutex<Cache>,
}

/// Minted certificates by name, the oldest evicted first past [`MAX_MINTED_CERTS`].
#[derive(Default)]
struct Cache {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    order: std::collections::VecDeque<String>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn cert_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid_input(format!("{what}: {e}"))
}

impl Ca {
    /// A new CA: its certificate and private key, PEM.
    pub fn generate() -> Result<(String, String), Error> {
        let key = rcgen::KeyPair::generate().map_err(|e| cert_error("making a CA key", e))?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| cert_error("CA parameters", e))?;
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "burrow-proxy CA");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "burrow-proxy");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(2);
        p.not_after = now + time::Duration::days(365 * CA_VALIDITY_YEARS);
        let cert = p
            .self_signed(&key)
            .map_err(|e| cert_error("signing the CA", e))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The CA of this certificate and key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, Error> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| cert_error("the CA key", e))?;
        use burrow_transport::rustls::pki_types::pem::PemObject;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| cert_error("the CA certificate", e))?;
        // The key must be the certificate's, or every minted certificate fails to verify.
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| cert_error("the CA certificate", e))?;
        if *parsed.tbs_certificate.subject_pki.subject_public_key.data != *key.public_key_raw() {
            return Err(Error::invalid_input(
                "the CA key is not the CA certificate's (--ca-cert and --ca-key disagree)",
            ));
        }
        let issuer = rcgen::Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| cert_error("the CA certificate", e))?;
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| cert_error("making a key", e))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let leaf_signing = burrow_transport::tls::provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| cert_error("loading the certificate key", e))?;
        Ok(Ca {
            issuer,
            cert,
            leaf_key,
            leaf_signing,
            cache: Mutex::default(),
        })
    }

    /// The CA's certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A certificate for `name` (a DNS name or an IP address), from the cache or minted.
    pub fn leaf(&self, name: &str) -> Result<Arc<CertifiedKey>, Error> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(c) = lock(&self.cache).by_name.get(&name) {
            return Ok(c.clone());
        }
        // Minted without the lock: other handshakes do not wait for this signature.
        let mut p = rcgen::CertificateParams::new(vec![name.clone()])
            .map_err(|e| cert_error("certificate parameters", e))?;
        p.distinguished_name.push(rcgen::DnType::CommonName, &name);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(2);
        p.not_after = now + time::Duration::days(LEAF_VALIDITY_DAYS);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let cert = p
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| cert_error("minting a certificate", e))?;
        let ck = Arc::new(CertifiedKey::new(
            vec![cert.der().clone(), self.cert.clone()],
            self.leaf_signing.clone(),
        ));
        let mut cache = lock(&self.cache);
        if !cache.by_name.contains_key(&name) {
            while cache.by_name.len() >= MAX_MINTED_CERTS {
                let Some(old) = cache.order.pop_front() else {
                    break;
                };
                cache.by_name.remove(&old);
            }
            cache.order.push_back(name.clone());
        }
        cache.by_name.insert(name, ck.clone());
        Ok(ck)
    }

    /// The TLS configuration for the client's side of a tunnel to `target`: the name the
    /// client sends (SNI), or the target's host without one; ALPN `h2` and `http/1.1`.
    pub fn server_config(self: &Arc<Self>, target: &Target) -> Result<Arc<ServerConfig>, Error> {
        let fallback = match &target.host {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        };
        let resolver = Arc::new(Minter {
            ca: self.clone(),
            fallback,
        });
        let mut cfg = ServerConfig::builder_with_provider(burrow_transport::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| cert_error("TLS versions", e))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Mints for the name in the ClientHello.
struct Minter {
    ca: Arc<Ca>,
    fallback: String,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl ResolvesServerCert for Minter {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().unwrap_or(&self.fallback).to_string();
        match self.ca.leaf(&name) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("no certificate for {name}: {e}");
                None
            }
        }
    }
}

/// The TLS record type of a handshake: the first byte of a ClientHello.
pub const TLS_HANDSHAKE: u8 = 0x16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_certificates_are_cached_and_the_cache_is_bounded() {
        let (cert, key) = Ca::generate().unwrap();
        let ca = Ca::load(&cert, &key).unwrap();
        let a = ca.leaf("Example.COM.").unwrap();
        let b = ca.leaf("example.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.cert.len(), 2, "leaf and CA");
        ca.leaf("192.0.2.1").unwrap();
        for i in 0..MAX_MINTED_CERTS {
            ca.leaf(&format!("h{i}.test")).unwrap();
        }
        // Full: the oldest went first, the newest stay.
        assert_eq!(lock(&ca.cache).by_name.len(), MAX_MINTED_CERTS);
        let newest = ca.leaf(&format!("h{}.test", MAX_MINTED_CERTS - 1)).unwrap();
        assert!(Arc::ptr_eq(
            &newest,
            &ca.leaf(&format!("h{}.test", MAX_MINTED_CERTS - 1)).unwrap()
        ));
        assert!(!Arc::ptr_eq(&a, &ca.leaf("example.com").unwrap()));
        assert!(Ca::load("not a cert", &key).is_err());
        assert!(Ca::load(&cert, "not a key").is_err());
        // A key that is not the certificate's.
        let (_, other_key) = Ca::generate().unwrap();
        let e = Ca::load(&cert, &other_key).unwrap_err();
        assert!(e.to_string().contains("disagree"), "{e}");
    }

    #[test]
    fn rules_pick_hosts_and_ignore_wins() {
        let r = InterceptRules {
            hosts: vec![Pattern::parse("*.example").unwrap()],
            ignore: vec![Pattern::parse("bank.example").unwrap()],
        };
        assert!(r.wants(&"a.example:443".parse().unwrap()));
        assert!(!r.wants(&"bank.example:443".parse().unwrap()));
        assert!(!r.wants(&"other.test:443".parse().unwrap()));
        assert!(InterceptRules::default().wants(&"any.test:1".parse().unwrap()));
    }
}
