//! SQLite implementation of [`Store`]: the embedded default (one file, WAL mode).
//! SQLite has one writer at a time; writers queue in-process on a fair async lock
//! (instead of spinning in SQLite's busy handler, whose sleeps reach 100 ms) and then
//! start with `BEGIN IMMEDIATE`, so a transaction never has to upgrade its lock. A
//! single-statement write takes the same lock (`write_conn`). Reads run in parallel.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::sql;
use super::{
    BlockOutcome, ChangeRecord, ClientRecord, LoginCheck, LoginEventRecord, NewLoginEvent,
    RefreshTokenRecord, RoleChange, RoleRecord, RoleRow, Rotation, SessionRecord, SessionUserRow,
    Store, StoreError, UserRecord, VerifiedLogin,
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

/// A pooled connection holding the writer lock, for a write outside a transaction.
struct WriteConn {
    conn: sqlx::pool::PoolConnection<Db>,
    _writer: OwnedMutexGuard<()>,
}

impl std::ops::Deref for WriteConn {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// Inserts a session with the next creation sequence number (the session list's
/// tie-break); the writer lock makes `max + 1` unique.
/// The user as a login found them: `blocked` when the password hash is still `$2`.
/// The write transaction holds the writer lock, so nothing changes the row meanwhile.
const LOGIN_USER: &str = "select blocked from users where id = $1 and password_hash = $2";

const INSERT_SESSION: &str = "insert into sessions (id, user_id, client_id, scope, \
     started_at, last_used_at, auth_time, expires_at, ip, user_agent, parent_sid, seq) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     (select coalesce(max(seq), 0) + 1 from sessions))";

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
        // A local file cannot go stale: no ping (a round trip to the connection's
        // thread) before every use.
        let mut pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout);
        if is_in_memory(url) {
            // An in-memory database lives as long as a connection to it: keep exactly one,
            // never closed for idleness or age (which would drop every table).
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool.connect_with(options).await.map_err(map_err)?;
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// Applies the migrations, holding the writer lock.
    async fn run_migrations(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let _writer = self.writer.lock().await;
        migrator().run(&self.pool).await
    }

    async fn write_conn(&self) -> Result<WriteConn, StoreError> {
        let writer = self.writer.clone().lock_owned().await;
        let conn = self.pool.acquire().await.map_err(map_err)?;
        Ok(WriteConn {
            conn,
            _writer: writer,
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

/// The success path of a refresh rotation as one batch, so the writer lock is held for a
/// single round trip to the connection's thread: spend the presented token (live,
/// unused, this client's, its session live and its user not blocked), insert the next
/// one only if that update changed a row (`changes()` is the previous statement's
/// count), move the session forward, and read the session with its user. No row means
/// the presented token was not rotated and nothing changed.
const ROTATE_BATCH: &str = "begin immediate; \
     update refresh_tokens set used_at = $3 \
     where token_hash = $1 and client_id = $2 and used_at is null and expires_at > $3 \
     and exists (select 1 from sessions s join users u on u.id = s.user_id \
     where s.id = refresh_tokens.session_id and s.ended_at is null and not u.blocked); \
     insert into refresh_tokens (token_hash, session_id, client_id, created_at, expires_at, \
     used_at) select $4, session_id, $2, $3, $5, null from refresh_tokens \
     where token_hash = $1 and changes() = 1; \
     update sessions set last_used_at = $3, expires_at = $5 \
     where id = (select session_id from refresh_tokens where token_hash = $4); \
     select s.id, s.user_id, s.client_id, s.scope, s.started_at, s.last_used_at, s.auth_time, \
     s.expires_at, s.ip, s.user_agent, s.ended_at, s.end_reason, s.parent_sid, \
     u.login as u_login, u.email as u_email, u.password_hash as u_password_hash, \
     u.superuser as u_superuser, u.blocked as u_blocked, u.created_at as u_created_at, \
     u.updated_at as u_updated_at, u.last_login_at as u_last_login_at \
     from sessions s join users u on u.id = s.user_id \
     where s.id = (select session_id from refresh_tokens where token_hash = $4); \
     commit";

impl SqliteStore {
    /// Rotates `presented` into `next` if it is live ([`ROTATE_BATCH`]); `None` when it
    /// was not rotated (the caller then finds out why, in a transaction of its own).
    /// The batch runs in a task of its own so that a cancelled caller cannot leave the
    /// transaction open; after an error it is rolled back on the same connection.
    async fn rotate_fast(
        &self,
        presented: &str,
        client_id: &str,
        next: &RefreshTokenRecord,
        now: i64,
    ) -> Result<Option<SessionUserRow>, StoreError> {
        let writer = self.writer.clone().lock_owned().await;
        let pool = self.pool.clone();
        let (presented, client_id) = (presented.to_owned(), client_id.to_owned());
        let (next_hash, next_expires) = (next.token_hash.clone(), next.expires_at);
        let task = tokio::spawn(async move {
            let _writer = writer;
            let mut conn = pool.acquire().await.map_err(map_err)?;
            let result = sqlx::query_as::<_, SessionUserRow>(ROTATE_BATCH)
                .bind(presented)
                .bind(client_id)
                .bind(now)
                .bind(next_hash)
                .bind(next_expires)
                .fetch_all(&mut *conn)
                .await;
            match result {
                Ok(rows) => Ok(rows.into_iter().next()),
                Err(e) => {
                    // No transaction open (the error came from `begin`) is fine; any
                    // other failure to roll back retires the connection.
                    if let Err(rollback) = sqlx::query("rollback").execute(&mut *conn).await
                        && !rollback.to_string().contains("no transaction is active")
                    {
                        drop(conn.detach());
                    }
                    Err(map_err(e))
                }
            }
        });
        task.await
            .map_err(|e| StoreError::Other(format!("rotation task: {e}")))?
    }
}

/// True for `sqlite::memory:` and `mode=memory` URLs: a database that exists only in
/// this process, as long as a connection to it is open.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory URL gets one connection that is never closed for idleness or age, so
    /// the database is one and lasts as long as the process, whatever the configured pool
    /// size; a file keeps the configured pool.
    #[tokio::test]
    async fn in_memory_database_keeps_one_connection() {
        for url in [
            "sqlite::memory:",
            "sqlite://usher?mode=memory&cache=private",
        ] {
            let store = SqliteStore::connect(url, 10, Duration::from_secs(2))
                .await
                .unwrap();
            let options = store.pool.options();
            assert_eq!(options.get_max_connections(), 1, "{url}");
            assert_eq!(options.get_min_connections(), 1, "{url}");
            assert_eq!(options.get_idle_timeout(), None, "{url}");
            assert_eq!(options.get_max_lifetime(), None, "{url}");
            store.migrate().await.unwrap();
            assert!(store.find_user("nobody").await.unwrap().is_none());
        }
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("u.db").display());
        let store = SqliteStore::connect(&url, 10, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(store.pool.options().get_max_connections(), 10);
        assert!(store.pool.options().get_idle_timeout().is_some());
    }
}
