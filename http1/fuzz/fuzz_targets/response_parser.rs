//! Arbitrary bytes and arbitrary read splits into the HTTP/1.1 response parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_http1::fuzzing::response_parser(data));
