//! Client bytes with arbitrary read splits into the SOCKS server core.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::socks_server(data));
