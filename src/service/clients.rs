//! OAuth clients: the parsed form of a registered client and client authentication at
//! the token endpoint (RFC 6749 §2.3): `none` for public clients, `client_secret_basic`
//! or `client_secret_post` for confidential ones, exactly as registered. Secrets are
//! compared as SHA-256 digests in constant time.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::cache::GuardedCache;
use super::feed::CLIENT_CHANGED;
use super::{OAuthCode, OAuthError, ServiceError};
use crate::AppState;
use crate::store::{ChangeRecord, ClientRecord};
use crate::token::{constant_time_eq, sha256_hex};

/// Registered clients held in memory, dropped when the change feed says they changed.
/// A load racing a change (a secret rotation, a deletion) is not kept.
#[derive(Clone, Debug)]
pub struct ClientCache(Arc<GuardedCache<Arc<Client>>>);

impl Default for ClientCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self(Arc::new(GuardedCache::new(10_000)))
    }

    /// Applies a feed entry.
    pub fn on_change(&self, change: &ChangeRecord) {
        if (change.kind == CLIENT_CHANGED || change.kind == super::feed::CLIENT_DELETED)
            && let Some(id) = &change.sub
        {
            self.0.invalidate(id);
        }
    }

    /// Drops a client (after a local change).
    pub fn forget(&self, client_id: &str) {
        self.0.invalidate(client_id);
    }

    /// Drops every cached client (after a feed lag that may have lost entries).
    pub fn forget_all(&self) {
        self.0.invalidate_all();
    }
}

/// How the client presented itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form (`client_secret_post`).
    Post,
    /// `client_id` only (public client).
    None,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
            Self::None => "none",
        }
    }
}

/// Client credentials as presented.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The claimed client id.
    pub client_id: String,
    /// The secret, when one was presented.
    pub secret: Option<SecretString>,
    /// How they were presented.
    pub method: AuthMethod,
}

/// A registered client, its list members parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub client_name: String,
    /// Registered authentication method.
    pub token_endpoint_auth_method: String,
    /// Allowed grant types.
    pub grant_types: Vec<String>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes the client may ask for.
    pub scope: String,
    /// No consent screen.
    pub first_party: bool,
    /// Created by a migration.
    pub builtin: bool,
    /// Registration time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// SHA-256 hex of the secret (confidential clients).
    pub secret_hash: Option<String>,
}

impl Client {
    /// Parses a stored record.
    pub fn from_record(r: ClientRecord) -> Self {
        let list = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
        Self {
            grant_types: r
                .grant_types
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            redirect_uris: list(&r.redirect_uris),
            post_logout_redirect_uris: list(&r.post_logout_redirect_uris),
            client_id: r.client_id,
            client_name: r.client_name,
            token_endpoint_auth_method: r.token_endpoint_auth_method,
            scope: r.scope,
            first_party: r.first_party,
            builtin: r.builtin,
            created_at: r.created_at,
            updated_at: r.updated_at,
            secret_hash: r.secret_hash,
        }
    }

    /// The stored form.
    pub fn to_record(&self) -> ClientRecord {
        let list = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        ClientRecord {
            client_id: self.client_id.clone(),
            client_name: self.client_name.clone(),
            secret_hash: self.secret_hash.clone(),
            token_endpoint_auth_method: self.token_endpoint_auth_method.clone(),
            grant_types: self.grant_types.join(" "),
            redirect_uris: list(&self.redirect_uris),
            post_logout_redirect_uris: list(&self.post_logout_redirect_uris),
            scope: self.scope.clone(),
            first_party: self.first_party,
            builtin: self.builtin,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// True for a public client (no secret).
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == "none"
    }

    /// True when the client may use `grant_type`.
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

fn invalid_client() -> ServiceError {
    ServiceError::OAuth(OAuthError::new(
        OAuthCode::InvalidClient,
        "client authentication failed",
    ))
}

/// Loads a client by id: from memory, or once from the database. An id holding a
/// control character names no client (and PostgreSQL `text` cannot hold NUL): `None`
/// without a query, whichever endpoint it came from.
pub async fn find(app: &AppState, client_id: &str) -> Result<Option<Arc<Client>>, ServiceError> {
    if super::has_forbidden_control(client_id) {
        return Ok(None);
    }
    let client = app
        .clients
        .0
        .get_or_load(client_id, || async {
            let record = app.store.find_client(client_id).await?;
            Ok::<_, ServiceError>(record.map(|r| Arc::new(Client::from_record(r))))
        })
        .await?;
    Ok(client)
}

/// True when `client_id` names a first-party client (`cinema-web`, or one registered
/// with `first_party`): only their users' tokens may act on usher's own account and
/// admin API. A client that no longer exists is not first-party. One lookup in the
/// client cache (the database on a miss); a change to the client drops the entry.
pub async fn is_first_party(app: &AppState, client_id: &str) -> Result<bool, ServiceError> {
    Ok(find(app, client_id).await?.is_some_and(|c| c.first_party))
}

/// Authenticates a confidential client by its secret, whichever secret method it is
/// registered with (endpoints that only take HTTP Basic, like the revocation feed).
pub async fn authenticate_secret(
    app: &AppState,
    creds: &Credentials,
) -> Result<Arc<Client>, ServiceError> {
    let Some(client) = find(app, &creds.client_id).await? else {
        return Err(invalid_client());
    };
    let (Some(secret), Some(stored)) = (&creds.secret, &client.secret_hash) else {
        return Err(invalid_client());
    };
    let presented = sha256_hex(secret.expose_secret().as_bytes());
    if !constant_time_eq(presented.as_bytes(), stored.as_bytes()) {
        return Err(invalid_client());
    }
    Ok(client)
}

/// Authenticates a client at the token endpoint. Unknown client, wrong secret, or a
/// method other than the registered one: `invalid_client`.
pub async fn authenticate(
    app: &AppState,
    creds: &Credentials,
) -> Result<Arc<Client>, ServiceError> {
    let Some(client) = find(app, &creds.client_id).await? else {
        return Err(invalid_client());
    };
    if creds.method.as_str() != client.token_endpoint_auth_method {
        return Err(invalid_client());
    }
    if client.is_public() {
        return Ok(client);
    }
    let (Some(secret), Some(stored)) = (&creds.secret, &client.secret_hash) else {
        return Err(invalid_client());
    };
    let presented = sha256_hex(secret.expose_secret().as_bytes());
    if !constant_time_eq(presented.as_bytes(), stored.as_bytes()) {
        return Err(invalid_client());
    }
    Ok(client)
}

/// The built-in first-party client of the cinema's site.
pub const CINEMA_WEB: &str = "cinema-web";

/// Applies the configured redirect URIs of `cinema-web` (the configuration is their only
/// source); writes only when they differ from the stored ones.
pub async fn apply_builtin_config(app: &AppState) -> Result<(), ServiceError> {
    let Some(record) = app.store.find_client(CINEMA_WEB).await? else {
        return Ok(());
    };
    let mut client = Client::from_record(record);
    let wanted = (
        app.config.cinema_web_redirect_uris.clone(),
        app.config.cinema_web_post_logout_redirect_uris.clone(),
    );
    if (
        client.redirect_uris.clone(),
        client.post_logout_redirect_uris.clone(),
    ) == wanted
    {
        return Ok(());
    }
    client.redirect_uris = wanted.0;
    client.post_logout_redirect_uris = wanted.1;
    client.updated_at = app.clock.now();
    let change = app.store.update_client(&client.to_record()).await?;
    app.clients.forget(CINEMA_WEB);
    super::feed::publish(app, std::slice::from_ref(&change)).await;
    tracing::info!("cinema-web redirect URIs updated from the configuration");
    Ok(())
}
