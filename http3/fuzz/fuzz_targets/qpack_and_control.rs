//! Arbitrary bytes into QPACK, SETTINGS and the control-stream reader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_http3::fuzzing::qpack_and_control(data));
