#![no_main]
// Body in pgsalvage::fuzzing::wal_segment, which tests/fuzz_regressions.rs also replays on stable.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsalvage::fuzzing::wal_segment(data));
