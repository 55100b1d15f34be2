//! Fault injection: make chosen operations fail with chosen errno values, or
//! transfer only part of what they were asked to.
//!
//! Compiled in only with the `fault-injection` cargo feature; without it
//! [`take`] is an inline `None` and costs nothing. Rules are process-wide so
//! that a test (or a daemon started by a test) can aim at any thread. They
//! come from [`inject`] or, once at first use, from the `PERCORE_FAULTS`
//! environment variable:
//!
//! ```text
//! PERCORE_FAULTS="fdatasync=EIO,write=ENOSPC:3@5,send=short"
//! ```
//!
//! `op=what[:count][@skip]`: after letting `skip` matching operations through,
//! fail the next `count` (default: all) with `what` (an errno name or
//! `short`).

/// The kinds of operation a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// openat2
    Open,
    /// read
    Read,
    /// write
    Write,
    /// fsync
    Fsync,
    /// fdatasync
    Fdatasync,
    /// sync_file_range (write back and wait)
    SyncRange,
    /// statx
    Statx,
    /// close
    Close,
    /// renameat
    Rename,
    /// unlinkat
    Unlink,
    /// mkdirat
    Mkdir,
    /// accept (single or multishot)
    Accept,
    /// connect
    Connect,
    /// recv (single or multishot)
    Recv,
    /// send, writev
    Send,
    /// splice
    Splice,
    /// shutdown
    Shutdown,
}

impl OpKind {
    /// Parses the names used in `PERCORE_FAULTS`.
    pub fn from_name(name: &str) -> Option<OpKind> {
        Some(match name {
            "open" => OpKind::Open,
            "read" => OpKind::Read,
            "write" => OpKind::Write,
            "fsync" => OpKind::Fsync,
            "fdatasync" => OpKind::Fdatasync,
            "sync_file_range" => OpKind::SyncRange,
            "statx" => OpKind::Statx,
            "close" => OpKind::Close,
            "rename" => OpKind::Rename,
            "unlink" => OpKind::Unlink,
            "mkdir" => OpKind::Mkdir,
            "accept" => OpKind::Accept,
            "connect" => OpKind::Connect,
            "recv" => OpKind::Recv,
            "send" => OpKind::Send,
            "splice" => OpKind::Splice,
            "shutdown" => OpKind::Shutdown,
            _ => return None,
        })
    }
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation completes with `-errno` without reaching the kernel.
    Errno(i32),
    /// The operation transfers half its length (at least one byte).
    Short,
}

#[cfg(feature = "fault-injection")]
mod imp {
    use super::{Fault, OpKind};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    struct Rule {
        kind: OpKind,
        fault: Fault,
        skip: u64,
        remaining: Option<u64>,
    }

    static RULES: Mutex<Vec<Rule>> = Mutex::new(Vec::new());
    static ACTIVE: AtomicBool = AtomicBool::new(false);
    static FROM_ENV: std::sync::Once = std::sync::Once::new();

    pub(crate) fn inject(kind: OpKind, fault: Fault, skip: u64, count: Option<u64>) {
        let mut rules = RULES.lock().unwrap_or_else(|e| e.into_inner());
        rules.push(Rule { kind, fault, skip, remaining: count });
        ACTIVE.store(true, Ordering::Release);
    }

    pub(crate) fn clear() {
        RULES.lock().unwrap_or_else(|e| e.into_inner()).clear();
        ACTIVE.store(false, Ordering::Release);
    }

    pub(crate) fn take(kind: OpKind) -> Option<Fault> {
        FROM_ENV.call_once(|| {
            if let Ok(spec) = std::env::var("PERCORE_FAULTS") {
                if let Err(err) = super::parse(&spec).map(|rules| {
                    for (kind, fault, skip, count) in rules {
                        inject(kind, fault, skip, count);
                    }
                }) {
                    panic!("PERCORE_FAULTS: {err}");
                }
            }
        });
        if !ACTIVE.load(Ordering::Acquire) {
            return None;
        }
        let mut rules = RULES.lock().unwrap_or_else(|e| e.into_inner());
        let rule = rules.iter_mut().find(|r| r.kind == kind && r.remaining != Some(0))?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        if let Some(n) = &mut rule.remaining {
            *n -= 1;
        }
        Some(rule.fault)
    }
}

/// Adds a rule: after `skip` operations of `kind` pass, the next `count`
/// (all, if `None`) get `fault`.
#[cfg(feature = "fault-injection")]
pub fn inject(kind: OpKind, fault: Fault, skip: u64, count: Option<u64>) {
    imp::inject(kind, fault, skip, count);
}

/// Removes every rule.
#[cfg(feature = "fault-injection")]
pub fn clear() {
    imp::clear();
}

#[cfg(feature = "fault-injection")]
pub(crate) fn take(kind: OpKind) -> Option<Fault> {
    imp::take(kind)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn take(_kind: OpKind) -> Option<Fault> {
    None
}

type ParsedRule = (OpKind, Fault, u64, Option<u64>);

/// Parses a `PERCORE_FAULTS` specification.
///
/// # Errors
/// A message naming the part that does not parse.
pub fn parse(spec: &str) -> Result<Vec<ParsedRule>, String> {
    let mut rules = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (op, rest) = part.split_once('=').ok_or_else(|| format!("`{part}`: expected op=what"))?;
        let kind = OpKind::from_name(op).ok_or_else(|| format!("`{part}`: unknown operation `{op}`"))?;
        let (rest, skip) = match rest.split_once('@') {
            Some((r, s)) => (r, s.parse::<u64>().map_err(|_| format!("`{part}`: bad skip `{s}`"))?),
            None => (rest, 0),
        };
        let (what, count) = match rest.split_once(':') {
            Some((w, c)) => (w, Some(c.parse::<u64>().map_err(|_| format!("`{part}`: bad count `{c}`"))?)),
            None => (rest, None),
        };
        let fault = match what {
            "short" => Fault::Short,
            name => Fault::Errno(errno_from_name(name).ok_or_else(|| format!("`{part}`: unknown errno `{name}`"))?),
        };
        rules.push((kind, fault, skip, count));
    }
    Ok(rules)
}

fn errno_from_name(name: &str) -> Option<i32> {
    Some(match name {
        "EIO" => libc::EIO,
        "ENOSPC" => libc::ENOSPC,
        "EAGAIN" => libc::EAGAIN,
        "ECANCELED" => libc::ECANCELED,
        "EMFILE" => libc::EMFILE,
        "ENFILE" => libc::ENFILE,
        "EINTR" => libc::EINTR,
        "EDQUOT" => libc::EDQUOT,
        "EROFS" => libc::EROFS,
        "ENOMEM" => libc::ENOMEM,
        "ECONNRESET" => libc::ECONNRESET,
        "EPIPE" => libc::EPIPE,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let rules = parse("fdatasync=EIO, write=ENOSPC:3@5,send=short").unwrap();
        assert_eq!(rules[0], (OpKind::Fdatasync, Fault::Errno(libc::EIO), 0, None));
        assert_eq!(rules[1], (OpKind::Write, Fault::Errno(libc::ENOSPC), 5, Some(3)));
        assert_eq!(rules[2], (OpKind::Send, Fault::Short, 0, None));
        assert!(parse("nope=EIO").is_err());
        assert!(parse("write=EWHAT").is_err());
    }
}
