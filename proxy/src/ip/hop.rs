//! A `?connect=ip` hop: TCP and UDP to every target through one CONNECT-IP tunnel to the
//! proxy, carried by an [`IpStack`]; the tunnel is opened at first use and again when it
//! ended.

use std::sync::Arc;

use async_trait::async_trait;
use burrow_transport::{BoxIpFlow, Hop, IpConnector, IpScope, Result};

use super::connector::StackSource;
use super::stack::IpStack;
use crate::route::http_hop::HttpHop;

/// One CONNECT-IP hop (see the module docs).
pub struct IpHop {
    http: Arc<HttpHop>,
    hop: Hop,
    stack: tokio::sync::Mutex<Option<IpStack>>,
}

impl IpHop {
    /// A hop opening its tunnels through `http`, called `hop` in errors.
    pub fn new(http: Arc<HttpHop>, hop: Hop) -> IpHop {
        IpHop {
            http,
            hop,
            stack: tokio::sync::Mutex::new(None),
        }
    }
}

#[async_trait]
impl StackSource for IpHop {
    async fn stack(&self) -> Result<IpStack> {
        let mut s = self.stack.lock().await;
        if let Some(st) = s.as_ref().filter(|st| !st.is_closed()) {
            return Ok(st.clone());
        }
        let flow = self.http.connect_ip(&IpScope::default()).await?;
        let st = IpStack::new(Arc::new(flow)).map_err(|e| e.at_hop(self.hop.clone()))?;
        *s = Some(st.clone());
        Ok(st)
    }
}

#[async_trait]
impl IpConnector for IpHop {
    async fn connect_ip(&self, scope: &IpScope) -> Result<BoxIpFlow> {
        Ok(Arc::new(self.http.connect_ip(scope).await?))
    }

    fn describe(&self) -> String {
        format!("CONNECT-IP@{}", self.hop.label)
    }
}
