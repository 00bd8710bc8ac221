//! User administration: finding users, one user, blocking, and role assignment.

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

backend_test! {
    /// Users are found by login prefix, case-insensitively, by login, paginated.
    async fn users_find_by_prefix(app) {
        let admin = app.superuser().await;
        for login in ["film-ann", "Film-Bob", "film-cat", "other"] {
            app.sign_up(login).await;
        }
        let token = Some(admin.tokens.access.as_str());
        let r = app.get("/api/v1/users?login=FILM&limit=2", token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let logins: Vec<&str> = r.body["items"].as_array().unwrap().iter().map(|u| u["login"].as_str().unwrap()).collect();
        assert_eq!(logins, vec!["film-ann", "Film-Bob"]);
        let cursor = r.body["next_cursor"].as_str().unwrap();
        let r = app.get(&format!("/api/v1/users?login=film&limit=2&cursor={cursor}"), token).await;
        let logins: Vec<&str> = r.body["items"].as_array().unwrap().iter().map(|u| u["login"].as_str().unwrap()).collect();
        assert_eq!(logins, vec!["film-cat"]);
        assert_eq!(r.body["next_cursor"], serde_json::Value::Null);
        let r = app.get("/api/v1/users?login=film_", token).await;
        assert_eq!(r.body["items"], json!([]), "underscore is literal, not a wildcard");
        assert_problem(&app.get("/api/v1/users?limit=0", token).await, 422, "validation_failed");
        assert_problem(&app.get("/api/v1/users?cursor=zzz", token).await, 422, "validation_failed");
        let plain = app.user().await;
        assert_problem(&app.get("/api/v1/users", Some(&plain.tokens.access)).await, 403, "forbidden");
        assert_problem(&app.get("/api/v1/users", None).await, 401, "token_missing");
    }
}

backend_test! {
    /// One user shows id, login, e-mail, roles, flags and times; unknown is 404.
    async fn users_get_one(app) {
        let admin = app.superuser().await;
        let u = app.user().await;
        let r = app.get(&format!("/api/v1/users/{}", u.id), Some(&admin.tokens.access)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(redact(r.body.clone(), &["created_at", "last_login_at"]), json!({
            "id": u.id, "login": u.login, "email": null, "roles": ["user"], "superuser": false,
            "blocked": false, "created_at": "[redacted]", "last_login_at": "[redacted]",
        }));
        assert_problem(&app.get("/api/v1/users/nope", Some(&admin.tokens.access)).await, 404, "user_not_found");
    }
}

backend_test! {
    /// Blocking ends every session at once, refuses logins with the same answer as a
    /// wrong password (recorded as `blocked`), and unblocking lets the user in again.
    async fn users_block_and_unblock(app) {
        let admin = app.superuser().await;
        let u = app.user().await;
        let token = Some(admin.tokens.access.as_str());
        let r = app.call(Method::PATCH, &format!("/api/v1/users/{}", u.id), token, Some(json!({"blocked": true}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["blocked"], true);
        assert_problem(&app.get("/api/v1/users/me", Some(&u.tokens.access)).await, 401, "session_ended");
        assert_oauth_error(&app.refresh(&u.tokens.refresh).await, 400, "invalid_grant");
        let refused = app.login(&u.login, PASSWORD).await;
        assert_eq!(refused.body, json!({"error": "invalid_grant", "error_description": "invalid login or password"}));
        let events = app.store().list_login_events(&u.id, None, 1).await.unwrap();
        assert_eq!(events[0].outcome, "blocked");
        let r = app.call(Method::PATCH, &format!("/api/v1/users/{}", u.id), token, Some(json!({"blocked": false}))).await;
        assert_eq!(r.body["blocked"], false);
        assert_eq!(app.login(&u.login, PASSWORD).await.status, StatusCode::OK);
    }
}

backend_test! {
    /// A superuser cannot be blocked (409); a bad body is 422; an unknown user 404.
    async fn users_block_errors(app) {
        let admin = app.superuser().await;
        let other = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let r = app.call(Method::PATCH, &format!("/api/v1/users/{}", other.id), token, Some(json!({"blocked": true}))).await;
        assert_problem(&r, 409, "superuser_protected");
        assert_eq!(app.get("/api/v1/users/me", Some(&other.tokens.access)).await.status, StatusCode::OK);
        let r = app.call(Method::PATCH, &format!("/api/v1/users/{}", other.id), token, Some(json!({"blocked": "yes"}))).await;
        assert_problem(&r, 422, "validation_failed");
        let r = app.call(Method::PATCH, &format!("/api/v1/users/{}", other.id), token, Some(json!({}))).await;
        assert_eq!(r.body["errors"][0], json!({"field": "blocked", "code": "required", "message": "is required"}));
        let r = app.call(Method::PATCH, "/api/v1/users/nope", token, Some(json!({"blocked": true}))).await;
        assert_problem(&r, 404, "user_not_found");
    }
}

backend_test! {
    /// Assigning and taking away roles is idempotent (204), listed with the implicit
    /// `user` role; unknown users and roles are 404; `user` cannot be taken away.
    async fn users_role_assignment(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let u = app.user().await;
        let subscriber = app.role_id("subscriber").await;
        let user_role = app.role_id("user").await;
        let path = format!("/api/v1/users/{}/roles/{subscriber}", u.id);
        for _ in 0..2 {
            assert_eq!(app.call(Method::PUT, &path, token, None).await.status, StatusCode::NO_CONTENT);
        }
        let r = app.get(&format!("/api/v1/users/{}/roles", u.id), token).await;
        assert_eq!(r.body, json!({"items": [
            {"id": user_role, "name": "user", "implicit": true},
            {"id": subscriber, "name": "subscriber", "implicit": false},
        ]}));
        for _ in 0..2 {
            assert_eq!(app.call(Method::DELETE, &path, token, None).await.status, StatusCode::NO_CONTENT);
        }
        assert!(app.store().user_role_ids(&u.id).await.unwrap().is_empty());
        assert_problem(&app.call(Method::PUT, &format!("/api/v1/users/nope/roles/{subscriber}"), token, None).await, 404, "user_not_found");
        assert_problem(&app.call(Method::PUT, &format!("/api/v1/users/{}/roles/nope", u.id), token, None).await, 404, "role_not_found");
        assert_problem(&app.call(Method::DELETE, &format!("/api/v1/users/{}/roles/nope", u.id), token, None).await, 404, "role_not_found");
        assert_problem(&app.get("/api/v1/users/nope/roles", token).await, 404, "user_not_found");
        let r = app.call(Method::DELETE, &format!("/api/v1/users/{}/roles/{user_role}", u.id), token, None).await;
        assert_problem(&r, 409, "builtin_role");
        assert_eq!(app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{user_role}", u.id), token, None).await.status, StatusCode::NO_CONTENT);
    }
}

backend_test! {
    /// Tokens issued after an assignment carry the role; the profile lists it.
    async fn users_roles_in_tokens(app) {
        let admin = app.superuser().await;
        let u = app.user().await;
        let subscriber = app.role_id("subscriber").await;
        app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{subscriber}", u.id), Some(&admin.tokens.access), None).await;
        let refreshed = tokens_of(&app.refresh(&u.tokens.refresh).await);
        let (_, claims) = decode_jwt(&refreshed.access);
        assert_eq!(claims["roles"], json!(["user", "subscriber"]));
        let me = app.get("/api/v1/users/me", Some(&refreshed.access)).await;
        assert_eq!(me.body["roles"], json!(["user", "subscriber"]));
    }
}

/// On PostgreSQL the login-prefix search and its order are byte-wise whatever the
/// database's default collation. The test database here is created with a linguistic
/// collation that ignores punctuation, as glibc's `en_US.UTF-8` does (ICU `en-US`,
/// alternate shifted): `film_` still matches no `film-` login, and the order (and so
/// the cursor) is `-`, `.`, digits, `_`, letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_find_ignores_database_collation() {
    let Some((admin_url, _)) = pg_env() else {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    };
    let db = std::sync::Arc::new(
        PgDatabase::create_with(
            &admin_url,
            "template template0 locale_provider icu icu_locale 'en-US-u-ka-shifted'",
        )
        .await,
    );
    let app = TestApp::builder()
        .postgres()
        .shared_pg(
            db.clone(),
            &format!("usher-test-{}", uuid::Uuid::new_v4().simple()),
        )
        .build()
        .await;
    // The database's own order ignores the hyphen: the test could catch a regression.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (linguistic,): (bool,) = sqlx::query_as("select 'film-ann' > 'film0'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(linguistic, "the test database must not collate byte-wise");
    let admin = app.superuser().await;
    for login in [
        "film-ann", "Film-Dan", "film.bob", "film0", "film_cat", "filmz",
    ] {
        app.sign_up(login).await;
    }
    let token = Some(admin.tokens.access.as_str());
    let logins = |r: &Resp| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["login"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = app.get("/api/v1/users?login=film_", token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(logins(&r), vec!["film_cat"]);
    let mut seen = Vec::new();
    let mut path = "/api/v1/users?login=film&limit=2".to_owned();
    loop {
        let r = app.get(&path, token).await;
        seen.extend(logins(&r));
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/users?login=film&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            "film-ann", "Film-Dan", "film.bob", "film0", "film_cat", "filmz"
        ]
    );
}

backend_test! {
    /// Issue 3, `DELETE /api/v1/users/{user_id}/roles/{role_id}`: 404 for an unknown
    /// user. Taking an existing role away from a user who does not exist (a UUID-shaped
    /// id or any other) is 404 `user_not_found`, not an idempotent 204, and writes no
    /// feed entry.
    async fn users_unassign_unknown_user_is_404(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let subscriber = app.role_id("subscriber").await;
        let before = app.store().change_seq_high_water().await.unwrap();
        for unknown in [uuid::Uuid::new_v4().to_string(), "nope".to_owned()] {
            let r = app.call(Method::DELETE, &format!("/api/v1/users/{unknown}/roles/{subscriber}"), token, None).await;
            assert_problem(&r, 404, "user_not_found");
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert_eq!(redact(r.body.clone(), &["instance"]), json!({
                "type": "urn:usher:problem:user_not_found", "title": "Not Found", "status": 404,
                "detail": "no user with this id", "code": "user_not_found", "instance": "[redacted]",
            }));
        }
        assert_eq!(app.store().change_seq_high_water().await.unwrap(), before, "no feed entry");
    }
}
