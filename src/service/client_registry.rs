//! Client registration for administrators, with RFC 7591 member names. A confidential
//! client's secret (256 random bits) is shown once, at creation or on an explicit
//! rotation, and stored as SHA-256: enough for a secret of that entropy, and cheap to
//! check on every token request.

use serde::Serialize;

use super::clients::{self, Client};
pub use super::redirect_uri::{check_redirect_uri, is_loopback};
use super::{FieldError, ServiceError, feed, scope};
use crate::AppState;
use crate::store::StoreError;
use crate::token::opaque::{PlainToken, random_id};

/// Grant types a client may be registered with.
pub const GRANT_TYPES: &[&str] = &[
    "password",
    "refresh_token",
    "authorization_code",
    "client_credentials",
];
/// Authentication methods a client may be registered with.
pub const AUTH_METHODS: &[&str] = &["none", "client_secret_basic", "client_secret_post"];
/// Prefix of client secrets.
const SECRET_PREFIX: &str = "usher_cs_";

/// A registration or an update; `None` keeps the current (or default) value.
#[derive(Debug, Default)]
pub struct ClientInput {
    /// Desired id (generated when absent at creation).
    pub client_id: Option<String>,
    /// Display name.
    pub client_name: Option<String>,
    /// `none` (public), `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// Grant types.
    pub grant_types: Option<Vec<String>>,
    /// Redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Scopes the client may ask for.
    pub scope: Option<String>,
    /// No consent screen.
    pub first_party: Option<bool>,
    /// Issue a new secret (update only).
    pub rotate_secret: bool,
}

/// A client as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClientView {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub client_name: String,
    /// Authentication method.
    pub token_endpoint_auth_method: String,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed scopes.
    pub scope: String,
    /// No consent screen.
    pub first_party: bool,
    /// Built in; cannot be changed or deleted here.
    pub builtin: bool,
    /// RFC 7591: registration time, Unix seconds.
    pub client_id_issued_at: i64,
    /// The secret, only in the answer that created or rotated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// RFC 7591: 0 (the secret does not expire), with `client_secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
}

impl ClientView {
    fn of(c: &Client, secret: Option<PlainToken>) -> Self {
        Self {
            client_id: c.client_id.clone(),
            client_name: c.client_name.clone(),
            token_endpoint_auth_method: c.token_endpoint_auth_method.clone(),
            grant_types: c.grant_types.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            scope: c.scope.clone(),
            first_party: c.first_party,
            builtin: c.builtin,
            client_id_issued_at: c.created_at,
            client_secret_expires_at: secret.as_ref().map(|_| 0),
            client_secret: secret.map(|s| s.expose().to_owned()),
        }
    }
}

/// Client ids usher uses itself: the pseudo client of browser sessions and the built-in
/// client. None of them can be registered (in any letter case).
pub const RESERVED_IDS: &[&str] = &[super::sessions::BROWSER_CLIENT, clients::CINEMA_WEB];

/// True for an id of [`RESERVED_IDS`], in any letter case.
pub fn is_reserved(client_id: &str) -> bool {
    RESERVED_IDS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(client_id))
}

fn check_uris(field: &str, uris: &[String], errors: &mut Vec<FieldError>) {
    for (i, u) in uris.iter().enumerate() {
        errors.extend(check_redirect_uri(&format!("{field}[{i}]"), u));
    }
}

/// Merges `input` over `base` and checks every rule; returns every failing field.
fn merge(mut base: Client, input: ClientInput, creating: bool) -> Result<Client, Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Some(id) = input.client_id {
        let ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok {
            errors.push(FieldError::new(
                "client_id",
                "format",
                "must be 1 to 64 letters, digits, '.', '_', '-'",
            ));
        } else if is_reserved(&id) {
            // `usher` names the browser sessions of every user: a client registered with
            // it could be deleted, and with it every browser session would end.
            errors.push(FieldError::new(
                "client_id",
                "reserved",
                "is reserved for usher's own use",
            ));
        } else if uuid::Uuid::try_parse(&id).is_ok() {
            // A service token's `sub` is its client id, a user token's the user's UUID:
            // a UUID-shaped client id could pass for a user.
            errors.push(FieldError::new(
                "client_id",
                "uuid_form",
                "must not have the form of a UUID (user ids have it)",
            ));
        }
        base.client_id = id;
    }
    if let Some(name) = input.client_name {
        if name.trim().is_empty() || name.chars().count() > 128 {
            errors.push(FieldError::new(
                "client_name",
                "format",
                "must be 1 to 128 characters",
            ));
        } else if name.chars().any(char::is_control) {
            errors.push(super::control_character_error("client_name"));
        }
        base.client_name = name;
    }
    if let Some(method) = input.token_endpoint_auth_method {
        if !AUTH_METHODS.contains(&method.as_str()) {
            errors.push(FieldError::new(
                "token_endpoint_auth_method",
                "unsupported",
                "must be none, client_secret_basic or client_secret_post",
            ));
        } else if !creating && (method == "none") != base.is_public() {
            errors.push(FieldError::new(
                "token_endpoint_auth_method",
                "immutable",
                "a client cannot change between public and confidential",
            ));
        }
        base.token_endpoint_auth_method = method;
    }
    if let Some(grants) = input.grant_types {
        for (i, g) in grants.iter().enumerate() {
            if !GRANT_TYPES.contains(&g.as_str()) {
                errors.push(FieldError::new(
                    format!("grant_types[{i}]"),
                    "unsupported",
                    "unknown grant type",
                ));
            }
        }
        let mut unique: Vec<String> = Vec::with_capacity(grants.len());
        for g in grants {
            if !unique.contains(&g) {
                unique.push(g);
            }
        }
        base.grant_types = unique;
    }
    if let Some(uris) = input.redirect_uris {
        check_uris("redirect_uris", &uris, &mut errors);
        base.redirect_uris = uris;
    }
    if let Some(uris) = input.post_logout_redirect_uris {
        check_uris("post_logout_redirect_uris", &uris, &mut errors);
        base.post_logout_redirect_uris = uris;
    }
    if let Some(text) = input.scope {
        match scope::parse(&text) {
            Ok(parsed) => base.scope = scope::canonical(&parsed),
            Err(_) => errors.push(FieldError::new(
                "scope",
                "format",
                "must be space-separated scope tokens",
            )),
        }
    }
    if let Some(first_party) = input.first_party {
        base.first_party = first_party;
    }
    if base.grant_types.is_empty() {
        errors.push(FieldError::new(
            "grant_types",
            "required",
            "at least one grant type",
        ));
    }
    if base.is_public() && base.allows_grant("client_credentials") {
        errors.push(FieldError::new(
            "grant_types",
            "not_allowed",
            "a public client cannot use client_credentials",
        ));
    }
    if base.allows_grant("password") && !base.first_party {
        errors.push(FieldError::new(
            "grant_types",
            "not_allowed",
            "the password grant is for first-party clients only",
        ));
    }
    if base.allows_grant("authorization_code") && base.redirect_uris.is_empty() {
        errors.push(FieldError::new(
            "redirect_uris",
            "required",
            "authorization_code needs a redirect URI",
        ));
    }
    if errors.is_empty() {
        Ok(base)
    } else {
        Err(errors)
    }
}

/// 404 `client_not_found`.
pub fn client_not_found() -> ServiceError {
    ServiceError::not_found("client_not_found", "no client with this id")
}

/// 403 `superuser_required`: a first-party client gets user tokens without a consent
/// page, so registering one (or changing one) is the superuser's alone; otherwise a
/// `clients:manage` holder could register one with their own redirect URI and collect
/// codes silently from every signed-in user.
fn first_party_needs_superuser() -> ServiceError {
    ServiceError::forbidden(
        "superuser_required",
        "only a superuser can register or change a first-party client",
    )
}

fn builtin() -> ServiceError {
    ServiceError::conflict(
        "builtin_client",
        "a built-in client cannot be changed or deleted here",
    )
}

/// Every client.
pub async fn list(app: &AppState) -> Result<Vec<ClientView>, ServiceError> {
    Ok(app
        .store
        .list_clients()
        .await?
        .into_iter()
        .map(|r| ClientView::of(&Client::from_record(r), None))
        .collect())
}

/// One client.
pub async fn get(app: &AppState, client_id: &str) -> Result<ClientView, ServiceError> {
    let client = clients::find(app, client_id)
        .await?
        .ok_or_else(client_not_found)?;
    Ok(ClientView::of(&client, None))
}

/// Registers a client; the answer carries its secret when it is confidential. Only a
/// `superuser` may register a first-party client.
pub async fn create(
    app: &AppState,
    input: ClientInput,
    superuser: bool,
) -> Result<ClientView, ServiceError> {
    if input.first_party == Some(true) && !superuser {
        return Err(first_party_needs_superuser());
    }
    let now = app.clock.now();
    let base = Client {
        client_id: format!("c-{}", random_id(12)),
        client_name: String::new(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        grant_types: vec!["authorization_code".into()],
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        scope: "openid profile email roles".into(),
        first_party: false,
        builtin: false,
        created_at: now,
        updated_at: now,
        secret_hash: None,
    };
    let mut client = merge(base, input, true).map_err(ServiceError::Validation)?;
    if client.client_name.is_empty() {
        client.client_name = client.client_id.clone();
    }
    let secret = (!client.is_public()).then(|| PlainToken::generate(SECRET_PREFIX));
    client.secret_hash = secret.as_ref().map(PlainToken::hash);
    app.store
        .insert_client(&client.to_record())
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ServiceError::conflict("client_id_taken", "this client id is already registered")
            }
            other => other.into(),
        })?;
    tracing::info!(client_id = %client.client_id, "client registered");
    Ok(ClientView::of(&client, secret))
}

/// Changes a client; with `rotate_secret` the answer carries the new secret. Only a
/// `superuser` may change a first-party client or make a client first-party.
pub async fn update(
    app: &AppState,
    client_id: &str,
    input: ClientInput,
    superuser: bool,
) -> Result<ClientView, ServiceError> {
    let current = clients::find(app, client_id)
        .await?
        .ok_or_else(client_not_found)?;
    if current.builtin || is_reserved(client_id) {
        return Err(builtin());
    }
    if (current.first_party || input.first_party == Some(true)) && !superuser {
        return Err(first_party_needs_superuser());
    }
    if input.client_id.as_deref().is_some_and(|id| id != client_id) {
        return Err(ServiceError::Validation(vec![FieldError::new(
            "client_id",
            "immutable",
            "the client id cannot change",
        )]));
    }
    let rotate = input.rotate_secret;
    let mut client = merge((*current).clone(), input, false).map_err(ServiceError::Validation)?;
    if rotate && client.is_public() {
        return Err(ServiceError::Validation(vec![FieldError::new(
            "rotate_secret",
            "not_allowed",
            "a public client has no secret",
        )]));
    }
    let secret = rotate.then(|| PlainToken::generate(SECRET_PREFIX));
    if let Some(s) = &secret {
        client.secret_hash = Some(s.hash());
    }
    client.updated_at = app.clock.now();
    let change = app.store.update_client(&client.to_record()).await?;
    app.clients.forget(client_id);
    feed::publish(app, std::slice::from_ref(&change)).await;
    tracing::info!(client_id, rotated = rotate, "client updated");
    Ok(ClientView::of(&client, secret))
}

/// Deletes a client and ends every session opened through it.
pub async fn delete(app: &AppState, client_id: &str) -> Result<(), ServiceError> {
    let current = clients::find(app, client_id)
        .await?
        .ok_or_else(client_not_found)?;
    // A reserved id registered before it was reserved still names the browser
    // sessions: deleting it would end every user's.
    if current.builtin || is_reserved(client_id) {
        return Err(builtin());
    }
    let changes = app
        .store
        .delete_client(client_id, app.clock.now())
        .await?
        .ok_or_else(client_not_found)?;
    app.clients.forget(client_id);
    feed::publish(app, &changes).await;
    tracing::info!(client_id, "client deleted");
    Ok(())
}
