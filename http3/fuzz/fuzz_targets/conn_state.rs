//! Arbitrary orders of peer streams, control bytes and time for the HTTP/3 connection state.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_http3::fuzzing::conn_state_operations(data));
