//! Durable storage: the [`Store`] trait, its record types and [`StoreError`].
//! Two implementations, SQLite ([`sqlite`]) and PostgreSQL ([`postgres`]), share the
//! portable statements of [`sql`]. Calls nothing above it; no axum types here, and no
//! sqlx types leave this module.
//!
//! Times are Unix seconds (`i64`), ids are text. Every method that changes more than
//! one row runs in one transaction: a failure leaves the data as it was.

use async_trait::async_trait;

#[macro_use]
mod common;

pub mod postgres;
pub mod sql;
pub mod sqlite;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the operation needs does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; `constraint` is its PostgreSQL name
    /// (`users_login_key`), derived the same way on SQLite.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The violated constraint.
        constraint: String,
    },
    /// The database cannot be reached (connection refused, pool timeout, closed pool).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a corrupt row.
    #[error("database error: {0}")]
    Other(String),
}

/// A user account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    /// Stable id (UUID); the `sub` of tokens.
    pub id: String,
    /// Login as the user wrote it.
    pub login: String,
    /// Optional e-mail address as written.
    pub email: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Allowed everything.
    pub superuser: bool,
    /// Logins refused, sessions ended.
    pub blocked: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change of login, e-mail, password or flags.
    pub updated_at: i64,
    /// Last successful login.
    pub last_login_at: Option<i64>,
}

/// A registered OAuth client. List-valued members are stored as text (see field docs).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRecord {
    /// The client identifier.
    pub client_id: String,
    /// Human-readable name.
    pub client_name: String,
    /// SHA-256 (hex) of the client secret; `None` for public clients.
    pub secret_hash: Option<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// Space-separated grant types.
    pub grant_types: String,
    /// JSON array of redirect URIs.
    pub redirect_uris: String,
    /// JSON array of post-logout redirect URIs.
    pub post_logout_redirect_uris: String,
    /// Space-separated scopes the client may ask for.
    pub scope: String,
    /// No consent screen.
    pub first_party: bool,
    /// Created by a migration; cannot be deleted.
    pub builtin: bool,
    /// Registration time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A login session (`sid`): from a successful login until it ends.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    /// The session id (`sid` claim).
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The client the login went through.
    pub client_id: String,
    /// Scope granted at login (space-separated).
    pub scope: String,
    /// Start of the session.
    pub started_at: i64,
    /// Last login or refresh.
    pub last_used_at: i64,
    /// Time the user last entered their password for this session.
    pub auth_time: i64,
    /// When the current refresh token expires; the session is dead after that.
    pub expires_at: i64,
    /// Client IP at login (no port).
    pub ip: Option<String>,
    /// User agent at login, truncated.
    pub user_agent: Option<String>,
    /// When it ended, if it did.
    pub ended_at: Option<i64>,
    /// Why it ended: `logout`, `logout_others`, `password_change`, `refresh_token_reuse`, ...
    pub end_reason: Option<String>,
    /// The browser session this session was opened through (authorization code flow).
    pub parent_sid: Option<String>,
}

/// A role and its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    /// Id (UUID).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Created by a migration: never deleted or renamed.
    pub builtin: bool,
    /// Permissions, sorted.
    pub permissions: Vec<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A change to a role: each `None` member keeps its stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleChange {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New permissions (the whole set, sorted).
    pub permissions: Option<Vec<String>>,
}

/// A row of `roles` (permissions apart).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Built-in flag.
    pub builtin: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A session joined with its user (one read during refresh rotation).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionUserRow {
    /// The session.
    #[sqlx(flatten)]
    pub session: SessionRecord,
    /// `users.login`.
    pub u_login: String,
    /// `users.email`.
    pub u_email: Option<String>,
    /// `users.password_hash`.
    pub u_password_hash: String,
    /// `users.superuser`.
    pub u_superuser: bool,
    /// `users.blocked`.
    pub u_blocked: bool,
    /// `users.created_at`.
    pub u_created_at: i64,
    /// `users.updated_at`.
    pub u_updated_at: i64,
    /// `users.last_login_at`.
    pub u_last_login_at: Option<i64>,
}

impl SessionUserRow {
    /// Splits the row into its session and user.
    pub fn split(self) -> (SessionRecord, UserRecord) {
        let user = UserRecord {
            id: self.session.user_id.clone(),
            login: self.u_login,
            email: self.u_email,
            password_hash: self.u_password_hash,
            superuser: self.u_superuser,
            blocked: self.u_blocked,
            created_at: self.u_created_at,
            updated_at: self.u_updated_at,
            last_login_at: self.u_last_login_at,
        };
        (self.session, user)
    }
}

/// A refresh token as stored: only its hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRecord {
    /// SHA-256 hex of the token.
    pub token_hash: String,
    /// The session it belongs to.
    pub session_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Issue time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// When it was exchanged; a second exchange is a reuse.
    pub used_at: Option<i64>,
}

/// One login attempt against an existing login.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginEventRecord {
    /// Monotonic id (pagination cursor).
    pub id: i64,
    /// The user.
    pub user_id: String,
    /// Time of the attempt.
    pub at: i64,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent, truncated.
    pub user_agent: Option<String>,
    /// `password_grant` or `login_page`.
    pub method: String,
    /// `success`, `bad_credentials`, `blocked` or `locked_out`.
    pub outcome: String,
}

/// A login attempt to record.
#[derive(Debug, Clone)]
pub struct NewLoginEvent {
    /// The user.
    pub user_id: String,
    /// Time of the attempt.
    pub at: i64,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent, truncated.
    pub user_agent: Option<String>,
    /// `password_grant` or `login_page`.
    pub method: &'static str,
    /// `success`, `bad_credentials`, `blocked` or `locked_out`.
    pub outcome: &'static str,
}

/// One entry of the change feed: a durable record of something every instance must see.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ChangeRecord {
    /// Position in the feed; commit order.
    pub seq: i64,
    /// `session_ended`, `roles_changed`, `client_changed` or `token_revoked`.
    pub kind: String,
    /// The session concerned (`session_ended`).
    pub sid: Option<String>,
    /// The user (or client) concerned.
    pub sub: Option<String>,
    /// Time of the change.
    pub at: i64,
    /// The revoked access token (`token_revoked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Result of presenting a refresh token.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per token request, never stored"
)]
pub enum Rotation {
    /// The token was live: it is now used and `next` is stored in its place.
    Rotated {
        /// The session, `last_used_at` and `expires_at` updated.
        session: SessionRecord,
        /// The session's user.
        user: UserRecord,
    },
    /// The token had been used before: its session is now ended (theft, RFC 9700 §4.14).
    Reused {
        /// The entries of the sessions it ended (empty if they had already ended).
        ended: Vec<ChangeRecord>,
    },
    /// Unknown, expired, issued to another client, or its session or user is no longer valid.
    Invalid,
}

/// The outcome of [`Store::set_blocked`].
#[derive(Debug)]
pub enum BlockOutcome {
    /// The flag is set: the user as stored now, and the feed entries written.
    Set(UserRecord, Vec<ChangeRecord>),
    /// Blocking refused, nothing written: the user is a superuser (at the moment of the
    /// update itself, so a concurrent promotion cannot leave a blocked superuser).
    SuperuserProtected,
}

/// A password login that a new session rests on: the session is started only while
/// the user still has the password hash the password was checked against and is not
/// blocked (a password change, a block or a superuser promotion may have committed
/// while the password was being hashed).
#[derive(Debug, Clone)]
pub struct VerifiedLogin {
    /// The `success` event to record with the session.
    pub event: NewLoginEvent,
    /// The stored hash the password was verified against.
    pub password_hash: String,
}

/// The outcome of [`Store::start_session`] and [`Store::reauthenticate_session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCheck {
    /// The user is as the login found them: the session is written.
    Current,
    /// The user has been blocked since: nothing written.
    Blocked,
    /// The password changed since (or the user is gone): nothing written.
    PasswordChanged,
}

/// Durable storage of usher.
///
/// Every method is atomic. `NotFound` is only returned where documented; lookups return
/// `Option`. Expired rows are treated as absent where a method says so.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Round trip to the database (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Inserts a user. `Conflict` on `users_login_key` or `users_email_key` (both compared
    /// lower-cased).
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;

    /// The user with this id.
    async fn find_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The user with this login, compared case-insensitively.
    async fn find_user_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Sets login and e-mail. `NotFound` for an unknown user; `Conflict` as for insert.
    async fn update_user_profile(
        &self,
        id: &str,
        login: &str,
        email: Option<&str>,
        now: i64,
    ) -> Result<UserRecord, StoreError>;

    /// Sets the password hash and ends every live session of the user except `keep_sid`,
    /// in one transaction; returns the feed entries of the ended sessions.
    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_sid: Option<&str>,
        now: i64,
    ) -> Result<Vec<ChangeRecord>, StoreError>;

    /// Creates `user` as a superuser, or, when its login exists, makes that user a
    /// superuser, sets its password and ends its sessions. Returns the stored user,
    /// whether it was created, and the feed entries: for a promotion, those of the ended
    /// sessions and a `roles_changed` entry for the user (so that running instances
    /// drop what they cached of them).
    async fn upsert_superuser(
        &self,
        user: &UserRecord,
        now: i64,
    ) -> Result<(UserRecord, bool, Vec<ChangeRecord>), StoreError>;

    /// The client with this id.
    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;

    /// Starts a session: inserts it with its first refresh token (none for a browser
    /// session) and, for a password `login`, records its successful login event and the
    /// user's `last_login_at`, in one transaction. With a `login`, the user is re-read
    /// first inside the transaction (on PostgreSQL the row is locked `for no key update`, so a
    /// concurrent password change or block waits for the session and then ends it): a
    /// user blocked since, or whose password hash is no longer the verified one, gets
    /// `Blocked` or `PasswordChanged` and nothing is written.
    async fn start_session(
        &self,
        session: &SessionRecord,
        refresh: Option<&RefreshTokenRecord>,
        login: Option<&VerifiedLogin>,
    ) -> Result<LoginCheck, StoreError>;

    /// Records a fresh login of the same user in the live session `sid` (signing in again
    /// in the same browser): `auth_time` and `last_used_at` become `login.event.at`, the
    /// expiry `expires_at`, and the login event and the user's `last_login_at` are
    /// recorded, in one transaction. `None`, with nothing written, when the session has
    /// ended or expired, or when the user is no longer as the login found them (blocked,
    /// password changed: checked as in [`Store::start_session`]).
    async fn reauthenticate_session(
        &self,
        sid: &str,
        expires_at: i64,
        login: &VerifiedLogin,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Exchanges the refresh token whose hash is `presented` for `next` (whose `session_id`
    /// is ignored and taken from the presented token). One conditional update marks the
    /// presented token used, so of two concurrent exchanges exactly one rotates; the other
    /// sees a used token, which ends the session (`Reused`). A token issued to another
    /// client, expired, of an ended or expired session or of a blocked user is `Invalid`
    /// and changes nothing.
    async fn rotate_refresh_token(
        &self,
        presented: &str,
        client_id: &str,
        next: &RefreshTokenRecord,
        now: i64,
    ) -> Result<Rotation, StoreError>;

    /// The session id of the refresh token with this hash, used or not.
    async fn find_refresh_session(&self, token_hash: &str) -> Result<Option<String>, StoreError>;

    /// The session with this id, ended or not.
    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// The user's sessions that have not ended and whose refresh token has not expired,
    /// newest first.
    async fn list_active_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Ends the session `sid` of `user_id` with its family (its parent browser session and
    /// the sessions opened through it). Empty if it is not that user's or has already
    /// ended.
    async fn end_session(
        &self,
        sid: &str,
        user_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<Vec<ChangeRecord>, StoreError>;

    /// Ends every live session of the user except the family of `except` (that session,
    /// its parent and their children: the caller's device); returns their feed entries.
    async fn end_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<Vec<ChangeRecord>, StoreError>;

    /// Records a login attempt.
    async fn record_login_event(&self, event: &NewLoginEvent) -> Result<(), StoreError>;

    /// The user's login attempts with id below `before` (all if `None`), newest first.
    async fn list_login_events(
        &self,
        user_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<LoginEventRecord>, StoreError>;

    /// Feed entries with `seq > after`, in order, at most `limit`.
    async fn changes_after(&self, after: i64, limit: i64) -> Result<Vec<ChangeRecord>, StoreError>;

    /// Feed entries at or after time `since`, in order (rebuilding a view at start).
    async fn changes_since(&self, since: i64) -> Result<Vec<ChangeRecord>, StoreError>;

    /// The highest `seq` ever written (0 when none).
    async fn last_change_seq(&self) -> Result<i64, StoreError>;

    /// The highest `seq` ever allocated, including entries since pruned (0 when none):
    /// a feed position above it was never issued by this database.
    async fn change_seq_high_water(&self) -> Result<i64, StoreError>;

    /// The database's feed epoch: stores `candidate` if none is stored yet, then returns
    /// the stored one (so concurrent first starts agree). Never changes afterwards.
    async fn feed_epoch(&self, candidate: &str) -> Result<String, StoreError>;

    /// Deletes refresh tokens that expired before `now` and feed entries older than
    /// `changes_before`.
    async fn prune(&self, now: i64, changes_before: i64) -> Result<(), StoreError>;

    /// Every role with its permissions, by name.
    async fn list_roles(&self) -> Result<Vec<RoleRecord>, StoreError>;

    /// One role.
    async fn find_role(&self, id: &str) -> Result<Option<RoleRecord>, StoreError>;

    /// Inserts a role with its permissions; `Conflict` on `roles_name_key`. Writes a
    /// `roles_changed` feed entry.
    async fn insert_role(&self, role: &RoleRecord) -> Result<ChangeRecord, StoreError>;

    /// Changes the members of a role that `change` supplies, in one transaction: a member
    /// it does not supply keeps its stored value, whatever another change committed
    /// meanwhile (two concurrent changes of different members both take effect). Returns
    /// the role as stored afterwards. `NotFound`; `Conflict` on `roles_name_key`.
    /// Writes a `roles_changed` feed entry.
    async fn update_role(
        &self,
        id: &str,
        change: &RoleChange,
        now: i64,
    ) -> Result<(RoleRecord, ChangeRecord), StoreError>;

    /// Deletes a role (and so its assignments); `Ok(None)` if it did not exist.
    async fn delete_role(&self, id: &str, now: i64) -> Result<Option<ChangeRecord>, StoreError>;

    /// Role ids assigned to a user.
    async fn user_role_ids(&self, user_id: &str) -> Result<Vec<String>, StoreError>;

    /// Assigns a role (idempotent); `NotFound` if the user or role does not exist.
    /// Writes a `roles_changed` entry for the user.
    async fn assign_role(
        &self,
        user_id: &str,
        role_id: &str,
        now: i64,
    ) -> Result<ChangeRecord, StoreError>;

    /// Removes a role from a user (idempotent). Writes a `roles_changed` entry.
    async fn unassign_role(
        &self,
        user_id: &str,
        role_id: &str,
        now: i64,
    ) -> Result<ChangeRecord, StoreError>;

    /// Users whose lower-cased login starts with `prefix` and sorts after `after`, by
    /// login, at most `limit`.
    async fn list_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UserRecord>, StoreError>;

    /// Blocks or unblocks a user. Blocking ends every live session. Writes the
    /// `session_ended` entries and a `roles_changed` entry for the user. Blocking a
    /// superuser is `SuperuserProtected` (one conditional update, so a promotion racing
    /// the block cannot end with a blocked superuser). `NotFound`.
    async fn set_blocked(
        &self,
        user_id: &str,
        blocked: bool,
        now: i64,
    ) -> Result<BlockOutcome, StoreError>;

    /// Every client, by id.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Registers a client; `Conflict` on `clients_client_id_key`.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;

    /// Replaces a client's metadata (and secret hash); `NotFound`. Writes a
    /// `client_changed` entry.
    async fn update_client(&self, client: &ClientRecord) -> Result<ChangeRecord, StoreError>;

    /// Deletes a client and ends every session opened through it; `Ok(None)` if it did
    /// not exist. Returns the feed entries (sessions, then `client_changed`).
    async fn delete_client(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<Option<Vec<ChangeRecord>>, StoreError>;

    /// Records the revocation of an access token that has no session (`token_revoked`).
    async fn revoke_jti(
        &self,
        jti: &str,
        client_id: &str,
        now: i64,
    ) -> Result<ChangeRecord, StoreError>;

    /// Ends a session and its family whoever owns it; empty if unknown or already ended.
    async fn end_session_by_id(
        &self,
        sid: &str,
        reason: &str,
        now: i64,
    ) -> Result<Vec<ChangeRecord>, StoreError>;

    /// Ends a session and the sessions opened through it, whoever owns it, but not the
    /// browser session it was itself opened through (RFC 7009 revocation by one
    /// client). Empty if unknown or already ended.
    async fn end_session_and_children(
        &self,
        sid: &str,
        reason: &str,
        now: i64,
    ) -> Result<Vec<ChangeRecord>, StoreError>;

    /// Stores a browser session record (insert or replace).
    async fn save_browser_session(
        &self,
        id: &str,
        data: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Inserts a browser session record; `false` if the id is taken.
    async fn create_browser_session(
        &self,
        id: &str,
        data: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError>;

    /// A live browser session record.
    async fn load_browser_session(&self, id: &str, now: i64) -> Result<Option<String>, StoreError>;

    /// Deletes a browser session record.
    async fn delete_browser_session(&self, id: &str) -> Result<(), StoreError>;

    /// The scope a user granted a client, if any.
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Records (or replaces) a user's consent to a client for `scope`.
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// A user's consents: (client id, scope, time), by client.
    async fn list_consents(&self, user_id: &str) -> Result<Vec<(String, String, i64)>, StoreError>;

    /// Withdraws a consent and ends the user's live sessions with that client (only
    /// those: not the browser sessions they were opened through), in one transaction;
    /// returns the feed entries of the ended sessions.
    async fn delete_consent(
        &self,
        user_id: &str,
        client_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<Vec<ChangeRecord>, StoreError>;

    /// The refresh token with this hash.
    async fn find_refresh(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;
}
