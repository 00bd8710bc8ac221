//! The authorization endpoint's logic (RFC 6749 §4.1, OIDC Core §3.1.2, RFC 7636,
//! RFC 9207): validate the request, decide whether the user must log in or consent,
//! and issue a one-time code (60 s, single use) bound to the client, the redirect URI and
//! the PKCE challenge.
//!
//! Until the client and its redirect URI are verified, errors are shown on a page and
//! never redirected (§4.1.2.1); after that they go back to the client with `state` and
//! `iss`.

use serde::{Deserialize, Serialize};

use super::clients::{self, Client};
use super::redirect_uri::{match_redirect_uri, with_query};
use super::{ServiceError, first_repeated, has_forbidden_control, pkce, scope};
use crate::AppState;
use crate::token::opaque::random_id;
use crate::token::sha256_hex;

/// Lifetime of an authorization code (seconds).
pub const CODE_TTL: u64 = 60;
/// Lifetime of a request parked while the user logs in or consents (seconds).
pub const PARKED_TTL: u64 = 15 * 60;

/// A validated authorization request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// The client.
    pub client_id: String,
    /// The verified redirect URI, exactly as sent.
    pub redirect_uri: String,
    /// Granted scope (canonical).
    pub scope: String,
    /// `state`, echoed back.
    pub state: Option<String>,
    /// `nonce`, put in the ID token.
    pub nonce: Option<String>,
    /// Encoded PKCE challenge (oxide-auth's form).
    pub code_challenge: Option<String>,
    /// `prompt=none`.
    pub prompt_none: bool,
    /// `prompt=login`.
    pub prompt_login: bool,
    /// `prompt=consent`.
    pub prompt_consent: bool,
    /// `max_age`, seconds.
    pub max_age: Option<i64>,
    /// `login_hint`, pre-fills the login field.
    pub login_hint: Option<String>,
    /// When the request arrived.
    pub requested_at: i64,
    /// The user who approved this very request on the consent page. It stands for
    /// consent only while that same user is signed in: a request parked again after the
    /// consent (`max_age` passed meanwhile) and resumed by another user asks them.
    #[serde(default)]
    pub consent_by: Option<String>,
}

/// Why a request cannot be answered to its client (shown on a page, never redirected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// `client_id` or `redirect_uri` appears more than once.
    Repeated,
    /// No `client_id`.
    NoClientId,
    /// The client is not registered.
    UnknownClient,
    /// No `redirect_uri`.
    NoRedirectUri,
    /// The `redirect_uri` has a fragment (RFC 6749 §3.1.2).
    RedirectUriFragment,
    /// The `redirect_uri` is not one of the client's.
    RedirectUriNotRegistered,
}

/// Why an authorization request failed.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Client or redirect URI not verified: show a page, never redirect.
    Page(Untrusted),
    /// Tell the client: redirect here.
    Redirect(String),
    /// usher itself failed.
    Service(ServiceError),
}

impl From<ServiceError> for AuthorizeError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

/// A browser's login, as kept in its browser session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrowserLogin {
    /// The browser session (an usher session without tokens).
    pub sid: String,
    /// The user.
    pub user_id: String,
    /// When the password was entered.
    pub auth_time: i64,
}

/// What happens next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send the browser here (the client, with a code or an error).
    Redirect(String),
    /// Show the login page for the parked request.
    Login(String),
    /// Show the consent page for the parked request.
    Consent(String),
}

/// The error redirect of RFC 6749 §4.1.2.1 with RFC 9207's `iss`.
pub fn error_redirect(
    app: &AppState,
    req: &AuthorizeRequest,
    error: &str,
    description: &str,
) -> String {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = &req.state {
        params.push(("state", state));
    }
    params.push(("iss", &app.config.issuer));
    with_query(&req.redirect_uri, &params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Validates an authorization request (query or form parameters).
pub async fn validate(
    app: &AppState,
    params: &[(String, String)],
) -> Result<(AuthorizeRequest, std::sync::Arc<Client>), AuthorizeError> {
    let repeated = |name: &str| params.iter().filter(|(k, _)| k == name).count() > 1;
    if repeated("client_id") || repeated("redirect_uri") {
        return Err(AuthorizeError::Page(Untrusted::Repeated));
    }
    let client_id =
        param(params, "client_id").ok_or(AuthorizeError::Page(Untrusted::NoClientId))?;
    let client = clients::find(app, client_id)
        .await?
        .ok_or(AuthorizeError::Page(Untrusted::UnknownClient))?;
    let redirect_uri =
        param(params, "redirect_uri").ok_or(AuthorizeError::Page(Untrusted::NoRedirectUri))?;
    match_redirect_uri(&client.redirect_uris, redirect_uri).map_err(AuthorizeError::Page)?;
    // From here on the client and the redirect URI are trusted: errors go back to it.
    let mut req = AuthorizeRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope: String::new(),
        state: param(params, "state").map(str::to_owned),
        nonce: param(params, "nonce").map(str::to_owned),
        code_challenge: None,
        prompt_none: false,
        prompt_login: false,
        prompt_consent: false,
        max_age: None,
        login_hint: param(params, "login_hint").map(str::to_owned),
        requested_at: app.clock.now(),
        consent_by: None,
    };
    let fail = |req: &AuthorizeRequest, error: &str, description: &str| {
        AuthorizeError::Redirect(error_redirect(app, req, error, description))
    };
    // No text usher reads may hold a control character: `invalid_request` (a client id
    // or redirect URI holding one names nothing registered, refused above on the page).
    for (k, v) in params {
        if has_forbidden_control(k) {
            return Err(fail(
                &req,
                "invalid_request",
                "a parameter name holds a control character",
            ));
        }
        if has_forbidden_control(v) {
            return Err(fail(
                &req,
                "invalid_request",
                &format!("the parameter {k} holds a control character"),
            ));
        }
    }
    if let Some(name) = first_repeated(params.iter().map(|(k, _)| k.as_str())) {
        return Err(fail(
            &req,
            "invalid_request",
            &format!("the parameter {name} is repeated"),
        ));
    }
    if param(params, "request").is_some() {
        return Err(fail(
            &req,
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if param(params, "request_uri").is_some() {
        return Err(fail(
            &req,
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    match param(params, "response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                &req,
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        None => return Err(fail(&req, "invalid_request", "response_type is missing")),
    }
    if !matches!(param(params, "response_mode"), None | Some("query")) {
        return Err(fail(
            &req,
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    if !client.allows_grant("authorization_code") {
        return Err(fail(
            &req,
            "unauthorized_client",
            "the client may not use the authorization code flow",
        ));
    }
    let requested = scope::parse(param(params, "scope").unwrap_or("openid"))
        .map_err(|_| fail(&req, "invalid_scope", "the scope has invalid characters"))?;
    let allowed = scope::parse(&client.scope).map_err(ServiceError::from)?;
    if !scope::within(&requested, &allowed) {
        return Err(fail(
            &req,
            "invalid_scope",
            "the requested scope exceeds what the client may ask for",
        ));
    }
    req.scope = scope::canonical(&requested);
    req.code_challenge = pkce::challenge(
        client.is_public(),
        param(params, "code_challenge"),
        param(params, "code_challenge_method"),
    )
    .map_err(|why| fail(&req, "invalid_request", why))?;
    if let Some(prompt) = param(params, "prompt") {
        for value in prompt.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => req.prompt_none = true,
                "login" => req.prompt_login = true,
                "consent" => req.prompt_consent = true,
                _ => return Err(fail(&req, "invalid_request", "unsupported prompt value")),
            }
        }
        if req.prompt_none && (req.prompt_login || req.prompt_consent) {
            return Err(fail(
                &req,
                "invalid_request",
                "prompt=none cannot be combined",
            ));
        }
    }
    // OIDC Core §11: a client that needs consent gets `offline_access` only when the
    // user is asked (`prompt=consent`); otherwise it is dropped from the granted scope.
    if !client.first_party && !req.prompt_consent && scope::has(&req.scope, "offline_access") {
        req.scope = req
            .scope
            .split(' ')
            .filter(|s| *s != "offline_access")
            .collect::<Vec<_>>()
            .join(" ");
    }
    if let Some(max_age) = param(params, "max_age") {
        req.max_age = Some(
            max_age
                .parse::<i64>()
                .ok()
                .filter(|m| *m >= 0)
                .ok_or_else(|| {
                    fail(
                        &req,
                        "invalid_request",
                        "max_age must be a non-negative integer",
                    )
                })?,
        );
    }
    Ok((req, client))
}

/// Parks a request while the user logs in or consents; returns its id. The id is not
/// tied to anyone here: the http layer remembers it in the parking browser's session
/// and refuses it from any other browser.
pub async fn park(app: &AppState, req: &AuthorizeRequest) -> Result<String, ServiceError> {
    let id = random_id(16);
    let json = serde_json::to_string(req).map_err(|e| ServiceError::Internal(e.to_string()))?;
    app.state
        .put_ttl(
            &format!("authz:{id}"),
            &json,
            std::time::Duration::from_secs(PARKED_TTL),
        )
        .await?;
    Ok(id)
}

/// True when `id` has the form of a parked request's id (1–64 base64url characters;
/// [`park`] makes 22): anything else names no request.
pub fn is_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A parked request, if it is still there (an id of another form is not looked up).
pub async fn parked(app: &AppState, id: &str) -> Result<Option<AuthorizeRequest>, ServiceError> {
    if !is_request_id(id) {
        return Ok(None);
    }
    let Some(json) = app.state.get(&format!("authz:{id}")).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str(&json).ok())
}

/// Drops a parked request.
pub async fn unpark(app: &AppState, id: &str) -> Result<(), ServiceError> {
    Ok(app.state.delete(&format!("authz:{id}")).await?)
}

/// True when the browser's login satisfies the request (`prompt=login`, `max_age`).
/// `prompt=login` is only satisfied by a login made for this request (the resumed
/// request has it cleared).
pub fn login_satisfies(app: &AppState, req: &AuthorizeRequest, login: &BrowserLogin) -> bool {
    if req.prompt_login {
        return false;
    }
    match req.max_age {
        Some(max) => app.clock.now() - login.auth_time <= max,
        None => true,
    }
}

/// Decides the next step for a request and the browser's login.
pub async fn proceed(
    app: &AppState,
    req: &AuthorizeRequest,
    login: Option<&BrowserLogin>,
) -> Result<Step, AuthorizeError> {
    let Some(login) = login.filter(|l| login_satisfies(app, req, l)) else {
        if req.prompt_none {
            return Err(AuthorizeError::Redirect(error_redirect(
                app,
                req,
                "login_required",
                "the user is not logged in",
            )));
        }
        return Ok(Step::Login(park(app, req).await?));
    };
    let client = clients::find(app, &req.client_id)
        .await?
        .ok_or(AuthorizeError::Page(Untrusted::UnknownClient))?;
    let consented_here = req.consent_by.as_deref() == Some(login.user_id.as_str());
    if !client.first_party && !consented_here {
        let granted = app
            .store
            .find_consent(&login.user_id, &req.client_id)
            .await
            .map_err(ServiceError::from)?;
        let covered = granted.is_some_and(|g| {
            let (Ok(g), Ok(r)) = (scope::parse(&g), scope::parse(&req.scope)) else {
                return false;
            };
            scope::within(&r, &g)
        });
        if !covered || req.prompt_consent {
            if req.prompt_none {
                return Err(AuthorizeError::Redirect(error_redirect(
                    app,
                    req,
                    "consent_required",
                    "the user has not consented",
                )));
            }
            return Ok(Step::Consent(park(app, req).await?));
        }
    }
    Ok(Step::Redirect(issue_code(app, req, login).await?))
}

/// What a code stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The authorization request.
    pub request: AuthorizeRequest,
    /// The user.
    pub user_id: String,
    /// The browser session the code was issued in.
    pub browser_sid: String,
    /// When the user entered their password.
    pub auth_time: i64,
    /// Expiry (Unix seconds, from the app clock; the stored key also expires).
    pub expires_at: i64,
}

/// Storage key of a code (never the code itself).
pub fn code_key(code: &str) -> String {
    format!("code:{}", sha256_hex(code.as_bytes()))
}

async fn issue_code(
    app: &AppState,
    req: &AuthorizeRequest,
    login: &BrowserLogin,
) -> Result<String, ServiceError> {
    let code = random_id(32);
    let grant = CodeGrant {
        request: req.clone(),
        user_id: login.user_id.clone(),
        browser_sid: login.sid.clone(),
        auth_time: login.auth_time,
        expires_at: app.clock.now() + CODE_TTL as i64,
    };
    let json = serde_json::to_string(&grant).map_err(|e| ServiceError::Internal(e.to_string()))?;
    app.state
        .put_ttl(
            &code_key(&code),
            &json,
            std::time::Duration::from_secs(CODE_TTL),
        )
        .await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &req.state {
        params.push(("state", state));
    }
    params.push(("iss", &app.config.issuer));
    Ok(with_query(&req.redirect_uri, &params))
}

/// Records a consent (the union with what was granted before).
pub async fn grant_consent(
    app: &AppState,
    user_id: &str,
    req: &AuthorizeRequest,
) -> Result<(), ServiceError> {
    let mut scopes: Vec<String> = req
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(prev) = app.store.find_consent(user_id, &req.client_id).await? {
        for s in prev.split(' ').filter(|s| !s.is_empty()) {
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
    }
    let merged = scope::canonical(&scope::parse(&scopes.join(" "))?);
    app.store
        .save_consent(user_id, &req.client_id, &merged, app.clock.now())
        .await?;
    Ok(())
}
