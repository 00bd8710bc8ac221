//! The account API of the original assignment: sign-up, the caller's profile, password,
//! login history, sessions, logout and logout-others. problem+json errors.

use axum::Json;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::json;

use super::extract::{ApiUser, JsonObject, Query};
use super::path_ids::SessionId;
use super::problem::Problem;
use crate::AppState;
use crate::service::accounts::{self, ProfileChange, SignUp};
use crate::service::{FieldError, sessions};

/// `POST /api/v1/users`: sign up.
pub async fn sign_up(
    State(app): State<AppState>,
    JsonObject(mut fields): JsonObject,
) -> Result<Response, Problem> {
    let login = fields.required_str("login");
    let password = fields.required_str("password");
    let email = fields.optional_str("email");
    let rules = accounts::check_sign_up(login.as_deref(), password.as_deref(), email.as_deref());
    fields.finish(rules)?;
    let (Some(login), Some(password)) = (login, password) else {
        return Err(Problem::internal("validated fields missing"));
    };
    let profile = accounts::sign_up(
        &app,
        SignUp {
            login,
            password: SecretString::from(password),
            email,
        },
    )
    .await?;
    let mut response = (StatusCode::CREATED, Json(&profile)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/users/{}", profile.id)) {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

/// `GET /api/v1/users/me`.
pub async fn me(
    State(app): State<AppState>,
    ApiUser(claims): ApiUser,
) -> Result<Response, Problem> {
    let user = accounts::current_user(&app, &claims.sub).await?;
    Ok(Json(accounts::profile(&app, &user).await?).into_response())
}

/// `PATCH /api/v1/users/me`: change login and/or e-mail.
pub async fn update_me(
    State(app): State<AppState>,
    ApiUser(claims): ApiUser,
    JsonObject(mut fields): JsonObject,
) -> Result<Response, Problem> {
    let login = fields.optional_str("login");
    let email = fields.nullable_str("email");
    let rules =
        accounts::check_profile_change(login.as_deref(), email.as_ref().and_then(|e| e.as_deref()));
    fields.finish(rules)?;
    let profile =
        accounts::update_profile(&app, &claims.sub, ProfileChange { login, email }).await?;
    Ok(Json(profile).into_response())
}

/// `PUT /api/v1/users/me/password`.
pub async fn change_password(
    State(app): State<AppState>,
    ApiUser(claims): ApiUser,
    JsonObject(mut fields): JsonObject,
) -> Result<StatusCode, Problem> {
    let current = fields.required_str("current_password");
    let new = fields.required_str("new_password");
    let rules: Vec<FieldError> = new
        .as_deref()
        .and_then(|p| crate::service::passwords::check_password("new_password", p))
        .into_iter()
        .collect();
    fields.finish(rules)?;
    let (Some(current), Some(new)) = (current, new) else {
        return Err(Problem::internal("validated fields missing"));
    };
    accounts::change_password(
        &app,
        &claims.sub,
        claims.sid.as_deref(),
        SecretString::from(current),
        SecretString::from(new),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parses `limit` (1–100, default 20).
pub fn parse_limit(query: &Query) -> Result<i64, Problem> {
    match query.get("limit") {
        None => Ok(20),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(Problem::validation(vec![FieldError::new(
                "limit",
                "range",
                "must be an integer from 1 to 100",
            )])),
        },
    }
}

/// `GET /api/v1/users/me/login-history`.
pub async fn login_history(
    State(app): State<AppState>,
    ApiUser(claims): ApiUser,
    query: Query,
) -> Result<Response, Problem> {
    let limit = parse_limit(&query)?;
    let page = accounts::login_history(&app, &claims.sub, limit, query.get("cursor")).await?;
    Ok(Json(page).into_response())
}

/// `GET /api/v1/users/me/sessions`.
pub async fn list_sessions(
    State(app): State<AppState>,
    ApiUser(claims): ApiUser,
) -> Result<Response, Problem> {
    let items = sessions::list(&app, &claims).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// `DELETE /api/v1/users/me/sessions/{sid}`.
pub async fn end_session(
    State(app): State<AppState>,
    ApiUser(claims): ApiUser,
    SessionId(sid): SessionId,
) -> Result<StatusCode, Problem> {
    sessions::end_one(&app, &claims.sub, &sid, "logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/auth/logout`.
pub async fn logout(
    State(app): State<AppState>,
    ApiUser(claims): ApiUser,
) -> Result<StatusCode, Problem> {
    sessions::logout(&app, &claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/auth/logout-others`.
pub async fn logout_others(
    State(app): State<AppState>,
    ApiUser(claims): ApiUser,
) -> Result<StatusCode, Problem> {
    sessions::logout_others(&app, &claims).await?;
    Ok(StatusCode::NO_CONTENT)
}
