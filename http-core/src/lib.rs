//! # burrow-http-core
#![forbid(unsafe_code)]
