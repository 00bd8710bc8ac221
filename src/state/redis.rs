//! Redis [`SharedState`]: shared by every instance. Commands go through a
//! `ConnectionManager` (reconnects by itself); the change feed is a Redis pub/sub
//! channel read by a task that reconnects with backoff and signals `Resync` each time.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

use super::{FeedSignal, SharedState, StateError};

/// Timeout of one Redis command or connection attempt.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Redis-backed shared state.
#[derive(Clone)]
pub struct RedisState {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> StateError {
    StateError::Unavailable(e.to_string())
}

impl RedisState {
    /// Connects to `url`; every key and the channel are prefixed `<prefix>:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StateError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            TIMEOUT * 2,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| StateError::Unavailable("connection timed out".into()))?
        .map_err(unavailable)?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}:changes", self.prefix)
    }
}

#[async_trait]
impl SharedState for RedisState {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StateError> {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn put_ttl(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StateError> {
        let mut c = self.conn.clone();
        let ms = ttl.as_millis().max(1) as u64;
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        let mut c = self.conn.clone();
        c.get(self.key(key)).await.map_err(unavailable)
    }

    async fn take(&self, key: &str) -> Result<Option<String>, StateError> {
        let mut c = self.conn.clone();
        redis::cmd("GETDEL")
            .arg(self.key(key))
            .query_async(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        let mut c = self.conn.clone();
        c.del::<_, ()>(self.key(key)).await.map_err(unavailable)
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StateError> {
        let mut c = self.conn.clone();
        let k = self.key(key);
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .incr(&k, 1u64)
            .cmd("PEXPIRE")
            .arg(&k)
            .arg(window.as_millis().max(1) as u64)
            .arg("NX")
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(n)
    }

    async fn publish(&self, payload: &str) -> Result<(), StateError> {
        let mut c = self.conn.clone();
        c.publish::<_, _, ()>(self.channel(), payload)
            .await
            .map_err(unavailable)
    }

    fn subscribe(&self) -> mpsc::Receiver<FeedSignal> {
        let (tx, rx) = mpsc::channel(1024);
        let client = self.client.clone();
        let channel = self.channel();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                if tx.is_closed() {
                    return;
                }
                match tokio::time::timeout(TIMEOUT, client.get_async_pubsub()).await {
                    Ok(Ok(mut pubsub)) => {
                        if pubsub.subscribe(&channel).await.is_ok() {
                            backoff = Duration::from_millis(100);
                            tracing::info!("change feed subscribed");
                            if tx.send(FeedSignal::Resync).await.is_err() {
                                return;
                            }
                            let mut messages = pubsub.on_message();
                            while let Some(msg) = messages.next().await {
                                let Ok(payload) = msg.get_payload::<String>() else {
                                    continue;
                                };
                                if tx.send(FeedSignal::Message(payload)).await.is_err() {
                                    return;
                                }
                            }
                            tracing::warn!("change feed subscription lost; reconnecting");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "change feed: cannot connect"),
                    Err(_) => tracing::warn!("change feed: connection timed out"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
        rx
    }
}
