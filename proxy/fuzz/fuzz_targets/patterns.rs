//! Arbitrary user input to the built-in hooks' parsers.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::patterns(data));
