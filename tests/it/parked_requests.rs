//! Authorization requests parked for the login or the consent page: they belong to the
//! browser that parked them, a consent stands only for the user who gave it, and the
//! login made for a request satisfies its `max_age`, even `max_age=0`.

use crate::backend_test;
use crate::harness::flow::*;
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;

/// The redirect URI of the third-party client "Film Club".
const CLUB_CB: &str = "https://club.example/cb";

/// Registers the third-party client "Film Club" (public, code flow, refresh); its id.
async fn film_club(app: &TestApp) -> String {
    let admin = app.superuser().await;
    let client = app
        .register_client(
            &admin.tokens.access,
            json!({
                "client_name": "Film Club", "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [CLUB_CB], "scope": "openid email offline_access",
            }),
        )
        .await;
    client["client_id"].as_str().unwrap().to_owned()
}

/// POSTs a form through `browser`.
async fn post(app: &TestApp, browser: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> Resp {
    read(browser.post(app.url(path)).form(form).send().await.unwrap()).await
}

/// Signs `login` in on the sign-in page at `location` (`/login?request=…`) in `browser`.
async fn sign_in_at(app: &TestApp, browser: &reqwest::Client, location: &str, login: &str) -> Resp {
    let page = browse(app, browser, location).await;
    assert_eq!(page.status, StatusCode::OK, "{location}: {}", page.text);
    let csrf = form_value(&page.text, "csrf").unwrap();
    let request = form_value(&page.text, "request").unwrap();
    post(
        app,
        browser,
        "/login",
        &[
            ("csrf", &csrf),
            ("request", &request),
            ("login", login),
            ("password", PASSWORD),
        ],
    )
    .await
}

/// In `browser` (signed in as the user who allows): the authorization request of Film
/// Club with `prompt=consent`, `max_age=1` and `offline_access`, the consent page, the
/// clock past `max_age`, "Allow". Returns the answer to "Allow" (a 303 to the sign-in
/// page: the request is parked again for a fresh login).
async fn allow_after_max_age(
    app: &TestApp,
    browser: &reqwest::Client,
    club: &str,
    hint: &str,
) -> Resp {
    let path = authorize_path(
        club,
        CLUB_CB,
        &[
            ("scope", "openid offline_access"),
            ("prompt", "consent"),
            ("max_age", "1"),
            ("login_hint", hint),
        ],
    );
    let r = browse(app, browser, &path).await;
    let consent = r.header("location").unwrap_or_default().to_owned();
    assert!(
        consent.starts_with("/consent?request="),
        "{consent} {}",
        r.text
    );
    let page = browse(app, browser, &consent).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = form_value(&page.text, "csrf").unwrap();
    let request = form_value(&page.text, "request").unwrap();
    app.clock.advance(2);
    let r = post(
        app,
        browser,
        "/consent",
        &[
            ("csrf", &csrf),
            ("request", &request),
            ("decision", "allow"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(
        r.header("location").unwrap().starts_with("/login?request="),
        "{:?}",
        r.header("location")
    );
    r
}

/// Asserts the 400 page of a sign-in request that is gone or not this browser's.
fn assert_request_refused(r: &Resp) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.header("location"), None);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.text.contains("<h1>This sign-in link has expired</h1>"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("<p role=\"alert\">Go back to the app you came from and sign in again.</p>"),
        "{}",
        r.text
    );
}

backend_test! {
    /// A consent is the consenting user's, and a parked request is the parking
    /// browser's (RFC 6749 §10.12, OIDC Core §3.1.2.4: authorization only by the
    /// resource owner, who must be the one asked). A signs in, opens a third-party
    /// client's request (`max_age=1`, `prompt=consent`, `offline_access`, `login_hint`
    /// naming B) and presses "Allow" after `max_age` has passed, so the request is parked
    /// again for a fresh login. That sign-in link, opened in B's browser, is refused
    /// (page and form: B's password gets no code); in A's browser, B signing in gets the
    /// consent page, not a code. A, signing in again, gets the code without a second
    /// consent page.
    async fn parked_consent_is_bound_to_user_and_browser(app) {
        let club = film_club(&app).await;
        let a = app.user().await;
        let b = app.user().await;

        // A third browser shows the honest flow: A consents, signs in again, gets a code.
        let honest = app.browser();
        browser_sign_in(&app, &honest, &a.login).await;
        let r = allow_after_max_age(&app, &honest, &club, &a.login).await;
        let r = sign_in_at(&app, &honest, r.header("location").unwrap(), &a.login).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        let code = code_of(&r);
        assert!(r.header("location").unwrap().starts_with(&format!("{CLUB_CB}?code=")));
        let t = redeem(&app, &club, &code, CLUB_CB).await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.text);
        assert_eq!(t.body["scope"], "openid offline_access");
        assert_eq!(app.store().find_consent(&a.id, &club).await.unwrap().as_deref(), Some("openid offline_access"));

        // The attack: A's link handed to B.
        let attacker = app.browser();
        browser_sign_in(&app, &attacker, &a.login).await;
        let r = allow_after_max_age(&app, &attacker, &club, &b.login).await;
        let link = r.header("location").unwrap().to_owned();
        let request = query_param(&link, "request").unwrap();
        let victim = app.browser();
        assert_request_refused(&browse(&app, &victim, &link).await);
        let login_page = browse(&app, &victim, "/login").await;
        let csrf = form_value(&login_page.text, "csrf").unwrap();
        let r = post(&app, &victim, "/login", &[("csrf", &csrf), ("request", &request), ("login", &b.login), ("password", PASSWORD)]).await;
        assert_request_refused(&r);
        assert_eq!(session_cookie(&r), None, "B is not signed in by the refused form");
        let events = app.store().list_login_events(&b.id, None, 10).await.unwrap();
        assert!(events.iter().all(|e| e.method != "login_page"), "no password check: {events:?}");
        assert_eq!(app.store().find_consent(&b.id, &club).await.unwrap(), None);
        assert!(app.state().get(&format!("authz:{request}")).await.unwrap().is_some(), "the refused request is not used up");

        // In A's own browser, B signing in through the link is asked for consent.
        let r = sign_in_at(&app, &attacker, &link, &b.login).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        let next = r.header("location").unwrap();
        assert!(next.starts_with("/consent?request="), "B gets the consent page, not a code: {next}");
        let page = browse(&app, &attacker, next).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert!(page.text.contains("Stay signed in while you are away"), "{}", page.text);
        assert_eq!(app.store().find_consent(&b.id, &club).await.unwrap(), None);
    }
}

backend_test! {
    /// A sign-in or consent link works only in the browser that opened the request:
    /// another browser gets the 400 page on `/login`, `/signup`'s form and `/consent`
    /// (RFC 6749 §10.12: the request must come from the user's own user-agent).
    async fn parked_request_refused_in_another_browser(app) {
        let club = film_club(&app).await;
        let a = app.user().await;
        let b = app.user().await;
        let owner = app.browser();
        let r = browse(&app, &owner, &authorize_path("cinema-web", CINEMA_CB, &[])).await;
        let login_link = r.header("location").unwrap().to_owned();
        let login_request = query_param(&login_link, "request").unwrap();
        browser_sign_in(&app, &owner, &a.login).await;
        let r = browse(&app, &owner, &authorize_path(&club, CLUB_CB, &[("scope", "openid")])).await;
        let consent_link = r.header("location").unwrap().to_owned();
        let consent_request = query_param(&consent_link, "request").unwrap();

        let other = app.browser();
        assert_request_refused(&browse(&app, &other, &login_link).await);
        let signup = browse(&app, &other, &format!("/signup?request={login_request}")).await;
        let csrf = form_value(&signup.text, "csrf").unwrap();
        let r = post(&app, &other, "/signup", &[("csrf", &csrf), ("request", &login_request), ("login", "newcomer"), ("password", PASSWORD)]).await;
        assert_request_refused(&r);
        assert!(app.store().find_user_by_login("newcomer").await.unwrap().is_none(), "no account made");
        browser_sign_in(&app, &other, &b.login).await;
        assert_request_refused(&browse(&app, &other, &consent_link).await);
        let csrf = form_value(&browse(&app, &other, "/account").await.text, "csrf").unwrap();
        let r = post(&app, &other, "/consent", &[("csrf", &csrf), ("request", &consent_request), ("decision", "allow")]).await;
        assert_request_refused(&r);
        assert_eq!(app.store().find_consent(&b.id, &club).await.unwrap(), None);

        // The owner's links still work.
        let r = sign_in_at(&app, &owner, &login_link, &a.login).await;
        assert!(r.header("location").unwrap().starts_with("http://127.0.0.1:9000/callback?code="), "{:?}", r.header("location"));
        assert_eq!(browse(&app, &owner, &consent_link).await.status, StatusCode::OK);
    }
}

backend_test! {
    /// `max_age=0` (OIDC Core §3.1.2.1: the user must authenticate afresh) is satisfied
    /// by the login made for this very request, even when the clock has moved on between
    /// the password check and the decision (a second boundary): the browser gets a code
    /// whose ID token carries that login's `auth_time`, not the login page again.
    async fn authorize_max_age_zero_fresh_login_gets_code(app) {
        let u = app.user().await;
        let b = app.browser();
        let first_login = app.clock_now();
        browser_sign_in(&app, &b, &u.login).await;
        app.clock.advance(1);
        let r = browse(&app, &b, &authorize_path("cinema-web", CINEMA_CB, &[("max_age", "0")])).await;
        let link = r.header("location").unwrap().to_owned();
        assert!(link.starts_with("/login?request="), "{link}");
        let page = browse(&app, &b, &link).await;
        let csrf = form_value(&page.text, "csrf").unwrap();
        let request = form_value(&page.text, "request").unwrap();
        app.clock.tick_on_read(1);
        let r = post(&app, &b, "/login", &[("csrf", &csrf), ("request", &request), ("login", &u.login), ("password", PASSWORD)]).await;
        app.clock.tick_on_read(0);
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        let code = code_of(&r);
        assert!(r.header("location").unwrap().starts_with(&format!("{CINEMA_CB}?code=")));
        let t = redeem(&app, "cinema-web", &code, CINEMA_CB).await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.text);
        let (_, id) = decode_jwt(t.body["id_token"].as_str().unwrap());
        let auth_time = id["auth_time"].as_i64().unwrap();
        assert!(auth_time > first_login, "the fresh login's auth_time: {auth_time} > {first_login}");
        let session = app.store().find_session(id["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!((session.user_id.as_str(), session.auth_time), (u.id.as_str(), auth_time));
        let browser = app.store().find_session(session.parent_sid.as_deref().unwrap()).await.unwrap().unwrap();
        assert_eq!((browser.client_id.as_str(), browser.auth_time), ("usher", auth_time));
    }
}
