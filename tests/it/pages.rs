//! usher's own pages through an HTTP client with a cookie jar: security headers, CSRF,
//! the login and sign-up pages, the account page's actions, the history page, and the
//! end-session confirmation.

use crate::backend_test;
use crate::harness::flow::*;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn page(app: &TestApp, path: &str) -> Resp {
    read(app.client.get(app.url(path)).send().await.unwrap()).await
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Resp {
    read(
        app.client
            .post(app.url(path))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Asserts the headers every page sends: HTML, CSP without script and framing, no
/// referrer, and no caching.
fn assert_page_headers(r: &Resp, what: &str) {
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{what}"
    );
    let csp = r
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("script-src"),
        "{what}: {csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert!(!r.text.contains("<script"), "{what}");
}

/// A third-party client "Film Club" (public, code flow, refresh) at
/// `https://club.example/cb`; returns its id.
async fn film_club(app: &TestApp) -> String {
    let admin = app.superuser().await;
    let client = app.register_client(&admin.tokens.access, json!({
        "client_name": "Film Club", "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["https://club.example/cb"],
        "scope": "openid email offline_access",
    })).await;
    client["client_id"].as_str().unwrap().to_owned()
}

async fn account_csrf(app: &TestApp) -> String {
    let r = page(app, "/account").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    form_value(&r.text, "csrf").unwrap()
}

backend_test! {
    /// Every page (login, account, history, consent, sign-out confirmation, error page)
    /// sends CSP without script, frame denial (`X-Frame-Options` and `frame-ancestors`),
    /// no referrer and `Cache-Control: no-store`; the stylesheet is served; the login
    /// form is labelled.
    async fn pages_security_headers(app) {
        let r = page(&app, "/login").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_page_headers(&r, "login");
        let cookie = r.header("set-cookie").unwrap();
        assert!(cookie.starts_with("usher_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(!cookie.contains("Secure"), "http issuer");
        assert!(r.text.contains("<label for=\"login\">") && r.text.contains("<label for=\"password\">") && r.text.contains("<main"));
        assert!(!r.text.contains("<script"));
        let css = page(&app, "/static/usher.css").await;
        assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
        let club = film_club(&app).await;
        let u = app.user().await;
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let consent = page(&app, &authorize_path(&club, "https://club.example/cb", &[("scope", "openid")])).await;
        let pages = [
            ("/account".to_owned(), StatusCode::OK),
            ("/account/history".to_owned(), StatusCode::OK),
            (consent.header("location").unwrap().to_owned(), StatusCode::OK),
            ("/oauth2/logout".to_owned(), StatusCode::OK),
            ("/oauth2/authorize?client_id=nope".to_owned(), StatusCode::BAD_REQUEST),
        ];
        for (path, status) in pages {
            let r = page(&app, &path).await;
            assert_eq!(r.status, status, "{path}: {}", r.text);
            assert_page_headers(&r, &path);
        }
    }
}

backend_test! {
    /// A wrong password and an unknown login show the same error (401) without saying
    /// which; both attempts on the existing login are in its history as `login_page`.
    async fn login_page_errors_do_not_reveal_logins(app) {
        let u = app.user().await;
        let wrong = app.sign_in_page("/login", &u.login, "not the password").await;
        let unknown = app.sign_in_page("/login", "nobody-at-all", "not the password").await;
        for r in [&wrong, &unknown] {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            assert!(r.text.contains("The login or the password is wrong."));
        }
        let events = app.store().list_login_events(&u.id, None, 5).await.unwrap();
        assert_eq!((events[0].method.as_str(), events[0].outcome.as_str()), ("login_page", "bad_credentials"));
    }
}

backend_test! {
    /// Every form without the session's CSRF token (login, sign-up, profile, password,
    /// end one session, logout-others, withdraw consent, consent, sign-out confirmation,
    /// sign out) is refused with the 403 page and changes nothing (OWASP CSRF
    /// synchronizer token).
    async fn pages_refuse_forged_forms(app) {
        let refused = |r: &Resp, what: &str| {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text);
            assert!(r.text.contains("<h1>Please try again</h1>"), "{what}: {}", r.text);
        };
        let club = film_club(&app).await;
        let u = app.user().await;
        page(&app, "/login").await;
        refused(&post(&app, "/login", &[("csrf", "forged"), ("login", &u.login), ("password", PASSWORD)]).await, "login");
        assert_eq!(page(&app, "/account").await.status, StatusCode::SEE_OTHER, "not signed in");
        refused(&post(&app, "/signup", &[("csrf", "forged"), ("login", "forged-signup"), ("password", PASSWORD)]).await, "signup");
        assert!(app.store().find_user_by_login("forged-signup").await.unwrap().is_none());
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let sid = decode_jwt(&u.tokens.access).1["sid"].as_str().unwrap().to_owned();
        app.store().save_consent(&u.id, &club, "openid", app.clock_now()).await.unwrap();
        let forms = [
            ("/account/profile".to_owned(), vec![("login", "hijacked")]),
            ("/account/password".to_owned(), vec![("current_password", PASSWORD), ("new_password", "hijacked password")]),
            (format!("/account/sessions/{sid}/end"), vec![]),
            ("/account/logout-others".to_owned(), vec![]),
            (format!("/account/consents/{club}/revoke"), vec![]),
            ("/oauth2/logout".to_owned(), vec![("confirm", "yes")]),
            ("/account/logout".to_owned(), vec![]),
        ];
        for (path, fields) in forms {
            let mut form = vec![("csrf", "forged")];
            form.extend(fields);
            refused(&post(&app, &path, &form).await, &path);
        }
        let r = page(&app, &authorize_path(&club, "https://club.example/cb", &[("scope", "openid email")])).await;
        let consent = page(&app, r.header("location").unwrap()).await;
        let request = form_value(&consent.text, "request").unwrap();
        refused(&post(&app, "/consent", &[("csrf", "forged"), ("request", &request), ("decision", "allow")]).await, "consent");
        assert_eq!(app.store().find_consent(&u.id, &club).await.unwrap().as_deref(), Some("openid"), "consent unchanged");
        assert_eq!(app.store().find_user(&u.id).await.unwrap().unwrap().login, u.login, "profile unchanged");
        assert_eq!(app.get("/api/v1/users/me", Some(&u.tokens.access)).await.status, StatusCode::OK, "session not ended");
        assert_eq!(page(&app, "/account").await.status, StatusCode::OK, "still signed in");
        assert_eq!(app.login(&u.login, PASSWORD).await.status, StatusCode::OK, "password unchanged");
    }
}

backend_test! {
    /// An anonymous visitor of an account page is sent (303) to the login page with a
    /// return address inside usher, and comes back there after signing in; a foreign
    /// return address is ignored.
    async fn account_requires_login_and_returns(app) {
        let r = page(&app, "/account/history").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.header("location"), Some("/login?return_to=%2Faccount%2Fhistory"));
        let u = app.user().await;
        let r = app.sign_in_page("/login?return_to=%2Faccount%2Fhistory", &u.login, PASSWORD).await;
        assert_eq!(r.header("location"), Some("/account/history"));
        let other = TestApp::builder().build().await;
        let v = other.user().await;
        let r = other.sign_in_page("/login?return_to=https%3A%2F%2Fevil.example%2F", &v.login, PASSWORD).await;
        assert_eq!(r.header("location"), Some("/account"));
    }
}

backend_test! {
    /// The account page lists the sessions with this device marked; "Log out of all
    /// other sessions" ends the others at once (their access tokens are refused) and keeps
    /// this browser's.
    async fn account_logout_others(app) {
        let u = app.user().await;
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let other = decode_jwt(&u.tokens.access).1["sid"].as_str().unwrap().to_owned();
        let r = page(&app, "/account").await;
        assert!(r.text.contains("This device") && r.text.contains("Log out of all other sessions"), "{}", r.text);
        let row = format!("<li data-sid=\"{other}\">");
        assert!(r.text.contains(&row), "the other session is listed: {}", r.text);
        let csrf = form_value(&r.text, "csrf").unwrap();
        let r = post(&app, "/account/logout-others", &[("csrf", &csrf)]).await;
        assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/account")));
        assert_problem(&app.get("/api/v1/users/me", Some(&u.tokens.access)).await, 401, "session_ended");
        let r = page(&app, "/account").await;
        assert_eq!(r.status, StatusCode::OK, "this browser stays signed in");
        assert!(r.text.contains("Signed out of 1 other session(s)."));
        assert!(!r.text.contains(&row), "the other session's row is gone: {}", r.text);
        assert_eq!(r.text.matches("<li data-sid=").count(), 1, "only this device: {}", r.text);
    }
}

backend_test! {
    /// Ending one session from the account page refuses its tokens; changing the
    /// profile and the password works through the forms, with errors shown on the page.
    async fn account_forms(app) {
        let u = app.user().await;
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let (_, claims) = decode_jwt(&u.tokens.access);
        let csrf = account_csrf(&app).await;
        let r = post(&app, &format!("/account/sessions/{}/end", claims["sid"].as_str().unwrap()), &[("csrf", &csrf)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_problem(&app.get("/api/v1/users/me", Some(&u.tokens.access)).await, 401, "session_ended");
        let r = post(&app, "/account/profile", &[("csrf", &csrf), ("login", "x"), ("email", "")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = page(&app, "/account").await;
        assert!(r.text.contains("<li>The login must be at least 3 characters long.</li>"), "{}", r.text);
        post(&app, "/account/profile", &[("csrf", &csrf), ("login", "page-renamed"), ("email", "p@example.org")]).await;
        let stored = app.store().find_user(&u.id).await.unwrap().unwrap();
        assert_eq!((stored.login.as_str(), stored.email.as_deref()), ("page-renamed", Some("p@example.org")));
        post(&app, "/account/password", &[("csrf", &csrf), ("current_password", "wrong one"), ("new_password", "brand new secret")]).await;
        assert!(page(&app, "/account").await.text.contains("<li>The current password is wrong.</li>"));
        post(&app, "/account/password", &[("csrf", &csrf), ("current_password", PASSWORD), ("new_password", "brand new secret")]).await;
        assert_eq!(app.login("page-renamed", "brand new secret").await.status, StatusCode::OK);
        assert_eq!(page(&app, "/account").await.status, StatusCode::OK, "this device keeps its session");
    }
}

backend_test! {
    /// The history page shows the attempts newest first, paginated; signing out ends
    /// the browser session.
    async fn history_page_and_sign_out(app) {
        let u = app.user().await;
        app.login(&u.login, "wrong password").await;
        for _ in 0..20 {
            app.login(&u.login, PASSWORD).await;
        }
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let r = page(&app, "/account/history").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("<caption>Sign-in attempts, newest first</caption>"));
        assert_eq!(r.text.matches("<tr><td>").count(), 20);
        let first_row = r.text.split("<tr><td>").nth(1).unwrap();
        assert!(first_row.contains("Signed in") && first_row.contains("Sign-in page"), "{first_row}");
        let older = r.text.split("href=\"/account/history?cursor=").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let r2 = page(&app, &format!("/account/history?cursor={older}")).await;
        assert!(r2.text.contains("Wrong password"), "the oldest attempt is on a later page");
        let csrf = account_csrf(&app).await;
        let r = post(&app, "/account/logout", &[("csrf", &csrf)]).await;
        assert_eq!(r.header("location"), Some("/login"));
        assert_eq!(page(&app, "/account").await.status, StatusCode::SEE_OTHER);
    }
}

backend_test! {
    /// The sign-up page applies the API's rules and signs the new user in.
    async fn signup_page(app) {
        let r = page(&app, "/signup").await;
        let csrf = form_value(&r.text, "csrf").unwrap();
        let r = post(&app, "/signup", &[("csrf", &csrf), ("login", "a"), ("password", "short"), ("email", "bad")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("<li>The login must be at least 3 characters long.</li>") && r.text.contains("<li>The password must be at least 8 characters long.</li>") && r.text.contains("<li>The e-mail address is not valid.</li>"), "{}", r.text);
        let r = post(&app, "/signup", &[("csrf", &csrf), ("login", "newbie"), ("password", PASSWORD), ("email", "")]).await;
        assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/account")));
        assert_eq!(page(&app, "/account").await.status, StatusCode::OK);
        let r = post(&app, "/signup", &[("csrf", &account_csrf(&app).await), ("login", "NEWBIE"), ("password", PASSWORD)]).await;
        assert!(r.text.contains("<li>This login is already taken.</li>"), "{}", r.text);
    }
}

backend_test! {
    /// Withdrawing a consent from the account page forgets it and ends the app's
    /// sessions: its access and refresh tokens are refused at once; the next request of
    /// the app asks for consent again.
    async fn account_withdraws_consent(app) {
        let id = film_club(&app).await;
        let cb = "https://club.example/cb";
        let u = app.user().await;
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let r = page(&app, &authorize_path(&id, cb, &[("scope", "openid email offline_access"), ("prompt", "consent")])).await;
        let consent = page(&app, r.header("location").unwrap()).await;
        let form = [("csrf", form_value(&consent.text, "csrf").unwrap()), ("request", form_value(&consent.text, "request").unwrap()), ("decision", "allow".to_owned())];
        let r = read(app.client.post(app.url("/consent")).form(&form).send().await.unwrap()).await;
        let club = tokens_of(&redeem(&app, &id, &code_of(&r), cb).await);
        assert_eq!(app.get("/oauth2/userinfo", Some(&club.access)).await.status, StatusCode::OK);
        let r = page(&app, "/account").await;
        assert!(r.text.contains("<strong>Film Club</strong> · Confirm who you are; See your e-mail address; Stay signed in while you are away ·"), "{}", r.text);
        let csrf = form_value(&r.text, "csrf").unwrap();
        let r = post(&app, &format!("/account/consents/{id}/revoke"), &[("csrf", &csrf)]).await;
        assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/account")));
        assert_eq!(app.store().find_consent(&u.id, &id).await.unwrap(), None);
        assert_eq!(app.get("/oauth2/userinfo", Some(&club.access)).await.status, StatusCode::UNAUTHORIZED);
        assert_oauth_error(&app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &club.refresh), ("client_id", &id)]).await, 400, "invalid_grant");
        let sid = decode_jwt(&club.access).1["sid"].as_str().unwrap().to_owned();
        let ended = app.store().find_session(&sid).await.unwrap().unwrap();
        assert_eq!(ended.end_reason.as_deref(), Some("consent_withdrawn"));
        let r = page(&app, "/account").await;
        assert!(r.text.contains("Access withdrawn.") && r.text.contains("None."), "{}", r.text);
        assert_eq!(page(&app, &authorize_path(&id, cb, &[("scope", "openid")])).await.header("location").map(|l| l.starts_with("/consent?")), Some(true));
    }
}

backend_test! {
    /// Without an ID token hint the end-session endpoint asks for confirmation; the
    /// confirmation signs out and returns to a registered post-logout URI with `state`;
    /// an unregistered one is refused with a page.
    async fn end_session_confirmation(app) {
        let u = app.user().await;
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let r = page(&app, "/oauth2/logout?client_id=cinema-web&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.header("location").is_none());
        let r = page(&app, &format!("/oauth2/logout?client_id=cinema-web&post_logout_redirect_uri={}&state=s1", form_urlencoded::byte_serialize(SIGNED_OUT.as_bytes()).collect::<String>())).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("Sign out of usher?"));
        assert_eq!(page(&app, "/account").await.status, StatusCode::OK, "nothing ended before confirming");
        let form: Vec<(String, String)> = ["csrf", "confirm", "client_id", "post_logout_redirect_uri", "state"]
            .iter().filter_map(|k| form_value(&r.text, k).map(|v| ((*k).to_owned(), v))).collect();
        let r = read(app.client.post(app.url("/oauth2/logout")).form(&form).send().await.unwrap()).await;
        assert_eq!(r.header("location"), Some(format!("{SIGNED_OUT}?state=s1").as_str()));
        assert_eq!(page(&app, "/account").await.status, StatusCode::SEE_OTHER);
        let r = app.call(Method::GET, "/oauth2/logout?id_token_hint=garbage", None, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
}
