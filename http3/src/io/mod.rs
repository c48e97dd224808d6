//! The thin async layer: quinn over burrow's datagram flows, the shared connection core,
//! request streams as bodies and tunnels, and the client and server roles.

pub mod client;
pub mod config;
pub(crate) mod conn;
pub mod server;
pub mod socket;
pub mod stream;

pub use conn::H3Datagrams;
