//! Issuing tokens: RFC 9068 access tokens, OIDC ID tokens and the RFC 6749 §5.1 token
//! response. Claims are written with whole-second times.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{ServiceError, scope};
use crate::AppState;
use crate::store::UserRecord;
use crate::token::opaque::{PlainToken, random_id};
use crate::token::{b64url, jwt, sha256};

/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "usher_rt_";

/// The RFC 6749 §5.1 success body.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The RFC 9068 JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The new refresh token, when one is issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope.
    pub scope: String,
    /// The OIDC ID token, when `openid` is in scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

#[derive(Serialize)]
struct AccessClaimsOut<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    superuser: bool,
}

/// Who an access token is for.
#[derive(Debug, Clone)]
pub struct TokenSubject<'a> {
    /// `sub`: a user id, or a client id for `client_credentials`.
    pub sub: &'a str,
    /// The user's role names (None for a client).
    pub roles: Option<&'a [String]>,
    /// Superuser flag.
    pub superuser: bool,
}

fn internal(what: &str) -> ServiceError {
    ServiceError::Internal(format!("cannot sign {what}"))
}

/// Signs an access token (`typ: at+jwt`); returns it with its `exp`.
pub fn access_token(
    app: &AppState,
    subject: &TokenSubject<'_>,
    client_id: &str,
    sid: Option<&str>,
    scope: &str,
) -> Result<(String, i64), ServiceError> {
    let now = app.clock.now();
    let exp = now + app.config.access_token_ttl.as_secs() as i64;
    let claims = AccessClaimsOut {
        iss: &app.config.issuer,
        sub: subject.sub,
        aud: &app.config.audience,
        client_id,
        exp,
        iat: now,
        jti: random_id(16),
        sid,
        scope,
        roles: subject.roles,
        superuser: subject.superuser,
    };
    let token = jwt::sign(app.keys.current().signing_key(), "at+jwt", &claims)
        .ok_or_else(|| internal("access token"))?;
    Ok((token, exp))
}

/// The user claims released for `scope` (OIDC Core §5.4), shared by the ID token and
/// userinfo.
pub fn user_claims(user: &UserRecord, roles: &[String], scope_text: &str) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    if scope::has(scope_text, "profile") {
        claims.insert("preferred_username".into(), json!(user.login));
        claims.insert("updated_at".into(), json!(user.updated_at));
    }
    if scope::has(scope_text, "email")
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), json!(email));
        // usher does not confirm addresses (yet).
        claims.insert("email_verified".into(), json!(false));
    }
    if scope::has(scope_text, "roles") {
        claims.insert("roles".into(), json!(roles));
    }
    claims
}

/// What an ID token is about.
#[derive(Debug)]
pub struct IdTokenInput<'a> {
    /// The user.
    pub user: &'a UserRecord,
    /// The user's roles.
    pub roles: &'a [String],
    /// The audience.
    pub client_id: &'a str,
    /// The session.
    pub sid: &'a str,
    /// When the user last entered their password.
    pub auth_time: i64,
    /// The `nonce` of the authorization request, if any.
    pub nonce: Option<&'a str>,
    /// The access token issued alongside (for `at_hash`).
    pub access_token: &'a str,
    /// The granted scope.
    pub scope: &'a str,
}

/// Signs an OIDC ID token (OIDC Core §2, §3.1.3.6 `at_hash`).
pub fn id_token(app: &AppState, input: &IdTokenInput<'_>) -> Result<String, ServiceError> {
    let now = app.clock.now();
    let digest = sha256(input.access_token.as_bytes());
    let mut claims = user_claims(input.user, input.roles, input.scope);
    claims.insert("iss".into(), json!(app.config.issuer));
    claims.insert("aud".into(), json!(input.client_id));
    claims.insert(
        "exp".into(),
        json!(now + app.config.access_token_ttl.as_secs() as i64),
    );
    claims.insert("iat".into(), json!(now));
    claims.insert("auth_time".into(), json!(input.auth_time));
    claims.insert("sid".into(), json!(input.sid));
    claims.insert("at_hash".into(), json!(b64url(&digest[..16])));
    if let Some(nonce) = input.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    jwt::sign(app.keys.current().signing_key(), "JWT", &claims).ok_or_else(|| internal("ID token"))
}

/// Everything needed to answer a user grant (password, refresh, code).
#[derive(Debug)]
pub struct UserGrant<'a> {
    /// The user.
    pub user: &'a UserRecord,
    /// The client.
    pub client_id: &'a str,
    /// The session.
    pub sid: &'a str,
    /// When the user last entered their password.
    pub auth_time: i64,
    /// The granted scope (canonical).
    pub scope: &'a str,
    /// The refresh token to hand out, if any.
    pub refresh: Option<&'a PlainToken>,
    /// `nonce` for the ID token.
    pub nonce: Option<&'a str>,
    /// Issue an ID token when `openid` is in scope (on refresh: `id_token_on_refresh`).
    pub with_id_token: bool,
}

/// Builds the token response of a user grant: access token, refresh token and, when
/// `openid` is in scope, an ID token.
pub async fn respond(app: &AppState, grant: &UserGrant<'_>) -> Result<TokenResponse, ServiceError> {
    let roles = super::accounts::roles_of(app, &grant.user.id).await?;
    let subject = TokenSubject {
        sub: &grant.user.id,
        roles: Some(&roles),
        superuser: grant.user.superuser,
    };
    let (access, _exp) =
        access_token(app, &subject, grant.client_id, Some(grant.sid), grant.scope)?;
    let id_token = if grant.with_id_token && scope::has(grant.scope, "openid") {
        Some(id_token(
            app,
            &IdTokenInput {
                user: grant.user,
                roles: &roles,
                client_id: grant.client_id,
                sid: grant.sid,
                auth_time: grant.auth_time,
                nonce: grant.nonce,
                access_token: &access,
                scope: grant.scope,
            },
        )?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: app.config.access_token_ttl.as_secs(),
        refresh_token: grant.refresh.map(|t| t.expose().to_owned()),
        scope: grant.scope.to_owned(),
        id_token,
    })
}
