//! The revocation feed `GET /api/v1/revocations` (cursor, long poll, SSE, 410, 422,
//! waiting limits, stream lifetime and re-authentication).

use std::time::Duration;

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use usher::token::{b64url, b64url_decode};

async fn feed(app: &TestApp, id: &str, secret: &str, query: &str) -> Resp {
    let req = app
        .client
        .get(app.url(&format!("/api/v1/revocations{query}")))
        .basic_auth(id, Some(secret));
    read(req.send().await.unwrap()).await
}

/// A fresh cursor (the feed read without `since`).
async fn start_cursor(app: &TestApp, id: &str, secret: &str) -> String {
    let start = feed(app, id, secret, "").await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    start.body["next_cursor"].as_str().unwrap().to_owned()
}

/// One Server-Sent Event (WHATWG HTML §9.2.6): its `id`, `event` and `data` fields.
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Reads an event stream block by block; comment lines (keep-alives) are skipped.
struct SseReader {
    resp: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// Opens the feed as an event stream, with `Last-Event-ID` if given.
    async fn open(app: &TestApp, id: &str, secret: &str, last_event_id: Option<&str>) -> Self {
        let mut req = app
            .client
            .get(app.url("/api/v1/revocations"))
            .basic_auth(id, Some(secret))
            .header("accept", "text/event-stream");
        if let Some(last) = last_event_id {
            req = req.header("last-event-id", last);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Self {
            resp,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the stream ends first.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut fields = 0;
                for line in block.lines() {
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match name {
                        "id" => event.id = Some(value),
                        "event" => event.event = Some(value),
                        "data" => event.data.push_str(&value),
                        _ => continue,
                    }
                    fields += 1;
                }
                if fields > 0 {
                    return Some(event);
                }
            }
            let chunk = self.resp.chunk().await.unwrap()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// The cursor `cursor` with its epoch or position replaced (what a cursor of another
/// deployment, or one from before a database restore, looks like).
fn forged_cursor(cursor: &str, epoch: Option<&str>, seq: Option<i64>) -> String {
    let text = String::from_utf8(b64url_decode(cursor.as_bytes()).unwrap()).unwrap();
    let rest = text.strip_prefix("rv:").unwrap();
    let parts: Vec<&str> = rest.split('.').collect();
    assert_eq!(parts.len(), 3, "cursor layout: epoch.seq.issued");
    let seq = seq.map_or(parts[1].to_owned(), |s| s.to_string());
    b64url(format!("rv:{}.{seq}.{}", epoch.unwrap_or(parts[0]), parts[2]).as_bytes())
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
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let subscriber = app.role_id("subscriber").await;
        let path = format!("/api/v1/users/{}/roles/{subscriber}", u.id);
        let r = app.call(Method::PUT, &path, Some(&admin.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let page = feed(&app, &id, &secret, &format!("?since={cursor}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let (_, claims) = decode_jwt(&u.tokens.access);
        let items = redact(page.body["items"].clone(), &["at"]);
        assert_eq!(items, json!([
            {"kind": "session_ended", "sid": claims["sid"], "sub": u.id, "at": "[redacted]"},
            {"kind": "roles_changed", "sub": u.id, "at": "[redacted]"},
        ]));
        let next = page.body["next_cursor"].as_str().unwrap();
        let empty = feed(&app, &id, &secret, &format!("?since={next}")).await;
        assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
        assert_eq!(empty.body["items"], json!([]));
    }
}

backend_test! {
    /// With `wait`, the request is held until an entry arrives and answers at once then.
    async fn revocations_long_poll_wakes_on_logout(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let cursor = start_cursor(&app, &id, &secret).await;
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
        let cursor = start_cursor(&app, &id, &secret).await;
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
    /// A well-formed cursor this database did not issue is 422 (the issue's "an opaque
    /// cursor that usher did not issue is 422"): one of another epoch (another
    /// deployment), and one past the highest position ever allocated (a cursor from
    /// before a restore of an older backup). A genuine cursor stays valid after the
    /// entries it points past are pruned.
    async fn revocations_foreign_cursor_unprocessable(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let u = app.user().await;
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let cursor = start_cursor(&app, &id, &secret).await;
        let high = app.store().change_seq_high_water().await.unwrap();
        assert!(high > 0);
        for forged in [
            forged_cursor(&cursor, Some("AAAAAAAAAAAAAAAAAAAAAA"), None),
            forged_cursor(&cursor, None, Some(high + 1)),
        ] {
            let r = feed(&app, &id, &secret, &format!("?since={forged}")).await;
            assert_problem(&r, 422, "validation_failed");
            assert_eq!(r.body["errors"], json!([{"field": "since", "code": "format", "message": "not a cursor issued by this endpoint"}]));
        }
        let r = feed(&app, &id, &secret, &format!("?since={}", forged_cursor(&cursor, None, Some(high)))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let now = app.clock_now();
        app.store().prune(now, now + 1).await.unwrap();
        assert_eq!(app.store().last_change_seq().await.unwrap(), 0, "every entry pruned");
        let r = feed(&app, &id, &secret, &format!("?since={cursor}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["items"], json!([]));
    }
}

backend_test! {
    /// A page full of entries that are not exposed (role creations) does not hide the
    /// entries after it: the feed reads on until it finds some or reaches the end, so
    /// even an answer without `wait` carries the logout behind the backlog.
    async fn revocations_internal_backlog_read_through(app, config = |c| c.feed_page_size = 2) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let u = app.user().await;
        let cursor = start_cursor(&app, &id, &secret).await;
        for n in 0..5 {
            let body = json!({"name": format!("backlog-{n}"), "permissions": ["films:review"]});
            let r = app.call(Method::POST, "/api/v1/roles", Some(&admin.tokens.access), Some(body)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let page = feed(&app, &id, &secret, &format!("?since={cursor}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let (_, claims) = decode_jwt(&u.tokens.access);
        assert_eq!(redact(page.body["items"].clone(), &["at"]), json!([
            {"kind": "session_ended", "sid": claims["sid"], "sub": u.id, "at": "[redacted]"},
        ]));
        let last = app.store().last_change_seq().await.unwrap();
        let next = page.body["next_cursor"].as_str().unwrap();
        let text = String::from_utf8(b64url_decode(next.as_bytes()).unwrap()).unwrap();
        assert_eq!(text.split('.').nth(1), Some(last.to_string().as_str()), "continues after the logout");
    }
}

/// The date written into a cursor (`rv:EPOCH.SEQ.DATE`).
fn cursor_date(cursor: &str) -> i64 {
    let text = String::from_utf8(b64url_decode(cursor.as_bytes()).unwrap()).unwrap();
    text.rsplit('.').next().unwrap().parse().unwrap()
}

backend_test! {
    /// A reader working through a backlog cannot skip pruned entries (the feed's
    /// contract: entries missed are answered `410`, never skipped): a full page's
    /// `next_cursor`, and the `id` of an event with entries after it, are dated by the
    /// entry at their position, not by the answer, so once the entries still unread may
    /// have been pruned the cursor is 410 `cursor_expired`, not an empty page.
    async fn revocations_backlog_cursor_expires_before_entries_are_pruned(app, config = |c| c.feed_page_size = 2) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let cursor = start_cursor(&app, &id, &secret).await;
        let mut users = Vec::new();
        for _ in 0..3 {
            let u = app.user().await;
            let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
            users.push(u);
        }
        let written = app.clock_now();
        let ttl = app.app.config.access_token_ttl.as_secs() as i64;
        app.clock.advance(ttl - 10);
        let page = feed(&app, &id, &secret, &format!("?since={cursor}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let ended = |u: &User| {
            let sid = decode_jwt(&u.tokens.access).1["sid"].clone();
            json!({"kind": "session_ended", "sid": sid, "sub": u.id, "at": usher::clock::rfc3339(written)})
        };
        assert_eq!(page.body["items"], json!([ended(&users[0]), ended(&users[1])]));
        let next = page.body["next_cursor"].as_str().unwrap().to_owned();
        assert_eq!(cursor_date(&next), written, "dated by the last entry read, not by the answer");
        let mut stream = SseReader::open(&app, &id, &secret, Some(&cursor)).await;
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&event.data).unwrap(), ended(&users[0]));
        assert_eq!(cursor_date(event.id.as_deref().unwrap()), written, "an event with entries after it");
        drop(stream);

        app.clock.advance(80);
        let now = app.clock_now();
        app.store().prune(now, now - app.app.config.change_retention().as_secs() as i64).await.unwrap();
        let high = app.store().change_seq_high_water().await.unwrap();
        assert!(app.store().changes_after(0, 10).await.unwrap().is_empty(), "the third logout is pruned");
        assert!(high > 0);
        let r = feed(&app, &id, &secret, &format!("?since={next}")).await;
        assert_problem(&r, 410, "cursor_expired");
        assert_eq!(r.body["detail"], "entries since this cursor may have been pruned; start again without since");
        let fresh = start_cursor(&app, &id, &secret).await;
        assert_eq!(cursor_date(&fresh), now, "a caught-up cursor is dated by its answer");
        let r = feed(&app, &id, &secret, &format!("?since={fresh}")).await;
        assert_eq!((r.status, &r.body["items"]), (StatusCode::OK, &json!([])));
    }
}

backend_test! {
    /// Deleting a client is published as `client_deleted` with `sub` = the client id, so
    /// verifiers refuse its service tokens (which carry no session).
    async fn revocations_client_deleted_exposed(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let (other, _) = app.service_client(&admin.tokens.access).await;
        let cursor = start_cursor(&app, &id, &secret).await;
        app.clock.advance(1);
        let r = app.call(Method::DELETE, &format!("/api/v1/clients/{other}"), Some(&admin.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let page = feed(&app, &id, &secret, &format!("?since={cursor}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(page.body["items"], json!([{"kind": "client_deleted", "sub": other, "at": usher::clock::rfc3339(app.clock_now())}]));
        assert!(app.store().find_client(&other).await.unwrap().is_none());
    }
}

backend_test! {
    /// Waiting readers are bounded (resource exhaustion): beyond the per-client limit, and
    /// beyond the instance's limit, a long poll or stream is 429 `too_many_waiters` with
    /// `Retry-After`; a read without `wait` needs no waiting place.
    async fn revocations_waiters_limited(app, config = |c| {
        c.feed_max_waiters = 2;
        c.feed_max_waiters_per_client = 1;
    }) {
        let admin = app.superuser().await;
        let (a, a_secret) = app.service_client(&admin.tokens.access).await;
        let (b, b_secret) = app.service_client(&admin.tokens.access).await;
        let (c, c_secret) = app.service_client(&admin.tokens.access).await;
        let cursor = start_cursor(&app, &a, &a_secret).await;
        let mut stream_a = SseReader::open(&app, &a, &a_secret, None).await;
        assert_eq!(stream_a.next().await.unwrap().event.as_deref(), Some("cursor"));
        let busy = feed(&app, &a, &a_secret, &format!("?since={cursor}&wait=5")).await;
        assert_problem(&busy, 429, "too_many_waiters");
        assert_eq!(busy.header("retry-after"), Some("5"));
        assert_eq!(busy.body["detail"], "too many long polls or event streams are open; retry later");
        let mut stream_b = SseReader::open(&app, &b, &b_secret, None).await;
        assert_eq!(stream_b.next().await.unwrap().event.as_deref(), Some("cursor"));
        let busy = feed(&app, &c, &c_secret, &format!("?since={cursor}&wait=5")).await;
        assert_problem(&busy, 429, "too_many_waiters");
        let r = app.client.get(app.url("/api/v1/revocations")).basic_auth(&c, Some(&c_secret))
            .header("accept", "text/event-stream").send().await.unwrap();
        assert_problem(&read(r).await, 429, "too_many_waiters");
        let now = feed(&app, &a, &a_secret, &format!("?since={cursor}")).await;
        assert_eq!(now.status, StatusCode::OK, "{}", now.text);
        assert_eq!(now.body["items"], json!([]));
    }
}

backend_test! {
    /// `Accept: text/event-stream` streams the cursor, then each entry as an event whose
    /// `id` is the cursor after it and whose `data` is the entry as JSON.
    async fn revocations_server_sent_events(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let mut stream = SseReader::open(&app, &id, &secret, None).await;
        let first = stream.next().await.unwrap();
        assert_eq!(first.event.as_deref(), Some("cursor"));
        assert_eq!(first.id.as_deref(), Some(first.data.as_str()));
        let u = app.user().await;
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next()).await
            .expect("an event within 10 s").unwrap();
        assert_eq!(event.event.as_deref(), Some("session_ended"));
        let (_, claims) = decode_jwt(&u.tokens.access);
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data, json!({"kind": "session_ended", "sid": claims["sid"], "sub": u.id, "at": usher::clock::rfc3339(app.clock_now())}));
        let page = feed(&app, &id, &secret, &format!("?since={}", first.data)).await;
        assert_eq!(page.body["items"], json!([data]));
        assert_eq!(event.id.as_deref(), page.body["next_cursor"].as_str(), "the id is the cursor after the entry");
    }
}

backend_test! {
    /// A stream ends when its lifetime is over (resource bound); the client reconnects
    /// with `Last-Event-ID` and receives what happened in between.
    async fn revocations_stream_lifetime_then_resume(app, config = |c| c.feed_stream_lifetime = Duration::from_secs(1)) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let mut stream = SseReader::open(&app, &id, &secret, None).await;
        let first = stream.next().await.unwrap();
        assert_eq!(first.event.as_deref(), Some("cursor"));
        let ended = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        assert_eq!(ended, Ok(None), "the stream ends after its lifetime");
        let u = app.user().await;
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let mut resumed = SseReader::open(&app, &id, &secret, first.id.as_deref()).await;
        let event = tokio::time::timeout(Duration::from_secs(10), resumed.next()).await.unwrap().unwrap();
        assert_eq!(event.event.as_deref(), Some("session_ended"));
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["sub"], json!(u.id));
    }
}

backend_test! {
    /// An open stream and a held long poll are re-authenticated: once their client is
    /// deleted the stream ends without another event and the long poll answers 401
    /// `invalid_client`.
    async fn revocations_deleted_client_stream_ends(app) {
        let admin = app.superuser().await;
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let cursor = start_cursor(&app, &id, &secret).await;
        let mut stream = SseReader::open(&app, &id, &secret, None).await;
        assert_eq!(stream.next().await.unwrap().event.as_deref(), Some("cursor"));
        let query = format!("?since={cursor}&wait=30");
        let poll = feed(&app, &id, &secret, &query);
        let delete = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.call(Method::DELETE, &format!("/api/v1/clients/{id}"), Some(&admin.tokens.access), None).await
        };
        let (poll, deleted) = tokio::join!(poll, delete);
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
        assert_problem(&poll, 401, "invalid_client");
        assert_eq!(poll.header("www-authenticate"), Some("Basic realm=\"usher\""));
        let ended = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        assert_eq!(ended, Ok(None), "the stream ends with no further event");
        assert!(app.store().find_client(&id).await.unwrap().is_none());
    }
}
