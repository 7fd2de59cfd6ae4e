//! Basic-auth credentials: a small JSON file in the data directory, written
//! atomically by `lrs credentials …`, re-read by the server when it changes.
//! Secrets are stored only as argon2 hashes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const CREDENTIALS_FILE: &str = "credentials.json";

/// What a credential may do: the xAPI OAuth scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "statements/write")]
    StatementsWrite,
    #[serde(rename = "statements/read")]
    StatementsRead,
    #[serde(rename = "statements/read/mine")]
    StatementsReadMine,
    #[serde(rename = "all/read")]
    AllRead,
    #[serde(rename = "all")]
    All,
    #[serde(rename = "state")]
    State,
    #[serde(rename = "define")]
    Define,
    #[serde(rename = "profile")]
    Profile,
}

impl Scope {
    pub const EVERY: [Scope; 8] = [
        Scope::StatementsWrite,
        Scope::StatementsRead,
        Scope::StatementsReadMine,
        Scope::AllRead,
        Scope::All,
        Scope::State,
        Scope::Define,
        Scope::Profile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::StatementsWrite => "statements/write",
            Scope::StatementsRead => "statements/read",
            Scope::StatementsReadMine => "statements/read/mine",
            Scope::AllRead => "all/read",
            Scope::All => "all",
            Scope::State => "state",
            Scope::Define => "define",
            Scope::Profile => "profile",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Scope::EVERY.into_iter().find(|s| s.name() == text.trim())
    }
}

/// One stored credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credential {
    pub name: String,
    pub key: String,
    /// argon2 PHC string of the secret.
    pub secret_hash: String,
    pub scopes: Vec<Scope>,
    pub created: String,
    #[serde(default)]
    pub revoked: bool,
    /// ODS codes whose analytics this credential may read (and those below
    /// them); `*` for every organisation. Empty: no analytics access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organisations: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read or write the credentials file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("the credentials file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("a credential with key {0:?} already exists")]
    DuplicateKey(String),
    #[error("no credential has the key or name {0:?}")]
    NotFound(String),
    #[error("the secret could not be hashed: {0}")]
    Hash(String),
    #[error("{0}")]
    Invalid(String),
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> CredentialError {
    CredentialError::Io { path: path.to_owned(), reason: error.to_string() }
}

/// Reads every credential in `data_dir` (none when the file is absent).
pub fn load(data_dir: &Path) -> Result<Vec<Credential>, CredentialError> {
    let path = data_dir.join(CREDENTIALS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| CredentialError::Corrupt { path, reason: e.to_string() })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(io_error(&path, error)),
    }
}

fn save(data_dir: &Path, credentials: &[Credential]) -> Result<(), CredentialError> {
    std::fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
    let path = data_dir.join(CREDENTIALS_FILE);
    let temporary = data_dir.join(format!("{CREDENTIALS_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(credentials).map_err(|e| io_error(&path, e))?;
    std::fs::write(&temporary, bytes).map_err(|e| io_error(&temporary, e))?;
    let file = std::fs::File::open(&temporary).map_err(|e| io_error(&temporary, e))?;
    file.sync_all().map_err(|e| io_error(&temporary, e))?;
    std::fs::rename(&temporary, &path).map_err(|e| io_error(&path, e))?;
    Ok(())
}

fn random_text(length: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(length).map(char::from).collect()
}

/// Creates a credential; generates the key and secret when not given.
/// Returns the credential and the secret in clear (shown once, never stored).
pub fn add(
    data_dir: &Path,
    name: &str,
    key: Option<String>,
    secret: Option<String>,
    scopes: Vec<Scope>,
) -> Result<(Credential, String), CredentialError> {
    if name.trim().is_empty() {
        return Err(CredentialError::Invalid("the credential name must not be empty".to_owned()));
    }
    if scopes.is_empty() {
        return Err(CredentialError::Invalid("a credential needs at least one scope".to_owned()));
    }
    let key = key.unwrap_or_else(|| random_text(20));
    if key.is_empty() || key.contains(':') {
        return Err(CredentialError::Invalid("the key must be non-empty and contain no ':'".to_owned()));
    }
    let secret = secret.unwrap_or_else(|| random_text(40));
    if secret.is_empty() {
        return Err(CredentialError::Invalid("the secret must not be empty".to_owned()));
    }
    let mut credentials = load(data_dir)?;
    if credentials.iter().any(|c| c.key == key) {
        return Err(CredentialError::DuplicateKey(key));
    }
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let secret_hash = Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| CredentialError::Hash(e.to_string()))?
        .to_string();
    let credential = Credential {
        name: name.to_owned(),
        key,
        secret_hash,
        scopes,
        created: chrono::Utc::now().to_rfc3339(),
        revoked: false,
        organisations: Vec::new(),
    };
    credentials.push(credential.clone());
    save(data_dir, &credentials)?;
    Ok((credential, secret))
}

/// Grants a credential analytics access to organisations (ODS codes, or `*`
/// for all), replacing any earlier grant.
pub fn grant_organisations(
    data_dir: &Path,
    key_or_name: &str,
    organisations: Vec<String>,
) -> Result<Credential, CredentialError> {
    for code in &organisations {
        if code != "*" && !lrs_hub::facts::is_ods_code(code) {
            return Err(CredentialError::Invalid(format!(
                "{code:?} is not an ODS code (1 to 9 letters and digits) or *"
            )));
        }
    }
    update(data_dir, key_or_name, |credential| credential.organisations = organisations)
}

/// Marks the credential with this key (or name) revoked.
pub fn revoke(data_dir: &Path, key_or_name: &str) -> Result<Credential, CredentialError> {
    update(data_dir, key_or_name, |credential| credential.revoked = true)
}

/// Changes the credential with this key (or name) and saves the file.
fn update(
    data_dir: &Path,
    key_or_name: &str,
    change: impl FnOnce(&mut Credential),
) -> Result<Credential, CredentialError> {
    let mut credentials = load(data_dir)?;
    let found = credentials
        .iter_mut()
        .find(|c| c.key == key_or_name || c.name == key_or_name)
        .ok_or_else(|| CredentialError::NotFound(key_or_name.to_owned()))?;
    change(found);
    let changed = found.clone();
    save(data_dir, &credentials)?;
    Ok(changed)
}

/// The server's view of the credentials: reloaded when the file changes,
/// with successful verifications remembered so argon2 runs once per secret.
pub struct CredentialStore {
    data_dir: PathBuf,
    state: Mutex<StoreState>,
}

#[derive(Default)]
struct StoreState {
    /// SHA-256 of the credentials file as last loaded.
    stamp: Option<[u8; 32]>,
    /// The file's metadata when its content was last loaded (or found the
    /// same as loaded).
    seen: Option<FileSeen>,
    by_key: HashMap<String, Credential>,
    /// key → SHA-256 of a secret already verified against the argon2 hash.
    verified: HashMap<String, [u8; 32]>,
}

/// What the credentials file's metadata said when it was read: a file whose
/// metadata still says the same, and whose last change is older than any
/// file system's time resolution, has not changed since (every save
/// replaces the file, so its time, and its inode, change).
#[derive(Debug, PartialEq, Eq)]
struct FileSeen {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

impl FileSeen {
    /// How long after its last change a file's times could still be those
    /// of the next change.
    const RESOLUTION: std::time::Duration = std::time::Duration::from_secs(2);

    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(metadata),
        }
    }

    /// Whether a change after this one would show in the metadata.
    fn settled(&self) -> bool {
        self.modified
            .and_then(|modified| std::time::SystemTime::now().duration_since(modified).ok())
            .is_some_and(|age| age > Self::RESOLUTION)
    }
}

impl CredentialStore {
    pub fn open(data_dir: &Path) -> Result<Self, CredentialError> {
        let store = Self { data_dir: data_dir.to_owned(), state: Mutex::new(StoreState::default()) };
        store.refresh()?;
        Ok(store)
    }

    fn refresh(&self) -> Result<(), CredentialError> {
        let path = self.data_dir.join(CREDENTIALS_FILE);
        let seen = std::fs::metadata(&path).ok().map(|metadata| FileSeen::of(&metadata));
        let lock = || self.state.lock().map_err(|_| CredentialError::Invalid("lock poisoned".to_owned()));
        {
            let state = lock()?;
            if seen.as_ref().is_some_and(|seen| seen.settled() && state.seen.as_ref() == Some(seen))
                && !state.by_key.is_empty()
            {
                return Ok(());
            }
        }
        // The content decides, not the file's time and size: two writes
        // within the file system's time resolution can keep both.
        let stamp: Option<[u8; 32]> = std::fs::read(&path).ok().map(|bytes| Sha256::digest(&bytes).into());
        let mut state = lock()?;
        if state.stamp != stamp || state.by_key.is_empty() {
            let credentials = load(&self.data_dir)?;
            state.by_key = credentials.into_iter().map(|c| (c.key.clone(), c)).collect();
            state.verified.clear();
            state.stamp = stamp;
        }
        // Only a file whose content was loaded is skipped while its
        // metadata stays: one that failed to load is tried again.
        state.seen = seen;
        Ok(())
    }

    /// The credential for this key and secret, if it exists, is not revoked
    /// and the secret matches.
    pub fn authenticate(&self, key: &str, secret: &str) -> Option<Credential> {
        if let Err(error) = self.refresh() {
            tracing::error!(%error, "cannot reload credentials");
        }
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let credential = {
            let state = self.state.lock().ok()?;
            let credential = state.by_key.get(key)?.clone();
            if credential.revoked {
                return None;
            }
            if let Some(known) = state.verified.get(key) {
                return bool::from(known.ct_eq(&digest)).then_some(credential);
            }
            credential
        };
        let hash = PasswordHash::new(&credential.secret_hash).ok()?;
        Argon2::default().verify_password(secret.as_bytes(), &hash).ok()?;
        if let Ok(mut state) = self.state.lock() {
            state.verified.insert(key.to_owned(), digest);
        }
        Some(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let (credential, secret) = add(dir.path(), "moodle", None, None, vec![Scope::All]).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CREDENTIALS_FILE)).unwrap();
        assert!(!text.contains(&secret), "the secret must never be stored in clear");
        let store = CredentialStore::open(dir.path()).unwrap();
        assert!(store.authenticate(&credential.key, &secret).is_some());
        assert!(store.authenticate(&credential.key, "wrong").is_none());
        assert!(store.authenticate(&credential.key, &secret).is_some(), "cached verification still works");
        revoke(dir.path(), "moodle").unwrap();
        assert!(store.authenticate(&credential.key, &secret).is_none(), "revocation is seen without restart");
    }

    /// The store skips reading a file whose metadata has not changed only
    /// once its last change is older than any time resolution: a change
    /// that keeps the length, the inode and the time (a file rewritten in
    /// place within the same tick) is still seen.
    #[test]
    fn a_change_that_keeps_the_metadata_is_seen_while_recent() {
        let dir = tempfile::tempdir().unwrap();
        let (credential, secret) = add(dir.path(), "moodle", None, None, vec![Scope::All]).unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        let store = CredentialStore::open(dir.path()).unwrap();
        assert!(store.authenticate(&credential.key, &secret).is_some());
        let before = std::fs::metadata(&path).unwrap();
        // Revoked, written in place with the same length and time.
        write_in_place(&path, &revoked_text(&path), before.modified().unwrap());
        assert_eq!(FileSeen::of(&std::fs::metadata(&path).unwrap()), FileSeen::of(&before));
        assert!(store.authenticate(&credential.key, &secret).is_none(), "a recent file is read again");
    }

    /// A settled file the store no longer reads is read again once it is
    /// replaced.
    #[test]
    fn a_settled_file_replaced_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (credential, secret) = add(dir.path(), "moodle", None, None, vec![Scope::All]).unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(an_hour_ago).unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        assert!(store.authenticate(&credential.key, &secret).is_some());
        assert!(store.state.lock().unwrap().seen.as_ref().is_some_and(FileSeen::settled));
        revoke(dir.path(), "moodle").unwrap();
        assert!(store.authenticate(&credential.key, &secret).is_none(), "revocation is seen without restart");
    }

    /// A file that failed to load is not taken as read: once mended, even
    /// in place with the same length and time, it is loaded.
    #[test]
    fn a_file_that_failed_to_load_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let (credential, secret) = add(dir.path(), "moodle", None, None, vec![Scope::All]).unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        let store = CredentialStore::open(dir.path()).unwrap();
        assert!(store.authenticate(&credential.key, &secret).is_some());
        let revoked = revoked_text(&path);
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        // Damaged: the credentials loaded before still answer.
        write_in_place(&path, &"x".repeat(revoked.len()), an_hour_ago);
        assert!(store.authenticate(&credential.key, &secret).is_some());
        // Mended in place, the metadata as the damaged file's.
        write_in_place(&path, &revoked, an_hour_ago);
        assert!(store.authenticate(&credential.key, &secret).is_none(), "the mended file is loaded");
    }

    /// The credentials file's text with its credential revoked, of the same
    /// length.
    fn revoked_text(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        let revoked = text.replace("\"revoked\": false", "\"revoked\": true ");
        assert_ne!(text, revoked, "the file names the credential not revoked: {text}");
        assert_eq!(text.len(), revoked.len());
        revoked
    }

    /// Writes `text` over the file in place (its inode kept), then sets its
    /// time.
    fn write_in_place(path: &Path, text: &str, modified: std::time::SystemTime) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        std::io::Write::write_all(&mut &file, text.as_bytes()).unwrap();
        file.set_modified(modified).unwrap();
    }
}
