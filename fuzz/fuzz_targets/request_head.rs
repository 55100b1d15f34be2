//! Fuzz target: any bytes as an HTTP/1.1 request head. The parser must
//! answer (a request, "more bytes", or a 4xx/5xx) without panicking, and keep
//! its promises (see `percore::fuzz::request_head`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| percore::fuzz::request_head(data));
