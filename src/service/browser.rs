//! Browser sessions (the cookie of usher's own pages): where their records live. With
//! Redis configured they live there, next to the rest of the shared state; otherwise in
//! the database. A record is opaque JSON with an expiry. The login inside a record is
//! only trusted while its usher session has not ended (see the change feed).

use std::time::Duration;

use super::ServiceError;
use crate::AppState;

fn key(id: &str) -> String {
    format!("browser:{id}")
}

fn ttl(app: &AppState, expires_at: i64) -> Duration {
    Duration::from_secs((expires_at - app.clock.now()).max(1) as u64)
}

fn uses_redis(app: &AppState) -> bool {
    app.state.backend() == "redis"
}

/// Stores (or replaces) a record until `expires_at`.
pub async fn save(
    app: &AppState,
    id: &str,
    data: &str,
    expires_at: i64,
) -> Result<(), ServiceError> {
    if uses_redis(app) {
        Ok(app
            .state
            .put_ttl(&key(id), data, ttl(app, expires_at))
            .await?)
    } else {
        Ok(app.store.save_browser_session(id, data, expires_at).await?)
    }
}

/// Stores a new record; `false` when the id is already taken.
pub async fn create(
    app: &AppState,
    id: &str,
    data: &str,
    expires_at: i64,
) -> Result<bool, ServiceError> {
    if uses_redis(app) {
        if app.state.get(&key(id)).await?.is_some() {
            return Ok(false);
        }
        app.state
            .put_ttl(&key(id), data, ttl(app, expires_at))
            .await?;
        Ok(true)
    } else {
        Ok(app
            .store
            .create_browser_session(id, data, expires_at)
            .await?)
    }
}

/// A live record.
pub async fn load(app: &AppState, id: &str) -> Result<Option<String>, ServiceError> {
    if uses_redis(app) {
        Ok(app.state.get(&key(id)).await?)
    } else {
        Ok(app.store.load_browser_session(id, app.clock.now()).await?)
    }
}

/// Deletes a record.
pub async fn delete(app: &AppState, id: &str) -> Result<(), ServiceError> {
    if uses_redis(app) {
        Ok(app.state.delete(&key(id)).await?)
    } else {
        Ok(app.store.delete_browser_session(id).await?)
    }
}
