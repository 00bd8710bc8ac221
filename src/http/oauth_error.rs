//! RFC 6749 §5.2 error bodies for the OAuth endpoints (`/oauth2/token`, revocation,
//! introspection) and RFC 6750 §3 bearer errors for resource endpoints (userinfo).

use axum::http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::problem::{InternalCause, bearer_challenge};
use crate::service::{BearerError, OAuthCode, OAuthError, ServiceError};

/// An error of an OAuth endpoint.
#[derive(Debug)]
pub struct OAuthResponse {
    error: OAuthError,
    retry_after: Option<u32>,
    internal: Option<String>,
}

impl From<OAuthError> for OAuthResponse {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            retry_after: None,
            internal: None,
        }
    }
}

impl From<ServiceError> for OAuthResponse {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::OAuth(error) => error.into(),
            ServiceError::Validation(errors) => {
                let fields: Vec<String> = errors.into_iter().map(|e| e.field).collect();
                OAuthError::invalid_request(format!("invalid parameters: {}", fields.join(", ")))
                    .into()
            }
            ServiceError::Unavailable {
                detail,
                retry_after,
                internal,
            } => Self {
                error: OAuthError::new(OAuthCode::TemporarilyUnavailable, detail),
                retry_after: Some(retry_after),
                internal: Some(internal),
            },
            ServiceError::Unauthenticated(_) => {
                OAuthError::invalid_grant("the grant is no longer valid").into()
            }
            ServiceError::Gone { detail, .. } => OAuthError::invalid_request(detail).into(),
            ServiceError::NotFound { detail, .. }
            | ServiceError::Conflict { detail, .. }
            | ServiceError::Forbidden { detail, .. } => OAuthError::invalid_request(detail).into(),
            ServiceError::Internal(internal) => Self {
                error: OAuthError::new(OAuthCode::ServerError, "an internal error occurred"),
                retry_after: None,
                internal: Some(internal),
            },
        }
    }
}

/// Adds the headers every OAuth response carries (RFC 6749 §5.1: no caching).
pub fn no_store(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        let status = match self.error.code {
            OAuthCode::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({
            "error": self.error.code.as_str(),
            "error_description": self.error.description,
        });
        let mut response = (status, axum::Json(body)).into_response();
        no_store(&mut response);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"usher\""),
            );
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, v);
        }
        if let Some(internal) = self.internal {
            response.extensions_mut().insert(InternalCause(internal));
        }
        response
    }
}

/// An RFC 6750 error of a bearer-protected OAuth resource (userinfo).
#[derive(Debug)]
pub enum BearerResponse {
    /// Missing or invalid token: 401.
    Invalid(BearerError),
    /// Valid token without the needed scope: 403 `insufficient_scope`.
    InsufficientScope(&'static str),
    /// Anything else from the service.
    Service(ServiceError),
}

impl IntoResponse for BearerResponse {
    fn into_response(self) -> Response {
        let (status, challenge, body) = match self {
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            Self::Invalid(BearerError::Missing) => (
                StatusCode::UNAUTHORIZED,
                bearer_challenge(BearerError::Missing),
                json!({"error_description": BearerError::Missing.description()}),
            ),
            Self::Invalid(e) => (
                StatusCode::UNAUTHORIZED,
                bearer_challenge(e),
                json!({"error": "invalid_token", "error_description": e.description()}),
            ),
            Self::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                format!("Bearer realm=\"usher\", error=\"insufficient_scope\", scope=\"{scope}\""),
                json!({"error": "insufficient_scope", "error_description": format!("the token needs the {scope} scope")}),
            ),
            Self::Service(ServiceError::Unauthenticated(e)) => {
                return Self::Invalid(e).into_response();
            }
            Self::Service(e) => return super::problem::Problem::from(e).into_response(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        no_store(&mut response);
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        response
    }
}
