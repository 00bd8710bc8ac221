//! Login sessions: starting one (with its first refresh token), listing a user's live
//! sessions, and ending them (logout, logout-others, one by id). Ending writes the
//! database first, then publishes on the change feed, so every instance refuses the
//! session's access tokens at once.

use serde::Serialize;

use super::tokens::REFRESH_PREFIX;
use super::{AccessClaims, RequestMeta, ServiceError, feed};
use crate::AppState;
use crate::clock::rfc3339;
use crate::store::{LoginCheck, RefreshTokenRecord, SessionRecord, VerifiedLogin};
use crate::token::opaque::{PlainToken, random_id};

/// A session as the owner sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionView {
    /// Session id (`sid`).
    pub id: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339: last login or refresh.
    pub last_used_at: String,
    /// IP at login.
    pub ip: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// The client used.
    pub client_id: String,
    /// True for the session of the calling token.
    pub current: bool,
}

/// What a new session is for.
#[derive(Debug)]
pub struct NewSession<'a> {
    /// The user.
    pub user_id: &'a str,
    /// The client.
    pub client_id: &'a str,
    /// Granted scope.
    pub scope: &'a str,
    /// When the password was entered.
    pub auth_time: i64,
    /// Where from.
    pub meta: &'a RequestMeta,
    /// The password login it rests on: recorded with it, and re-checked by the store
    /// (a user blocked or whose password changed meanwhile gets no session).
    pub login: Option<&'a VerifiedLogin>,
    /// The browser session it is opened through (authorization code flow).
    pub parent_sid: Option<&'a str>,
    /// False when the client gets no refresh token: the session then lasts as long as
    /// its access token.
    pub with_refresh: bool,
}

/// Pseudo client id of browser sessions (usher's own pages).
pub const BROWSER_CLIENT: &str = "usher";

/// Starts a browser session (usher's own login); no refresh token. A user blocked, or
/// whose password changed, since `login` was checked gets no session: the attempt is
/// recorded as failed and the answer is the one of a wrong password.
pub async fn start_browser(
    app: &AppState,
    user_id: &str,
    meta: &RequestMeta,
    login: &VerifiedLogin,
) -> Result<SessionRecord, ServiceError> {
    let now = app.clock.now();
    let session = new_record(
        user_id,
        BROWSER_CLIENT,
        "",
        now,
        now + app.config.browser_session_ttl.as_secs() as i64,
        meta,
        None,
    );
    let check = app.store.start_session(&session, None, Some(login)).await?;
    if check != LoginCheck::Current {
        return Err(super::accounts::refused_login(app, login, check).await);
    }
    tracing::info!(user_id, "browser session started");
    Ok(session)
}

/// The live browser session `sid` of `user_id`: not ended and not expired. Asks the
/// store, which remembers ended sessions for as long as they exist (the change feed
/// forgets them after its retention).
pub async fn live_browser(
    app: &AppState,
    sid: &str,
    user_id: &str,
) -> Result<Option<SessionRecord>, ServiceError> {
    if app.feed.is_session_ended(sid) {
        return Ok(None);
    }
    let now = app.clock.now();
    Ok(app
        .store
        .find_session(sid)
        .await?
        .filter(|s| s.user_id == user_id && s.ended_at.is_none() && s.expires_at > now))
}

/// The same user signed in again in the browser session `sid` (`prompt=login`,
/// `max_age`): the session keeps its id, and with it the sessions opened through it, and
/// gets a new `auth_time` and a full lifetime. `None` when it has ended or expired since,
/// or when the user is no longer as `login` found them (then a new session is refused
/// too).
pub async fn reauthenticate_browser(
    app: &AppState,
    sid: &str,
    login: &VerifiedLogin,
) -> Result<Option<SessionRecord>, ServiceError> {
    let expires_at = login.event.at + app.config.browser_session_ttl.as_secs() as i64;
    let session = app
        .store
        .reauthenticate_session(sid, expires_at, login)
        .await?;
    if session.is_some() {
        tracing::info!(user_id = %login.event.user_id, "browser session re-authenticated");
    }
    Ok(session)
}

fn new_record(
    user_id: &str,
    client_id: &str,
    scope: &str,
    auth_time: i64,
    expires_at: i64,
    meta: &RequestMeta,
    parent_sid: Option<&str>,
) -> SessionRecord {
    let now = auth_time.max(0);
    SessionRecord {
        id: random_id(16),
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        started_at: now,
        last_used_at: now,
        auth_time,
        expires_at,
        ip: meta.ip_text(),
        user_agent: meta.user_agent.clone(),
        ended_at: None,
        end_reason: None,
        parent_sid: parent_sid.map(str::to_owned),
    }
}

/// Starts a session and returns it with its first refresh token (clear text, shown once;
/// `None` unless `with_refresh`). With a password `login`, a user blocked or whose
/// password changed since the check gets no session (see [`start_browser`]).
pub async fn start(
    app: &AppState,
    input: NewSession<'_>,
) -> Result<(SessionRecord, Option<PlainToken>), ServiceError> {
    let now = app.clock.now();
    let ttl = if input.with_refresh {
        app.config.refresh_token_ttl
    } else {
        app.config.access_token_ttl
    };
    let expires_at = now + ttl.as_secs() as i64;
    let mut session = new_record(
        input.user_id,
        input.client_id,
        input.scope,
        input.auth_time,
        expires_at,
        input.meta,
        input.parent_sid,
    );
    session.started_at = now;
    session.last_used_at = now;
    let refresh = PlainToken::generate(REFRESH_PREFIX);
    let record = RefreshTokenRecord {
        token_hash: refresh.hash(),
        session_id: session.id.clone(),
        client_id: input.client_id.to_owned(),
        created_at: now,
        expires_at,
        used_at: None,
    };
    let record = input.with_refresh.then_some(record);
    let check = app
        .store
        .start_session(&session, record.as_ref(), input.login)
        .await?;
    if let (LoginCheck::Blocked | LoginCheck::PasswordChanged, Some(login)) = (check, input.login) {
        return Err(super::accounts::refused_login(app, login, check).await);
    }
    tracing::info!(
        user_id = input.user_id,
        client_id = input.client_id,
        "session started"
    );
    Ok((session, input.with_refresh.then_some(refresh)))
}

/// A user's live sessions as stored, newest first.
pub async fn live_records(
    app: &AppState,
    user_id: &str,
) -> Result<Vec<SessionRecord>, ServiceError> {
    let rows = app
        .store
        .list_active_sessions(user_id, app.clock.now())
        .await?;
    Ok(rows
        .into_iter()
        .filter(|s| !app.feed.is_session_ended(&s.id))
        .collect())
}

/// Withdraws the user's consent to a client and ends the user's sessions with that
/// client, and only those (the browser they were opened through stays signed in).
pub async fn withdraw_consent(
    app: &AppState,
    user_id: &str,
    client_id: &str,
) -> Result<(), ServiceError> {
    let ended = app
        .store
        .delete_consent(user_id, client_id, "consent_withdrawn", app.clock.now())
        .await?;
    feed::publish(app, &ended).await;
    tracing::info!(user_id, client_id, ended = ended.len(), "consent withdrawn");
    Ok(())
}

/// Ends every session of the user outside the family of `keep` (the caller's device).
pub async fn end_others(app: &AppState, user_id: &str, keep: &str) -> Result<usize, ServiceError> {
    let ended = app
        .store
        .end_user_sessions(user_id, Some(keep), "logout_others", app.clock.now())
        .await?;
    feed::publish(app, &ended).await;
    tracing::info!(user_id, ended = ended.len(), "other sessions ended");
    Ok(ended.len())
}

/// The caller's live sessions, newest first, the caller's own marked `current`.
pub async fn list(app: &AppState, claims: &AccessClaims) -> Result<Vec<SessionView>, ServiceError> {
    let rows = live_records(app, &claims.sub).await?;
    Ok(rows
        .into_iter()
        .map(|s| SessionView {
            current: claims.sid.as_deref() == Some(s.id.as_str()),
            started_at: rfc3339(s.started_at),
            last_used_at: rfc3339(s.last_used_at),
            id: s.id,
            ip: s.ip,
            user_agent: s.user_agent,
            client_id: s.client_id,
        })
        .collect())
}

/// 404 `session_not_found`: not a live session of the caller.
pub fn session_not_found() -> ServiceError {
    ServiceError::not_found("session_not_found", "no such session among yours")
}

/// Ends one of the user's sessions. 404 when it is not theirs or no longer live: the
/// answer never tells another user's session from a missing one.
pub async fn end_one(
    app: &AppState,
    user_id: &str,
    sid: &str,
    reason: &str,
) -> Result<(), ServiceError> {
    let ended = app
        .store
        .end_session(sid, user_id, reason, app.clock.now())
        .await?;
    if ended.is_empty() {
        return Err(session_not_found());
    }
    feed::publish(app, &ended).await;
    tracing::info!(user_id, reason, ended = ended.len(), "session ended");
    Ok(())
}

/// Ends the session of the calling token.
pub async fn logout(app: &AppState, claims: &AccessClaims) -> Result<(), ServiceError> {
    let Some(sid) = &claims.sid else {
        return Err(ServiceError::Unauthenticated(super::BearerError::NotAUser));
    };
    match end_one(app, &claims.sub, sid, "logout").await {
        // Already ended between the bearer check and now: the outcome is the same.
        Err(ServiceError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

/// Ends every session of the caller but the current one ("log out of all other
/// sessions"); returns how many ended.
pub async fn logout_others(app: &AppState, claims: &AccessClaims) -> Result<usize, ServiceError> {
    let Some(sid) = &claims.sid else {
        return Err(ServiceError::Unauthenticated(super::BearerError::NotAUser));
    };
    end_others(app, &claims.sub, sid).await
}
