//! Arbitrary checkouts, outcomes and time for the connection pool.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_test_support::fuzz::pool_operations(data));
