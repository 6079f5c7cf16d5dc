//! See `wasimancer::fuzzing::control_frames` for what is fed and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasimancer::fuzzing::control_frames(data));
