//! Fuzz target: any bytes as what a client sends to the TLS port, in
//! pieces. The server session must refuse or wait, never panic, and never
//! hand up plaintext before a handshake completed (see
//! `percore::fuzz::tls_records`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| percore::fuzz::tls_records(data));
