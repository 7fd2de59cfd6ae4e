//! `more` links: stateless, tamper-evident cursors.
//!
//! A link carries the query and its position as base64url JSON followed by
//! an HMAC-SHA256 of it under a key kept in the data directory, so links
//! survive restarts (they never expire) and a client cannot edit one to
//! widen its query.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const KEY_FILE: &str = "more-links.key";

pub struct MoreLinks {
    key: [u8; 32],
}

impl MoreLinks {
    /// Loads the signing key from `data_dir`, creating it on first use.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                Ok(Self { key })
            }
            Ok(_) => Err(std::io::Error::other(format!("{} is not a 32-byte key", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                let temporary = data_dir.join(format!("{KEY_FILE}.tmp"));
                std::fs::write(&temporary, key)?;
                std::fs::File::open(&temporary)?.sync_all()?;
                std::fs::rename(&temporary, &path)?;
                Ok(Self { key })
            }
            Err(error) => Err(error),
        }
    }

    /// A key that lives only in memory (for a process that serves no
    /// statement pages, such as Kafka ingest).
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self { key }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(payload.as_bytes());
        mac
    }

    /// Encodes and signs a cursor.
    pub fn seal(&self, cursor: &[u8]) -> String {
        let payload = URL_SAFE_NO_PAD.encode(cursor);
        let tag = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// The cursor of a link this store sealed; `None` if edited or foreign.
    pub fn unseal(&self, token: &str) -> Option<Vec<u8>> {
        let (payload, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(payload).verify_slice(&tag).ok()?;
        URL_SAFE_NO_PAD.decode(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_cursors_open_and_edited_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let links = MoreLinks::open(dir.path()).unwrap();
        let token = links.seal(b"{\"limit\":1}");
        assert_eq!(links.unseal(&token).unwrap(), b"{\"limit\":1}");
        let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(b"{\"limit\":100}"), token.split_once('.').unwrap().1);
        assert!(links.unseal(&forged).is_none());
        let reopened = MoreLinks::open(dir.path()).unwrap();
        assert_eq!(reopened.unseal(&token).unwrap(), b"{\"limit\":1}", "links survive restarts");
    }
}
