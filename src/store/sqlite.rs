//! SQLite implementation of [`Store`]: the embedded default (one file, WAL mode).
//! SQLite has one writer at a time; writers queue in-process on a fair async lock
//! (instead of spinning in SQLite's busy handler, whose sleeps reach 100 ms) and then
//! start with `BEGIN IMMEDIATE`, so a transaction never has to upgrade its lock. Reads
//! run in parallel.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::sql;
use super::{
    ChangeRecord, ClientRecord, LoginEventRecord, NewLoginEvent, RefreshTokenRecord, RoleRecord,
    RoleRow, Rotation, SessionRecord, SessionUserRow, Store, StoreError, UserRecord,
};

type Db = Sqlite;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Arc<Mutex<()>>,
}

/// A write transaction holding the writer lock until it commits or is dropped.
struct WriteTx {
    tx: sqlx::Transaction<'static, Db>,
    _writer: OwnedMutexGuard<()>,
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let writer = self.writer.clone().lock_owned().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok(WriteTx {
            tx,
            _writer: writer,
        })
    }
}

fn migrator() -> &'static sqlx::migrate::Migrator {
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
    &MIGRATOR
}

/// The `changes` autoincrement counter (never lowered by deletes).
const CHANGE_SEQ_HIGH_WATER: &str =
    "select coalesce((select seq from sqlite_sequence where name = 'changes'), 0)";

/// SQLite has one writer at a time: the immediate transaction already orders feed entries.
async fn lock_changes(_tx: &mut WriteTx) -> Result<(), StoreError> {
    Ok(())
}

/// Maps a sqlx error; SQLite names a unique violation by `table.column` in its message.
fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                let msg = db.message();
                let constraint = msg
                    .rsplit(": ")
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .replace('.', "_");
                // Named like the PostgreSQL constraint: `<table>_<column>`, `_key`-suffixed.
                let constraint = if constraint.ends_with("_key") {
                    constraint
                } else {
                    format!("{constraint}_key")
                };
                return StoreError::Conflict { constraint };
            }
            // Primary result codes SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_IOERR (10) and
            // SQLITE_CANTOPEN (14), with any extended code, mean "cannot serve now".
            let primary = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            if matches!(primary, Some(5 | 6 | 10 | 14)) {
                StoreError::Unavailable(db.message().to_owned())
            } else {
                StoreError::Other(db.message().to_owned())
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

impl_store!(SqliteStore, "sqlite");
