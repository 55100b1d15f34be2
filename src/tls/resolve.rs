//! Which certificate a handshake gets: the one whose names match the
//! client's SNI (exact, then a `*.` wildcard one label up), else the
//! default (the first configured) or, with `--tls-unknown-sni refuse`, no
//! certificate (the handshake ends with an alert).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// What a handshake with an unknown (or no) SNI name gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnknownSni {
    /// The first configured certificate.
    Default,
    /// An alert: the handshake fails.
    Refuse,
}

/// A shard's certificates by name.
#[derive(Debug)]
pub(crate) struct ByName {
    /// Every certificate, the default first.
    keys: Vec<Arc<CertifiedKey>>,
    /// Lower-case DNS name (or `*.suffix`) → index in `keys`; the first
    /// certificate to claim a name keeps it.
    names: HashMap<String, usize>,
    unknown: UnknownSni,
}

impl ByName {
    /// `keys[i]` is valid for `names[i]` (from its certificate's DNS names).
    pub(crate) fn new(keys: Vec<Arc<CertifiedKey>>, names: &[Vec<String>], unknown: UnknownSni) -> ByName {
        let mut by_name = HashMap::new();
        for (i, names) in names.iter().enumerate() {
            for name in names {
                by_name.entry(name.to_ascii_lowercase()).or_insert(i);
            }
        }
        ByName { keys, names: by_name, unknown }
    }

    /// The index of the certificate for `sni`, if one claims it.
    fn find(&self, sni: &str) -> Option<usize> {
        let sni = sni.to_ascii_lowercase();
        if let Some(&i) = self.names.get(&sni) {
            return Some(i);
        }
        let (_, parent) = sni.split_once('.')?;
        self.names.get(&format!("*.{parent}")).copied()
    }

    fn pick(&self, sni: Option<&str>) -> Option<usize> {
        match (sni.and_then(|name| self.find(name)), self.unknown) {
            (Some(i), _) => Some(i),
            (None, UnknownSni::Default) => Some(0),
            (None, UnknownSni::Refuse) => None,
        }
    }
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name()).map(|i| self.keys[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name(unknown: UnknownSni) -> ByName {
        let names = vec![vec!["a.test".to_string()], vec!["B.test".into(), "*.b.test".into()]];
        ByName { keys: Vec::new(), names: ByName::new(Vec::new(), &names, unknown).names, unknown }
    }

    #[test]
    fn exact_then_wildcard_then_the_default_or_nothing() {
        let d = by_name(UnknownSni::Default);
        assert_eq!(d.pick(Some("a.test")), Some(0));
        assert_eq!(d.pick(Some("b.TEST")), Some(1), "names compare without case");
        assert_eq!(d.pick(Some("x.b.test")), Some(1), "one label under the wildcard");
        assert_eq!(d.pick(Some("y.x.b.test")), Some(0), "a wildcard covers one label only");
        assert_eq!(d.pick(Some("other.test")), Some(0), "unknown: the default");
        assert_eq!(d.pick(None), Some(0), "no SNI: the default");
        let r = by_name(UnknownSni::Refuse);
        assert_eq!(r.pick(Some("other.test")), None);
        assert_eq!(r.pick(None), None);
        assert_eq!(r.pick(Some("a.test")), Some(0));
    }
}
