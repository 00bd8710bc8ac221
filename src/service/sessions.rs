//! Login sessions: starting one (with its first refresh token), listing a user's live
//! sessions, and ending them (logout, logout-others, one by id). Ending writes the
//! database first, then publishes on the change feed, so every instance refuses the
//! session's access tokens at once.

use serde::Serialize;

use super::tokens::REFRESH_PREFIX;
use super::{AccessClaims, RequestMeta, ServiceError, feed};
use crate::AppState;
use crate::clock::rfc3339;
use crate::store::{NewLoginEvent, RefreshTokenRecord, SessionRecord};
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
    /// The successful login to record with it.
    pub event: Option<&'a NewLoginEvent>,
}

/// Starts a session and returns it with its first refresh token (clear text, shown once).
pub async fn start(
    app: &AppState,
    input: NewSession<'_>,
) -> Result<(SessionRecord, PlainToken), ServiceError> {
    let now = app.clock.now();
    let expires_at = now + app.config.refresh_token_ttl.as_secs() as i64;
    let session = SessionRecord {
        id: random_id(16),
        user_id: input.user_id.to_owned(),
        client_id: input.client_id.to_owned(),
        scope: input.scope.to_owned(),
        started_at: now,
        last_used_at: now,
        auth_time: input.auth_time,
        expires_at,
        ip: input.meta.ip_text(),
        user_agent: input.meta.user_agent.clone(),
        ended_at: None,
        end_reason: None,
    };
    let refresh = PlainToken::generate(REFRESH_PREFIX);
    let record = RefreshTokenRecord {
        token_hash: refresh.hash(),
        session_id: session.id.clone(),
        client_id: input.client_id.to_owned(),
        created_at: now,
        expires_at,
        used_at: None,
    };
    app.store.start_session(&session, &record, input.event).await?;
    tracing::info!(user_id = input.user_id, client_id = input.client_id, "session started");
    Ok((session, refresh))
}

/// The caller's live sessions, newest first, the caller's own marked `current`.
pub async fn list(app: &AppState, claims: &AccessClaims) -> Result<Vec<SessionView>, ServiceError> {
    let rows = app
        .store
        .list_active_sessions(&claims.sub, app.clock.now())
        .await?;
    Ok(rows
        .into_iter()
        .filter(|s| !app.feed.is_session_ended(&s.id))
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

/// Ends one of the user's sessions. 404 when it is not theirs or no longer live: the
/// answer never tells another user's session from a missing one.
pub async fn end_one(app: &AppState, user_id: &str, sid: &str, reason: &str) -> Result<(), ServiceError> {
    match app
        .store
        .end_session(sid, user_id, reason, app.clock.now())
        .await?
    {
        Some(change) => {
            feed::publish(app, std::slice::from_ref(&change)).await;
            tracing::info!(user_id, reason, "session ended");
            Ok(())
        }
        None => Err(ServiceError::not_found(
            "session_not_found",
            "no such session among yours",
        )),
    }
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
    let ended = app
        .store
        .end_user_sessions(&claims.sub, claims.sid.as_deref(), "logout_others", app.clock.now())
        .await?;
    feed::publish(app, &ended).await;
    tracing::info!(user_id = %claims.sub, ended = ended.len(), "other sessions ended");
    Ok(ended.len())
}
