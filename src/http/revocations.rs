//! `GET /api/v1/revocations`: the revocation feed for resource servers, as JSON (long
//! poll with `wait`) or as Server-Sent Events (`Accept: text/event-stream`). Confidential
//! clients authenticate with HTTP Basic, as at introspection. Long polls and streams take
//! a waiting place (429 when none is free); a stream ends after the configured lifetime
//! or as soon as its client is deleted or its secret changes.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::{ACCEPT, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};
use tokio::time::Instant;

use super::extract::{Query, basic_credentials};
use super::problem::Problem;
use crate::AppState;
use crate::service::revocation_feed::{self, FeedItem, MAX_WAIT, Subscriber, WaitPermit};
use crate::service::{FieldError, ServiceError, clients};

/// How long one SSE poll waits before sending a keep-alive round.
const SSE_WAIT: Duration = Duration::from_secs(30);

/// `Retry-After` of a 429: long polls end within a minute.
const BUSY_RETRY_AFTER: &str = "5";

fn invalid_client() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    )
    .header(WWW_AUTHENTICATE, "Basic realm=\"usher\"")
}

fn feed_error(e: ServiceError) -> Problem {
    match e {
        ServiceError::OAuth(_) => invalid_client(),
        other => other.into(),
    }
}

async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Subscriber, Problem> {
    let creds = basic_credentials(headers)
        .ok_or_else(invalid_client)?
        .map_err(|_| invalid_client())?;
    match clients::authenticate_secret(app, &creds).await {
        Ok(client) if !client.is_public() => Ok(Subscriber::of(&client)),
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

fn wait_permit(app: &AppState, reader: &Subscriber) -> Result<WaitPermit, Problem> {
    app.revocations.try_wait(reader.client_id()).map_err(|_| {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_waiters",
            "too many long polls or event streams are open; retry later",
        )
        .header(RETRY_AFTER, BUSY_RETRY_AFTER)
    })
}

/// The feed.
pub async fn revocations(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Query,
) -> Result<Response, Problem> {
    let reader = authenticate(&app, &headers).await?;
    let wait = parse_wait(&query)?;
    let cursor = query
        .get("since")
        .or_else(|| headers.get("last-event-id").and_then(|v| v.to_str().ok()));
    let since = match cursor {
        Some(c) => Some(revocation_feed::parse_cursor(&app, c).await?),
        None => None,
    };
    let sse = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if sse {
        let permit = wait_permit(&app, &reader)?;
        return Ok(Sse::new(event_stream(app, reader, since, permit))
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let _permit = match (since, wait.is_zero()) {
        (Some(_), false) => Some(wait_permit(&app, &reader)?),
        _ => None,
    };
    let page = revocation_feed::read(&app, &reader, since, wait)
        .await
        .map_err(feed_error)?;
    Ok(Json(page).into_response())
}

fn event(item: &FeedItem) -> Event {
    Event::default()
        .id(item.cursor.clone())
        .event(item.kind.clone())
        .json_data(item)
        .unwrap_or_default()
}

/// What an event stream carries from one poll to the next.
struct StreamState {
    app: AppState,
    reader: Subscriber,
    since: Option<i64>,
    first: bool,
    ends: Instant,
    _permit: WaitPermit,
}

/// Entries as SSE events until the stream's lifetime is over or its client is gone;
/// the first event of a fresh stream is `cursor`.
fn event_stream(
    app: AppState,
    reader: Subscriber,
    since: Option<i64>,
    permit: WaitPermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let ends = Instant::now() + app.config.feed_stream_lifetime;
    let state = StreamState {
        app,
        reader,
        since,
        first: true,
        ends,
        _permit: permit,
    };
    stream::unfold(state, |mut s| async move {
        let left = s.ends.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let wait = match s.since {
            None => Duration::ZERO,
            Some(_) => SSE_WAIT.min(left),
        };
        let page = match revocation_feed::read(&s.app, &s.reader, s.since, wait).await {
            Ok(page) => page,
            Err(e) => {
                tracing::debug!(error = %e, "revocation stream ended");
                return None;
            }
        };
        // The page may announce the reader's own deletion: send nothing more then.
        if s.reader.recheck(&s.app).await.is_err() {
            return None;
        }
        let mut events: Vec<Result<Event, Infallible>> =
            page.items.iter().map(|i| Ok(event(i))).collect();
        if s.first && s.since.is_none() {
            events.push(Ok(Event::default()
                .id(page.next_cursor.clone())
                .event("cursor")
                .data(page.next_cursor)));
        }
        s.since = Some(page.next_seq);
        s.first = false;
        Some((stream::iter(events), s))
    })
    .flatten()
}
