//! The feed task: long polls `GET /api/v1/revocations` with the client's credentials
//! (client_secret_basic, RFC 6749 §2.3.1), applies each page to the [`FeedState`], and
//! handles gaps, refused credentials and outages (backing off). Calls [`crate::http`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

use super::{FeedPage, FeedState, unix_now_ms};
use crate::http::FetchError;

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Settings of the feed task.
#[derive(Clone)]
pub(crate) struct FeedConfig {
    pub(crate) url: String,
    /// The precomputed `Authorization: Basic …` value (RFC 6749 §2.3.1).
    pub(crate) authorization: String,
    pub(crate) wait: Duration,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 §2.3.1 requires.
pub(crate) fn basic_authorization(client_id: &str, secret: &str) -> String {
    fn form(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", form(client_id), form(secret)))
    )
}

enum PollError {
    /// 410 or 422: the cursor cannot be continued.
    Gap(StatusCode),
    /// 401/403: the client credentials are refused.
    Credentials(StatusCode),
    Other(FetchError),
}

async fn poll(
    http: &reqwest::Client,
    cfg: &FeedConfig,
    cursor: Option<&str>,
) -> Result<FeedPage, PollError> {
    let mut request = http
        .get(&cfg.url)
        .header(AUTHORIZATION, &cfg.authorization)
        .timeout(cfg.wait + cfg.timeout);
    if let Some(cursor) = cursor {
        request = request.query(&[("since", cursor), ("wait", &cfg.wait.as_secs().to_string())]);
    }
    let response = request
        .send()
        .await
        .map_err(|e| PollError::Other(FetchError::from_reqwest(&e)))?;
    match response.status() {
        StatusCode::OK => response
            .json::<FeedPage>()
            .await
            .map_err(|e| PollError::Other(FetchError::from_reqwest(&e))),
        s @ (StatusCode::GONE | StatusCode::UNPROCESSABLE_ENTITY) => Err(PollError::Gap(s)),
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(PollError::Credentials(s)),
        s => Err(PollError::Other(FetchError::new(format!(
            "revocation feed answered {s}"
        )))),
    }
}

/// The feed task: polls until the verifier is dropped (it aborts the task).
pub(crate) async fn run(http: reqwest::Client, cfg: FeedConfig, state: Arc<FeedState>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let cursor = state.cursor();
        let result = poll(&http, &cfg, cursor.as_deref()).await;
        let now_ms = unix_now_ms();
        let pause = match result {
            Ok(page) => {
                state.apply(&page.items, now_ms.div_euclid(1000));
                state.advance(page.next_cursor, now_ms);
                backoff = MIN_BACKOFF;
                None
            }
            Err(PollError::Gap(status)) => {
                tracing::warn!(%status, "usher-verify: revocation feed gap; tokens issued before the next answer will be stale");
                state.begin_gap();
                None
            }
            Err(PollError::Credentials(status)) => {
                tracing::error!(%status, "usher-verify: the revocation feed refuses the client credentials; feed routes answer 503 once the lag is exceeded");
                Some(MAX_BACKOFF)
            }
            Err(PollError::Other(e)) => {
                tracing::warn!(error = %e, "usher-verify: revocation feed unreachable; retrying");
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                Some(pause)
            }
        };
        if pause.is_some() && state.lag_ms(now_ms) > state.retention.saturating_mul(1000) {
            // Entries older than usher's retention may be gone: resuming would miss them.
            state.begin_gap();
        }
        state.prune(now_ms.div_euclid(1000));
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Client credentials are form-urlencoded before Basic encoding (RFC 6749 §2.3.1).
    #[test]
    fn basic_credentials_are_form_encoded() {
        let value = basic_authorization("movie api", "s:e/c");
        let decoded = STANDARD
            .decode(value.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "movie+api:s%3Ae%2Fc");
    }
}
