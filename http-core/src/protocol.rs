//! How HTTP versions plug into the version-agnostic [`Client`](crate::Client).

use std::sync::Arc;

use async_trait::async_trait;
use burrow_transport::{BoxStream, Result};
use http::Version;

use crate::{ConnectionInfo, HttpConnection};

/// An HTTP version that runs over a byte stream (HTTP/1.1, HTTP/2): its ALPN id and its
/// client handshake.
#[async_trait]
pub trait StreamProtocol: Send + Sync + 'static {
    /// The ALPN protocol id (`h2`, `http/1.1`).
    fn alpn(&self) -> &'static [u8];

    /// The version it speaks.
    fn version(&self) -> Version;

    /// Starts the client side over `stream` (TLS already done when there is TLS).
    async fn handshake(
        &self,
        stream: BoxStream,
        info: ConnectionInfo,
    ) -> Result<Arc<dyn HttpConnection>>;
}

/// An HTTP version that runs over a datagram flow (HTTP/3): its ALPN id and its client
/// handshake over a [`DatagramFlow`](burrow_transport::DatagramFlow).
#[async_trait]
pub trait DatagramProtocol: Send + Sync + 'static {
    /// The ALPN protocol id (`h3`).
    fn alpn(&self) -> &'static [u8];

    /// Starts the client side over `flow`, verifying the server as `server_name` with `tls`.
    async fn handshake(
        &self,
        flow: burrow_transport::BoxFlow,
        server_name: &str,
        tls: &burrow_transport::TlsConfig,
        info: ConnectionInfo,
    ) -> Result<Arc<dyn HttpConnection>>;
}
