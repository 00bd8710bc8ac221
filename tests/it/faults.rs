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
/// `Retry-After` (the account API: profile, login history, profile change, sign-up; the
/// token endpoint: `temporarily_unavailable`; a page: the 503 HTML page), `/readyz`
/// names the database, the failed writes change nothing, and everything recovers by
/// itself when it is back.
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
    let check = "/api/v1/authz/check?permission=films:watch_recent";
    let warm = app.get(check, Some(&u.tokens.access)).await;
    assert_eq!(warm.status, StatusCode::OK, "{}", warm.text);
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
    // Every account endpoint that needs the database answers the same way.
    let history = app
        .get("/api/v1/users/me/login-history", Some(&u.tokens.access))
        .await;
    let rename = app
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&u.tokens.access),
            Some(json!({"login": "renamed-in-outage"})),
        )
        .await;
    let signup = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"login": "born-in-outage", "password": PASSWORD})),
        )
        .await;
    for r in [&history, &rename, &signup] {
        assert_problem(r, 503, "unavailable");
        assert_eq!(r.header("retry-after"), Some("5"));
        assert_eq!(
            r.body["detail"], "the database is unavailable",
            "{}",
            r.text
        );
    }
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
    // A real token's check needs no database: a warm user keeps being answered from
    // memory.
    let r = app.get(check, Some(&u.tokens.access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"allowed": false, "subject": u.id, "roles": ["user"]})
    );
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
    // The failed writes left the data as it was.
    let stored = app.store().find_user(&u.id).await.unwrap().unwrap();
    assert_eq!(stored.login, u.login);
    assert!(
        app.store()
            .find_user_by_login("born-in-outage")
            .await
            .unwrap()
            .is_none()
    );
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

/// An instance whose Redis connection was cut while another instance took a role away,
/// removed a permission from a role and blocked a user answers the new truth once its
/// connection comes back: it reconciles from the database, loses nothing (issue 3:
/// "losing Redis must not lose a logout or a role removal").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_reconciles_role_changes_after_redis_returns() {
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
    let admin = a.superuser().await;
    let root = Some(admin.tokens.access.as_str());
    let critics = a
        .call(
            Method::POST,
            "/api/v1/roles",
            root,
            Some(json!({"name": "critics", "permissions": ["films:review"]})),
        )
        .await;
    let critics = critics.body["id"].as_str().unwrap().to_owned();
    let subscriber = a.role_id("subscriber").await;
    let (u, v) = (a.user().await, a.user().await);
    for role in [&subscriber, &critics] {
        let path = format!("/api/v1/users/{}/roles/{role}", u.id);
        assert_eq!(
            a.call(Method::PUT, &path, root, None).await.status,
            StatusCode::NO_CONTENT
        );
    }
    let expect_u = |recent: bool, review: bool, roles: serde_json::Value| {
        (
            json!({"allowed": recent, "subject": u.id, "roles": roles.clone()}),
            json!({"allowed": review, "subject": u.id, "roles": roles}),
        )
    };
    let before = expect_u(true, true, json!(["user", "critics", "subscriber"]));
    let seen = eventually(Duration::from_secs(1), || async {
        check(&b, &u.tokens.access, "films:watch_recent").await.body == before.0
            && check(&b, &u.tokens.access, "films:review").await.body == before.1
    })
    .await;
    assert!(seen, "B is warm with the roles before the cut");
    assert_eq!(
        check(&b, &v.tokens.access, "films:review").await.status,
        StatusCode::OK
    );
    proxy.cut();
    let path = format!("/api/v1/users/{}/roles/{subscriber}", u.id);
    assert_eq!(
        a.call(Method::DELETE, &path, root, None).await.status,
        StatusCode::NO_CONTENT
    );
    let r = a
        .call(
            Method::PATCH,
            &format!("/api/v1/roles/{critics}"),
            root,
            Some(json!({"permissions": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", v.id),
            root,
            Some(json!({"blocked": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // B cannot know yet: no message reached it and its periodic sync is an hour away.
    assert_eq!(
        check(&b, &u.tokens.access, "films:watch_recent").await.body,
        before.0
    );
    proxy.restore();
    let after = expect_u(false, false, json!(["user", "critics"]));
    let reconciled = eventually(Duration::from_secs(10), || async {
        check(&b, &u.tokens.access, "films:watch_recent").await.body == after.0
            && check(&b, &u.tokens.access, "films:review").await.body == after.1
            && check(&b, &v.tokens.access, "films:review").await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        reconciled,
        "B must reconcile removal, permission change and block from the database"
    );
}

/// The permission check of `permission` on `app` with `token`.
async fn check(app: &TestApp, token: &str, permission: &str) -> Resp {
    app.get(
        &format!("/api/v1/authz/check?permission={permission}"),
        Some(token),
    )
    .await
}

/// A reload of role definitions that fails (the database is down) is tried again
/// later: the definitions stay marked stale until a reload succeeds, so a permission
/// removed from a role stops allowing once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_role_reload_is_retried() {
    let Some((admin, _)) = pg_env() else {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    };
    let db = std::sync::Arc::new(PgDatabase::create(&admin).await);
    let proxy = FaultProxy::start(&pg_host_port(&admin)).await;
    let hour = Duration::from_secs(3600);
    let app = TestApp::builder()
        .postgres()
        .shared_pg(
            db.clone(),
            &format!("usher-test-{}", uuid::Uuid::new_v4().simple()),
        )
        .database_url(db.url_via(&proxy.addr()))
        .config(move |c| {
            c.database_timeout = Duration::from_millis(300);
            c.feed_sync_interval = hour;
        })
        .build()
        .await;
    let root = app.superuser().await;
    let u = app.user().await;
    let subscriber = app.role_id("subscriber").await;
    let path = format!("/api/v1/users/{}/roles/{subscriber}", u.id);
    app.call(Method::PUT, &path, Some(&root.tokens.access), None)
        .await;
    let check = "/api/v1/authz/check?permission=films:watch_recent";
    assert_eq!(
        app.get(check, Some(&u.tokens.access)).await.body["allowed"],
        true
    );
    // Another writer (straight to the database) removes the permission.
    let direct = usher::store::postgres::PgStore::connect(&db.url, 1, Duration::from_secs(5))
        .await
        .unwrap();
    use usher::store::{RoleChange, Store};
    let change = RoleChange {
        permissions: Some(Vec::new()),
        ..RoleChange::default()
    };
    let (_, entry) = direct
        .update_role(&subscriber, &change, app.clock_now())
        .await
        .unwrap();
    proxy.cut();
    // Its feed entry arrives while this instance cannot reach the database.
    app.app.feed.apply(std::slice::from_ref(&entry));
    usher::service::authz::after_changes(&app.app).await;
    assert!(app.app.authz.roles_stale(), "a failed reload stays stale");
    assert_eq!(
        app.get(check, Some(&u.tokens.access)).await.body["allowed"],
        true,
        "the old definitions still answer"
    );
    proxy.restore();
    let reloaded = eventually(Duration::from_secs(10), || async {
        usher::service::authz::after_changes(&app.app).await;
        app.get(check, Some(&u.tokens.access)).await.body["allowed"] == false
    })
    .await;
    assert!(
        reloaded,
        "the reload must be retried once the database is back"
    );
    assert!(!app.app.authz.roles_stale());
}
