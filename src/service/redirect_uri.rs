//! Redirect URIs: the rules of a registered one (absolute, no fragment, https unless
//! loopback), matching a presented one against the registered ones at the
//! authorization endpoint (RFC 6749 §3.1.2, RFC 8252 §7.3) and appending response
//! parameters.
//! Calls nothing.

use super::FieldError;
use super::authorize::Untrusted;

/// Checks a redirect URI: absolute, no fragment, https unless loopback (RFC 8252 §7.3).
pub fn check_redirect_uri(field: &str, uri: &str) -> Option<FieldError> {
    let bad = |why: &str| Some(FieldError::new(field, "format", why));
    if uri.contains('#') {
        return bad("must not have a fragment");
    }
    let Ok(parsed) = uri.parse::<axum::http::Uri>() else {
        return bad("must be an absolute URI");
    };
    let Some(host) = parsed.host() else {
        return bad("must be an absolute URI");
    };
    match parsed.scheme_str() {
        Some("https") => None,
        Some("http") if is_loopback(host) => None,
        Some("http") => bad("must use https unless the host is a loopback address"),
        _ => bad("must be an absolute https URI"),
    }
}

/// True for `localhost`, `127.0.0.0/8` and `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Appends query parameters to a URI (RFC 6749 §3.1.2: keep its own query).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", ser.finish())
}

/// True when `presented` matches a registered URI exactly, or, for loopback URIs, in
/// everything but the port (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let Ok(p) = presented.parse::<axum::http::Uri>() else {
        return false;
    };
    let Some(p_host) = p.host() else {
        return false;
    };
    if p.scheme_str() != Some("http") || !is_loopback(p_host) {
        return false;
    }
    registered.iter().any(|r| {
        r.parse::<axum::http::Uri>().is_ok_and(|r| {
            r.scheme_str() == Some("http")
                && r.host() == Some(p_host)
                && r.path_and_query().map(|x| x.as_str()) == p.path_and_query().map(|x| x.as_str())
        })
    })
}

/// Checks a presented redirect URI against the registered ones: no fragment (RFC 6749
/// §3.1.2; checked on the text before matching, since a URI parser drops the fragment
/// and the code would land in it), then [`redirect_uri_matches`].
pub fn match_redirect_uri(registered: &[String], presented: &str) -> Result<(), Untrusted> {
    if presented.contains('#') {
        return Err(Untrusted::RedirectUriFragment);
    }
    if !redirect_uri_matches(registered, presented) {
        return Err(Untrusted::RedirectUriNotRegistered);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redirect URIs: absolute, no fragment, https unless loopback.
    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://cinema.example/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
            "https://a.b/cb?x=1",
        ] {
            assert!(check_redirect_uri("r", ok).is_none(), "{ok}");
        }
        for bad in [
            "http://cinema.example/cb",
            "https://a.b/cb#frag",
            "/relative",
            "cinema://cb",
            "not a uri",
        ] {
            assert!(check_redirect_uri("r", bad).is_some(), "{bad}");
        }
    }

    /// A redirect URI with a fragment is refused before matching (RFC 6749 §3.1.2),
    /// though a URI parser drops the fragment and the loopback rule would match it.
    #[test]
    fn redirect_uri_with_fragment_is_refused() {
        let reg = vec![
            "http://127.0.0.1/cb".to_owned(),
            "https://a.example/cb".to_owned(),
        ];
        for uri in [
            "http://127.0.0.1:9000/cb#x",
            "http://127.0.0.1/cb#",
            "https://a.example/cb#frag",
        ] {
            assert_eq!(
                match_redirect_uri(&reg, uri),
                Err(Untrusted::RedirectUriFragment),
                "{uri}"
            );
        }
        assert_eq!(match_redirect_uri(&reg, "http://127.0.0.1:9000/cb"), Ok(()));
        assert_eq!(
            match_redirect_uri(&reg, "https://a.example/other"),
            Err(Untrusted::RedirectUriNotRegistered)
        );
    }

    /// Exact match, and any port for loopback redirect URIs (RFC 8252 §7.3) only.
    #[test]
    fn redirect_uri_matching() {
        let reg = vec![
            "https://cinema.example/cb".to_owned(),
            "http://127.0.0.1/cb".to_owned(),
        ];
        assert!(redirect_uri_matches(&reg, "https://cinema.example/cb"));
        assert!(!redirect_uri_matches(&reg, "https://cinema.example/cb/"));
        assert!(!redirect_uri_matches(
            &reg,
            "https://cinema.example:8443/cb"
        ));
        assert!(redirect_uri_matches(&reg, "http://127.0.0.1:51234/cb"));
        assert!(!redirect_uri_matches(&reg, "http://127.0.0.1:51234/other"));
        assert!(!redirect_uri_matches(&reg, "http://localhost:51234/cb"));
        assert_eq!(
            with_query("https://a/cb?x=1", &[("code", "c d")]),
            "https://a/cb?x=1&code=c+d"
        );
    }
}
