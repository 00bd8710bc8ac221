//! usher: the cinema's OAuth 2.0 / OpenID Connect provider.
//!
//! Layers, calling only downward: [`http`] → [`service`] → [`store`], [`state`],
//! [`token`]. [`AppState`] carries the trait objects every layer needs.

pub mod app_state;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod keystore;
pub mod service;
pub mod state;
pub mod store;
pub mod templates;
pub mod token;

use std::net::SocketAddr;
use std::time::Duration;

pub use app_state::AppState;
pub use http::build_router;

/// How often expired rows are deleted.
const JANITOR_INTERVAL: Duration = Duration::from_secs(600);
/// How often the keys directory is re-read.
const KEYS_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// Starts the background tasks of one instance: the change-feed listener and the
/// janitor that prunes expired refresh tokens and old feed entries.
pub fn spawn_background(app: &AppState) {
    tokio::spawn(service::feed::run(app.clone()));
    let keys_app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEYS_RELOAD_INTERVAL);
        loop {
            tick.tick().await;
            match keys_app.keys.reload(keys_app.clock.now()) {
                Ok(true) => tracing::info!(
                    kid = %keys_app.keys.current().signing_key().kid,
                    "signing keys reloaded"
                ),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "keys directory unreadable; keeping the current keys")
                }
            }
        }
    });
    let app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(JANITOR_INTERVAL);
        loop {
            tick.tick().await;
            let now = app.clock.now();
            let cutoff = now - app.config.change_retention().as_secs() as i64;
            if let Err(e) = app.store.prune(now, cutoff).await {
                tracing::warn!(error = %e, "janitor: prune failed");
            }
        }
    });
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    app: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = build_router(app);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
