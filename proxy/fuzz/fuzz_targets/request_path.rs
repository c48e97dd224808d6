//! See `burrow_proxy::fuzzing::request_path`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::request_path(data));
