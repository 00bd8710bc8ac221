//! Configuration: defaults, then an optional TOML file, then `USHER_*` environment
//! variables (figment layers them in that order). Secrets may come from a file named
//! by `USHER_<KEY>_FILE`. Validation happens once, at start, and every failure is a
//! one-line message naming the key and the bad value. Calls nothing else in the crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

mod report;
use report::describe_figment_error;

/// Every configuration key, as written in the TOML file (environment: `USHER_` + upper case).
pub const KEYS: &[&str] = &[
    "bind",
    "issuer",
    "audience",
    "database_url",
    "database_max_connections",
    "database_timeout",
    "redis_url",
    "redis_prefix",
    "keys_dir",
    "access_token_ttl",
    "refresh_token_ttl",
    "trusted_proxies",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "hash_pool_size",
    "hash_queue_size",
    "login_lockout_threshold",
    "login_lockout_window",
    "page_rate_limit",
    "max_body_bytes",
    "feed_sync_interval",
    "feed_max_waiters",
    "feed_max_waiters_per_client",
    "feed_stream_lifetime",
    "feed_page_size",
    "log",
    "log_format",
    "browser_session_ttl",
    "key_activation_delay",
    "header_read_timeout",
    "id_token_on_refresh",
    "cinema_web_redirect_uris",
    "cinema_web_post_logout_redirect_uris",
];

/// The longest duration any key accepts (10 years): times are Unix seconds in an `i64`,
/// and `now + ttl` must never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 24 * 3600);

/// The shortest `database_timeout` accepted.
pub const MIN_DATABASE_TIMEOUT: Duration = Duration::from_millis(100);

/// Keys whose value may be read from a file named by `USHER_<KEY>_FILE`.
const SECRET_KEYS: &[&str] = &["database_url", "redis_url"];

/// The validated configuration of one usher process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket address the HTTP server listens on.
    pub bind: SocketAddr,
    /// The issuer identifier (`iss`), an absolute http(s) URL without a trailing slash.
    pub issuer: String,
    /// The `aud` of access tokens; usher's own bearer endpoints require it.
    pub audience: String,
    /// Database URL: `sqlite://…` (default `sqlite://usher.db`) or `postgres://…`.
    pub database_url: SecretString,
    /// Upper bound of pooled database connections.
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before answering 503.
    pub database_timeout: Duration,
    /// Redis URL; when absent the shared state lives in process memory.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key and channel (`<prefix>:<kind>:…`).
    pub redis_prefix: String,
    /// Directory of the RSA signing keys (PEM).
    pub keys_dir: PathBuf,
    /// Lifetime of access tokens (and ID tokens).
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token from its issue; each rotation starts a new one.
    pub refresh_token_ttl: Duration,
    /// Peers whose `X-Forwarded-For` and `X-Request-Id` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id time cost (passes).
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Password hashes computed at once (blocking threads).
    pub hash_pool_size: usize,
    /// Password hashes allowed to wait for a thread before the endpoint answers 503.
    pub hash_queue_size: usize,
    /// Failed password checks of one login, within the window, before it is locked; 0 disables.
    pub login_lockout_threshold: u32,
    /// The window of the lockout counter.
    pub login_lockout_window: Duration,
    /// Requests per minute one client IP (an IPv6 /64) may make to the browser-facing
    /// sign-in endpoints (`/oauth2/authorize`, `/login`, `/signup`, `/consent`,
    /// `/oauth2/logout`) before they answer 429; 0 disables.
    pub page_rate_limit: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How often each instance re-reads the change feed from the database as a safety net.
    pub feed_sync_interval: Duration,
    /// Most revocation-feed long polls and event streams held at once by this instance;
    /// more are answered 429.
    pub feed_max_waiters: usize,
    /// Most of them held at once for one client.
    pub feed_max_waiters_per_client: usize,
    /// Longest life of one revocation-feed event stream; clients reconnect with
    /// `Last-Event-ID`.
    pub feed_stream_lifetime: Duration,
    /// Most change-feed rows read per database query of the revocation feed.
    pub feed_page_size: i64,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log: String,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// Lifetime of a browser session (login on usher's own pages).
    pub browser_session_ttl: Duration,
    /// How long a new signing key is published before it signs.
    pub key_activation_delay: Duration,
    /// How long a client may take to send a request's headers before its connection is
    /// closed (slow-header attacks).
    pub header_read_timeout: Duration,
    /// Whether the refresh grant also returns a new ID token when the scope has `openid`
    /// (the default; OIDC Core §12.2 allows leaving it out, which saves an RSA signature
    /// per refresh).
    pub id_token_on_refresh: bool,
    /// Redirect URIs of the built-in `cinema-web` client.
    pub cinema_web_redirect_uris: Vec<String>,
    /// Post-logout redirect URIs of the built-in `cinema-web` client.
    pub cinema_web_post_logout_redirect_uris: Vec<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration error: one line naming the key and the value.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// The raw, layered form before validation. Unknown members can only come from the
/// TOML file (unknown `USHER_*` variables are filtered out and warned about): a typo
/// there is an error, not a silently ignored setting.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    bind: String,
    issuer: Option<String>,
    #[serde(deserialize_with = "string_like")]
    audience: String,
    database_url: Option<String>,
    database_max_connections: u32,
    #[serde(with = "humantime_serde")]
    database_timeout: Duration,
    redis_url: Option<String>,
    #[serde(deserialize_with = "string_like")]
    redis_prefix: String,
    keys_dir: PathBuf,
    #[serde(with = "humantime_serde")]
    access_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    refresh_token_ttl: Duration,
    #[serde(deserialize_with = "string_or_list")]
    trusted_proxies: Vec<String>,
    argon2_memory_kib: u32,
    argon2_iterations: u32,
    argon2_parallelism: u32,
    hash_pool_size: Option<usize>,
    hash_queue_size: usize,
    login_lockout_threshold: u32,
    #[serde(with = "humantime_serde")]
    login_lockout_window: Duration,
    page_rate_limit: u32,
    max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    feed_sync_interval: Duration,
    feed_max_waiters: usize,
    feed_max_waiters_per_client: usize,
    #[serde(with = "humantime_serde")]
    feed_stream_lifetime: Duration,
    feed_page_size: i64,
    log: String,
    log_format: LogFormat,
    #[serde(with = "humantime_serde")]
    browser_session_ttl: Duration,
    #[serde(with = "humantime_serde")]
    key_activation_delay: Duration,
    #[serde(with = "humantime_serde")]
    header_read_timeout: Duration,
    id_token_on_refresh: bool,
    #[serde(deserialize_with = "string_or_list")]
    cinema_web_redirect_uris: Vec<String>,
    #[serde(deserialize_with = "string_or_list")]
    cinema_web_post_logout_redirect_uris: Vec<String>,
}

impl Default for Raw {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            issuer: None,
            audience: "cinema".into(),
            database_url: None,
            database_max_connections: 10,
            database_timeout: Duration::from_secs(3),
            redis_url: None,
            redis_prefix: "usher".into(),
            keys_dir: PathBuf::from("jwks"),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            trusted_proxies: Vec::new(),
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_pool_size: None,
            hash_queue_size: 64,
            login_lockout_threshold: 10,
            login_lockout_window: Duration::from_secs(15 * 60),
            page_rate_limit: 120,
            max_body_bytes: 64 * 1024,
            feed_sync_interval: Duration::from_secs(5),
            feed_max_waiters: 256,
            feed_max_waiters_per_client: 8,
            feed_stream_lifetime: Duration::from_secs(300),
            feed_page_size: 500,
            log: "info".into(),
            log_format: LogFormat::Text,
            browser_session_ttl: Duration::from_secs(7 * 24 * 3600),
            key_activation_delay: Duration::from_secs(600),
            header_read_timeout: Duration::from_secs(10),
            id_token_on_refresh: true,
            cinema_web_redirect_uris: Vec::new(),
            cinema_web_post_logout_redirect_uris: Vec::new(),
        }
    }
}

/// Accepts a string, or a number written where a string was meant (`USHER_AUDIENCE=123`).
fn string_like<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Scalar::deserialize(d)? {
        Scalar::Text(s) => s,
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Bool(b) => b.to_string(),
    })
}

/// Accepts a TOML array of strings or one comma-separated string (the environment form).
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        One(String),
        Many(Vec<String>),
    }
    Ok(match L::deserialize(d)? {
        L::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        L::Many(v) => v,
    })
}

impl Config {
    /// Loads defaults, then `file` (if given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &vars)
    }

    /// Loads defaults, then `file`, then the given `USHER_*` variables (testable form).
    pub fn load_from(file: Option<&Path>, vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Raw::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let mut env: Vec<(String, String)> = Vec::new();
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("USHER_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if let Some(base) = key.strip_suffix("_file")
                && SECRET_KEYS.contains(&base)
            {
                let content = std::fs::read_to_string(value).map_err(|e| {
                    ConfigError(format!(
                        "{name}={value}: cannot read the file ({})",
                        e.kind()
                    ))
                })?;
                env.push((base.to_owned(), content.trim().to_owned()));
            } else if KEYS.contains(&key.as_str()) {
                env.push((key, value.clone()));
            }
        }
        let env_map: std::collections::BTreeMap<String, String> = env.into_iter().collect();
        for (key, value) in &env_map {
            figment = figment.merge(Serialized::default(key, parse_env_value(key, value)));
        }
        let raw: Raw = figment.extract().map_err(|e| describe_figment_error(&e))?;
        Self::validate(raw)
    }

    /// `USHER_*` variables that name no known key (warned about at start).
    pub fn unknown_env_keys(vars: &[(String, String)]) -> Vec<String> {
        vars.iter()
            .filter_map(|(name, _)| {
                let key = name.strip_prefix("USHER_")?.to_ascii_lowercase();
                if key.starts_with("test_") {
                    return None;
                }
                let base = key.strip_suffix("_file").unwrap_or(&key);
                let known = KEYS.contains(&key.as_str())
                    || (key.ends_with("_file") && SECRET_KEYS.contains(&base));
                (!known).then(|| name.clone())
            })
            .collect()
    }

    fn validate(raw: Raw) -> Result<Self, ConfigError> {
        let bad = |key: &str, value: &str, why: &str| {
            ConfigError(format!("{}={value:?}: {why}", env_name(key)))
        };
        for (key, d) in [
            ("database_timeout", raw.database_timeout),
            ("access_token_ttl", raw.access_token_ttl),
            ("refresh_token_ttl", raw.refresh_token_ttl),
            ("login_lockout_window", raw.login_lockout_window),
            ("feed_sync_interval", raw.feed_sync_interval),
            ("browser_session_ttl", raw.browser_session_ttl),
            ("key_activation_delay", raw.key_activation_delay),
            ("feed_stream_lifetime", raw.feed_stream_lifetime),
            ("header_read_timeout", raw.header_read_timeout),
        ] {
            if d > MAX_DURATION {
                return Err(bad(
                    key,
                    &format!("{}s", d.as_secs()),
                    "must be at most 10 years",
                ));
            }
        }
        let bind: SocketAddr = raw
            .bind
            .parse()
            .map_err(|_| bad("bind", &raw.bind, "expected an address like 127.0.0.1:8080"))?;
        let issuer = match raw.issuer {
            Some(i) => validate_issuer(&i).map_err(|why| bad("issuer", &i, why))?,
            None => format!("http://{bind}"),
        };
        if raw.audience.trim().is_empty() {
            return Err(bad("audience", &raw.audience, "must not be empty"));
        }
        let database_url = raw
            .database_url
            .unwrap_or_else(|| "sqlite://usher.db".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError(format!(
                "{}: expected a sqlite:… or postgres://… URL",
                env_name("database_url")
            )));
        }
        if let Some(r) = &raw.redis_url
            && !(r.starts_with("redis://") || r.starts_with("rediss://"))
        {
            return Err(ConfigError(format!(
                "{}: expected a redis://… or rediss://… URL",
                env_name("redis_url")
            )));
        }
        if raw.database_max_connections == 0 {
            return Err(bad("database_max_connections", "0", "must be at least 1"));
        }
        // Below this the pool gives up before a connection can answer: every query fails.
        if raw.database_timeout < MIN_DATABASE_TIMEOUT {
            return Err(bad(
                "database_timeout",
                &humantime::format_duration(raw.database_timeout).to_string(),
                "must be at least 100ms",
            ));
        }
        let ttl = |key: &str, d: Duration, min: u64| {
            if d.as_secs() < min {
                Err(bad(
                    key,
                    &humantime::format_duration(d).to_string(),
                    &format!("must be at least {min}s"),
                ))
            } else {
                Ok(d)
            }
        };
        let access_token_ttl = ttl("access_token_ttl", raw.access_token_ttl, 10)?;
        let refresh_token_ttl = ttl("refresh_token_ttl", raw.refresh_token_ttl, 60)?;
        if refresh_token_ttl <= access_token_ttl {
            return Err(bad(
                "refresh_token_ttl",
                &humantime::format_duration(refresh_token_ttl).to_string(),
                "must be longer than USHER_ACCESS_TOKEN_TTL",
            ));
        }
        let login_lockout_window = ttl("login_lockout_window", raw.login_lockout_window, 1)?;
        let feed_sync_interval = ttl("feed_sync_interval", raw.feed_sync_interval, 1)?;
        let feed_stream_lifetime = ttl("feed_stream_lifetime", raw.feed_stream_lifetime, 1)?;
        let header_read_timeout = ttl("header_read_timeout", raw.header_read_timeout, 1)?;
        if raw.feed_max_waiters == 0 {
            return Err(bad("feed_max_waiters", "0", "must be at least 1"));
        }
        if raw.feed_max_waiters_per_client == 0 {
            return Err(bad(
                "feed_max_waiters_per_client",
                "0",
                "must be at least 1",
            ));
        }
        if !(1..=1000).contains(&raw.feed_page_size) {
            return Err(bad(
                "feed_page_size",
                &raw.feed_page_size.to_string(),
                "must be from 1 to 1000",
            ));
        }
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .map(|s| {
                parse_cidr(s)
                    .ok_or_else(|| bad("trusted_proxies", s, "expected a CIDR like 10.0.0.0/8"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.argon2_parallelism == 0 {
            return Err(bad("argon2_parallelism", "0", "must be at least 1"));
        }
        if raw.argon2_iterations == 0 {
            return Err(bad("argon2_iterations", "0", "must be at least 1"));
        }
        if raw.argon2_memory_kib < 8 * raw.argon2_parallelism {
            return Err(bad(
                "argon2_memory_kib",
                &raw.argon2_memory_kib.to_string(),
                "must be at least 8 × argon2_parallelism",
            ));
        }
        let hash_pool_size = raw.hash_pool_size.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        if hash_pool_size == 0 {
            return Err(bad("hash_pool_size", "0", "must be at least 1"));
        }
        if raw.max_body_bytes < 1024 {
            return Err(bad(
                "max_body_bytes",
                &raw.max_body_bytes.to_string(),
                "must be at least 1024",
            ));
        }
        let prefix_ok = !raw.redis_prefix.is_empty()
            && raw
                .redis_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
        if !prefix_ok {
            return Err(bad(
                "redis_prefix",
                &raw.redis_prefix,
                "use letters, digits, _ - . :",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&raw.log)
            .map_err(|_| bad("log", &raw.log, "not a valid log filter"))?;
        let browser_session_ttl = ttl("browser_session_ttl", raw.browser_session_ttl, 60)?;
        for (key, list) in [
            ("cinema_web_redirect_uris", &raw.cinema_web_redirect_uris),
            (
                "cinema_web_post_logout_redirect_uris",
                &raw.cinema_web_post_logout_redirect_uris,
            ),
        ] {
            for uri in list.iter() {
                if let Some(e) = crate::service::client_registry::check_redirect_uri(key, uri) {
                    return Err(bad(key, uri, &e.message));
                }
            }
        }
        Ok(Self {
            bind,
            issuer,
            audience: raw.audience,
            database_url: SecretString::from(database_url),
            database_max_connections: raw.database_max_connections,
            database_timeout: raw.database_timeout,
            redis_url: raw.redis_url.map(SecretString::from),
            redis_prefix: raw.redis_prefix,
            keys_dir: raw.keys_dir,
            access_token_ttl,
            refresh_token_ttl,
            trusted_proxies,
            argon2_memory_kib: raw.argon2_memory_kib,
            argon2_iterations: raw.argon2_iterations,
            argon2_parallelism: raw.argon2_parallelism,
            hash_pool_size,
            hash_queue_size: raw.hash_queue_size,
            login_lockout_threshold: raw.login_lockout_threshold,
            login_lockout_window,
            page_rate_limit: raw.page_rate_limit,
            max_body_bytes: raw.max_body_bytes,
            feed_sync_interval,
            feed_max_waiters: raw.feed_max_waiters,
            feed_max_waiters_per_client: raw.feed_max_waiters_per_client,
            feed_stream_lifetime,
            feed_page_size: raw.feed_page_size,
            log: raw.log,
            log_format: raw.log_format,
            browser_session_ttl,
            key_activation_delay: raw.key_activation_delay,
            header_read_timeout,
            id_token_on_refresh: raw.id_token_on_refresh,
            cinema_web_redirect_uris: raw.cinema_web_redirect_uris,
            cinema_web_post_logout_redirect_uris: raw.cinema_web_post_logout_redirect_uris,
        })
    }

    /// True when the database URL names PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        self.database_url.expose_secret().starts_with("postgres")
    }

    /// How long an ended session must be remembered: the longest access-token lifetime
    /// plus a minute of clock leeway.
    pub fn change_retention(&self) -> Duration {
        self.access_token_ttl + Duration::from_secs(60)
    }
}

/// `USHER_` + the upper-case key.
pub fn env_name(key: &str) -> String {
    format!("USHER_{}", key.to_ascii_uppercase())
}

/// Environment values are strings; numbers for numeric keys, booleans for flags, a
/// string for the rest.
fn parse_env_value(key: &str, value: &str) -> figment::value::Value {
    use figment::value::Value;
    if key == "id_token_on_refresh" {
        match value.trim() {
            "true" | "1" | "yes" => return Value::from(true),
            "false" | "0" | "no" => return Value::from(false),
            _ => {}
        }
    }
    const NUMERIC: &[&str] = &[
        "database_max_connections",
        "argon2_memory_kib",
        "argon2_iterations",
        "argon2_parallelism",
        "hash_pool_size",
        "hash_queue_size",
        "login_lockout_threshold",
        "page_rate_limit",
        "max_body_bytes",
        "feed_max_waiters",
        "feed_max_waiters_per_client",
        "feed_page_size",
    ];
    if NUMERIC.contains(&key)
        && let Ok(n) = value.trim().parse::<u64>()
    {
        return Value::from(n);
    }
    Value::from(value.to_owned())
}

fn validate_issuer(value: &str) -> Result<String, &'static str> {
    let trimmed = value.trim_end_matches('/');
    let uri: axum::http::Uri = trimmed
        .parse()
        .map_err(|_| "expected an absolute http(s) URL")?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("expected an absolute http(s) URL"),
    }
    if uri.authority().is_none() {
        return Err("expected an absolute http(s) URL");
    }
    if uri.query().is_some() || trimmed.contains('#') {
        return Err("must not have a query or fragment");
    }
    Ok(trimmed.to_owned())
}

fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// With no configuration every key takes its documented default.
    #[test]
    fn defaults_are_documented_values() {
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.audience, "cinema");
        assert_eq!(c.database_url.expose_secret(), "sqlite://usher.db");
        assert_eq!(c.access_token_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(30 * 86400));
        assert_eq!(c.argon2_memory_kib, 19456);
        assert_eq!(c.argon2_iterations, 2);
        assert_eq!(c.argon2_parallelism, 1);
        assert!(c.redis_url.is_none());
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert!(c.trusted_proxies.is_empty());
        assert!(c.id_token_on_refresh);
        assert_eq!(c.page_rate_limit, 120);
        let off =
            Config::load_from(None, &vars(&[("USHER_ID_TOKEN_ON_REFRESH", "false")])).unwrap();
        assert!(!off.id_token_on_refresh);
    }

    /// Environment values override defaults; durations use the humantime form.
    #[test]
    fn env_overrides_defaults() {
        let c = Config::load_from(
            None,
            &vars(&[
                ("USHER_ACCESS_TOKEN_TTL", "90s"),
                ("USHER_REFRESH_TOKEN_TTL", "7d"),
                ("USHER_AUDIENCE", "123"),
                ("USHER_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1"),
                ("USHER_HASH_POOL_SIZE", "3"),
                ("USHER_ISSUER", "https://id.example.com/"),
                ("USHER_PAGE_RATE_LIMIT", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(90));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.audience, "123");
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.hash_pool_size, 3);
        assert_eq!(c.issuer, "https://id.example.com");
        assert_eq!(c.page_rate_limit, 0);
    }

    /// A bad value fails with one line naming the variable.
    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("USHER_ACCESS_TOKEN_TTL", "15x", "USHER_ACCESS_TOKEN_TTL"),
            ("USHER_BIND", "nowhere", "USHER_BIND"),
            (
                "USHER_TRUSTED_PROXIES",
                "10.0.0.0/99",
                "USHER_TRUSTED_PROXIES",
            ),
            ("USHER_ISSUER", "ftp://x", "USHER_ISSUER"),
            ("USHER_DATABASE_URL", "mysql://x", "USHER_DATABASE_URL"),
            ("USHER_HASH_POOL_SIZE", "many", "USHER_HASH_POOL_SIZE"),
            ("USHER_PAGE_RATE_LIMIT", "-1", "USHER_PAGE_RATE_LIMIT"),
            ("USHER_LOG_FORMAT", "xml", "USHER_LOG_FORMAT"),
            ("USHER_ACCESS_TOKEN_TTL", "31d", "USHER_REFRESH_TOKEN_TTL"),
        ];
        for (k, v, expect) in cases {
            let err = Config::load_from(None, &vars(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{k}={v}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    /// The revocation feed's limits: defaults, environment values, and their ranges.
    #[test]
    fn feed_limits() {
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(
            (c.feed_max_waiters, c.feed_max_waiters_per_client),
            (256, 8)
        );
        assert_eq!(c.feed_stream_lifetime, Duration::from_secs(300));
        assert_eq!(c.feed_page_size, 500);
        let c = Config::load_from(
            None,
            &vars(&[
                ("USHER_FEED_MAX_WAITERS", "3"),
                ("USHER_FEED_MAX_WAITERS_PER_CLIENT", "2"),
                ("USHER_FEED_STREAM_LIFETIME", "1m"),
                ("USHER_FEED_PAGE_SIZE", "50"),
            ]),
        )
        .unwrap();
        assert_eq!((c.feed_max_waiters, c.feed_max_waiters_per_client), (3, 2));
        assert_eq!(c.feed_stream_lifetime, Duration::from_secs(60));
        assert_eq!(c.feed_page_size, 50);
        for (k, v) in [
            ("USHER_FEED_MAX_WAITERS", "0"),
            ("USHER_FEED_MAX_WAITERS_PER_CLIENT", "0"),
            ("USHER_FEED_STREAM_LIFETIME", "0s"),
            ("USHER_FEED_PAGE_SIZE", "1001"),
        ] {
            let err = Config::load_from(None, &vars(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }

    /// `USHER_DATABASE_TIMEOUT` below 100 ms (0 s would make the pool time out at once,
    /// failing every query) is refused with one line naming the key; 100 ms is accepted.
    #[test]
    fn database_timeout_has_a_floor() {
        for v in ["0s", "99ms"] {
            let err = Config::load_from(None, &vars(&[("USHER_DATABASE_TIMEOUT", v)]))
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!(
                    "invalid configuration: USHER_DATABASE_TIMEOUT=\"{v}\": must be at least 100ms"
                ),
            );
        }
        let c = Config::load_from(None, &vars(&[("USHER_DATABASE_TIMEOUT", "100ms")])).unwrap();
        assert_eq!(c.database_timeout, Duration::from_millis(100));
    }

    /// A secret can be read from the file named by `<KEY>_FILE`.
    #[test]
    fn secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "redis://127.0.0.1:6390\n").unwrap();
        let c = Config::load_from(
            None,
            &vars(&[("USHER_REDIS_URL_FILE", path.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(
            c.redis_url.unwrap().expose_secret(),
            "redis://127.0.0.1:6390"
        );
    }

    /// Unknown `USHER_` variables are reported; test-only ones are not.
    #[test]
    fn unknown_keys_are_listed() {
        let unknown = Config::unknown_env_keys(&vars(&[
            ("USHER_BIND", "x"),
            ("USHER_BINDD", "x"),
            ("USHER_TEST_DATABASE_URL", "x"),
            ("USHER_REDIS_URL_FILE", "x"),
        ]));
        assert_eq!(unknown, vec!["USHER_BINDD".to_string()]);
    }

    /// Durations above 10 years are refused with one line naming the key, so that
    /// `now + ttl` can never overflow.
    #[test]
    fn durations_are_capped() {
        for key in [
            "USHER_ACCESS_TOKEN_TTL",
            "USHER_REFRESH_TOKEN_TTL",
            "USHER_BROWSER_SESSION_TTL",
            "USHER_LOGIN_LOCKOUT_WINDOW",
            "USHER_FEED_SYNC_INTERVAL",
            "USHER_DATABASE_TIMEOUT",
            "USHER_KEY_ACTIVATION_DELAY",
            "USHER_FEED_STREAM_LIFETIME",
            "USHER_HEADER_READ_TIMEOUT",
        ] {
            let err = Config::load_from(None, &vars(&[(key, "3651days")]))
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!("invalid configuration: {key}=\"315446400s\": must be at most 10 years"),
            );
            assert!(!err.contains('\n'), "{err}");
        }
        let huge = Config::load_from(None, &vars(&[("USHER_REFRESH_TOKEN_TTL", "10000000000y")]))
            .unwrap_err()
            .to_string();
        assert!(huge.contains("USHER_REFRESH_TOKEN_TTL"), "{huge}");
        let c = Config::load_from(None, &vars(&[("USHER_REFRESH_TOKEN_TTL", "3650days")])).unwrap();
        assert_eq!(c.refresh_token_ttl, MAX_DURATION);
    }

    /// A TOML file is layered under the environment.
    #[test]
    fn toml_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usher.toml");
        std::fs::write(&path, "audience = \"films\"\naccess_token_ttl = \"5m\"\n").unwrap();
        let c = Config::load_from(Some(&path), &vars(&[("USHER_ACCESS_TOKEN_TTL", "1m")])).unwrap();
        assert_eq!(c.audience, "films");
        assert_eq!(c.access_token_ttl, Duration::from_secs(60));
        let err = Config::load_from(Some(&dir.path().join("none.toml")), &[]).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }

    /// A key of the TOML file that usher does not know (a typo) is a one-line error
    /// naming it, not a silently ignored setting.
    #[test]
    fn unknown_toml_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usher.toml");
        std::fs::write(&path, "acess_token_ttl = \"5m\"\n").unwrap();
        let err = Config::load_from(Some(&path), &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "invalid configuration: {}: unknown key `acess_token_ttl`",
                path.display()
            ),
        );
    }
}
