//! Bearer-token validation, the hot path of every protected endpoint: the signature is
//! checked locally (and remembered in a small cache of verified tokens), the session is
//! looked up in the in-process view of ended sessions. No database, no network.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::AppState;
use crate::token::jwt::{self, JwtError};
use crate::token::sha256;

/// The claims of a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// User id, or client id for a `client_credentials` token.
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The session; absent for `client_credentials` tokens.
    pub sid: Option<String>,
    /// Granted scope.
    pub scope: String,
    /// Role names at issue time.
    pub roles: Vec<String>,
    /// Superuser at issue time.
    pub superuser: bool,
    /// Expiry.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// Token id.
    pub jti: String,
}

impl AccessClaims {
    /// True for a token issued to a user (it has a session).
    pub fn is_user(&self) -> bool {
        self.sid.is_some()
    }
}

/// Why a bearer token was refused. Each has its own code and description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No token at all.
    #[error("no access token")]
    Missing,
    /// Not a well-formed JWT (or an `Authorization` header that is not `Bearer <token>`).
    #[error("malformed")]
    Malformed,
    /// `alg` other than RS256.
    #[error("unsupported algorithm")]
    Algorithm,
    /// `kid` names no key of usher.
    #[error("unknown key")]
    UnknownKid,
    /// Signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Past `exp`.
    #[error("expired")]
    Expired,
    /// Before `nbf`.
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not this issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// Not an access token (`typ` is not `at+jwt`, e.g. an ID token).
    #[error("wrong type")]
    WrongType,
    /// Its session has ended (logout, reuse, password change, block).
    #[error("session ended")]
    SessionEnded,
    /// A service token where a user token is required.
    #[error("not a user token")]
    NotAUser,
    /// A revoked service token.
    #[error("revoked")]
    Revoked,
}

impl BearerError {
    /// Stable machine-readable code (problem `code`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "token_missing",
            Self::Malformed => "token_malformed",
            Self::Algorithm => "token_unsupported_algorithm",
            Self::UnknownKid => "token_unknown_key",
            Self::BadSignature => "token_bad_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongIssuer => "token_wrong_issuer",
            Self::WrongAudience => "token_wrong_audience",
            Self::WrongType => "token_wrong_type",
            Self::SessionEnded => "session_ended",
            Self::NotAUser => "token_not_a_user",
            Self::Revoked => "token_revoked",
        }
    }

    /// Client-safe description (RFC 6750 `error_description`).
    pub fn description(self) -> &'static str {
        match self {
            Self::Missing => "an access token is required",
            Self::Malformed => "the access token is malformed",
            Self::Algorithm => "the access token uses an unsupported algorithm",
            Self::UnknownKid => "the access token was signed by an unknown key",
            Self::BadSignature => "the access token signature is invalid",
            Self::Expired => "the access token has expired",
            Self::NotYetValid => "the access token is not valid yet",
            Self::WrongIssuer => "the access token was issued by another issuer",
            Self::WrongAudience => "the access token is not meant for this audience",
            Self::WrongType => "the token is not an access token",
            Self::SessionEnded => "the session of the access token has ended",
            Self::NotAUser => "the access token does not belong to a user",
            Self::Revoked => "the access token has been revoked",
        }
    }
}

impl From<JwtError> for BearerError {
    fn from(e: JwtError) -> Self {
        match e {
            JwtError::Malformed => Self::Malformed,
            JwtError::Algorithm => Self::Algorithm,
            JwtError::UnknownKid => Self::UnknownKid,
            JwtError::BadSignature => Self::BadSignature,
        }
    }
}

/// A verified token: its claims and the `kid` of the key that signed it.
#[derive(Debug)]
struct Verified {
    kid: String,
    claims: Arc<AccessClaims>,
}

/// Cache of tokens whose signature and static claims were already checked. A hit is
/// only believed while the signing key is still in the ring: a key removed from the
/// keys directory takes its tokens with it at the next reload.
#[derive(Clone)]
pub struct VerifiedCache(moka::sync::Cache<[u8; 32], Arc<Verified>>);

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("entries", &self.0.entry_count())
            .finish()
    }
}

impl VerifiedCache {
    /// A cache of up to `capacity` tokens, each kept at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        )
    }
}

fn audience_matches(aud: Option<&Value>, expected: &str) -> bool {
    match aud {
        Some(Value::String(s)) => s == expected,
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(expected)),
        _ => false,
    }
}

fn parse_claims(app: &AppState, token: &str) -> Result<Verified, BearerError> {
    let verified = jwt::verify(&app.keys.current(), token)?;
    let kid = verified
        .header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(BearerError::UnknownKid)?
        .to_owned();
    match verified.header.get("typ").and_then(Value::as_str) {
        Some(t)
            if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt") => {
        }
        _ => return Err(BearerError::WrongType),
    }
    let c = &verified.claims;
    if c.get("iss").and_then(Value::as_str) != Some(app.config.issuer.as_str()) {
        return Err(BearerError::WrongIssuer);
    }
    if !audience_matches(c.get("aud"), &app.config.audience) {
        return Err(BearerError::WrongAudience);
    }
    let text = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
    let num = |k: &str| c.get(k).and_then(Value::as_i64);
    let (Some(sub), Some(client_id), Some(exp), Some(jti)) =
        (text("sub"), text("client_id"), num("exp"), text("jti"))
    else {
        return Err(BearerError::Malformed);
    };
    if let Some(nbf) = num("nbf")
        && nbf > app.clock.now()
    {
        return Err(BearerError::NotYetValid);
    }
    let roles = match c.get("roles") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        None => Vec::new(),
        Some(_) => return Err(BearerError::Malformed),
    };
    let claims = AccessClaims {
        sub,
        client_id,
        sid: text("sid"),
        scope: text("scope").unwrap_or_default(),
        roles,
        superuser: c.get("superuser").and_then(Value::as_bool).unwrap_or(false),
        exp,
        iat: num("iat").unwrap_or(0),
        jti,
    };
    Ok(Verified {
        kid,
        claims: Arc::new(claims),
    })
}

/// Validates an access token issued by usher: signature, type, issuer, audience, expiry,
/// and that its session has not ended.
pub fn authenticate(app: &AppState, token: &str) -> Result<Arc<AccessClaims>, BearerError> {
    let key = sha256(token.as_bytes());
    let claims = match app.verified.0.get(&key) {
        Some(hit) => {
            if app.keys.current().find(&hit.kid).is_none() {
                app.verified.0.invalidate(&key);
                return Err(BearerError::UnknownKid);
            }
            hit.claims.clone()
        }
        None => {
            let verified = Arc::new(parse_claims(app, token)?);
            app.verified.0.insert(key, verified.clone());
            verified.claims.clone()
        }
    };
    if app.clock.now() >= claims.exp {
        return Err(BearerError::Expired);
    }
    if let Some(sid) = &claims.sid
        && app.feed.is_session_ended(sid)
    {
        return Err(BearerError::SessionEnded);
    }
    if (claims.sid.is_none() && app.feed.is_token_revoked(&claims.jti))
        || app.feed.is_client_deleted(&claims.client_id, claims.iat)
    {
        return Err(BearerError::Revoked);
    }
    Ok(claims)
}

/// As [`authenticate`], and the token must belong to a user (not a service client).
pub fn authenticate_user(app: &AppState, token: &str) -> Result<Arc<AccessClaims>, BearerError> {
    let claims = authenticate(app, token)?;
    if !claims.is_user() {
        return Err(BearerError::NotAUser);
    }
    Ok(claims)
}
