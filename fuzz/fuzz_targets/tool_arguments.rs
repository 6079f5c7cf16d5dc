//! See `wasimancer::fuzzing::tool_arguments` for what is fed and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasimancer::fuzzing::tool_arguments(data));
