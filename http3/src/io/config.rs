//! HTTP/3 and QUIC settings.

use std::sync::Arc;
use std::time::Duration;

use burrow_transport::{Error, QUIC_MIN_DATAGRAM};
use quinn::{IdleTimeout, TransportConfig, VarInt};

/// QUIC's initial MTU for an ordinary connection: the 1200-byte minimum (RFC 9000 §14).
pub const DEFAULT_INITIAL_MTU: u16 = 1200;
/// Initial MTU for a connection to a proxy that may carry QUIC inside its datagrams: a
/// 1200-byte inner packet plus tunnel overhead must fit (DESIGN.md: ≥ 1350).
pub const PROXY_INITIAL_MTU: u16 = 1400;
/// Default receive window per stream: 2 MiB. quinn buffers what a lagging reader has not
/// read yet, several times the window in memory at worst (its reassembly keeps whole
/// datagram buffers): at 8 MiB a download's peak RSS grew from 15 to 23 MiB with its size,
/// at 2 MiB it stays at 11 MiB, and loopback downloads stay ahead of reqwest's (whose quinn
/// default is 1.25 MB). At a 100 ms round trip it allows 20 MiB/s per stream.
pub const DEFAULT_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Default receive window per connection: 32 MiB.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Default buffer for received HTTP Datagrams not yet read: 1 MiB.
pub const DEFAULT_DATAGRAM_BUFFER: usize = 1024 * 1024;
/// Default deadline for the peer's SETTINGS (a server closes a connection without them
/// with H3_MISSING_SETTINGS; a client gives up an extended CONNECT that needs them).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for a whole request head on a request stream (server).
pub const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default interval of QUIC keep-alive (PING) frames: an idle connection still hears
/// from its peer every few seconds, and a dead peer (or an ICMP port unreachable in answer
/// to a PING) is noticed soon.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(3);
/// Default QUIC idle timeout: a peer silent this long (several keep-alives lost) is dead.
pub const DEFAULT_QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most interim (1xx) responses a client accepts before a final one.
pub const MAX_INTERIM_RESPONSES: usize = burrow_http_core::MAX_INTERIM_RESPONSES;
/// Largest received field section (SETTINGS_MAX_FIELD_SECTION_SIZE we announce).
pub const MAX_FIELD_SECTION_SIZE: u64 = crate::proto::qpack::MAX_FIELD_SECTION_SIZE;

/// HTTP/3 settings for both roles.
#[derive(Clone, Debug)]
pub struct Http3Config {
    pub(crate) initial_mtu: u16,
    pub(crate) mtu_discovery: bool,
    pub(crate) stream_window: u32,
    pub(crate) connection_window: u32,
    pub(crate) idle_timeout: Duration,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) datagram_buffer: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) request_head_timeout: Duration,
    pub(crate) quic_lb: Option<crate::quic_lb::QuicLb>,
}

impl Default for Http3Config {
    fn default() -> Self {
        Http3Config {
            initial_mtu: DEFAULT_INITIAL_MTU,
            mtu_discovery: false,
            stream_window: DEFAULT_STREAM_WINDOW,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            idle_timeout: DEFAULT_QUIC_IDLE_TIMEOUT,
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            max_concurrent_streams: 256,
            datagram_buffer: DEFAULT_DATAGRAM_BUFFER,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            request_head_timeout: DEFAULT_REQUEST_HEAD_TIMEOUT,
            quic_lb: None,
        }
    }
}

impl Http3Config {
    /// QUIC's initial MTU (at least 1200). Use [`PROXY_INITIAL_MTU`] for a proxy connection
    /// that will carry QUIC: quinn clamps to 1200, after which only 1162 bytes of datagram
    /// payload remain, too few for an inner QUIC packet.
    pub fn initial_mtu(&mut self, mtu: u16) -> &mut Self {
        self.initial_mtu = mtu.max(1200);
        self
    }

    /// Path MTU discovery (only meaningful on a real UDP socket; off inside tunnels).
    pub fn mtu_discovery(&mut self, on: bool) -> &mut Self {
        self.mtu_discovery = on;
        self
    }

    /// Receive window per stream.
    pub fn stream_window(&mut self, bytes: u32) -> &mut Self {
        self.stream_window = bytes;
        self
    }

    /// Receive window per connection.
    pub fn connection_window(&mut self, bytes: u32) -> &mut Self {
        self.connection_window = bytes;
        self
    }

    /// Idle timeout of the QUIC connection.
    pub fn idle_timeout(&mut self, d: Duration) -> &mut Self {
        self.idle_timeout = d;
        self
    }

    /// Interval of QUIC keep-alive PINGs, or `None` for none. With keep-alives a dead peer
    /// is noticed after the idle timeout even when nothing else is sent.
    pub fn keep_alive(&mut self, every: Option<Duration>) -> &mut Self {
        self.keep_alive = every;
        self
    }

    /// Deadline for the peer's SETTINGS after the QUIC handshake.
    pub fn handshake_timeout(&mut self, d: Duration) -> &mut Self {
        self.handshake_timeout = d;
        self
    }

    /// Server: deadline for a whole request head on a request stream; a stream that has
    /// not sent one by then is reset with H3_REQUEST_INCOMPLETE.
    pub fn request_head_timeout(&mut self, d: Duration) -> &mut Self {
        self.request_head_timeout = d;
        self
    }

    /// Server: concurrent request streams a client may open.
    pub fn max_concurrent_streams(&mut self, n: u32) -> &mut Self {
        self.max_concurrent_streams = n;
        self
    }

    /// Server: issue routable connection IDs under this QUIC-LB configuration (default:
    /// quinn's random 8-octet IDs), so that a QUIC-aware load balancer can route every
    /// packet of a connection to this server by its destination connection ID.
    pub fn quic_lb(&mut self, lb: Option<crate::quic_lb::QuicLb>) -> &mut Self {
        self.quic_lb = lb;
        self
    }

    pub(crate) fn transport(&self) -> Result<Arc<TransportConfig>, Error> {
        let mut t = TransportConfig::default();
        t.initial_mtu(self.initial_mtu)
            .stream_receive_window(VarInt::from_u32(self.stream_window))
            .receive_window(VarInt::from_u32(self.connection_window))
            .send_window(u64::from(self.connection_window))
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_concurrent_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(16))
            .keep_alive_interval(self.keep_alive)
            .datagram_receive_buffer_size(Some(self.datagram_buffer))
            .datagram_send_buffer_size(self.datagram_buffer)
            .max_idle_timeout(Some(
                IdleTimeout::try_from(self.idle_timeout)
                    .map_err(|_| Error::invalid_input("idle timeout too large"))?,
            ));
        if !self.mtu_discovery {
            t.mtu_discovery_config(None);
        }
        Ok(Arc::new(t))
    }
}

/// Fails when a flow cannot carry a QUIC packet of the configured size (RFC 9000 §14.1):
/// a clear error instead of a handshake that times out.
pub(crate) fn check_flow(max_datagram: usize, initial_mtu: u16) -> Result<(), Error> {
    let need = usize::from(initial_mtu).max(QUIC_MIN_DATAGRAM);
    if max_datagram < need {
        return Err(Error::unsupported(format!(
            "this path carries datagrams of at most {max_datagram} bytes; QUIC needs {need} \
                 (raise the initial MTU of the QUIC connection to the proxy, e.g. to 1400)"
        )));
    }
    Ok(())
}
