//! Fuzz target `jwt`. The checks live in the library, so that
//! `tests/seeds.rs` replays the seeds through them on stable.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| closedloop_fuzz::jwt::check(data));
