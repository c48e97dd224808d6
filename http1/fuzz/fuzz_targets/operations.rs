//! Arbitrary orders of client and server operations on the HTTP/1.1 core.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_http1::fuzzing::operations(data));
