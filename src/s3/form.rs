//! A `multipart/form-data` body (RFC 7578), read as it streams in: the
//! parts' heads and small fields held, the file part handed on piece by
//! piece so that an upload never sits in memory whole. Written here: the
//! crates that parse it (`multer`) want a `futures` stream and a runtime's
//! types around the body; what a browser's form needs is a boundary search
//! (`memchr::memmem`) and the part heads (`httparse`).

use super::body::Body;
use super::error::S3Error;

/// The most bytes of a part's head.
const PART_HEAD_BYTES_MAX: usize = 8 * 1024;

/// The most headers of a part's head.
const PART_HEADERS_MAX: usize = 16;

/// A part's head: its field name, and file name if any.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) name: String,
    pub(crate) filename: Option<String>,
}

/// The boundary of a `multipart/form-data` Content-Type, if it is one.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        let value = value.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("boundary") && (1..=70).contains(&value.len())).then(|| value.to_string())
    })
}

fn malformed(why: &str) -> S3Error {
    S3Error::new(
        400,
        "MalformedPOSTRequest",
        format!("the body of your POST request is not well-formed multipart/form-data: {why}"),
    )
}

/// The form being read.
pub(crate) struct Form {
    /// Read and not yet consumed (starting, between parts, at a delimiter).
    pending: Vec<u8>,
    /// `\r\n--BOUNDARY`: what ends a part (and, with `--`, the form).
    delimiter: Vec<u8>,
}

impl Form {
    pub(crate) fn new(boundary: &str) -> Form {
        // The first delimiter has no line break before it: one is put there.
        Form { pending: b"\r\n".to_vec(), delimiter: format!("\r\n--{boundary}").into_bytes() }
    }

    async fn fill(&mut self, body: &mut Body<'_, '_>) -> Result<(), S3Error> {
        match body.next().await? {
            Some(piece) => {
                self.pending.extend_from_slice(&piece);
                Ok(())
            }
            None => Err(malformed("the form ends before its closing boundary")),
        }
    }

    fn find(&self, needle: &[u8], from: usize) -> Option<usize> {
        memchr::memmem::find(&self.pending[from..], needle).map(|at| at + from)
    }

    /// The next part's head (what is left of the part before it is
    /// skipped), or `None` at the form's end.
    pub(crate) async fn next_part(&mut self, body: &mut Body<'_, '_>) -> Result<Option<Part>, S3Error> {
        loop {
            let Some(at) = self.find(&self.delimiter, 0) else {
                // What cannot start a delimiter is skipped.
                let keep = self.delimiter.len();
                if self.pending.len() > keep {
                    self.pending.drain(..self.pending.len() - keep);
                }
                self.fill(body).await?;
                continue;
            };
            let after = at + self.delimiter.len();
            if self.pending.len() < after + 2 {
                self.fill(body).await?;
                continue;
            }
            match &self.pending[after..after + 2] {
                b"--" => return Ok(None),
                b"\r\n" => {}
                _ => return Err(malformed("a boundary is followed by neither a line break nor --")),
            }
            let start = after + 2;
            let Some(end) = self.find(b"\r\n\r\n", start) else {
                if self.pending.len() - start > PART_HEAD_BYTES_MAX {
                    return Err(malformed("a part's head is too long"));
                }
                self.fill(body).await?;
                continue;
            };
            let part = part(&self.pending[start..end + 4])?;
            self.pending.drain(..end + 4);
            return Ok(Some(part));
        }
    }

    /// The rest of the current part, at most `max` bytes.
    pub(crate) async fn field(&mut self, body: &mut Body<'_, '_>, max: usize) -> Result<Vec<u8>, S3Error> {
        loop {
            if let Some(at) = self.find(&self.delimiter, 0) {
                if at > max {
                    break;
                }
                return Ok(self.pending.drain(..at).collect());
            }
            if self.pending.len() > max + self.delimiter.len() {
                break;
            }
            self.fill(body).await?;
        }
        Err(S3Error::new(400, "MaxPostPreDataLengthExceeded", format!("a form field is over {max} bytes")))
    }

    /// The next piece of the current part, or `None` at its end (a file's
    /// bytes, as they arrive).
    pub(crate) async fn piece(&mut self, body: &mut Body<'_, '_>) -> Result<Option<Vec<u8>>, S3Error> {
        loop {
            if let Some(at) = self.find(&self.delimiter, 0) {
                return Ok((at > 0).then(|| self.pending.drain(..at).collect()));
            }
            // The last bytes may be the start of a delimiter: kept.
            let keep = self.delimiter.len() - 1;
            if self.pending.len() > keep {
                return Ok(Some(self.pending.drain(..self.pending.len() - keep).collect()));
            }
            self.fill(body).await?;
        }
    }
}

/// A part's head (its lines and the blank line after them).
pub(crate) fn part(head: &[u8]) -> Result<Part, S3Error> {
    let mut headers = [httparse::EMPTY_HEADER; PART_HEADERS_MAX];
    let parsed = match httparse::parse_headers(head, &mut headers) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        _ => return Err(malformed("a part's head does not parse")),
    };
    let disposition = parsed
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-disposition"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .ok_or_else(|| malformed("a part has no Content-Disposition"))?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(malformed("a part's Content-Disposition is not form-data"));
    }
    let (mut name, mut filename) = (None, None);
    for param in params.split(';') {
        let Some((key, value)) = param.trim().split_once('=') else { continue };
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value).to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| malformed("a part has no field name"))?;
    Ok(Part { name, filename })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_and_part_heads() {
        assert_eq!(boundary("multipart/form-data; boundary=----abc").as_deref(), Some("----abc"));
        assert_eq!(boundary("Multipart/Form-Data;boundary=\"q r\"").as_deref(), Some("q r"));
        assert_eq!(boundary("multipart/mixed; boundary=x"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        let head =
            b"Content-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\nContent-Type: text/plain\r\n\r\n";
        assert_eq!(part(head).unwrap(), Part { name: "file".into(), filename: Some("a b.txt".into()) });
        assert_eq!(part(b"Content-Disposition: form-data; name=key\r\n\r\n").unwrap().name, "key");
        assert!(part(b"Content-Type: text/plain\r\n\r\n").is_err());
        assert!(part(b"Content-Disposition: attachment; name=\"x\"\r\n\r\n").is_err());
    }
}
