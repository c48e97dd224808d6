//! HTTP/1.1 settings for both roles.

use std::time::Duration;

use crate::proto::Limits;

/// HTTP/1.1 settings for both roles: limits on what the peer may send and, for servers,
/// deadlines. The defaults bound memory (64 KiB heads, 100 fields) and set no deadline,
/// as any library server; burrow-proxy sets them.
#[derive(Clone, Debug, Default)]
pub struct Http1Config {
    pub(crate) limits: Limits,
    pub(crate) head_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) connect_http10: bool,
    pub(crate) spelling: bool,
}

impl Http1Config {
    /// Largest header block (and trailer block) accepted, in bytes.
    pub fn max_head_bytes(&mut self, n: usize) -> &mut Self {
        self.limits.max_head_bytes = n;
        self
    }

    /// Most header fields accepted in one block.
    pub fn max_headers(&mut self, n: usize) -> &mut Self {
        self.limits.max_headers = n;
        self
    }

    /// Server: a whole request head must arrive within this from its first byte, or the
    /// connection is answered 408 and closed (a client dripping bytes is not "active").
    pub fn head_timeout(&mut self, d: Option<Duration>) -> &mut Self {
        self.head_timeout = d;
        self
    }

    /// Server: a connection waiting for its next (or first) request is closed after this.
    pub fn idle_timeout(&mut self, d: Option<Duration>) -> &mut Self {
        self.idle_timeout = d;
        self
    }

    /// Client: CONNECT requests say `HTTP/1.0` (curl's `--proxy1.0`, for proxies that know
    /// no better); everything else stays HTTP/1.1.
    pub fn connect_http10(&mut self, on: bool) -> &mut Self {
        self.connect_http10 = on;
        self
    }

    /// Client: each response carries a [`Spelling`](burrow_http_core::Spelling) extension,
    /// how its head was spelled (reason phrase, field-name case), for tools that show
    /// heads as they came (curl's `-i`); off by default: it copies each name.
    pub fn keep_spelling(&mut self, on: bool) -> &mut Self {
        self.spelling = on;
        self
    }
}
