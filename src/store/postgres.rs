//! PostgreSQL implementation of [`Store`], for production and several instances.
//! Feed entries take a transaction-scoped advisory lock so that `seq` order is commit
//! order: a reader that has seen `seq = n` has seen every entry below it.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use super::sql;
use super::{
    BlockOutcome, ChangeRecord, ClientRecord, LoginCheck, LoginEventRecord, NewLoginEvent,
    RefreshTokenRecord, RoleChange, RoleRecord, RoleRow, Rotation, SessionRecord, SessionUserRow,
    Store, StoreError, UserRecord, VerifiedLogin,
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

/// The success path of a refresh rotation as one statement (one round trip, atomic on
/// its own): spend the presented token (live, unused, this client's, its session live
/// and its user not blocked), insert the next one, move the session forward and return
/// it with its user. A concurrent rotation of the same token waits for the row lock,
/// then re-checks `used_at is null` and matches nothing. No row means nothing changed.
const ROTATE_ONE: &str = "with spent as (update refresh_tokens set used_at = $3 \
     where token_hash = $1 and client_id = $2 and used_at is null and expires_at > $3 \
     and exists (select 1 from sessions s join users u on u.id = s.user_id \
     where s.id = refresh_tokens.session_id and s.ended_at is null and not u.blocked) \
     returning session_id), \
     issued as (insert into refresh_tokens (token_hash, session_id, client_id, created_at, \
     expires_at, used_at) select $4, session_id, $2, $3, $5, null from spent), \
     moved as (update sessions set last_used_at = $3, expires_at = $5 from spent \
     where sessions.id = spent.session_id returning sessions.*) \
     select s.id, s.user_id, s.client_id, s.scope, s.started_at, s.last_used_at, s.auth_time, \
     s.expires_at, s.ip, s.user_agent, s.ended_at, s.end_reason, s.parent_sid, \
     u.login as u_login, u.email as u_email, u.password_hash as u_password_hash, \
     u.superuser as u_superuser, u.blocked as u_blocked, u.created_at as u_created_at, \
     u.updated_at as u_updated_at, u.last_login_at as u_last_login_at \
     from moved s join users u on u.id = s.user_id";

impl PgStore {
    /// Rotates `presented` into `next` if it is live ([`ROTATE_ONE`]); `None` when it
    /// was not rotated (the caller then finds out why, in a transaction of its own).
    async fn rotate_fast(
        &self,
        presented: &str,
        client_id: &str,
        next: &RefreshTokenRecord,
        now: i64,
    ) -> Result<Option<SessionUserRow>, StoreError> {
        sqlx::query_as::<_, SessionUserRow>(ROTATE_ONE)
            .bind(presented)
            .bind(client_id)
            .bind(now)
            .bind(&next.token_hash)
            .bind(next.expires_at)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(WriteTx {
            tx: self.pool.begin().await.map_err(map_err)?,
        })
    }

    async fn run_migrations(&self) -> Result<(), sqlx::migrate::MigrateError> {
        migrator().run(&self.pool).await
    }

    /// A pooled connection for a write outside a transaction (PostgreSQL needs no lock).
    async fn write_conn(&self) -> Result<sqlx::pool::PoolConnection<Db>, StoreError> {
        self.pool.acquire().await.map_err(map_err)
    }
}

/// Sessions take their creation sequence number from the column's identity default.
const INSERT_SESSION: &str = sql::INSERT_SESSION;

/// The user as a login found them: `blocked` when the password hash is still `$2`. The
/// row is locked `for no key update` until commit: a password change, block or
/// promotion that updates it first makes this wait and re-read the new row (no match:
/// refused); one that comes after waits for the session to commit, then ends it with
/// the others. It is the lock the login's own `last_login_at` update takes, so
/// concurrent logins of one user queue on it instead of deadlocking (two `for share`
/// holders that both go on to update the row would), and it does not block the
/// foreign-key check of the session insert.
const LOGIN_USER: &str =
    "select blocked from users where id = $1 and password_hash = $2 for no key update";

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
