//! TLS over any [`ByteStream`](crate::ByteStream) with rustls and the ring provider.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::verifiers::Fixed;
use crate::{BoxStream, Connected, Error, ErrorKind, Host, Result, StreamConnector, Target};

/// The crypto provider burrow uses everywhere: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where trusted root certificates come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Roots {
    /// The operating system's store, falling back to the bundled webpki roots when it is empty.
    #[default]
    System,
    /// The bundled Mozilla roots (`webpki-roots`).
    Webpki,
    /// No built-in roots: only those added with [`TlsConfig::add_root_pem_file`].
    None,
}

/// Client TLS settings for one hop (origin or proxy). Each hop has its own.
///
/// The rustls configuration built from it is kept (per ALPN list) and shared by clones,
/// so connections reuse one root store and one session cache (TLS resumption) instead of
/// loading the system roots again for each connection. Changing a setting starts afresh.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    roots: Roots,
    extra_roots: Vec<CertificateDer<'static>>,
    insecure: bool,
    keylog: bool,
    versions: (TlsVersion, TlsVersion),
    client_auth: Option<ClientAuth>,
    pins: Vec<crate::pin::Pin>,
    built: Built,
}

/// A TLS protocol version rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// A client certificate chain and its key (the key is never shown).
#[derive(Clone)]
struct ClientAuth {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// An ALPN list and the client configuration built for it.
type BuiltFor = (Vec<Vec<u8>>, Arc<ClientConfig>);

/// Client configurations already built, by ALPN list.
#[derive(Clone, Default)]
struct Built(Arc<Mutex<Vec<BuiltFor>>>);

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |v| v.len());
        write!(f, "{n} built")
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            roots: Roots::System,
            extra_roots: Vec::new(),
            insecure: false,
            keylog: true,
            versions: (TlsVersion::Tls12, TlsVersion::Tls13),
            client_auth: None,
            pins: Vec::new(),
            built: Built::default(),
        }
    }
}

impl TlsConfig {
    /// Chooses the built-in roots (default: the system store).
    pub fn roots(&mut self, roots: Roots) -> &mut Self {
        self.built = Built::default();
        self.roots = roots;
        self
    }

    /// Trusts the certificates in a PEM file in addition to the built-in roots.
    pub fn add_root_pem_file(&mut self, path: impl AsRef<Path>) -> Result<&mut Self> {
        let certs = pem_certificates(path.as_ref(), "CA certificates", "no certificates")?;
        self.built = Built::default();
        self.extra_roots.extend(certs);
        Ok(self)
    }

    /// Trusts one DER certificate in addition to the built-in roots.
    pub fn add_root_der(&mut self, der: CertificateDer<'static>) -> &mut Self {
        self.built = Built::default();
        self.extra_roots.push(der);
        self
    }

    /// Turns certificate verification off (curl's `-k`). Handshake signatures are still checked.
    pub fn insecure(&mut self, on: bool) -> &mut Self {
        self.built = Built::default();
        self.insecure = on;
        self
    }

    /// Writes session secrets to the file named by `SSLKEYLOGFILE` when that is set (default on).
    pub fn keylog(&mut self, on: bool) -> &mut Self {
        self.built = Built::default();
        self.keylog = on;
        self
    }

    /// Speaks only TLS versions from `min` to `max` (curl's `--tlsv1.3`, `--tls-max`;
    /// default 1.2 to 1.3).
    pub fn versions(&mut self, min: TlsVersion, max: TlsVersion) -> Result<&mut Self> {
        if min > max {
            return Err(Error::invalid_input(
                "the lowest TLS version asked for is above the highest",
            ));
        }
        self.built = Built::default();
        self.versions = (min, max);
        Ok(self)
    }

    /// Presents the certificate chain in the PEM file `cert` with the private key in `key`
    /// (or in `cert` itself when `None`), as curl's `--cert` and `--key` do.
    pub fn client_cert_pem_files(
        &mut self,
        cert: impl AsRef<Path>,
        key: Option<&Path>,
    ) -> Result<&mut Self> {
        let cert = cert.as_ref();
        let chain = pem_certificates(cert, "certificates", "no certificate")?;
        let key_path = key.unwrap_or(cert);
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
            let what = format!("cannot read a private key from {}", key_path.display());
            Error::invalid_input(what).with_source(e)
        })?;
        self.built = Built::default();
        self.client_auth = Some(ClientAuth {
            chain,
            key: Arc::new(key),
        });
        Ok(self)
    }

    /// Requires the server's public key to be one of `spec` (curl's `--pinnedpubkey`:
    /// `sha256//BASE64;…` or a public key file), after the usual verification.
    pub fn pinned_public_keys(&mut self, spec: &str) -> Result<&mut Self> {
        self.pins = crate::pin::parse_pins(spec)?;
        self.built = Built::default();
        Ok(self)
    }

    /// These settings without the client certificate and the pinned keys: what a hop that
    /// has no settings of its own is verified with (credentials and pins are per hop).
    pub fn without_identity(&self) -> TlsConfig {
        let mut t = self.clone();
        if t.client_auth.is_some() || !t.pins.is_empty() {
            t.client_auth = None;
            t.pins.clear();
            t.built = Built::default();
        }
        t
    }

    /// The rustls client configuration offering `alpn` (most preferred first), built once
    /// per ALPN list and shared afterwards.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
        let key: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        if let Ok(built) = self.built.0.lock() {
            if let Some((_, c)) = built.iter().find(|(k, _)| *k == key) {
                return Ok(c.clone());
            }
        }
        let cfg = self.build_client_config(alpn)?;
        if let Ok(mut built) = self.built.0.lock() {
            built.push((key, cfg.clone()));
        }
        Ok(cfg)
    }

    fn build_client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
        let provider = provider();
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::Tls12, &rustls::version::TLS12),
            (TlsVersion::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (self.versions.0..=self.versions.1).contains(v))
        .map(|(_, p)| p)
        .collect();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| Error::local(ErrorKind::Tls, "TLS versions").with_source(e))?;
        let fixed = |accept| -> Arc<dyn ServerCertVerifier> {
            let provider = provider.clone();
            Arc::new(Fixed { provider, accept })
        };
        let mut verifier = if self.insecure {
            fixed(true)
        } else {
            let roots = self.root_store()?;
            if roots.is_empty() {
                // Nothing is trusted: every certificate is refused (rustls' verifier
                // builder wants at least one root).
                fixed(false)
            } else {
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| Error::local(ErrorKind::Tls, "certificate verifier").with_source(e))?
            }
        };
        if !self.pins.is_empty() {
            verifier = Arc::new(crate::pin::Pinned {
                inner: verifier,
                pins: self.pins.clone(),
            });
        }
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut cfg = match &self.client_auth {
            Some(a) => builder
                .with_client_auth_cert(a.chain.clone(), a.key.clone_key())
                .map_err(|e| {
                    Error::invalid_input("the client certificate and key do not match")
                        .with_source(e)
                })?,
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        if self.keylog {
            cfg.key_log = Arc::new(rustls::KeyLogFile::new());
        }
        Ok(Arc::new(cfg))
    }

    fn root_store(&self) -> Result<RootCertStore> {
        let mut store = RootCertStore::empty();
        match self.roots {
            Roots::System => {
                let loaded = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(loaded.certs);
                if added == 0 {
                    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                }
            }
            Roots::Webpki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::None => {}
        }
        for c in &self.extra_roots {
            store
                .add(c.clone())
                .map_err(|e| Error::invalid_input("invalid CA certificate").with_source(e))?;
        }
        Ok(store)
    }
}

/// The TLS server name for a host (an IP literal is an IP name, sent without SNI).
pub fn server_name(host: &Host) -> Result<ServerName<'static>> {
    match host {
        Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        Host::Name(n) => ServerName::try_from(n.clone()).map_err(|e| {
            Error::invalid_input(format!("invalid TLS server name {n:?}")).with_source(e)
        }),
    }
}

/// Runs a TLS client handshake over `stream`, returning the TLS stream and the negotiated ALPN.
pub async fn handshake(
    stream: BoxStream,
    host: &Host,
    config: Arc<ClientConfig>,
) -> Result<(tokio_rustls::client::TlsStream<BoxStream>, Option<Vec<u8>>)> {
    let name = server_name(host)?;
    let tls = TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| tls_error(host, e))?;
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    Ok((tls, alpn))
}

fn tls_error(host: &Host, e: std::io::Error) -> Error {
    let rustls_error = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) =
        rustls_error
    {
        if o.0.downcast_ref::<crate::pin::PinMismatch>().is_some() {
            return Error::peer(
                ErrorKind::PinMismatch,
                format!("TLS: the public key of {host} is not the pinned one"),
            )
            .with_source(e);
        }
        // The usual `openssl req -x509` certificate: trusted, but a CA's, which a server
        // may not present as its own (curl's OpenSSL takes it; webpki does not).
        if o.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity) {
            return Error::peer(
                ErrorKind::Certificate,
                format!(
                    "TLS certificate of {host} rejected: it is a CA certificate \
                     (basicConstraints CA:TRUE) presented as the server's own; a server \
                     certificate needs CA:FALSE (openssl: -addext basicConstraints=CA:FALSE)"
                ),
            )
            .with_source(e);
        }
    }
    let cert = rustls_error.is_some_and(|r| {
        matches!(
            r,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    });
    let (kind, what) = if cert {
        (ErrorKind::Certificate, "certificate of")
    } else {
        (ErrorKind::Tls, "handshake with")
    };
    Error::peer(kind, format!("TLS {what} {host} rejected")).with_source(e)
}

/// Wraps a [`StreamConnector`] with a TLS client handshake.
pub struct TlsStreamConnector<C> {
    inner: C,
    config: Arc<ClientConfig>,
}

impl<C: StreamConnector> TlsStreamConnector<C> {
    /// TLS with `config` over the streams `inner` opens.
    pub fn new(inner: C, config: Arc<ClientConfig>) -> Self {
        TlsStreamConnector { inner, config }
    }
}

#[async_trait]
impl<C: StreamConnector> StreamConnector for TlsStreamConnector<C> {
    async fn connect(&self, target: &Target) -> Result<Connected> {
        let Connected { stream, mut info } = self.inner.connect(target).await?;
        let (tls, alpn) = handshake(stream, &target.host, self.config.clone()).await?;
        info.alpn = alpn;
        info.layers.insert(0, "tls".into());
        Ok(Connected {
            stream: Box::new(tls),
            info,
        })
    }

    fn describe(&self) -> String {
        format!("tls > {}", self.inner.describe())
    }
}

/// The certificates in the PEM file `path`: an error says `cannot read {what} from PATH`,
/// or `{none} in PATH` when it holds none.
fn pem_certificates(path: &Path, what: &str, none: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            let message = format!("cannot read {what} from {}", path.display());
            Error::invalid_input(message).with_source(e)
        })?;
    if certs.is_empty() {
        return Err(Error::invalid_input(format!(
            "{none} in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// Builds a server configuration from a PEM certificate chain and private key.
pub fn server_config_from_pem(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid_input("bad certificate PEM").with_source(e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::invalid_input("bad private key PEM").with_source(e))?;
    server_config(certs, key, alpn)
}

/// Builds a server configuration from DER certificates and key, offering `alpn`.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::local(ErrorKind::Tls, "TLS versions").with_source(e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::invalid_input("certificate and key do not fit").with_source(e))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Accepts a TLS connection on `stream`, returning it with the negotiated ALPN.
pub async fn accept(
    stream: BoxStream,
    config: Arc<ServerConfig>,
) -> Result<(tokio_rustls::server::TlsStream<BoxStream>, Option<Vec<u8>>)> {
    let tls = TlsAcceptor::from(config)
        .accept(stream)
        .await
        .map_err(|e| Error::peer(ErrorKind::Tls, "TLS accept failed").with_source(e))?;
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    Ok((tls, alpn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TcpConnector;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Pki {
        ca_der: CertificateDer<'static>,
        chain_pem: String,
        key_pem: String,
    }

    fn pki() -> Pki {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            chain_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    async fn serve_once(cfg: Arc<ServerConfig>) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            if let Ok((mut tls, _)) = accept(Box::new(s), cfg).await {
                let mut b = [0u8; 4];
                tls.read_exact(&mut b).await.unwrap();
                tls.write_all(&b).await.unwrap();
                tls.shutdown().await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn verifies_with_extra_root_and_negotiates_alpn() {
        let p = pki();
        let scfg = server_config_from_pem(
            p.chain_pem.as_bytes(),
            p.key_pem.as_bytes(),
            &[b"h2", b"http/1.1"],
        )
        .unwrap();
        let addr = serve_once(scfg).await;
        let mut t = TlsConfig::default();
        t.roots(Roots::None).add_root_der(p.ca_der);
        let c = TlsStreamConnector::new(
            TcpConnector::default(),
            t.client_config(&[b"http/1.1"]).unwrap(),
        );
        let target = Target::new(Host::Name("localhost".into()), addr.port());
        let mut conn = c.connect(&target).await.unwrap();
        assert_eq!(conn.info.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(conn.info.route(), "tls > tcp");
        conn.stream.write_all(b"ping").await.unwrap();
        let mut out = Vec::new();
        conn.stream.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"ping");
    }

    #[tokio::test]
    async fn untrusted_certificate_is_certificate_error_unless_insecure() {
        let p = pki();
        let scfg =
            server_config_from_pem(p.chain_pem.as_bytes(), p.key_pem.as_bytes(), &[]).unwrap();
        let addr = serve_once(scfg.clone()).await;
        let mut t = TlsConfig::default();
        t.roots(Roots::None);
        let c = TlsStreamConnector::new(TcpConnector::default(), t.client_config(&[]).unwrap());
        let target = Target::from(addr);
        let e = c.connect(&target).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Certificate, "{e}");

        let addr = serve_once(scfg).await;
        t.insecure(true);
        let c = TlsStreamConnector::new(TcpConnector::default(), t.client_config(&[]).unwrap());
        let mut conn = c.connect(&Target::from(addr)).await.unwrap();
        conn.stream.write_all(b"ping").await.unwrap();
        let mut out = [0u8; 4];
        conn.stream.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"ping");
    }

    #[tokio::test]
    async fn a_ca_certificate_as_the_servers_own_is_explained() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let scfg =
            server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes(), &[])
                .unwrap();
        let addr = serve_once(scfg).await;
        let mut t = TlsConfig::default();
        t.roots(Roots::None).add_root_der(cert.der().clone());
        let c = TlsStreamConnector::new(TcpConnector::default(), t.client_config(&[]).unwrap());
        let target = Target::new(Host::Name("localhost".into()), addr.port());
        let e = c.connect(&target).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Certificate, "{e}");
        assert!(e.to_string().contains("basicConstraints CA:TRUE"), "{e}");
    }

    #[test]
    fn client_config_is_built_once_per_alpn_and_rebuilt_after_a_change() {
        let mut t = TlsConfig::default();
        t.roots(Roots::None).add_root_der(pki().ca_der.clone());
        let a = t.client_config(&[b"h2"]).unwrap();
        assert!(Arc::ptr_eq(&a, &t.client_config(&[b"h2"]).unwrap()));
        assert!(Arc::ptr_eq(&a, &t.clone().client_config(&[b"h2"]).unwrap()));
        let h3 = t.client_config(&[b"h3"]).unwrap();
        assert!(!Arc::ptr_eq(&a, &h3));
        assert_eq!(h3.alpn_protocols, vec![b"h3".to_vec()]);
        let before = t.clone();
        t.insecure(true);
        let b = t.client_config(&[b"h2"]).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        // The clone taken before the change keeps its own configuration.
        assert!(Arc::ptr_eq(&a, &before.client_config(&[b"h2"]).unwrap()));
    }

    #[test]
    fn missing_pem_file_is_invalid_input() {
        let e = TlsConfig::default()
            .add_root_pem_file("/nonexistent/ca.pem")
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
