//! A DNS-over-HTTPS server for tests (RFC 8484 POSTs over cleartext HTTP/1.1): names under
//! `.burrow.test` are 127.0.0.1, every other name does not exist. It checks what a DoH
//! client must send (POST, `application/dns-message`, id 0) and counts the queries.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A running DoH server.
pub struct DohServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Queries answered.
    pub queries: Arc<AtomicUsize>,
}

impl DohServer {
    /// Starts one on a loopback port.
    pub async fn start() -> std::io::Result<DohServer> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let s = DohServer {
            addr: l.local_addr()?,
            queries: Arc::default(),
        };
        let queries = s.queries.clone();
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                tokio::spawn(serve(c, queries.clone()));
            }
        });
        Ok(s)
    }

    /// `http://127.0.0.1:PORT/dns-query`.
    pub fn url(&self) -> String {
        format!("http://{}/dns-query", self.addr)
    }

    /// Queries answered so far.
    pub fn count(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

async fn serve(mut s: TcpStream, queries: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    while let Some((head, wire)) = crate::wire::read_request(&mut s, &mut buf).await {
        let head = head.to_ascii_lowercase();
        let ok =
            head.starts_with("post ") && head.contains("content-type: application/dns-message");
        let answer = match (ok, Message::from_vec(&wire)) {
            (true, Ok(q)) if q.id() == 0 && !q.queries().is_empty() => answer(&q),
            _ => None,
        };
        let reply = match answer {
            Some(body) => {
                queries.fetch_add(1, Ordering::SeqCst);
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/dns-message\r\n\
                     content-length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(&body);
                r
            }
            None => b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n".to_vec(),
        };
        if s.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn answer(q: &Message) -> Option<Vec<u8>> {
    let query = q.queries()[0].clone();
    let mut a = Message::new();
    a.set_id(0).set_message_type(MessageType::Response);
    a.add_query(query.clone());
    if !query.name().to_ascii().ends_with(".burrow.test.") {
        a.set_response_code(ResponseCode::NXDomain);
    } else if query.query_type() == RecordType::A {
        a.add_answer(Record::from_rdata(
            query.name().clone(),
            60,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        ));
    }
    a.to_vec().ok()
}
