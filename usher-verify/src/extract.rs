//! axum extractors: [`Authenticated`] (any valid token; `Option<Authenticated>` for
//! routes open to anonymous callers), and [`RequireRole`], [`RequireScope`],
//! [`RequirePermission`] named by a marker type. They find the [`Verifier`] and the
//! route's [`Mode`] in the request extensions, where a [`crate::Guard`] puts them
//! (`.layer(verifier.layer())`; `Extension(verifier)` works too). Behind a guard that
//! already verified the token in a mode at least as strict as the route's they reuse its
//! claims; otherwise they decide again in the route's mode. Calls [`crate::verifier`].

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::{Claims, Mode, Rejection, Requirement, Verifier, VerifyError};

/// The route's mode, set by a guard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteMode(pub(crate) Mode);

/// Claims a guard has already verified for this request, and the mode it applied.
#[derive(Debug, Clone)]
pub(crate) struct Verified(pub(crate) Arc<Claims>, pub(crate) Mode);

/// How much of usher's current state a mode consults: offline < feed < live.
fn strictness(mode: Mode) -> u8 {
    match mode {
        Mode::Offline => 0,
        Mode::Feed => 1,
        Mode::Live => 2,
    }
}

/// The bearer token of the `Authorization` header (RFC 6750 §2.1): `Missing` without a
/// `Bearer` credential, `Malformed` for a repeated header or a token that is not a
/// b64token.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(VerifyError::Missing)?;
    if values.next().is_some() {
        return Err(VerifyError::Malformed);
    }
    let text = value.to_str().map_err(|_| VerifyError::Malformed)?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(VerifyError::Missing);
    }
    let token = token.trim();
    let b64token = !token.is_empty()
        && token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c));
    if !b64token {
        return Err(VerifyError::Malformed);
    }
    Ok(token)
}

/// Verifies the request's token against `requirement` in the route's mode.
async fn extract(parts: &Parts, requirement: &Requirement) -> Result<Arc<Claims>, Rejection> {
    let Some(verifier) = parts.extensions.get::<Verifier>() else {
        return Err(Rejection::new(VerifyError::Misconfigured, "usher".into()));
    };
    let mode = parts
        .extensions
        .get::<RouteMode>()
        .map_or(verifier.default_mode(), |m| m.0);
    let reject = |e| Rejection::new(e, verifier.inner.realm.clone());
    let token = bearer_token(&parts.headers).map_err(reject)?;
    match parts.extensions.get::<Verified>() {
        Some(Verified(claims, checked))
            if *requirement == Requirement::Authenticated
                && strictness(*checked) >= strictness(mode) =>
        {
            Ok(claims.clone())
        }
        Some(Verified(claims, _)) => {
            verifier
                .decide(claims, token, None, requirement, mode)
                .await
                .map_err(reject)?;
            Ok(claims.clone())
        }
        None => verifier
            .authorize(token, requirement, mode)
            .await
            .map_err(reject),
    }
}

/// The claims of a valid access token. As `Option<Authenticated>`, `None` when the
/// request has no bearer token (a bad token is still refused).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Claims>);

impl Deref for Authenticated {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        extract(parts, &Requirement::Authenticated).await.map(Self)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Rejection> {
        if bearer_token(&parts.headers) == Err(VerifyError::Missing) {
            return Ok(None);
        }
        extract(parts, &Requirement::Authenticated)
            .await
            .map(|c| Some(Self(c)))
    }
}

/// Names a role for [`RequireRole`]: `struct Subscriber; impl RoleName for Subscriber
/// { const NAME: &'static str = "subscriber"; }`.
pub trait RoleName: Send + Sync + 'static {
    /// The role name, as usher spells it.
    const NAME: &'static str;
}

/// Names a scope for [`RequireScope`].
pub trait ScopeName: Send + Sync + 'static {
    /// The scope.
    const NAME: &'static str;
}

/// Names a permission for [`RequirePermission`].
pub trait PermissionName: Send + Sync + 'static {
    /// The permission, `resource:action`.
    const NAME: &'static str;
}

macro_rules! requirement_extractor {
    ($(#[$doc:meta])* $name:ident, $bound:ident, $variant:ident) => {
        $(#[$doc])*
        pub struct $name<N: $bound> {
            claims: Arc<Claims>,
            name: PhantomData<fn() -> N>,
        }

        impl<N: $bound> $name<N> {
            /// The token's claims.
            pub fn claims(&self) -> &Arc<Claims> {
                &self.claims
            }
        }

        impl<N: $bound> std::fmt::Debug for $name<N> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&N::NAME).field(&self.claims).finish()
            }
        }

        impl<N: $bound> Deref for $name<N> {
            type Target = Claims;

            fn deref(&self) -> &Claims {
                &self.claims
            }
        }

        impl<N: $bound, S: Send + Sync> FromRequestParts<S> for $name<N> {
            type Rejection = Rejection;

            async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
                let requirement = Requirement::$variant(N::NAME.into());
                let claims = extract(parts, &requirement).await?;
                Ok(Self { claims, name: PhantomData })
            }
        }
    };
}

requirement_extractor!(
    /// A valid token of a caller holding the role `R::NAME` (superusers pass); from the
    /// token, or from usher in [`Mode::Live`].
    RequireRole, RoleName, Role
);
requirement_extractor!(
    /// A valid token granted the scope `S::NAME` (superusers pass).
    RequireScope, ScopeName, Scope
);
requirement_extractor!(
    /// A valid token whose bearer holds the permission `P::NAME` now, per usher's
    /// permission check (live; superusers pass).
    RequirePermission, PermissionName, Permission
);

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// RFC 6750 §2.1 header parsing: other schemes are no bearer credential, a bare or
    /// non-b64token value and a repeated header are malformed.
    #[test]
    fn bearer_header_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), Err(VerifyError::Missing));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), Err(VerifyError::Missing));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("bearer a.b-c_d~e+f/g="),
        );
        assert_eq!(bearer_token(&headers), Ok("a.b-c_d~e+f/g="));
        for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b"] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(bad));
            assert_eq!(bearer_token(&headers), Err(VerifyError::Malformed), "{bad}");
        }
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer_token(&headers), Err(VerifyError::Malformed));
    }
}
