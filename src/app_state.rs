//! [`AppState`]: what every handler and service function receives, built once in `main`
//! (or by the test harness) from trait objects, as axum's dependency-injection example
//! advises.

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::config::Config;
use crate::keystore::{KeyError, KeyStore};
use crate::service::ServiceError;
use crate::service::authz::AuthzView;
use crate::service::bearer::VerifiedCache;
use crate::service::clients::ClientCache;
use crate::service::feed::ChangeFeed;
use crate::service::passwords::PasswordHasher;
use crate::service::revocation_feed::FeedHub;
use crate::state::memory::MemoryState;
use crate::state::redis::RedisState;
use crate::state::{SharedState, StateError};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Verified tokens remembered by the bearer check.
const VERIFIED_CACHE_SIZE: u64 = 50_000;

/// Shared application state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Shared TTL state and the change channel.
    pub state: Arc<dyn SharedState>,
    /// Signing keys (re-read from the keys directory every minute).
    pub keys: Arc<KeyStore>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// The argon2 pool.
    pub hasher: Arc<PasswordHasher>,
    /// This process's view of the change feed.
    pub feed: Arc<ChangeFeed>,
    /// Tokens already verified.
    pub verified: VerifiedCache,
    /// Roles, assignments and user flags, in memory.
    pub authz: Arc<AuthzView>,
    /// Registered clients, in memory.
    pub clients: ClientCache,
    /// The revocation feed's epoch and waiting readers.
    pub revocations: Arc<FeedHub>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .field("state", &self.state.backend())
            .finish_non_exhaustive()
    }
}

/// Why the application could not start. One line each.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(#[from] StoreError),
    /// Redis could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] StateError),
    /// The keys directory is unusable.
    #[error("{0}")]
    Keys(#[from] KeyError),
    /// Service set-up failed.
    #[error("{0}")]
    Service(#[from] ServiceError),
}

/// Opens the configured store and applies its migrations.
pub async fn connect_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let url = config.database_url.expose_secret();
    let store: Arc<dyn Store> = if config.uses_postgres() {
        Arc::new(
            PgStore::connect(
                url,
                config.database_max_connections,
                config.database_timeout,
            )
            .await?,
        )
    } else {
        Arc::new(
            SqliteStore::connect(
                url,
                config.database_max_connections,
                config.database_timeout,
            )
            .await?,
        )
    };
    store.migrate().await?;
    Ok(store)
}

/// Opens the configured shared state: Redis when configured, process memory otherwise.
pub async fn connect_state(config: &Config) -> Result<Arc<dyn SharedState>, StateError> {
    Ok(match &config.redis_url {
        Some(url) => {
            Arc::new(RedisState::connect(url.expose_secret(), &config.redis_prefix).await?)
        }
        None => Arc::new(MemoryState::new()),
    })
}

impl AppState {
    /// Connects everything the configuration names and builds the state.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        let store = connect_store(&config).await?;
        let state = connect_state(&config).await?;
        let keys = KeyStore::open(
            &config.keys_dir,
            config.key_activation_delay.as_secs() as i64,
            clock.now(),
        )?;
        Self::assemble(config, store, state, Arc::new(keys), clock).await
    }

    /// Builds the state from connected parts and loads the change feed's view.
    pub async fn assemble(
        config: Config,
        store: Arc<dyn Store>,
        state: Arc<dyn SharedState>,
        keys: Arc<KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let hasher = PasswordHasher::new(&config)?;
        let retention = config.change_retention();
        let feed = ChangeFeed::new(retention.as_secs() as i64);
        let authz = Arc::new(AuthzView::new());
        authz.reload_roles(store.as_ref()).await?;
        let clients = ClientCache::new();
        {
            let authz = authz.clone();
            feed.on_change(move |c| authz.on_change(c));
            let clients = clients.clone();
            feed.on_change(move |c| clients.on_change(c));
        }
        feed.load(store.as_ref(), clock.now()).await?;
        let verified = VerifiedCache::new(VERIFIED_CACHE_SIZE, config.access_token_ttl);
        let epoch = store
            .feed_epoch(&crate::token::opaque::random_id(16))
            .await?;
        let revocations = Arc::new(FeedHub::new(epoch, &config));
        let app = Self {
            config: Arc::new(config),
            store,
            state,
            keys,
            clock,
            hasher: Arc::new(hasher),
            feed: Arc::new(feed),
            verified,
            authz,
            clients,
            revocations,
        };
        crate::service::clients::apply_builtin_config(&app).await?;
        Ok(app)
    }
}
