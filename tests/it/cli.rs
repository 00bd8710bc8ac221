//! The `usher` binary: subcommands, exit codes and one-line errors.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_usher");

fn usher(dir: &TempDir, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path())
        .args(args)
        .env_clear()
        .env("USHER_ARGON2_MEMORY_KIB", "64")
        .env("USHER_ARGON2_ITERATIONS", "1")
        .env("USHER_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `create-superuser --password-stdin` creates the user in the default SQLite file;
/// a second run makes the existing login a superuser and sets the new password.
#[tokio::test]
async fn cli_create_superuser_creates_then_promotes() {
    let dir = tempfile::tempdir().unwrap();
    let out = usher(
        &dir,
        &["create-superuser", "--login", "root", "--password-stdin"],
        Some("first password\n"),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("superuser root created"));
    assert!(dir.path().join("usher.db").exists());
    let out = usher(
        &dir,
        &["create-superuser", "--login", "ROOT", "--password-stdin"],
        Some("second password\n"),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("is now a superuser"));
    let url = format!("sqlite://{}", dir.path().join("usher.db").display());
    let store =
        usher::store::sqlite::SqliteStore::connect(&url, 1, std::time::Duration::from_secs(2))
            .await
            .unwrap();
    use usher::store::Store;
    let user = store.find_user_by_login("root").await.unwrap().unwrap();
    assert!(user.superuser);
    let config = usher::config::Config::load_from(
        None,
        &[
            ("USHER_ARGON2_MEMORY_KIB".into(), "64".into()),
            ("USHER_ARGON2_ITERATIONS".into(), "1".into()),
        ],
    )
    .unwrap();
    let hasher = usher::service::passwords::PasswordHasher::new(&config).unwrap();
    let ok = hasher
        .verify(
            &secrecy::SecretString::from("second password".to_owned()),
            Some(&user.password_hash),
        )
        .await
        .unwrap();
    assert!(ok, "the second run sets the password");
}

/// A weak password, a bad login, or no terminal without `--password-stdin` fail with
/// exit 1 and one line.
#[test]
fn cli_create_superuser_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let out = usher(
        &dir,
        &["create-superuser", "--login", "root", "--password-stdin"],
        Some("short\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: weak password: must be at least 8 characters\n"
    );
    let out = usher(
        &dir,
        &["create-superuser", "--login", "r o", "--password-stdin"],
        Some("long enough pw\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: invalid login"));
    let out = usher(&dir, &["create-superuser", "--login", "root"], None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: no terminal to ask for the password: use --password-stdin\n"
    );
}

/// A bad configuration value exits 2 with one line naming the variable and value.
#[test]
fn cli_bad_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = usher(
        &dir,
        &["migrate"],
        None,
        &[("USHER_ACCESS_TOKEN_TTL", "soon")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("USHER_ACCESS_TOKEN_TTL") && err.contains("soon"),
        "{err}"
    );
    let out = usher(&dir, &["migrate", "--config", "missing.toml"], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.toml"));
}

/// A malformed `usher.toml` exits 2 with one line naming the file, the bad key and
/// value, the reason and the position (not the TOML parser's multi-line report); a
/// value of the wrong type names the key and the value too.
#[test]
fn cli_malformed_toml_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("usher.toml"), "audience = \"films\n").unwrap();
    let out = usher(&dir, &["migrate", "--config", "usher.toml"], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: invalid configuration: ")
            && err.ends_with(
                "usher.toml: audience = \"films: invalid basic string (line 1, column 18)\n"
            ),
        "{err}"
    );
    std::fs::write(dir.path().join("usher.toml"), "hash_pool_size = \"many\"\n").unwrap();
    let out = usher(&dir, &["migrate", "--config", "usher.toml"], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("hash_pool_size (in ") && err.contains("many"),
        "{err}"
    );
    assert!(!dir.path().join("usher.db").exists(), "nothing was started");
}

/// `migrate` applies migrations (exit 0); an unreachable database exits 1 with one line.
#[test]
fn cli_migrate_and_unreachable_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = usher(&dir, &["migrate"], None, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "migrations applied (sqlite)\n");
    let out = usher(
        &dir,
        &["migrate"],
        None,
        &[
            ("USHER_DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
            ("USHER_DATABASE_TIMEOUT", "1s"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: database") && err.lines().count() == 1,
        "{err}"
    );
}

/// `keys rotate` adds a key (mode 0600) each time; the newest is reported.
#[test]
fn cli_keys_rotate_adds_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for expected in 1..=2 {
        let out = usher(&dir, &["keys", "rotate"], None, &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        assert!(
            said.starts_with("new key ") && said.contains("signs after 10m"),
            "{said}"
        );
        let files: Vec<_> = std::fs::read_dir(dir.path().join("jwks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), expected);
        for f in files {
            assert_eq!(
                std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}

/// `serve` starts on an empty directory (creating the database and a key) and
/// `healthcheck` reports it healthy; with nothing listening `healthcheck` exits 1.
#[test]
fn cli_serve_and_healthcheck() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let out = usher(&dir, &["healthcheck"], None, &[("USHER_BIND", &bind)]);
    assert_eq!(out.status.code(), Some(1));
    let mut server = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("USHER_BIND", &bind)
        .env("USHER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut healthy = false;
    for _ in 0..100 {
        let out = usher(&dir, &["healthcheck"], None, &[("USHER_BIND", &bind)]);
        if out.status.success() {
            healthy = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill().unwrap();
    let _ = server.wait();
    assert!(healthy, "server never became healthy");
    assert!(dir.path().join("usher.db").exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("jwks")).unwrap().count(),
        1
    );
}

/// Promotes `login` with the `create-superuser` binary against `app`'s database (and,
/// on PostgreSQL, its Redis and key prefix), with the password `password`.
async fn promote_with_cli(app: &crate::harness::TestApp, login: &str, password: &str) {
    use secrecy::ExposeSecret;
    let mut env = vec![("USHER_DATABASE_URL".to_owned(), app.database_url())];
    if let Some(redis) = &app.app.config.redis_url {
        env.push(("USHER_REDIS_URL".into(), redis.expose_secret().to_owned()));
        env.push((
            "USHER_REDIS_PREFIX".into(),
            app.app.config.redis_prefix.clone(),
        ));
    }
    let expected = format!("{login} is now a superuser; password set, 1 session(s) ended\n");
    let (login, stdin) = (login.to_owned(), format!("{password}\n"));
    let out = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        usher(
            &dir,
            &["create-superuser", "--login", &login, "--password-stdin"],
            Some(&stdin),
            &env,
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected);
}

/// A running instance sees `create-superuser` promoting an existing login within a
/// second: the promotion writes a `roles_changed` feed entry with the user's session
/// ends, and the CLI publishes every entry (issue 3: the superuser is allowed
/// everything; changes reach every instance within a second).
async fn cli_promotion_reaches_running_instance(app: crate::harness::TestApp) {
    use crate::harness::{PASSWORD, eventually};
    use serde_json::json;
    let u = app.user().await;
    let check = "/api/v1/authz/check?permission=anything:at_all";
    let r = app.get(check, Some(&u.tokens.access)).await;
    assert_eq!(
        r.body,
        json!({"allowed": false, "subject": u.id, "roles": ["user"]})
    );
    let new_password = format!("{PASSWORD} again");
    promote_with_cli(&app, &u.login, &new_password).await;
    // The promotion ended the user's sessions; a new login gets a live token.
    let seen = eventually(std::time::Duration::from_secs(1), || async {
        let login = app.login(&u.login, &new_password).await;
        if login.status != reqwest::StatusCode::OK {
            return false;
        }
        let token = login.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        app.get(check, Some(&token)).await.body
            == json!({"allowed": true, "subject": u.id, "roles": ["user"], "superuser": true})
    })
    .await;
    assert!(
        seen,
        "the running instance must see the promotion within a second"
    );
    let stored = app.store().find_user(&u.id).await.unwrap().unwrap();
    assert!(stored.superuser);
    let entries = app.store().changes_after(0, 1000).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|c| c.kind == "roles_changed" && c.sub.as_deref() == Some(u.id.as_str())),
        "a roles_changed entry for the user"
    );
}

/// [`cli_promotion_reaches_running_instance`] on SQLite: no Redis, the instance reads
/// the entry at its periodic sync (here every 100 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_promotion_reaches_running_instance_sqlite() {
    let app = crate::harness::TestApp::builder()
        .sqlite()
        .config(|c| c.feed_sync_interval = std::time::Duration::from_millis(100))
        .build()
        .await;
    cli_promotion_reaches_running_instance(app).await;
}

/// [`cli_promotion_reaches_running_instance`] on PostgreSQL + Redis: the periodic sync
/// is an hour away, so only the CLI's publication can tell the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_promotion_reaches_running_instance_postgres() {
    if !crate::harness::TestApp::pg_available() {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    }
    let app = crate::harness::TestApp::builder()
        .postgres()
        .config(|c| c.feed_sync_interval = std::time::Duration::from_secs(3600))
        .build()
        .await;
    cli_promotion_reaches_running_instance(app).await;
}
