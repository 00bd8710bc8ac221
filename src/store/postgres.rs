//! PostgreSQL implementation of [`Store`], for production and several instances.
//! Feed entries take a transaction-scoped advisory lock so that `seq` order is commit
//! order: a reader that has seen `seq = n` has seen every entry below it.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use super::sql;
use super::{
    ChangeRecord, ClientRecord, LoginEventRecord, NewLoginEvent, RefreshTokenRecord, RoleRecord,
    RoleRow, Rotation, SessionRecord, SessionUserRow, Store, StoreError, UserRecord,
};

type Db = Postgres;

/// Advisory lock key serialising writers of the `changes` table.
const CHANGES_LOCK: i64 = 0x7573_6865_7201;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// A write transaction (PostgreSQL orders writers itself).
struct WriteTx {
    tx: sqlx::Transaction<'static, Db>,
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl PgStore {
    /// Connects to `url`; fails if the server cannot be reached now.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        use sqlx::ConnectOptions;
        let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|_| {
            StoreError::Other("the database URL is not a valid postgres:// URL".into())
        })?;
        // One direct connection first: its error names the cause (refused, unknown host,
        // authentication), where the pool would only report a timeout.
        let probe = tokio::time::timeout(acquire_timeout, options.connect())
            .await
            .map_err(|_| StoreError::Unavailable("connection timed out".into()))?
            .map_err(map_err)?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }
}

fn migrator() -> &'static sqlx::migrate::Migrator {
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
    &MIGRATOR
}

impl PgStore {
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(WriteTx {
            tx: self.pool.begin().await.map_err(map_err)?,
        })
    }
}

/// The last value of the identity sequence of `changes.seq` (never lowered by deletes).
const CHANGE_SEQ_HIGH_WATER: &str = "select coalesce((select s.last_value from pg_sequences s \
     where format('%I.%I', s.schemaname, s.sequencename) = pg_get_serial_sequence('changes', 'seq')), 0)";

async fn lock_changes(tx: &mut WriteTx) -> Result<(), StoreError> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(CHANGES_LOCK)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(map_err)
}

/// Maps a sqlx error; unique violations carry the constraint name.
fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict {
                    constraint: db.constraint().unwrap_or("unknown").to_owned(),
                };
            }
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // Class 08 connection exceptions, 57P operator intervention (shutdown, restart),
            // 53 insufficient resources.
            if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                StoreError::Unavailable(db.message().to_owned())
            } else {
                StoreError::Other(db.message().to_owned())
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

impl_store!(PgStore, "postgres");
