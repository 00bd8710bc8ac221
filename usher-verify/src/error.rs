//! Why a request was refused, and how each refusal goes on the wire: RFC 6750 §3
//! (`WWW-Authenticate: Bearer …` with `invalid_token` → 401 or `insufficient_scope` →
//! 403) and a JSON body `{error, error_description}`. Descriptions are client-safe and
//! never carry a token, a claim value or a source error. Calls nothing else in the crate.

use std::borrow::Cow;
use std::sync::Arc;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why an access token or a request was refused. Every variant has its own
/// [`code`](Self::code), [`description`](Self::description) and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `Authorization: Bearer` header (RFC 6750 §3.1: bare challenge, no error code).
    #[error("no access token")]
    Missing,
    /// Not a compact JWS, a header that is not `Bearer <token>`, or a required claim
    /// missing or of the wrong type.
    #[error("malformed access token")]
    Malformed,
    /// `alg` is not RS256 (`none`, HS256, …), or the key's own `alg` disagrees.
    #[error("unsupported algorithm")]
    Algorithm,
    /// `kid` is missing or names no key of the issuer's JWKS.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// At or past `exp` (plus the leeway).
    #[error("expired")]
    Expired,
    /// Before `nbf` (minus the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `typ` is not `at+jwt` (RFC 9068 §2.1): an ID token or another JWT.
    #[error("not an access token")]
    WrongType,
    /// The token's session has ended (logout, blocked user), per the feed or usher.
    #[error("session ended")]
    SessionEnded,
    /// The token itself was revoked (its `jti`), per the feed or usher.
    #[error("revoked")]
    Revoked,
    /// Issued before a change of the user's roles (or before a gap in the feed); the
    /// client should refresh it.
    #[error("stale")]
    Stale,
    /// usher refused the token at the live check for another reason.
    #[error("refused by the issuer")]
    Refused,
    /// The token lacks the role.
    #[error("role {0} required")]
    InsufficientRole(Cow<'static, str>),
    /// The token lacks the scope.
    #[error("scope {0} required")]
    InsufficientScope(Cow<'static, str>),
    /// usher says the caller lacks the permission.
    #[error("permission {0} required")]
    InsufficientPermission(Cow<'static, str>),
    /// usher could not be asked (live mode) and nothing usable was cached, or the
    /// revocation feed has not been heard from for longer than the maximum lag (feed
    /// mode).
    #[error("issuer unavailable")]
    Unavailable,
    /// The route asks for something the verifier was not set up for (no verifier in the
    /// request extensions, feed mode without feed credentials). A bug of the service.
    #[error("verifier misconfigured")]
    Misconfigured,
}

impl VerifyError {
    /// Stable machine-readable code, as usher's own problem `code`s.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "token_missing",
            Self::Malformed => "token_malformed",
            Self::Algorithm => "token_unsupported_algorithm",
            Self::UnknownKey => "token_unknown_key",
            Self::BadSignature => "token_bad_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongIssuer => "token_wrong_issuer",
            Self::WrongAudience => "token_wrong_audience",
            Self::WrongType => "token_wrong_type",
            Self::SessionEnded => "session_ended",
            Self::Revoked => "token_revoked",
            Self::Stale => "token_stale",
            Self::Refused => "token_refused",
            Self::InsufficientRole(_) => "insufficient_role",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::InsufficientPermission(_) => "insufficient_permission",
            Self::Unavailable => "issuer_unavailable",
            Self::Misconfigured => "internal_error",
        }
    }

    /// Client-safe description (RFC 6750 `error_description`).
    pub fn description(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::Missing => "an access token is required",
            Self::Malformed => "the access token is malformed",
            Self::Algorithm => "the access token uses an unsupported algorithm",
            Self::UnknownKey => "the access token was signed by an unknown key",
            Self::BadSignature => "the access token signature is invalid",
            Self::Expired => "the access token has expired",
            Self::NotYetValid => "the access token is not valid yet",
            Self::WrongIssuer => "the access token was issued by another issuer",
            Self::WrongAudience => "the access token is not meant for this audience",
            Self::WrongType => "the token is not an access token",
            Self::SessionEnded => "the session of the access token has ended",
            Self::Revoked => "the access token has been revoked",
            Self::Stale => "the access token predates a change of the user's roles; refresh it",
            Self::Refused => "the issuer refused the access token",
            Self::InsufficientRole(role) => return format!("the {role} role is required").into(),
            Self::InsufficientScope(scope) => {
                return format!("the {scope} scope is required").into();
            }
            Self::InsufficientPermission(p) => {
                return format!("the {p} permission is required").into();
            }
            Self::Unavailable => "the authorization server cannot be reached; try again shortly",
            Self::Misconfigured => "an internal error occurred",
        })
    }

    /// The HTTP status: 401 for a bad or missing token, 403 for a missing role, scope or
    /// permission, 503 when usher is needed and unreachable, 500 for a setup bug.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InsufficientRole(_)
            | Self::InsufficientScope(_)
            | Self::InsufficientPermission(_) => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 error code of the body and challenge, if any.
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self.status() {
            StatusCode::UNAUTHORIZED if *self == Self::Missing => None,
            StatusCode::UNAUTHORIZED => Some("invalid_token"),
            StatusCode::FORBIDDEN => Some("insufficient_scope"),
            StatusCode::SERVICE_UNAVAILABLE => Some("temporarily_unavailable"),
            _ => Some("server_error"),
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), or `None` for 5xx answers: bare
    /// `Bearer` without a token, otherwise the realm, the error and its description, and
    /// for a missing scope the `scope` attribute.
    pub fn challenge(&self, realm: &str) -> Option<String> {
        match self.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {}
            _ => return None,
        }
        let Some(error) = self.oauth_error() else {
            return Some("Bearer".to_owned());
        };
        let mut value = format!(
            "Bearer realm=\"{}\", error=\"{error}\", error_description=\"{}\"",
            quote(realm),
            quote(&self.description())
        );
        if let Self::InsufficientScope(scope) = self {
            value.push_str(&format!(", scope=\"{}\"", quote(scope)));
        }
        Some(value)
    }
}

/// RFC 6750 §3 attribute values are quoted-strings of printable ASCII without `"` and
/// `\`; anything else becomes `?`.
fn quote(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect()
}

/// A refusal ready to be sent: the error and the realm of the verifier that made it.
/// This is the rejection of every extractor and what the guards answer.
#[derive(Debug, Clone)]
pub struct Rejection {
    error: VerifyError,
    realm: Arc<str>,
}

impl Rejection {
    /// A refusal in `realm`.
    pub fn new(error: VerifyError, realm: Arc<str>) -> Self {
        Self { error, realm }
    }

    /// Why.
    pub fn error(&self) -> &VerifyError {
        &self.error
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let error = &self.error;
        if *error == VerifyError::Misconfigured {
            tracing::error!(
                "usher-verify: the route has no verifier or no feed; see the crate docs"
            );
        }
        let body = serde_json::json!({
            "error": error.oauth_error().unwrap_or("invalid_request"),
            "error_description": error.description(),
        });
        let mut response = (error.status(), body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = error.challenge(&self.realm)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if *error == VerifyError::Unavailable {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant maps to its RFC 6750 status, error code and challenge (§3, §3.1).
    #[test]
    fn every_variant_maps_to_its_status_and_challenge() {
        let cases: Vec<(VerifyError, u16, Option<&str>)> = vec![
            (VerifyError::Missing, 401, None),
            (VerifyError::Malformed, 401, Some("invalid_token")),
            (VerifyError::Algorithm, 401, Some("invalid_token")),
            (VerifyError::UnknownKey, 401, Some("invalid_token")),
            (VerifyError::BadSignature, 401, Some("invalid_token")),
            (VerifyError::Expired, 401, Some("invalid_token")),
            (VerifyError::NotYetValid, 401, Some("invalid_token")),
            (VerifyError::WrongIssuer, 401, Some("invalid_token")),
            (VerifyError::WrongAudience, 401, Some("invalid_token")),
            (VerifyError::WrongType, 401, Some("invalid_token")),
            (VerifyError::SessionEnded, 401, Some("invalid_token")),
            (VerifyError::Revoked, 401, Some("invalid_token")),
            (VerifyError::Stale, 401, Some("invalid_token")),
            (VerifyError::Refused, 401, Some("invalid_token")),
            (
                VerifyError::InsufficientRole("r".into()),
                403,
                Some("insufficient_scope"),
            ),
            (
                VerifyError::InsufficientScope("s".into()),
                403,
                Some("insufficient_scope"),
            ),
            (
                VerifyError::InsufficientPermission("a:b".into()),
                403,
                Some("insufficient_scope"),
            ),
            (
                VerifyError::Unavailable,
                503,
                Some("temporarily_unavailable"),
            ),
            (VerifyError::Misconfigured, 500, Some("server_error")),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.oauth_error(), code, "{error:?}");
            let challenge = error.challenge("movies");
            match (status, code) {
                (401, None) => assert_eq!(challenge.as_deref(), Some("Bearer")),
                (401 | 403, Some(code)) => {
                    let c = challenge.unwrap();
                    assert!(c.starts_with("Bearer realm=\"movies\", error="), "{c}");
                    assert!(c.contains(&format!("error=\"{code}\"")), "{c}");
                }
                _ => assert_eq!(challenge, None),
            }
        }
    }

    /// The scope challenge names the scope; quotes in names cannot break the header.
    #[test]
    fn scope_challenge_names_the_scope_and_is_quoted() {
        let c = VerifyError::InsufficientScope("films".into())
            .challenge("m")
            .unwrap();
        assert!(c.ends_with(", scope=\"films\""), "{c}");
        let c = VerifyError::InsufficientRole("a\"b".into())
            .challenge("x\\y")
            .unwrap();
        assert!(c.contains("realm=\"x?y\""), "{c}");
        assert!(c.contains("the a?b role"), "{c}");
    }
}
