//! Extractors with usher's rejections: JSON objects read field by field (every failing
//! field named), OAuth forms (repeated parameters refused), bearer tokens, client
//! credentials, and the caller's address and user agent.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use ipnet::IpNet;
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::oauth_error::{BearerResponse, OAuthResponse};
use super::problem::Problem;
use crate::AppState;
use crate::service::authz::UserAuthz;
use crate::service::clients::{AuthMethod, Credentials};
use crate::service::{
    AccessClaims, BearerError, FieldError, MAX_USER_AGENT, OAuthCode, OAuthError, RequestMeta,
    bearer, control_character_error, has_forbidden_control,
};

/// The client address decided by the request middleware.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// The client address: the socket peer, or, when the peer is a trusted proxy, the
/// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy. IPv4-mapped
/// IPv6 addresses (`::ffff:a.b.c.d`, what a socket bound to `[::]` reports for an IPv4
/// peer) are read as the IPv4 address they carry, for the trust check and the result.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?.to_canonical();
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return Some(peer);
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => chain.push(ip.to_canonical()),
                Err(_) => return Some(peer),
            }
        }
    }
    let mut client = peer;
    for ip in chain.into_iter().rev() {
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// The peer address of the connection, when served with connect info; an IPv4-mapped
/// IPv6 address is given as its IPv4 address.
pub fn peer_ip(parts_ext: &axum::http::Extensions) -> Option<IpAddr> {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// Extracts [`RequestMeta`]: client IP and truncated user agent.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ClientIp>()
            .and_then(|c| c.0)
            .or_else(|| peer_ip(&parts.extensions));
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>())
            .filter(|ua| !ua.is_empty());
        Ok(Self(RequestMeta { ip, user_agent }))
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit.
    TooLarge,
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| BodyError::TooLarge)
}

fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is too large",
    )
}

/// A JSON object body, read field by field with [`Fields`].
#[derive(Debug)]
pub struct JsonObject(pub Fields);

impl FromRequest<AppState> for JsonObject {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json = media_type(req.headers())
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
            ));
        }
        let bytes = read_body(req, state.config.max_body_bytes)
            .await
            .map_err(|_| too_large())?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!(
                    "the body is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        match value {
            Value::Object(map) => Ok(Self(Fields::new(map))),
            _ => Err(Problem::validation(vec![FieldError::new(
                "body",
                "type",
                "must be a JSON object",
            )])),
        }
    }
}

/// Reads typed members of a JSON object, collecting every missing or mistyped member.
#[derive(Debug)]
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    /// Wraps an object.
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: Vec::new(),
        }
    }

    /// `s`, unless it holds a control character (an error naming `field`).
    fn text(&mut self, field: impl Into<String>, s: String) -> Option<String> {
        if has_forbidden_control(&s) {
            self.errors.push(control_character_error(field));
            return None;
        }
        Some(s)
    }

    /// A required string member.
    pub fn required_str(&mut self, name: &str) -> Option<String> {
        match self.map.remove(name) {
            None | Some(Value::Null) => {
                self.errors
                    .push(FieldError::new(name, "required", "is required"));
                None
            }
            Some(Value::String(s)) => self.text(name, s),
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "type", "must be a string"));
                None
            }
        }
    }

    /// An optional string member (absent or null: `None`).
    pub fn optional_str(&mut self, name: &str) -> Option<String> {
        self.nullable_str(name).flatten()
    }

    /// A string member that may be null: absent `None`, null `Some(None)`.
    pub fn nullable_str(&mut self, name: &str) -> Option<Option<String>> {
        match self.map.remove(name) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => self.text(name, s).map(Some),
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "type", "must be a string or null"));
                None
            }
        }
    }

    /// An optional boolean member.
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "type", "must be a boolean"));
                None
            }
        }
    }

    /// An optional array of strings; each bad element is named `name[i]`.
    pub fn optional_str_array(&mut self, name: &str) -> Option<Vec<String>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) => {
                            if let Some(s) = self.text(format!("{name}[{i}]"), s) {
                                out.push(s);
                            }
                        }
                        _ => self.errors.push(FieldError::new(
                            format!("{name}[{i}]"),
                            "type",
                            "must be a string",
                        )),
                    }
                }
                Some(out)
            }
            Some(_) => {
                self.errors
                    .push(FieldError::new(name, "type", "must be an array of strings"));
                None
            }
        }
    }

    /// A required array of strings.
    pub fn required_str_array(&mut self, name: &str) -> Option<Vec<String>> {
        if !self.map.contains_key(name) || self.map.get(name) == Some(&Value::Null) {
            self.errors
                .push(FieldError::new(name, "required", "is required"));
            return None;
        }
        self.optional_str_array(name)
    }

    /// Ends reading: `Err` with every type error, every unknown member, plus `rules`
    /// (the service's rule errors).
    pub fn finish(self, rules: Vec<FieldError>) -> Result<(), Problem> {
        let mut errors = self.errors;
        for key in self.map.keys() {
            errors.push(FieldError::new(
                key.clone(),
                "unknown",
                "is not a member of this request",
            ));
        }
        for r in rules {
            if !errors.iter().any(|e| e.field == r.field) {
                errors.push(r);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(errors))
        }
    }
}

/// Query parameters, each at most once (a repeated one is a validation error).
#[derive(Debug)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        for (k, v) in &pairs {
            if has_forbidden_control(k) || has_forbidden_control(v) {
                return Err(Problem::validation(vec![control_character_error(
                    k.clone(),
                )]));
            }
            if !seen.insert(k.as_str()) {
                return Err(Problem::validation(vec![FieldError::new(
                    k.clone(),
                    "repeated",
                    "must appear at most once",
                )]));
            }
        }
        Ok(Self(pairs))
    }
}

/// An RFC 6749 form body: `application/x-www-form-urlencoded`, each parameter at most
/// once (§3.2), empty values treated as absent (§3.1).
#[derive(Debug)]
pub struct OAuthForm {
    params: Vec<(String, String)>,
}

impl OAuthForm {
    /// Parses form bytes; a repeated parameter, or one holding a control character, is
    /// `invalid_request` (RFC 6749 §5.2: malformed), except client credentials holding
    /// one, which name no client: `invalid_client`.
    pub fn parse(bytes: &[u8]) -> Result<Self, OAuthError> {
        let mut params: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(bytes).into_owned() {
            if has_forbidden_control(&k) {
                return Err(OAuthError::invalid_request(
                    "a parameter name holds a control character",
                ));
            }
            if has_forbidden_control(&v) {
                return Err(if k == "client_id" || k == "client_secret" {
                    client_auth_failed()
                } else {
                    OAuthError::invalid_request(format!(
                        "the parameter {k} holds a control character"
                    ))
                });
            }
            if !seen.insert(k.clone()) {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter {k} is repeated"
                )));
            }
            params.push((k, v));
        }
        params.retain(|(_, v)| !v.is_empty());
        Ok(Self { params })
    }

    /// The value of `name`, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the parameter {name} is missing")))
    }
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = OAuthResponse;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if media_type(req.headers()).as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )
            .into());
        }
        let bytes = read_body(req, state.config.max_body_bytes)
            .await
            .map_err(|_| OAuthError::invalid_request("the request body is too large"))?;
        Ok(Self::parse(&bytes)?)
    }
}

fn client_auth_failed() -> OAuthError {
    OAuthError::new(OAuthCode::InvalidClient, "client authentication failed")
}

/// The bearer token of the `Authorization` header (RFC 6750 §2.1). `Ok(None)` when there
/// is no `Authorization: Bearer` header at all.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Malformed);
    }
    let text = value.to_str().map_err(|_| BearerError::Malformed)?;
    let Some((scheme, token)) = text.split_once(' ') else {
        return if text.eq_ignore_ascii_case("bearer") {
            Err(BearerError::Malformed)
        } else {
            Ok(None)
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim();
    let b64token = !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c));
    if !b64token {
        return Err(BearerError::Malformed);
    }
    Ok(Some(token))
}

fn authenticate_parts(
    parts: &Parts,
    state: &AppState,
    user_only: bool,
) -> Result<Arc<AccessClaims>, BearerError> {
    let token = bearer_token(&parts.headers)?.ok_or(BearerError::Missing)?;
    if user_only {
        bearer::authenticate_user(state, token)
    } else {
        bearer::authenticate(state, token)
    }
}

/// Refuses a user token issued to a third-party client (403 `first_party_only`): usher's
/// own account and admin API act for the user only through first-party clients. A
/// third-party client holds a user token for what the user consented to (userinfo, the
/// permission check), never to manage the account or administer usher. Service tokens
/// pass through (they are refused by what follows: not a user, not an admin).
async fn require_first_party(state: &AppState, claims: &AccessClaims) -> Result<(), Problem> {
    if !claims.is_user() {
        return Ok(());
    }
    if crate::service::clients::is_first_party(state, &claims.client_id).await? {
        Ok(())
    } else {
        Err(Problem::first_party_only())
    }
}

/// A user's valid access token issued to a first-party client, for usher's own account
/// API (problem+json rejections: 401 for the token, 403 `first_party_only`).
#[derive(Debug, Clone)]
pub struct ApiUser(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let claims = authenticate_parts(parts, state, true).map_err(Problem::bearer)?;
        require_first_party(state, &claims).await?;
        Ok(Self(claims))
    }
}

/// Any valid access token, a user's or a service's (problem+json rejections).
#[derive(Debug, Clone)]
pub struct ApiBearer(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for ApiBearer {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate_parts(parts, state, false)
            .map(Self)
            .map_err(Problem::bearer)
    }
}

/// A caller allowed to manage roles, assignments and users (`roles:manage` or
/// superuser), with what the view knows of them (the service checks that they hand
/// out only what they hold). Checked before the body is read: 401, then 403
/// (`first_party_only` for a third-party client's token, then `forbidden`).
#[derive(Debug, Clone)]
pub struct RolesManager(pub Arc<UserAuthz>);

/// A caller allowed to register clients (`clients:manage` or superuser), with what the
/// view knows of them (only a superuser registers first-party clients).
#[derive(Debug, Clone)]
pub struct ClientsManager(pub Arc<UserAuthz>);

async fn admin(
    parts: &Parts,
    state: &AppState,
    permission: &'static str,
) -> Result<Arc<UserAuthz>, Problem> {
    let claims = authenticate_parts(parts, state, false).map_err(Problem::bearer)?;
    require_first_party(state, &claims).await?;
    Ok(crate::service::authz::require(state, &claims, permission).await?)
}

impl FromRequestParts<AppState> for RolesManager {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admin(parts, state, crate::service::authz::ROLES_MANAGE)
            .await
            .map(Self)
    }
}

impl FromRequestParts<AppState> for ClientsManager {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admin(parts, state, crate::service::authz::CLIENTS_MANAGE)
            .await
            .map(Self)
    }
}

/// A valid access token if one is sent; `None` without an `Authorization` header. A bad
/// token, or credentials of another scheme (`Basic`, `Token`, garbage), are refused
/// (401 `token_malformed`), never taken for anonymous.
#[derive(Debug, Clone)]
pub struct OptionalBearer(pub Option<Arc<AccessClaims>>);

impl FromRequestParts<AppState> for OptionalBearer {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer_token(&parts.headers).map_err(Problem::bearer)? {
            None if parts.headers.contains_key(AUTHORIZATION) => {
                Err(Problem::bearer(BearerError::Malformed))
            }
            None => Ok(Self(None)),
            Some(token) => bearer::authenticate(state, token)
                .map(|c| Self(Some(c)))
                .map_err(Problem::bearer),
        }
    }
}

/// A valid access token for an OAuth resource (RFC 6750 JSON rejections).
#[derive(Debug, Clone)]
pub struct OAuthBearer(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for OAuthBearer {
    type Rejection = BearerResponse;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate_parts(parts, state, false)
            .map(Self)
            .map_err(BearerResponse::Invalid)
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// HTTP Basic client credentials (RFC 6749 §2.3.1: id and secret form-urlencoded).
/// `None` without an `Authorization: Basic` header; `invalid_client` when malformed.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Result<Credentials, OAuthError>> {
    let encoded = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        })?;
    let parse = || -> Option<Credentials> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        let (id, secret) = (form_decode(id)?, form_decode(secret)?);
        // An id or secret with a control character names no client.
        if has_forbidden_control(&id) || has_forbidden_control(&secret) {
            return None;
        }
        Some(Credentials {
            client_id: id,
            secret: Some(SecretString::from(secret)),
            method: AuthMethod::Basic,
        })
    };
    Some(parse().ok_or_else(client_auth_failed))
}

/// Client credentials of a token-endpoint request (RFC 6749 §2.3.1): HTTP Basic, or
/// `client_id`/`client_secret` in the body. Using both is `invalid_request`.
pub fn client_credentials(
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Credentials, OAuthError> {
    if let Some(basic) = basic_credentials(headers) {
        if form.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method only",
            ));
        }
        let creds = basic?;
        if let Some(form_id) = form.get("client_id")
            && form_id != creds.client_id
        {
            return Err(OAuthError::invalid_request(
                "client_id does not match the credentials",
            ));
        }
        return Ok(creds);
    }
    // RFC 6749 §5.2: no client authentication at all is `invalid_client`.
    let client_id = form
        .get("client_id")
        .ok_or_else(|| {
            OAuthError::new(
                OAuthCode::InvalidClient,
                "client authentication is required",
            )
        })?
        .to_owned();
    Ok(match form.get("client_secret") {
        Some(secret) => Credentials {
            client_id,
            secret: Some(SecretString::from(secret.to_owned())),
            method: AuthMethod::Post,
        },
        None => Credentials {
            client_id,
            secret: None,
            method: AuthMethod::None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// X-Forwarded-For is believed only from trusted proxies; the rightmost untrusted hop wins.
    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2, 10.0.0.7"),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(Some(peer), &h, &trusted),
            Some("2.2.2.2".parse().unwrap())
        );
        let stranger: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(Some(stranger), &h, &trusted), Some(stranger));
        h.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_ip(Some(peer), &h, &trusted), Some(peer));
    }

    /// An IPv4 peer seen through a socket bound to `[::]` (`::ffff:a.b.c.d`) is its IPv4
    /// address: recorded as such and matched against IPv4 proxy ranges; so are mapped
    /// addresses in `X-Forwarded-For`. Real IPv6 addresses are kept.
    #[test]
    fn mapped_ipv4_is_canonical() {
        let mut ext = axum::http::Extensions::new();
        let mapped: SocketAddr = "[::ffff:203.0.113.9]:4242".parse().unwrap();
        ext.insert(ConnectInfo(mapped));
        assert_eq!(peer_ip(&ext), Some("203.0.113.9".parse().unwrap()));
        let mut v6 = axum::http::Extensions::new();
        v6.insert(ConnectInfo(
            "[2001:db8::1]:4242".parse::<SocketAddr>().unwrap(),
        ));
        assert_eq!(peer_ip(&v6), Some("2001:db8::1".parse().unwrap()));

        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("::ffff:198.51.100.7, ::ffff:10.0.0.8"),
        );
        let proxy: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(Some(proxy), &h, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        let stranger: IpAddr = "::ffff:9.9.9.9".parse().unwrap();
        assert_eq!(
            client_ip(Some(stranger), &h, &trusted),
            Some("9.9.9.9".parse().unwrap())
        );
    }

    /// Bearer parsing: absent, other scheme, malformed and good tokens.
    #[test]
    fn bearer_header_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), Ok(None));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), Ok(None));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a.b.c"));
        assert_eq!(bearer_token(&h), Ok(Some("a.b.c")));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer   a.b.c"));
        assert_eq!(bearer_token(&h), Ok(Some("a.b.c")));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a b"));
        assert_eq!(bearer_token(&h), Err(BearerError::Malformed));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(bearer_token(&h), Err(BearerError::Malformed));
    }

    /// Repeated form parameters are refused; empty ones count as absent.
    #[test]
    fn oauth_form_rules() {
        assert!(OAuthForm::parse(b"a=1&a=2").is_err());
        let f = OAuthForm::parse(b"a=1&b=").unwrap();
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), None);
        assert!(f.require("b").is_err());
    }
}
