//! What anonymous browsers may cost: the per-client rate limit of the sign-in endpoints,
//! the short life of anonymous browser sessions, and the attributes of the
//! browser-session cookie.

use crate::backend_test;
use crate::harness::flow::*;
use crate::harness::*;
use reqwest::StatusCode;
use tower_sessions::session::Record;

/// The whole 429 page.
const TOO_MANY_PAGE: &str = "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<meta name=\"referrer\" content=\"no-referrer\">
<title>Too many requests · usher</title>
<link rel=\"stylesheet\" href=\"/static/usher.css\">
</head>
<body>
<a class=\"skip\" href=\"#main\">Skip to the content</a>
<header>
  <p class=\"brand\">usher <span>· cinema account</span></p>
  
</header>
<main id=\"main\" tabindex=\"-1\">

<h1>Too many requests</h1>
<p role=\"alert\">Too many sign-in requests came from your network. Please wait a minute and try again.</p>


</main>
<footer>
  <p>usher checks tickets for every service of the cinema.</p>
</footer>
</body>
</html>";

/// A request from the client address `ip` (the test peer is a trusted proxy).
async fn from(app: &TestApp, method: reqwest::Method, path: &str, ip: &str) -> Resp {
    let post = method == reqwest::Method::POST;
    let mut req = app
        .browser()
        .request(method, app.url(path))
        .header("x-forwarded-for", ip);
    if post {
        req = req.form(&[("csrf", "x")]);
    }
    read(req.send().await.unwrap()).await
}

/// Asserts the 429 page: status, `Retry-After`, page headers, no cookie, whole body.
fn assert_too_many(r: &Resp, what: &str) {
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{what}: {}",
        r.text
    );
    assert_eq!(r.header("retry-after"), Some("60"), "{what}");
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{what}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert!(r.header("content-security-policy").is_some(), "{what}");
    assert_eq!(
        r.header("set-cookie"),
        None,
        "{what}: no browser session made"
    );
    assert_eq!(r.text, TOO_MANY_PAGE, "{what}");
}

backend_test! {
    /// The sign-in endpoints (`/oauth2/authorize`, `/login`, `/signup`, `/consent`,
    /// `/oauth2/logout`, GET and POST) share a per-client-IP budget of
    /// `USHER_PAGE_RATE_LIMIT` requests a minute (RFC 6749 §10.10, OIDC Core §16.18:
    /// resource exhaustion); past it they answer a 429 page with `Retry-After` and do no
    /// work (no parked request, no browser session, no password check). Another client
    /// address keeps its own budget; the account pages and the API are not counted.
    async fn pages_rate_limited_per_client(app, config = |c| {
        c.page_rate_limit = 3;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    }) {
        let u = app.user().await;
        let authorize = authorize_path("cinema-web", CINEMA_CB, &[]);
        let flood = "203.0.113.7";
        for n in 0..3 {
            let r = from(&app, reqwest::Method::GET, &authorize, flood).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "request {n}: {}", r.text);
            assert!(r.header("location").unwrap().starts_with("/login?request="));
        }
        assert_too_many(&from(&app, reqwest::Method::GET, &authorize, flood).await, "authorize");
        for (method, path) in [
            (reqwest::Method::POST, "/oauth2/authorize"),
            (reqwest::Method::GET, "/login"),
            (reqwest::Method::GET, "/signup"),
            (reqwest::Method::POST, "/signup"),
            (reqwest::Method::GET, "/consent?request=x"),
            (reqwest::Method::POST, "/consent"),
            (reqwest::Method::GET, "/oauth2/logout"),
            (reqwest::Method::POST, "/oauth2/logout"),
        ] {
            assert_too_many(&from(&app, method.clone(), path, flood).await, &format!("{method} {path}"));
        }
        let r = app
            .browser()
            .post(app.url("/login"))
            .header("x-forwarded-for", flood)
            .form(&[("csrf", "x"), ("login", u.login.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_too_many(&read(r).await, "POST /login");
        let events = app.store().list_login_events(&u.id, None, 10).await.unwrap();
        assert!(events.iter().all(|e| e.method != "login_page"), "no password check: {events:?}");

        let other = from(&app, reqwest::Method::GET, &authorize, "203.0.113.8").await;
        assert_eq!(other.status, StatusCode::SEE_OTHER, "another client: {}", other.text);
        let account = from(&app, reqwest::Method::GET, "/account", flood).await;
        assert_eq!(account.status, StatusCode::SEE_OTHER, "account pages are not counted");
        let api = app.call(reqwest::Method::GET, "/api/v1/users/me", Some(&u.tokens.access), None).await;
        assert_eq!(api.status, StatusCode::OK);
    }
}

backend_test! {
    /// A limit of 0 turns the page rate limit off.
    async fn pages_rate_limit_zero_disables(app, config = |c| c.page_rate_limit = 0) {
        for n in 0..5 {
            let r = app.browser().get(app.url("/signup")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "request {n}");
        }
    }
}

/// The stored record of the browser session whose cookie `r` set.
async fn stored_record(app: &TestApp, r: &Resp) -> Record {
    let id = session_cookie(r).expect("a browser-session cookie");
    let data = usher::service::browser::load(&app.app, &id)
        .await
        .unwrap()
        .expect("a stored record");
    serde_json::from_str(&data).unwrap()
}

/// `Max-Age` of the browser-session cookie that `r` set.
fn cookie_max_age(r: &Resp) -> i64 {
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("usher_session="))
        .expect("a browser-session cookie");
    cookie
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Seconds from now to `record`'s expiry.
fn seconds_left(record: &Record) -> i64 {
    (record.expiry_date - time::OffsetDateTime::now_utc()).whole_seconds()
}

backend_test! {
    /// A browser session without a login (a CSRF token for a page, a parked request)
    /// lives as long as a parked request, 15 minutes, not `USHER_BROWSER_SESSION_TTL`
    /// (7 days): anonymous page views do not pile up records for days. Signing in gives
    /// it the usher session's lifetime.
    async fn anonymous_browser_session_expires_with_parked_request(app) {
        let u = app.user().await;
        for path in ["/login".to_owned(), "/signup".to_owned(), authorize_path("cinema-web", CINEMA_CB, &[])] {
            let r = browse(&app, &app.browser(), &path).await;
            assert_eq!(cookie_max_age(&r), 900, "{path}");
            let left = seconds_left(&stored_record(&app, &r).await);
            assert!((890..=900).contains(&left), "{path}: the record expires in {left} s");
        }
        let b = app.browser();
        let r = browser_sign_in(&app, &b, &u.login).await;
        let ttl = app.app.config.browser_session_ttl.as_secs() as i64;
        assert!((ttl - 10..=ttl).contains(&cookie_max_age(&r)), "signed in: the usher session's lifetime");
        let left = seconds_left(&stored_record(&app, &r).await);
        assert!((ttl - 10..=ttl).contains(&left), "signed in: the record expires in {left} s");
    }
}

backend_test! {
    /// With an https issuer the browser-session cookie is `Secure` (issue 4; RFC 6265
    /// §4.1.2.5), besides `HttpOnly`, `SameSite=Lax` and `Path=/`.
    async fn session_cookie_secure_with_https_issuer(app, config = |c| c.issuer = "https://id.example.test".into()) {
        let r = browse(&app, &app.browser(), "/login").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let id = session_cookie(&r).unwrap();
        let cookies: Vec<&str> = r.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(cookies, [format!("usher_session={id}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=900")]);
        assert!(usher::service::browser::load(&app.app, &id).await.unwrap().is_some());
    }
}
