//! The browser session behind usher's pages and the authorization endpoint: it stays
//! ended once ended (whatever the change feed still remembers), it expires with its
//! usher session, signing in again keeps the sessions opened through it, its cookie
//! changes at every login, and it gives single sign-on across clients.

use crate::backend_test;
use crate::harness::flow::*;
use crate::harness::*;
use reqwest::{Method, StatusCode};

/// The browser session (client `usher`) of the user.
async fn browser_sid(app: &TestApp, user_id: &str) -> String {
    let now = app.clock_now();
    let live = app
        .store()
        .list_active_sessions(user_id, now)
        .await
        .unwrap();
    live.into_iter()
        .find(|s| s.client_id == "usher")
        .expect("a browser session")
        .id
}

backend_test! {
    /// An ended browser session stays ended after the change feed has forgotten it (its
    /// retention passed, or a restart reloaded only that window): the store is asked. The
    /// account page sends the browser to the login page, the authorization endpoint asks
    /// for a login, and a code issued before the end cannot be redeemed (RFC 6749 §4.1.3,
    /// OIDC Core §3.1.2.6: no authorization without a live authentication).
    async fn ended_browser_session_stays_ended(app) {
        let u = app.user().await;
        let b = app.browser();
        browser_sign_in(&app, &b, &u.login).await;
        let sid = browser_sid(&app, &u.id).await;
        let code = code_of(&browse(&app, &b, &authorize_path("cinema-web", CINEMA_CB, &[])).await);
        // Another device (the password grant's session) logs out of all others.
        let r = app.call(Method::POST, "/api/v1/auth/logout-others", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert!(app.app.feed.is_session_ended(&sid));
        app.app.feed.prune(app.clock_now() + 100_000);
        assert!(!app.app.feed.is_session_ended(&sid), "the feed forgot the ended session");
        assert_oauth_error(&redeem(&app, "cinema-web", &code, CINEMA_CB).await, 400, "invalid_grant");
        app.clock.advance(app.app.config.change_retention().as_secs() as i64 + 1);
        let r = browse(&app, &b, "/account").await;
        assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/login?return_to=%2Faccount")));
        let r = browse(&app, &b, &authorize_path("cinema-web", CINEMA_CB, &[])).await;
        assert!(r.header("location").unwrap().starts_with("/login?request="), "{:?}", r.header("location"));
        let stored = app.store().find_session(&sid).await.unwrap().unwrap();
        assert_eq!(stored.end_reason.as_deref(), Some("logout_others"));
    }
}

backend_test! {
    /// A browser login never outlives its usher session: once the session's lifetime
    /// (`USHER_BROWSER_SESSION_TTL`) has passed, a code issued just before cannot be
    /// redeemed, the account page asks for a login and the authorization endpoint too.
    async fn browser_login_expires_with_its_session(app) {
        let app = app
            .same_backend()
            .config(|c| c.browser_session_ttl = std::time::Duration::from_secs(120))
            .build()
            .await;
        let u = app.user().await;
        let b = app.browser();
        let r = browser_sign_in(&app, &b, &u.login).await;
        let cookie = r.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).find(|c| c.starts_with("usher_session=")).unwrap();
        let max_age: i64 = cookie.split("Max-Age=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
        assert!((100..=120).contains(&max_age), "the cookie expires with the session: {cookie}");
        let sid = browser_sid(&app, &u.id).await;
        app.clock.advance(90);
        let code = code_of(&browse(&app, &b, &authorize_path("cinema-web", CINEMA_CB, &[])).await);
        app.clock.advance(40);
        assert_oauth_error(&redeem(&app, "cinema-web", &code, CINEMA_CB).await, 400, "invalid_grant");
        assert_eq!(browse(&app, &b, "/account").await.status, StatusCode::SEE_OTHER);
        let r = browse(&app, &b, &authorize_path("cinema-web", CINEMA_CB, &[("prompt", "none")])).await;
        assert_eq!(query_param(r.header("location").unwrap(), "error").as_deref(), Some("login_required"));
        let stored = app.store().find_session(&sid).await.unwrap().unwrap();
        assert!(stored.ended_at.is_none() && stored.expires_at <= app.clock_now());
    }
}

backend_test! {
    /// Signing in again as the same user (another client's `prompt=login`) keeps the
    /// browser session and the sessions opened through it: cinema-web's refresh token
    /// still works. The new ID token's `auth_time` is the new login (OIDC Core §2), the
    /// renewed session has it, and the cookie gets a new id (no session fixation).
    async fn relogin_same_user_keeps_client_sessions(app) {
        let admin = app.superuser().await;
        let other = first_party_client(&app, &admin.tokens.access, "boxoffice").await;
        let other_cb = "https://boxoffice.example/cb";
        let u = app.user().await;
        let r = browse(&app, &app.client, &authorize_path("cinema-web", CINEMA_CB, &[("scope", "openid offline_access")])).await;
        let first = app.sign_in_page(r.header("location").unwrap(), &u.login, PASSWORD).await;
        let cookie1 = session_cookie(&first).expect("a cookie at login");
        let r = redeem(&app, "cinema-web", &code_of(&first), CINEMA_CB).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let web = tokens_of(&r);
        let (_, id1) = decode_jwt(web.id_token.as_deref().unwrap());
        let browser = browser_sid(&app, &u.id).await;
        app.clock.advance(100);
        let r = browse(&app, &app.client, &authorize_path(&other, other_cb, &[("prompt", "login")])).await;
        let second = app.sign_in_page(r.header("location").unwrap(), &u.login, PASSWORD).await;
        let cookie2 = session_cookie(&second).expect("a new cookie at the second login");
        assert_ne!(cookie1, cookie2, "the session id changes at every login");
        let r = redeem(&app, &other, &code_of(&second), other_cb).await;
        let (_, id2) = decode_jwt(tokens_of(&r).id_token.as_deref().unwrap());
        assert_eq!(id2["auth_time"].as_i64().unwrap(), id1["auth_time"].as_i64().unwrap() + 100);
        let r = app.refresh(&web.refresh).await;
        assert_eq!(r.status, StatusCode::OK, "cinema-web's session goes on: {}", r.text);
        let renewed = app.store().find_session(&browser).await.unwrap().unwrap();
        assert_eq!((renewed.ended_at, renewed.auth_time), (None, app.clock_now()));
        let child = app.store().find_session(id2["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(child.parent_sid.as_deref(), Some(browser.as_str()));
        let events = app.store().list_login_events(&u.id, None, 5).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.method == "login_page" && e.outcome == "success").count(), 2);
    }
}

backend_test! {
    /// Signing in as another user in the same browser ends the first user's browser
    /// session and the sessions opened through it.
    async fn login_as_other_user_ends_previous(app) {
        let u = app.user().await;
        let v = app.user().await;
        let r = browse(&app, &app.client, &authorize_path("cinema-web", CINEMA_CB, &[("scope", "openid offline_access")])).await;
        let first = app.sign_in_page(r.header("location").unwrap(), &u.login, PASSWORD).await;
        let web = tokens_of(&redeem(&app, "cinema-web", &code_of(&first), CINEMA_CB).await);
        let browser = browser_sid(&app, &u.id).await;
        let r = browse(&app, &app.client, &authorize_path("cinema-web", CINEMA_CB, &[("prompt", "login")])).await;
        app.sign_in_page(r.header("location").unwrap(), &v.login, PASSWORD).await;
        assert_oauth_error(&app.refresh(&web.refresh).await, 400, "invalid_grant");
        let ended = app.store().find_session(&browser).await.unwrap().unwrap();
        assert_eq!(ended.end_reason.as_deref(), Some("logout"));
    }
}

backend_test! {
    /// The cookie's session id changes when the visitor signs in (session fixation,
    /// OWASP): the anonymous id given with the login page is not the signed-in one, and
    /// the anonymous id no longer opens anything.
    async fn login_changes_session_cookie(app) {
        let u = app.user().await;
        let page = browse(&app, &app.client, "/login").await;
        let anonymous = session_cookie(&page).expect("a cookie with the login page");
        let csrf = form_value(&page.text, "csrf").unwrap();
        let r = app.post_form("/login", &[("csrf", &csrf), ("login", &u.login), ("password", PASSWORD)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let signed_in = session_cookie(&r).expect("a new cookie at login");
        assert_ne!(anonymous, signed_in);
        let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = read(replay.get(app.url("/account")).header("cookie", format!("usher_session={anonymous}")).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "the pre-login id is worthless");
        let r = read(replay.get(app.url("/account")).header("cookie", format!("usher_session={signed_in}")).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

backend_test! {
    /// Ending the usher session elsewhere ends the browser's login too: API logout of a
    /// session opened through the browser, a password change through the API, and an
    /// administrator's block each send the browser back to the login page (303).
    async fn api_endings_refuse_browser_cookie(app) {
        let admin = app.superuser().await;
        // API logout with tokens of the code flow (a child of the browser session).
        let u = app.user().await;
        let b = app.browser();
        browser_sign_in(&app, &b, &u.login).await;
        let code = code_of(&browse(&app, &b, &authorize_path("cinema-web", CINEMA_CB, &[])).await);
        let t = tokens_of(&redeem(&app, "cinema-web", &code, CINEMA_CB).await);
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&t.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = browse(&app, &b, "/account").await;
        assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/login?return_to=%2Faccount")));
        // Password change through the API from another session.
        let b = app.browser();
        browser_sign_in(&app, &b, &u.login).await;
        let fresh = app.tokens(&u.login).await;
        let r = app.call(Method::PUT, "/api/v1/users/me/password", Some(&fresh.access), Some(serde_json::json!({"current_password": PASSWORD, "new_password": "another long secret"}))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_eq!(browse(&app, &b, "/account").await.status, StatusCode::SEE_OTHER);
        // An administrator blocks the user.
        let v = app.user().await;
        let b = app.browser();
        browser_sign_in(&app, &b, &v.login).await;
        let r = app.call(Method::PATCH, &format!("/api/v1/users/{}", v.id), Some(&admin.tokens.access), Some(serde_json::json!({"blocked": true}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(browse(&app, &b, "/account/history").await.status, StatusCode::SEE_OTHER);
    }
}

backend_test! {
    /// Single sign-on: after signing in for cinema-web, a second client's authorization
    /// request gets a code at once, with no login page; its session is opened through
    /// the same browser session.
    async fn sso_across_clients(app) {
        let admin = app.superuser().await;
        let other = first_party_client(&app, &admin.tokens.access, "boxoffice").await;
        let u = app.user().await;
        let r = browse(&app, &app.client, &authorize_path("cinema-web", CINEMA_CB, &[])).await;
        let done = app.sign_in_page(r.header("location").unwrap(), &u.login, PASSWORD).await;
        let web = tokens_of(&redeem(&app, "cinema-web", &code_of(&done), CINEMA_CB).await);
        let r = browse(&app, &app.client, &authorize_path(&other, "https://boxoffice.example/cb", &[])).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(r.header("location").unwrap().starts_with("https://boxoffice.example/cb?code="), "{:?}", r.header("location"));
        let r = redeem(&app, &other, &code_of(&r), "https://boxoffice.example/cb").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let (_, a) = decode_jwt(&web.access);
        let (_, b) = decode_jwt(&tokens_of(&r).access);
        let t = &app;
        let parent = |sid: String| async move { t.store().find_session(&sid).await.unwrap().unwrap().parent_sid };
        let pa = parent(a["sid"].as_str().unwrap().to_owned()).await;
        assert!(pa.is_some());
        assert_eq!(pa, parent(b["sid"].as_str().unwrap().to_owned()).await);
    }
}
