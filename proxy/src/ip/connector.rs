//! TCP and UDP through an [`IpStack`], as the connectors a route level is made of.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use burrow_transport::{
    BoxFlow, Connected, DatagramConnector, Error, Hop, Result, SharedResolver, StreamConnector,
    StreamInfo, Target,
};

use super::stack::IpStack;

/// TCP and UDP through an [`IpStack`], as connectors. Names are resolved on this side (by
/// the route's resolver), as a `socks5://` hop resolves them: RFC 9484 gives the tunnel no
/// resolver of its own.
pub struct StackConnector {
    /// The stack, or how to get one.
    pub stack: Arc<dyn StackSource>,
    /// What this level is called in routes.
    pub label: String,
    /// The hop errors of this level are put down to (the proxy carrying the tunnel).
    pub hop: Hop,
    /// Resolves target names (the route's resolver, or the system's).
    pub resolver: SharedResolver,
}

/// Where a [`StackConnector`] gets its stack: opened once, reopened when it ends.
#[async_trait]
pub trait StackSource: Send + Sync + 'static {
    /// A running stack.
    async fn stack(&self) -> Result<IpStack>;
}

/// Where to reach `target` through `stack`: its address, or its name's first address of
/// a family the tunnel assigned one of (names resolved on this side, with the resolver's
/// deadline).
async fn address(
    resolver: &SharedResolver,
    stack: &IpStack,
    target: &Target,
) -> Result<SocketAddr> {
    if let Some(a) = target.socket_addr() {
        return Ok(a);
    }
    let addrs = burrow_transport::resolve::resolve_target(&**resolver, target).await?;
    addrs
        .iter()
        .copied()
        .find(|a| stack.has_family(a.is_ipv6()))
        .or_else(|| addrs.first().copied())
        .ok_or_else(|| Error::resolve(format!("{target}: no address")))
}

#[async_trait]
impl StreamConnector for StackConnector {
    async fn connect(&self, target: &Target) -> Result<Connected> {
        let at = |e: Error| e.at_hop(self.hop.clone());
        let stack = self.stack.stack().await.map_err(at)?;
        let to = address(&self.resolver, &stack, target).await.map_err(at)?;
        let s = stack.tcp(to).await.map_err(at)?;
        Ok(Connected {
            stream: Box::new(s),
            info: StreamInfo {
                peer_addr: Some(to),
                alpn: None,
                layers: vec![format!("tcp over {}", stack.describe)],
                local_addr: None,
                abort: None,
                timings: burrow_transport::ConnectTimings {
                    routed: Some(std::time::Instant::now()),
                    ..Default::default()
                },
            },
        })
    }

    fn describe(&self) -> String {
        format!("tcp over {}", self.label)
    }
}

#[async_trait]
impl DatagramConnector for StackConnector {
    async fn connect_datagram(&self, target: &Target) -> Result<BoxFlow> {
        let at = |e: Error| e.at_hop(self.hop.clone());
        let stack = self.stack.stack().await.map_err(at)?;
        let to = address(&self.resolver, &stack, target).await.map_err(at)?;
        Ok(Arc::new(stack.udp(to).map_err(at)?))
    }

    fn describe(&self) -> String {
        format!("udp over {}", self.label)
    }
}
