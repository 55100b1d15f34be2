//! The control plane's side of TLS: the daemon's current material, kept
//! off the shards (the signal thread reloads it on SIGHUP, a key thread
//! rotates the ticket keys), and handed to every shard over the mesh as a
//! copy each time it changes. Shards never wait on this lock: they hold
//! their own config, replaced between handshakes.

use std::sync::Mutex;
use std::time::Duration;

use percore_cores::StopHandle;

use super::tickets::{TicketKey, ROTATE_EVERY_SECS};
use super::{load, Material, Settings};

pub(crate) struct Control {
    settings: Settings,
    material: Mutex<Material>,
    shards: StopHandle,
    /// Runs on a shard with its copy of new material.
    deliver: fn(Material),
}

impl Control {
    pub(crate) fn new(settings: Settings, material: Material, shards: StopHandle, deliver: fn(Material)) -> Control {
        Control { settings, material: Mutex::new(material), shards, deliver }
    }

    /// Reads the certificates and keys again and hands them to every
    /// shard; connections open stay as they are, new handshakes use the
    /// new ones. On a bad file the old ones stay, and the error says why.
    /// A self-signed certificate is kept (a new one would only break the
    /// clients that trust it).
    pub(crate) fn reload(&self) -> Result<usize, String> {
        if self.settings.pairs.is_empty() {
            return Ok(0);
        }
        let (pairs, _) = load(&self.settings)?;
        let count = pairs.len();
        let mut material = self.material.lock().unwrap_or_else(|e| e.into_inner());
        material.pairs = pairs;
        self.broadcast(&material);
        Ok(count)
    }

    /// Makes a new ticket key (the previous one still opens tickets).
    pub(crate) fn rotate_tickets(&self) -> Result<(), String> {
        let key = TicketKey::generate()?;
        let mut material = self.material.lock().unwrap_or_else(|e| e.into_inner());
        material.tickets.rotate(key);
        self.broadcast(&material);
        Ok(())
    }

    fn broadcast(&self, material: &Material) {
        let deliver = self.deliver;
        for shard in 0..self.shards.shards() {
            let copy = material.clone();
            // A shard that has stopped needs no certificates.
            let _ = self.shards.post(shard, move || deliver(copy));
        }
    }

    /// Rotates the ticket keys every [`ROTATE_EVERY_SECS`] (tests shorten
    /// it with `PERCORE_TEST_TICKET_ROTATE_MS`), for the life of the
    /// process (run on its own thread).
    pub(crate) fn rotate_forever(&self) {
        let every = std::env::var("PERCORE_TEST_TICKET_ROTATE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(Duration::from_secs(u64::from(ROTATE_EVERY_SECS)), Duration::from_millis);
        loop {
            std::thread::sleep(every);
            match self.rotate_tickets() {
                Ok(()) => tracing::info!("TLS session ticket key rotated"),
                Err(err) => tracing::warn!("cannot rotate the TLS session ticket key: {err}; the old one stays"),
            }
        }
    }
}
