//! The HTTP client side: one reqwest client per verifier, JSON GETs, and
//! `Cache-Control: max-age` (RFC 9111 §5.2.2.1). Errors are summarised for the log;
//! response bodies are never logged. Calls nothing else in the crate.

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;
use serde::de::DeserializeOwned;

/// A failed request to usher, with a log-safe summary.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FetchError(String);

impl FetchError {
    /// An error with this summary.
    pub(crate) fn new(summary: impl Into<String>) -> Self {
        Self(summary.into())
    }

    /// A summary of a reqwest error without its URL's query (it may hold a cursor).
    pub(crate) fn from_reqwest(e: &reqwest::Error) -> Self {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else if e.is_decode() {
            "unexpected response body"
        } else {
            "request failed"
        };
        Self(format!(
            "{what} ({})",
            e.url().map(|u| u.path()).unwrap_or("?")
        ))
    }
}

/// The client every verifier request goes through.
pub(crate) fn client(connect_timeout: Duration, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("usher-verify/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// GETs `url` and parses a 200 JSON answer; returns it with its `max-age`, if any.
pub(crate) async fn get_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<(T, Option<Duration>), FetchError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| FetchError::from_reqwest(&e))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(FetchError::new(format!(
            "{} answered {}",
            response.url().path(),
            response.status()
        )));
    }
    let max_age = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = response
        .json::<T>()
        .await
        .map_err(|e| FetchError::from_reqwest(&e))?;
    Ok((body, max_age))
}

/// The freshness lifetime of a `Cache-Control` value: `max-age`, or zero for
/// `no-cache`/`no-store`; `None` when it says neither.
pub(crate) fn max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            found = arg
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `max-age` is read from any position; `no-store`/`no-cache` mean zero; other
    /// directives alone give no lifetime (RFC 9111 §5.2.2).
    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("MAX-AGE=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("max-age=60, no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
