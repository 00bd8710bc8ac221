//! Hostile input at the browser endpoints and the pages: NUL and other control
//! characters in query strings and forms are refused with the documented page or
//! redirect, never a 500 or a panic (PostgreSQL `text` cannot hold NUL), and change
//! nothing.

use crate::backend_test;
use crate::harness::flow::*;
use crate::harness::*;
use reqwest::StatusCode;

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

/// Asserts a one-message HTML page: status, no redirect, its title and its text.
fn assert_message(r: &Resp, status: StatusCode, title: &str, text: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{what}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert!(r.header("location").is_none(), "{what}");
    assert!(
        r.text.contains(&format!("<h1>{title}</h1>"))
            && r.text.contains(&format!("<p role=\"alert\">{text}</p>")),
        "{what}: {}",
        r.text
    );
}

const BAD_SIGN_IN: &str = "This sign-in request is not valid";
const EXPIRED: &str = "This sign-in link has expired";
const EXPIRED_TEXT: &str = "Go back to the app you came from and sign in again.";

backend_test! {
    /// RFC 6749 §4.1.2.1 with usher's control-character rule: a `client_id` or
    /// `redirect_uri` holding NUL or another control character names nothing
    /// registered, so the 400 page and never a redirect (GET and POST); once the client
    /// and redirect URI are trusted, any other parameter holding one is an
    /// `invalid_request` redirect with `state` and `iss`; nothing is parked for login.
    async fn authorize_control_characters_are_refused(app) {
        let untrusted = [
            (vec![("client_id", "cinema\0web")], "The app is not registered with usher."),
            (vec![("client_id", "cinema-web\u{1b}")], "The app is not registered with usher."),
            (vec![("redirect_uri", "http://127.0.0.1:9000/callback\0")], "The app's return address is not registered with usher."),
        ];
        for (extra, text) in untrusted {
            let path = authorize_path("cinema-web", CINEMA_CB, &extra);
            assert_message(&page(&app, &path).await, StatusCode::BAD_REQUEST, BAD_SIGN_IN, text, &path);
            let form: Vec<(String, String)> = form_urlencoded::parse(path.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
            let r = read(app.client.post(app.url("/oauth2/authorize")).form(&form).send().await.unwrap()).await;
            assert_message(&r, StatusCode::BAD_REQUEST, BAD_SIGN_IN, text, &format!("POST {extra:?}"));
        }
        for name in ["state", "nonce", "login_hint", "scope", "prompt"] {
            let path = authorize_path("cinema-web", CINEMA_CB, &[(name, "a\0b")]);
            let r = page(&app, &path).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{name}: {}", r.text);
            let loc = r.header("location").unwrap();
            assert!(loc.starts_with(&format!("{CINEMA_CB}?error=invalid_request&")), "{loc}");
            assert_eq!(query_param(loc, "error_description"), Some(format!("the parameter {name} holds a control character")), "{loc}");
            let state = if name == "state" { "a\0b" } else { "st" };
            assert_eq!(query_param(loc, "state").as_deref(), Some(state), "{loc}");
            assert_eq!(query_param(loc, "iss").as_deref(), Some(app.base.as_str()));
        }
        let r = page(&app, &format!("{}&x%01y=1", authorize_path("cinema-web", CINEMA_CB, &[]))).await;
        let loc = r.header("location").unwrap();
        assert_eq!(query_param(loc, "error_description").as_deref(), Some("a parameter name holds a control character"));
        // The same request without the control character goes on to the login page.
        let r = page(&app, &authorize_path("cinema-web", CINEMA_CB, &[("state", "ab")])).await;
        assert!(r.header("location").unwrap().starts_with("/login?request="), "{:?}", r.header("location"));
    }
}

backend_test! {
    /// RP-Initiated Logout 1.0 §2: a `client_id` holding a control character names no
    /// registered client: the 400 page, never a redirect, for the GET and for a
    /// confirmed form post, and the browser stays signed in.
    async fn end_session_control_characters_are_refused(app) {
        let u = app.user().await;
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let unknown = "The app is not registered with usher.";
        let r = page(&app, "/oauth2/logout?client_id=cinema%00web&state=s1").await;
        assert_message(&r, StatusCode::BAD_REQUEST, "This sign-out request is not valid", unknown, "GET");
        let confirm = page(&app, "/oauth2/logout").await;
        let csrf = form_value(&confirm.text, "csrf").unwrap();
        let r = post(&app, "/oauth2/logout", &[("csrf", &csrf), ("confirm", "yes"), ("client_id", "\0")]).await;
        assert_message(&r, StatusCode::BAD_REQUEST, "This sign-out request is not valid", unknown, "POST");
        assert_eq!(page(&app, "/account").await.status, StatusCode::OK, "still signed in");
        assert_eq!(app.get("/api/v1/users/me", Some(&u.tokens.access)).await.status, StatusCode::OK);
    }
}

backend_test! {
    /// A `request` id of the pages that holds a control character or another byte no
    /// request id has names no waiting request: the consent page sends an anonymous
    /// browser to the login page with the id form-encoded (never a panic on the
    /// `Location` header), and the login and consent pages show the expired page; the
    /// sign-up page does not carry it (no hidden field, no link parameter).
    async fn page_request_ids_with_control_characters(app) {
        for (raw, encoded) in [("a%00b", "a%00b"), ("%C3%A9%0A", "%C3%A9%0A"), ("x%26return_to%3D%2Faccount", "x%26return_to%3D%2Faccount")] {
            let r = page(&app, &format!("/consent?request={raw}")).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{raw}: {}", r.text);
            let loc = r.header("location").unwrap().to_owned();
            assert_eq!(loc, format!("/login?request={encoded}"));
            assert_message(&page(&app, &loc).await, StatusCode::BAD_REQUEST, EXPIRED, EXPIRED_TEXT, &loc);
            let r = page(&app, &format!("/signup?request={raw}")).await;
            assert_eq!(r.status, StatusCode::OK, "{raw}: {}", r.text);
            assert_eq!(form_value(&r.text, "request"), None, "{raw}");
            assert!(r.text.contains("<a href=\"/login\">"), "{raw}: {}", r.text);
        }
        let r = page(&app, "/signup?request=q3Zl0bYt2WcNf8Rk1VmXsA").await;
        assert_eq!(form_value(&r.text, "request").as_deref(), Some("q3Zl0bYt2WcNf8Rk1VmXsA"));
        assert!(r.text.contains("<a href=\"/login?request=q3Zl0bYt2WcNf8Rk1VmXsA\">"), "{}", r.text);
        let u = app.user().await;
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let r = page(&app, "/consent?request=a%00b").await;
        assert_message(&r, StatusCode::BAD_REQUEST, EXPIRED, EXPIRED_TEXT, "signed in");
    }
}

backend_test! {
    /// A login holding a control character names no user: the sign-in page's 401 ("The
    /// login or the password is wrong."), like an unknown login, never a database
    /// error; nothing is recorded for the existing login it resembles.
    async fn login_page_control_character_login_is_wrong(app) {
        let u = app.user().await;
        let before = app.store().list_login_events(&u.id, None, 10).await.unwrap().len();
        for login in [format!("{}\0", u.login), format!("\u{7}{}", u.login)] {
            let r = app.sign_in_page("/login", &login, PASSWORD).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
            assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
            assert!(r.text.contains("The login or the password is wrong."), "{}", r.text);
        }
        assert_eq!(app.store().list_login_events(&u.id, None, 10).await.unwrap().len(), before);
        assert_eq!(page(&app, "/account").await.status, StatusCode::SEE_OTHER, "not signed in");
        // The password grant refuses the same login as malformed (RFC 6749 §5.2).
        assert_oauth_error(&app.login(&format!("{}\0", u.login), PASSWORD).await, 400, "invalid_request");
    }
}

backend_test! {
    /// A new password holding a control character breaks a rule, on the sign-up page
    /// (422, the error listed, no account) and on the account page (the error shown,
    /// the password unchanged), as in the JSON API: the token endpoint could never
    /// accept such a password.
    async fn page_passwords_with_control_characters_are_refused(app) {
        let r = page(&app, "/signup").await;
        let csrf = form_value(&r.text, "csrf").unwrap();
        let r = post(&app, "/signup", &[("csrf", &csrf), ("login", "ctrl-user"), ("password", "correct\u{1}horse battery")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(r.text.contains("<li>Control characters are not allowed here.</li>"), "{}", r.text);
        assert!(app.store().find_user_by_login("ctrl-user").await.unwrap().is_none());
        let u = app.user().await;
        app.sign_in_page("/login", &u.login, PASSWORD).await;
        let r = page(&app, "/account").await;
        let csrf = form_value(&r.text, "csrf").unwrap();
        let r = post(&app, "/account/password", &[("csrf", &csrf), ("current_password", PASSWORD), ("new_password", "brand new\0secret")]).await;
        assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/account")));
        assert!(page(&app, "/account").await.text.contains("<li>Control characters are not allowed here.</li>"));
        assert_eq!(app.login(&u.login, PASSWORD).await.status, StatusCode::OK, "password unchanged");
        assert_eq!(app.get("/api/v1/users/me", Some(&u.tokens.access)).await.status, StatusCode::OK, "no session ended");
    }
}
