//! See `burrow_proxy::fuzzing::ip_session`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::ip_session(data));
