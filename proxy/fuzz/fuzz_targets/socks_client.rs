//! See `burrow_proxy::fuzzing::socks_client`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::socks_client(data));
