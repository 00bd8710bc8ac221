//! Accounts: sign-up, the profile, password changes, the login history and the password
//! check shared by the password grant and the login page (same answer and same time for
//! an unknown login and a wrong password; lockout after repeated failures).

use secrecy::SecretString;
use serde::Serialize;

use super::passwords::check_password;
use super::{FieldError, OAuthError, RequestMeta, ServiceError, feed};
use crate::AppState;
use crate::clock::rfc3339;
use crate::store::{LoginCheck, NewLoginEvent, StoreError, UserRecord, VerifiedLogin};
use crate::token::{b64url, b64url_decode};

/// The user as the API shows it (never the hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Profile {
    /// User id (`sub`).
    pub id: String,
    /// Login.
    pub login: String,
    /// E-mail, if any.
    pub email: Option<String>,
    /// Always false: usher does not confirm addresses yet.
    pub email_verified: bool,
    /// Role names, `user` included.
    pub roles: Vec<String>,
    /// Superuser flag.
    pub superuser: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, if ever.
    pub last_login_at: Option<String>,
}

/// The role names a user holds now, `user` first (from the in-process view).
pub async fn roles_of(app: &AppState, user_id: &str) -> Result<Vec<String>, ServiceError> {
    Ok(match app.authz.user(app.store.as_ref(), user_id).await? {
        Some(user) => app.authz.role_names(&user),
        None => vec![super::authz::USER.to_owned()],
    })
}

/// The API view of a user.
pub async fn profile(app: &AppState, user: &UserRecord) -> Result<Profile, ServiceError> {
    Ok(Profile {
        id: user.id.clone(),
        login: user.login.clone(),
        email: user.email.clone(),
        email_verified: false,
        roles: roles_of(app, &user.id).await?,
        superuser: user.superuser,
        created_at: rfc3339(user.created_at),
        last_login_at: user.last_login_at.map(rfc3339),
    })
}

/// Checks a login: 3–64 of ASCII letters, digits, `.`, `_`, `-`.
pub fn check_login(field: &str, login: &str) -> Option<FieldError> {
    let n = login.chars().count();
    if n < 3 {
        Some(FieldError::new(
            field,
            "too_short",
            "must be at least 3 characters",
        ))
    } else if n > 64 {
        Some(FieldError::new(
            field,
            "too_long",
            "must be at most 64 characters",
        ))
    } else if !login
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Some(FieldError::new(
            field,
            "format",
            "may contain only letters, digits, '.', '_' and '-'",
        ))
    } else {
        None
    }
}

/// Checks an e-mail address (a practical subset of RFC 5321: `local@domain.tld`).
pub fn check_email(field: &str, email: &str) -> Option<FieldError> {
    let bad = || {
        Some(FieldError::new(
            field,
            "format",
            "must be an e-mail address",
        ))
    };
    if email.len() > 254 {
        return bad();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad();
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"@()<>[]\\,;:\"".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok { None } else { bad() }
}

fn conflict(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict { constraint } if constraint.contains("email") => {
            ServiceError::conflict("email_taken", "this e-mail address is already in use")
        }
        StoreError::Conflict { .. } => {
            ServiceError::conflict("login_taken", "this login is already taken")
        }
        other => other.into(),
    }
}

/// A sign-up request.
#[derive(Debug)]
pub struct SignUp {
    /// Desired login.
    pub login: String,
    /// Password.
    pub password: SecretString,
    /// Optional e-mail.
    pub email: Option<String>,
}

/// The rule errors of a sign-up (every failing field).
pub fn check_sign_up(
    login: Option<&str>,
    password: Option<&str>,
    email: Option<&str>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    errors.extend(login.and_then(|l| check_login("login", l)));
    errors.extend(password.and_then(|p| check_password("password", p)));
    errors.extend(email.and_then(|e| check_email("email", e)));
    errors
}

/// Creates an account. 409 `login_taken` / `email_taken` (case-insensitive).
pub async fn sign_up(app: &AppState, input: SignUp) -> Result<Profile, ServiceError> {
    let user = create_user(app, input).await?;
    profile(app, &user).await
}

/// Signs up on the sign-up page, which signs the new user in: the profile and the login
/// their first browser session rests on.
pub async fn sign_up_and_login(
    app: &AppState,
    input: SignUp,
    meta: &RequestMeta,
) -> Result<(Profile, VerifiedLogin), ServiceError> {
    let user = create_user(app, input).await?;
    let event = NewLoginEvent {
        user_id: user.id.clone(),
        at: app.clock.now(),
        ip: meta.ip_text(),
        user_agent: meta.user_agent.clone(),
        method: LoginMethod::LoginPage.as_str(),
        outcome: "success",
    };
    let verified = VerifiedLogin {
        event,
        password_hash: user.password_hash.clone(),
    };
    Ok((profile(app, &user).await?, verified))
}

async fn create_user(app: &AppState, input: SignUp) -> Result<UserRecord, ServiceError> {
    use secrecy::ExposeSecret;
    let errors = check_sign_up(
        Some(&input.login),
        Some(input.password.expose_secret()),
        input.email.as_deref(),
    );
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let password_hash = app.hasher.hash(&input.password).await?;
    let now = app.clock.now();
    let user = UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        login: input.login,
        email: input.email,
        password_hash,
        superuser: false,
        blocked: false,
        created_at: now,
        updated_at: now,
        last_login_at: None,
    };
    app.store.insert_user(&user).await.map_err(conflict)?;
    tracing::info!(user_id = %user.id, "user signed up");
    Ok(user)
}

/// Loads the user behind a token; a user deleted since is `NotAUser`-like 401.
pub async fn current_user(app: &AppState, user_id: &str) -> Result<UserRecord, ServiceError> {
    app.store
        .find_user(user_id)
        .await?
        .ok_or(ServiceError::Unauthenticated(
            super::BearerError::SessionEnded,
        ))
}

/// A profile change: `None` leaves a member as it is; `Some(None)` clears the e-mail.
#[derive(Debug, Default)]
pub struct ProfileChange {
    /// New login.
    pub login: Option<String>,
    /// New e-mail, or `Some(None)` to remove it.
    pub email: Option<Option<String>>,
}

/// The rule errors of a profile change.
pub fn check_profile_change(login: Option<&str>, email: Option<&str>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    errors.extend(login.and_then(|l| check_login("login", l)));
    errors.extend(email.and_then(|e| check_email("email", e)));
    errors
}

/// Changes login and/or e-mail.
pub async fn update_profile(
    app: &AppState,
    user_id: &str,
    change: ProfileChange,
) -> Result<Profile, ServiceError> {
    let errors = check_profile_change(
        change.login.as_deref(),
        change.email.as_ref().and_then(|e| e.as_deref()),
    );
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let user = current_user(app, user_id).await?;
    let login = change.login.unwrap_or(user.login);
    let email = change.email.unwrap_or(user.email);
    let updated = app
        .store
        .update_user_profile(user_id, &login, email.as_deref(), app.clock.now())
        .await
        .map_err(conflict)?;
    app.authz.forget_user(user_id);
    profile(app, &updated).await
}

/// Changes the password after checking the current one (403 `wrong_password`; this check
/// is not a login and is not recorded), then ends every other session of the user.
pub async fn change_password(
    app: &AppState,
    user_id: &str,
    current_sid: Option<&str>,
    current: SecretString,
    new: SecretString,
) -> Result<(), ServiceError> {
    use secrecy::ExposeSecret;
    if let Some(e) = check_password("new_password", new.expose_secret()) {
        return Err(ServiceError::Validation(vec![e]));
    }
    let user = current_user(app, user_id).await?;
    // The current-password check shares the login's lockout: a stolen access token
    // cannot be used to guess the password faster than the login form allows.
    let locked = is_locked(app, &user.login).await;
    let ok = app
        .hasher
        .verify(&current, Some(&user.password_hash))
        .await?;
    if locked || !ok {
        if !ok {
            count_failure(app, &user.login).await;
        }
        return Err(ServiceError::forbidden(
            "wrong_password",
            "the current password is wrong",
        ));
    }
    let hash = app.hasher.hash(&new).await?;
    let ended = app
        .store
        .set_password(user_id, &hash, current_sid, app.clock.now())
        .await?;
    feed::publish(app, &ended).await;
    tracing::info!(user_id, ended = ended.len(), "password changed");
    Ok(())
}

/// How a password check was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// `grant_type=password` at the token endpoint.
    PasswordGrant,
    /// usher's login page.
    LoginPage,
}

impl LoginMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::PasswordGrant => "password_grant",
            Self::LoginPage => "login_page",
        }
    }
}

/// The error of every refused login: one body for unknown login, wrong password,
/// blocked user and locked-out login.
pub fn bad_credentials() -> ServiceError {
    ServiceError::OAuth(OAuthError::invalid_grant("invalid login or password"))
}

/// A successful password check: the user, and the login (its `success` event and the
/// hash the password matched) that whoever starts the session hands to the store.
#[derive(Debug)]
pub struct LoginSuccess {
    /// The user.
    pub user: UserRecord,
    /// What the session rests on; the store re-checks it when writing the session.
    pub verified: VerifiedLogin,
}

/// A checked login whose session the store refused (`check` is not `Current`: the user
/// was blocked, or the password changed, while the password was being hashed). The
/// attempt is recorded as failed (`blocked` or `bad_credentials`) and the answer is the
/// one of a wrong password.
pub async fn refused_login(
    app: &AppState,
    login: &VerifiedLogin,
    check: LoginCheck,
) -> ServiceError {
    let mut event = login.event.clone();
    event.outcome = match check {
        LoginCheck::Blocked => "blocked",
        LoginCheck::PasswordChanged | LoginCheck::Current => "bad_credentials",
    };
    if let Err(e) = app.store.record_login_event(&event).await {
        return e.into();
    }
    tracing::info!(user_id = %event.user_id, outcome = event.outcome, "login refused: the user changed during the check");
    bad_credentials()
}

/// The lockout counter's key: a digest of the lower-cased login, so that whatever a
/// client types as a login (unknown logins are counted too) yields a short key of fixed
/// size and no login appears in the shared state.
fn lockout_key(login: &str) -> String {
    format!(
        "login_fail:{}",
        crate::token::sha256_hex(login.to_lowercase().as_bytes())
    )
}

/// True when the login has reached the failure threshold in the current window. The
/// counter lives in the shared state; if that is unreachable the lockout is not
/// enforced (logged), so a Redis outage never locks everyone out.
async fn is_locked(app: &AppState, login: &str) -> bool {
    let threshold = app.config.login_lockout_threshold;
    if threshold == 0 {
        return false;
    }
    match app.state.get(&lockout_key(login)).await {
        Ok(count) => count.and_then(|c| c.parse::<u32>().ok()).unwrap_or(0) >= threshold,
        Err(e) => {
            tracing::warn!(error = %e, "lockout counter unavailable; not enforcing");
            false
        }
    }
}

/// Counts a failed password check of `login`.
async fn count_failure(app: &AppState, login: &str) {
    if app.config.login_lockout_threshold == 0 {
        return;
    }
    if let Err(e) = app
        .state
        .incr_window(&lockout_key(login), app.config.login_lockout_window)
        .await
    {
        tracing::warn!(error = %e, "cannot count the failed login");
    }
}

/// Checks login and password. Unknown logins are checked against a dummy hash (same
/// time, same answer). Every attempt against an existing login is recorded: failures
/// here, the success by the caller with the session it starts.
pub async fn check_credentials(
    app: &AppState,
    login: &str,
    password: &SecretString,
    method: LoginMethod,
    meta: &RequestMeta,
) -> Result<LoginSuccess, ServiceError> {
    // A login holding a control character names no user (PostgreSQL `text` cannot even
    // hold NUL): it is answered as an unknown login, without a query.
    let user = if super::has_forbidden_control(login) {
        None
    } else {
        app.store.find_user_by_login(login).await?
    };
    // The counter is read for unknown logins too, so both paths do the same work.
    let locked = is_locked(app, login).await;
    let ok = app
        .hasher
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    let Some(user) = user else {
        // Mirror the failed-attempt write of an existing login (counter and one round
        // trip to the database) so timing does not tell the two apart.
        count_failure(app, login).await;
        let _ = app.store.ping().await;
        return Err(bad_credentials());
    };
    let outcome = if locked {
        "locked_out"
    } else if !ok {
        "bad_credentials"
    } else if user.blocked {
        "blocked"
    } else {
        "success"
    };
    let event = NewLoginEvent {
        user_id: user.id.clone(),
        at: app.clock.now(),
        ip: meta.ip_text(),
        user_agent: meta.user_agent.clone(),
        method: method.as_str(),
        outcome,
    };
    if outcome == "success" {
        if app.config.login_lockout_threshold > 0
            && let Err(e) = app.state.delete(&lockout_key(login)).await
        {
            tracing::warn!(error = %e, "cannot reset the lockout counter");
        }
        let password_hash = user.password_hash.clone();
        return Ok(LoginSuccess {
            user,
            verified: VerifiedLogin {
                event,
                password_hash,
            },
        });
    }
    if outcome == "bad_credentials" {
        count_failure(app, login).await;
    }
    app.store.record_login_event(&event).await?;
    tracing::info!(user_id = %user.id, outcome, "login refused");
    Err(bad_credentials())
}

/// One login-history entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryItem {
    /// RFC 3339 UTC.
    pub at: String,
    /// Address without port.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// `password_grant` or `login_page`.
    pub method: String,
    /// `success`, `bad_credentials`, `blocked` or `locked_out`.
    pub outcome: String,
}

/// A page of history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryPage {
    /// Newest first.
    pub items: Vec<HistoryItem>,
    /// Cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Encodes a pagination cursor for position `id`.
pub fn encode_cursor(kind: &str, id: &str) -> String {
    b64url(format!("{kind}:{id}").as_bytes())
}

/// Decodes a cursor made by [`encode_cursor`] with the same `kind`.
pub fn decode_cursor(kind: &str, cursor: &str) -> Option<String> {
    let bytes = b64url_decode(cursor.as_bytes())?;
    let text = String::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix(kind)?.strip_prefix(':')?;
    (!rest.is_empty() && !rest.chars().any(char::is_control)).then(|| rest.to_owned())
}

/// The user's login history, newest first. `cursor` comes from a previous page.
pub async fn login_history(
    app: &AppState,
    user_id: &str,
    limit: i64,
    cursor: Option<&str>,
) -> Result<HistoryPage, ServiceError> {
    let before = match cursor {
        None => None,
        Some(c) => Some(
            decode_cursor("lh", c)
                .and_then(|id| id.parse::<i64>().ok())
                .ok_or_else(|| {
                    ServiceError::Validation(vec![FieldError::new(
                        "cursor",
                        "format",
                        "not a cursor returned by this endpoint",
                    )])
                })?,
        ),
    };
    let mut rows = app
        .store
        .list_login_events(user_id, before, limit + 1)
        .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor("lh", &r.id.to_string()))
    } else {
        None
    };
    Ok(HistoryPage {
        items: rows
            .into_iter()
            .map(|r| HistoryItem {
                at: rfc3339(r.at),
                ip: r.ip,
                user_agent: r.user_agent,
                method: r.method,
                outcome: r.outcome,
            })
            .collect(),
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lockout counter's key has a fixed size whatever the login typed, ignores
    /// letter case, and does not contain the login.
    #[test]
    fn lockout_key_is_a_digest() {
        let long = "A".repeat(100_000);
        assert_eq!(lockout_key(&long).len(), "login_fail:".len() + 64);
        assert_eq!(lockout_key("Alice"), lockout_key("aLICE"));
        assert_ne!(lockout_key("alice"), lockout_key("alicf"));
        assert!(!lockout_key("alice").contains("alice"));
    }

    /// Login, e-mail and cursor rules accept and refuse what the API contract says.
    #[test]
    fn field_rules() {
        assert!(check_login("login", "al").is_some());
        assert!(check_login("login", "alice.B_2-x").is_none());
        assert!(check_login("login", &"a".repeat(65)).is_some());
        assert!(check_login("login", "al ice").is_some());
        assert!(check_login("login", "алиса").is_some());
        assert!(check_email("email", "a@b.co").is_none());
        for bad in ["a", "a@b", "@b.co", "a@-b.co", "a b@c.de", "a@b..co"] {
            assert!(check_email("email", bad).is_some(), "{bad}");
        }
        let c = encode_cursor("lh", "42");
        assert_eq!(decode_cursor("lh", &c).as_deref(), Some("42"));
        assert_eq!(decode_cursor("sx", &c), None);
        assert_eq!(decode_cursor("lh", "%%%"), None);
    }
}
