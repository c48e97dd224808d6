//! # burrow-transport
//!
//! How bytes and datagrams move in burrow. Two seams carry everything above:
//!
//! * [`ByteStream`]: an ordered, reliable byte stream (TCP, TLS over any byte stream,
//!   CONNECT tunnels, SOCKS CONNECT);
//! * [`DatagramFlow`]: a connected, unreliable datagram flow (UDP, CONNECT-UDP, SOCKS5 UDP).
//!
//! A [`StreamConnector`] turns a [`Target`] into a `ByteStream`, a [`DatagramConnector`]
//! turns one into a `DatagramFlow`. Routes are built by stacking connectors; only the direct
//! ones here ([`TcpConnector`], [`UdpConnector`]) resolve names.
//!
//! ```no_run
//! use burrow_transport::{StreamConnector, TcpConnector, TlsConfig, TlsStreamConnector, Target};
//! # async fn demo() -> burrow_transport::Result<()> {
//! let tls = TlsConfig::default().client_config(&[b"http/1.1"])?;
//! let connector = TlsStreamConnector::new(TcpConnector::default(), tls);
//! let conn = connector.connect(&"example.com:443".parse::<Target>()?).await?;
//! println!("{} alpn={:?}", conn.info.route(), conn.info.alpn);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod code;
mod connector;
pub mod datagram;
mod error;
pub mod happy_eyeballs;
pub mod ip;
pub mod pin;
pub mod resolve;
mod stream;
mod target;
pub mod tcp;
pub mod tls;
pub mod udp;
mod verifiers;

pub use code::WireCode;
pub use connector::{DatagramConnector, StreamConnector};
pub use datagram::{BoxFlow, DatagramFlow, QUIC_MIN_DATAGRAM};
pub use error::{BoxError, Error, ErrorKind, Fault, Hop, Result};
pub use ip::{BoxIpFlow, IpAssignment, IpConnector, IpFlow, IpRoute, IpScope};
#[cfg(feature = "hickory")]
pub use resolve::HickoryResolver;
pub use resolve::{Resolve, SharedResolver, StaticResolver, SystemResolver};
pub use stream::{
    BoxStream, ByteStream, ConnectTimings, Connected, MapIoErr, Prefixed, StreamInfo,
};
pub use target::{Host, Target, MAX_HOST_NAME_LEN};
pub use tcp::{TcpConfig, TcpConnector};
pub use tls::{Roots, TlsConfig, TlsStreamConnector, TlsVersion};
pub use udp::{UdpConnector, UdpFlow};

/// Re-exported so users configure TLS with the same rustls version.
pub use rustls;
