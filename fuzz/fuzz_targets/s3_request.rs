//! Fuzz target: any bytes as an S3 request, head and body: header and query
//! parsing, keys as store paths, the signature check (which must never
//! pass without the secret), the aws-chunked decoder, the XML reader, the
//! CORS rules parser and a form part's head (see
//! `percore::fuzz::s3_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    percore::fuzz::s3_request(data);
});
