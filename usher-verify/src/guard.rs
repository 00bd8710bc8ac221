//! The tower layer that protects a route in one line:
//! `get(watch).layer(verifier.require_role("subscriber"))`. A [`Guard`] installs the
//! verifier and the route's [`Mode`] in the request extensions (for the extractors),
//! and, when it has a [`Requirement`], refuses the request unless the bearer token meets
//! it, answering per RFC 6750. Calls [`crate::verifier`] and [`crate::extract`].

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::{RouteMode, Verified, bearer_token};
use crate::{Claims, Mode, Rejection, Requirement, Verifier};

/// A layer protecting the routes it wraps. Made by [`Verifier::layer`],
/// [`Verifier::authenticated`], [`Verifier::require_role`],
/// [`Verifier::require_scope`] and [`Verifier::require_permission`].
#[derive(Debug, Clone)]
pub struct Guard {
    verifier: Verifier,
    requirement: Option<Requirement>,
    mode: Mode,
}

/// Checks a name against usher's grammar (`[a-z0-9_.-]{1,64}`).
fn is_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

impl Verifier {
    fn guard(&self, requirement: Option<Requirement>) -> Guard {
        Guard {
            verifier: self.clone(),
            requirement,
            mode: self.default_mode(),
        }
    }

    /// Installs the verifier for the extractors, requiring nothing: put it on the whole
    /// router (`.layer(verifier.layer())`).
    pub fn layer(&self) -> Guard {
        self.guard(None)
    }

    /// Requires any valid access token.
    pub fn authenticated(&self) -> Guard {
        self.guard(Some(Requirement::Authenticated))
    }

    /// Requires a role (superusers pass).
    ///
    /// # Panics
    /// If `role` is not a valid usher role name (`[a-z0-9_.-]{1,64}`): it could never
    /// match.
    pub fn require_role(&self, role: impl Into<Cow<'static, str>>) -> Guard {
        let role = role.into();
        assert!(
            is_name(&role),
            "usher-verify: {role:?} is not an usher role name"
        );
        self.guard(Some(Requirement::Role(role)))
    }

    /// Requires a granted scope (superusers pass).
    ///
    /// # Panics
    /// If `scope` is empty or contains a space.
    pub fn require_scope(&self, scope: impl Into<Cow<'static, str>>) -> Guard {
        let scope = scope.into();
        assert!(
            !scope.is_empty() && !scope.contains(' '),
            "usher-verify: {scope:?} is not a scope"
        );
        self.guard(Some(Requirement::Scope(scope)))
    }

    /// Requires a permission, asked of usher's permission check with the caller's token
    /// (live, cached for the live TTL; superusers pass).
    ///
    /// # Panics
    /// If `permission` is not `resource:action` in usher's grammar.
    pub fn require_permission(&self, permission: impl Into<Cow<'static, str>>) -> Guard {
        let permission = permission.into();
        let valid = permission
            .split_once(':')
            .is_some_and(|(resource, action)| is_name(resource) && is_name(action));
        assert!(
            valid,
            "usher-verify: {permission:?} is not an usher permission"
        );
        Guard {
            mode: Mode::Live,
            ..self.guard(Some(Requirement::Permission(permission)))
        }
    }
}

impl Guard {
    /// Chooses the route's mode. Permission requirements are always live; for them this
    /// only chooses the mode of extractors behind the guard.
    ///
    /// # Panics
    /// On [`Mode::Feed`] when the verifier has no feed credentials.
    pub fn mode(mut self, mode: Mode) -> Self {
        assert!(
            mode != Mode::Feed || self.verifier.has_feed(),
            "usher-verify: Mode::Feed needs VerifierBuilder::feed_credentials"
        );
        self.mode = mode;
        self
    }

    /// Checks the request's headers against the requirement; returns the claims when it passes.
    async fn check(&self, headers: &HeaderMap) -> Result<Option<Arc<Claims>>, Rejection> {
        let Some(requirement) = &self.requirement else {
            return Ok(None);
        };
        let reject = |e| Rejection::new(e, self.verifier.inner.realm.clone());
        let token = bearer_token(headers).map_err(reject)?;
        let claims = self
            .verifier
            .authorize(token, requirement, self.mode)
            .await
            .map_err(reject)?;
        Ok(Some(claims))
    }
}

impl<S> Layer<S> for Guard {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            guard: Arc::new(self.clone()),
            inner,
        }
    }
}

/// The service of a [`Guard`].
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    guard: Arc<Guard>,
    inner: S,
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone is not driven to readiness; the ready one goes into the future.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let claims = match guard.check(request.headers()).await {
                Ok(claims) => claims,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            let extensions = request.extensions_mut();
            extensions.insert(guard.verifier.clone());
            extensions.insert(RouteMode(guard.mode));
            if let Some(claims) = claims {
                extensions.insert(Verified(claims, guard.mode));
            }
            match inner.call(request).await {
                Ok(response) => Ok(response.into_response()),
                Err(never) => match never {},
            }
        })
    }
}
