//! The cinema's movie API: a small catalogue service protected by `usher-verify`.
//!
//! - `GET /films` is open to everyone, anonymous included, and shows each film's label.
//! - `GET /films/{id}/watch`: anyone may watch a `catalogue` film, no token needed. A
//!   `recent` film needs the `subscriber` role, read from the token and checked against
//!   usher's revocation feed (feed mode: a logout is refused within about a second).
//! - `GET /films/{id}/watch-live`: the same, but a `recent` film needs the permission
//!   `films:watch_recent` per usher's live check (a role taken away is refused at once).
//! - `PUT /films/labels` takes the labels of the ETL step ([`run_etl`]), which signs in
//!   to usher with the `client_credentials` grant: a service token with the scope
//!   `films:label`, verified by the same [`Verifier`].
//!
//! The superuser can watch anything. Refusals come from the verifier (RFC 6750 §3): 401
//! for a missing or bad token, 403 with `insufficient_scope` for a missing role or
//! permission. A film the ETL has not labelled yet is treated as `recent`, so the rule
//! fails closed.
//!
//! ```text
//! MOVIE_API_ISSUER=https://id.cinema.example MOVIE_API_CLIENT_ID=… \
//! MOVIE_API_CLIENT_SECRET=… MOVIE_API_BIND=127.0.0.1:8081 cargo run --example movie_api
//! ```
//!
//! The client must be a confidential client of usher allowed `client_credentials` with
//! the scope `films:label`; the movie API uses it for the revocation feed too.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::Date;
use time::format_description::BorrowedFormatItem;
use time::macros::{date, format_description};
use usher_verify::{
    Authenticated, Mode, Rejection, Requirement, Verifier, VerifierBuilder, bearer_token,
};

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

/// `recent` when `released` is less than 3 years before `today`, else `catalogue`. A
/// film released exactly 3 years ago is `catalogue`; on 29 February the cut-off is
/// 28 February.
pub fn label(released: Date, today: Date) -> Label {
    let year = today.year() - 3;
    let cutoff = today
        .replace_year(year)
        .or_else(|_| today.replace_day(28).and_then(|d| d.replace_year(year)))
        .unwrap_or(Date::MIN);
    if released > cutoff {
        Label::Recent
    } else {
        Label::Catalogue
    }
}

/// A verifier builder for the movie API: usher's issuer, the cinema audience, and the
/// client's credentials for the revocation feed (which makes feed mode the default).
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

/// `GET /films/{id}/watch`: a recent film needs the `subscriber` role from the token, in
/// feed mode (offline when the verifier has no feed).
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
    let requirement = Requirement::Role(SUBSCRIBER.into());
    watch_film(&api, &id, &headers, &requirement, mode).await
}

/// `GET /films/{id}/watch-live`: a recent film needs `films:watch_recent` now, per
/// usher's live check.
async fn watch_live(
    State(api): State<MovieApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let requirement = Requirement::Permission(WATCH_RECENT.into());
    watch_film(&api, &id, &headers, &requirement, Mode::Live).await
}

/// Lets anyone watch a catalogue film; a recent (or not yet labelled) film needs a token
/// meeting `requirement` in `mode`. The answer names the stream and the viewer.
async fn watch_film(
    api: &MovieApi,
    id: &str,
    headers: &HeaderMap,
    requirement: &Requirement,
    mode: Mode,
) -> Response {
    let Some(film) = api.film(id) else {
        let body = json!({"error": "not_found", "error_description": "no such film"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let label = api.label(film.id);
    let viewer = if label == Some(Label::Catalogue) {
        None
    } else {
        let refuse = |e| Rejection::new(e, api.verifier.realm().into()).into_response();
        let token = match bearer_token(headers) {
            Ok(token) => token,
            Err(e) => return refuse(e),
        };
        match api.verifier.authorize(token, requirement, mode).await {
            Ok(claims) => Some(claims.sub.clone()),
            Err(e) => return refuse(e),
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

/// Why the ETL step failed. No variant carries a secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    /// usher's discovery document or token endpoint could not be used.
    #[error("cannot get a token from usher: {0}")]
    Issuer(String),
    /// The movie API's listing could not be read.
    #[error("cannot read the catalogue: {0}")]
    Catalogue(String),
    /// The movie API refused the labels.
    #[error("the movie API refused the labels: {0}")]
    Load(StatusCode),
}

/// The fields of usher's discovery document the ETL needs.
#[derive(Deserialize)]
struct Discovery {
    /// Where to ask for tokens.
    token_endpoint: String,
}

/// The fields of a token response the ETL needs.
#[derive(Deserialize)]
struct TokenResponse {
    /// The service token.
    access_token: String,
}

/// The ETL step: reads the listing of the movie API at `movie_api`, labels each film
/// as of `today`, gets a service token from usher (`client_credentials`, scope
/// `films:label`, client_secret_basic) and sends the labels to `PUT /films/labels`.
/// Returns the labels sent, sorted by film id.
pub async fn run_etl(
    config: &Config,
    movie_api: &str,
    today: Date,
) -> Result<Vec<(String, Label)>, EtlError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|_| EtlError::Issuer("no HTTP client".into()))?;
    let movie_api = movie_api.trim_end_matches('/');
    let catalogue = |e: reqwest::Error| EtlError::Catalogue(e.without_url().to_string());
    let listing: Listing = http
        .get(format!("{movie_api}/films"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(catalogue)?
        .json()
        .await
        .map_err(catalogue)?;
    let mut labels = Vec::with_capacity(listing.films.len());
    for film in listing.films {
        let released = Date::parse(&film.released, DATE)
            .map_err(|_| EtlError::Catalogue(format!("bad release date of {}", film.id)))?;
        labels.push((film.id, label(released, today)));
    }
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    let token = service_token(&http, config).await?;
    let body = Labels {
        labels: labels.iter().cloned().collect(),
    };
    let response = http
        .put(format!("{movie_api}/films/labels"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| EtlError::Catalogue(e.without_url().to_string()))?;
    if response.status() != StatusCode::OK {
        return Err(EtlError::Load(response.status()));
    }
    Ok(labels)
}

/// A `client_credentials` token (RFC 6749 §4.4) with the scope `films:label`, from the
/// token endpoint named by usher's discovery document.
async fn service_token(http: &reqwest::Client, config: &Config) -> Result<String, EtlError> {
    let issuer_error = |e: reqwest::Error| EtlError::Issuer(e.without_url().to_string());
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        config.issuer.trim_end_matches('/')
    );
    let discovery: Discovery = http
        .get(discovery_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(issuer_error)?
        .json()
        .await
        .map_err(issuer_error)?;
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    let form = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let token: TokenResponse = http
        .post(discovery.token_endpoint)
        .basic_auth(form(&config.client_id), Some(form(&config.client_secret)))
        .form(&[("grant_type", "client_credentials"), ("scope", LABEL_SCOPE)])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(issuer_error)?
        .json()
        .await
        .map_err(issuer_error)?;
    Ok(token.access_token)
}

/// Reads the configuration from the environment, starts the movie API, labels the
/// films once with the ETL, and serves until stopped.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let config = Config {
        issuer: env("MOVIE_API_ISSUER")?,
        client_id: env("MOVIE_API_CLIENT_ID")?,
        client_secret: env("MOVIE_API_CLIENT_SECRET")?,
    };
    let listener = tokio::net::TcpListener::bind(env("MOVIE_API_BIND")?).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let verifier = verifier_builder(&config).build().await?;
    let server = tokio::spawn(axum::serve(listener, app(verifier)).into_future());
    let labels = run_etl(&config, &base, time::OffsetDateTime::now_utc().date()).await?;
    tracing::info!(films = labels.len(), %base, "movie API labelled and serving");
    server.await??;
    Ok(())
}
