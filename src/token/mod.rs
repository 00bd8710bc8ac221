//! Token primitives with no I/O beyond loading the key directory: the RSA key ring and
//! JWKS ([`keys`]), compact RS256 JWTs ([`jwt`]) and opaque random tokens stored as
//! hashes ([`opaque`]). Calls nothing else in the crate.

pub mod jwt;
pub mod keys;
pub mod opaque;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// base64url without padding (JOSE's encoding).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn b64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Lower-case hex SHA-256 of `bytes` (how secrets are stored).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
