//! Cross-cutting HTTP behaviour: every bearer failure has its own code and challenge,
//! unknown routes and methods answer problem+json, request ids and client addresses
//! follow the trusted-proxy rule.

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use usher::token::{b64url, jwt};

/// Signs arbitrary claims with the app's own key (to test claim checks).
fn forge(app: &TestApp, typ: &str, claims: serde_json::Value) -> String {
    jwt::sign(app.app.keys.current().signing_key(), typ, &claims).unwrap()
}

fn good_claims(app: &TestApp, u: &User) -> serde_json::Value {
    let (_, c) = decode_jwt(&u.tokens.access);
    let mut c = c;
    c["iss"] = json!(app.base);
    c
}

backend_test! {
    /// Each way a bearer token can be wrong gets 401, `WWW-Authenticate: Bearer
    /// error="invalid_token"` and its own problem code (RFC 6750 §3.1).
    async fn bearer_failures_are_distinguished(app) {
        let u = app.user().await;
        let claims = good_claims(&app, &u);
        let parts: Vec<&str> = u.tokens.access.split('.').collect();
        let mut expired = claims.clone();
        expired["exp"] = json!(app.clock_now() - 1);
        let mut wrong_iss = claims.clone();
        wrong_iss["iss"] = json!("https://evil.example");
        let mut wrong_aud = claims.clone();
        wrong_aud["aud"] = json!("someone-else");
        let mut future = claims.clone();
        future["nbf"] = json!(app.clock_now() + 600);
        let tampered = format!("{}.{}.{}", parts[0], b64url(br#"{"sub":"admin"}"#), parts[2]);
        let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"at+jwt"}"#), parts[1]);
        let foreign = jwt::sign(foreign_key(), "at+jwt", &claims).unwrap();
        let cases = vec![
            (forge(&app, "at+jwt", expired), "token_expired"),
            (tampered, "token_bad_signature"),
            ("not-a-jwt".to_owned(), "token_malformed"),
            (foreign, "token_unknown_key"),
            (none, "token_unsupported_algorithm"),
            (forge(&app, "at+jwt", wrong_iss), "token_wrong_issuer"),
            (forge(&app, "at+jwt", wrong_aud), "token_wrong_audience"),
            (forge(&app, "at+jwt", future), "token_not_yet_valid"),
            (u.tokens.id_token.clone().unwrap(), "token_wrong_type"),
        ];
        for (token, code) in cases {
            let r = app.get("/api/v1/users/me", Some(&token)).await;
            assert_problem(&r, 401, code);
            let challenge = r.header("www-authenticate").unwrap();
            assert!(challenge.starts_with("Bearer realm=\"usher\", error=\"invalid_token\""), "{code}: {challenge}");
            assert!(challenge.contains(r.body["detail"].as_str().unwrap()), "{code}");
        }
        // An audience array that contains the configured audience is accepted.
        let mut multi = claims.clone();
        multi["aud"] = json!(["other", "cinema"]);
        assert_eq!(app.get("/api/v1/users/me", Some(&forge(&app, "at+jwt", multi))).await.status, StatusCode::OK);
        // A token that expires while cached is refused too.
        app.clock.advance(901);
        assert_problem(&app.get("/api/v1/users/me", Some(&u.tokens.access)).await, 401, "token_expired");
    }
}

backend_test! {
    /// A malformed Authorization header is never treated as "no token".
    async fn bearer_malformed_header_is_not_anonymous(app) {
        let r = read(app.client.get(app.url("/api/v1/users/me")).header("authorization", "Bearer a b c").send().await.unwrap()).await;
        assert_problem(&r, 401, "token_malformed");
        let r = read(app.client.get(app.url("/api/v1/users/me")).header("authorization", "Basic Zm9vOmJhcg==").send().await.unwrap()).await;
        assert_problem(&r, 401, "token_missing");
    }
}

backend_test! {
    /// Unknown routes are 404 and wrong methods 405 with `Allow`, both problem+json.
    async fn unknown_route_and_method(app) {
        let r = app.get("/no/such/thing", None).await;
        assert_problem(&r, 404, "not_found");
        let r = app.call(Method::DELETE, "/api/v1/users/me/login-history", None, None).await;
        assert_problem(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("GET,HEAD"));
        let r = app.call(Method::GET, "/oauth2/token", None, None).await;
        assert_problem(&r, 405, "method_not_allowed");
    }
}

backend_test! {
    /// Every response carries a generated `X-Request-Id`; one sent by an untrusted peer is
    /// not kept; `X-Content-Type-Options: nosniff` is always set.
    async fn request_id_generated(app) {
        let r = read(app.client.get(app.url("/healthz")).header("x-request-id", "client-chosen").send().await.unwrap()).await;
        let id = r.header("x-request-id").unwrap();
        assert_ne!(id, "client-chosen");
        assert_eq!(id.len(), 36);
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
}

backend_test! {
    /// From a trusted proxy, `X-Request-Id` is kept and `X-Forwarded-For` gives the
    /// client address recorded in the login history and the session (issue 2: "its IP
    /// (the socket address; `X-Forwarded-For` only from trusted proxies)").
    config(|c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]);
    async fn trusted_proxy_headers_are_believed(app) {
        let profile = app.sign_up("frank").await;
        let r = read(
            app.client
                .post(app.url("/oauth2/token"))
                .header("x-request-id", "proxy-123")
                .header("x-forwarded-for", "203.0.113.9, 127.0.0.1")
                .form(&[
                    ("grant_type", "password"),
                    ("username", "frank"),
                    ("password", PASSWORD),
                    ("client_id", "cinema-web"),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("x-request-id"), Some("proxy-123"));
        let t = tokens_of(&r);
        let h = app.get("/api/v1/users/me/login-history", Some(&t.access)).await;
        assert_eq!(h.body["items"][0]["ip"], "203.0.113.9");
        let s = app.get("/api/v1/users/me/sessions", Some(&t.access)).await;
        assert_eq!(s.body["items"][0]["ip"], "203.0.113.9");
        let id = profile["id"].as_str().unwrap();
        let events = app.store().list_login_events(id, None, 10).await.unwrap();
        assert_eq!(events[0].ip.as_deref(), Some("203.0.113.9"));
        let sessions = app.store().list_active_sessions(id, app.clock_now()).await.unwrap();
        assert_eq!(sessions[0].ip.as_deref(), Some("203.0.113.9"));
    }
}

backend_test! {
    /// Without trusted proxies, `X-Forwarded-For` and `X-Request-Id` are ignored: the
    /// socket address is recorded and a fresh request id is generated.
    async fn forwarded_for_ignored_from_untrusted_peer(app) {
        let profile = app.sign_up("gina").await;
        let r = read(
            app.client
                .post(app.url("/oauth2/token"))
                .header("x-forwarded-for", "203.0.113.9")
                .header("x-request-id", "proxy-123")
                .form(&[
                    ("grant_type", "password"),
                    ("username", "gina"),
                    ("password", PASSWORD),
                    ("client_id", "cinema-web"),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_ne!(r.header("x-request-id"), Some("proxy-123"));
        let t = tokens_of(&r);
        let h = app.get("/api/v1/users/me/login-history", Some(&t.access)).await;
        assert_eq!(h.body["items"][0]["ip"], "127.0.0.1");
        let events = app
            .store()
            .list_login_events(profile["id"].as_str().unwrap(), None, 10)
            .await
            .unwrap();
        assert_eq!(events[0].ip.as_deref(), Some("127.0.0.1"));
    }
}
