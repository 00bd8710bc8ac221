//! OAuth scopes (RFC 6749 §3.3). Parsing and the subset test are oxide-auth's `Scope`;
//! usher adds a canonical order so responses and tokens are stable.

use oxide_auth::primitives::scope::Scope;

use super::{OAuthCode, OAuthError};

/// The scopes usher understands, in the order they are written.
pub const KNOWN: &[&str] = &["openid", "profile", "email", "roles", "offline_access"];

/// Parses a space-separated scope; bad characters are `invalid_scope`.
pub fn parse(text: &str) -> Result<Scope, OAuthError> {
    text.parse::<Scope>()
        .map_err(|_| OAuthError::new(OAuthCode::InvalidScope, "the scope has invalid characters"))
}

/// True when every token of `requested` is in `allowed`.
pub fn within(requested: &Scope, allowed: &Scope) -> bool {
    requested.allow_access(allowed)
}

/// The scope as a string: known scopes first in [`KNOWN`] order, then the rest sorted.
pub fn canonical(scope: &Scope) -> String {
    let mut tokens: Vec<&str> = scope.iter().collect();
    tokens.sort_by_key(|t| (KNOWN.iter().position(|k| k == t).unwrap_or(KNOWN.len()), *t));
    tokens.join(" ")
}

/// True when the space-separated `scope` contains `token`.
pub fn has(scope: &str, token: &str) -> bool {
    scope.split(' ').any(|t| t == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Canonical order, subset test and character validation follow RFC 6749 §3.3.
    #[test]
    fn parse_order_subset() {
        let s = parse("roles openid  zeta email").unwrap();
        assert_eq!(canonical(&s), "openid email roles zeta");
        assert!(within(&parse("openid").unwrap(), &s));
        assert!(!within(&parse("openid admin").unwrap(), &s));
        assert!(within(&parse("").unwrap(), &s));
        assert_eq!(parse("a\"b").unwrap_err().code, OAuthCode::InvalidScope);
        assert!(has("openid email", "email"));
        assert!(!has("openid emails", "email"));
    }
}
