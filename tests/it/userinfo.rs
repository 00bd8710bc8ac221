//! `GET`/`POST /oauth2/userinfo` (OIDC Core §5.3) with RFC 6750 errors.

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

backend_test! {
    /// GET and POST return the claims of the token's scope, matching the ID token.
    async fn userinfo_returns_claims_per_scope(app) {
        let u = app.user().await;
        for method in [Method::GET, Method::POST] {
            let r = app.call(method, "/oauth2/userinfo", Some(&u.tokens.access), None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert_eq!(redact(r.body.clone(), &["updated_at"]), json!({
                "sub": u.id, "preferred_username": u.login, "updated_at": "[redacted]", "roles": ["user"],
            }));
        }
        let form = [("grant_type", "password"), ("username", u.login.as_str()), ("password", PASSWORD), ("client_id", "cinema-web"), ("scope", "openid")];
        let t = tokens_of(&app.post_form("/oauth2/token", &form).await);
        let r = app.get("/oauth2/userinfo", Some(&t.access)).await;
        assert_eq!(r.body, json!({"sub": u.id}));
    }
}

backend_test! {
    /// Without the `openid` scope the answer is 403 `insufficient_scope`.
    async fn userinfo_needs_openid_scope(app) {
        let u = app.user().await;
        let form = [("grant_type", "password"), ("username", u.login.as_str()), ("password", PASSWORD), ("client_id", "cinema-web"), ("scope", "profile")];
        let t = tokens_of(&app.post_form("/oauth2/token", &form).await);
        let r = app.get("/oauth2/userinfo", Some(&t.access)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.body["error"], "insufficient_scope");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"usher\", error=\"insufficient_scope\", scope=\"openid\""));
    }
}

backend_test! {
    /// No token: 401 with a bare challenge; a bad or ended token: 401 `invalid_token`.
    async fn userinfo_token_errors(app) {
        let r = app.get("/oauth2/userinfo", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = app.get("/oauth2/userinfo", Some("garbage")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["error"], "invalid_token");
        assert!(r.header("www-authenticate").unwrap().contains("error=\"invalid_token\""));
        let u = app.user().await;
        app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        let r = app.get("/oauth2/userinfo", Some(&u.tokens.access)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["error_description"], "the session of the access token has ended");
    }
}

backend_test! {
    /// OIDC Core §5.3 (userinfo returns claims about the authenticated end-user): a
    /// `client_credentials` token names no user, so it is 401 `invalid_token` with the
    /// description of `token_not_a_user` (RFC 6750 §3.1; userinfo answers RFC 6750 JSON,
    /// without usher's problem `code`).
    async fn userinfo_service_token_is_401(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let t = app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "client_credentials")]).await;
        let service = t.body["access_token"].as_str().unwrap();
        for method in [Method::GET, Method::POST] {
            let r = app.call(method, "/oauth2/userinfo", Some(service), None).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
            assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"usher\", error=\"invalid_token\", error_description=\"the access token does not belong to a user\""));
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.body, json!({"error": "invalid_token", "error_description": "the access token does not belong to a user"}));
        }
    }
}

backend_test! {
    /// OIDC Core §5.4: `roles` is released only with the `roles` scope, in the ID token
    /// and at userinfo alike; `superuser` is never released to a client there (it is an
    /// access-token claim for usher's resource servers). The access token carries both
    /// whatever the scope (RFC 9068 token for the movie API's offline decisions).
    async fn userinfo_and_id_token_release_roles_by_scope_only(app) {
        let root = app.superuser().await;
        let grant = |scope: &'static str| {
            let login = root.login.clone();
            let app = &app;
            async move {
                let form = [("grant_type", "password"), ("username", login.as_str()), ("password", PASSWORD), ("client_id", "cinema-web"), ("scope", scope)];
                tokens_of(&app.post_form("/oauth2/token", &form).await)
            }
        };
        let t = grant("openid profile").await;
        let (_, id) = decode_jwt(t.id_token.as_deref().unwrap());
        let (_, access) = decode_jwt(&t.access);
        assert!(id.get("roles").is_none() && id.get("superuser").is_none(), "{id}");
        assert_eq!((access["roles"].clone(), access["superuser"].clone()), (json!(["user"]), json!(true)));
        let r = app.get("/oauth2/userinfo", Some(&t.access)).await;
        assert_eq!(redact(r.body, &["updated_at"]), json!({"sub": root.id, "preferred_username": root.login, "updated_at": "[redacted]"}));
        let t = grant("openid roles").await;
        let (_, id) = decode_jwt(t.id_token.as_deref().unwrap());
        assert_eq!((id["roles"].clone(), id.get("superuser")), (json!(["user"]), None), "{id}");
        let r = app.get("/oauth2/userinfo", Some(&t.access)).await;
        assert_eq!(r.body, json!({"sub": root.id, "roles": ["user"]}));
    }
}
