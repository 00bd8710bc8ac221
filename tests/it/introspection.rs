//! `client_credentials` (RFC 6749 §4.4), introspection (RFC 7662) and revocation
//! (RFC 7009).

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

backend_test! {
    /// A confidential client gets a service token (sub = client, no session, no refresh
    /// token) with Basic or with the secret in the body; a wrong secret is 401.
    async fn client_credentials_grant(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let r = app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "client_credentials")]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(redact(r.body.clone(), &["access_token"]), json!({"access_token": "[redacted]", "token_type": "Bearer", "expires_in": 900, "scope": "films:label"}));
        let (_, claims) = decode_jwt(r.body["access_token"].as_str().unwrap());
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["client_id"], id.as_str());
        assert!(claims.get("sid").is_none() && claims.get("roles").is_none());
        let r = app.post_form("/oauth2/token", &[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        let r = app.post_form_basic("/oauth2/token", &id, "wrong", &[("grant_type", "client_credentials")]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        let r = app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "client_credentials"), ("scope", "films:delete")]).await;
        assert_oauth_error(&r, 400, "invalid_scope");
        let post = app.register_client(&admin.tokens.access, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post", "scope": "films:label"})).await;
        let r = app.post_form("/oauth2/token", &[("grant_type", "client_credentials"), ("client_id", post["client_id"].as_str().unwrap()), ("client_secret", post["client_secret"].as_str().unwrap())]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

backend_test! {
    /// A client may only use the grants it is registered for (`unauthorized_client`).
    async fn token_grant_not_allowed_unauthorized_client(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let u = app.user().await;
        let r = app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "password"), ("username", &u.login), ("password", PASSWORD)]).await;
        assert_oauth_error(&r, 400, "unauthorized_client");
        let r = app.post_form("/oauth2/token", &[("grant_type", "client_credentials"), ("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "unauthorized_client");
    }
}

backend_test! {
    /// Introspection of a live user token reports it active with its user's current
    /// roles; after logout, for a blocked user, a foreign or garbage token: inactive.
    async fn introspect_access_tokens(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let u = app.user().await;
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", &u.tokens.access)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let (_, claims) = decode_jwt(&u.tokens.access);
        assert_eq!(r.body, json!({
            "active": true, "token_type": "Bearer", "scope": claims["scope"], "client_id": "cinema-web",
            "sub": u.id, "aud": "cinema", "iss": app.base, "exp": claims["exp"], "iat": claims["iat"],
            "jti": claims["jti"], "sid": claims["sid"], "username": u.login, "roles": ["user"],
        }));
        let service = app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "client_credentials")]).await;
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", service.body["access_token"].as_str().unwrap())]).await;
        assert_eq!(r.body["active"], true);
        assert_eq!(r.body["sub"], id.as_str());
        let foreign = usher::token::jwt::sign(foreign_key(), "at+jwt", &claims).unwrap();
        for t in [foreign.as_str(), "garbage", u.tokens.id_token.as_deref().unwrap()] {
            let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", t)]).await;
            assert_eq!(r.body, json!({"active": false}));
        }
        let blocked = app.user().await;
        app.call(Method::PATCH, &format!("/api/v1/users/{}", blocked.id), Some(&admin.tokens.access), Some(json!({"blocked": true}))).await;
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", &blocked.tokens.access)]).await;
        assert_eq!(r.body, json!({"active": false}));
        app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", &u.tokens.access)]).await;
        assert_eq!(r.body, json!({"active": false}));
        app.clock.advance(901);
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", service.body["access_token"].as_str().unwrap())]).await;
        assert_eq!(r.body, json!({"active": false}), "expired");
    }
}

backend_test! {
    /// A refresh token is introspectable only by its own client; spent ones are inactive.
    async fn introspect_refresh_tokens(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let u = app.user().await;
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", &u.tokens.refresh), ("token_type_hint", "refresh_token")]).await;
        assert_eq!(r.body, json!({"active": false}), "another client's refresh token");
        let web = app.register_client(&admin.tokens.access, json!({"grant_types": ["password", "refresh_token"], "first_party": true})).await;
        let (wid, wsecret) = (web["client_id"].as_str().unwrap(), web["client_secret"].as_str().unwrap());
        let t = app.post_form_basic("/oauth2/token", wid, wsecret, &[("grant_type", "password"), ("username", &u.login), ("password", PASSWORD)]).await;
        let rt = t.body["refresh_token"].as_str().unwrap();
        let r = app.post_form_basic("/oauth2/introspect", wid, wsecret, &[("token", rt)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        // No `token_type`: RFC 7662 §2.2 means an RFC 6749 §7.1 access token type.
        let (_, claims) = decode_jwt(t.body["access_token"].as_str().unwrap());
        assert_eq!(redact(r.body.clone(), &["exp", "iat"]), json!({
            "active": true, "scope": t.body["scope"], "client_id": wid, "sub": u.id,
            "username": u.login, "sid": claims["sid"], "exp": "[redacted]", "iat": "[redacted]",
            "iss": app.base,
        }));
        app.post_form_basic("/oauth2/token", wid, wsecret, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
        let r = app.post_form_basic("/oauth2/introspect", wid, wsecret, &[("token", rt)]).await;
        assert_eq!(r.body, json!({"active": false}));
    }
}

backend_test! {
    /// Introspection needs an authenticated confidential client: 401 `invalid_client`
    /// otherwise; a missing token is 400 `invalid_request`.
    async fn introspect_client_errors(app) {
        let u = app.user().await;
        let r = app.post_form("/oauth2/introspect", &[("token", &u.tokens.access), ("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        let r = app.post_form("/oauth2/introspect", &[("token", &u.tokens.access)]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        let r = app.post_form_basic("/oauth2/introspect", "nobody", "x", &[("token", &u.tokens.access)]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[]).await;
        assert_oauth_error(&r, 400, "invalid_request");
    }
}

backend_test! {
    /// Revoking a refresh token or an access token ends its session (200); unknown
    /// tokens get 200 too; another client's token stays valid.
    async fn revoke_tokens(app) {
        let u = app.user().await;
        let r = app.post_form("/oauth2/revoke", &[("token", &u.tokens.refresh), ("client_id", "cinema-web")]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.text, "");
        assert_problem(&app.get("/api/v1/users/me", Some(&u.tokens.access)).await, 401, "session_ended");
        let v = app.user().await;
        let r = app.post_form("/oauth2/revoke", &[("token", &v.tokens.access), ("client_id", "cinema-web"), ("token_type_hint", "access_token")]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_oauth_error(&app.refresh(&v.tokens.refresh).await, 400, "invalid_grant");
        let r = app.post_form("/oauth2/revoke", &[("token", "nonsense"), ("client_id", "cinema-web")]).await;
        assert_eq!(r.status, StatusCode::OK);
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let w = app.user().await;
        for t in [&w.tokens.access, &w.tokens.refresh] {
            let r = app.post_form_basic("/oauth2/revoke", &id, &secret, &[("token", t)]).await;
            assert_eq!(r.status, StatusCode::OK);
        }
        assert_eq!(app.get("/api/v1/users/me", Some(&w.tokens.access)).await.status, StatusCode::OK, "another client's token stays valid");
    }
}

backend_test! {
    /// A revoked service token is refused at once; revocation needs a known client.
    async fn revoke_service_token_and_errors(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let t = app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "client_credentials")]).await;
        let token = t.body["access_token"].as_str().unwrap();
        assert_eq!(app.get(RECENT_CHECK, Some(token)).await.status, StatusCode::OK);
        let r = app.post_form_basic("/oauth2/revoke", &id, &secret, &[("token", token)]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_problem(&app.get(RECENT_CHECK, Some(token)).await, 401, "token_revoked");
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", token)]).await;
        assert_eq!(r.body, json!({"active": false}));
        let r = app.post_form("/oauth2/revoke", &[("token", token), ("client_id", "nobody")]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        let r = app.post_form("/oauth2/revoke", &[("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "invalid_request");
    }
}

const RECENT_CHECK: &str = "/api/v1/authz/check?permission=films:watch_recent";

backend_test! {
    /// Introspection answers with the user's roles as they are now: taking a role away
    /// drops it from the very next answer, with the same token (issue 3: a role removal
    /// changes introspection's answer within a second).
    async fn introspect_roles_follow_removal(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let u = app.user().await;
        let subscriber = app.role_id("subscriber").await;
        let path = format!("/api/v1/users/{}/roles/{subscriber}", u.id);
        app.call(Method::PUT, &path, Some(&admin.tokens.access), None).await;
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", &u.tokens.access)]).await;
        assert_eq!(r.body["roles"], json!(["user", "subscriber"]), "{}", r.text);
        let r = app.call(Method::DELETE, &path, Some(&admin.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", &u.tokens.access)]).await;
        assert_eq!(r.body["active"], true);
        assert_eq!(r.body["roles"], json!(["user"]));
        assert!(app.store().user_role_ids(&u.id).await.unwrap().is_empty());
    }
}

backend_test! {
    /// A client registered for `client_secret_post` introspects with its secret in the
    /// body (RFC 7662 §2.1 with RFC 6749 §2.3.1); Basic is then refused.
    async fn introspect_client_secret_post(app) {
        let admin = app.superuser().await;
        let post = app.register_client(&admin.tokens.access, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"})).await;
        let (id, secret) = (post["client_id"].as_str().unwrap(), post["client_secret"].as_str().unwrap());
        let u = app.user().await;
        let r = app.post_form("/oauth2/introspect", &[("token", &u.tokens.access), ("client_id", id), ("client_secret", secret)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!((r.body["active"].clone(), r.body["sub"].clone()), (json!(true), json!(u.id)));
        let r = app.post_form_basic("/oauth2/introspect", id, secret, &[("token", &u.tokens.access)]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"usher\""));
    }
}

backend_test! {
    /// A confidential client revokes its own token by authenticating (RFC 7009 §2.1);
    /// giving only its `client_id` is 401 `invalid_client` and revokes nothing.
    async fn revoke_confidential_client(app) {
        let admin = app.superuser().await;
        let web = app.register_client(&admin.tokens.access, json!({"grant_types": ["password", "refresh_token"], "first_party": true})).await;
        let (wid, wsecret) = (web["client_id"].as_str().unwrap(), web["client_secret"].as_str().unwrap());
        let u = app.user().await;
        let t = app.post_form_basic("/oauth2/token", wid, wsecret, &[("grant_type", "password"), ("username", &u.login), ("password", PASSWORD)]).await;
        let (access, refresh) = (t.body["access_token"].as_str().unwrap(), t.body["refresh_token"].as_str().unwrap());
        let r = app.post_form("/oauth2/revoke", &[("token", refresh), ("client_id", wid)]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        assert_eq!(app.get("/api/v1/users/me", Some(access)).await.status, StatusCode::OK, "nothing revoked");
        let r = app.post_form_basic("/oauth2/revoke", wid, wsecret, &[("token", refresh)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.text, "");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_problem(&app.get("/api/v1/users/me", Some(access)).await, 401, "session_ended");
        let (_, claims) = decode_jwt(access);
        let session = app.store().find_session(claims["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(session.end_reason.as_deref(), Some("revoked"));
    }
}
