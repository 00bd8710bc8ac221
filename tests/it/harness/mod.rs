//! Test harness: [`TestApp`] starts a real usher on 127.0.0.1:0 with a fresh store
//! (a SQLite file in a temp directory, or a PostgreSQL database created for the test and
//! dropped after it, with Redis under a per-test key prefix), a manual clock and a
//! reqwest client that does not follow redirects.

#![allow(dead_code)]

pub mod flow;
pub mod proxy;
pub mod webdriver;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tempfile::TempDir;
use usher::AppState;
use usher::clock::ManualClock;
use usher::config::Config;
use usher::keystore::KeyStore;
use usher::state::SharedState;
use usher::store::Store;
use usher::token::keys::{KeyRing, SigningKey};

/// Declares one behaviour test that runs on SQLite + memory and on PostgreSQL + Redis.
/// The PostgreSQL variant skips (with a notice) when `USHER_TEST_DATABASE_URL` or
/// `USHER_TEST_REDIS_URL` is unset. `config(|c| ...);` before `async fn` (or
/// `async fn name(app, config = |c| ...)`) changes the
/// configuration of both variants before start.
#[macro_export]
macro_rules! backend_test {
    ($(#[$meta:meta])* async fn $name:ident($app:ident, config = $tweak:expr) $body:block) => {
        $crate::backend_test! {
            $(#[$meta])*
            config($tweak);
            async fn $name($app) $body
        }
    };
    ($(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        $crate::backend_test! {
            $(#[$meta])*
            config(|_| {});
            async fn $name($app) $body
        }
    };
    ($(#[$meta:meta])* config($tweak:expr); async fn $name:ident($app:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::harness::*;

            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(TestApp::builder().sqlite().config($tweak).build().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if TestApp::pg_available() {
                    run(TestApp::builder().postgres().config($tweak).build().await).await
                } else {
                    eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
                }
            }
        }
    };
}

/// The redirect URI registered for `cinema-web` in tests (loopback: any port matches).
pub const CALLBACK: &str = "http://127.0.0.1/callback";
/// The post-logout redirect URI registered for `cinema-web` in tests.
pub const SIGNED_OUT: &str = "http://127.0.0.1/signed-out";

/// The password every seeded user gets.
pub const PASSWORD: &str = "correct horse battery";

/// Which store a test app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + in-process state.
    Sqlite,
    /// PostgreSQL database + Redis.
    Postgres,
}

/// One signing key shared by every test app (RSA generation is slow).
pub fn shared_keys() -> Arc<KeyStore> {
    static KEYS: OnceLock<Arc<KeyRing>> = OnceLock::new();
    let ring = KEYS
        .get_or_init(|| Arc::new(KeyRing::from_keys(vec![SigningKey::generate().unwrap().0])))
        .clone();
    Arc::new(KeyStore::fixed(ring))
}

/// A second, foreign key (for "unknown kid" tests).
pub fn foreign_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap().0)
}

/// The PostgreSQL admin URL and Redis URL for the second backend, when configured.
pub fn pg_env() -> Option<(String, String)> {
    let db = std::env::var("USHER_TEST_DATABASE_URL").ok()?;
    let redis = std::env::var("USHER_TEST_REDIS_URL").ok()?;
    Some((db, redis))
}

/// A database created for one test and dropped afterwards.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl PgDatabase {
    /// Creates `usher_t_<uuid>` through `admin_url`.
    pub async fn create(admin_url: &str) -> Self {
        Self::create_with(admin_url, "").await
    }

    /// Creates `usher_t_<uuid>` with `options` appended to `create database` (a
    /// template, a locale).
    pub async fn create_with(admin_url: &str, options: &str) -> Self {
        use sqlx::Connection;
        let name = format!("usher_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
        sqlx::query(&format!("create database {name} {options}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("create database {name} {options}: {e}"));
        let _ = conn.close().await;
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
        Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// The same database reached through another host:port (a fault proxy).
    pub fn url_via(&self, addr: &str) -> String {
        let (scheme_user, rest) = self.url.split_once('@').unwrap();
        let (_, path) = rest.split_once('/').unwrap();
        format!("{scheme_user}@{addr}/{path}")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A change to the configuration before start.
type Tweak = Box<dyn FnOnce(&mut Config) + Send>;

/// Builder of a [`TestApp`].
pub struct TestAppBuilder {
    backend: Backend,
    tweaks: Vec<Tweak>,
    database_url: Option<String>,
    redis_url: Option<String>,
    pg: Option<Arc<PgDatabase>>,
    redis_prefix: Option<String>,
    clock: Option<Arc<ManualClock>>,
    sqlite_dir: Option<Arc<TempDir>>,
    keys: Option<Arc<KeyStore>>,
}

impl TestAppBuilder {
    /// SQLite + in-process state.
    pub fn sqlite(mut self) -> Self {
        self.backend = Backend::Sqlite;
        self
    }

    /// PostgreSQL + Redis (caller must have checked [`pg_env`]).
    pub fn postgres(mut self) -> Self {
        self.backend = Backend::Postgres;
        self
    }

    /// Changes the configuration before start.
    pub fn config(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.tweaks.push(Box::new(f));
        self
    }

    /// Uses this database URL instead of a fresh one (a fault proxy, a shared database).
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// Uses this Redis URL instead of the configured one.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Shares a PostgreSQL database (and its lifetime) with another app.
    pub fn shared_pg(mut self, pg: Arc<PgDatabase>, redis_prefix: &str) -> Self {
        self.pg = Some(pg);
        self.redis_prefix = Some(redis_prefix.to_owned());
        self
    }

    /// Shares a SQLite directory with another app.
    pub fn shared_sqlite(mut self, dir: Arc<TempDir>) -> Self {
        self.sqlite_dir = Some(dir);
        self
    }

    /// Uses this clock.
    pub fn clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses these keys instead of the shared fixed ring.
    pub fn keys(mut self, keys: Arc<KeyStore>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Starts the app.
    pub async fn build(self) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config::load_from(None, &[]).unwrap();
        config.bind = addr;
        config.issuer = format!("http://{addr}");
        config.argon2_memory_kib = 64;
        config.argon2_iterations = 1;
        config.argon2_parallelism = 1;
        config.database_max_connections = 5;
        config.log = "warn".into();
        config.cinema_web_redirect_uris = vec![CALLBACK.to_owned()];
        config.cinema_web_post_logout_redirect_uris = vec![SIGNED_OUT.to_owned()];
        let tmp = self
            .sqlite_dir
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
        let mut pg = self.pg;
        match self.backend {
            Backend::Sqlite => {
                let url = self.database_url.clone().unwrap_or_else(|| {
                    format!("sqlite://{}", tmp.path().join("usher.db").display())
                });
                config.database_url = url.into();
                config.redis_url = self.redis_url.clone().map(Into::into);
            }
            Backend::Postgres => {
                let (admin, redis) = pg_env().expect("postgres env");
                let db = match pg.clone() {
                    Some(db) => db,
                    None => {
                        let db = Arc::new(PgDatabase::create(&admin).await);
                        pg = Some(db.clone());
                        db
                    }
                };
                config.database_url = self.database_url.clone().unwrap_or(db.url.clone()).into();
                config.redis_url = Some(self.redis_url.clone().unwrap_or(redis).into());
                config.redis_prefix = self
                    .redis_prefix
                    .clone()
                    .unwrap_or_else(|| format!("usher-test-{}", uuid::Uuid::new_v4().simple()));
            }
        }
        for tweak in self.tweaks {
            tweak(&mut config);
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(ManualClock::new()));
        let store = usher::app_state::connect_store(&config).await.unwrap();
        let state = usher::app_state::connect_state(&config).await.unwrap();
        let keys = self.keys.unwrap_or_else(shared_keys);
        let app = AppState::assemble(config, store, state, keys, clock.clone())
            .await
            .unwrap();
        usher::spawn_background(&app);
        let server_app = app.clone();
        let server = tokio::spawn(async move {
            let _ = usher::serve(server_app, listener, std::future::pending()).await;
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        TestApp {
            base: format!("http://{addr}"),
            client,
            app,
            clock,
            backend: self.backend,
            pg,
            sqlite_dir: tmp,
            server,
        }
    }
}

/// A running usher for one test.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Client with redirects off and a cookie jar.
    pub client: reqwest::Client,
    /// The app's state (store, feed, config...).
    pub app: AppState,
    /// The manual clock.
    pub clock: Arc<ManualClock>,
    /// The backend in use.
    pub backend: Backend,
    /// The test database (PostgreSQL).
    pub pg: Option<Arc<PgDatabase>>,
    /// The SQLite directory.
    pub sqlite_dir: Arc<TempDir>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A response, body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// JSON body (Null when empty or not JSON).
    pub body: Value,
    /// Raw body.
    pub text: String,
}

impl Resp {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Tokens of a grant.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Access token.
    pub access: String,
    /// Refresh token.
    pub refresh: String,
    /// ID token, if any.
    pub id_token: Option<String>,
    /// Whole body.
    pub body: Value,
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: String,
    /// Login.
    pub login: String,
    /// Tokens from a first password grant.
    pub tokens: Tokens,
}

impl TestApp {
    /// A builder (SQLite by default).
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            backend: Backend::Sqlite,
            tweaks: Vec::new(),
            database_url: None,
            redis_url: None,
            pg: None,
            redis_prefix: None,
            clock: None,
            sqlite_dir: None,
            keys: None,
        }
    }

    /// A builder of another app on this app's backend, with a fresh store (for a test
    /// that needs its own configuration on both backends).
    pub fn same_backend(&self) -> TestAppBuilder {
        match self.backend {
            Backend::Sqlite => Self::builder().sqlite(),
            Backend::Postgres => Self::builder().postgres(),
        }
    }

    /// A default SQLite app.
    pub async fn sqlite() -> Self {
        Self::builder().sqlite().build().await
    }

    /// A default PostgreSQL + Redis app, or `None` (with a notice) when not configured.
    pub async fn postgres() -> Option<Self> {
        if pg_env().is_none() {
            eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
            return None;
        }
        Some(Self::builder().postgres().build().await)
    }

    /// True when PostgreSQL + Redis tests can run.
    pub fn pg_available() -> bool {
        pg_env().is_some()
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.app.store.as_ref()
    }

    /// The shared state.
    pub fn state(&self) -> &dyn SharedState {
        self.app.state.as_ref()
    }

    /// The app clock's now.
    pub fn clock_now(&self) -> i64 {
        use usher::clock::Clock;
        self.clock.now()
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.unwrap()).await
    }

    /// GET with a bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, None).await
    }

    /// POST a form to the token endpoint (or another form endpoint).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        let req = self.client.post(self.url(path)).form(form);
        read(req.send().await.unwrap()).await
    }

    /// Signs up `login` with [`PASSWORD`]; returns the profile.
    pub async fn sign_up(&self, login: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(json!({"login": login, "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "sign-up failed: {}", r.text);
        r.body
    }

    /// Password grant through `cinema-web`.
    pub async fn login(&self, login: &str, password: &str) -> Resp {
        self.post_form(
            "/oauth2/token",
            &[
                ("grant_type", "password"),
                ("username", login),
                ("password", password),
                ("client_id", "cinema-web"),
            ],
        )
        .await
    }

    /// Password grant that must succeed.
    pub async fn tokens(&self, login: &str) -> Tokens {
        let r = self.login(login, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "login failed: {}", r.text);
        tokens_of(&r)
    }

    /// Refresh grant through `cinema-web`.
    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        self.post_form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "cinema-web"),
            ],
        )
        .await
    }

    /// Signs up a fresh user and logs them in.
    pub async fn user(&self) -> User {
        let login = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let profile = self.sign_up(&login).await;
        let tokens = self.tokens(&login).await;
        User {
            id: profile["id"].as_str().unwrap().to_owned(),
            login,
            tokens,
        }
    }

    /// A fresh user made superuser (as the CLI does: the store's promotion, then its
    /// feed entries published), logged in after the promotion.
    pub async fn superuser(&self) -> User {
        let mut u = self.user().await;
        let mut record = self.store().find_user(&u.id).await.unwrap().unwrap();
        record.superuser = true;
        let (_, _, changes) = self
            .store()
            .upsert_superuser(&record, self.clock_now())
            .await
            .unwrap();
        usher::service::feed::publish(&self.app, &changes).await;
        u.tokens = self.tokens(&u.login).await;
        u
    }

    /// Registers a client through the admin API; returns the 201 body.
    pub async fn register_client(&self, admin: &str, body: Value) -> Value {
        let r = self
            .call(Method::POST, "/api/v1/clients", Some(admin), Some(body))
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "client registration failed: {}",
            r.text
        );
        r.body
    }

    /// A confidential client allowed `client_credentials`; returns (id, secret).
    pub async fn service_client(&self, admin: &str) -> (String, String) {
        let body = self
            .register_client(
                admin,
                json!({"client_name": "catalogue ETL", "grant_types": ["client_credentials"], "scope": "films:label"}),
            )
            .await;
        (
            body["client_id"].as_str().unwrap().to_owned(),
            body["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// POSTs a form with HTTP Basic client credentials.
    pub async fn post_form_basic(
        &self,
        path: &str,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> Resp {
        let req = self
            .client
            .post(self.url(path))
            .basic_auth(id, Some(secret))
            .form(form);
        read(req.send().await.unwrap()).await
    }

    /// The id of the role named `name`.
    pub async fn role_id(&self, name: &str) -> String {
        self.store()
            .list_roles()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.name == name)
            .unwrap()
            .id
    }

    /// Stops this app and starts a fresh one on the same database (the SQLite file, or
    /// the PostgreSQL database) with the same issuer, keys and clock, but new shared
    /// state (process memory, or a new Redis prefix): a restart in which everything
    /// held outside the database is lost.
    pub async fn restart(self) -> TestApp {
        let issuer = self.app.config.issuer.clone();
        let builder = TestApp::builder()
            .clock(self.clock.clone())
            .keys(self.app.keys.clone())
            .config(move |c| c.issuer = issuer);
        let builder = match (self.backend, self.pg.clone()) {
            (Backend::Postgres, Some(pg)) => builder
                .postgres()
                .shared_pg(pg, &format!("usher-test-{}", uuid::Uuid::new_v4().simple())),
            _ => builder.sqlite().shared_sqlite(self.sqlite_dir.clone()),
        };
        drop(self);
        builder.build().await
    }

    /// A second instance on this app's database (the SQLite file, or the PostgreSQL
    /// database) with the same issuer, keys and clock but its own shared state (process
    /// memory, or another Redis prefix): it learns of this app's changes only by reading
    /// the database. `tweak` changes its configuration.
    pub async fn sibling(&self, tweak: impl FnOnce(&mut Config) + Send + 'static) -> TestApp {
        let issuer = self.app.config.issuer.clone();
        let builder = TestApp::builder()
            .clock(self.clock.clone())
            .keys(self.app.keys.clone())
            .config(move |c| c.issuer = issuer)
            .config(tweak);
        let builder = match (self.backend, self.pg.clone()) {
            (Backend::Postgres, Some(pg)) => builder
                .postgres()
                .shared_pg(pg, &format!("usher-test-{}", uuid::Uuid::new_v4().simple())),
            _ => builder.sqlite().shared_sqlite(self.sqlite_dir.clone()),
        };
        builder.build().await
    }

    /// The database URL in use (for a second app or the CLI).
    pub fn database_url(&self) -> String {
        self.app.config.database_url.expose_secret().to_owned()
    }
}

/// Reads a response.
pub async fn read(resp: reqwest::Response) -> Resp {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

/// Tokens out of a token response.
pub fn tokens_of(r: &Resp) -> Tokens {
    Tokens {
        access: r.body["access_token"].as_str().unwrap().to_owned(),
        refresh: r.body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        id_token: r.body["id_token"].as_str().map(str::to_owned),
        body: r.body.clone(),
    }
}

/// Decodes a JWT's header and claims without verifying.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    let dec = |p: &str| -> Value {
        serde_json::from_slice(&usher::token::b64url_decode(p.as_bytes()).unwrap()).unwrap()
    };
    (dec(parts[0]), dec(parts[1]))
}

/// Replaces values that change per run (ids, times, tokens) so a body can be pinned.
pub fn redact(mut v: Value, keys: &[&str]) -> Value {
    if let Value::Object(map) = &mut v {
        for (k, val) in map.iter_mut() {
            if keys.contains(&k.as_str()) && !val.is_null() {
                *val = json!("[redacted]");
            } else {
                *val = redact(val.take(), keys);
            }
        }
    } else if let Value::Array(items) = &mut v {
        for item in items.iter_mut() {
            *item = redact(item.take(), keys);
        }
    }
    v
}

/// Asserts a problem+json response: status, content type, code, and `instance` naming
/// the request id of the response.
pub fn assert_problem(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text
    );
    assert_eq!(r.body["code"], code, "body: {}", r.text);
    assert_eq!(r.body["status"], status);
    assert_eq!(r.body["type"], format!("urn:usher:problem:{code}"));
    let id = r.header("x-request-id").expect("x-request-id");
    assert_eq!(r.body["instance"], format!("urn:usher:request:{id}"));
    assert!(r.body["title"].is_string() && r.body["detail"].is_string());
}

/// Asserts an RFC 6749 §5.2 error: status, `no-store`, code.
pub fn assert_oauth_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body["error"], code, "body: {}", r.text);
    assert!(r.body["error_description"].is_string());
}

/// A header value.
pub fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap()
}

/// Polls `check` every 10 ms for up to `within`; true as soon as it holds.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of a hidden form field in an HTML page.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&#x2f;", "/")
            .replace("&amp;", "&"),
    )
}

/// A query parameter of a URL (e.g. a `Location`).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl TestApp {
    /// Follows the sign-in page for a parked request: GET the page, POST the form.
    /// Returns the POST's response (a redirect when the login succeeded).
    pub async fn sign_in_page(&self, location: &str, login: &str, password: &str) -> Resp {
        let page = read(self.client.get(self.url(location)).send().await.unwrap()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let csrf = form_value(&page.text, "csrf").expect("csrf field");
        let mut form = vec![
            ("csrf", csrf),
            ("login", login.to_owned()),
            ("password", password.to_owned()),
        ];
        if let Some(r) = form_value(&page.text, "request") {
            form.push(("request", r));
        }
        if let Some(r) = form_value(&page.text, "return_to") {
            form.push(("return_to", r));
        }
        read(
            self.client
                .post(self.url("/login"))
                .form(&form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A fresh cookie-holding client (another browser).
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap()
    }
}
