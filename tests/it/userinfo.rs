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
