//! Statements portable to SQLite and PostgreSQL (sqlx binds `$N` on both).
//! A statement that only one backend understands lives in that backend's file.

/// Columns of [`super::UserRecord`].
macro_rules! user_cols {
    () => {
        "id, login, email, password_hash, superuser, blocked, created_at, updated_at, last_login_at"
    };
}

/// Columns of [`super::SessionRecord`].
macro_rules! session_cols {
    () => {
        "id, user_id, client_id, scope, started_at, last_used_at, auth_time, expires_at, ip, \
         user_agent, ended_at, end_reason, parent_sid"
    };
}

/// Columns of [`super::ClientRecord`].
macro_rules! client_cols {
    () => {
        "client_id, client_name, secret_hash, token_endpoint_auth_method, grant_types, \
         redirect_uris, post_logout_redirect_uris, scope, first_party, builtin, created_at, \
         updated_at"
    };
}

pub(crate) const PING: &str = "select 1";

pub(crate) const INSERT_USER: &str = "insert into users (id, login, login_key, email, email_key, \
     password_hash, superuser, blocked, created_at, updated_at, last_login_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const FIND_USER: &str = concat!("select ", user_cols!(), " from users where id = $1");
pub(crate) const FIND_USER_BY_LOGIN: &str =
    concat!("select ", user_cols!(), " from users where login_key = $1");
pub(crate) const UPDATE_USER_PROFILE: &str = concat!(
    "update users set login = $2, login_key = $3, email = $4, email_key = $5, updated_at = $6 \
     where id = $1 returning ",
    user_cols!()
);
pub(crate) const SET_PASSWORD: &str =
    "update users set password_hash = $2, updated_at = $3 where id = $1";
pub(crate) const PROMOTE_SUPERUSER: &str = concat!(
    "update users set password_hash = $2, superuser = true, blocked = false, updated_at = $3 \
     where id = $1 returning ",
    user_cols!()
);
pub(crate) const TOUCH_LAST_LOGIN: &str = "update users set last_login_at = $2 where id = $1";

pub(crate) const FIND_CLIENT: &str = concat!(
    "select ",
    client_cols!(),
    " from clients where client_id = $1"
);

/// Inserts a session; `seq` comes from the PostgreSQL identity default (SQLite has its
/// own statement).
pub(crate) const INSERT_SESSION: &str = "insert into sessions (id, user_id, client_id, scope, \
     started_at, last_used_at, auth_time, expires_at, ip, user_agent, parent_sid) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const FIND_SESSION: &str =
    concat!("select ", session_cols!(), " from sessions where id = $1");
pub(crate) const LIST_ACTIVE_SESSIONS: &str = concat!(
    "select ",
    session_cols!(),
    " from sessions where user_id = $1 and ended_at is null and expires_at > $2 \
     order by started_at desc, seq desc"
);
/// A fresh login in a live session: new `auth_time`, `last_used_at` and expiry.
pub(crate) const REAUTHENTICATE_SESSION: &str = concat!(
    "update sessions set auth_time = $2, last_used_at = $2, expires_at = $3 \
     where id = $1 and ended_at is null and expires_at > $2 returning ",
    session_cols!()
);
pub(crate) const TOUCH_SESSION: &str =
    "update sessions set last_used_at = $2, expires_at = $3 where id = $1";
/// Ends a session's family: the session, its parent (the browser session it was opened
/// through) and its children (sessions opened through it).
pub(crate) const END_SESSION_FAMILY: &str = "update sessions set ended_at = $2, end_reason = $3 \
     where ended_at is null and (id = $1 or parent_sid = $1 \
     or id = (select s.parent_sid from sessions s where s.id = $1)) returning id, user_id";
/// Ends a session and its children (sessions opened through it), not its parent: a
/// client revoking its token must not end the browser session it was opened through.
pub(crate) const END_SESSION_AND_CHILDREN: &str = "update sessions set ended_at = $2, \
     end_reason = $3 where ended_at is null and (id = $1 or parent_sid = $1) \
     returning id, user_id";
pub(crate) const LIVE_SESSION_OWNER: &str =
    "select user_id from sessions where id = $1 and ended_at is null";
pub(crate) const SESSION_PARENT: &str = "select parent_sid from sessions where id = $1";
/// Ends every live session of a user outside the kept family ($2 = kept sid, $5 = its
/// parent; `!` when absent, which no id equals).
pub(crate) const END_USER_SESSIONS: &str = "update sessions set ended_at = $3, end_reason = $4 \
     where user_id = $1 and ended_at is null and expires_at > $3 \
     and id <> $2 and coalesce(parent_sid, '') <> $2 \
     and id <> $5 and coalesce(parent_sid, '') <> $5 returning id";

pub(crate) const INSERT_REFRESH: &str = "insert into refresh_tokens (token_hash, session_id, \
     client_id, created_at, expires_at, used_at) values ($1, $2, $3, $4, $5, null)";
/// The single conditional update that decides a rotation race.
pub(crate) const MARK_REFRESH_USED: &str = "update refresh_tokens set used_at = $3 \
     where token_hash = $1 and client_id = $2 and used_at is null and expires_at > $3 \
     returning session_id";
pub(crate) const FIND_REFRESH: &str = "select token_hash, session_id, client_id, created_at, \
     expires_at, used_at from refresh_tokens where token_hash = $1";

pub(crate) const INSERT_LOGIN_EVENT: &str = "insert into login_events (user_id, at, ip, \
     user_agent, method, outcome) values ($1, $2, $3, $4, $5, $6)";
pub(crate) const LIST_LOGIN_EVENTS: &str = "select id, user_id, at, ip, user_agent, method, \
     outcome from login_events where user_id = $1 and id < $2 order by id desc limit $3";

pub(crate) const INSERT_CHANGE: &str = "insert into changes (kind, sid, sub, at, jti) \
     values ($1, $2, $3, $4, $5) returning seq, kind, sid, sub, at, jti";
pub(crate) const CHANGES_AFTER: &str =
    "select seq, kind, sid, sub, at, jti from changes where seq > $1 order by seq limit $2";
pub(crate) const CHANGES_SINCE: &str =
    "select seq, kind, sid, sub, at, jti from changes where at >= $1 order by seq";
pub(crate) const LAST_CHANGE_SEQ: &str = "select coalesce(max(seq), 0) from changes";
pub(crate) const INSERT_FEED_EPOCH: &str =
    "insert into feed_epoch (id, epoch) values (1, $1) on conflict (id) do nothing";
pub(crate) const FEED_EPOCH: &str = "select epoch from feed_epoch where id = 1";

pub(crate) const PRUNE_REFRESH: &str = "delete from refresh_tokens where expires_at < $1";
pub(crate) const PRUNE_CHANGES: &str = "delete from changes where at < $1";

pub(crate) const LIST_ROLES: &str =
    "select id, name, description, builtin, created_at, updated_at from roles order by name";
pub(crate) const FIND_ROLE: &str =
    "select id, name, description, builtin, created_at, updated_at from roles where id = $1";
pub(crate) const LIST_ROLE_PERMISSIONS: &str =
    "select role_id, permission from role_permissions order by permission";
pub(crate) const FIND_ROLE_PERMISSIONS: &str =
    "select role_id, permission from role_permissions where role_id = $1 order by permission";
pub(crate) const INSERT_ROLE: &str = "insert into roles (id, name, description, builtin, \
     created_at, updated_at) values ($1, $2, $3, $4, $5, $6)";
/// Sets only the supplied members (null keeps the stored value).
pub(crate) const UPDATE_ROLE: &str = "update roles set name = coalesce($2, name), \
     description = coalesce($3, description), updated_at = $4 where id = $1 \
     returning id, name, description, builtin, created_at, updated_at";
pub(crate) const DELETE_ROLE: &str = "delete from roles where id = $1";
pub(crate) const DELETE_ROLE_PERMISSIONS: &str = "delete from role_permissions where role_id = $1";
pub(crate) const INSERT_ROLE_PERMISSION: &str =
    "insert into role_permissions (role_id, permission) values ($1, $2)";
pub(crate) const USER_ROLE_IDS: &str =
    "select role_id from user_roles where user_id = $1 order by role_id";
pub(crate) const ASSIGN_ROLE: &str = "insert into user_roles (user_id, role_id, assigned_at) \
     values ($1, $2, $3) on conflict (user_id, role_id) do nothing";
pub(crate) const UNASSIGN_ROLE: &str = "delete from user_roles where user_id = $1 and role_id = $2";
pub(crate) const EXISTS_USER: &str = "select id from users where id = $1";
pub(crate) const EXISTS_ROLE: &str = "select id from roles where id = $1";
pub(crate) const LIST_USERS: &str = concat!(
    "select ",
    user_cols!(),
    " from users where login_key >= $1 and login_key < $2 and login_key > $3 \
     order by login_key limit $4"
);
pub(crate) const SET_BLOCKED: &str = concat!(
    "update users set blocked = $2, updated_at = $3 \
     where id = $1 and not ($2 and superuser) returning ",
    user_cols!()
);
pub(crate) const END_ALL_USER_SESSIONS: &str = "update sessions set ended_at = $2, \
     end_reason = $3 where user_id = $1 and ended_at is null returning id";
pub(crate) const LIST_CLIENTS: &str = concat!(
    "select ",
    client_cols!(),
    " from clients order by client_id"
);
pub(crate) const INSERT_CLIENT: &str = "insert into clients (client_id, client_name, secret_hash, \
     token_endpoint_auth_method, grant_types, redirect_uris, post_logout_redirect_uris, scope, \
     first_party, builtin, created_at, updated_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
pub(crate) const UPDATE_CLIENT: &str = "update clients set client_name = $2, secret_hash = $3, \
     token_endpoint_auth_method = $4, grant_types = $5, redirect_uris = $6, \
     post_logout_redirect_uris = $7, scope = $8, first_party = $9, updated_at = $10 \
     where client_id = $1";
pub(crate) const DELETE_CLIENT: &str = "delete from clients where client_id = $1";
pub(crate) const END_CLIENT_SESSIONS: &str = "update sessions set ended_at = $2, \
     end_reason = $3 where client_id = $1 and ended_at is null returning id, user_id";
pub(crate) const UPSERT_BROWSER_SESSION: &str = "insert into browser_sessions (id, data, \
     expires_at) values ($1, $2, $3) on conflict (id) do update set data = excluded.data, \
     expires_at = excluded.expires_at";
pub(crate) const INSERT_BROWSER_SESSION: &str = "insert into browser_sessions (id, data, \
     expires_at) values ($1, $2, $3) on conflict (id) do nothing";
pub(crate) const LOAD_BROWSER_SESSION: &str =
    "select data from browser_sessions where id = $1 and expires_at > $2";
pub(crate) const DELETE_BROWSER_SESSION: &str = "delete from browser_sessions where id = $1";
pub(crate) const PRUNE_BROWSER_SESSIONS: &str =
    "delete from browser_sessions where expires_at < $1";
pub(crate) const FIND_CONSENT: &str =
    "select scope from consents where user_id = $1 and client_id = $2";
pub(crate) const UPSERT_CONSENT: &str = "insert into consents (user_id, client_id, scope, \
     granted_at) values ($1, $2, $3, $4) on conflict (user_id, client_id) do update set \
     scope = excluded.scope, granted_at = excluded.granted_at";
pub(crate) const LIST_CONSENTS: &str =
    "select client_id, scope, granted_at from consents where user_id = $1 order by client_id";
pub(crate) const END_USER_CLIENT_SESSIONS: &str = "update sessions set ended_at = $3, \
     end_reason = $4 where user_id = $1 and client_id = $2 and ended_at is null returning id";
pub(crate) const DELETE_CONSENT: &str =
    "delete from consents where user_id = $1 and client_id = $2";

/// A session with its user, in one round trip (refresh rotation).
pub(crate) const FIND_SESSION_WITH_USER: &str = "select s.id, s.user_id, s.client_id, s.scope, \
     s.started_at, s.last_used_at, s.auth_time, s.expires_at, s.ip, s.user_agent, s.ended_at, \
     s.end_reason, s.parent_sid, u.login as u_login, u.email as u_email, \
     u.password_hash as u_password_hash, u.superuser as u_superuser, u.blocked as u_blocked, \
     u.created_at as u_created_at, u.updated_at as u_updated_at, \
     u.last_login_at as u_last_login_at \
     from sessions s join users u on u.id = s.user_id where s.id = $1";
