//! Opaque random tokens (refresh tokens, client secrets): 256 random bits behind a
//! readable prefix, stored only as SHA-256. The plain value redacts itself in `Debug`.

use super::{b64url, sha256_hex};

/// A token in the clear, as handed to a client once.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainToken(<redacted>)")
    }
}

impl PlainToken {
    /// A fresh token: `prefix` followed by 32 random bytes in base64url.
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self(format!("{prefix}{}", b64url(&bytes)))
    }

    /// Wraps a token presented by a client.
    pub fn presented(value: &str) -> Self {
        Self(value.to_owned())
    }

    /// The clear text, for the response body only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The form stored at rest.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

/// A random identifier of `bytes` random bytes in base64url (session ids, `jti`).
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    b64url(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens are unique, prefixed, 256-bit, hashed to hex, and never printed by Debug.
    #[test]
    fn tokens_are_random_hashed_and_redacted() {
        let a = PlainToken::generate("usher_rt_");
        let b = PlainToken::generate("usher_rt_");
        assert_ne!(a, b);
        assert!(a.expose().starts_with("usher_rt_"));
        assert_eq!(a.expose().len(), "usher_rt_".len() + 43);
        assert_eq!(a.hash().len(), 64);
        assert_eq!(a.hash(), PlainToken::presented(a.expose()).hash());
        assert!(!format!("{a:?}").contains(&a.expose()[9..]));
    }
}
