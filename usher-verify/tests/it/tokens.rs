//! Token checks: algorithm, type, issuer, audience, time window, signature.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jws::{HS256, JwsSigner};
use serde_json::{Value, json};
use usher_verify::{Verifier, VerifyError};

use crate::support::{AUD, Issuer, TestKey, b64, claims, eventually, now};

async fn setup(leeway: Duration) -> (Issuer, TestKey, Verifier) {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = Verifier::builder(&issuer.url, AUD)
        .leeway(leeway)
        .build()
        .await
        .unwrap();
    (issuer, key, v)
}

fn edit(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// A valid token yields its typed claims; `superuser` and an `aud` array are read.
#[tokio::test]
async fn token_valid_gives_typed_claims() {
    let (issuer, key, v) = setup(Duration::from_secs(5)).await;
    let c = v.verify(&key.sign(&claims(&issuer.url))).await.unwrap();
    assert_eq!(
        (c.sub.as_str(), c.client_id.as_str(), c.sid.as_deref()),
        ("u1", "web", Some("s1"))
    );
    assert!(c.has_scope("films") && c.has_role("member") && !c.superuser);
    let mut other = claims(&issuer.url);
    other["aud"] = json!(["billing", AUD]);
    other["superuser"] = json!(true);
    other.as_object_mut().unwrap().remove("sid");
    let c = v.verify(&key.sign(&other)).await.unwrap();
    assert!(c.superuser && c.sid.is_none());
}

/// `alg` confusion (RFC 8725 §2.1, §3.1): HS256 keyed with the RSA public key's bytes,
/// `none` with an empty signature, and RS512 are all refused as algorithm errors.
#[tokio::test]
async fn token_alg_confusion_and_none_refused() {
    let (issuer, key, v) = setup(Duration::from_secs(5)).await;
    let body = b64(&claims(&issuer.url).to_string());
    for alg in ["HS256", "none", "RS512", "ES256"] {
        let header = b64(&json!({"alg": alg, "typ": "at+jwt", "kid": key.kid}).to_string());
        let input = format!("{header}.{body}");
        let signature = match alg {
            "HS256" => HS256
                .signer_from_bytes(key.public_pem())
                .unwrap()
                .sign(input.as_bytes())
                .unwrap(),
            "none" => Vec::new(),
            _ => vec![0u8; 256],
        };
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
        assert_eq!(
            v.verify(&token).await.unwrap_err(),
            VerifyError::Algorithm,
            "{alg}"
        );
    }
}

/// A tampered payload or a signature of another key is a bad signature.
#[tokio::test]
async fn token_bad_signature_refused() {
    let (issuer, key, v) = setup(Duration::from_secs(5)).await;
    let token = key.sign(&claims(&issuer.url));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = edit(claims(&issuer.url), "superuser", json!(true));
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged.to_string()), parts[2]);
    assert_eq!(
        v.verify(&tampered).await.unwrap_err(),
        VerifyError::BadSignature
    );
    let impostor = TestKey::new(1, "k1").sign(&claims(&issuer.url));
    assert_eq!(
        v.verify(&impostor).await.unwrap_err(),
        VerifyError::BadSignature
    );
}

/// Expiry with leeway (RFC 7519 §4.1.4): 2 s past `exp` passes with 5 s leeway and fails
/// without; 10 s past fails with it.
#[tokio::test]
async fn token_expired_refused_with_and_without_leeway() {
    let (issuer, key, lenient) = setup(Duration::from_secs(5)).await;
    let strict = Verifier::builder(&issuer.url, AUD)
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let just = key.sign(&edit(claims(&issuer.url), "exp", json!(now() - 2)));
    lenient.verify(&just).await.unwrap();
    assert_eq!(
        strict.verify(&just).await.unwrap_err(),
        VerifyError::Expired
    );
    let long = key.sign(&edit(claims(&issuer.url), "exp", json!(now() - 10)));
    assert_eq!(
        lenient.verify(&long).await.unwrap_err(),
        VerifyError::Expired
    );
}

/// Not-before with leeway (RFC 7519 §4.1.5): `nbf` 2 s ahead passes with 5 s leeway and
/// fails without; 60 s ahead fails with it.
#[tokio::test]
async fn token_not_yet_valid_refused_with_and_without_leeway() {
    let (issuer, key, lenient) = setup(Duration::from_secs(5)).await;
    let strict = Verifier::builder(&issuer.url, AUD)
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let soon = key.sign(&edit(claims(&issuer.url), "nbf", json!(now() + 2)));
    lenient.verify(&soon).await.unwrap();
    assert_eq!(
        strict.verify(&soon).await.unwrap_err(),
        VerifyError::NotYetValid
    );
    let later = key.sign(&edit(claims(&issuer.url), "nbf", json!(now() + 60)));
    assert_eq!(
        lenient.verify(&later).await.unwrap_err(),
        VerifyError::NotYetValid
    );
}

/// A token already in the verified cache is still refused once it expires.
#[tokio::test]
async fn token_cached_still_expires() {
    let (issuer, key, _) = setup(Duration::ZERO).await;
    let v = Verifier::builder(&issuer.url, AUD)
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let token = key.sign(&edit(claims(&issuer.url), "exp", json!(now() + 1)));
    v.verify(&token).await.unwrap();
    let expired = eventually(Duration::from_secs(5), || async {
        v.verify(&token).await == Err(VerifyError::Expired)
    })
    .await;
    assert!(expired);
}

/// Audience (RFC 7519 §4.1.3) and issuer (§4.1.1, exact match) are enforced.
#[tokio::test]
async fn token_wrong_audience_and_issuer_refused() {
    let (issuer, key, v) = setup(Duration::from_secs(5)).await;
    for aud in [json!("billing"), json!(["billing", "web"]), json!([])] {
        let token = key.sign(&edit(claims(&issuer.url), "aud", aud));
        assert_eq!(
            v.verify(&token).await.unwrap_err(),
            VerifyError::WrongAudience
        );
    }
    for iss in [
        json!("https://evil.example"),
        json!(format!("{}/", issuer.url)),
    ] {
        let token = key.sign(&edit(claims(&issuer.url), "iss", iss));
        assert_eq!(
            v.verify(&token).await.unwrap_err(),
            VerifyError::WrongIssuer
        );
    }
}

/// `typ` must be `at+jwt` or `application/at+jwt` (RFC 9068 §2.1, §4): an ID token
/// (`typ: JWT`) or a token without `typ` is refused.
#[tokio::test]
async fn token_wrong_typ_refused() {
    let (issuer, key, v) = setup(Duration::from_secs(5)).await;
    let c = claims(&issuer.url);
    for (typ, ok) in [
        (json!("application/at+jwt"), true),
        (json!("JWT"), false),
        (Value::Null, false),
    ] {
        let mut header = json!({"alg": "RS256", "kid": key.kid});
        if !typ.is_null() {
            header["typ"] = typ.clone();
        }
        let result = v.verify(&key.sign_with_header(&header, &c)).await;
        assert_eq!(result.is_ok(), ok, "{typ}");
        if !ok {
            assert_eq!(result.unwrap_err(), VerifyError::WrongType);
        }
    }
}

/// Missing required claims and non-JWS input are malformed; `kid` absent is an unknown
/// key.
#[tokio::test]
async fn token_malformed_and_missing_kid_refused() {
    let (issuer, key, v) = setup(Duration::from_secs(5)).await;
    let mut c = claims(&issuer.url);
    c.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        v.verify(&key.sign(&c)).await.unwrap_err(),
        VerifyError::Malformed
    );
    assert_eq!(
        v.verify("not-a-token").await.unwrap_err(),
        VerifyError::Malformed
    );
    let header = json!({"alg": "RS256", "typ": "at+jwt"});
    let token = key.sign_with_header(&header, &claims(&issuer.url));
    assert_eq!(v.verify(&token).await.unwrap_err(), VerifyError::UnknownKey);
}
