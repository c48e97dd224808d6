//! HTTP/1.1 codec throughput: parsing response heads and decoding chunked bodies.
#![allow(missing_docs, clippy::unwrap_used)]

use burrow_http1::proto::{Connection, Event, Limits, RequestHead, Role};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::Method;

fn response_head(c: &mut Criterion) {
    let mut wire = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 22 Nov 2026 03:00:00 GMT\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\nConnection: keep-alive\r\nETag: \"abc\"\r\nAccept-Ranges: bytes\r\n".to_vec();
    for i in 0..12 {
        wire.extend(format!("X-Header-{i}: some value of moderate length {i}\r\n").bytes());
    }
    wire.extend(b"\r\n");
    let mut g = c.benchmark_group("http1");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("response_head_20_fields", |b| {
        b.iter(|| {
            let mut conn = Connection::new(Role::Client, Limits::default());
            conn.send_request(RequestHead::new(Method::GET, "/").header("host", "h"))
                .unwrap();
            conn.send_end(None).unwrap();
            conn.receive(&wire);
            let mut n = 0;
            while let Ok(Some(e)) = conn.poll_event() {
                if matches!(e, Event::Response(_)) {
                    n += 1;
                }
            }
            assert_eq!(n, 1);
        })
    });
    g.finish();
}

fn chunked_body(c: &mut Criterion) {
    let chunk = vec![b'x'; 16 * 1024];
    let mut body = Vec::new();
    for _ in 0..64 {
        body.extend(format!("{:x}\r\n", chunk.len()).bytes());
        body.extend(&chunk);
        body.extend(b"\r\n");
    }
    body.extend(b"0\r\n\r\n");
    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    wire.extend(&body);
    let wire = Bytes::from(wire);
    let mut g = c.benchmark_group("http1");
    g.throughput(Throughput::Bytes(64 * 16 * 1024));
    g.bench_function("chunked_1mib_in_64k_reads", |b| {
        b.iter(|| {
            let mut conn = Connection::new(Role::Client, Limits::default());
            conn.send_request(RequestHead::new(Method::GET, "/").header("host", "h"))
                .unwrap();
            conn.send_end(None).unwrap();
            let mut total = 0;
            for piece in wire.chunks(64 * 1024) {
                conn.receive(piece);
                while let Ok(Some(e)) = conn.poll_event() {
                    if let Event::Data(d) = e {
                        total += d.len();
                    }
                }
            }
            assert_eq!(total, 64 * 16 * 1024);
        })
    });
    g.finish();
}

criterion_group!(benches, response_head, chunked_body);
criterion_main!(benches);
