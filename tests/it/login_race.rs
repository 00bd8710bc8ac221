//! A login racing a block or a password change (issue 2: blocking and a password change
//! end every session; a blocked user's login gets the answer of a wrong password). The
//! password is checked before the session is written, with argon2's time in between;
//! the store re-checks the user when it writes the session. The store-level contract is
//! in `store_conformance` (both backends); here the race itself is run over HTTP on
//! PostgreSQL, where the user row is locked: a change holding the row makes the login
//! wait, then refuses it.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use sqlx::{Connection, PgPool};

use crate::harness::*;

/// Starts a password grant of `login` in the background.
fn spawn_login(app: &TestApp, login: &str) -> tokio::task::JoinHandle<Resp> {
    let request = app.client.post(app.url("/oauth2/token")).form(&[
        ("grant_type", "password"),
        ("username", login),
        ("password", PASSWORD),
        ("client_id", "cinema-web"),
    ]);
    tokio::spawn(async move { read(request.send().await.unwrap()).await })
}

/// True once a backend of database `db` waits for a lock.
async fn someone_waits(pool: &PgPool, db: &str) -> bool {
    let sql =
        "select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'";
    let (n,): (i64,) = sqlx::query_as(sql).bind(db).fetch_one(pool).await.unwrap();
    n > 0
}

/// Holds the user's row with `update` (`$1` the user id, `$2` the `value` if any),
/// uncommitted, while a password grant of the user runs; asserts the grant waits for
/// the row, then commits and returns the grant's answer.
async fn login_during(app: &TestApp, user: &User, update: &str, value: Option<&str>) -> Resp {
    let url = app.database_url();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let watcher = PgPool::connect(&url).await.unwrap();
    let mut writer = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = writer.begin().await.unwrap();
    let mut query = sqlx::query(update).bind(&user.id);
    if let Some(v) = value {
        query = query.bind(v);
    }
    query.execute(&mut *tx).await.unwrap();
    let login = spawn_login(app, &user.login);
    let waited = eventually(Duration::from_secs(20), || someone_waits(&watcher, &db)).await;
    assert!(waited, "the login must wait for the user row");
    tx.commit().await.unwrap();
    login.await.unwrap()
}

/// A login whose password was checked before a block committed, and whose session
/// would be written after it, is refused with the body of a wrong password and
/// recorded as `blocked`; one racing a password change (as `PUT /users/me/password` or
/// `create-superuser` does) is refused and recorded as `bad_credentials`. No session
/// is started either time. PostgreSQL only: the race is made with a row lock held by
/// a second connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_racing_a_block_or_password_change_is_refused() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let u = app.user().await;
    let refused =
        json!({"error": "invalid_grant", "error_description": "invalid login or password"});
    let r = login_during(
        &app,
        &u,
        "update users set blocked = true where id = $1",
        None,
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert_eq!(r.body, refused);
    let wrong = app.login(&u.login, "not the password").await;
    assert_eq!(wrong.body, r.body, "the same answer as a wrong password");

    sqlx::query("update users set blocked = false where id = $1")
        .bind(&u.id)
        .execute(&PgPool::connect(&app.database_url()).await.unwrap())
        .await
        .unwrap();
    let other = app
        .app
        .hasher
        .hash(&SecretString::from("another password entirely"))
        .await
        .unwrap();
    let r = login_during(
        &app,
        &u,
        "update users set password_hash = $2 where id = $1",
        Some(&other),
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert_eq!(r.body, refused);

    let outcomes: Vec<String> = app
        .store()
        .list_login_events(&u.id, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        outcomes,
        ["bad_credentials", "bad_credentials", "blocked", "success"],
        "newest first: the password race, the wrong password, the block race, sign-up's login"
    );
    let (_, claims) = decode_jwt(&u.tokens.access);
    let live: Vec<String> = app
        .store()
        .list_active_sessions(&u.id, app.clock_now())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        live,
        [claims["sid"].as_str().unwrap()],
        "no session was started"
    );
}
