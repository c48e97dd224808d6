//! Shared code of the burrow binaries: the CLI, the in-process test origin, a test PKI.
#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod matrix;
pub mod origin;
pub mod pki;
pub mod proxy_cli;
