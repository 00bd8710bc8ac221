//! Helpers of the authorization code flow: authorization URLs, code redemption, a
//! registered public first-party client, and the browser-session cookie.

use reqwest::StatusCode;
use serde_json::json;

use super::{Resp, TestApp, query_param, read};

/// RFC 7636 Appendix B's verifier and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// The S256 challenge of [`VERIFIER`].
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// A loopback redirect URI of `cinema-web` (any port matches the registered one).
pub const CINEMA_CB: &str = "http://127.0.0.1:9000/callback";

/// The S256 challenge of `verifier`.
pub fn challenge_of(verifier: &str) -> String {
    usher::token::b64url(&usher::token::sha256(verifier.as_bytes()))
}

/// `/oauth2/authorize?…` for `client_id` with PKCE ([`CHALLENGE`]) and `state=st`;
/// `extra` adds or replaces parameters (an empty value removes one).
pub fn authorize_path(client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
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

/// GET through `browser` (redirects not followed).
pub async fn browse(app: &TestApp, browser: &reqwest::Client, path: &str) -> Resp {
    read(browser.get(app.url(path)).send().await.unwrap()).await
}

/// The code of an authorization redirect, or a panic naming what came instead.
pub fn code_of(r: &Resp) -> String {
    let loc = r.header("location").unwrap_or_default();
    query_param(loc, "code").unwrap_or_else(|| panic!("no code: {} {loc} {}", r.status, r.text))
}

/// Redeems a code as the public client `client_id` with [`VERIFIER`].
pub async fn redeem(app: &TestApp, client_id: &str, code: &str, redirect_uri: &str) -> Resp {
    redeem_with(app, client_id, code, redirect_uri, VERIFIER).await
}

/// Redeems a code as the public client `client_id` with `verifier`.
pub async fn redeem_with(
    app: &TestApp,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Resp {
    app.post_form(
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
        ],
    )
    .await
}

/// Registers a public first-party client (`authorization_code`, `refresh_token`) with
/// the redirect URI `https://<name>.example/cb`; returns its id.
pub async fn first_party_client(app: &TestApp, admin: &str, name: &str) -> String {
    let body = app
        .register_client(
            admin,
            json!({
                "client_name": name, "token_endpoint_auth_method": "none", "first_party": true,
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [format!("https://{name}.example/cb")],
                "scope": "openid profile email roles offline_access",
            }),
        )
        .await;
    body["client_id"].as_str().unwrap().to_owned()
}

/// The value of the browser-session cookie set by a response, if any.
pub fn session_cookie(r: &Resp) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("usher_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// Signs `browser` in on the login page (no authorization request); panics unless 303.
pub async fn browser_sign_in(app: &TestApp, browser: &reqwest::Client, login: &str) -> Resp {
    let page = browse(app, browser, "/login").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = super::form_value(&page.text, "csrf").unwrap();
    let r = read(
        browser
            .post(app.url("/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("login", login),
                ("password", super::PASSWORD),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    r
}
