//! The OIDC Discovery 1.0 document: only what usher implements.

use serde_json::{Value, json};

use super::{grants, scope};
use crate::config::Config;

/// Claims usher can release.
pub const CLAIMS: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "sid",
    "at_hash",
    "preferred_username",
    "updated_at",
    "email",
    "email_verified",
    "roles",
];

/// The discovery document for `config.issuer`.
pub fn document(config: &Config) -> Value {
    let base = &config.issuer;
    json!({
        "issuer": base,
        "token_endpoint": format!("{base}/oauth2/token"),
        "userinfo_endpoint": format!("{base}/oauth2/userinfo"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "scopes_supported": scope::KNOWN,
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "end_session_endpoint": format!("{base}/oauth2/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "grant_types_supported": grants::SUPPORTED,
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": CLAIMS,
        "claim_types_supported": ["normal"],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    })
}
