//! Feed mode against a fake revocation feed: cursor, entries, 410, lag, deleted clients,
//! and extractors behind guards of another mode.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use serde_json::json;
use tower::ServiceExt;
use usher_verify::{Authenticated, Mode, Verifier, VerifyError};

use crate::support::{
    AUD, FEED_ID, FEED_SECRET, Issuer, TestKey, claims, eventually, now, rfc3339,
};

async fn feed_verifier(issuer: &Issuer, resume: Option<&str>) -> Verifier {
    let mut builder = Verifier::builder(&issuer.url, AUD).feed_credentials(FEED_ID, FEED_SECRET);
    if let Some(cursor) = resume {
        builder = builder.feed_resume_from(cursor);
    }
    let v = builder.build().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            v.feed_last_sync() > Some(0)
        })
        .await
    );
    v
}

/// Logout reaches the verifier within a second: after a `session_ended` entry, the
/// session's token is refused while other sessions' tokens still pass; the verifier
/// sends back the cursor of each answer (`since`) and long-polls with `wait=30`.
#[tokio::test]
async fn feed_session_ended_refused_within_a_second() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = feed_verifier(&issuer, None).await;
    assert_eq!(v.default_mode(), Mode::Feed);
    let mine = key.sign(&claims(&issuer.url));
    let mut other = claims(&issuer.url);
    other["sid"] = json!("s2");
    let other = key.sign(&other);
    v.authenticate(&mine, Mode::Feed).await.unwrap();

    let pushed = Instant::now();
    issuer
        .fake
        .push(json!({"kind": "session_ended", "sid": "s1", "sub": "u1", "at": rfc3339(now())}));
    let refused = eventually(Duration::from_secs(1), || async {
        v.authenticate(&mine, Mode::Feed).await == Err(VerifyError::SessionEnded)
    })
    .await;
    assert!(refused, "not refused after {:?}", pushed.elapsed());
    v.authenticate(&other, Mode::Feed).await.unwrap();
    // Offline routes do not consult the feed.
    v.authenticate(&mine, Mode::Offline).await.unwrap();

    assert_eq!(v.feed_cursor().as_deref(), Some("c1"));
    let passed_back = eventually(Duration::from_secs(1), || async {
        issuer
            .fake
            .cursors_seen
            .lock()
            .unwrap()
            .contains(&Some("c1".into()))
    })
    .await;
    assert!(passed_back);
    let seen = issuer.fake.cursors_seen.lock().unwrap().clone();
    assert_eq!(&seen[..3], &[None, Some("c0".into()), Some("c1".into())]);
    assert_eq!(issuer.fake.waits_seen.lock().unwrap()[1], 30);
}

/// A `roles_changed` entry makes the user's earlier tokens stale (the client refreshes),
/// and also a token issued in the same second: whole seconds cannot tell whether it was
/// refreshed before the change (a removed role would then live on until `exp`) or after
/// it (one needless refresh), so it is refused. A token of the next second passes. A
/// `token_revoked` entry refuses its `jti` only.
#[tokio::test]
async fn feed_roles_changed_and_token_revoked() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = feed_verifier(&issuer, None).await;
    let at = now();
    let issued_at = |iat: i64| {
        let mut c = claims(&issuer.url);
        c["iat"] = json!(iat);
        key.sign(&c)
    };
    let old = issued_at(at - 10);
    let same_second = issued_at(at);
    let fresh = issued_at(at + 1);
    let mut service = claims(&issuer.url);
    service["sub"] = json!("svc");
    service["jti"] = json!("revoked-jti");
    service.as_object_mut().unwrap().remove("sid");
    let service = key.sign(&service);
    v.authenticate(&old, Mode::Feed).await.unwrap();
    v.authenticate(&service, Mode::Feed).await.unwrap();

    issuer
        .fake
        .push(json!({"kind": "roles_changed", "sub": "u1", "at": rfc3339(at)}));
    issuer.fake.push(
        json!({"kind": "token_revoked", "jti": "revoked-jti", "sub": "svc", "at": rfc3339(at)}),
    );
    let applied = eventually(Duration::from_secs(1), || async {
        v.authenticate(&service, Mode::Feed).await == Err(VerifyError::Revoked)
    })
    .await;
    assert!(applied);
    assert_eq!(
        v.authenticate(&old, Mode::Feed).await.unwrap_err(),
        VerifyError::Stale
    );
    assert_eq!(
        v.authenticate(&same_second, Mode::Feed).await.unwrap_err(),
        VerifyError::Stale
    );
    v.authenticate(&fresh, Mode::Feed).await.unwrap();
}

/// `410 Gone` on a resumed cursor: the verifier starts again from a fresh cursor and
/// refuses tokens issued before the gap as stale, accepting those issued after its
/// second.
#[tokio::test]
async fn feed_gone_cursor_restarts_and_refuses_older_tokens() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.fake.gone.lock().unwrap().insert("c-old".into());
    let mut before = claims(&issuer.url);
    before["iat"] = json!(now() - 30);
    let before = key.sign(&before);
    let v = feed_verifier(&issuer, Some("c-old")).await;
    let seen = issuer.fake.cursors_seen.lock().unwrap().clone();
    assert_eq!(&seen[..2], &[Some("c-old".to_owned()), None]);
    assert_eq!(
        v.authenticate(&before, Mode::Feed).await.unwrap_err(),
        VerifyError::Stale
    );
    let mut after = claims(&issuer.url);
    after["iat"] = json!(now() + 1);
    v.authenticate(&key.sign(&after), Mode::Feed).await.unwrap();
    v.authenticate(&before, Mode::Offline).await.unwrap();
}

/// A cursor usher did not issue (`422`) is treated as a gap too.
#[tokio::test]
async fn feed_unknown_cursor_is_a_gap() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let mut before = claims(&issuer.url);
    before["iat"] = json!(now() - 30);
    let v = feed_verifier(&issuer, Some("not-a-cursor")).await;
    assert_eq!(
        v.authenticate(&key.sign(&before), Mode::Feed)
            .await
            .unwrap_err(),
        VerifyError::Stale
    );
}

/// Feed mode on a verifier without feed credentials is a setup error: 500 from
/// `authenticate`, a panic when a guard asks for it.
#[tokio::test]
async fn feed_mode_without_credentials_is_misconfigured() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = Verifier::builder(&issuer.url, AUD).build().await.unwrap();
    assert_eq!(v.default_mode(), Mode::Offline);
    let token = key.sign(&claims(&issuer.url));
    assert_eq!(
        v.authenticate(&token, Mode::Feed).await.unwrap_err(),
        VerifyError::Misconfigured
    );
    let guard = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        v.authenticated().mode(Mode::Feed)
    }));
    assert!(guard.is_err());
}

/// A verifier long-polling with a 1 s wait whose feed may lag at most 3 s.
async fn short_lag_verifier(issuer: &Issuer, secret: &str) -> Verifier {
    Verifier::builder(&issuer.url, AUD)
        .feed_credentials(FEED_ID, secret)
        .feed_wait(Duration::from_secs(1))
        .feed_max_lag(Duration::from_secs(3))
        .build()
        .await
        .unwrap()
}

/// A feed-mode route behind a guard, for the wire form of a refusal.
fn feed_route(v: &Verifier) -> Router {
    Router::new()
        .route(
            "/watch",
            get(|| async { "ok" }).layer(v.authenticated().mode(Mode::Feed)),
        )
        .layer(v.layer())
}

/// Asserts the 503 of a feed route that can no longer vouch for tokens: RFC 6750 body
/// `temporarily_unavailable`, `Retry-After`, no challenge.
async fn assert_feed_unavailable(app: &Router, token: &str) {
    let request = Request::get("/watch").header(AUTHORIZATION, format!("Bearer {token}"));
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[RETRY_AFTER], "1");
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"error": "temporarily_unavailable", "error_description": "the authorization server cannot be reached; try again shortly"})
    );
}

/// Feed mode has a staleness bound: once usher has been unreachable for longer than the
/// maximum lag, feed decisions answer 503 instead of accepting tokens whose revocation
/// the verifier could have missed; offline decisions are unaffected.
#[tokio::test]
async fn feed_unreachable_answers_503_after_the_lag() {
    let key = TestKey::new(0, "k1");
    let mut issuer = Issuer::start(&[&key]).await;
    let v = short_lag_verifier(&issuer, FEED_SECRET).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            v.feed_last_sync() > Some(0)
        })
        .await
    );
    let token = key.sign(&claims(&issuer.url));
    v.authenticate(&token, Mode::Feed).await.unwrap();
    issuer.stop().await;
    let unavailable = eventually(Duration::from_secs(10), || async {
        v.authenticate(&token, Mode::Feed).await == Err(VerifyError::Unavailable)
    })
    .await;
    assert!(
        unavailable,
        "feed decisions must stop accepting past the lag"
    );
    assert_feed_unavailable(&feed_route(&v), &token).await;
    v.authenticate(&token, Mode::Offline).await.unwrap();
}

/// When usher refuses the feed credentials (401), the feed never syncs: past the lag,
/// feed decisions answer 503 rather than behaving like offline ones.
#[tokio::test]
async fn feed_credentials_refused_answers_503() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = short_lag_verifier(&issuer, "wrong-secret").await;
    let token = key.sign(&claims(&issuer.url));
    let unavailable = eventually(Duration::from_secs(10), || async {
        v.authenticate(&token, Mode::Feed).await == Err(VerifyError::Unavailable)
    })
    .await;
    assert!(unavailable);
    assert_eq!(v.feed_last_sync(), Some(0), "never synced");
    assert_feed_unavailable(&feed_route(&v), &token).await;
    v.authenticate(&token, Mode::Offline).await.unwrap();
}

/// A `client_deleted` entry refuses the deleted client's tokens issued at or before it,
/// service tokens included (they have no `sid`); other clients' tokens pass.
#[tokio::test]
async fn feed_client_deleted_refuses_its_tokens() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = feed_verifier(&issuer, None).await;
    let mut service = claims(&issuer.url);
    service["sub"] = json!("old-etl");
    service["client_id"] = json!("old-etl");
    service.as_object_mut().unwrap().remove("sid");
    let service = key.sign(&service);
    let user = key.sign(&claims(&issuer.url));
    v.authenticate(&service, Mode::Feed).await.unwrap();
    issuer
        .fake
        .push(json!({"kind": "client_deleted", "sub": "old-etl", "at": rfc3339(now())}));
    let refused = eventually(Duration::from_secs(1), || async {
        v.authenticate(&service, Mode::Feed).await == Err(VerifyError::Revoked)
    })
    .await;
    assert!(refused);
    v.authenticate(&user, Mode::Feed).await.unwrap();
}

/// An extractor behind an outer offline guard still applies its route's feed mode: the
/// claims the offline guard verified are not reused for a stricter mode, so a token of
/// an ended session is refused (401) on the feed route.
#[tokio::test]
async fn feed_extractor_does_not_reuse_offline_verification() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = feed_verifier(&issuer, None).await;
    let app = Router::new()
        .route(
            "/me",
            get(|user: Authenticated| async move { user.sub.clone() })
                .layer(v.layer().mode(Mode::Feed)),
        )
        .layer(v.authenticated().mode(Mode::Offline))
        .layer(v.layer());
    let token = key.sign(&claims(&issuer.url));
    let call = || async {
        let request = Request::get("/me").header(AUTHORIZATION, format!("Bearer {token}"));
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|h| h.to_str().unwrap().to_owned());
        (response.status(), challenge)
    };
    assert_eq!(call().await, (StatusCode::OK, None));
    issuer
        .fake
        .push(json!({"kind": "session_ended", "sid": "s1", "sub": "u1", "at": rfc3339(now())}));
    let refused = eventually(Duration::from_secs(1), || async {
        call().await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "the feed route refuses the ended session");
    let challenge = "Bearer realm=\"movie-api\", error=\"invalid_token\", error_description=\"the session of the access token has ended\"";
    assert_eq!(
        call().await,
        (StatusCode::UNAUTHORIZED, Some(challenge.to_owned()))
    );
}
