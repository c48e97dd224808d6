//! Helpers shared by burrow's tests (as h2's `h2-support`): a throwaway PKI, loopback echo
//! servers, a deterministic byte generator. Unpublished; only ever a dev-dependency.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod netns;

use std::net::SocketAddr;
use std::sync::Arc;

use burrow_transport::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use burrow_transport::rustls::ServerConfig;
use burrow_transport::{Roots, TlsConfig};
use tokio::net::{TcpListener, UdpSocket};

/// A CA and a leaf certificate for `localhost` and `127.0.0.1`.
pub struct Pki {
    /// The CA certificate.
    pub ca: CertificateDer<'static>,
    /// The leaf chain (leaf only).
    pub chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

impl Pki {
    /// Generates a fresh CA and leaf.
    pub fn new() -> Pki {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&leaf_key, &rcgen::Issuer::new(ca_params, ca_key))
            .unwrap();
        Pki {
            ca: ca.der().clone(),
            chain: vec![leaf.der().clone()],
            key: leaf_key.serialize_der(),
        }
    }

    /// The leaf's private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }

    /// Client TLS settings trusting only this CA.
    pub fn trust(&self) -> TlsConfig {
        let mut t = TlsConfig::default();
        t.roots(Roots::None).add_root_der(self.ca.clone());
        t
    }

    /// A server configuration offering `alpn`.
    pub fn server(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        burrow_transport::tls::server_config(self.chain.clone(), self.key(), alpn).unwrap()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A TCP echo server on loopback.
pub async fn tcp_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    a
}

/// A UDP echo server on loopback.
pub async fn udp_echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    a
}

/// A deterministic stream of pseudo-random bytes (xorshift), for property tests.
pub fn rng(seed: u64) -> impl FnMut() -> u8 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 32) as u8
    }
}

pub mod doh;
pub mod fuzz;
pub mod playbook;
pub mod wire;
