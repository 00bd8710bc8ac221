//! The RSA signing keys: every PEM private key in the keys directory is published in the
//! JWKS (RFC 7517) under its RFC 7638 thumbprint as `kid`; the newest signs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use josekit::jwk::KeyPair;
use josekit::jws::RS256;
use josekit::jws::alg::rsassa::{RsassaJwsSigner, RsassaJwsVerifier};
use serde_json::{Value, json};

use super::{b64url, sha256};

/// Errors loading or creating keys.
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

/// One RSA key pair.
pub struct SigningKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    signer: RsassaJwsSigner,
    verifier: RsassaJwsVerifier,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PEM private key.
    pub fn from_pem(pem: &[u8]) -> Option<Self> {
        let pair = RS256.key_pair_from_pem(pem).ok()?;
        if pair.key_len() < 256 {
            return None;
        }
        let public = pair.to_jwk_public_key();
        let n = public.parameter("n")?.as_str()?.to_owned();
        let e = public.parameter("e")?.as_str()?.to_owned();
        // RFC 7638 §3: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = b64url(&sha256(canonical.as_bytes()));
        let signer = RS256.signer_from_pem(pem).ok()?;
        let verifier = RS256.verifier_from_pem(pair.to_pem_public_key()).ok()?;
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        Some(Self {
            kid,
            signer,
            verifier,
            jwk,
        })
    }

    /// Signs `message` (RS256).
    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        use josekit::jws::JwsSigner;
        self.signer.sign(message).ok()
    }

    /// Verifies an RS256 `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use josekit::jws::JwsVerifier;
        self.verifier.verify(message, signature).is_ok()
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }
}

/// All keys, oldest first; the last one signs.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
    by_kid: HashMap<String, usize>,
}

impl KeyRing {
    /// A ring of the given keys (oldest first). Panics on an empty list.
    pub fn from_keys(keys: Vec<SigningKey>) -> Self {
        assert!(!keys.is_empty(), "a key ring needs a key");
        let by_kid = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.kid.clone(), i))
            .collect();
        Self { keys, by_kid }
    }

    /// Loads every `*.pem` in `dir` (created with mode 0700 if missing), generating one
    /// key when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let files = list_pem(dir)?;
        if files.is_empty() {
            generate_key_file(dir)?;
            return Self::load_or_create(dir);
        }
        let mut keys = Vec::with_capacity(files.len());
        for path in files {
            let pem = std::fs::read(&path).map_err(|source| KeyError::Io {
                path: path.clone(),
                source,
            })?;
            keys.push(SigningKey::from_pem(&pem).ok_or(KeyError::BadKey(path))?);
        }
        Ok(Self::from_keys(keys))
    }

    /// The key that signs new tokens (the newest).
    pub fn signing_key(&self) -> &SigningKey {
        &self.keys[self.keys.len() - 1]
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(|&i| &self.keys[i])
    }

    /// The JWK Set document.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().rev().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }
}

/// `*.pem` files of `dir`, oldest first (modification time, then name).
fn list_pem(dir: &Path) -> Result<Vec<PathBuf>, KeyError> {
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
    let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("pem") {
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            files.push((modified, path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Generates an RSA-2048 key into `dir` as `key-<unix nanos>.pem`, mode 0600; returns the path.
pub fn generate_key_file(dir: &Path) -> Result<PathBuf, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    list_pem(dir)?; // creates the directory if needed
    let pair = RS256.generate_key_pair(2048).map_err(|_| KeyError::Generate)?;
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
    file.write_all(&pair.to_pem_private_key()).map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty directory gets one key with mode 0600; the JWKS publishes it under its
    /// RFC 7638 thumbprint; a second key becomes the signing key.
    #[test]
    fn creates_key_then_newest_signs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(dir.path()).unwrap();
        let files = list_pem(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let jwks = ring.jwks();
        assert_eq!(jwks["keys"][0]["kid"], ring.signing_key().kid.as_str());
        assert_eq!(ring.signing_key().kid.len(), 43);
        std::thread::sleep(std::time::Duration::from_millis(20));
        generate_key_file(dir.path()).unwrap();
        let ring2 = KeyRing::load_or_create(dir.path()).unwrap();
        assert_eq!(ring2.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_ne!(ring2.signing_key().kid, ring.signing_key().kid);
        assert!(ring2.find(&ring.signing_key().kid).is_some());
    }

    /// A file that is not an RSA private key is refused with its path.
    #[test]
    fn bad_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.pem"), "not a key").unwrap();
        let err = KeyRing::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::BadKey(_)));
    }
}
