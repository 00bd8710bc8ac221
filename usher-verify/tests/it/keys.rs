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
/// one refetch, and later tokens of that key cause no further fetch.
#[tokio::test]
async fn jwks_rotated_key_accepted_after_one_refetch() {
    let (old, new) = (TestKey::new(0, "k-old"), TestKey::new(1, "k-new"));
    let issuer = Issuer::start(&[&old]).await;
    let v = verifier(&issuer, Duration::ZERO).await;
    assert_eq!(issuer.jwks_hits(), 1);
    issuer.publish(&[&new, &old]);
    let claims_new = v.verify(&new.sign(&claims(&issuer.url))).await.unwrap();
    assert_eq!(claims_new.sub, "u1");
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

/// `Cache-Control: max-age` is honoured: known kids cause no refetch before it expires,
/// however many tokens are verified (RFC 9111 §5.2.2.1).
#[tokio::test]
async fn jwks_max_age_no_refetch_before_expiry() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = verifier(&issuer, Duration::ZERO).await;
    for _ in 0..50 {
        v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
    }
    assert_eq!(issuer.jwks_hits(), 1);
}

/// Once `max-age` has expired, the next verification triggers one background refresh
/// and is itself served from the cached keys.
#[tokio::test]
async fn jwks_expired_max_age_refreshes_in_background() {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    *issuer.fake.cache_control.lock().unwrap() = "public, max-age=1".into();
    let v = verifier(&issuer, Duration::ZERO).await;
    let refreshed = eventually(Duration::from_secs(10), || async {
        v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
        issuer.jwks_hits() >= 2
    })
    .await;
    assert!(refreshed);
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
