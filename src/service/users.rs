//! User administration: finding users by login prefix, one user's details, and
//! blocking. Blocking ends every session at once and refuses the user's logins with the
//! same answer as a wrong password; a superuser cannot be blocked.

use serde::Serialize;

use super::accounts::{decode_cursor, encode_cursor};
use super::{ServiceError, feed};
use crate::AppState;
use crate::clock::rfc3339;
use crate::store::{BlockOutcome, StoreError, UserRecord};

/// A user as administrators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AdminUserView {
    /// Id.
    pub id: String,
    /// Login.
    pub login: String,
    /// E-mail.
    pub email: Option<String>,
    /// Role names, `user` first.
    pub roles: Vec<String>,
    /// Superuser.
    pub superuser: bool,
    /// Blocked.
    pub blocked: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_login_at: Option<String>,
}

/// A page of users.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserPage {
    /// Users by login.
    pub items: Vec<AdminUserView>,
    /// Next page; null on the last.
    pub next_cursor: Option<String>,
}

fn not_found() -> ServiceError {
    ServiceError::not_found("user_not_found", "no user with this id")
}

/// The admin view of a stored user.
pub async fn view(app: &AppState, user: &UserRecord) -> Result<AdminUserView, ServiceError> {
    let roles = super::accounts::roles_of(app, &user.id).await?;
    Ok(AdminUserView {
        id: user.id.clone(),
        login: user.login.clone(),
        email: user.email.clone(),
        roles,
        superuser: user.superuser,
        blocked: user.blocked,
        created_at: rfc3339(user.created_at),
        last_login_at: user.last_login_at.map(rfc3339),
    })
}

/// Users whose login starts with `prefix` (case-insensitive), by login.
pub async fn find(
    app: &AppState,
    prefix: &str,
    limit: i64,
    cursor: Option<&str>,
) -> Result<UserPage, ServiceError> {
    let after = match cursor {
        None => None,
        Some(c) => Some(decode_cursor("ul", c).ok_or_else(|| {
            ServiceError::Validation(vec![super::FieldError::new(
                "cursor",
                "format",
                "not a cursor returned by this endpoint",
            )])
        })?),
    };
    let mut rows = app
        .store
        .list_users(prefix, after.as_deref(), limit + 1)
        .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|u| encode_cursor("ul", &u.login.to_lowercase()))
    } else {
        None
    };
    let mut items = Vec::with_capacity(rows.len());
    for u in &rows {
        items.push(view(app, u).await?);
    }
    Ok(UserPage { items, next_cursor })
}

/// One user.
pub async fn get(app: &AppState, user_id: &str) -> Result<AdminUserView, ServiceError> {
    let user = app.store.find_user(user_id).await?.ok_or_else(not_found)?;
    view(app, &user).await
}

/// Blocks or unblocks a user. 409 `superuser_protected` for blocking a superuser.
pub async fn set_blocked(
    app: &AppState,
    user_id: &str,
    blocked: bool,
) -> Result<AdminUserView, ServiceError> {
    let outcome = app
        .store
        .set_blocked(user_id, blocked, app.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_found(),
            other => other.into(),
        })?;
    let (user, changes) = match outcome {
        BlockOutcome::Set(user, changes) => (user, changes),
        BlockOutcome::SuperuserProtected => {
            return Err(ServiceError::conflict(
                "superuser_protected",
                "a superuser cannot be blocked",
            ));
        }
    };
    app.authz.forget_user(user_id);
    feed::publish(app, &changes).await;
    tracing::info!(user_id, blocked, "user block flag set");
    view(app, &user).await
}
