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
        for g in d["grant_types_supported"].as_array().unwrap() {
            assert!(["password", "refresh_token", "authorization_code", "client_credentials"].contains(&g.as_str().unwrap()));
        }
        assert!(d["scopes_supported"].as_array().unwrap().contains(&json!("openid")));
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
