//! tower-sessions glue: a `SessionStore` whose records go through
//! [`crate::service::browser`] (database or Redis), and the session layer of the pages:
//! cookie `usher_session`, `HttpOnly`, `SameSite=Lax`, `Secure` when the issuer is https.

use async_trait::async_trait;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};

use crate::AppState;
use crate::service::browser;

/// Name of the browser-session cookie.
pub const COOKIE: &str = "usher_session";

/// The store of browser-session records.
#[derive(Clone)]
pub struct BrowserStore(pub AppState);

impl std::fmt::Debug for BrowserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrowserStore")
    }
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for BrowserStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        loop {
            let data = serde_json::to_string(&record).map_err(|e| Error::Encode(e.to_string()))?;
            let expires = record.expiry_date.unix_timestamp();
            if browser::create(&self.0, &record.id.to_string(), &data, expires)
                .await
                .map_err(backend)?
            {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let data = serde_json::to_string(record).map_err(|e| Error::Encode(e.to_string()))?;
        browser::save(
            &self.0,
            &record.id.to_string(),
            &data,
            record.expiry_date.unix_timestamp(),
        )
        .await
        .map_err(backend)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        match browser::load(&self.0, &id.to_string())
            .await
            .map_err(backend)?
        {
            Some(data) => Ok(serde_json::from_str(&data).ok()),
            None => Ok(None),
        }
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        browser::delete(&self.0, &id.to_string())
            .await
            .map_err(backend)
    }
}

/// The session layer of usher's pages.
pub fn layer(app: &AppState) -> SessionManagerLayer<BrowserStore> {
    let ttl = time::Duration::seconds(app.config.browser_session_ttl.as_secs() as i64);
    SessionManagerLayer::new(BrowserStore(app.clone()))
        .with_name(COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(app.config.issuer.starts_with("https://"))
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(ttl))
}
