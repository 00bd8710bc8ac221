//! Compact JWS (RFC 7515 §7.1) parsing, RS256 only. Pure: the caller supplies the key.
//! Everything that can be refused without the RSA operation (format, `alg`, `kid`,
//! `typ`, `crit`) is refused first, so garbage never costs a signature check.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jws::JwsVerifier;
use josekit::jws::alg::rsassa::RsassaJwsVerifier;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::VerifyError;

/// Longest token accepted for parsing (usher's tokens are about 1 KiB).
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The protected header members usher-verify looks at. `jku`, `x5u` and `jwk` are
/// ignored on purpose: keys come only from the issuer's JWKS.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// A token split and pre-checked, waiting for its signature check.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    /// The `kid` of the header.
    pub(crate) kid: String,
    signing_input: &'a [u8],
    payload: &'a [u8],
    signature: Vec<u8>,
}

fn decode(part: &[u8]) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed)
}

/// Parses a JSON object (RFC 7515 §4, RFC 7519 §7.2); serde would also take an array
/// for a struct, so the first character is checked. Duplicate members are refused.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, VerifyError> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(VerifyError::Malformed);
    }
    serde_json::from_slice(bytes).map_err(|_| VerifyError::Malformed)
}

/// True for the RFC 9068 §2.1 access-token types (media type rules: case-insensitive,
/// `application/` optional).
fn is_access_token_type(typ: &str) -> bool {
    let typ = typ
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map_or(typ, |_| &typ[12..]);
    typ.eq_ignore_ascii_case("at+jwt")
}

/// Splits a compact JWS and checks its header: three parts, `alg` RS256, `typ` at+jwt,
/// a `kid`, no `crit` (RFC 7515 §4.1.11: we understand no extension).
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let bytes = token.as_bytes();
    let mut dots = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'.')
        .map(|(i, _)| i);
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(VerifyError::Malformed);
    };
    let header: Header = json_object(&decode(&bytes[..first])?)?;
    if header.crit.is_some() {
        return Err(VerifyError::Malformed);
    }
    if header.alg != "RS256" {
        return Err(VerifyError::Algorithm);
    }
    if !header.typ.as_deref().is_some_and(is_access_token_type) {
        return Err(VerifyError::WrongType);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let signature = decode(&bytes[second + 1..])?;
    Ok(Parsed {
        kid,
        signing_input: &bytes[..second],
        payload: &bytes[first + 1..second],
        signature,
    })
}

impl Parsed<'_> {
    /// Checks the signature with `key`; on success returns the decoded payload.
    pub(crate) fn verify(&self, key: &RsassaJwsVerifier) -> Result<Vec<u8>, VerifyError> {
        key.verify(self.signing_input, &self.signature)
            .map_err(|_| VerifyError::BadSignature)?;
        decode(self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn token(header: &str) -> String {
        format!("{}.{}.{}", b64(header), b64("{}"), b64("sig"))
    }

    /// Header checks refuse before any RSA work, each with its own cause (RFC 7515
    /// §4.1.1 alg, §4.1.11 crit; RFC 9068 §2.1 typ; RFC 8725 §3.1 `none`).
    #[test]
    fn header_checks_refuse_with_their_cause() {
        let ok = r#"{"alg":"RS256","typ":"at+jwt","kid":"k"}"#;
        assert_eq!(parse(&token(ok)).unwrap().kid, "k");
        let ok2 = r#"{"alg":"RS256","typ":"application/AT+JWT","kid":"k"}"#;
        assert!(parse(&token(ok2)).is_ok());
        let cases = [
            (
                r#"{"alg":"none","typ":"at+jwt","kid":"k"}"#,
                VerifyError::Algorithm,
            ),
            (
                r#"{"alg":"HS256","typ":"at+jwt","kid":"k"}"#,
                VerifyError::Algorithm,
            ),
            (
                r#"{"alg":"PS256","typ":"at+jwt","kid":"k"}"#,
                VerifyError::Algorithm,
            ),
            (
                r#"{"alg":"RS256","typ":"JWT","kid":"k"}"#,
                VerifyError::WrongType,
            ),
            (r#"{"alg":"RS256","kid":"k"}"#, VerifyError::WrongType),
            (r#"{"alg":"RS256","typ":"at+jwt"}"#, VerifyError::UnknownKey),
            (
                r#"{"alg":"RS256","typ":"at+jwt","kid":"k","crit":["x"]}"#,
                VerifyError::Malformed,
            ),
            (
                r#"{"alg":"RS256","typ":"at+jwt","kid":"k","alg":"none"}"#,
                VerifyError::Malformed,
            ),
            (r#"["RS256"]"#, VerifyError::Malformed),
        ];
        for (header, want) in cases {
            assert_eq!(parse(&token(header)).unwrap_err(), want, "{header}");
        }
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(parse(bad).unwrap_err(), VerifyError::Malformed);
        }
    }
}
