//! See `burrow_proxy::fuzzing::uri_template`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::uri_template(data));
