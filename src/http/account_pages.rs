//! The viewer's pages: `/account` (profile, sessions, "log out of all other sessions",
//! password, consented apps) and `/account/history`. Every form is CSRF-protected and
//! answers with a redirect back to the page (post/redirect/get).

use std::collections::HashMap;

use axum::extract::{Path, Query as AxumQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use tower_sessions::Session;

use super::pages::{
    PageForm, clear_login, csrf_ok, csrf_refused, csrf_token, current_login, flash, form_errors,
    page, service_error, take_flash, to_login,
};
use crate::AppState;
use crate::clock::human;
use crate::service::accounts::{self, ProfileChange};
use crate::service::authorize::BrowserLogin;
use crate::service::{ServiceError, clients, sessions};
use crate::templates::{
    AccountPage, ConsentRow, FormError, HistoryPage, HistoryRow, Notice, SessionRow, device,
};

fn back() -> Response {
    Redirect::to("/account").into_response()
}

/// The client's name; `None` for usher's own sign-in.
async fn client_name(app: &AppState, client_id: &str) -> Option<String> {
    if client_id == sessions::BROWSER_CLIENT {
        return None;
    }
    match clients::find(app, client_id).await {
        Ok(Some(c)) => Some(c.client_name.clone()),
        _ => Some(client_id.to_owned()),
    }
}

/// `GET /account`.
pub async fn account(State(app): State<AppState>, session: Session) -> Response {
    let login = match current_login(&app, &session).await {
        Ok(Some(login)) => login,
        Ok(None) => return to_login("/account"),
        Err(e) => return service_error(e),
    };
    match render_account(&app, &session, &login).await {
        Ok(r) => r,
        Err(e) => service_error(e),
    }
}

async fn render_account(
    app: &AppState,
    session: &Session,
    login: &BrowserLogin,
) -> Result<Response, ServiceError> {
    let user = accounts::current_user(app, &login.user_id).await?;
    let records = sessions::live_records(app, &login.user_id).await?;
    let mut rows = Vec::with_capacity(records.len());
    for s in records {
        rows.push(SessionRow {
            this_device: s.id == login.sid || s.parent_sid.as_deref() == Some(login.sid.as_str()),
            device: device(s.user_agent.as_deref()),
            client: client_name(app, &s.client_id).await,
            ip: s.ip,
            started_at: human(s.started_at),
            last_used_at: human(s.last_used_at),
            id: s.id,
        });
    }
    let mut consents = Vec::new();
    for (client_id, scope, at) in app.store.list_consents(&login.user_id).await? {
        let name = clients::find(app, &client_id)
            .await?
            .map(|c| c.client_name.clone())
            .unwrap_or_else(|| client_id.clone());
        let scopes = scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        consents.push(ConsentRow {
            client_id,
            name,
            scopes,
            granted_at: human(at),
        });
    }
    let (notice, errors) = take_flash(session).await;
    let csrf = csrf_token(session).await?;
    Ok(page(
        StatusCode::OK,
        AccountPage {
            csrf,
            login: user.login,
            email: user.email.unwrap_or_default(),
            sessions: rows,
            consents,
            notice,
            errors,
        },
    ))
}

/// Checks login and CSRF of an account form.
async fn guard(
    app: &AppState,
    session: &Session,
    form: &PageForm,
) -> Result<BrowserLogin, Response> {
    let Some(login) = current_login(app, session).await.map_err(service_error)? else {
        return Err(to_login("/account"));
    };
    if !csrf_ok(session, form.get("csrf")).await {
        return Err(csrf_refused());
    }
    Ok(login)
}

/// Errors a form can show, or the failure page.
fn field_errors(e: ServiceError) -> Result<Vec<FormError>, Box<Response>> {
    form_errors(e).map_err(|e| Box::new(service_error(e)))
}

/// `POST /account/profile`.
pub async fn profile(State(app): State<AppState>, session: Session, form: PageForm) -> Response {
    let login = match guard(&app, &session, &form).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    // An empty e-mail field removes the address; a form without the field keeps it.
    let change = ProfileChange {
        login: form.get("login").map(|l| l.trim().to_owned()),
        email: form
            .get("email")
            .map(str::trim)
            .map(|e| (!e.is_empty()).then(|| e.to_owned())),
    };
    match accounts::update_profile(&app, &login.user_id, change).await {
        Ok(_) => flash(&session, Some(Notice::ProfileSaved), &[]).await,
        Err(e) => match field_errors(e) {
            Ok(errors) => flash(&session, None, &errors).await,
            Err(r) => return *r,
        },
    }
    back()
}

/// `POST /account/password`: ends every session but this device's.
pub async fn password(State(app): State<AppState>, session: Session, form: PageForm) -> Response {
    let login = match guard(&app, &session, &form).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let current = SecretString::from(form.get("current_password").unwrap_or("").to_owned());
    let new = SecretString::from(form.get("new_password").unwrap_or("").to_owned());
    match accounts::change_password(&app, &login.user_id, Some(&login.sid), current, new).await {
        Ok(()) => flash(&session, Some(Notice::PasswordChanged), &[]).await,
        Err(e) => match field_errors(e) {
            Ok(errors) => flash(&session, None, &errors).await,
            Err(r) => return *r,
        },
    }
    back()
}

/// `POST /account/sessions/{sid}/end`.
pub async fn end_session(
    State(app): State<AppState>,
    session: Session,
    Path(sid): Path<String>,
    form: PageForm,
) -> Response {
    let login = match guard(&app, &session, &form).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    // An id with a control character names no session (and is never looked up).
    let ended = if crate::service::has_forbidden_control(&sid) {
        Err(sessions::session_not_found())
    } else {
        sessions::end_one(&app, &login.user_id, &sid, "logout").await
    };
    match ended {
        Ok(()) | Err(ServiceError::NotFound { .. }) => {
            flash(&session, Some(Notice::SessionEnded), &[]).await;
            back()
        }
        Err(e) => service_error(e),
    }
}

/// `POST /account/logout-others`: "Log out of all other sessions".
pub async fn logout_others(
    State(app): State<AppState>,
    session: Session,
    form: PageForm,
) -> Response {
    let login = match guard(&app, &session, &form).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    match sessions::end_others(&app, &login.user_id, &login.sid).await {
        Ok(n) => {
            flash(&session, Some(Notice::OthersSignedOut(n)), &[]).await;
            back()
        }
        Err(e) => service_error(e),
    }
}

/// `POST /account/consents/{client_id}/revoke`: withdraws a consent and ends that app's
/// sessions.
pub async fn revoke_consent(
    State(app): State<AppState>,
    session: Session,
    Path(client_id): Path<String>,
    form: PageForm,
) -> Response {
    let login = match guard(&app, &session, &form).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let result = async {
        // An id with a control character names no client: nothing to withdraw.
        if crate::service::has_forbidden_control(&client_id) {
            return Ok(());
        }
        sessions::withdraw_consent(&app, &login.user_id, &client_id).await
    }
    .await;
    match result {
        Ok(()) => {
            flash(&session, Some(Notice::AccessWithdrawn), &[]).await;
            back()
        }
        Err(e) => service_error(e),
    }
}

/// `POST /account/logout`: ends this browser's session.
pub async fn logout(State(app): State<AppState>, session: Session, form: PageForm) -> Response {
    let login = match guard(&app, &session, &form).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let _ = sessions::end_one(&app, &login.user_id, &login.sid, "logout").await;
    clear_login(&session).await;
    Redirect::to("/login").into_response()
}

/// `GET /account/history`.
pub async fn history(
    State(app): State<AppState>,
    session: Session,
    AxumQuery(q): AxumQuery<HashMap<String, String>>,
) -> Response {
    let login = match current_login(&app, &session).await {
        Ok(Some(login)) => login,
        Ok(None) => return to_login("/account/history"),
        Err(e) => return service_error(e),
    };
    let page_data = match accounts::login_history(
        &app,
        &login.user_id,
        20,
        q.get("cursor").map(String::as_str),
    )
    .await
    {
        Ok(p) => p,
        Err(ServiceError::Validation(_)) => {
            return Redirect::to("/account/history").into_response();
        }
        Err(e) => return service_error(e),
    };
    let items = page_data
        .items
        .into_iter()
        .map(|i| HistoryRow {
            at: time::OffsetDateTime::parse(&i.at, &time::format_description::well_known::Rfc3339)
                .map(|t| human(t.unix_timestamp()))
                .unwrap_or(i.at),
            outcome: i.outcome,
            method: i.method,
            ip: i.ip,
            device: device(i.user_agent.as_deref()),
        })
        .collect();
    let next_href = page_data
        .next_cursor
        .map(|c| format!("/account/history?cursor={c}"));
    page(StatusCode::OK, HistoryPage { items, next_href })
}
