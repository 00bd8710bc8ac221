//! The server under test: `--url` parsed without a URL crate (plain `http://` only) and
//! resolved once. Only loopback addresses are accepted: this tool generates load, and
//! load goes to a server on the same machine, never to a remote host.

use std::net::SocketAddr;

use hyper::http::HeaderValue;

/// Where the requests go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The resolved socket address (loopback).
    pub(crate) addr: SocketAddr,
    /// The `Host` header value (`host:port` as written in the URL).
    pub(crate) host: HeaderValue,
    /// A path prefix from the URL (empty, or `/something` without a trailing slash).
    pub(crate) base_path: String,
}

impl Target {
    /// Parses `http://host[:port][/prefix]` and resolves the host; refuses any address
    /// that is not loopback.
    pub(crate) async fn resolve(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--url {url:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("--url {url:?}: expected http://host[:port]"));
        }
        let with_port = if has_port(authority) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("--url {url:?}: cannot resolve {authority}: {e}"))?
            .collect();
        let addr = addrs
            .iter()
            .copied()
            .find(SocketAddr::is_ipv4)
            .or_else(|| addrs.first().copied())
            .ok_or_else(|| format!("--url {url:?}: {authority} resolves to nothing"))?;
        if !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(format!(
                "--url {url:?}: {authority} is not a loopback address; usher-bench only \
                 loads a server on this machine"
            ));
        }
        let host =
            HeaderValue::from_str(authority).map_err(|_| format!("--url {url:?}: bad host"))?;
        Ok(Self {
            addr,
            host,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The request target for `path` (which starts with `/`), under the URL's prefix.
    pub(crate) fn path(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }
}

/// True when `authority` names a port (`host:port` or `[v6]:port`).
fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ports are recognised for names, IPv4 and bracketed IPv6 hosts.
    #[test]
    fn ports_are_recognised() {
        assert!(has_port("127.0.0.1:8080"));
        assert!(has_port("localhost:1"));
        assert!(has_port("[::1]:8080"));
        assert!(!has_port("localhost"));
        assert!(!has_port("[::1]"));
    }

    /// Loopback URLs resolve, with their prefix; anything else is refused.
    #[tokio::test]
    async fn only_loopback_is_accepted() {
        let t = Target::resolve("http://127.0.0.1:9/usher/").await.unwrap();
        assert_eq!(t.addr.port(), 9);
        assert_eq!(t.path("/healthz"), "/usher/healthz");
        assert!(Target::resolve("http://[::1]:9").await.is_ok());
        assert!(Target::resolve("http://10.0.0.1:9").await.is_err());
        assert!(Target::resolve("https://127.0.0.1:9").await.is_err());
    }
}
