//! Session tickets that every shard can open: a resumed client may land on
//! any core. One set of keys for the daemon, made and rotated by the
//! control thread (`serve`) and handed to every shard over the mesh; each
//! shard then encrypts and decrypts with its own copy, so the handshake
//! path touches nothing another shard writes (rustls' own rotating
//! ticketer would be one lock shared by all of them).
//!
//! A ticket is `key name (16) ‖ nonce (12) ‖ AES-256-GCM(state)`, the key
//! name as associated data. Tickets sealed under the newest key or the one
//! before it are accepted, so a ticket lives between one and two rotation
//! periods; keys are random and only ever in memory (a restart invalidates
//! every ticket, which costs a full handshake, nothing more).

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// How often the control thread makes a new ticket key; tickets are
/// advertised for this long (and accepted for up to twice it).
pub(crate) const ROTATE_EVERY_SECS: u32 = 6 * 60 * 60;

/// Bytes of a key's name, the ticket's first bytes.
const NAME_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// One ticket key: its random name and its secret.
#[derive(Clone)]
pub(crate) struct TicketKey {
    name: [u8; NAME_LEN],
    secret: [u8; KEY_LEN],
}

impl TicketKey {
    /// A fresh random key.
    pub(crate) fn generate() -> Result<TicketKey, String> {
        let rng = SystemRandom::new();
        let mut key = TicketKey { name: [0; NAME_LEN], secret: [0; KEY_LEN] };
        rng.fill(&mut key.name).map_err(|_| "no randomness for a ticket key name")?;
        rng.fill(&mut key.secret).map_err(|_| "no randomness for a ticket key")?;
        Ok(key)
    }
}

/// The keys in force, newest first (at most two). Plain data: cloned into
/// every shard.
#[derive(Clone)]
pub(crate) struct TicketKeys(Vec<TicketKey>);

impl TicketKeys {
    pub(crate) fn new(first: TicketKey) -> TicketKeys {
        TicketKeys(vec![first])
    }

    /// Makes `key` the one new tickets are sealed with; the previous one
    /// still opens tickets, the one before it no longer does.
    pub(crate) fn rotate(&mut self, key: TicketKey) {
        self.0.insert(0, key);
        self.0.truncate(2);
    }
}

/// A shard's own ticketer, built from its copy of the keys.
pub(crate) struct Ticketer {
    /// Newest first, as in [`TicketKeys`].
    keys: Vec<([u8; NAME_LEN], LessSafeKey)>,
    rng: SystemRandom,
}

impl Ticketer {
    pub(crate) fn new(keys: &TicketKeys) -> Ticketer {
        let keys = keys
            .0
            .iter()
            .map(|k| {
                let unbound = UnboundKey::new(&AES_256_GCM, &k.secret).expect("a 32-byte AES-256 key");
                (k.name, LessSafeKey::new(unbound))
            })
            .collect();
        Ticketer { keys, rng: SystemRandom::new() }
    }
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticketer").field("keys", &self.keys.len()).finish()
    }
}

impl rustls::server::ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        ROTATE_EVERY_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (name, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        ticket.extend_from_slice(name);
        ticket.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name), &mut sealed).ok()?;
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let name = ticket.get(..NAME_LEN)?;
        let nonce = ticket.get(NAME_LEN..NAME_LEN + NONCE_LEN)?;
        let sealed = ticket.get(NAME_LEN + NONCE_LEN..)?;
        let (name, key) = self.keys.iter().find(|(n, _)| n.as_slice() == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut open = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(name), &mut open).ok()?;
        let len = plain.len();
        open.truncate(len);
        Some(open)
    }
}

#[cfg(test)]
mod tests {
    use rustls::server::ProducesTickets;

    use super::*;

    #[test]
    fn a_ticket_opens_on_another_shards_copy_until_two_rotations_later() {
        let mut keys = TicketKeys::new(TicketKey::generate().unwrap());
        let (a, b) = (Ticketer::new(&keys), Ticketer::new(&keys));
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state", "any shard opens it");
        keys.rotate(TicketKey::generate().unwrap());
        let rotated = Ticketer::new(&keys);
        assert_eq!(rotated.decrypt(&ticket).unwrap(), b"session state", "the previous key still opens");
        assert_ne!(rotated.encrypt(b"x").unwrap()[..NAME_LEN], ticket[..NAME_LEN], "new tickets use the new key");
        keys.rotate(TicketKey::generate().unwrap());
        assert!(Ticketer::new(&keys).decrypt(&ticket).is_none(), "two rotations later it is gone");
    }

    #[test]
    fn tampered_or_short_tickets_open_to_nothing() {
        let t = Ticketer::new(&TicketKeys::new(TicketKey::generate().unwrap()));
        let ticket = t.encrypt(b"state").unwrap();
        for at in [0, NAME_LEN, NAME_LEN + NONCE_LEN, ticket.len() - 1] {
            let mut bad = ticket.clone();
            bad[at] ^= 1;
            assert!(t.decrypt(&bad).is_none(), "flipped byte {at}");
        }
        for len in 0..ticket.len() {
            assert!(t.decrypt(&ticket[..len]).is_none(), "cut to {len}");
        }
    }
}
