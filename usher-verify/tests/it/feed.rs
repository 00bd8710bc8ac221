//! Feed mode against a fake revocation feed: cursor, entries, 410.

use std::time::{Duration, Instant};

use serde_json::json;
use usher_verify::{Mode, Verifier, VerifyError};

use crate::support::{AUD, FEED_ID, FEED_SECRET, Issuer, TestKey, claims, eventually, now};

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
        .push(json!({"kind": "session_ended", "sid": "s1", "sub": "u1", "at": now()}));
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

/// A `roles_changed` entry makes the user's earlier tokens stale (the client refreshes)
/// while a token issued in or after that second passes; a `token_revoked` entry refuses
/// its `jti` only.
#[tokio::test]
async fn feed_roles_changed_and_token_revoked() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = feed_verifier(&issuer, None).await;
    let at = now();
    let mut old = claims(&issuer.url);
    old["iat"] = json!(at - 10);
    let old = key.sign(&old);
    let fresh = key.sign(&claims(&issuer.url));
    let mut service = claims(&issuer.url);
    service["sub"] = json!("svc");
    service["jti"] = json!("revoked-jti");
    service.as_object_mut().unwrap().remove("sid");
    let service = key.sign(&service);
    v.authenticate(&old, Mode::Feed).await.unwrap();
    v.authenticate(&service, Mode::Feed).await.unwrap();

    issuer
        .fake
        .push(json!({"kind": "roles_changed", "sub": "u1", "at": at}));
    issuer
        .fake
        .push(json!({"kind": "token_revoked", "jti": "revoked-jti", "sub": "svc", "at": at}));
    let applied = eventually(Duration::from_secs(1), || async {
        v.authenticate(&service, Mode::Feed).await == Err(VerifyError::Revoked)
    })
    .await;
    assert!(applied);
    assert_eq!(
        v.authenticate(&old, Mode::Feed).await.unwrap_err(),
        VerifyError::Stale
    );
    v.authenticate(&fresh, Mode::Feed).await.unwrap();
}

/// `410 Gone` on a resumed cursor: the verifier starts again from a fresh cursor and
/// refuses tokens issued before the gap as stale, accepting those issued after it.
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
    after["iat"] = json!(now());
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
