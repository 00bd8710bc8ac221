//! Faults: the database or Redis goes away and comes back. The real servers keep
//! running for the other tests; the app under test reaches them through a proxy that
//! the test cuts.

use std::time::Duration;

use crate::harness::proxy::FaultProxy;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn pg_host_port(url: &str) -> String {
    let after_at = url.split_once('@').map(|(_, r)| r).unwrap_or(url);
    after_at.split('/').next().unwrap().to_owned()
}

/// With PostgreSQL down, endpoints that need it answer 503 problem+json with
/// `Retry-After` (the token endpoint: `temporarily_unavailable`; a page: the 503 HTML
/// page), `/readyz` names the database, and everything recovers by itself when it is
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_503_and_recovers() {
    let Some((admin, _)) = pg_env() else {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    };
    let db = std::sync::Arc::new(PgDatabase::create(&admin).await);
    let proxy = FaultProxy::start(&pg_host_port(&admin)).await;
    let app = TestApp::builder()
        .postgres()
        .shared_pg(
            db.clone(),
            &format!("usher-test-{}", uuid::Uuid::new_v4().simple()),
        )
        .database_url(db.url_via(&proxy.addr()))
        .config(|c| c.database_timeout = Duration::from_millis(500))
        .build()
        .await;
    let u = app.user().await;
    let r = app.sign_in_page("/login", &u.login, PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    proxy.cut();
    let r = app.get("/api/v1/users/me", Some(&u.tokens.access)).await;
    assert_problem(&r, 503, "unavailable");
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(
        !r.text.to_lowercase().contains("sqlx") && !r.text.contains("5432"),
        "{}",
        r.text
    );
    let r = app.login(&u.login, PASSWORD).await;
    assert_oauth_error(&r, 503, "temporarily_unavailable");
    // A page (its browser session lives in Redis; its usher session in the database):
    // the 503 page with Retry-After, no developer string.
    let r = app.get("/account", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.text.contains("<h1>Try again in a moment</h1>"),
        "{}",
        r.text
    );
    assert!(
        !r.text.to_lowercase().contains("sqlx")
            && !r.text.contains("5432")
            && !r.text.contains("unavailable:")
            && !r.text.contains("database"),
        "{}",
        r.text
    );
    assert!(r.header("retry-after").is_some());
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.body,
        json!({"status": "down", "checks": {"database": "down", "redis": "ok"}})
    );
    // A bearer check alone needs no database: it keeps answering from memory.
    let r = app
        .call(Method::POST, "/oauth2/userinfo", Some("bad-token"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    proxy.restore();
    let back = eventually(Duration::from_secs(10), || async {
        app.get("/api/v1/users/me", Some(&u.tokens.access))
            .await
            .status
            == StatusCode::OK
    })
    .await;
    assert!(back, "the app must recover by itself");
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
}

/// With Redis down, `/readyz` names it, and a logout is still recorded and enforced
/// (the database is written first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_loses_no_logout() {
    let Some((_, redis)) = pg_env() else {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    };
    let target = redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = FaultProxy::start(&target).await;
    let app = TestApp::builder()
        .postgres()
        .redis_url(format!("redis://{}", proxy.addr()))
        .build()
        .await;
    let u = app.user().await;
    proxy.cut();
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["checks"], json!({"database": "ok", "redis": "down"}));
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            Some(&u.tokens.access),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_problem(
        &app.get("/api/v1/users/me", Some(&u.tokens.access)).await,
        401,
        "session_ended",
    );
    proxy.restore();
    let ready = eventually(Duration::from_secs(10), || async {
        app.get("/readyz", None).await.status == StatusCode::OK
    })
    .await;
    assert!(ready);
}

/// An instance whose Redis connection was cut while another instance ended a session
/// learns of it from the database as soon as its connection comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_reconciles_after_redis_returns() {
    let Some((_, redis)) = pg_env() else {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    };
    let target = redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let hour = Duration::from_secs(3600);
    let a = TestApp::builder()
        .postgres()
        .config(move |c| c.feed_sync_interval = hour)
        .build()
        .await;
    let proxy = FaultProxy::start(&target).await;
    let issuer = a.app.config.issuer.clone();
    let b = TestApp::builder()
        .postgres()
        .shared_pg(a.pg.clone().unwrap(), &a.app.config.redis_prefix)
        .redis_url(format!("redis://{}", proxy.addr()))
        .config(move |c| {
            c.feed_sync_interval = hour;
            c.issuer = issuer;
        })
        .build()
        .await;
    let u = a.user().await;
    assert_eq!(
        b.get("/api/v1/users/me", Some(&u.tokens.access))
            .await
            .status,
        StatusCode::OK
    );
    proxy.cut();
    let r = a
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            Some(&u.tokens.access),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // B missed the message: its view still accepts the token (the documented window).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.get("/api/v1/users/me", Some(&u.tokens.access))
            .await
            .status,
        StatusCode::OK
    );
    proxy.restore();
    let seen = eventually(Duration::from_secs(10), || async {
        b.get("/api/v1/users/me", Some(&u.tokens.access))
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        seen,
        "B must reconcile from the database when Redis returns"
    );
}
