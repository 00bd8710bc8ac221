//! The authorization endpoint: request validation (page vs redirect), prompt, max_age,
//! login_hint, consent for third-party clients, and the code's single use.

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn authorize_path(extra: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("response_type", "code"),
        ("client_id", "cinema-web"),
        ("redirect_uri", "http://127.0.0.1:9000/callback"),
        ("scope", "openid profile"),
        ("state", "st"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ] {
        if !extra.iter().any(|(ek, _)| *ek == k) {
            ser.append_pair(k, v);
        }
    }
    for (k, v) in extra {
        if !v.is_empty() {
            ser.append_pair(k, v);
        }
    }
    format!("/oauth2/authorize?{}", ser.finish())
}

/// Logs the test browser in through the login page (no authorization request).
async fn browser_login(app: &TestApp, u: &User) {
    let r = app.sign_in_page("/login", &u.login, PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
}

async fn code_for(app: &TestApp, extra: &[(&str, &str)]) -> String {
    let r = app.get(&authorize_path(extra), None).await;
    let loc = r.header("location").unwrap_or_default().to_owned();
    query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc} {}", r.text))
}

async fn exchange(app: &TestApp, code: &str, verifier: &str, redirect_uri: &str) -> Resp {
    app.post_form(
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
            ("client_id", "cinema-web"),
        ],
    )
    .await
}

backend_test! {
    /// Before the client and redirect URI are trusted, errors are an HTML page and never
    /// a redirect (RFC 6749 §4.1.2.1); a redirect URI with a fragment is refused before
    /// matching (§3.1.2), though a loopback URI would match in everything else. The
    /// page says what is wrong in words, never a developer string.
    async fn authorize_untrusted_errors_show_a_page(app) {
        let cases = [
            (vec![("client_id", "nope")], "The app is not registered with usher."),
            (vec![("redirect_uri", "https://evil.example/cb")], "The app's return address is not registered with usher."),
            (vec![("redirect_uri", "")], "The app did not say where to return."),
            (vec![("redirect_uri", "http://127.0.0.1:9000/callback#frag")], "The app's return address is not valid."),
            (vec![("redirect_uri", "http://127.0.0.1/callback#")], "The app's return address is not valid."),
        ];
        for (extra, text) in cases {
            let r = app.get(&authorize_path(&extra), None).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra:?}");
            assert!(r.header("location").is_none());
            assert!(r.header("content-type").unwrap().starts_with("text/html"));
            assert!(r.text.contains("<h1>This sign-in request is not valid</h1>"), "{}", r.text);
            assert!(r.text.contains(&format!("<p role=\"alert\">{text}</p>")), "{extra:?}: {}", r.text);
            assert!(!r.text.contains("redirect_uri") && !r.text.contains("client_id"), "{}", r.text);
            assert_eq!(r.header("x-frame-options"), Some("DENY"));
        }
        let r = app.get("/oauth2/authorize?client_id=nope&client_id=cinema-web", None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
}

backend_test! {
    /// After trust, errors redirect with `error`, `error_description`, `state` and `iss`.
    async fn authorize_trusted_errors_redirect(app) {
        let cases = [
            (vec![("response_type", "token")], "unsupported_response_type"),
            (vec![("code_challenge", ""), ("code_challenge_method", "")], "invalid_request"),
            (vec![("code_challenge_method", "plain")], "invalid_request"),
            (vec![("scope", "openid admin")], "invalid_scope"),
            (vec![("prompt", "select_account")], "invalid_request"),
            (vec![("prompt", "none login")], "invalid_request"),
            (vec![("max_age", "-1")], "invalid_request"),
            (vec![("response_mode", "fragment")], "invalid_request"),
            (vec![("request", "eyJ")], "request_not_supported"),
            (vec![("prompt", "none")], "login_required"),
        ];
        for (extra, error) in cases {
            let r = app.get(&authorize_path(&extra), None).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{extra:?}: {}", r.text);
            let loc = r.header("location").unwrap();
            assert!(loc.starts_with("http://127.0.0.1:9000/callback?"), "{loc}");
            assert_eq!(query_param(loc, "error").as_deref(), Some(error), "{extra:?}");
            assert!(query_param(loc, "error_description").is_some());
            assert_eq!(query_param(loc, "state").as_deref(), Some("st"));
            assert_eq!(query_param(loc, "iss").as_deref(), Some(app.base.as_str()));
        }
        let r = app.get(&format!("{}&state=again", authorize_path(&[])), None).await;
        assert_eq!(query_param(r.header("location").unwrap(), "error").as_deref(), Some("invalid_request"));
    }
}

backend_test! {
    /// A code is spent once: the exchange gives tokens with the nonce; a second
    /// exchange fails and ends the session the first one started.
    async fn authorize_code_single_use(app) {
        let u = app.user().await;
        browser_login(&app, &u).await;
        let code = code_for(&app, &[("nonce", "n-123"), ("scope", "openid profile offline_access")]).await;
        let r = exchange(&app, &code, VERIFIER, "http://127.0.0.1:9000/callback").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let t = tokens_of(&r);
        let (_, id) = decode_jwt(t.id_token.as_deref().unwrap());
        assert_eq!(id["nonce"], "n-123");
        assert_eq!(id["aud"], "cinema-web");
        assert_eq!(app.get("/api/v1/users/me", Some(&t.access)).await.status, StatusCode::OK);
        let again = exchange(&app, &code, VERIFIER, "http://127.0.0.1:9000/callback").await;
        assert_oauth_error(&again, 400, "invalid_grant");
        assert_problem(&app.get("/api/v1/users/me", Some(&t.access)).await, 401, "session_ended");
        assert_oauth_error(&app.refresh(&t.refresh).await, 400, "invalid_grant");
    }
}

backend_test! {
    /// The exchange needs the right PKCE verifier, the same redirect URI, the same client
    /// and a code younger than 60 s; each failure is `invalid_grant` (RFC 6749 §4.1.3,
    /// RFC 7636 §4.6).
    async fn authorize_code_exchange_checks(app) {
        let admin = app.superuser().await;
        let other = crate::harness::flow::first_party_client(&app, &admin.tokens.access, "other").await;
        let u = app.user().await;
        browser_login(&app, &u).await;
        let code = code_for(&app, &[]).await;
        let r = app.post_form("/oauth2/token", &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", VERIFIER), ("redirect_uri", "http://127.0.0.1:9000/callback"), ("client_id", &other)]).await;
        assert_oauth_error(&r, 400, "invalid_grant");
        let code = code_for(&app, &[]).await;
        assert_oauth_error(&exchange(&app, &code, &VERIFIER.replace('d', "e"), "http://127.0.0.1:9000/callback").await, 400, "invalid_grant");
        let code = code_for(&app, &[]).await;
        assert_oauth_error(&exchange(&app, &code, VERIFIER, "http://127.0.0.1:9001/callback").await, 400, "invalid_grant");
        let code = code_for(&app, &[]).await;
        let r = app.post_form("/oauth2/token", &[("grant_type", "authorization_code"), ("code", &code), ("client_id", "cinema-web"), ("redirect_uri", "http://127.0.0.1:9000/callback")]).await;
        assert_oauth_error(&r, 400, "invalid_grant");
        let code = code_for(&app, &[]).await;
        app.clock.advance(61);
        assert_oauth_error(&exchange(&app, &code, VERIFIER, "http://127.0.0.1:9000/callback").await, 400, "invalid_grant");
        let r = app.post_form("/oauth2/token", &[("grant_type", "authorization_code"), ("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "invalid_request");
    }
}

backend_test! {
    /// With a browser session the code comes at once (`prompt=none` too); `prompt=login`
    /// and an exceeded `max_age` ask for the password again; `login_hint` pre-fills it.
    async fn authorize_prompt_max_age_login_hint(app) {
        let u = app.user().await;
        let r = app.get(&authorize_path(&[("login_hint", &u.login)]), None).await;
        let login_page = read(app.client.get(app.url(r.header("location").unwrap())).send().await.unwrap()).await;
        assert!(login_page.text.contains(&format!("value=\"{}\"", u.login)), "login_hint pre-fills");
        browser_login(&app, &u).await;
        code_for(&app, &[("prompt", "none")]).await;
        let r = app.get(&authorize_path(&[("prompt", "login")]), None).await;
        assert!(r.header("location").unwrap().starts_with("/login?request="));
        app.clock.advance(120);
        let r = app.get(&authorize_path(&[("max_age", "60")]), None).await;
        assert!(r.header("location").unwrap().starts_with("/login?request="));
        let r = app.get(&authorize_path(&[("max_age", "600")]), None).await;
        assert!(query_param(r.header("location").unwrap(), "code").is_some());
        let r = app.call(Method::POST, "/oauth2/authorize", None, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "POST without parameters shows the page");
    }
}

backend_test! {
    /// A third-party client gets a consent page listing the scopes in words; allowing is
    /// remembered per scope set; `prompt=consent` asks again; denying sends
    /// `access_denied`; `prompt=none` without consent is `consent_required`.
    async fn authorize_consent_for_third_party(app) {
        let admin = app.superuser().await;
        let client = app.register_client(&admin.tokens.access, json!({
            "client_name": "Film Club", "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["https://club.example/cb"],
            "scope": "openid profile email",
        })).await;
        let id = client["client_id"].as_str().unwrap();
        let u = app.user().await;
        browser_login(&app, &u).await;
        let path = |extra: &[(&str, &str)]| {
            let mut all = vec![("client_id", id), ("redirect_uri", "https://club.example/cb")];
            if !extra.iter().any(|(k, _)| *k == "scope") {
                all.push(("scope", "openid email"));
            }
            all.extend_from_slice(extra);
            authorize_path(&all)
        };
        let r = app.get(&path(&[("prompt", "none")]), None).await;
        assert_eq!(query_param(r.header("location").unwrap(), "error").as_deref(), Some("consent_required"));
        let r = app.get(&path(&[]), None).await;
        let consent = r.header("location").unwrap().to_owned();
        assert!(consent.starts_with("/consent?request="), "{consent}");
        let page = read(app.client.get(app.url(&consent)).send().await.unwrap()).await;
        assert!(page.text.contains("Film Club") && page.text.contains("See your e-mail address"), "{}", page.text);
        let csrf = form_value(&page.text, "csrf").unwrap();
        let request = form_value(&page.text, "request").unwrap();
        let r = read(app.client.post(app.url("/consent")).form(&[("csrf", csrf.as_str()), ("request", &request), ("decision", "allow")]).send().await.unwrap()).await;
        assert!(query_param(r.header("location").unwrap(), "code").is_some(), "{}", r.text);
        assert_eq!(app.store().find_consent(&u.id, id).await.unwrap().as_deref(), Some("openid email"));
        let r = app.get(&path(&[]), None).await;
        assert!(query_param(r.header("location").unwrap(), "code").is_some(), "consent remembered");
        let r = app.get(&path(&[("scope", "openid profile")]), None).await;
        assert!(r.header("location").unwrap().starts_with("/consent?"), "a new scope asks again");
        let r = app.get(&path(&[("prompt", "consent")]), None).await;
        let page = read(app.client.get(app.url(r.header("location").unwrap())).send().await.unwrap()).await;
        let request = form_value(&page.text, "request").unwrap();
        let r = read(app.client.post(app.url("/consent")).form(&[("csrf", csrf.as_str()), ("request", &request), ("decision", "deny")]).send().await.unwrap()).await;
        assert_eq!(query_param(r.header("location").unwrap(), "error").as_deref(), Some("access_denied"));
        // cinema-web is first-party: never a consent page.
        let r = app.get(&authorize_path(&[]), None).await;
        assert!(query_param(r.header("location").unwrap(), "code").is_some());
    }
}

backend_test! {
    /// Revoking (RFC 7009) a refresh or access token of a session opened through the
    /// browser ends that session only: the browser session it was opened through (client
    /// `usher`) stays signed in, and `prompt=none` still gets a code.
    async fn revoke_keeps_parent_browser_session(app) {
        let u = app.user().await;
        browser_login(&app, &u).await;
        for hint in ["refresh_token", "access_token"] {
            // A refresh token comes with `offline_access` only (OIDC Core §11).
            let code = code_for(&app, &[("scope", "openid offline_access")]).await;
            let t = tokens_of(&exchange(&app, &code, VERIFIER, "http://127.0.0.1:9000/callback").await);
            let (_, claims) = decode_jwt(&t.access);
            let child = app.store().find_session(claims["sid"].as_str().unwrap()).await.unwrap().unwrap();
            let parent = child.parent_sid.clone().expect("opened through the browser session");
            let token = if hint == "refresh_token" { &t.refresh } else { &t.access };
            let r = app.post_form("/oauth2/revoke", &[("token", token), ("token_type_hint", hint), ("client_id", "cinema-web")]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_problem(&app.get("/api/v1/users/me", Some(&t.access)).await, 401, "session_ended");
            let child = app.store().find_session(&child.id).await.unwrap().unwrap();
            assert_eq!(child.end_reason.as_deref(), Some("revoked"), "{hint}");
            let parent = app.store().find_session(&parent).await.unwrap().unwrap();
            assert_eq!(parent.ended_at, None, "{hint}: the browser session goes on");
            assert_eq!(parent.client_id, "usher");
            code_for(&app, &[("prompt", "none")]).await;
        }
    }
}
