//! The RSA signing keys in memory: every key is published in the JWKS (RFC 7517) under
//! its RFC 7638 thumbprint as `kid`; one of them signs. Reading the keys directory is
//! [`crate::keystore`]'s job; nothing here does I/O.

use std::collections::HashMap;

use josekit::jwk::KeyPair;
use josekit::jws::RS256;
use josekit::jws::alg::rsassa::{RsassaJwsSigner, RsassaJwsVerifier};
use serde_json::{Value, json};

use super::{b64url, sha256};

/// One RSA key pair.
pub struct SigningKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// When the key was created (Unix seconds); it signs only after being published for
    /// the activation delay.
    pub created: i64,
    signer: RsassaJwsSigner,
    verifier: RsassaJwsVerifier,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PEM private key (RSA, 2048 bits or more).
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
            created: 0,
            signer,
            verifier,
            jwk,
        })
    }

    /// Generates an RSA-2048 key pair; returns it with its PEM (for the caller to store).
    pub fn generate() -> Option<(Self, Vec<u8>)> {
        let pair = RS256.generate_key_pair(2048).ok()?;
        let pem = pair.to_pem_private_key();
        Some((Self::from_pem(&pem)?, pem))
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

/// All published keys and the one that signs.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
    by_kid: HashMap<String, usize>,
    signer: usize,
}

impl KeyRing {
    /// A ring whose last key signs. Panics on an empty list.
    pub fn from_keys(keys: Vec<SigningKey>) -> Self {
        let last = keys.len().saturating_sub(1);
        Self::with_signer(keys, last)
    }

    /// A ring (keys oldest first; ties in `created` keep this order) where the newest key
    /// published for at least `activation_delay` seconds signs, so verifiers hold it
    /// before they meet its tokens; when no key is that old (the first start), the
    /// oldest signs.
    pub fn activated(mut keys: Vec<SigningKey>, now: i64, activation_delay: i64) -> Self {
        keys.sort_by_key(|k| k.created);
        let signer = keys
            .iter()
            .rposition(|k| k.created <= now - activation_delay)
            .unwrap_or(0);
        Self::with_signer(keys, signer)
    }

    fn with_signer(keys: Vec<SigningKey>, signer: usize) -> Self {
        assert!(!keys.is_empty(), "a key ring needs a key");
        let by_kid = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.kid.clone(), i))
            .collect();
        Self {
            keys,
            by_kid,
            signer,
        }
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> &SigningKey {
        &self.keys[self.signer]
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(|&i| &self.keys[i])
    }

    /// The kids, oldest first, and the signer's: what distinguishes two rings.
    pub fn fingerprint(&self) -> (Vec<&str>, &str) {
        (
            self.keys.iter().map(|k| k.kid.as_str()).collect(),
            self.signing_key().kid.as_str(),
        )
    }

    /// The JWK Set document, the signing key first.
    pub fn jwks(&self) -> Value {
        let mut keys = vec![self.signing_key().jwk.clone()];
        keys.extend(
            self.keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != self.signer)
                .map(|(_, k)| k.jwk.clone()),
        );
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(created: i64) -> SigningKey {
        let (mut k, _) = SigningKey::generate().unwrap();
        k.created = created;
        k
    }

    /// The newest key published for the activation delay signs; a younger one is only
    /// published; with no key old enough (first start) the oldest signs. The JWKS lists
    /// every key under its RFC 7638 thumbprint, the signer first.
    #[test]
    fn publish_before_sign() {
        let (old, young) = (key(1_000), key(9_500));
        let (old_kid, young_kid) = (old.kid.clone(), young.kid.clone());
        let ring = KeyRing::activated(vec![old, young], 10_000, 600);
        assert_eq!(ring.signing_key().kid, old_kid);
        assert_eq!(ring.signing_key().kid.len(), 43);
        let jwks = ring.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][0]["kid"], old_kid.as_str());
        assert!(ring.find(&young_kid).is_some());
        let later = KeyRing::activated(vec![key(1_000), key(9_500)], 10_200, 600);
        assert_eq!(later.signing_key().created, 9_500);
        let first = KeyRing::activated(vec![key(9_990)], 10_000, 600);
        assert_eq!(first.signing_key().created, 9_990);
    }

    /// Anything but an RSA private key of 2048 bits or more is refused: garbage, a
    /// 1024-bit RSA key, an EC key, an RSA public key. A 2048-bit key is accepted.
    #[test]
    fn bad_pem_is_refused() {
        use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
        use josekit::jwk::alg::rsa::RsaKeyPair;
        assert!(SigningKey::from_pem(b"not a key").is_none());
        let short = RsaKeyPair::generate(1024).unwrap();
        assert!(SigningKey::from_pem(&short.to_pem_private_key()).is_none());
        let ec = EcKeyPair::generate(EcCurve::P256).unwrap();
        assert!(SigningKey::from_pem(&ec.to_pem_private_key()).is_none());
        let good = RsaKeyPair::generate(2048).unwrap();
        assert!(SigningKey::from_pem(&good.to_pem_public_key()).is_none());
        assert!(SigningKey::from_pem(&good.to_pem_private_key()).is_some());
    }
}
