//! See `wasimancer::fuzzing::plugin_data` for what is fed and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasimancer::fuzzing::plugin_data(data));
