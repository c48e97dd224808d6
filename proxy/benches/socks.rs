//! SOCKS5 handshakes through the sans-I/O client and server cores, back to back.
#![allow(missing_docs, clippy::unwrap_used)]

use burrow_http_core::credentials::Credentials;
use burrow_proxy::socks::client::{Dialect, SocksClient};
use burrow_proxy::socks::server::SocksServer;
use burrow_proxy::socks::wire::{Command, Reply};
use criterion::{criterion_group, criterion_main, Criterion};

fn handshake(c: &mut Criterion) {
    let creds = Credentials {
        user: "user".into(),
        pass: "password".into(),
    };
    let target: burrow_transport::Target = "www.example.com:443".parse().unwrap();
    c.bench_function("socks5/handshake_with_auth", |b| {
        b.iter(|| {
            let mut cl = SocksClient::new(
                Dialect::V5(Some(creds.clone())),
                Command::Connect,
                target.clone(),
            )
            .unwrap();
            let mut sv = SocksServer::new(Some(creds.clone()));
            loop {
                while let Some(x) = cl.poll_transmit() {
                    sv.receive(&x);
                }
                if let Ok(Some(_)) = sv.poll_event() {
                    sv.reply(Reply::SUCCEEDED, None);
                }
                while let Some(x) = sv.poll_transmit() {
                    cl.receive(&x);
                }
                if cl.poll_done().unwrap().is_some() {
                    break;
                }
            }
        })
    });
}

criterion_group!(benches, handshake);
criterion_main!(benches);
