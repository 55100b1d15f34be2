//! `percore rebalance`: after the ring changes (a node added or removed),
//! moves the objects this node no longer owns to their new owners, each
//! by an HTTP PUT to the owner's own address, verified by reading it back
//! byte for byte; with `--delete`, the local copy is removed only then.
//! Resumable: a run that stops part-way is simply run again (what was
//! moved and deleted is gone here; what was copied and not yet deleted is
//! copied again, harmlessly). deploy/README.md gives the whole procedure.
//!
//! What S3 keeps with an object (its ETag, Content-Type, `x-amz-meta-*`,
//! checksum) goes with it in the PUT's `X-Percore-S3` header
//! (`s3::carried`), and S3's folders (directories marked as keys that end
//! in `/`) move as marks: `PUT /files/<dir>/` with the header; `--delete`
//! removes the old mark. Every bucket, with its own settings (CORS rules,
//! tags), is made first on every peer that lacks it: `PUT
//! /files/<bucket>/` with the header.
//!
//! It runs beside the node on the same data directory, outside the
//! daemon: an operator's tool, plain blocking sockets, one connection per
//! peer (the daemon's own paths stay on io_uring).

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::ring::Ring;
use crate::s3::carried::{self, Bucket, Carried};
use crate::s3::meta::{self, Folder};

/// What stays unencoded in an object's path: RFC 3986's unreserved
/// characters and the slash (what the daemon's own listings link to).
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Time any one exchange with a peer may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// `percore rebalance` options.
#[derive(clap::Args, Debug)]
pub(crate) struct RebalanceArgs {
    /// The node's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// This node's name in the ring.
    #[arg(long)]
    node_name: String,
    /// The new ring, as every node will run it (NAME=ID:WEIGHT,…); without this node when it is being removed.
    #[arg(long)]
    ring: String,
    /// Where each other node listens: NAME=HOST:PORT, comma-separated.
    #[arg(long, value_delimiter = ',')]
    peer: Vec<String>,
    /// Bearer token for the peers' writes and reads.
    #[arg(long, env = "PERCORE_WRITE_TOKEN", hide_env_values = true)]
    write_token: Option<String>,
    /// Remove each local copy once its new owner holds the same bytes.
    #[arg(long)]
    delete: bool,
    /// Only count what would move, to which node.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn run(args: RebalanceArgs) -> Result<(), Box<dyn Error>> {
    // This node may be leaving the ring: then every object goes.
    let ring = Ring::parse_leaving(&args.ring, &args.node_name)?;
    let mut peers: BTreeMap<String, String> = BTreeMap::new();
    for spec in &args.peer {
        let (name, addr) = spec.split_once('=').ok_or_else(|| format!("--peer `{spec}` is not NAME=HOST:PORT"))?;
        peers.insert(name.to_string(), addr.to_string());
    }
    let mut objects = Vec::new();
    let mut folders = Vec::new();
    walk(&args.data_dir, &args.data_dir, &mut objects, &mut folders)?;
    let mut connections: BTreeMap<String, Peer> = BTreeMap::new();
    let auth = args.write_token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    // Every bucket first, on every peer, with its own settings: a node
    // that joins then holds every bucket, an empty one too (it would
    // answer NoSuchBucket for one the other nodes hold), before its keys.
    let buckets = buckets(&args.data_dir)?;
    let mut buckets_made: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for node in peers.keys().filter(|node| **node != args.node_name) {
        let entry = buckets_made.entry(node.clone()).or_default();
        for (name, settings) in &buckets {
            if args.dry_run {
                entry.1 += 1;
                continue;
            }
            let (addr, peer) = connection(&mut connections, &peers, node, name)?;
            let carried = format!("{}: {}\r\n", carried::HEADER, Carried::Bucket(settings.clone()).encode());
            let head =
                format!("PUT /files/{name}/ HTTP/1.1\r\nHost: {addr}\r\n{auth}{carried}Content-Length: 0\r\n\r\n");
            match peer.exchange(&head, &[])? {
                (201, _) => entry.0 += 1,
                (200, _) => entry.1 += 1,
                (status, answer) => {
                    let why = String::from_utf8_lossy(&answer);
                    return Err(format!("node {node} answered {status} to the bucket {name}: {}", why.trim()).into());
                }
            }
        }
    }
    let mut moved: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut kept = 0usize;
    for (rel, file) in &objects {
        let target = format!("/files/{}", utf8_percent_encode(rel, PATH_SET));
        let Some(owner) = ring.elsewhere(&target) else {
            kept += 1;
            continue;
        };
        let entry = moved.entry(owner.to_string()).or_default();
        if args.dry_run {
            entry.0 += 1;
            continue;
        }
        let (addr, peer) = connection(&mut connections, &peers, owner, rel)?;
        // The bytes and what S3 keeps with them, of one version (the open
        // file's, whatever replaces it meanwhile).
        let read = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
        let mut opened = std::fs::File::open(file).map_err(read)?;
        let carried = s3_meta(&opened)?.map(|c| format!("{}: {}\r\n", carried::HEADER, c.encode())).unwrap_or_default();
        let mut bytes = Vec::new();
        opened.read_to_end(&mut bytes).map_err(read)?;
        let (status, _) = peer.exchange(
            &format!("PUT {target} HTTP/1.1\r\nHost: {addr}\r\n{auth}{carried}Content-Length: {}\r\n\r\n", bytes.len()),
            &bytes,
        )?;
        if !matches!(status, 200 | 201 | 204) {
            return Err(format!("node {owner} answered {status} to the PUT of {rel}; nothing deleted").into());
        }
        let (status, stored) = peer.exchange(&format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n"), &[])?;
        if status != 200 || stored != bytes {
            return Err(format!(
                "node {owner} does not hold the same bytes of {rel} after the PUT ({status}); nothing deleted"
            )
            .into());
        }
        if args.delete {
            std::fs::remove_file(file).map_err(|e| format!("cannot remove {}: {e}", file.display()))?;
        }
        entry.0 += 1;
        entry.1 += bytes.len() as u64;
    }
    let mut folders_moved: BTreeMap<String, usize> = BTreeMap::new();
    for (rel, dir, folder) in folders {
        let target = format!("/files/{}/", utf8_percent_encode(&rel, PATH_SET));
        let Some(owner) = ring.elsewhere(&target) else { continue };
        *folders_moved.entry(owner.to_string()).or_default() += 1;
        if args.dry_run {
            continue;
        }
        let (addr, peer) = connection(&mut connections, &peers, owner, &format!("{rel}/"))?;
        let carried = format!("{}: {}\r\n", carried::HEADER, Carried::Folder(folder).encode());
        let head = format!("PUT {target} HTTP/1.1\r\nHost: {addr}\r\n{auth}{carried}Content-Length: 0\r\n\r\n");
        let (status, _) = peer.exchange(&head, &[])?;
        if !matches!(status, 200 | 201) {
            return Err(format!("node {owner} answered {status} to the folder {rel}/; its mark stays here").into());
        }
        if args.delete {
            // The mark goes; the directory stays (it may hold other keys).
            rustix::fs::removexattr(&dir, meta::FOLDER_XATTR)
                .map_err(|e| format!("cannot unmark the folder {}: {e}", dir.display()))?;
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("cannot flush {}: {e}", dir.display()))?;
        }
    }
    let verb = if args.dry_run {
        "would move"
    } else if args.delete {
        "moved"
    } else {
        "copied"
    };
    for (node, (made, there)) in &buckets_made {
        if args.dry_run {
            println!("would make sure each of {there} buckets is on {node}, with its settings");
        } else {
            println!("made {made} buckets (with their CORS rules and tags) on {node}; {there} were there");
        }
    }
    for (node, (count, bytes)) in &moved {
        println!("{verb} {count} objects ({bytes} bytes) to {node}");
    }
    for (node, count) in &folders_moved {
        println!("{verb} {count} S3 folders to {node}");
    }
    println!("kept {kept} of {} objects here (this node owns them in the new ring)", objects.len());
    Ok(())
}

/// The connection to node `name` (made on first use), and its address;
/// `what` names what goes there, for the error if it has no `--peer`.
fn connection<'c>(
    connections: &'c mut BTreeMap<String, Peer>,
    peers: &'c BTreeMap<String, String>,
    name: &str,
    what: &str,
) -> Result<(&'c str, &'c mut Peer), Box<dyn Error>> {
    let addr = peers.get(name).ok_or_else(|| format!("no --peer address for node {name} (for {what})"))?;
    let peer = match connections.entry(name.to_string()) {
        std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::btree_map::Entry::Vacant(entry) => entry.insert(Peer::connect(addr)?),
    };
    Ok((addr, peer))
}

/// The buckets of the data directory `root` (its top-level directories
/// named as S3 names buckets), each with its own settings.
fn buckets(root: &Path) -> Result<Vec<(String, Bucket)>, Box<dyn Error>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| format!("cannot list {}: {e}", root.display()))? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if !entry.file_type()?.is_dir() || crate::s3::keys::check_bucket(&name).is_err() {
            continue;
        }
        let dir = std::fs::File::open(entry.path()).map_err(|e| format!("cannot open the bucket {name}: {e}"))?;
        out.push((name, Bucket::read(&dir)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Every stored object under `dir` (path relative to `root`, file), and
/// every S3 folder (path relative to `root`, directory, its mark).
/// Temporary files of uploads under way are skipped.
fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
    folders: &mut Vec<(String, PathBuf, Folder)>,
) -> Result<(), Box<dyn Error>> {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).starts_with(crate::files::TEMP_PREFIX) {
            continue;
        }
        let kind = entry.file_type()?;
        let path = entry.path();
        let rel = || -> Result<String, Box<dyn Error>> {
            Ok(path.strip_prefix(root)?.to_str().ok_or_else(|| format!("{} is not UTF-8", path.display()))?.to_string())
        };
        if kind.is_dir() {
            if let Some(folder) = folder_mark(&path)? {
                folders.push((rel()?, path.clone(), folder));
            }
            walk(root, &path, out, folders)?;
        } else if kind.is_file() {
            out.push((rel()?, path.clone()));
        }
    }
    Ok(())
}

/// The S3 folder the directory at `path` is, if it is one (read as the
/// daemon reads it).
fn folder_mark(path: &Path) -> Result<Option<Folder>, Box<dyn Error>> {
    let dir = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok(meta::read_folder(&dir))
}

/// What S3 keeps with the open `file`, if S3 wrote this version of it.
fn s3_meta(file: &std::fs::File) -> Result<Option<Carried>, Box<dyn Error>> {
    let stat = file.metadata()?;
    let stamp = crate::files::etag_of(stat.ino(), stat.size(), (stat.mtime(), stat.mtime_nsec() as u32));
    Ok(meta::read(file, &stamp).map(|m| Carried::Object { etag: m.etag, headers: m.headers }))
}

/// A kept-alive connection to a peer node.
struct Peer {
    reader: BufReader<TcpStream>,
}

impl Peer {
    fn connect(addr: &str) -> Result<Peer, Box<dyn Error>> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("cannot reach {addr}: {e}"))?;
        // A request goes out whole; Nagle would hold a body's last segment
        // for the ACK of the first (40 ms a request).
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(PEER_TIMEOUT))?;
        stream.set_write_timeout(Some(PEER_TIMEOUT))?;
        Ok(Peer { reader: BufReader::new(stream) })
    }

    /// Sends a request head and body; returns the status and the body.
    fn exchange(&mut self, head: &str, body: &[u8]) -> Result<(u16, Vec<u8>), Box<dyn Error>> {
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        self.reader.get_mut().write_all(&request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 =
            line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer)?;
        Ok((status, answer))
    }
}
