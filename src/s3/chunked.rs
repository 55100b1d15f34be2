//! `aws-chunked` bodies (`Content-Encoding: aws-chunked`): the payload in
//! chunks `SIZE[;chunk-signature=SIG]\r\nDATA\r\n`, a zero-size chunk, then
//! trailer lines (`x-amz-checksum-crc32:...`) and an empty line. Signed
//! chunks are checked against the signature chain as each one ends.
//! Hand-written: no maintained crate decodes it (the SDKs only encode).

use aws_lc_rs::digest;

use super::error::S3Error;
use super::sigv4::Chain;

/// The longest chunk header or trailer line.
const LINE_BYTES_MAX: usize = 4096;
/// The most trailer bytes.
const TRAILER_BYTES_MAX: usize = 16 * 1024;

enum State {
    Header,
    Data { left: u64 },
    DataEnd,
    Trailer,
    Done,
}

pub(crate) struct Decoder {
    state: State,
    /// A header or trailer line (or the CRLF after data) not yet complete.
    line: Vec<u8>,
    /// The signature chain, for signed chunks.
    chain: Option<Box<Chain>>,
    /// The current chunk's signature and its data's running hash.
    chunk: Option<(String, digest::Context)>,
    trailer_bytes: usize,
    /// Trailer fields, names lowercase (the signature line excluded).
    pub(crate) trailers: Vec<(String, String)>,
    trailer_signature: Option<String>,
}

fn bad(message: impl Into<String>) -> S3Error {
    S3Error::new(400, "IncompleteBody", message)
}

fn signature_mismatch() -> S3Error {
    S3Error::new(403, "SignatureDoesNotMatch", "a chunk signature of the aws-chunked body does not match")
}

impl Decoder {
    pub(crate) fn new(chain: Option<Box<Chain>>) -> Decoder {
        Decoder {
            state: State::Header,
            line: Vec::new(),
            chain,
            chunk: None,
            trailer_bytes: 0,
            trailers: Vec::new(),
            trailer_signature: None,
        }
    }

    /// Decodes `input`, appending the payload's bytes to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), S3Error> {
        while !input.is_empty() {
            match self.state {
                State::Done => return Err(bad("bytes after the end of the aws-chunked body")),
                State::Data { left } => {
                    let take = (input.len() as u64).min(left) as usize;
                    out.extend_from_slice(&input[..take]);
                    if let Some((_, hash)) = &mut self.chunk {
                        hash.update(&input[..take]);
                    }
                    input = &input[take..];
                    self.state =
                        if left == take as u64 { State::DataEnd } else { State::Data { left: left - take as u64 } };
                }
                State::DataEnd => {
                    let need = 2 - self.line.len();
                    let take = need.min(input.len());
                    self.line.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.line.len() == 2 {
                        if self.line != b"\r\n" {
                            return Err(bad("no CRLF after a chunk's data"));
                        }
                        self.line.clear();
                        self.end_chunk()?;
                        self.state = State::Header;
                    }
                }
                State::Header | State::Trailer => {
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > LINE_BYTES_MAX {
                            return Err(bad("an aws-chunked header line is too long"));
                        }
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..=end]);
                    input = &input[end + 1..];
                    if self.line.len() > LINE_BYTES_MAX {
                        return Err(bad("an aws-chunked header line is too long"));
                    }
                    let line = std::mem::take(&mut self.line);
                    let text = line
                        .strip_suffix(b"\r\n")
                        .and_then(|l| std::str::from_utf8(l).ok())
                        .ok_or_else(|| bad("an aws-chunked line must be UTF-8 ending in CRLF"))?;
                    match self.state {
                        State::Header => self.header(text)?,
                        _ => self.trailer(text)?,
                    }
                }
            }
        }
        Ok(())
    }

    fn header(&mut self, text: &str) -> Result<(), S3Error> {
        let (size, ext) = text.split_once(';').unwrap_or((text, ""));
        let size = u64::from_str_radix(size.trim(), 16).map_err(|_| bad(format!("invalid chunk size `{size}`")))?;
        if self.chain.is_some() {
            let signature = ext
                .trim()
                .strip_prefix("chunk-signature=")
                .ok_or_else(|| bad("a signed aws-chunked body needs chunk-signature on every chunk"))?;
            self.chunk = Some((signature.to_string(), digest::Context::new(&digest::SHA256)));
        }
        if size == 0 {
            // The final chunk: its (empty) data is signed too.
            self.end_chunk()?;
            self.state = State::Trailer;
        } else {
            self.state = State::Data { left: size };
        }
        Ok(())
    }

    fn end_chunk(&mut self) -> Result<(), S3Error> {
        if let (Some(chain), Some((signature, hash))) = (&mut self.chain, self.chunk.take()) {
            if !chain.next(hash.finish().as_ref(), &signature) {
                return Err(signature_mismatch());
            }
        }
        Ok(())
    }

    fn trailer(&mut self, text: &str) -> Result<(), S3Error> {
        if text.is_empty() {
            self.state = State::Done;
            return Ok(());
        }
        self.trailer_bytes += text.len() + 2;
        if self.trailer_bytes > TRAILER_BYTES_MAX {
            return Err(bad("the aws-chunked trailer is too large"));
        }
        let (name, value) = text.split_once(':').ok_or_else(|| bad("a trailer line must be name:value"))?;
        let name = name.trim().to_ascii_lowercase();
        if name == "x-amz-trailer-signature" {
            self.trailer_signature = Some(value.trim().to_string());
        } else {
            self.trailers.push((name, value.trim().to_string()));
        }
        Ok(())
    }

    /// Checks the body ended, and the trailer's signature when signed.
    pub(crate) fn finish(&self, trailer_signed: bool) -> Result<(), S3Error> {
        if !matches!(self.state, State::Done) {
            return Err(bad("the aws-chunked body ended before its final chunk"));
        }
        if let (Some(chain), true) = (&self.chain, trailer_signed) {
            let lines: String = self.trailers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
            let given = self.trailer_signature.as_deref().unwrap_or("");
            if !chain.trailer(&lines, given) {
                return Err(signature_mismatch());
            }
        }
        Ok(())
    }

    pub(crate) fn trailer_value(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_with_a_trailer_in_any_pieces() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        for split in 1..body.len() {
            let mut d = Decoder::new(None);
            let mut out = Vec::new();
            d.feed(&body[..split], &mut out).unwrap();
            d.feed(&body[split..], &mut out).unwrap();
            d.finish(false).unwrap();
            assert_eq!(out, b"hello world", "split at {split}");
            assert_eq!(d.trailer_value("x-amz-checksum-crc32"), Some("DUoRhQ=="));
        }
        let mut d = Decoder::new(None);
        let mut out = Vec::new();
        d.feed(b"5\r\nhello\r\n", &mut out).unwrap();
        assert!(d.finish(false).is_err(), "no final chunk");
        assert!(Decoder::new(None).feed(b"zz\r\n", &mut out).is_err());
        assert!(Decoder::new(None).feed(b"1\r\nabc", &mut out).is_err(), "no CRLF after data");
    }
}
