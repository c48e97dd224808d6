//! Request-stream bytes with arbitrary read splits into the HTTP/3 message reader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_http3::fuzzing::message_reader(data));
