//! Shared code of the burrow binaries.
#![forbid(unsafe_code)]
