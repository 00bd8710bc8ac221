//! The revocation feed `GET /api/v1/revocations` (cursor, long poll, SSE, 410).

use std::time::Duration;

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn feed(app: &TestApp, id: &str, secret: &str, query: &str) -> Resp {
    let req = app
        .client
        .get(app.url(&format!("/api/v1/revocations{query}")))
        .basic_auth(id, Some(secret));
    read(req.send().await.unwrap()).await
}

backend_test! {
    /// Without `since` the feed starts from now (no items, a cursor); a logout and a role
    /// change then appear in order, and the returned cursor continues after them.
    async fn revocations_cursor_walk(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let start = feed(&app, &id, &secret, "").await;
        assert_eq!(start.status, StatusCode::OK, "{}", start.text);
        assert_eq!(start.body["items"], json!([]));
        let cursor = start.body["next_cursor"].as_str().unwrap().to_owned();
        let u = app.user().await;
        app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        let subscriber = app.role_id("subscriber").await;
        app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{subscriber}", u.id), Some(&admin.tokens.access), None).await;
        let page = feed(&app, &id, &secret, &format!("?since={cursor}")).await;
        let (_, claims) = decode_jwt(&u.tokens.access);
        let items = redact(page.body["items"].clone(), &["at"]);
        assert_eq!(items, json!([
            {"kind": "session_ended", "sid": claims["sid"], "sub": u.id, "at": "[redacted]"},
            {"kind": "roles_changed", "sub": u.id, "at": "[redacted]"},
        ]));
        let next = page.body["next_cursor"].as_str().unwrap();
        let empty = feed(&app, &id, &secret, &format!("?since={next}")).await;
        assert_eq!(empty.body["items"], json!([]));
    }
}

backend_test! {
    /// With `wait`, the request is held until an entry arrives and answers at once then.
    async fn revocations_long_poll_wakes_on_logout(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let cursor = feed(&app, &id, &secret, "").await.body["next_cursor"].as_str().unwrap().to_owned();
        let u = app.user().await;
        let started = std::time::Instant::now();
        let query = format!("?since={cursor}&wait=30");
        let poll = feed(&app, &id, &secret, &query);
        let logout = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await
        };
        let (page, _) = tokio::join!(poll, logout);
        assert_eq!(page.body["items"][0]["kind"], "session_ended", "{}", page.text);
        assert!(started.elapsed() < Duration::from_secs(10), "answered when the entry arrived, not at the deadline");
    }
}

backend_test! {
    /// A cursor usher did not issue is 422; one older than the retention is 410; `wait`
    /// above 60 is 422; missing or public-client credentials are 401 `invalid_client`.
    async fn revocations_errors(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        assert_problem(&feed(&app, &id, &secret, "?since=bogus").await, 422, "validation_failed");
        assert_problem(&feed(&app, &id, &secret, "?wait=61").await, 422, "validation_failed");
        let cursor = feed(&app, &id, &secret, "").await.body["next_cursor"].as_str().unwrap().to_owned();
        app.clock.advance(app.app.config.access_token_ttl.as_secs() as i64 + 1);
        assert_problem(&feed(&app, &id, &secret, &format!("?since={cursor}")).await, 410, "cursor_expired");
        let r = feed(&app, &id, "wrong", "").await;
        assert_problem(&r, 401, "invalid_client");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"usher\""));
        assert_problem(&app.get("/api/v1/revocations", None).await, 401, "invalid_client");
        assert_problem(&feed(&app, "cinema-web", "", "").await, 401, "invalid_client");
    }
}

backend_test! {
    /// `Accept: text/event-stream` streams the cursor, then each entry as an event.
    async fn revocations_server_sent_events(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let mut resp = app.client.get(app.url("/api/v1/revocations")).basic_auth(&id, Some(&secret))
            .header("accept", "text/event-stream").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut seen = String::new();
        while !seen.contains("event: cursor") {
            seen.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
        }
        let u = app.user().await;
        app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            while !seen.contains("event: session_ended") {
                seen.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
            }
        }).await;
        assert!(got.is_ok(), "no session_ended event: {seen}");
        assert!(seen.contains(&u.id));
    }
}
