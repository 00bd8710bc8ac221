//! The catalogue's ETL step: labels each film `recent` (released less than 3 years
//! before the day it runs for) or `catalogue`, and sends the labels to the movie API with
//! a `client_credentials` token from usher. [`run_etl`] runs once for a given day (tests
//! pass a fixed one); [`run_etl_every`] runs it at start and then periodically, each time
//! for the day returned by its `today` function.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use time::Date;

use super::{Config, DATE, LABEL_SCOPE, Label, Labels, Listing};

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

/// Runs [`run_etl`] at once and then every `every`, each time as of `today()`, until the
/// task is dropped. A failed run is logged and retried at the next tick.
pub async fn run_etl_every(
    config: Config,
    movie_api: String,
    every: Duration,
    today: impl Fn() -> Date,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let day = today();
        match run_etl(&config, &movie_api, day).await {
            Ok(labels) => tracing::info!(films = labels.len(), %day, "films labelled"),
            Err(e) => {
                tracing::warn!(error = %e, %day, "film labelling failed; retrying at the next run")
            }
        }
    }
}
