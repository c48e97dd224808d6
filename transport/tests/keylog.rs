//! `SSLKEYLOGFILE` makes the client write TLS secrets (its own test binary: it sets the
//! environment variable for the whole process).
#![allow(clippy::unwrap_used, missing_docs)]

use burrow_transport::{
    tls, Roots, StreamConnector, Target, TcpConnector, TlsConfig, TlsStreamConnector,
};

#[tokio::test]
async fn keylog_file_receives_client_secrets() {
    let path = std::env::temp_dir().join(format!("burrow-keylog-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&path);
    std::env::set_var("SSLKEYLOGFILE", &path);

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let scfg =
        tls::server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes(), &[])
            .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let _ = tls::accept(Box::new(s), scfg).await;
    });
    let mut t = TlsConfig::default();
    t.roots(Roots::None).add_root_der(cert.der().clone());
    let c = TlsStreamConnector::new(TcpConnector::default(), t.client_config(&[]).unwrap());
    let target: Target = format!("localhost:{port}").parse().unwrap();
    c.connect(&target).await.unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(log.contains("CLIENT_HANDSHAKE_TRAFFIC_SECRET "), "{log}");
    assert!(log.contains("CLIENT_TRAFFIC_SECRET_0 "), "{log}");
}
