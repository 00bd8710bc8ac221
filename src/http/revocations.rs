//! `GET /api/v1/revocations`: the revocation feed for resource servers, as JSON (long
//! poll with `wait`) or as Server-Sent Events (`Accept: text/event-stream`). Confidential
//! clients authenticate with HTTP Basic, as at introspection.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::{ACCEPT, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};

use super::extract::{Query, basic_credentials};
use super::problem::Problem;
use crate::AppState;
use crate::service::revocation_feed::{self, FeedItem, MAX_WAIT};
use crate::service::{FieldError, ServiceError, clients};

/// How long one SSE poll waits before sending a keep-alive round.
const SSE_WAIT: Duration = Duration::from_secs(30);

fn invalid_client() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    )
    .header(WWW_AUTHENTICATE, "Basic realm=\"usher\"")
}

async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    let creds = basic_credentials(headers)
        .ok_or_else(invalid_client)?
        .map_err(|_| invalid_client())?;
    match clients::authenticate_secret(app, &creds).await {
        Ok(client) if !client.is_public() => Ok(()),
        Ok(_) | Err(ServiceError::OAuth(_)) => Err(invalid_client()),
        Err(other) => Err(other.into()),
    }
}

fn parse_wait(query: &Query) -> Result<Duration, Problem> {
    match query.get("wait") {
        None => Ok(Duration::ZERO),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n <= MAX_WAIT => Ok(Duration::from_secs(n)),
            _ => Err(Problem::validation(vec![FieldError::new(
                "wait",
                "range",
                "must be an integer from 0 to 60",
            )])),
        },
    }
}

/// The feed.
pub async fn revocations(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Query,
) -> Result<Response, Problem> {
    authenticate(&app, &headers).await?;
    let wait = parse_wait(&query)?;
    let since = query
        .get("since")
        .or_else(|| headers.get("last-event-id").and_then(|v| v.to_str().ok()))
        .map(|c| revocation_feed::parse_cursor(&app, c))
        .transpose()?;
    let sse = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if sse {
        return Ok(Sse::new(event_stream(app, since))
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let page = revocation_feed::read(&app, since, wait).await?;
    Ok(Json(page).into_response())
}

fn event(item: &FeedItem) -> Event {
    Event::default()
        .id(item.cursor.clone())
        .event(item.kind.clone())
        .json_data(item)
        .unwrap_or_default()
}

/// Entries as SSE events, forever; the first event of a fresh stream is `cursor`.
fn event_stream(
    app: AppState,
    since: Option<i64>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((app, since, true), |(app, since, first)| async move {
        let wait = if since.is_none() {
            Duration::ZERO
        } else {
            SSE_WAIT
        };
        match revocation_feed::read(&app, since, wait).await {
            Ok(page) => {
                let next = revocation_feed::parse_cursor(&app, &page.next_cursor).ok();
                let mut events: Vec<Result<Event, Infallible>> =
                    page.items.iter().map(|i| Ok(event(i))).collect();
                if first && since.is_none() {
                    events.push(Ok(Event::default()
                        .id(page.next_cursor.clone())
                        .event("cursor")
                        .data(page.next_cursor)));
                }
                Some((stream::iter(events), (app, next.or(since), false)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "revocation stream ended");
                None
            }
        }
    })
    .flatten()
}
