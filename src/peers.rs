//! The other nodes behind the same load balancer, as this node reaches
//! them directly (`--peers NAME=HOST:PORT,…` for `/files/`, `--s3-peers`
//! for S3): listings gather every node's part (objects hash by their full
//! path, so one directory's objects are spread over every node), and S3's
//! bucket changes and copies reach the nodes that hold what they touch. A
//! small HTTP/1.1 client on the shard's own ring: one request per
//! connection (`Connection: close`), every step under a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use percore_io::{IoBuf, TcpStream};

/// How long a peer may take for one step of an exchange: to connect, to
/// take the request, to send the next bytes of its answer.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer read whole from a peer (a listing page of 10,000
/// entries is about 1.5 MB of JSON).
const ANSWER_BYTES_MAX: usize = 16 << 20;

/// Largest head of a peer's answer.
const HEAD_BYTES_MAX: usize = 64 << 10;

/// Bytes asked of the kernel per receive.
const RECV_BYTES: usize = 64 << 10;

/// A peer node.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
}

/// Parses `NAME=HOST:PORT,…` (given as `flag`).
pub(crate) fn parse(spec: &str, flag: &str) -> Result<Vec<Peer>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (name, addr) = part.split_once('=').ok_or_else(|| format!("{flag}: `{part}` is not NAME=HOST:PORT"))?;
            let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("{flag}: cannot resolve `{addr}` for {name}"))?;
            Ok(Peer { name: name.to_string(), addr })
        })
        .collect()
}

/// A request to a peer: `lines` are extra header lines (each ending in
/// CRLF; `Host`, `Content-Length` and `Connection` are added).
pub(crate) struct Ask<'a> {
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) lines: &'a str,
    pub(crate) body: Vec<u8>,
}

/// A peer's whole answer: its status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `GET target` from `peer` (with `authorization`, a header line or
/// empty); the status and body, or why not.
pub(crate) async fn get(peer: &Peer, target: &str, authorization: &str) -> Result<(u16, Vec<u8>), String> {
    let ask = Ask { method: "GET", target, lines: authorization, body: Vec::new() };
    exchange(peer.addr, ask).await.map(|answer| (answer.status, answer.body))
}

/// Sends `ask` to `addr` and reads the whole answer (at most 16 MiB).
pub(crate) async fn exchange(addr: SocketAddr, ask: Ask<'_>) -> Result<Answer, String> {
    let mut streamed = open(addr, ask).await?;
    let body = streamed.rest(ANSWER_BYTES_MAX).await?;
    Ok(Answer { status: streamed.status, body })
}

/// A peer's answer whose body is read piece by piece.
pub(crate) struct Streamed {
    stream: TcpStream,
    pub(crate) status: u16,
    /// Names lowercase.
    pub(crate) headers: Vec<(String, String)>,
    /// Body bytes received with the head, not yet handed out.
    early: Vec<u8>,
    /// Body bytes still to come (`None`: until the peer closes).
    left: Option<u64>,
}

impl Streamed {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The rest of the body, at most `max` bytes.
    pub(crate) async fn rest(&mut self, max: usize) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let piece = self.next(RECV_BYTES).await?;
            if piece.is_empty() {
                return Ok(body);
            }
            if body.len() + piece.len() > max {
                return Err("answer too large".into());
            }
            body.extend_from_slice(&piece);
        }
    }

    /// The next piece of the body, at most `max` bytes; empty at its end.
    pub(crate) async fn next(&mut self, max: usize) -> Result<Vec<u8>, String> {
        let want = self.left.map_or(max, |left| (left.min(max as u64)) as usize);
        if want == 0 {
            return Ok(Vec::new());
        }
        let piece = if !self.early.is_empty() {
            let n = want.min(self.early.len());
            self.early.drain(..n).collect::<Vec<u8>>()
        } else {
            let (received, piece) = step(self.stream.recv(Vec::with_capacity(want))).await?;
            let n = received.map_err(|e| format!("cannot receive: {e}"))?;
            if n == 0 && self.left.is_some() {
                return Err("the answer ended early".into());
            }
            piece
        };
        if let Some(left) = &mut self.left {
            *left -= piece.len() as u64;
        }
        Ok(piece)
    }
}

/// One step under [`PEER_TIMEOUT`].
async fn step<T>(future: impl std::future::Future<Output = T>) -> Result<T, String> {
    percore_io::time::timeout(PEER_TIMEOUT, future).await.map_err(|_| format!("no answer within {PEER_TIMEOUT:?}"))
}

/// Sends `ask` to `addr` and reads the answer's head.
pub(crate) async fn open(addr: SocketAddr, ask: Ask<'_>) -> Result<Streamed, String> {
    let stream = step(TcpStream::connect(addr)).await?.map_err(|e| format!("cannot connect: {e}"))?;
    let Ask { method, target, lines, body } = ask;
    let length = if body.is_empty() && matches!(method, "GET" | "HEAD" | "DELETE") {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{lines}{length}Connection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(&body);
    let (sent, _) = step(stream.send_all(request)).await?;
    sent.map_err(|e| format!("cannot send: {e}"))?;
    let mut answer: Vec<u8> = Vec::with_capacity(RECV_BYTES);
    loop {
        if answer.capacity() - answer.len() < RECV_BYTES / 4 {
            answer.reserve(RECV_BYTES);
        }
        let len = answer.len();
        let (received, back) = step(stream.recv(answer.slice(len..))).await?;
        answer = back.into_inner();
        let n = received.map_err(|e| format!("cannot receive: {e}"))?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&answer) {
            Ok(httparse::Status::Complete(head)) => {
                let status = response.code.unwrap_or(0);
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string()))
                    .collect();
                if header(&headers, "transfer-encoding").is_some() {
                    return Err("a chunked answer (percore's nodes send lengths)".into());
                }
                let left = match header(&headers, "content-length") {
                    _ if method == "HEAD" || status == 204 || status == 304 => Some(0),
                    Some(v) => Some(v.parse::<u64>().map_err(|_| format!("a bad Content-Length `{v}`"))?),
                    None => None,
                };
                let early = answer[head..].to_vec();
                if left.is_some_and(|left| (early.len() as u64) > left) {
                    return Err("more bytes than the answer's Content-Length".into());
                }
                return Ok(Streamed { stream, status, headers, early, left });
            }
            Ok(httparse::Status::Partial) if n > 0 && answer.len() <= HEAD_BYTES_MAX => {}
            Ok(httparse::Status::Partial) if n == 0 => return Err("the connection closed before an answer".into()),
            _ => return Err("malformed answer".into()),
        }
    }
}
