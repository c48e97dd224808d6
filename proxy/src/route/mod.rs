//! Routes: proxy URLs, one connector per hop, folded nearest first (DESIGN.md).

pub mod url;

pub use url::{ProxyKind, ProxyUrl};
