//! RFC 9457 `application/problem+json` responses for usher's own API, and the mapping
//! of [`ServiceError`] onto them. A 5xx carries a generic detail; its cause rides in a
//! response extension ([`InternalCause`]) that the request middleware logs once.

use std::borrow::Cow;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::service::{BearerError, FieldError, ServiceError};

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Detail of [`Problem::first_party_only`].
const FIRST_PARTY_ONLY: &str = "this token was issued to a third-party client; this endpoint needs a first-party client's token";

/// The cause of a 5xx, for the log only.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

tokio::task_local! {
    /// The id of the request being served (set by the request middleware).
    pub static REQUEST_ID: String;
}

/// The current request id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A problem document (boxed: it travels in `Result::Err`).
#[derive(Debug)]
pub struct Problem(Box<ProblemInner>);

#[derive(Debug)]
struct ProblemInner {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Cow<'static, str>,
    errors: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
    internal: Option<String>,
}

impl Problem {
    /// A problem with a status, a stable code and a client-safe detail.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self(Box::new(ProblemInner {
            status,
            code: code.into(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            internal: None,
        }))
    }

    /// 422 `validation_failed` naming every failing field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut fields: Vec<&str> = Vec::new();
        for e in &errors {
            if !fields.contains(&e.field.as_str()) {
                fields.push(&e.field);
            }
        }
        let detail = format!("invalid fields: {}", fields.join(", "));
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        );
        p.0.errors = errors;
        p
    }

    /// A 500 with a generic body; `internal` is logged, never sent.
    pub fn internal(internal: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; quote the request id when reporting it",
        );
        p.0.internal = Some(internal.into());
        p
    }

    /// 401 for a bearer failure, with the RFC 6750 challenge.
    pub fn bearer(error: BearerError) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, error.code(), error.description())
            .header(WWW_AUTHENTICATE, bearer_challenge(error))
    }

    /// 403 `first_party_only` for a user token issued to a third-party client on usher's
    /// own account or admin API, with the RFC 6750 §3.1 `insufficient_scope` challenge
    /// (the token lacks the privilege; no scope the client can ask for gives it).
    pub fn first_party_only() -> Self {
        Self::new(StatusCode::FORBIDDEN, "first_party_only", FIRST_PARTY_ONLY).header(
            WWW_AUTHENTICATE,
            format!(
                "Bearer realm=\"usher\", error=\"insufficient_scope\", \
                     error_description=\"{FIRST_PARTY_ONLY}\""
            ),
        )
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.0.headers.push((name, v));
        }
        self
    }

    /// Attaches a cause for the log.
    pub fn with_internal(mut self, internal: impl Into<String>) -> Self {
        self.0.internal = Some(internal.into());
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }
}

/// The `WWW-Authenticate` value for a bearer failure (RFC 6750 §3): bare when no token
/// was sent, `invalid_token` with a description otherwise.
pub fn bearer_challenge(error: BearerError) -> String {
    match error {
        BearerError::Missing => "Bearer".to_owned(),
        other => format!(
            "Bearer realm=\"usher\", error=\"invalid_token\", error_description=\"{}\"",
            other.description()
        ),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let this = *self.0;
        let title = this.status.canonical_reason().unwrap_or("Error");
        let mut body = json!({
            "type": format!("urn:usher:problem:{}", this.code),
            "title": title,
            "status": this.status.as_u16(),
            "detail": this.detail,
            "code": this.code,
        });
        if let Some(id) = current_request_id() {
            body["instance"] = json!(format!("urn:usher:request:{id}"));
        }
        if !this.errors.is_empty() {
            body["errors"] = json!(this.errors);
        }
        let mut response = (this.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in this.headers {
            headers.insert(name, value);
        }
        if let Some(internal) = this.internal {
            response.extensions_mut().insert(InternalCause(internal));
        }
        response
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Validation(errors) => Self::validation(errors),
            ServiceError::NotFound { code, detail } => {
                Self::new(StatusCode::NOT_FOUND, code, detail)
            }
            ServiceError::Conflict { code, detail } => {
                Self::new(StatusCode::CONFLICT, code, detail)
            }
            ServiceError::Forbidden { code, detail } => {
                Self::new(StatusCode::FORBIDDEN, code, detail)
            }
            ServiceError::Unauthenticated(b) => Self::bearer(b),
            ServiceError::Gone { code, detail } => Self::new(StatusCode::GONE, code, detail),
            ServiceError::Unavailable {
                detail,
                retry_after,
                internal,
            } => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
                .header(RETRY_AFTER, retry_after.to_string())
                .with_internal(internal),
            ServiceError::Internal(internal) => Self::internal(internal),
            ServiceError::OAuth(o) => {
                // OAuth errors outside the OAuth endpoints: a client mistake.
                Self::new(StatusCode::BAD_REQUEST, o.code.as_str(), o.description)
            }
        }
    }
}

impl From<ServiceError> for Response {
    fn from(e: ServiceError) -> Self {
        Problem::from(e).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{OAuthCode, OAuthError};

    /// Every service error variant maps to its documented status and code.
    #[test]
    fn service_errors_map_to_statuses() {
        let cases: Vec<(ServiceError, u16, &str)> = vec![
            (ServiceError::Validation(vec![]), 422, "validation_failed"),
            (
                ServiceError::not_found("x_not_found", "d"),
                404,
                "x_not_found",
            ),
            (
                ServiceError::conflict("login_taken", "d"),
                409,
                "login_taken",
            ),
            (
                ServiceError::forbidden("wrong_password", "d"),
                403,
                "wrong_password",
            ),
            (
                ServiceError::Unauthenticated(BearerError::Expired),
                401,
                "token_expired",
            ),
            (
                ServiceError::Unavailable {
                    detail: "d",
                    retry_after: 5,
                    internal: "i".into(),
                },
                503,
                "unavailable",
            ),
            (
                ServiceError::Internal("secret cause".into()),
                500,
                "internal_error",
            ),
            (
                ServiceError::OAuth(OAuthError::new(OAuthCode::InvalidScope, "d")),
                400,
                "invalid_scope",
            ),
        ];
        for (err, status, code) in cases {
            let p = Problem::from(err);
            assert_eq!(p.0.status.as_u16(), status);
            assert_eq!(p.0.code, code);
            assert!(!p.0.detail.contains("secret cause"));
        }
    }

    /// The bearer challenge is bare without a token and names the error otherwise.
    #[test]
    fn bearer_challenges() {
        assert_eq!(bearer_challenge(BearerError::Missing), "Bearer");
        let c = bearer_challenge(BearerError::Expired);
        assert!(c.contains("error=\"invalid_token\""));
        assert!(c.contains("expired"));
    }
}
