//! See `wasimancer::fuzzing::upload_form` for what is fed and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasimancer::fuzzing::upload_form(data));
