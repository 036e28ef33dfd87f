#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| authgate::fuzz_targets::jwt_signature(data));
