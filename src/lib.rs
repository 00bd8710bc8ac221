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

/// Serves `app` on `listener` (HTTP/1.1) until `shutdown` resolves, then lets the
/// requests in flight finish. Unlike `axum::serve`, a connection that has not sent a
/// request's headers within `header_read_timeout` is closed, so slow-header clients
/// cannot hold connections open; every request carries the peer's [`ConnectInfo`].
///
/// [`ConnectInfo`]: axum::extract::ConnectInfo
pub async fn serve(
    app: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let header_read_timeout = app.config.header_read_timeout;
    let router = build_router(app);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: the error says why; wait a
                    // little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                tower_service::Service::call(&mut router.clone(), request)
            },
        );
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
