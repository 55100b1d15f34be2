//! Fuzz target: any string as the path after `/files/`. No accepted path
//! may climb out of the data directory or hide a separator (see
//! `percore::fuzz::object_path`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        percore::fuzz::object_path(s);
    }
});
