//! Listen addresses as users write them, and who may write through them.
//!
//! `--listen` takes an IP address with its port (`127.0.0.1:8080`,
//! `[::1]:8080`), a host name with a port (`localhost:8080`: every address
//! it resolves to), `:PORT` or a bare `PORT` (every IPv4 interface, as
//! nginx's `listen 8080`); it may be given several times.
//!
//! Safe by default: without a write token, anyone who reaches the daemon
//! may PUT and DELETE, so it listens only on loopback addresses (the
//! default is `127.0.0.1:8080`) unless the operator says otherwise with
//! `--allow-anonymous-writes`.

use std::error::Error;
use std::net::{SocketAddr, ToSocketAddrs};

use percore_io::{ListenOptions, TcpListener};

/// The default listen address: loopback only.
pub(crate) const DEFAULT: &str = "127.0.0.1:8080";

/// Where HTTPS listens when certificates are given and no --listen-tls.
pub(crate) const DEFAULT_TLS: &str = "127.0.0.1:8443";

/// Parses one `--listen` value into the addresses it names.
pub(crate) fn parse(text: &str) -> Result<Vec<SocketAddr>, String> {
    let text = text.trim();
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port_only.parse().map_err(|_| format!("--listen `{text}`: the port must be 0-65535"))?;
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], port))]);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let hint = "give IP:PORT (127.0.0.1:8080, [::1]:8080), HOST:PORT (localhost:8080), :PORT or PORT";
    if !text.contains(':') {
        return Err(format!("--listen `{text}` has no port: {hint}"));
    }
    let mut addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("--listen `{text}`: cannot resolve the host ({e}); {hint}"))?
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(format!("--listen `{text}`: the host resolves to no address; {hint}"));
    }
    Ok(addrs)
}

/// What a listener speaks; travels with each connection it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// percore's own API over plain HTTP.
    Plain,
    /// percore's own API over HTTPS.
    Tls,
    /// The S3 API over plain HTTP (`--s3-listen`).
    S3,
    /// The S3 API over HTTPS (`--s3-listen-tls`).
    S3Tls,
}

impl Kind {
    /// The address as a URL, for the start-up line.
    pub(crate) fn url(self, addr: SocketAddr) -> String {
        match self {
            Kind::Plain => format!("http://{addr}"),
            Kind::Tls => format!("https://{addr}"),
            Kind::S3 => format!("http://{addr} (S3)"),
            Kind::S3Tls => format!("https://{addr} (S3)"),
        }
    }

    pub(crate) fn tls(self) -> bool {
        matches!(self, Kind::Tls | Kind::S3Tls)
    }

    pub(crate) fn s3(self) -> bool {
        matches!(self, Kind::S3 | Kind::S3Tls)
    }
}

/// Who may write, as the start-up line says it.
pub(crate) fn writers(write_token: bool, allow_anonymous: bool) -> &'static str {
    match (write_token, allow_anonymous) {
        (true, _) => "writes need the write token",
        (false, true) => "anyone who can connect may write (--allow-anonymous-writes)",
        (false, false) => "anyone on this machine may write (loopback only; set --write-token to listen wider)",
    }
}

/// Refuses addresses reachable from other machines when nothing guards
/// writes and the operator has not allowed that.
pub(crate) fn check_exposure(addrs: &[SocketAddr], write_token: bool, allow_anonymous: bool) -> Result<(), String> {
    if write_token || allow_anonymous {
        return Ok(());
    }
    match addrs.iter().find(|a| !a.ip().is_loopback()) {
        None => Ok(()),
        Some(exposed) => Err(format!(
            "--listen {exposed} is reachable from other machines and no --write-token is set, so anyone who can \
             connect could PUT and DELETE files: set --write-token (or PERCORE_WRITE_TOKEN), listen on a loopback \
             address such as {DEFAULT}, or pass --allow-anonymous-writes to allow it"
        )),
    }
}

/// One shard's listeners, one per listen address, with what each speaks.
pub(crate) type ShardListeners = Vec<(TcpListener, Kind)>;

/// Binds `count` listeners with `SO_REUSEPORT` on each address of
/// `every`, and returns them by shard (each shard one listener per
/// address) with the addresses bound (and what they speak).
///
/// `SO_REUSEPORT` would let a second daemon join a port silently and take
/// half its connections (serving another data directory), so each address is
/// first claimed by a plain socket, which fails if anything listens there;
/// it also picks the port when an address has port 0.
#[allow(clippy::type_complexity, reason = "used once, named by its doc")]
pub(crate) fn bind_all(
    every: &[(SocketAddr, Kind)],
    count: usize,
) -> Result<(Vec<ShardListeners>, Vec<(SocketAddr, Kind)>), Box<dyn Error>> {
    let mut by_shard: Vec<ShardListeners> = (0..count).map(|_| Vec::new()).collect();
    let mut bound_addrs = Vec::new();
    for &(addr, kind) in every {
        let probe = std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("cannot listen on {addr}: something (another percore?) already listens there; stop it or pick another --listen address")
            }
            std::io::ErrorKind::AddrNotAvailable => {
                format!("cannot listen on {addr}: no interface of this machine has that address ({e})")
            }
            _ => format!("cannot listen on {addr}: {e}"),
        })?;
        let bound = probe.local_addr()?;
        drop(probe);
        let options = ListenOptions { reuse_port: true, ..ListenOptions::default() };
        for listeners in &mut by_shard {
            listeners.push((TcpListener::bind_with(bound, &options)?, kind));
        }
        bound_addrs.push((bound, kind));
    }
    Ok((by_shard, bound_addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> SocketAddr {
        let addrs = parse(text).unwrap();
        assert_eq!(addrs.len(), 1, "{text}: {addrs:?}");
        addrs[0]
    }

    #[test]
    fn the_forms_users_write() {
        assert_eq!(one("127.0.0.1:8080"), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(one("[::1]:9000"), "[::1]:9000".parse().unwrap());
        assert_eq!(one(":8080"), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(one("8080"), "0.0.0.0:8080".parse().unwrap());
        let local = parse("localhost:8081").unwrap();
        assert!(!local.is_empty() && local.iter().all(|a| a.ip().is_loopback() && a.port() == 8081), "{local:?}");
        for bad in ["", "localhost", "99999", ":x", "no-such-host.invalid:80"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("--listen"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_loopback_without_a_write_token_unless_allowed() {
        let loopback = [one("127.0.0.1:1"), one("[::1]:1"), one("127.0.0.9:1")];
        let exposed = [one("127.0.0.1:1"), one("8080")];
        assert!(check_exposure(&loopback, false, false).is_ok());
        let err = check_exposure(&exposed, false, false).unwrap_err();
        assert!(err.contains("0.0.0.0:8080") && err.contains("--write-token"), "{err}");
        assert!(err.contains("--allow-anonymous-writes"), "{err}");
        assert!(check_exposure(&exposed, true, false).is_ok());
        assert!(check_exposure(&exposed, false, true).is_ok());
    }
}
