//! Cross-cutting HTTP behaviour: every bearer failure has its own code and challenge,
//! unknown routes and methods answer problem+json, request ids and client addresses
//! follow the trusted-proxy rule.

use std::time::Duration;

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

backend_test! {
    /// NUL and other control characters in JSON members and query parameters are 422
    /// naming the member (`control_character`), never a database error: PostgreSQL
    /// `text` cannot hold NUL.
    async fn control_characters_in_json_and_query_are_422(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let roles_before = app.store().list_roles().await.unwrap().len();
        let r = app.call(Method::POST, "/api/v1/roles", token,
            Some(json!({"name": "nul", "description": "a\u{0}b", "permissions": ["films:x\u{0}"]}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"], json!([
            {"field": "description", "code": "control_character", "message": "must not contain NUL or other control characters"},
            {"field": "permissions[0]", "code": "control_character", "message": "must not contain NUL or other control characters"},
        ]));
        assert_eq!(app.store().list_roles().await.unwrap().len(), roles_before);
        // Free text keeps tabs and line breaks.
        let r = app.call(Method::POST, "/api/v1/roles", token,
            Some(json!({"name": "multi", "description": "line one\nline two\ttab", "permissions": []}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let client = app.register_client(&admin.tokens.access, json!({"grant_types": ["client_credentials"]})).await;
        let id = client["client_id"].as_str().unwrap();
        for name in ["ETL\u{0}", "ETL\u{1b}[31m", "two\nlines"] {
            let r = app.call(Method::PATCH, &format!("/api/v1/clients/{id}"), token, Some(json!({"client_name": name}))).await;
            assert_problem(&r, 422, "validation_failed");
            assert_eq!(r.body["errors"][0]["field"], "client_name");
            assert_eq!(r.body["errors"][0]["code"], "control_character");
        }
        assert_eq!(app.store().find_client(id).await.unwrap().unwrap().client_name, id);
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": "nul\u{0}user", "password": PASSWORD}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "login");
        for (q, field) in [("login=%00", "login"), ("cursor=%00", "cursor"), ("login=a%1Fb", "login")] {
            let r = app.get(&format!("/api/v1/users?{q}"), token).await;
            assert_problem(&r, 422, "validation_failed");
            assert_eq!(r.body["errors"], json!([{"field": field, "code": "control_character", "message": "must not contain NUL or other control characters"}]), "{q}");
        }
        // A cursor that decodes to a NUL is not one this endpoint made.
        let forged = usher::token::b64url(b"ul:\0");
        let r = app.get(&format!("/api/v1/users?cursor={forged}"), token).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "cursor");
        let r = app.get("/api/v1/authz/check?permission=films%00:x", None).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "permission");
    }
}

backend_test! {
    /// A path id holding NUL names nothing: the resource's 404, never a database error.
    async fn control_characters_in_path_ids_are_404(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let subscriber = app.role_id("subscriber").await;
        let cases = [
            (Method::GET, "/api/v1/roles/%00".to_owned(), "role_not_found"),
            (Method::DELETE, "/api/v1/roles/a%00b".to_owned(), "role_not_found"),
            (Method::GET, "/api/v1/users/%00".to_owned(), "user_not_found"),
            (Method::GET, "/api/v1/users/%00/roles".to_owned(), "user_not_found"),
            (Method::PUT, format!("/api/v1/users/%00/roles/{subscriber}"), "user_not_found"),
            (Method::DELETE, format!("/api/v1/users/{}/roles/%00", admin.id), "role_not_found"),
            (Method::GET, "/api/v1/clients/%00".to_owned(), "client_not_found"),
            (Method::DELETE, "/api/v1/clients/%00".to_owned(), "client_not_found"),
            (Method::DELETE, "/api/v1/users/me/sessions/%00".to_owned(), "session_not_found"),
        ];
        for (method, path, code) in cases {
            let r = app.call(method.clone(), &path, token, None).await;
            assert_problem(&r, 404, code);
        }
        let r = app.call(Method::PATCH, "/api/v1/roles/%00", token, Some(json!({"description": "x"}))).await;
        assert_problem(&r, 404, "role_not_found");
        let r = app.call(Method::PATCH, "/api/v1/users/%00", token, Some(json!({"blocked": true}))).await;
        assert_problem(&r, 404, "user_not_found");
        let r = app.call(Method::PATCH, "/api/v1/clients/%00", token, Some(json!({"client_name": "x"}))).await;
        assert_problem(&r, 404, "client_not_found");
    }
}

backend_test! {
    /// At the OAuth endpoints a client id or secret holding NUL names no client: 401
    /// `invalid_client` (RFC 6749 §5.2), in the form or in HTTP Basic; another parameter
    /// holding one is a malformed request: 400 `invalid_request`.
    async fn control_characters_at_oauth_endpoints(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let u = app.user().await;
        for path in ["/oauth2/introspect", "/oauth2/revoke", "/oauth2/token"] {
            let r = app.post_form(path, &[("client_id", "\0"), ("client_secret", "x"), ("token", &u.tokens.access), ("grant_type", "client_credentials")]).await;
            assert_oauth_error(&r, 401, "invalid_client");
            assert_eq!(r.body["error_description"], "client authentication failed", "{path}");
            let r = app.post_form(path, &[("client_id", "\0"), ("token", &u.tokens.access), ("grant_type", "client_credentials")]).await;
            assert_oauth_error(&r, 401, "invalid_client");
            let r = app.post_form_basic(path, "\0", &secret, &[("token", &u.tokens.access), ("grant_type", "client_credentials")]).await;
            assert_oauth_error(&r, 401, "invalid_client");
            let r = app.post_form_basic(path, &id, &secret, &[("token", "a\0b"), ("grant_type", "client_credentials")]).await;
            assert_oauth_error(&r, 400, "invalid_request");
            assert_eq!(r.body["error_description"], "the parameter token holds a control character");
        }
        let r = app.post_form("/oauth2/token", &[("grant_type", "password"), ("username", "nul\0"), ("password", PASSWORD), ("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "invalid_request");
        assert_eq!(r.body["error_description"], "the parameter username holds a control character");
        // The client is unharmed: its credentials still work.
        let r = app.post_form_basic("/oauth2/introspect", &id, &secret, &[("token", &u.tokens.access)]).await;
        assert_eq!(r.body["active"], true);
    }
}

backend_test! {
    /// A query parameter of the API given twice is 422 naming it (field code
    /// `repeated`), at any position, also after thousands of distinct parameters
    /// (which are otherwise ignored); at the token endpoint a repeated form parameter
    /// is `invalid_request` (RFC 6749 §3.2). Nothing is read or changed.
    async fn repeated_parameters_are_refused(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let many: String = (0..4000).map(|i| format!("&k{i}=")).collect();
        let cases = [
            ("/api/v1/users?login=a&login=b".to_owned(), "login"),
            ("/api/v1/users/me/login-history?limit=1&cursor=x&limit=2".to_owned(), "limit"),
            (format!("/api/v1/users?login=a{many}&login=a"), "login"),
            (format!("/api/v1/users?k17=1{many}"), "k17"),
        ];
        for (path, field) in cases {
            let r = app.get(&path, token).await;
            assert_problem(&r, 422, "validation_failed");
            assert_eq!(r.body["errors"], json!([{"field": field, "code": "repeated", "message": "must appear at most once"}]), "{}", &path[..40]);
        }
        let r = app.get(&format!("/api/v1/users?login={}{many}", admin.login), token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["items"][0]["id"], admin.id.as_str());
        let mut form: Vec<(String, String)> = (0..4000).map(|i| (format!("k{i}"), String::new())).collect();
        form.extend([("grant_type", "password"), ("username", admin.login.as_str()), ("password", PASSWORD), ("client_id", "cinema-web"), ("k3999", "again")].map(|(k, v)| (k.to_owned(), v.to_owned())));
        let r = read(app.client.post(app.url("/oauth2/token")).form(&form).send().await.unwrap()).await;
        assert_oauth_error(&r, 400, "invalid_request");
        assert_eq!(r.body["error_description"], "the parameter k3999 is repeated");
        let sessions = app.store().list_active_sessions(&admin.id, app.clock_now()).await.unwrap();
        assert_eq!(sessions.len(), 1, "no session started by the refused request");
    }
}

backend_test! {
    /// A client that does not finish sending a request's headers within
    /// `USHER_HEADER_READ_TIMEOUT` has its connection closed (no slow-header attack can
    /// hold connections open), while a prompt request on another connection is served.
    async fn slow_headers_connection_is_closed(app, config = |c| c.header_read_timeout = Duration::from_secs(1)) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = app.base.trim_start_matches("http://").to_owned();
        let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: usher\r\n").await.unwrap();
        let r = app.get("/healthz", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
        // EOF or a reset: either way the server closed it, before our deadline.
        let _eof_or_reset = closed.expect("the server closes the connection within its timeout");
        let text = String::from_utf8_lossy(&buf);
        assert!(!text.contains("200 OK"), "the half-sent request is never served: {text}");
    }
}
