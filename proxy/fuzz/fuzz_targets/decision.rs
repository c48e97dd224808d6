//! Arbitrary input orders for the proxy's decision core.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::decision_operations(data));
