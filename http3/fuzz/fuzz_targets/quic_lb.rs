//! QUIC-LB configurations and connection IDs from the network (decode never panics; our own
//! IDs decode to our server ID).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_http3::fuzzing::quic_lb(data));
