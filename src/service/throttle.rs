//! Per-client rate limit of the browser-facing sign-in endpoints: each request from an
//! anonymous browser can park an authorization request and create a browser-session
//! record, so one client IP may make at most `USHER_PAGE_RATE_LIMIT` of them per
//! minute (a fixed window in the shared state). Calls the shared state only.

use std::net::IpAddr;
use std::time::Duration;

use crate::AppState;
use crate::token::sha256_hex;

/// The window of the page rate limit.
pub const PAGE_WINDOW: Duration = Duration::from_secs(60);

/// The counter's key: a digest of the client's address (IPv6: its /64, what one
/// subscriber usually holds), so that no address appears in the shared state.
fn page_key(ip: Option<IpAddr>) -> String {
    let subject = match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V4(v4)) => v4.to_string(),
        None => "unknown".to_owned(),
    };
    format!("page_rate:{}", sha256_hex(subject.as_bytes()))
}

/// Counts one request of `ip` to a rate-limited page. `Err(retry_after)` (seconds) when
/// the client is over the limit. When the shared state cannot count, the request is
/// let through (logged): an outage of Redis never locks every browser out.
pub async fn page_request(app: &AppState, ip: Option<IpAddr>) -> Result<(), u64> {
    let limit = app.config.page_rate_limit;
    if limit == 0 {
        return Ok(());
    }
    match app.state.incr_window(&page_key(ip), PAGE_WINDOW).await {
        Ok(n) if n > u64::from(limit) => {
            tracing::debug!("page rate limit reached");
            Err(PAGE_WINDOW.as_secs())
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "page rate counter unavailable; not enforcing");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Addresses of one IPv6 /64 share a counter; IPv4 addresses and other /64s do not;
    /// an IPv4-mapped IPv6 address counts as its IPv4 address.
    #[test]
    fn page_key_groups_ipv6_by_64() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            page_key(ip("2001:db8:1:2::1")),
            page_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            page_key(ip("2001:db8:1:2::1")),
            page_key(ip("2001:db8:1:3::1"))
        );
        assert_ne!(page_key(ip("203.0.113.9")), page_key(ip("203.0.113.10")));
        assert_eq!(
            page_key(ip("::ffff:203.0.113.9")),
            page_key(ip("203.0.113.9"))
        );
        assert!(page_key(ip("203.0.113.9")).starts_with("page_rate:"));
        assert!(!page_key(ip("203.0.113.9")).contains("203.0"));
    }
}
