//! The keys directory: every `*.pem` private key in it is published; a new key signs
//! only once it has been published for `key_activation_delay` (longer than the JWKS
//! `max-age` plus a verifier's refetch cooldown), so no resource server meets a token
//! of a key it has not fetched. Every instance re-reads the directory each minute.
//! Files are created with mode 0600 in a 0700 directory. Calls `token` only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::token::keys::{KeyRing, SigningKey};

/// Errors reading or creating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The directory or a file could not be read or written.
    #[error("keys directory {path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not an RSA private key of at least 2048 bits.
    #[error("key file {0}: not an RSA private key of 2048 bits or more")]
    BadKey(PathBuf),
    /// Key generation failed.
    #[error("cannot generate an RSA key")]
    Generate,
}

/// The live key ring of this process.
#[derive(Debug)]
pub struct KeyStore {
    dir: Option<PathBuf>,
    activation_delay: i64,
    ring: RwLock<Arc<KeyRing>>,
}

impl KeyStore {
    /// Loads `dir` (created if missing, one key generated if empty).
    pub fn open(dir: &Path, activation_delay: i64, now: i64) -> Result<Self, KeyError> {
        let ring = load(dir, activation_delay, now)?;
        Ok(Self {
            dir: Some(dir.to_path_buf()),
            activation_delay,
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    /// A store of a fixed ring (no directory; tests).
    pub fn fixed(ring: Arc<KeyRing>) -> Self {
        Self {
            dir: None,
            activation_delay: 0,
            ring: RwLock::new(ring),
        }
    }

    /// The current ring.
    pub fn current(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the directory; true when the published keys or the signer changed. On an
    /// error the current ring stays.
    pub fn reload(&self, now: i64) -> Result<bool, KeyError> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        let fresh = load(dir, self.activation_delay, now)?;
        let current = self.current();
        if fresh.fingerprint() == current.fingerprint() {
            return Ok(false);
        }
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
        Ok(true)
    }
}

fn load(dir: &Path, activation_delay: i64, now: i64) -> Result<KeyRing, KeyError> {
    let mut files = list_pem(dir)?;
    if files.is_empty() {
        generate_key_file(dir)?;
        files = list_pem(dir)?;
    }
    // Oldest first, to the nanosecond: keys made within one second keep their order.
    files.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut keys = Vec::with_capacity(files.len());
    for (path, created) in files {
        let created = (created / 1_000_000_000) as i64;
        let pem = std::fs::read(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let mut key = SigningKey::from_pem(&pem).ok_or(KeyError::BadKey(path))?;
        key.created = created;
        keys.push(key);
    }
    Ok(KeyRing::activated(keys, now, activation_delay))
}

/// Creation time of a key file in nanoseconds: from its name `key-<unix nanos>.pem`
/// (stable across copies), else its modification time.
fn created_at(path: &Path, meta: &std::fs::Metadata) -> u128 {
    let from_name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("key-"))
        .and_then(|n| n.parse::<u128>().ok());
    from_name.unwrap_or_else(|| {
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    })
}

/// `*.pem` files of `dir` with their creation times (the directory is created, mode
/// 0700, if missing).
fn list_pem(dir: &Path) -> Result<Vec<(PathBuf, u128)>, KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("pem") {
            let meta = entry.metadata().map_err(io)?;
            files.push((path.clone(), created_at(&path, &meta)));
        }
    }
    Ok(files)
}

/// Generates an RSA-2048 key into `dir` as `key-<unix nanos>.pem`, mode 0600; returns
/// its path and kid.
pub fn generate_key_file(dir: &Path) -> Result<(PathBuf, String), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    list_pem(dir)?;
    let (key, pem) = SigningKey::generate().ok_or(KeyError::Generate)?;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = dir.join(format!("key-{nanos}.pem"));
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.write_all(&pem).map_err(io)?;
    Ok((path, key.kid))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty directory gets one key (mode 0600) that signs at once; a rotated key is
    /// published at the next reload but signs only after the activation delay; a file
    /// that is not a key is refused with its path.
    #[test]
    fn directory_rotation() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let store = KeyStore::open(dir.path(), 600, now).unwrap();
        let first = store.current().signing_key().kid.clone();
        let files = list_pem(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        let mode = std::fs::metadata(&files[0].0).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!store.reload(now).unwrap(), "nothing changed");
        let (_, second) = generate_key_file(dir.path()).unwrap();
        // The key is dated by its file, written after `now` (seconds later on a busy
        // machine): its activation counts from then.
        let written = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(store.reload(now).unwrap());
        let ring = store.current();
        assert_eq!(ring.signing_key().kid, first, "published, not yet signing");
        assert!(ring.find(&second).is_some());
        assert!(store.reload(written + 601).unwrap());
        assert_eq!(store.current().signing_key().kid, second);
        std::fs::write(dir.path().join("x.pem"), "not a key").unwrap();
        assert!(matches!(
            store.reload(written + 602),
            Err(KeyError::BadKey(_))
        ));
        assert_eq!(store.current().signing_key().kid, second, "the ring stays");
    }
}
