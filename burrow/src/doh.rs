//! DNS over HTTPS (RFC 8484, feature `doh`): names resolved by a DoH server reached with a
//! burrow [`Client`], so through that client's route. Give the resolver to another client
//! with [`ClientBuilder::resolver`](crate::ClientBuilder::resolver), both on the same
//! proxies, and no name that client resolves is ever asked of the local DNS (curl's
//! `--doh-url`, which sends its queries directly).
//!
//! Queries are POSTs of `application/dns-message` with id 0 (RFC 8484 §4.1), `A` and `AAAA`
//! at once; an answer is at most [`MAX_DOH_RESPONSE`] bytes and comes within the
//! [`DOH_TIMEOUT`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use burrow_transport::{Error, ErrorKind, Resolve, Result};

use crate::Client;

/// How long one lookup may take, both queries together.
pub const DOH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest DoH answer read (a DNS message is at most 65535 bytes).
pub const MAX_DOH_RESPONSE: usize = 65_535;

const DNS_MESSAGE: &str = "application/dns-message";

/// Resolves names with a DoH server, through the route of the client it was given.
#[derive(Clone, Debug)]
pub struct DohResolver {
    client: Client,
    url: http::Uri,
}

impl DohResolver {
    /// Asks the DoH server at `url` (`https://dns.example/dns-query`; `http://` is allowed
    /// for tests and trusted networks) with `client`.
    pub fn new(client: Client, url: &str) -> Result<DohResolver> {
        let url: http::Uri = url
            .parse()
            .map_err(|_| Error::invalid_input("the DoH URL does not parse"))?;
        if !matches!(url.scheme_str(), Some("https" | "http")) || url.host().is_none() {
            return Err(Error::invalid_input(
                "the DoH URL must be an http(s) URL with a host",
            ));
        }
        Ok(DohResolver { client, url })
    }

    /// The server as errors name it: host and port, never a userinfo.
    fn server(&self) -> String {
        burrow_http_core::target::authority(&self.url).unwrap_or_default()
    }

    async fn query(&self, name: &Name, kind: RecordType) -> Result<Vec<IpAddr>> {
        let mut m = Message::new();
        m.set_id(0)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(name.clone(), kind));
        let wire = m.to_vec().map_err(|e| {
            Error::local(ErrorKind::InvalidInput, "cannot encode the DNS query").with_source(e)
        })?;
        let server = self.server();
        let fail = |why: String| Error::resolve(format!("DoH server {server}: {why}"));
        let mut resp = self
            .client
            .post(self.url.to_string())
            .header(http::header::CONTENT_TYPE, DNS_MESSAGE)
            .header(http::header::ACCEPT, DNS_MESSAGE)
            .body(wire)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(fail(format!("answered {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(c) = resp.chunk().await? {
            if body.len() + c.len() > MAX_DOH_RESPONSE {
                return Err(fail(format!("answer longer than {MAX_DOH_RESPONSE} bytes")));
            }
            body.extend_from_slice(&c);
        }
        let answer = Message::from_vec(&body)
            .map_err(|e| fail("the answer is not a DNS message".into()).with_source(e))?;
        match answer.response_code() {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => return Ok(Vec::new()),
            code => return Err(fail(format!("DNS error {code}"))),
        }
        Ok(answer
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect())
    }
}

#[async_trait]
impl Resolve for DohResolver {
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>> {
        let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.'))).map_err(|e| {
            Error::invalid_input(format!("{name:?} is not a DNS name")).with_source(e)
        })?;
        let both = async {
            let (v4, v6) = tokio::join!(
                self.query(&fqdn, RecordType::A),
                self.query(&fqdn, RecordType::AAAA)
            );
            (v4, v6)
        };
        let (v4, v6) = tokio::time::timeout(DOH_TIMEOUT, both).await.map_err(|_| {
            Error::peer_timeout(format!(
                "DoH server {}: no answer for {name} within {DOH_TIMEOUT:?}",
                self.server()
            ))
        })?;
        let mut addrs = Vec::new();
        let mut first_err = None;
        for r in [v4, v6] {
            match r {
                Ok(ips) => addrs.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port))),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        if addrs.is_empty() {
            return Err(first_err.unwrap_or_else(|| {
                Error::resolve(format!(
                    "{name}: no such name (DoH server {})",
                    self.server()
                ))
            }));
        }
        Ok(addrs)
    }
}
