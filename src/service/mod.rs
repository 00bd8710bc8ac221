//! Protocol flows and account logic. Calls `store`, `state` and `token`; knows nothing of
//! HTTP. Every function takes the [`AppState`](crate::AppState) and typed inputs and
//! returns typed outputs or a [`ServiceError`]; the http layer picks the wire format.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::state::StateError;
use crate::store::StoreError;

pub mod accounts;
pub mod authorize;
pub mod authz;
pub mod bearer;
pub mod browser;
pub mod cache;
pub mod client_registry;
pub mod clients;
pub mod discovery;
pub mod feed;
pub mod grants;
pub mod introspection;
pub mod passwords;
pub mod pkce;
pub mod redirect_uri;
pub mod revocation;
pub mod revocation_feed;
pub mod roles;
pub mod scope;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use bearer::{AccessClaims, BearerError};

/// RFC 6749 §5.2 (and OIDC) error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// Missing, repeated or malformed parameter.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (password, code, refresh token) is invalid.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The scope is invalid or exceeds what was granted.
    InvalidScope,
    /// The server cannot serve now (overload, dependency down).
    TemporarilyUnavailable,
    /// An internal failure.
    ServerError,
}

impl OAuthCode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// An OAuth error: a code and a description safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC 6749 code.
    pub code: OAuthCode,
    /// Client-safe `error_description`.
    pub description: Cow<'static, str>,
}

impl OAuthError {
    /// A new error.
    pub fn new(code: OAuthCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthCode::InvalidRequest, description)
    }

    /// `invalid_grant` with a description.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthCode::InvalidGrant, description)
    }
}

/// True when `text` holds a character usher never stores or looks up: NUL (PostgreSQL
/// `text` cannot hold it) or another control character, tab, line feed and carriage
/// return apart (free text may hold those).
pub fn has_forbidden_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// The first name that repeats an earlier one, in one pass (a request may carry
/// thousands of parameters: comparing each with all before it would cost quadratic time).
pub fn first_repeated<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|name| !seen.insert(*name))
}

/// The field error of a text member holding a character [`has_forbidden_control`]
/// refuses.
pub fn control_character_error(field: impl Into<String>) -> FieldError {
    FieldError::new(
        field,
        "control_character",
        "must not contain NUL or other control characters",
    )
}

/// One failing field of a validation error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The member, `permissions[0]` for an array element.
    pub field: String,
    /// Machine-readable reason: `required`, `type`, `too_short`, `too_long`, `format`, ...
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// Errors of the service layer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An OAuth protocol error (token, revocation, introspection endpoints).
    #[error("oauth error {}", .0.code.as_str())]
    OAuth(OAuthError),
    /// Input that breaks a rule; every failing field is named.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The resource does not exist (or must not be revealed).
    #[error("not found: {code}")]
    NotFound {
        /// Stable code.
        code: &'static str,
        /// Client-safe detail.
        detail: Cow<'static, str>,
    },
    /// A uniqueness or state conflict.
    #[error("conflict: {code}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Client-safe detail.
        detail: Cow<'static, str>,
    },
    /// Authenticated, but not allowed.
    #[error("forbidden: {code}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// Client-safe detail.
        detail: Cow<'static, str>,
    },
    /// The resource existed but is gone for good (an expired cursor).
    #[error("gone: {code}")]
    Gone {
        /// Stable code.
        code: &'static str,
        /// Client-safe detail.
        detail: &'static str,
    },
    /// The bearer token is missing or invalid.
    #[error("unauthenticated: {0}")]
    Unauthenticated(BearerError),
    /// A dependency is down or a bounded queue is full; retry later.
    #[error("unavailable: {internal}")]
    Unavailable {
        /// What is unavailable, client-safe.
        detail: &'static str,
        /// Seconds for `Retry-After`.
        retry_after: u32,
        /// Cause, for the log only.
        internal: String,
    },
    /// A bug or corrupt data; the cause goes to the log only.
    #[error("internal: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A 404 with a code and detail.
    pub fn not_found(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::NotFound {
            code,
            detail: detail.into(),
        }
    }

    /// A 409 with a code and detail.
    pub fn conflict(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// A 403 with a code and detail.
    pub fn forbidden(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
        }
    }
}

impl From<OAuthError> for ServiceError {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("not_found", "the resource does not exist"),
            StoreError::Conflict { .. } => Self::conflict(
                "conflict",
                "the request conflicts with an existing resource",
            ),
            StoreError::Unavailable(internal) => Self::Unavailable {
                detail: "the database is unavailable",
                retry_after: 5,
                internal,
            },
            StoreError::Other(internal) => Self::Internal(internal),
        }
    }
}

impl From<StateError> for ServiceError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Unavailable(internal) => Self::Unavailable {
                detail: "the shared state (Redis) is unavailable",
                retry_after: 5,
                internal,
            },
        }
    }
}

/// What the http layer knows of the caller, in plain types.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// Client address: the socket peer, or `X-Forwarded-For` from a trusted proxy.
    pub ip: Option<IpAddr>,
    /// User agent, truncated to [`MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
}

/// Longest user agent kept.
pub const MAX_USER_AGENT: usize = 256;

impl RequestMeta {
    /// The IP as stored (no port).
    pub fn ip_text(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first name seen twice is reported, whatever its position; distinct names,
    /// however many, are none.
    #[test]
    fn first_repeated_finds_the_first_repeat() {
        assert_eq!(first_repeated(["a", "b", "c", "b", "a"]), Some("b"));
        assert_eq!(first_repeated(["a", "b", "c"]), None);
        assert_eq!(first_repeated([]), None);
        let names: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
        assert_eq!(first_repeated(names.iter().map(String::as_str)), None);
        let mut with_repeat = names.clone();
        with_repeat.push("k9999".to_owned());
        assert_eq!(
            first_repeated(with_repeat.iter().map(String::as_str)),
            Some("k9999")
        );
    }
}
