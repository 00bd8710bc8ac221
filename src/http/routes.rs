//! The route table: every `(method, path, handler)` usher serves. The router is built
//! from this table and nothing else, so the list that `openapi.yaml` is checked against
//! ([`routes`]) is the router itself.

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::{
    account, account_pages, authorize, authz, clients, discovery, end_session, health, introspect,
    login, revocations, roles, stylesheet, token, userinfo, users,
};
use crate::AppState;

/// The HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET (HEAD is answered by the same handler).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Verb {
    /// The method's name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Patch => MethodFilter::PATCH,
            Self::Delete => MethodFilter::DELETE,
        }
    }
}

/// Binds a handler to the method filter it is given.
type Bind = fn(MethodFilter) -> MethodRouter<AppState>;

/// One route: its method, its path template and its handler.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The method.
    pub method: Verb,
    /// The path template (`{param}` segments).
    pub path: &'static str,
    bind: Bind,
}

const fn route(method: Verb, path: &'static str, bind: Bind) -> Route {
    Route { method, path, bind }
}

use Verb::{Delete as DELETE, Get as GET, Patch as PATCH, Post as POST, Put as PUT};

/// The OAuth endpoints, the JSON API, health checks and the stylesheet.
pub const API_ROUTES: &[Route] = &[
    route(GET, "/.well-known/openid-configuration", |m| {
        on(m, discovery::openid_configuration)
    }),
    route(GET, "/.well-known/jwks.json", |m| on(m, discovery::jwks)),
    route(POST, "/oauth2/token", |m| on(m, token::token)),
    route(GET, "/oauth2/userinfo", |m| on(m, userinfo::userinfo)),
    route(POST, "/oauth2/userinfo", |m| on(m, userinfo::userinfo)),
    route(POST, "/oauth2/introspect", |m| {
        on(m, introspect::introspect)
    }),
    route(POST, "/oauth2/revoke", |m| on(m, introspect::revoke)),
    route(POST, "/api/v1/users", |m| on(m, account::sign_up)),
    route(GET, "/api/v1/users", |m| on(m, users::list)),
    route(GET, "/api/v1/users/me", |m| on(m, account::me)),
    route(PATCH, "/api/v1/users/me", |m| on(m, account::update_me)),
    route(PUT, "/api/v1/users/me/password", |m| {
        on(m, account::change_password)
    }),
    route(GET, "/api/v1/users/me/login-history", |m| {
        on(m, account::login_history)
    }),
    route(GET, "/api/v1/users/me/sessions", |m| {
        on(m, account::list_sessions)
    }),
    route(DELETE, "/api/v1/users/me/sessions/{sid}", |m| {
        on(m, account::end_session)
    }),
    route(POST, "/api/v1/auth/logout", |m| on(m, account::logout)),
    route(POST, "/api/v1/auth/logout-others", |m| {
        on(m, account::logout_others)
    }),
    route(GET, "/api/v1/roles", |m| on(m, roles::list)),
    route(POST, "/api/v1/roles", |m| on(m, roles::create)),
    route(GET, "/api/v1/roles/{role_id}", |m| on(m, roles::get)),
    route(PATCH, "/api/v1/roles/{role_id}", |m| on(m, roles::update)),
    route(DELETE, "/api/v1/roles/{role_id}", |m| on(m, roles::delete)),
    route(GET, "/api/v1/users/{user_id}", |m| on(m, users::get)),
    route(PATCH, "/api/v1/users/{user_id}", |m| on(m, users::update)),
    route(GET, "/api/v1/users/{user_id}/roles", |m| {
        on(m, users::roles_of)
    }),
    route(PUT, "/api/v1/users/{user_id}/roles/{role_id}", |m| {
        on(m, users::assign)
    }),
    route(DELETE, "/api/v1/users/{user_id}/roles/{role_id}", |m| {
        on(m, users::unassign)
    }),
    route(GET, "/api/v1/authz/check", |m| on(m, authz::check)),
    route(POST, "/api/v1/authz/check", |m| on(m, authz::check_batch)),
    route(GET, "/api/v1/clients", |m| on(m, clients::list)),
    route(POST, "/api/v1/clients", |m| on(m, clients::create)),
    route(GET, "/api/v1/clients/{client_id}", |m| on(m, clients::get)),
    route(PATCH, "/api/v1/clients/{client_id}", |m| {
        on(m, clients::update)
    }),
    route(DELETE, "/api/v1/clients/{client_id}", |m| {
        on(m, clients::delete)
    }),
    route(GET, "/api/v1/revocations", |m| {
        on(m, revocations::revocations)
    }),
    route(GET, "/healthz", |m| on(m, health::healthz)),
    route(GET, "/readyz", |m| on(m, health::readyz)),
    route(GET, "/static/usher.css", |m| on(m, stylesheet)),
];

/// The pages and the browser-facing OIDC endpoints, served behind the browser-session
/// layer.
pub const PAGE_ROUTES: &[Route] = &[
    route(GET, "/oauth2/authorize", |m| {
        on(m, authorize::authorize_get)
    }),
    route(POST, "/oauth2/authorize", |m| {
        on(m, authorize::authorize_post)
    }),
    route(GET, "/oauth2/logout", |m| on(m, end_session::logout_get)),
    route(POST, "/oauth2/logout", |m| on(m, end_session::logout_post)),
    route(GET, "/login", |m| on(m, login::login_get)),
    route(POST, "/login", |m| on(m, login::login_post)),
    route(GET, "/signup", |m| on(m, login::signup_get)),
    route(POST, "/signup", |m| on(m, login::signup_post)),
    route(GET, "/consent", |m| on(m, authorize::consent_get)),
    route(POST, "/consent", |m| on(m, authorize::consent_post)),
    route(GET, "/account", |m| on(m, account_pages::account)),
    route(POST, "/account/profile", |m| on(m, account_pages::profile)),
    route(POST, "/account/password", |m| {
        on(m, account_pages::password)
    }),
    route(POST, "/account/sessions/{sid}/end", |m| {
        on(m, account_pages::end_session)
    }),
    route(POST, "/account/logout-others", |m| {
        on(m, account_pages::logout_others)
    }),
    route(POST, "/account/consents/{client_id}/revoke", |m| {
        on(m, account_pages::revoke_consent)
    }),
    route(POST, "/account/logout", |m| on(m, account_pages::logout)),
    route(GET, "/account/history", |m| on(m, account_pages::history)),
];

/// Every route served, as `(METHOD, path)`: exactly what the router is built from.
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    API_ROUTES
        .iter()
        .chain(PAGE_ROUTES)
        .map(|r| (r.method.as_str(), r.path))
}

/// A router serving every route of `table` (routes of one path share one method router).
pub(super) fn router_of(table: &[Route]) -> Router<AppState> {
    table.iter().fold(Router::new(), |router, r| {
        router.route(r.path, (r.bind)(r.method.filter()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No `(method, path)` is listed twice (the router would refuse it at start).
    #[test]
    fn routes_are_unique() {
        let all: Vec<_> = routes().collect();
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(all.len(), unique.len());
    }
}
