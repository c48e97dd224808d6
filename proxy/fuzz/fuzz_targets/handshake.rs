//! Arbitrary tunnel requests, versions, SETTINGS and answers for the handshake core.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_test_support::fuzz::handshake_answers(data));
