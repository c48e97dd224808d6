//! # burrow-http1
#![forbid(unsafe_code)]
