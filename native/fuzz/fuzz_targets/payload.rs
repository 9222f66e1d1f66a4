//! Fuzz target: see `strata_core::fuzz::payload`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_core::fuzz::payload(data));
