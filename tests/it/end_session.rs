//! RP-Initiated Logout 1.0 with an `id_token_hint`: the hint signs out at once only when
//! it names this browser's session, and a hint signed by a retired key is only a hint.

use crate::backend_test;
use crate::harness::flow::*;
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The hidden fields of the confirmation page, as its form posts them.
fn confirmation_form(html: &str) -> Vec<(String, String)> {
    [
        "csrf",
        "confirm",
        "id_token_hint",
        "client_id",
        "post_logout_redirect_uri",
        "state",
    ]
    .iter()
    .filter_map(|k| form_value(html, k).map(|v| ((*k).to_owned(), v)))
    .collect()
}

backend_test! {
    /// RP-Initiated Logout 1.0 §2: without confirmation only a hint naming this
    /// browser's session signs out (its `sid` was opened through the browser session).
    /// The same user's hint from another browser gets the confirmation page and ends
    /// nothing; in its own browser it signs out and returns with `state`.
    async fn end_session_hint_must_name_this_browser(app) {
        let u = app.user().await;
        let a = app.browser();
        browser_sign_in(&app, &a, &u.login).await;
        let code = code_of(&browse(&app, &a, &authorize_path("cinema-web", CINEMA_CB, &[])).await);
        let ta = tokens_of(&redeem(&app, "cinema-web", &code, CINEMA_CB).await);
        let b = app.browser();
        browser_sign_in(&app, &b, &u.login).await;
        let path = format!("/oauth2/logout?id_token_hint={}&post_logout_redirect_uri={}&state=s1", ta.id_token.as_deref().unwrap(), enc(SIGNED_OUT));
        let r = browse(&app, &b, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.text.contains("<h1>Sign out of usher?</h1>"), "{}", r.text);
        assert_eq!(app.get("/oauth2/userinfo", Some(&ta.access)).await.status, StatusCode::OK);
        assert_eq!(browse(&app, &b, "/account").await.status, StatusCode::OK, "nothing ended");
        let r = browse(&app, &a, &path).await;
        assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some(format!("{SIGNED_OUT}?state=s1").as_str())));
        assert_eq!(app.get("/oauth2/userinfo", Some(&ta.access)).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(browse(&app, &a, "/account").await.status, StatusCode::SEE_OTHER);
        assert_eq!(browse(&app, &b, "/account").await.status, StatusCode::OK, "the other browser stays");
    }
}

backend_test! {
    /// A hint signed by a key that is no longer in the ring is only a hint (RP-Initiated
    /// Logout 1.0 §2 lets the OP ask the user): the confirmation page instead of an
    /// error. Confirming signs out; it returns only to a URI registered for the named
    /// client, and without a `client_id` it shows the signed-out page.
    async fn end_session_stale_hint_asks_confirmation(app) {
        let u = app.user().await;
        browser_sign_in(&app, &app.client, &u.login).await;
        let now = app.clock_now();
        let claims = json!({"iss": app.base, "sub": u.id, "aud": "cinema-web", "iat": now, "exp": now + 300, "sid": "gone"});
        let stale = usher::token::jwt::sign(foreign_key(), "JWT", &claims).unwrap();
        let r = app.get(&format!("/oauth2/logout?id_token_hint={stale}&client_id=cinema-web&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "never an unregistered URI");
        assert!(r.header("location").is_none());
        let r = app.get(&format!("/oauth2/logout?id_token_hint={stale}&client_id=cinema-web&post_logout_redirect_uri={}&state=s2", enc(SIGNED_OUT)), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.text.contains("<h1>Sign out of usher?</h1>"));
        assert_eq!(app.get("/account", None).await.status, StatusCode::OK, "nothing ended before confirming");
        let done = read(app.client.post(app.url("/oauth2/logout")).form(&confirmation_form(&r.text)).send().await.unwrap()).await;
        assert_eq!(done.header("location"), Some(format!("{SIGNED_OUT}?state=s2").as_str()));
        assert_eq!(app.get("/account", None).await.status, StatusCode::SEE_OTHER);
        browser_sign_in(&app, &app.client, &u.login).await;
        let r = app.get(&format!("/oauth2/logout?id_token_hint={stale}&post_logout_redirect_uri={}", enc(SIGNED_OUT)), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let done = read(app.client.post(app.url("/oauth2/logout")).form(&confirmation_form(&r.text)).send().await.unwrap()).await;
        assert_eq!(done.status, StatusCode::OK);
        assert!(done.header("location").is_none(), "no client to check the URI against");
        assert!(done.text.contains("<h1>You are signed out</h1>") && done.text.contains("<a href=\"/login\">Sign in again</a>"), "{}", done.text);
        assert_eq!(app.get("/account", None).await.status, StatusCode::SEE_OTHER);
    }
}
