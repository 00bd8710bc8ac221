//! Sessions: the list, ending one, logout and "log out of all other sessions" — each
//! taking effect at once on every bearer endpoint, with no access-token list stored.

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};

backend_test! {
    /// The list shows the caller's live sessions, newest first (sessions started in the
    /// same second in the order they started), the caller's own marked `current`, with
    /// client, IP and user agent.
    async fn sessions_list_marks_current(app) {
        let u = app.user().await;
        app.clock.advance(5);
        let second = app.tokens(&u.login).await;
        let third = app.tokens(&u.login).await;
        let r = app.get("/api/v1/users/me/sessions", Some(&second.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sid = |t: &str| decode_jwt(t).1["sid"].as_str().unwrap().to_owned();
        let ids: Vec<&str> = r.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![sid(&third.access), sid(&second.access), sid(&u.tokens.access)], "newest first");
        let started = |n: usize| r.body["items"][n]["started_at"].as_str().unwrap().to_owned();
        assert_eq!(started(0), started(1), "the two newest started in the same second");
        assert_ne!(started(1), started(2));
        for item in r.body["items"].as_array().unwrap() {
            let current = item["id"] == sid(&second.access).as_str();
            assert_eq!(item["current"], current);
            assert_eq!(item["client_id"], "cinema-web");
            assert_eq!(item["ip"], "127.0.0.1");
            assert!(item["user_agent"].is_null(), "the test client sends no user agent");
            assert!(item["started_at"].is_string() && item["last_used_at"].is_string());
        }
        let stored: Vec<String> = app.store().list_active_sessions(&u.id, app.clock_now()).await.unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(stored, ids);
    }
}

backend_test! {
    /// An ended session stays ended after a restart in which everything held outside
    /// the database is lost (the in-process view, Redis): the database is written first
    /// and every instance rebuilds its view from it at start (issue 2, sessions).
    async fn logout_survives_restart(app) {
        let u = app.user().await;
        let other = app.tokens(&u.login).await;
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let restarted = app.restart().await;
        let me = restarted.get("/api/v1/users/me", Some(&u.tokens.access)).await;
        assert_problem(&me, 401, "session_ended");
        assert_eq!(
            me.header("www-authenticate"),
            Some("Bearer realm=\"usher\", error=\"invalid_token\", error_description=\"the session of the access token has ended\"")
        );
        assert_oauth_error(&restarted.refresh(&u.tokens.refresh).await, 400, "invalid_grant");
        let live = restarted.get("/api/v1/users/me", Some(&other.access)).await;
        assert_eq!(live.status, StatusCode::OK, "the other session lives on: {}", live.text);
        let (_, claims) = decode_jwt(&u.tokens.access);
        let s = restarted.store().find_session(claims["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(s.end_reason.as_deref(), Some("logout"));
    }
}

backend_test! {
    /// Ending another of one's sessions is 204 and its access token is refused at once;
    /// it disappears from the list.
    async fn sessions_end_one(app) {
        let u = app.user().await;
        let other = app.tokens(&u.login).await;
        let (_, claims) = decode_jwt(&other.access);
        let sid = claims["sid"].as_str().unwrap();
        let r = app.call(Method::DELETE, &format!("/api/v1/users/me/sessions/{sid}"), Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_problem(&app.get("/api/v1/users/me", Some(&other.access)).await, 401, "session_ended");
        let list = app.get("/api/v1/users/me/sessions", Some(&u.tokens.access)).await;
        assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
        let r = app.call(Method::DELETE, &format!("/api/v1/users/me/sessions/{sid}"), Some(&u.tokens.access), None).await;
        assert_problem(&r, 404, "session_not_found");
    }
}

backend_test! {
    /// Another user's session, or one that does not exist, is 404 and stays untouched.
    async fn sessions_end_foreign_not_found(app) {
        let a = app.user().await;
        let b = app.user().await;
        let (_, claims) = decode_jwt(&b.tokens.access);
        let sid = claims["sid"].as_str().unwrap();
        let r = app.call(Method::DELETE, &format!("/api/v1/users/me/sessions/{sid}"), Some(&a.tokens.access), None).await;
        assert_problem(&r, 404, "session_not_found");
        assert_eq!(app.get("/api/v1/users/me", Some(&b.tokens.access)).await.status, StatusCode::OK);
        let r = app.call(Method::DELETE, "/api/v1/users/me/sessions/nope", Some(&a.tokens.access), None).await;
        assert_problem(&r, 404, "session_not_found");
    }
}

backend_test! {
    /// Logout is 204 and the session's access token is refused immediately, before it
    /// expires, and its refresh token too.
    async fn logout_ends_current_session_at_once(app) {
        let u = app.user().await;
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let me = app.get("/api/v1/users/me", Some(&u.tokens.access)).await;
        assert_problem(&me, 401, "session_ended");
        assert!(me.header("www-authenticate").unwrap().contains("invalid_token"));
        assert_oauth_error(&app.refresh(&u.tokens.refresh).await, 400, "invalid_grant");
        let (_, claims) = decode_jwt(&u.tokens.access);
        let s = app.store().find_session(claims["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(s.end_reason.as_deref(), Some("logout"));
    }
}

backend_test! {
    /// Logout-others is 204: every other session is refused at once, the current one
    /// keeps working, and another user's sessions are untouched.
    async fn logout_others_keeps_current(app) {
        let u = app.user().await;
        let second = app.tokens(&u.login).await;
        let third = app.tokens(&u.login).await;
        let stranger = app.user().await;
        let r = app.call(Method::POST, "/api/v1/auth/logout-others", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_eq!(app.get("/api/v1/users/me", Some(&u.tokens.access)).await.status, StatusCode::OK);
        for t in [&second, &third] {
            assert_problem(&app.get("/api/v1/users/me", Some(&t.access)).await, 401, "session_ended");
            assert_oauth_error(&app.refresh(&t.refresh).await, 400, "invalid_grant");
        }
        assert_eq!(app.get("/api/v1/users/me", Some(&stranger.tokens.access)).await.status, StatusCode::OK);
        let list = app.get("/api/v1/users/me/sessions", Some(&u.tokens.access)).await;
        assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
        assert_eq!(list.body["items"][0]["current"], true);
    }
}

backend_test! {
    /// The session endpoints and logout need a token: 401 with a bare challenge.
    async fn sessions_require_token(app) {
        for (m, p) in [(Method::GET, "/api/v1/users/me/sessions"), (Method::DELETE, "/api/v1/users/me/sessions/x"),
                       (Method::POST, "/api/v1/auth/logout"), (Method::POST, "/api/v1/auth/logout-others"),
                       (Method::GET, "/api/v1/users/me/login-history"), (Method::PUT, "/api/v1/users/me/password"),
                       (Method::PATCH, "/api/v1/users/me")] {
            let r = app.call(m, p, None, None).await;
            assert_problem(&r, 401, "token_missing");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{p}");
        }
    }
}

/// An ended session is refused on another instance (same database, same Redis) within a
/// second, through the change feed, while the token has not expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_seen_by_second_instance() {
    if !TestApp::pg_available() {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    }
    let a = TestApp::builder()
        .postgres()
        .config(|c| c.feed_sync_interval = std::time::Duration::from_secs(3600))
        .build()
        .await;
    let issuer = a.app.config.issuer.clone();
    let b = TestApp::builder()
        .postgres()
        .shared_pg(a.pg.clone().unwrap(), &a.app.config.redis_prefix)
        .config(move |c| {
            c.feed_sync_interval = std::time::Duration::from_secs(3600);
            c.issuer = issuer;
        })
        .build()
        .await;
    let u = a.user().await;
    let on_b = b.get("/api/v1/users/me", Some(&u.tokens.access)).await;
    assert_eq!(on_b.status, StatusCode::OK, "{}", on_b.text);
    let r = a
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            Some(&u.tokens.access),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let seen = eventually(std::time::Duration::from_secs(1), || async {
        b.get("/api/v1/users/me", Some(&u.tokens.access))
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(seen, "instance B must refuse the token within a second");
}
