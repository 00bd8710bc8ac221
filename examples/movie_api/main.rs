//! The cinema's movie API: a small catalogue service protected by `usher-verify`.
//!
//! - `GET /films` is open to everyone, anonymous included, and shows each film's label.
//! - `GET /films/{id}/watch` is open to everyone too: anyone may watch a `catalogue`
//!   film. A `recent` film needs the `subscriber` role, read from the token and checked
//!   against usher's revocation feed (feed mode: a logout is refused within about a
//!   second), or else the permission `films:watch_recent` per usher's live check. A
//!   caller without a token is usher's `anonymous` principal: the live check answers
//!   for that role.
//! - `GET /films/{id}/watch-live`: the same, but a `recent` film needs
//!   `films:watch_recent` per usher's live check only (a role taken away is refused as
//!   soon as the feed reports it, or when the 2 s live cache expires).
//! - `PUT /films/labels` takes the labels of the ETL step ([`etl::run_etl`]), which
//!   signs in to usher with the `client_credentials` grant: a service token with the
//!   scope `films:label`, verified by the same [`Verifier`]. The ETL runs at start and
//!   then every `MOVIE_API_ETL_INTERVAL_SECS` (a day by default).
//!
//! The superuser can watch anything. A caller who may not watch a recent film gets 403
//! with `{"error", "error_description"}` saying a subscription is needed: with
//! `WWW-Authenticate: Bearer realm="cinema"` when no token was sent (signing in may
//! help), with `error="insufficient_scope"` otherwise. A bad, ended or stale token is 401
//! from the verifier (RFC 6750 §3), and 503 when usher is needed and unreachable. A film
//! the ETL has not labelled yet is treated as `recent`, so the rule fails closed.
//!
//! ```text
//! MOVIE_API_ISSUER=https://id.cinema.example MOVIE_API_CLIENT_ID=… \
//! MOVIE_API_CLIENT_SECRET=… MOVIE_API_BIND=127.0.0.1:8081 cargo run --example movie_api
//! ```
//!
//! The client must be a confidential client of usher allowed `client_credentials` with
//! the scope `films:label`; the movie API uses it for the revocation feed too.

mod etl;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::Date;
use time::format_description::BorrowedFormatItem;
use time::macros::{date, format_description};
use usher_verify::{
    Authenticated, Mode, Rejection, Requirement, Verifier, VerifierBuilder, VerifyError,
    bearer_token,
};

pub use etl::{label, run_etl, run_etl_every};

/// The audience of usher's access tokens for the cinema's services (`USHER_AUDIENCE`).
pub const AUDIENCE: &str = "cinema";
/// The role that may watch recent films.
pub const SUBSCRIBER: &str = "subscriber";
/// The permission that lets its holders watch recent films, asked of usher live.
pub const WATCH_RECENT: &str = "films:watch_recent";
/// The scope of the ETL's service token, required to send labels.
pub const LABEL_SCOPE: &str = "films:label";

/// Release dates on the wire: `YYYY-MM-DD`.
const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Where the movie API finds usher, and its confidential client there.
#[derive(Clone)]
pub struct Config {
    /// usher's issuer URL, exactly as the `iss` of its tokens.
    pub issuer: String,
    /// The movie API's client id (revocation feed and ETL).
    pub client_id: String,
    /// The client's secret.
    pub client_secret: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A film of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Film {
    /// Path segment naming the film.
    pub id: &'static str,
    /// The title.
    pub title: &'static str,
    /// The first release date.
    pub released: Date,
}

/// What the ETL decides about a film.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Released less than 3 years ago: subscribers only.
    Recent,
    /// Older: anyone may watch it.
    Catalogue,
}

/// The films on offer.
pub fn catalogue() -> Vec<Film> {
    let film = |id, title, released| Film {
        id,
        title,
        released,
    };
    vec![
        film("metropolis", "Metropolis", date!(1927 - 01 - 10)),
        film("casablanca", "Casablanca", date!(1942 - 11 - 26)),
        film("spirited-away", "Spirited Away", date!(2001 - 07 - 20)),
        film("the-long-queue", "The Long Queue", date!(2024 - 09 - 13)),
        film(
            "popcorn-at-midnight",
            "Popcorn at Midnight",
            date!(2025 - 11 - 14),
        ),
    ]
}

/// How often the ETL runs by default (`MOVIE_API_ETL_INTERVAL_SECS`).
pub const ETL_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// A verifier builder for the movie API: usher's issuer, the cinema audience, and the
/// client's credentials for the revocation feed (which makes feed mode the default).
/// Every other setting is the crate's default (live answers cached for 2 s and dropped
/// when the feed reports a role change).
pub fn verifier_builder(config: &Config) -> VerifierBuilder {
    Verifier::builder(&config.issuer, AUDIENCE)
        .feed_credentials(&config.client_id, &config.client_secret)
}

/// The movie API's shared state.
#[derive(Clone)]
struct MovieApi {
    /// Verifies callers' tokens.
    verifier: Verifier,
    /// The catalogue.
    films: Arc<Vec<Film>>,
    /// The ETL's labels by film id.
    labels: Arc<RwLock<HashMap<String, Label>>>,
}

impl MovieApi {
    /// The film named `id`.
    fn film(&self, id: &str) -> Option<Film> {
        self.films.iter().find(|f| f.id == id).copied()
    }

    /// The film's label, if the ETL has sent one.
    fn label(&self, id: &str) -> Option<Label> {
        let labels = self.labels.read().unwrap_or_else(|e| e.into_inner());
        labels.get(id).copied()
    }
}

/// A film as listed: `released` as `YYYY-MM-DD`, `label` null until the ETL has run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The film's id.
    pub id: String,
    /// The title.
    pub title: String,
    /// The release date, `YYYY-MM-DD`.
    pub released: String,
    /// The ETL's label, if any yet.
    pub label: Option<Label>,
}

/// The body of `GET /films`.
#[derive(Debug, Serialize, Deserialize)]
struct Listing {
    /// Every film, in catalogue order.
    films: Vec<Listed>,
}

/// The body of `PUT /films/labels`: film id → label.
#[derive(Debug, Serialize, Deserialize)]
struct Labels {
    /// Film id → label.
    labels: HashMap<String, Label>,
}

/// The movie API's routes, protected by `verifier` (built from [`verifier_builder`]).
pub fn app(verifier: Verifier) -> Router {
    let api = MovieApi {
        films: Arc::new(catalogue()),
        labels: Arc::default(),
        verifier: verifier.clone(),
    };
    Router::new()
        .route("/films", get(list_films))
        .route("/films/{id}/watch", get(watch))
        .route("/films/{id}/watch-live", get(watch_live))
        .route(
            "/films/labels",
            put(put_labels).layer(verifier.require_scope(LABEL_SCOPE)),
        )
        .with_state(api)
}

/// `GET /films`: open to everyone; a token, good or bad, is not looked at.
async fn list_films(State(api): State<MovieApi>) -> Json<Listing> {
    let films = api
        .films
        .iter()
        .map(|f| Listed {
            id: f.id.to_owned(),
            title: f.title.to_owned(),
            released: f.released.format(DATE).unwrap_or_default(),
            label: api.label(f.id),
        })
        .collect();
    Json(Listing { films })
}

/// Who may watch a recent film on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// The `subscriber` role from the token in this mode, else the live permission.
    RoleOrPermission(Mode),
    /// The live permission only.
    Permission,
}

/// `GET /films/{id}/watch`: a recent film needs the `subscriber` role from the token in
/// feed mode (offline when the verifier has no feed), or `films:watch_recent` live.
async fn watch(
    State(api): State<MovieApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mode = if api.verifier.has_feed() {
        Mode::Feed
    } else {
        Mode::Offline
    };
    watch_film(&api, &id, &headers, Rule::RoleOrPermission(mode)).await
}

/// `GET /films/{id}/watch-live`: a recent film needs `films:watch_recent` now, per
/// usher's live check.
async fn watch_live(
    State(api): State<MovieApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    watch_film(&api, &id, &headers, Rule::Permission).await
}

/// Lets anyone watch a catalogue film; a recent (or not yet labelled) film needs the
/// caller to meet `rule`. The answer names the stream and the viewer.
async fn watch_film(api: &MovieApi, id: &str, headers: &HeaderMap, rule: Rule) -> Response {
    let Some(film) = api.film(id) else {
        let body = json!({"error": "not_found", "error_description": "no such film"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let label = api.label(film.id);
    let viewer = if label == Some(Label::Catalogue) {
        None
    } else {
        match may_watch_recent(api, headers, rule).await {
            Ok(viewer) => viewer,
            Err(refusal) => return refusal,
        }
    };
    Json(json!({
        "film": film.id,
        "title": film.title,
        "label": label,
        "stream": format!("/streams/{}.m3u8", film.id),
        "viewer": viewer,
    }))
    .into_response()
}

/// Whether the caller may watch a recent film under `rule`: the viewer's `sub` (`None`
/// for anonymous), or the refusal to send.
async fn may_watch_recent(
    api: &MovieApi,
    headers: &HeaderMap,
    rule: Rule,
) -> Result<Option<String>, Response> {
    let verifier = &api.verifier;
    let refuse = |e| Rejection::new(e, verifier.realm().into()).into_response();
    let token = match bearer_token(headers) {
        Ok(token) => token,
        // No token: the anonymous principal, whose rights are usher's `anonymous` role.
        Err(VerifyError::Missing) => {
            return match verifier.check_anonymous(WATCH_RECENT).await {
                Ok(decision) if decision.allowed => Ok(None),
                Ok(_) => Err(subscription_needed(verifier, false)),
                Err(e) => Err(refuse(e)),
            };
        }
        Err(e) => return Err(refuse(e)),
    };
    let permission = Requirement::Permission(WATCH_RECENT.into());
    let decision = match rule {
        Rule::RoleOrPermission(mode) => {
            let role = Requirement::Role(SUBSCRIBER.into());
            match verifier.authorize(token, &role, mode).await {
                Err(VerifyError::InsufficientRole(_)) => {
                    verifier.authorize(token, &permission, Mode::Live).await
                }
                other => other,
            }
        }
        Rule::Permission => verifier.authorize(token, &permission, Mode::Live).await,
    };
    match decision {
        Ok(claims) => Ok(Some(claims.sub.clone())),
        Err(VerifyError::InsufficientRole(_) | VerifyError::InsufficientPermission(_)) => {
            Err(subscription_needed(verifier, true))
        }
        Err(e) => Err(refuse(e)),
    }
}

/// The 403 of a caller who may not watch a recent film. With a token: RFC 6750
/// `insufficient_scope`. Without one: `access_denied` and a bare `Bearer` challenge in
/// the realm, telling the client that signing in may help.
fn subscription_needed(verifier: &Verifier, with_token: bool) -> Response {
    let realm = verifier.realm();
    let (error, description, challenge) = if with_token {
        let description = "a subscription is needed to watch this film";
        let challenge = format!(
            "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{description}\""
        );
        ("insufficient_scope", description, challenge)
    } else {
        let description = "a subscription is needed to watch this film; sign in as a subscriber";
        (
            "access_denied",
            description,
            format!("Bearer realm=\"{realm}\""),
        )
    };
    let body = json!({"error": error, "error_description": description});
    let mut response = (StatusCode::FORBIDDEN, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// `PUT /films/labels` (behind the `films:label` scope guard): replaces the labels of
/// the films named; an unknown film is 422 and changes nothing.
async fn put_labels(
    State(api): State<MovieApi>,
    caller: Authenticated,
    Json(body): Json<Labels>,
) -> Response {
    let mut unknown: Vec<&str> = body
        .labels
        .keys()
        .filter(|id| api.film(id).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let body =
            json!({"error": "unknown_film", "error_description": "no such film", "films": unknown});
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
    }
    let count = body.labels.len();
    api.labels
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .extend(body.labels);
    tracing::info!(client_id = %caller.client_id, count, "film labels updated");
    Json(json!({"labelled": count, "client_id": caller.client_id})).into_response()
}

/// Reads the configuration from the environment, starts the movie API, labels the
/// films at once and then every `MOVIE_API_ETL_INTERVAL_SECS` (default a day) with the
/// ETL, and serves until stopped.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let config = Config {
        issuer: env("MOVIE_API_ISSUER")?,
        client_id: env("MOVIE_API_CLIENT_ID")?,
        client_secret: env("MOVIE_API_CLIENT_SECRET")?,
    };
    let every = match std::env::var("MOVIE_API_ETL_INTERVAL_SECS") {
        Ok(text) => match text.parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => return Err("MOVIE_API_ETL_INTERVAL_SECS must be a positive integer".into()),
        },
        Err(_) => ETL_INTERVAL,
    };
    let listener = tokio::net::TcpListener::bind(env("MOVIE_API_BIND")?).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let verifier = verifier_builder(&config).build().await?;
    let server = tokio::spawn(axum::serve(listener, app(verifier)).into_future());
    tracing::info!(%base, "movie API serving");
    let today = || time::OffsetDateTime::now_utc().date();
    tokio::spawn(run_etl_every(config, base, every, today));
    server.await??;
    Ok(())
}
