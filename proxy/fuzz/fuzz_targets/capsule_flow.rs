//! Arbitrary operation orders on the CONNECT-UDP capsule flow core.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_test_support::fuzz::capsule_flow_operations(data));
