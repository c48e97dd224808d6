//! See `burrow_proxy::fuzzing::proxy_url`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::proxy_url(data));
