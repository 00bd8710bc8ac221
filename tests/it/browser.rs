//! End to end in headless Chromium (WebDriver): a viewer signs in on usher's real login
//! page through a small relying party, signs in again from a second browser profile,
//! presses "Log out of all other sessions" in the first, and the second session is gone.
//! Screenshots of the login, account and history pages are written to
//! `docs/screenshots/` when `USHER_SCREENSHOTS=1`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use reqwest::StatusCode;

use crate::harness::webdriver::{Driver, ProfileReaper, browser_paths};
use crate::harness::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The relying party under test: `/start` sends the browser to usher, `/callback`
/// exchanges the code and keeps the access token of each browser (by state).
#[derive(Clone)]
struct Rp {
    usher: String,
    me: String,
    tokens: Arc<Mutex<HashMap<String, String>>>,
}

async fn start(
    State(rp): State<Rp>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let state = q.get("who").cloned().unwrap_or_default();
    let mut ser = form_urlencoded::Serializer::new(String::new());
    ser.append_pair("response_type", "code")
        .append_pair("client_id", "cinema-web")
        .append_pair("redirect_uri", &format!("{}/callback", rp.me))
        .append_pair("scope", "openid profile")
        .append_pair("state", &state)
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    Redirect::to(&format!("{}/oauth2/authorize?{}", rp.usher, ser.finish()))
}

async fn callback(
    State(rp): State<Rp>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q.get("code").map(String::as_str).unwrap_or("")),
        ("redirect_uri", &format!("{}/callback", rp.me)),
        ("client_id", "cinema-web"),
        ("code_verifier", VERIFIER),
    ];
    let r: serde_json::Value = http
        .post(format!("{}/oauth2/token", rp.usher))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = r["access_token"].as_str().unwrap_or_default().to_owned();
    let info: serde_json::Value = http
        .get(format!("{}/oauth2/userinfo", rp.usher))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rp.tokens
        .lock()
        .unwrap()
        .insert(q.get("state").cloned().unwrap_or_default(), access);
    Html(format!(
        "<h1 id=\"who\">Signed in as {}</h1>",
        info["preferred_username"].as_str().unwrap_or("?")
    ))
}

async fn start_rp(usher: &str) -> Rp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rp = Rp {
        usher: usher.to_owned(),
        me: format!("http://{}", listener.local_addr().unwrap()),
        tokens: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/start", get(start))
        .route("/callback", get(callback))
        .with_state(rp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    rp
}

fn save_screenshot(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if std::env::var("USHER_SCREENSHOTS").as_deref() == Ok("1") {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Two browser profiles sign in through the relying party; "Log out of all other
/// sessions" in the first ends the second at once (its rows are gone from the first's
/// account page, its access token is refused, its browser is sent back to the login
/// page); the history page lists the sign-ins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_and_logout_others() {
    let Some((chromium, chromedriver)) = browser_paths() else {
        assert!(
            std::env::var("USHER_TEST_REQUIRE_BROWSER").is_err(),
            "chromium and chromedriver are required"
        );
        eprintln!("skipped: chromium / chromedriver not installed");
        return;
    };
    let app = TestApp::sqlite().await;
    app.sign_up("viewer").await;
    let rp = start_rp(&app.base).await;
    let profiles = tempfile::tempdir().unwrap();
    let _reaper = ProfileReaper(profiles.path().to_path_buf());
    let driver = Driver::start(&chromium, &chromedriver).await;

    let first = driver.browser(&profiles.path().join("first")).await;
    first.goto(&format!("{}/start?who=first", rp.me)).await;
    first
        .wait_for(&format!("{}/login?request=", app.base), "Sign in")
        .await;
    save_screenshot("login", &first.screenshot().await);
    first.type_into("#login", "viewer").await;
    first.type_into("#password", PASSWORD).await;
    first.click("button[type=submit]").await;
    first
        .wait_for(&format!("{}/callback", rp.me), "Signed in as viewer")
        .await;

    let second = driver.browser(&profiles.path().join("second")).await;
    second.goto(&format!("{}/start?who=second", rp.me)).await;
    second
        .wait_for(&format!("{}/login?request=", app.base), "Sign in")
        .await;
    second.type_into("#login", "viewer").await;
    second.type_into("#password", PASSWORD).await;
    second.click("button[type=submit]").await;
    second
        .wait_for(&format!("{}/callback", rp.me), "Signed in as viewer")
        .await;
    let second_token = rp.tokens.lock().unwrap()["second"].clone();
    // The second browser's sessions: the one of the relying party and its browser session.
    let second_sid = decode_jwt(&second_token).1["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_browser = app
        .store()
        .find_session(&second_sid)
        .await
        .unwrap()
        .unwrap()
        .parent_sid
        .unwrap();
    assert_eq!(
        app.get("/api/v1/users/me", Some(&second_token))
            .await
            .status,
        StatusCode::OK
    );

    first.goto(&format!("{}/account", app.base)).await;
    let account = first
        .wait_for(&format!("{}/account", app.base), "This device")
        .await;
    assert!(
        account.contains("This device") && account.matches("End this session").count() >= 2,
        "{account}"
    );
    for sid in [&second_sid, &second_browser] {
        assert!(
            account.contains(&format!("data-sid=\"{sid}\"")),
            "the second browser's session {sid} is listed: {account}"
        );
    }
    save_screenshot("account", &first.screenshot().await);
    first.click("#logout-others").await;
    let account = first
        .wait_for(
            &format!("{}/account", app.base),
            "Signed out of 2 other session(s).",
        )
        .await;
    for sid in [&second_sid, &second_browser] {
        assert!(
            !account.contains(sid.as_str()),
            "the second browser's session {sid} is gone from the page: {account}"
        );
    }
    assert_problem(
        &app.get("/api/v1/users/me", Some(&second_token)).await,
        401,
        "session_ended",
    );
    second.goto(&format!("{}/account", app.base)).await;
    second
        .wait_for(&format!("{}/login?return_to=", app.base), "Sign in")
        .await;
    let first_token = rp.tokens.lock().unwrap()["first"].clone();
    assert_eq!(
        app.get("/api/v1/users/me", Some(&first_token)).await.status,
        StatusCode::OK
    );

    first.goto(&format!("{}/account/history", app.base)).await;
    let history = first
        .wait_for(&format!("{}/account/history", app.base), "Login history")
        .await;
    assert_eq!(history.matches("Signed in").count(), 2, "{history}");
    save_screenshot("history", &first.screenshot().await);
    first.quit().await;
    second.quit().await;
}
