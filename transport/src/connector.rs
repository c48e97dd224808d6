//! Connectors: turn a [`Target`] into a byte stream or a datagram flow.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{BoxFlow, Connected, Result, Target};

/// Turns a [`Target`] into a [`ByteStream`](crate::ByteStream). Direct connectors resolve
/// names; tunnel connectors hand the name to the proxy (no DNS leak).
#[async_trait]
pub trait StreamConnector: Send + Sync + 'static {
    /// Opens a byte stream to `target`.
    async fn connect(&self, target: &Target) -> Result<Connected>;

    /// Describes this level of the route, e.g. `tcp` or `CONNECT@h2 proxy:443 > tcp`.
    fn describe(&self) -> String;
}

/// Turns a [`Target`] into a [`DatagramFlow`](crate::DatagramFlow).
#[async_trait]
pub trait DatagramConnector: Send + Sync + 'static {
    /// Opens a datagram flow to `target`.
    async fn connect_datagram(&self, target: &Target) -> Result<BoxFlow>;

    /// Describes this level of the route.
    fn describe(&self) -> String;
}

#[async_trait]
impl<T: StreamConnector + ?Sized> StreamConnector for Arc<T> {
    async fn connect(&self, target: &Target) -> Result<Connected> {
        (**self).connect(target).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

#[async_trait]
impl<T: DatagramConnector + ?Sized> DatagramConnector for Arc<T> {
    async fn connect_datagram(&self, target: &Target) -> Result<BoxFlow> {
        (**self).connect_datagram(target).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
