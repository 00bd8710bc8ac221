//! The JWKS cache: discovery, rotation, forged kids, `Cache-Control`, outages.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use usher_verify::{BuildError, Verifier, VerifyError};

use crate::support::{AUD, Issuer, TestKey, b64, claims, eventually};

async fn verifier(issuer: &Issuer, cooldown: Duration) -> Verifier {
    Verifier::builder(&issuer.url, AUD)
        .jwks_cooldown(cooldown)
        .build()
        .await
        .unwrap()
}

/// Rotation: a token signed by a key published after start-up is accepted after exactly
/// one refetch, and later tokens of that key cause no further fetch. A zero cooldown is
/// raised to 1 s: right after the start-up fetch the new kid is refused without a fetch.
#[tokio::test]
async fn jwks_rotated_key_accepted_after_one_refetch() {
    let (old, new) = (TestKey::new(0, "k-old"), TestKey::new(1, "k-new"));
    let issuer = Issuer::start(&[&old]).await;
    let v = verifier(&issuer, Duration::ZERO).await;
    assert_eq!(issuer.jwks_hits(), 1);
    issuer.publish(&[&new, &old]);
    assert_eq!(
        v.verify(&new.sign(&claims(&issuer.url))).await.unwrap_err(),
        VerifyError::UnknownKey
    );
    assert_eq!(issuer.jwks_hits(), 1, "the cooldown is at least 1 s");
    let accepted = eventually(Duration::from_secs(5), || async {
        v.verify(&new.sign(&claims(&issuer.url))).await.is_ok()
    })
    .await;
    assert!(accepted);
    assert_eq!(issuer.jwks_hits(), 2);
    v.verify(&new.sign(&claims(&issuer.url))).await.unwrap();
    v.verify(&old.sign(&claims(&issuer.url))).await.unwrap();
    assert_eq!(issuer.jwks_hits(), 2);
}

/// A flood of concurrent tokens with forged kids causes no fetch inside the cooldown
/// that started with the first fetch, then exactly one shared fetch once it has passed
/// (misses arriving during the fetch wait for it), then none again; tokens of known keys
/// keep verifying meanwhile.
#[tokio::test]
async fn jwks_forged_kids_fetch_at_most_once_per_cooldown() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    *issuer.fake.jwks_delay.lock().unwrap() = Duration::from_millis(200);
    // Forged before the verifier starts (and unsigned: they fail at the kid lookup), so
    // that making them does not eat into the first cooldown.
    let payload = b64(&claims(&issuer.url).to_string());
    let tokens: Vec<String> = (0..300)
        .map(|n| {
            let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("forged-{n}")});
            format!("{}.{payload}.{}", b64(&header.to_string()), b64("sig"))
        })
        .collect();
    let known = key.sign(&claims(&issuer.url));
    let cooldown = Duration::from_secs(2);
    let v = verifier(&issuer, cooldown).await;
    let flood = || join_all(tokens.iter().map(|t| v.verify(t)));

    let results = flood().await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap_err() == &VerifyError::UnknownKey)
    );
    assert_eq!(issuer.jwks_hits(), 1, "inside the first cooldown");

    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    let (results, known_result) = tokio::join!(flood(), v.verify(&known));
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap_err() == &VerifyError::UnknownKey)
    );
    known_result.unwrap();
    assert_eq!(issuer.jwks_hits(), 2, "one shared fetch after the cooldown");

    flood().await;
    assert_eq!(issuer.jwks_hits(), 2, "the next cooldown has started");
}

/// A verifier with a 1 s cooldown (the minimum) whose JWKS lifetime without
/// `Cache-Control` is `default_max_age`.
async fn verifier_with_default_max_age(issuer: &Issuer, default_max_age: Duration) -> Verifier {
    Verifier::builder(&issuer.url, AUD)
        .jwks_cooldown(Duration::ZERO)
        .jwks_default_max_age(default_max_age)
        .verified_cache(None)
        .build()
        .await
        .unwrap()
}

/// Whether a JWKS fetch beyond the first happens within half a second (background
/// refreshes are spawned, so one that is due shows up within that time).
async fn refetched(issuer: &Issuer) -> bool {
    eventually(Duration::from_millis(500), || async {
        issuer.jwks_hits() >= 2
    })
    .await
}

/// `Cache-Control: max-age` longer than the default is honoured (RFC 9111 §5.2.2.1):
/// with a 1 s default and `max-age=300`, known kids cause no refetch once the default
/// has passed, however many tokens are verified. Were the header ignored, the 1 s
/// default would refresh the set here.
#[tokio::test]
async fn jwks_max_age_no_refetch_before_expiry() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    assert_eq!(
        *issuer.fake.cache_control.lock().unwrap(),
        "public, max-age=300"
    );
    let v = verifier_with_default_max_age(&issuer, Duration::from_secs(1)).await;
    assert_eq!(issuer.jwks_hits(), 1);
    tokio::time::sleep(Duration::from_millis(1300)).await; // past the 1 s default, not a timing assertion
    for _ in 0..50 {
        v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
    }
    assert!(!refetched(&issuer).await, "max-age=300 still holds");
    assert_eq!(issuer.jwks_hits(), 1);
}

/// `Cache-Control: max-age` shorter than the default is honoured too: with the default
/// of 300 s and `max-age=1`, the first verification after a second triggers a refetch
/// (were the header ignored, the 300 s default would hold). Without `Cache-Control` the
/// default applies: the refreshed set, served without the header, is kept.
#[tokio::test]
async fn jwks_short_max_age_refetches_after_it() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    *issuer.fake.cache_control.lock().unwrap() = "public, max-age=1".into();
    let v = verifier_with_default_max_age(&issuer, Duration::from_secs(300)).await;
    v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
    assert_eq!(issuer.jwks_hits(), 1, "fresh for a second");
    *issuer.fake.cache_control.lock().unwrap() = String::new();
    tokio::time::sleep(Duration::from_millis(1300)).await; // past max-age, not a timing assertion
    v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
    assert!(refetched(&issuer).await, "max-age=1 has expired");
    assert_eq!(issuer.jwks_hits(), 2);
    tokio::time::sleep(Duration::from_millis(1300)).await; // past the cooldown, not a timing assertion
    for _ in 0..5 {
        v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
    }
    let hits = eventually(Duration::from_millis(500), || async {
        issuer.jwks_hits() >= 3
    })
    .await;
    assert!(!hits, "no Cache-Control: the 300 s default holds");
}

/// A key withdrawn from the JWKS stops being accepted for tokens already in the
/// verified-token cache once the verifier has fetched the new set (RFC 7517 §5: the set
/// is the issuer's current keys): a cache hit is trusted only while its `kid` is still
/// published, so the cached token is verified afresh and refused as an unknown key,
/// long before the 60 s cache TTL. Tokens of the remaining key still verify.
#[tokio::test]
async fn jwks_withdrawn_key_refuses_cached_tokens() {
    let (old, new) = (TestKey::new(0, "k-old"), TestKey::new(1, "k-new"));
    let issuer = Issuer::start(&[&old, &new]).await;
    *issuer.fake.cache_control.lock().unwrap() = "public, max-age=1".into();
    let v = verifier(&issuer, Duration::ZERO).await;
    let cached = old.sign(&claims(&issuer.url));
    let kept = new.sign(&claims(&issuer.url));
    v.verify(&cached).await.unwrap();
    v.verify(&kept).await.unwrap();
    issuer.publish(&[&new]);
    // Cache hits alone start the refresh once max-age has passed.
    let refreshed = eventually(Duration::from_secs(5), || async {
        let _ = v.verify(&cached).await;
        issuer.jwks_hits() >= 2
    })
    .await;
    assert!(refreshed, "a cache hit past max-age starts a refresh");
    let withdrawn = eventually(Duration::from_secs(2), || async {
        v.verify(&cached).await == Err(VerifyError::UnknownKey)
    })
    .await;
    assert!(
        withdrawn,
        "the cached token of the withdrawn key is refused"
    );
    assert_eq!(
        v.verify(&old.sign(&claims(&issuer.url))).await.unwrap_err(),
        VerifyError::UnknownKey
    );
    v.verify(&kept).await.unwrap();
}

/// Once `max-age` has expired, the next verification triggers one background refresh
/// and is itself served from the cached keys without waiting for it: the JWKS answer is
/// held until the test releases it, and verifications complete meanwhile. The refreshed
/// set is used once it arrives.
#[tokio::test]
async fn jwks_expired_max_age_refreshes_in_background() {
    let (key, next) = (TestKey::new(0, "k1"), TestKey::new(1, "k2"));
    let issuer = Issuer::start(&[&key]).await;
    *issuer.fake.cache_control.lock().unwrap() = "public, max-age=1".into();
    let v = verifier(&issuer, Duration::ZERO).await;
    let hold = issuer.hold_jwks();
    issuer.publish(&[&key, &next]);
    let refreshing = eventually(Duration::from_secs(10), || async {
        v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
        issuer.jwks_hits() >= 2
    })
    .await;
    assert!(refreshing, "a background refresh started");
    // The refresh is held by the fake issuer: these complete without it.
    for _ in 0..5 {
        v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
    }
    assert_eq!(hold.available_permits(), 0, "nothing released yet");
    assert_eq!(issuer.jwks_hits(), 2);
    hold.add_permits(1);
    let installed = eventually(Duration::from_secs(5), || async {
        v.verify(&next.sign(&claims(&issuer.url))).await.is_ok()
    })
    .await;
    assert!(installed, "the refreshed key set is used");
    assert_eq!(issuer.jwks_hits(), 2, "no fetch beyond the background one");
}

/// While a fetch for an unknown kid is in flight (held by the fake issuer), at most a
/// bounded number of further unknown-kid requests wait for it; the rest are refused at
/// once as unknown keys instead of queueing behind the fetch.
#[tokio::test]
async fn jwks_forged_kids_do_not_queue_behind_a_fetch() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(&issuer, Duration::ZERO).await;
    let payload = b64(&claims(&issuer.url).to_string());
    let forged = |n: usize| {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("forged-{n}")});
        format!("{}.{payload}.{}", b64(&header.to_string()), b64("sig"))
    };
    let hold = issuer.hold_jwks();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the 1 s cooldown, not a timing assertion
    let first = {
        let (v, token) = (v.clone(), forged(0));
        tokio::spawn(async move { v.verify(&token).await })
    };
    assert!(eventually(Duration::from_secs(5), || async { issuer.jwks_hits() == 2 }).await);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood: Vec<_> = (1..=100)
        .map(|n| {
            let (v, token, done) = (v.clone(), forged(n), done.clone());
            tokio::spawn(async move {
                let r = v.verify(&token).await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r
            })
        })
        .collect();
    let refused_at_once = eventually(Duration::from_secs(5), || async {
        done.load(std::sync::atomic::Ordering::SeqCst) >= 85
    })
    .await;
    assert!(refused_at_once, "at most 15 more wait for the held fetch");
    assert_eq!(hold.available_permits(), 0, "nothing released yet");
    hold.add_permits(1);
    for task in flood {
        assert_eq!(task.await.unwrap().unwrap_err(), VerifyError::UnknownKey);
    }
    assert_eq!(first.await.unwrap().unwrap_err(), VerifyError::UnknownKey);
    assert_eq!(issuer.jwks_hits(), 2);
}

/// With usher down, a warm cache keeps verifying tokens of known keys, also after
/// `max-age` has expired (the failed refresh keeps the old keys); unknown kids are
/// refused, not hung.
#[tokio::test]
async fn jwks_issuer_down_warm_cache_still_verifies() {
    let key = TestKey::new(0, "k1");
    let mut issuer = Issuer::start(&[&key]).await;
    *issuer.fake.cache_control.lock().unwrap() = "public, max-age=1".into();
    let v = verifier(&issuer, Duration::ZERO).await;
    let url = issuer.url.clone();
    issuer.stop().await;
    v.verify(&key.sign(&claims(&url))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await; // past max-age, not a timing assertion
    for _ in 0..5 {
        v.verify(&key.sign(&claims(&url))).await.unwrap();
    }
    let other = TestKey::new(1, "k2");
    assert_eq!(
        v.verify(&other.sign(&claims(&url))).await.unwrap_err(),
        VerifyError::UnknownKey
    );
}

/// A published key whose own `alg` is not RS256 is not usable: its tokens are refused
/// as an algorithm error, and they cause no refetch (RFC 7517 §4.4).
#[tokio::test]
async fn jwks_key_with_other_alg_refused() {
    let mut key = TestKey::new(0, "k1");
    key.jwk["alg"] = json!("RS512");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(&issuer, Duration::ZERO).await;
    assert_eq!(
        v.verify(&key.sign(&claims(&issuer.url))).await.unwrap_err(),
        VerifyError::Algorithm
    );
    assert_eq!(issuer.jwks_hits(), 1);
}

/// Discovery must name the configured issuer (OIDC Discovery 1.0 §4.3); an unreachable
/// issuer fails the build with a summary.
#[tokio::test]
async fn discovery_issuer_mismatch_and_unreachable_fail_build() {
    let issuer = Issuer::start(&[&TestKey::new(0, "k1")]).await;
    *issuer.fake.discovery_issuer.lock().unwrap() = Some("https://evil.example".into());
    let err = Verifier::builder(&issuer.url, AUD)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::Unreachable(ref s) if s.contains("evil")),
        "{err}"
    );
    let err = Verifier::builder("http://127.0.0.1:9", AUD)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Unreachable(_)), "{err}");
    let err = Verifier::builder("ftp://x", AUD).build().await.unwrap_err();
    assert!(matches!(err, BuildError::InvalidIssuer));
}
