//! The claims of an usher access token (RFC 9068 §2.2 plus usher's `sid`, `roles`,
//! `superuser`) and their validation: `iss` exact, `aud` contains the audience, `exp`
//! and `nbf` with the leeway (RFC 7519 §4.1.4, §4.1.5). Pure.

use serde::{Deserialize, Deserializer};

use crate::VerifyError;

/// The claims of a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user id, or the client id of a `client_credentials` token.
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The login session; `None` for `client_credentials` (service) tokens.
    pub sid: Option<String>,
    /// The granted scope, space-separated (RFC 6749 §3.3).
    pub scope: String,
    /// The user's role names when the token was issued (empty for service tokens).
    pub roles: Vec<String>,
    /// The user was a superuser when the token was issued.
    pub superuser: bool,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issue time, Unix seconds.
    pub iat: i64,
    /// The token id.
    pub jti: String,
}

impl Claims {
    /// True when `scope` is one of the granted scopes (exact, case-sensitive).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// True when the token names the role. Superusers are not special here; the
    /// guards and extractors let them through every requirement.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// True for a token issued to a user (it has a session), false for a service token.
    pub fn is_user(&self) -> bool {
        self.sid.is_some()
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, expected: &str) -> bool {
        match self {
            Self::One(aud) => aud == expected,
            Self::Many(auds) => auds.iter().any(|a| a == expected),
        }
    }
}

/// A NumericDate may carry a fraction (RFC 7519 §2); usher writes whole seconds.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let value = f64::deserialize(d)?;
    if !value.is_finite() {
        return Err(serde::de::Error::custom("not a NumericDate"));
    }
    Ok(value.floor() as i64)
}

fn optional_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    numeric_date(d).map(Some)
}

#[derive(Deserialize)]
struct RawClaims {
    iss: String,
    sub: String,
    aud: Audience,
    client_id: String,
    #[serde(deserialize_with = "numeric_date")]
    exp: i64,
    #[serde(deserialize_with = "numeric_date")]
    iat: i64,
    #[serde(default, deserialize_with = "optional_numeric_date")]
    nbf: Option<i64>,
    jti: String,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    superuser: Option<bool>,
}

/// What the claims must match.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) leeway: i64,
}

/// Parses a verified payload and checks issuer, audience and the time window at `now`.
pub(crate) fn validate(
    payload: &[u8],
    expected: &Expected,
    now: i64,
) -> Result<Claims, VerifyError> {
    let raw: RawClaims = crate::jws::json_object(payload)?;
    if raw.iss != expected.issuer {
        return Err(VerifyError::WrongIssuer);
    }
    if !raw.aud.contains(&expected.audience) {
        return Err(VerifyError::WrongAudience);
    }
    let claims = Claims {
        sub: raw.sub,
        client_id: raw.client_id,
        sid: raw.sid,
        scope: raw.scope.unwrap_or_default(),
        roles: raw.roles.unwrap_or_default(),
        superuser: raw.superuser.unwrap_or(false),
        exp: raw.exp,
        iat: raw.iat,
        jti: raw.jti,
    };
    check_time(&claims, raw.nbf, expected.leeway, now)?;
    Ok(claims)
}

/// `exp` (RFC 7519 §4.1.4: refused on or after it) and `nbf` (§4.1.5), with `leeway`.
pub(crate) fn check_time(
    claims: &Claims,
    nbf: Option<i64>,
    leeway: i64,
    now: i64,
) -> Result<(), VerifyError> {
    if now >= claims.exp.saturating_add(leeway) {
        return Err(VerifyError::Expired);
    }
    if nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(VerifyError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expected() -> Expected {
        Expected {
            issuer: "https://id.example".into(),
            audience: "movies".into(),
            leeway: 5,
        }
    }

    fn claims() -> serde_json::Value {
        json!({
            "iss": "https://id.example", "sub": "u1", "aud": "movies", "client_id": "web",
            "exp": 1000, "iat": 900, "jti": "j1", "sid": "s1", "scope": "openid films",
            "roles": ["subscriber"],
        })
    }

    fn run(value: &serde_json::Value, now: i64) -> Result<Claims, VerifyError> {
        validate(&serde_json::to_vec(value).unwrap(), &expected(), now)
    }

    /// A valid payload yields typed claims; scopes and roles are matched exactly.
    #[test]
    fn valid_claims_are_typed() {
        let c = run(&claims(), 950).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.sid.as_deref(), c.exp, c.iat),
            ("u1", Some("s1"), 1000, 900)
        );
        assert!(c.has_scope("films") && !c.has_scope("film") && c.has_role("subscriber"));
        assert!(!c.superuser && c.is_user());
        let mut v = claims();
        v["aud"] = json!(["other", "movies"]);
        v["superuser"] = json!(true);
        v["exp"] = json!(1000.7);
        assert!(run(&v, 950).unwrap().superuser);
    }

    /// Issuer is exact, the audience must be listed (RFC 7519 §4.1.1, §4.1.3), and a
    /// missing required claim or a mistyped one is malformed.
    #[test]
    fn issuer_audience_and_required_claims() {
        let mut v = claims();
        v["iss"] = json!("https://id.example/");
        assert_eq!(run(&v, 950).unwrap_err(), VerifyError::WrongIssuer);
        let mut v = claims();
        v["aud"] = json!(["other"]);
        assert_eq!(run(&v, 950).unwrap_err(), VerifyError::WrongAudience);
        for key in ["iss", "sub", "aud", "client_id", "exp", "iat", "jti"] {
            let mut v = claims();
            v.as_object_mut().unwrap().remove(key);
            assert_eq!(run(&v, 950).unwrap_err(), VerifyError::Malformed, "{key}");
        }
        let mut v = claims();
        v["roles"] = json!("subscriber");
        assert_eq!(run(&v, 950).unwrap_err(), VerifyError::Malformed);
    }

    /// `exp` is refused from exp + leeway on; `nbf` is refused before nbf - leeway.
    #[test]
    fn time_window_with_leeway() {
        assert!(run(&claims(), 1004).is_ok());
        assert_eq!(run(&claims(), 1005).unwrap_err(), VerifyError::Expired);
        let mut v = claims();
        v["nbf"] = json!(960);
        assert!(run(&v, 955).is_ok());
        assert_eq!(run(&v, 954).unwrap_err(), VerifyError::NotYetValid);
    }
}
