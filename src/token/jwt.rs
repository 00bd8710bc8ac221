//! Compact JWS (RFC 7515) with RS256 only. Parsing is ours so that every failure has a
//! precise cause (malformed, algorithm, unknown key, signature); the RSA operations are
//! josekit's. Claims validation (iss, aud, exp, typ) is the caller's.

use serde::Serialize;
use serde_json::{Map, Value};

use super::keys::{KeyRing, SigningKey};
use super::{b64url, b64url_decode};

/// Longest token accepted for parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a compact JWS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, or header/payload not JSON objects, or a `crit` header.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not RS256 (`none`, HS256, ... are refused).
    #[error("unsupported algorithm")]
    Algorithm,
    /// `kid` missing or names no key of the ring.
    #[error("unknown key")]
    UnknownKid,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

/// A verified token: its header and its claims.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
}

/// Signs `claims` with `key` as a compact JWS with header `{alg: RS256, typ, kid}`.
pub fn sign(key: &SigningKey, typ: &str, claims: &impl Serialize) -> Option<String> {
    let header = serde_json::json!({"alg": "RS256", "typ": typ, "kid": key.kid});
    let header = b64url(&serde_json::to_vec(&header).ok()?);
    let payload = b64url(&serde_json::to_vec(claims).ok()?);
    let mut out = String::with_capacity(header.len() + payload.len() + 350);
    out.push_str(&header);
    out.push('.');
    out.push_str(&payload);
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64url(&signature));
    Some(out)
}

fn json_object(part: &[u8]) -> Result<Map<String, Value>, JwtError> {
    let bytes = b64url_decode(part).ok_or(JwtError::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

/// Parses and verifies a compact JWS against the ring.
pub fn verify(ring: &KeyRing, token: &str) -> Result<Verified, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let bytes = token.as_bytes();
    let mut dots = bytes.iter().enumerate().filter(|(_, b)| **b == b'.');
    let (Some((first, _)), Some((second, _)), None) = (dots.next(), dots.next(), dots.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = json_object(&bytes[..first])?;
    if header.contains_key("crit") {
        return Err(JwtError::Malformed);
    }
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(_)) => return Err(JwtError::Algorithm),
        _ => return Err(JwtError::Malformed),
    }
    let key = match header.get("kid") {
        Some(Value::String(kid)) => ring.find(kid).ok_or(JwtError::UnknownKid)?,
        _ => return Err(JwtError::UnknownKid),
    };
    let signature = b64url_decode(&bytes[second + 1..]).ok_or(JwtError::Malformed)?;
    let claims = json_object(&bytes[first + 1..second])?;
    if !key.verify(&bytes[..second], &signature) {
        return Err(JwtError::BadSignature);
    }
    Ok(Verified { header, claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ring() -> KeyRing {
        KeyRing::from_keys(vec![SigningKey::generate().unwrap().0])
    }

    /// A signed token verifies and carries its header and claims; every tampering is
    /// refused with its own cause.
    #[test]
    fn sign_verify_and_tamper() {
        let ring = ring();
        let token = sign(ring.signing_key(), "at+jwt", &json!({"sub": "u", "exp": 1})).unwrap();
        let v = verify(&ring, &token).unwrap();
        assert_eq!(v.header["typ"], "at+jwt");
        assert_eq!(v.claims["sub"], "u");

        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = b64url(br#"{"sub":"admin","exp":1}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(verify(&ring, &forged).unwrap_err(), JwtError::BadSignature);

        let none_header = b64url(br#"{"alg":"none","kid":"x"}"#);
        let none = format!("{none_header}.{}.", parts[1]);
        assert_eq!(verify(&ring, &none).unwrap_err(), JwtError::Algorithm);

        let hs =
            b64url(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, ring.signing_key().kid).as_bytes());
        assert_eq!(
            verify(&ring, &format!("{hs}.{}.{}", parts[1], parts[2])).unwrap_err(),
            JwtError::Algorithm
        );

        let other_kid = b64url(br#"{"alg":"RS256","kid":"nope"}"#);
        assert_eq!(
            verify(&ring, &format!("{other_kid}.{}.{}", parts[1], parts[2])).unwrap_err(),
            JwtError::UnknownKid
        );
        assert_eq!(verify(&ring, "abc").unwrap_err(), JwtError::Malformed);
        assert_eq!(verify(&ring, "a.b.c.d").unwrap_err(), JwtError::Malformed);
        assert_eq!(verify(&ring, "!!.!!.!!").unwrap_err(), JwtError::Malformed);
    }
}
