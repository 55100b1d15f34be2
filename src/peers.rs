//! The other nodes behind the same load balancer, as this node reaches
//! them directly (`--peers NAME=HOST:PORT,…`): a directory listing is the
//! only answer that needs them (objects hash by their full path, so one
//! directory's objects are spread over every node). A small HTTP/1.1
//! client on the shard's own ring: one request per connection
//! (`Connection: close`), every step under a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use percore_io::{IoBuf, TcpStream};

/// How long a peer may take to answer one listing request.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer read from a peer (a listing page of 10,000 entries is
/// about 1.5 MB of JSON).
const ANSWER_BYTES_MAX: usize = 16 << 20;

/// A peer node.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
}

/// Parses `NAME=HOST:PORT,…`.
pub(crate) fn parse(spec: &str) -> Result<Vec<Peer>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (name, addr) =
                part.split_once('=').ok_or_else(|| format!("--peers: `{part}` is not NAME=HOST:PORT"))?;
            let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("--peers: cannot resolve `{addr}` for {name}"))?;
            Ok(Peer { name: name.to_string(), addr })
        })
        .collect()
}

/// `GET target` from `peer` (with `authorization`, a header line or
/// empty); the status and body, or why not.
pub(crate) async fn get(peer: &Peer, target: &str, authorization: &str) -> Result<(u16, Vec<u8>), String> {
    let fetched = percore_io::time::timeout(PEER_TIMEOUT, fetch(peer.addr, target, authorization)).await;
    match fetched {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {PEER_TIMEOUT:?}")),
    }
}

async fn fetch(addr: SocketAddr, target: &str, authorization: &str) -> Result<(u16, Vec<u8>), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("cannot connect: {e}"))?;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n");
    let (sent, _) = stream.send_all(request.into_bytes()).await;
    sent.map_err(|e| format!("cannot send: {e}"))?;
    let mut answer: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        if answer.capacity() - answer.len() < 16 * 1024 {
            answer.reserve(64 * 1024);
        }
        let len = answer.len();
        let (received, back) = stream.recv(answer.slice(len..)).await;
        answer = back.into_inner();
        match received {
            Ok(0) => break,
            Ok(_) if answer.len() > ANSWER_BYTES_MAX => return Err("answer too large".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot receive: {e}")),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&answer) {
        Ok(httparse::Status::Complete(head)) => {
            let status = response.code.unwrap_or(0);
            Ok((status, answer[head..].to_vec()))
        }
        _ => Err("malformed answer".into()),
    }
}
