//! See `wasimancer::fuzzing::plugins_yml` for what is fed and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasimancer::fuzzing::plugins_yml(data));
