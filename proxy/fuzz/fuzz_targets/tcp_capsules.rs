//! See `burrow_proxy::fuzzing::tcp_capsules`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::tcp_capsules(data));
