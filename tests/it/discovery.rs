//! Discovery (OIDC Discovery 1.0), JWKS (RFC 7517) and the health endpoints.

use crate::backend_test;
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;

backend_test! {
    /// The discovery document names this issuer and lists only implemented features.
    async fn discovery_lists_what_is_implemented(app) {
        let r = app.get("/.well-known/openid-configuration", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
        let d = &r.body;
        assert_eq!(d["issuer"], app.base.as_str());
        assert_eq!(d["token_endpoint"], app.url("/oauth2/token"));
        assert_eq!(d["userinfo_endpoint"], app.url("/oauth2/userinfo"));
        assert_eq!(d["jwks_uri"], app.url("/.well-known/jwks.json"));
        assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
        assert_eq!(d["subject_types_supported"], json!(["public"]));
        assert_eq!(d["grant_types_supported"], json!(["authorization_code", "refresh_token", "client_credentials", "password"]));
        assert_eq!(d["response_types_supported"], json!(["code"]));
        assert_eq!(d["token_endpoint_auth_methods_supported"], json!(["none", "client_secret_basic", "client_secret_post"]));
        assert!(d["scopes_supported"].as_array().unwrap().contains(&json!("openid")));
    }
}

backend_test! {
    /// Discovery names the introspection (RFC 7662) and revocation (RFC 7009) endpoints
    /// and how clients authenticate there (RFC 8414 §2): introspection for confidential
    /// clients only, revocation for public ones too.
    async fn discovery_lists_introspection_and_revocation(app) {
        let d = app.get("/.well-known/openid-configuration", None).await.body;
        assert_eq!(d["introspection_endpoint"], app.url("/oauth2/introspect"));
        assert_eq!(d["introspection_endpoint_auth_methods_supported"], json!(["client_secret_basic", "client_secret_post"]));
        assert_eq!(d["revocation_endpoint"], app.url("/oauth2/revoke"));
        assert_eq!(d["revocation_endpoint_auth_methods_supported"], json!(["none", "client_secret_basic", "client_secret_post"]));
    }
}

backend_test! {
    /// The discovery document states the browser flow truthfully (OIDC Discovery 1.0
    /// §3, RFC 8414 §2, RFC 9207 §3, RP-Initiated Logout 1.0 §2.1): endpoints, S256 only,
    /// the prompt values, query responses with `iss`, and the claims and scopes released.
    async fn discovery_states_the_browser_flow(app) {
        let d = app.get("/.well-known/openid-configuration", None).await.body;
        assert_eq!(d["authorization_endpoint"], app.url("/oauth2/authorize"));
        assert_eq!(d["end_session_endpoint"], app.url("/oauth2/logout"));
        assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(d["prompt_values_supported"], json!(["none", "login", "consent"]));
        assert_eq!(d["authorization_response_iss_parameter_supported"], json!(true));
        assert_eq!(d["response_modes_supported"], json!(["query"]));
        assert_eq!(d["response_types_supported"], json!(["code"]));
        assert_eq!(d["claims_supported"], json!(["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash", "preferred_username", "updated_at", "email", "email_verified", "roles"]));
        assert_eq!(d["scopes_supported"], json!(["openid", "profile", "email", "roles", "offline_access"]));
    }
}

backend_test! {
    /// The JWKS publishes the signing key under its RFC 7638 thumbprint, the `kid` every
    /// token carries, and the key verifies a token.
    async fn jwks_publishes_signing_key(app) {
        let r = app.get("/.well-known/jwks.json", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
        let key = &r.body["keys"][0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none(), "no private member");
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, key["e"].as_str().unwrap(), key["n"].as_str().unwrap());
        let thumbprint = usher::token::b64url(&usher::token::sha256(canonical.as_bytes()));
        assert_eq!(key["kid"], thumbprint.as_str());
        let u = app.user().await;
        let (header, _) = decode_jwt(&u.tokens.access);
        assert_eq!(header["kid"], key["kid"]);
    }
}

backend_test! {
    /// `/healthz` answers ok; `/readyz` checks the database and Redis when configured.
    async fn health_and_readiness(app) {
        let r = app.get("/healthz", None).await;
        assert_eq!((r.status, r.body.clone()), (StatusCode::OK, json!({"status": "ok"})));
        let r = app.get("/readyz", None).await;
        let redis = if app.backend == Backend::Postgres { "ok" } else { "disabled" };
        assert_eq!((r.status, r.body.clone()), (StatusCode::OK, json!({"status": "ok", "checks": {"database": "ok", "redis": redis}})));
    }
}

/// Key rotation: a new key in the keys directory is published at the next reload but
/// does not sign before the activation delay; then it signs, and tokens of the old key
/// stay valid (publish before sign).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_publish_before_sign() {
    use usher::clock::Clock;
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(usher::clock::ManualClock::new());
    let keys =
        std::sync::Arc::new(usher::keystore::KeyStore::open(dir.path(), 600, clock.now()).unwrap());
    let app = TestApp::builder()
        .clock(clock.clone())
        .keys(keys.clone())
        .build()
        .await;
    let u = app.user().await;
    let (old_header, _) = decode_jwt(&u.tokens.access);
    let (_, new_kid) = usher::keystore::generate_key_file(dir.path()).unwrap();
    // The key is dated by its file, written on the wall clock (seconds after the test's
    // clock started, on a busy machine): its activation counts from then. The app's own
    // minute-by-minute reload may have got there first: only the resulting ring matters.
    let written = usher::clock::SystemClock.now();
    keys.reload(clock.now()).unwrap();
    let jwks = app.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        vec![old_header["kid"].as_str().unwrap(), new_kid.as_str()]
    );
    let (h, _) = decode_jwt(&app.tokens(&u.login).await.access);
    assert_eq!(
        h["kid"], old_header["kid"],
        "not signing before the activation delay"
    );
    clock.advance(written - clock.now() + 601);
    keys.reload(clock.now()).unwrap();
    let fresh = app.tokens(&u.login).await;
    let (h, _) = decode_jwt(&fresh.access);
    assert_eq!(h["kid"], new_kid.as_str());
    assert_eq!(
        app.get("/api/v1/users/me", Some(&fresh.access))
            .await
            .status,
        StatusCode::OK
    );
    let again = app.refresh(&u.tokens.refresh).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the old key's session goes on"
    );
}

/// A key removed from the keys directory takes its tokens with it at the next reload,
/// even a token already verified and remembered by the bearer check: 401
/// `token_unknown_key` (RFC 6750 §3.1). Tokens of the remaining key are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_removed_key_refuses_cached_tokens() {
    use usher::clock::Clock;
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(usher::clock::ManualClock::new());
    let keys =
        std::sync::Arc::new(usher::keystore::KeyStore::open(dir.path(), 600, clock.now()).unwrap());
    let app = TestApp::builder()
        .clock(clock.clone())
        .keys(keys.clone())
        .build()
        .await;
    let u = app.user().await;
    let me = app.get("/api/v1/users/me", Some(&u.tokens.access)).await;
    assert_eq!(me.status, StatusCode::OK, "verified once, now remembered");
    let old: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(old.len(), 1);
    let (_, new_kid) = usher::keystore::generate_key_file(dir.path()).unwrap();
    std::fs::remove_file(&old[0]).unwrap();
    // The app's own minute-by-minute reload may have got there first: only the
    // resulting ring matters.
    keys.reload(clock.now()).unwrap();
    let (old_header, _) = decode_jwt(&u.tokens.access);
    let old_kid = old_header["kid"].as_str().unwrap();
    assert!(
        keys.current().find(old_kid).is_none(),
        "the old key is gone"
    );
    let r = app.get("/api/v1/users/me", Some(&u.tokens.access)).await;
    assert_problem(&r, 401, "token_unknown_key");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer realm=\"usher\", error=\"invalid_token\", \
             error_description=\"the access token was signed by an unknown key\""
        )
    );
    let fresh = app.tokens(&u.login).await;
    let (h, _) = decode_jwt(&fresh.access);
    assert_eq!(h["kid"], new_kid.as_str());
    let me = app.get("/api/v1/users/me", Some(&fresh.access)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], u.id.as_str());
}
