//! Live mode against a fake permission check.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use futures_util::future::join_all;
use serde_json::json;
use tower::ServiceExt;
use usher_verify::{LiveDecision, Mode, Verifier, VerifyError};

use crate::support::{
    AUD, FEED_ID, FEED_SECRET, Issuer, TestKey, claims, eventually, now, rfc3339,
};

async fn setup(ttl: Duration) -> (Issuer, TestKey, Verifier, Router) {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = Verifier::builder(&issuer.url, AUD)
        .live_ttl(ttl)
        .build()
        .await
        .unwrap();
    let app = routes(&v);
    (issuer, key, v, app)
}

/// `/stream` needs `films:watch_recent` (live); `/watch` the `subscriber` role in live mode.
fn routes(v: &Verifier) -> Router {
    Router::new()
        .route(
            "/stream",
            get(|| async { "ok" }).layer(v.require_permission("films:watch_recent")),
        )
        .route(
            "/watch",
            get(|| async { "ok" }).layer(v.require_role("subscriber").mode(Mode::Live)),
        )
        .layer(v.layer())
}

fn grant(issuer: &Issuer, sub: &str, roles: &[&str], permissions: &[&str]) {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    issuer
        .fake
        .live
        .lock()
        .unwrap()
        .insert(sub.into(), (strings(roles), strings(permissions)));
}

async fn status(app: &Router, path: &str, token: &str) -> (StatusCode, Option<String>, bool) {
    let request = Request::get(path).header(AUTHORIZATION, format!("Bearer {token}"));
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status(),
        challenge,
        response.headers().contains_key(RETRY_AFTER),
    )
}

/// A permission guard asks usher with the caller's token: allowed passes, refused is
/// 403 `insufficient_scope` naming the permission; answers are cached per (token,
/// permission) for the TTL, so a second request makes no call.
#[tokio::test]
async fn live_permission_allowed_refused_and_cached() {
    let (issuer, key, _v, app) = setup(Duration::from_secs(60)).await;
    grant(&issuer, "u1", &["subscriber"], &["films:watch_recent"]);
    let token = key.sign(&claims(&issuer.url));
    assert_eq!(status(&app, "/stream", &token).await.0, StatusCode::OK);
    assert_eq!(status(&app, "/stream", &token).await.0, StatusCode::OK);
    assert_eq!(issuer.fake.live_hits.load(Ordering::SeqCst), 1);

    let mut c = claims(&issuer.url);
    c["sub"] = json!("u2");
    let (code, challenge, _) = status(&app, "/stream", &key.sign(&c)).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        challenge
            .unwrap()
            .contains("the films:watch_recent permission is required")
    );
}

/// Live role check reflects a role taken away as soon as the cached answer expires,
/// although the token still names the role; a superuser per usher passes.
#[tokio::test]
async fn live_role_removal_applies_after_ttl() {
    let (issuer, key, _v, app) = setup(Duration::from_millis(100)).await;
    grant(&issuer, "u1", &["subscriber"], &[]);
    let mut c = claims(&issuer.url);
    c["roles"] = json!(["subscriber"]);
    let token = key.sign(&c);
    assert_eq!(status(&app, "/watch", &token).await.0, StatusCode::OK);
    grant(&issuer, "u1", &[], &[]);
    let refused = eventually(Duration::from_secs(2), || async {
        status(&app, "/watch", &token).await.0 == StatusCode::FORBIDDEN
    })
    .await;
    assert!(refused);
    grant(&issuer, "u1", &["!superuser"], &[]);
    let passes = eventually(Duration::from_secs(2), || async {
        status(&app, "/watch", &token).await.0 == StatusCode::OK
    })
    .await;
    assert!(passes);
}

/// usher unreachable with nothing cached: 503 with `Retry-After`; a session usher says
/// has ended is 401 `invalid_token` (the session_ended code is mapped).
#[tokio::test]
async fn live_unreachable_is_503_and_ended_session_401() {
    let (issuer, key, v, app) = setup(Duration::from_secs(60)).await;
    issuer.fake.live_down.store(true, Ordering::SeqCst);
    let token = key.sign(&claims(&issuer.url));
    let (code, challenge, retry_after) = status(&app, "/stream", &token).await;
    assert_eq!(
        (code, challenge, retry_after),
        (StatusCode::SERVICE_UNAVAILABLE, None, true)
    );
    issuer.fake.live_down.store(false, Ordering::SeqCst);
    issuer.fake.live_ended.lock().unwrap().insert("s1".into());
    let (code, challenge, _) = status(&app, "/stream", &token).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(
        challenge
            .unwrap()
            .contains("the session of the access token has ended")
    );
    let again = key.sign(&claims(&issuer.url));
    assert_eq!(
        v.authenticate(&again, Mode::Live).await.unwrap_err(),
        VerifyError::SessionEnded
    );
}

/// With the revocation feed running, a `roles_changed` entry for a user drops that
/// user's cached live answers: a permission taken away is refused as soon as the feed
/// reports it, long before the (here 60 s) cache would expire; other users' answers
/// stay cached.
#[tokio::test]
async fn live_cache_evicted_by_roles_changed_entry() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = Verifier::builder(&issuer.url, AUD)
        .feed_credentials(FEED_ID, FEED_SECRET)
        .live_ttl(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            v.feed_last_sync() > Some(0)
        })
        .await
    );
    let app = Router::new()
        .route(
            "/stream",
            get(|| async { "ok" }).layer(v.require_permission("films:watch_recent")),
        )
        .layer(v.layer());
    grant(&issuer, "u1", &["subscriber"], &["films:watch_recent"]);
    grant(&issuer, "u2", &["subscriber"], &["films:watch_recent"]);
    let mine = key.sign(&claims(&issuer.url));
    let mut c = claims(&issuer.url);
    c["sub"] = json!("u2");
    c["sid"] = json!("s2");
    let other = key.sign(&c);
    assert_eq!(status(&app, "/stream", &mine).await.0, StatusCode::OK);
    assert_eq!(status(&app, "/stream", &other).await.0, StatusCode::OK);
    assert_eq!(issuer.fake.live_hits.load(Ordering::SeqCst), 2);
    grant(&issuer, "u1", &[], &[]);
    assert_eq!(
        status(&app, "/stream", &mine).await.0,
        StatusCode::OK,
        "cached"
    );
    issuer
        .fake
        .push(json!({"kind": "roles_changed", "sub": "u1", "at": rfc3339(now())}));
    let refused = eventually(Duration::from_secs(2), || async {
        status(&app, "/stream", &mine).await.0 == StatusCode::FORBIDDEN
    })
    .await;
    assert!(refused, "evicted by the feed entry, not by the 60 s TTL");
    let hits = issuer.fake.live_hits.load(Ordering::SeqCst);
    assert_eq!(status(&app, "/stream", &other).await.0, StatusCode::OK);
    assert_eq!(
        issuer.fake.live_hits.load(Ordering::SeqCst),
        hits,
        "u2 still cached"
    );
}

/// Routes open to anonymous callers can ask what usher's `anonymous` role may do: the
/// question is sent without a token and the answer (subject null) is cached.
#[tokio::test]
async fn live_anonymous_check_asks_without_a_token() {
    let (issuer, _key, v, _app) = setup(Duration::from_secs(60)).await;
    grant(&issuer, "anonymous", &["anonymous"], &["films:list"]);
    let listed = v.check_anonymous("films:list").await.unwrap();
    assert_eq!(
        *listed,
        LiveDecision {
            allowed: true,
            subject: None,
            roles: vec!["anonymous".into()],
            superuser: false
        }
    );
    assert!(
        !v.check_anonymous("films:watch_recent")
            .await
            .unwrap()
            .allowed
    );
    v.check_anonymous("films:list").await.unwrap();
    assert_eq!(issuer.fake.live_hits.load(Ordering::SeqCst), 2, "cached");
}

/// The whole answer of `path` for `token`: status, `Retry-After`, `WWW-Authenticate`,
/// `Cache-Control` and body.
async fn answer(
    app: &Router,
    path: &str,
    token: &str,
) -> (
    StatusCode,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
) {
    let request = Request::get(path).header(AUTHORIZATION, format!("Bearer {token}"));
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let headers = response.headers();
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let (retry_after, challenge, cache_control) = (
        header(RETRY_AFTER),
        header(WWW_AUTHENTICATE),
        header(CACHE_CONTROL),
    );
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    (status, retry_after, challenge, cache_control, body)
}

/// Single flight: when a cached answer has expired, concurrent requests for the same
/// (token, permission) share one call to usher's permission check instead of making
/// one each (resource exhaustion; the check is held by the fake usher until every
/// request has arrived), and all of them get its answer.
#[tokio::test]
async fn live_expired_answer_concurrent_requests_make_one_call() {
    let (issuer, key, _v, app) = setup(Duration::from_millis(200)).await;
    grant(&issuer, "u1", &["subscriber"], &["films:watch_recent"]);
    let token = key.sign(&claims(&issuer.url));
    assert_eq!(status(&app, "/stream", &token).await.0, StatusCode::OK);
    assert_eq!(issuer.live_hits(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await; // past the live TTL, not a timing assertion
    let hold = issuer.hold_live();
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { answer(&app, "/stream", &token).await })
        })
        .collect();
    assert!(eventually(Duration::from_secs(5), || async { issuer.live_hits() >= 2 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await; // lets the others arrive, not a timing assertion
    assert_eq!(issuer.live_hits(), 2, "the other 49 wait for the one call");
    hold.add_permits(50);
    for request in join_all(requests).await {
        let (code, retry_after, challenge, _, body) = request.unwrap();
        assert_eq!(
            (code, retry_after, challenge, body.as_str()),
            (StatusCode::OK, None, None, "ok")
        );
    }
    assert_eq!(issuer.live_hits(), 2);
}

/// Anonymous questions share one key per permission, so concurrent `check_anonymous`
/// calls after the cached answer expired make one call to usher, not one per request.
#[tokio::test]
async fn live_anonymous_concurrent_checks_make_one_call() {
    let (issuer, _key, v, _app) = setup(Duration::from_millis(200)).await;
    grant(&issuer, "anonymous", &["anonymous"], &["films:list"]);
    assert!(v.check_anonymous("films:list").await.unwrap().allowed);
    assert_eq!(issuer.live_hits(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await; // past the live TTL, not a timing assertion
    let hold = issuer.hold_live();
    let checks: Vec<_> = (0..50)
        .map(|_| {
            let v = v.clone();
            tokio::spawn(async move { v.check_anonymous("films:list").await })
        })
        .collect();
    assert!(eventually(Duration::from_secs(5), || async { issuer.live_hits() >= 2 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await; // lets the others arrive, not a timing assertion
    assert_eq!(issuer.live_hits(), 2, "one call for every anonymous caller");
    hold.add_permits(50);
    let expected = LiveDecision {
        allowed: true,
        subject: None,
        roles: vec!["anonymous".into()],
        superuser: false,
    };
    for check in join_all(checks).await {
        assert_eq!(*check.unwrap().unwrap(), expected);
    }
    assert_eq!(issuer.live_hits(), 2);
}

/// Calls in flight to usher are capped (`live_max_in_flight`): with the one place
/// taken by a held call, a request needing another call is answered at once with 503
/// `temporarily_unavailable` and `Retry-After` (no challenge), without calling usher,
/// while a request asking the held call's question joins it. Once the call returns the
/// place is free again.
#[tokio::test]
async fn live_calls_beyond_the_limit_answer_503() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = Verifier::builder(&issuer.url, AUD)
        .live_ttl(Duration::from_secs(60))
        .live_max_in_flight(1)
        .build()
        .await
        .unwrap();
    let app = routes(&v);
    grant(&issuer, "u1", &["subscriber"], &["films:watch_recent"]);
    grant(&issuer, "u2", &["subscriber"], &["films:watch_recent"]);
    let first = key.sign(&claims(&issuer.url));
    let mut c = claims(&issuer.url);
    c["sub"] = json!("u2");
    c["sid"] = json!("s2");
    let second = key.sign(&c);
    let hold = issuer.hold_live();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (app, token) = (app.clone(), first.clone());
            tokio::spawn(async move { answer(&app, "/stream", &token).await })
        })
        .collect();
    assert!(eventually(Duration::from_secs(5), || async { issuer.live_hits() == 1 }).await);
    let refused = tokio::time::timeout(Duration::from_secs(2), answer(&app, "/stream", &second))
        .await
        .expect("answered at once, not queued behind the held call");
    let body = json!({"error": "temporarily_unavailable", "error_description": "the authorization server cannot be reached; try again shortly"});
    assert_eq!(
        refused,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("1".to_owned()),
            None,
            Some("no-store".to_owned()),
            body.to_string()
        )
    );
    assert_eq!(issuer.live_hits(), 1, "usher was not asked");
    hold.add_permits(10);
    for request in join_all(held).await {
        assert_eq!(request.unwrap().0, StatusCode::OK);
    }
    assert_eq!(issuer.live_hits(), 1, "both rode the one call");
    assert_eq!(answer(&app, "/stream", &second).await.0, StatusCode::OK);
    assert_eq!(issuer.live_hits(), 2);
}
