//! # burrow-http3
#![forbid(unsafe_code)]
pub mod fuzzing;
pub mod proto;
