//! PKCE (RFC 7636) with `S256` only. usher checks the shapes (§4.1, §4.2); the challenge
//! encoding and the constant-time verification are oxide-auth's `Pkce` extension.

use std::borrow::Cow;

use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::primitives::grant::Value;

fn unreserved(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks the authorization request's challenge; returns its stored form. Public clients
/// must send one; the method must be `S256` (`plain`, and the `plain` default of an
/// absent method, are refused).
pub fn challenge(
    public_client: bool,
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<Option<String>, &'static str> {
    let Some(challenge) = challenge else {
        if method.is_some() {
            return Err("code_challenge_method without code_challenge");
        }
        if public_client {
            return Err("PKCE with S256 is required for public clients");
        }
        return Ok(None);
    };
    if method != Some("S256") {
        return Err("code_challenge_method must be S256");
    }
    // An S256 challenge is the base64url SHA-256 of the verifier: 43 characters.
    if challenge.len() != 43 || !unreserved(challenge) {
        return Err("code_challenge is not an S256 challenge");
    }
    match Pkce::optional().challenge(Some(Cow::Borrowed("S256")), Some(Cow::Borrowed(challenge))) {
        Ok(Some(value)) => Ok(value.into_private_value().ok().flatten()),
        _ => Err("code_challenge is not an S256 challenge"),
    }
}

/// Verifies the token request's `code_verifier` against the stored challenge: a verifier
/// is required exactly when a challenge was made, and must be 43–128 unreserved
/// characters (§4.1).
pub fn verify(stored: Option<&str>, verifier: Option<&str>) -> bool {
    match (stored, verifier) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(stored), Some(verifier)) => {
            (43..=128).contains(&verifier.len())
                && unreserved(verifier)
                && Pkce::optional()
                    .verify(
                        Some(Value::private(Some(stored.to_owned()))),
                        Some(Cow::Borrowed(verifier)),
                    )
                    .is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S256 round trip with RFC 7636 Appendix B's example; plain and bad shapes refused.
    #[test]
    fn s256_only() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let stored = super::challenge(true, Some(challenge), Some("S256")).unwrap();
        assert!(verify(stored.as_deref(), Some(verifier)));
        assert!(!verify(
            stored.as_deref(),
            Some(&verifier.replace('d', "e"))
        ));
        assert!(!verify(stored.as_deref(), None));
        assert!(!verify(stored.as_deref(), Some("short")));
        assert!(super::challenge(true, Some(challenge), Some("plain")).is_err());
        assert!(super::challenge(true, Some(challenge), None).is_err());
        assert!(super::challenge(true, None, None).is_err());
        assert_eq!(super::challenge(false, None, None), Ok(None));
        assert!(super::challenge(false, Some("abc"), Some("S256")).is_err());
        assert!(verify(None, None));
        assert!(!verify(None, Some(verifier)));
    }
}
