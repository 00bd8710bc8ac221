//! The permission check `/api/v1/authz/check`: anonymous, users, the superuser,
//! the batch form, changes taking effect at once, and the database-free hot path.

use std::time::Duration;

use crate::backend_test;
use crate::harness::proxy::FaultProxy;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const RECENT: &str = "/api/v1/authz/check?permission=films:watch_recent";

backend_test! {
    /// Without a token the check answers for `anonymous` (empty by default).
    async fn check_anonymous(app) {
        let r = app.get(RECENT, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({"allowed": false, "subject": null, "roles": ["anonymous"]}));
        let admin = app.superuser().await;
        let anonymous = app.role_id("anonymous").await;
        app.call(Method::PATCH, &format!("/api/v1/roles/{anonymous}"), Some(&admin.tokens.access), Some(json!({"permissions": ["films:list"]}))).await;
        let r = app.get("/api/v1/authz/check?permission=films:list", None).await;
        assert_eq!(r.body["allowed"], true);
        // What anonymous may do, every user and every service may do too.
        let u = app.user().await;
        let r = app.get("/api/v1/authz/check?permission=films:list", Some(&u.tokens.access)).await;
        assert_eq!(r.body["allowed"], true);
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let t = app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "client_credentials")]).await;
        let r = app.get("/api/v1/authz/check?permission=films:list", Some(t.body["access_token"].as_str().unwrap())).await;
        assert_eq!(r.body, json!({"allowed": true, "subject": id, "roles": ["anonymous"]}));
    }
}

backend_test! {
    /// A plain user is refused a recent film; given `subscriber` they are allowed at
    /// once, with the same token; taking the role away refuses again at once.
    async fn check_follows_role_changes_at_once(app) {
        let admin = app.superuser().await;
        let u = app.user().await;
        let r = app.get(RECENT, Some(&u.tokens.access)).await;
        assert_eq!(r.body, json!({"allowed": false, "subject": u.id, "roles": ["user"]}));
        let subscriber = app.role_id("subscriber").await;
        let path = format!("/api/v1/users/{}/roles/{subscriber}", u.id);
        app.call(Method::PUT, &path, Some(&admin.tokens.access), None).await;
        let r = app.get(RECENT, Some(&u.tokens.access)).await;
        assert_eq!(r.body, json!({"allowed": true, "subject": u.id, "roles": ["user", "subscriber"]}));
        app.call(Method::DELETE, &path, Some(&admin.tokens.access), None).await;
        assert_eq!(app.get(RECENT, Some(&u.tokens.access)).await.body["allowed"], false);
        // Removing the permission from the role, or deleting the role, works the same way.
        app.call(Method::PUT, &path, Some(&admin.tokens.access), None).await;
        app.call(Method::PATCH, &format!("/api/v1/roles/{subscriber}"), Some(&admin.tokens.access), Some(json!({"permissions": []}))).await;
        assert_eq!(app.get(RECENT, Some(&u.tokens.access)).await.body["allowed"], false);
        app.call(Method::PATCH, &format!("/api/v1/roles/{subscriber}"), Some(&admin.tokens.access), Some(json!({"permissions": ["films:watch_recent"]}))).await;
        assert_eq!(app.get(RECENT, Some(&u.tokens.access)).await.body["allowed"], true);
        app.call(Method::DELETE, &format!("/api/v1/roles/{subscriber}"), Some(&admin.tokens.access), None).await;
        let r = app.get(RECENT, Some(&u.tokens.access)).await;
        assert_eq!(r.body, json!({"allowed": false, "subject": u.id, "roles": ["user"]}));
    }
}

backend_test! {
    /// The superuser is allowed everything, even permissions no role names.
    async fn check_superuser_always_allowed(app) {
        let admin = app.superuser().await;
        let r = app.get("/api/v1/authz/check?permission=anything:at_all", Some(&admin.tokens.access)).await;
        assert_eq!(r.body, json!({"allowed": true, "subject": admin.id, "roles": ["user"], "superuser": true}));
    }
}

backend_test! {
    /// A bad token is 401 (never anonymous); a malformed or missing permission is 422.
    async fn check_errors(app) {
        let r = app.get(RECENT, Some("garbage")).await;
        assert_problem(&r, 401, "token_malformed");
        let u = app.user().await;
        app.call(Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_problem(&app.get(RECENT, Some(&u.tokens.access)).await, 401, "session_ended");
        for q in ["permission=films", "permission=Films:watch", "permission=a:b:c", ""] {
            let r = app.get(&format!("/api/v1/authz/check?{q}"), None).await;
            assert_problem(&r, 422, "validation_failed");
            assert_eq!(r.body["errors"][0]["field"], "permission");
        }
    }
}

backend_test! {
    /// Credentials of another scheme (`Basic`, `Token`, garbage) are a bad token: 401
    /// `token_malformed` on the check and its batch form, never an anonymous answer
    /// (issue 3: "401 for a bad token (never silently anonymous)"; RFC 6750 §3.1).
    async fn check_other_auth_scheme_is_401(app) {
        for value in ["Basic Zm9vOmJhcg==", "Token abc", "garbage", "Bearer"] {
            let r = read(app.client.get(app.url(RECENT)).header("authorization", value).send().await.unwrap()).await;
            assert_problem(&r, 401, "token_malformed");
            assert!(r.header("www-authenticate").unwrap().starts_with("Bearer realm=\"usher\", error=\"invalid_token\""), "{value}");
            let r = read(app.client.post(app.url("/api/v1/authz/check")).header("authorization", value)
                .json(&json!({"permissions": ["films:watch_recent"]})).send().await.unwrap()).await;
            assert_problem(&r, 401, "token_malformed");
        }
        // No Authorization header at all is the anonymous answer.
        assert_eq!(app.get(RECENT, None).await.body, json!({"allowed": false, "subject": null, "roles": ["anonymous"]}));
    }
}

backend_test! {
    /// The batch form answers each permission; more than 100, or a malformed element,
    /// is 422 naming it.
    async fn check_batch(app) {
        let admin = app.superuser().await;
        let u = app.user().await;
        let subscriber = app.role_id("subscriber").await;
        app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{subscriber}", u.id), Some(&admin.tokens.access), None).await;
        let r = app.call(Method::POST, "/api/v1/authz/check", Some(&u.tokens.access),
            Some(json!({"permissions": ["films:watch_recent", "roles:manage"]}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({"results": {"films:watch_recent": true, "roles:manage": false}, "subject": u.id, "roles": ["user", "subscriber"]}));
        let r = app.call(Method::POST, "/api/v1/authz/check", None, Some(json!({"permissions": ["films:watch_recent"]}))).await;
        assert_eq!(r.body, json!({"results": {"films:watch_recent": false}, "subject": null, "roles": ["anonymous"]}));
        let many: Vec<String> = (0..101).map(|i| format!("films:p{i}")).collect();
        let r = app.call(Method::POST, "/api/v1/authz/check", None, Some(json!({"permissions": many}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "permissions");
        let r = app.call(Method::POST, "/api/v1/authz/check", None, Some(json!({"permissions": ["ok:x", "bad"]}))).await;
        assert_eq!(r.body["errors"][0]["field"], "permissions[1]");
        let r = app.call(Method::POST, "/api/v1/authz/check", Some("garbage"), Some(json!({"permissions": ["ok:x"]}))).await;
        assert_problem(&r, 401, "token_malformed");
    }
}

backend_test! {
    /// Blocking a user refuses their check at once (their session ended).
    async fn check_blocked_user_refused(app) {
        let admin = app.superuser().await;
        let u = app.user().await;
        app.call(Method::PATCH, &format!("/api/v1/users/{}", u.id), Some(&admin.tokens.access), Some(json!({"blocked": true}))).await;
        assert_problem(&app.get(RECENT, Some(&u.tokens.access)).await, 401, "session_ended");
    }
}

/// Once a user is warm, the check and introspection of an access token need no
/// database: with PostgreSQL cut off they still answer from the in-memory view
/// (issue 3: the hot path does no database query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_hot_path_needs_no_database() {
    let Some((admin_url, _)) = pg_env() else {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    };
    let db = std::sync::Arc::new(PgDatabase::create(&admin_url).await);
    let host = admin_url
        .split_once('@')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = FaultProxy::start(&host).await;
    let app = TestApp::builder()
        .postgres()
        .shared_pg(
            db.clone(),
            &format!("usher-test-{}", uuid::Uuid::new_v4().simple()),
        )
        .database_url(db.url_via(&proxy.addr()))
        .config(|c| c.database_timeout = Duration::from_millis(300))
        .build()
        .await;
    let admin = app.superuser().await;
    let (cid, secret) = app.service_client(&admin.tokens.access).await;
    let u = app.user().await;
    assert_eq!(
        app.get(RECENT, Some(&u.tokens.access)).await.status,
        StatusCode::OK
    );
    let introspect = || async {
        app.post_form_basic(
            "/oauth2/introspect",
            &cid,
            &secret,
            &[("token", &u.tokens.access)],
        )
        .await
    };
    let warm = introspect().await;
    assert_eq!(warm.body["active"], true, "{}", warm.text);
    proxy.cut();
    // Introspecting an access token (the client and user warm) needs no database.
    let r = introspect().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, warm.body);
    for _ in 0..50 {
        let r = app.get(RECENT, Some(&u.tokens.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["allowed"], false);
    }
    let r = app.get(RECENT, None).await;
    assert_eq!(r.status, StatusCode::OK);
    // The database really is unreachable for this app.
    assert_problem(
        &app.get("/api/v1/users/me", Some(&u.tokens.access)).await,
        503,
        "unavailable",
    );
    proxy.restore();
}

/// Two instances sharing PostgreSQL and Redis: with B's view warm (it has answered for
/// the user before), an assignment, a removal, a change of a role's permissions, a role
/// deletion and a block on A are each seen by B's check within a second, and B's
/// introspection drops the role too (issue 3: "on every instance", through the change
/// feed, not its periodic catch-up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_changes_reach_second_instance() {
    if !TestApp::pg_available() {
        eprintln!("skipped: USHER_TEST_DATABASE_URL / USHER_TEST_REDIS_URL not set");
        return;
    }
    let hour = Duration::from_secs(3600);
    let a = TestApp::builder()
        .postgres()
        .config(move |c| c.feed_sync_interval = hour)
        .build()
        .await;
    let issuer = a.app.config.issuer.clone();
    let b = TestApp::builder()
        .postgres()
        .shared_pg(a.pg.clone().unwrap(), &a.app.config.redis_prefix)
        .config(move |c| {
            c.feed_sync_interval = hour;
            c.issuer = issuer;
        })
        .build()
        .await;
    let admin = a.superuser().await;
    let root = Some(admin.tokens.access.as_str());
    let (cid, secret) = a.service_client(&admin.tokens.access).await;
    let u = a.user().await;
    let subscriber = a.role_id("subscriber").await;
    let path = format!("/api/v1/users/{}/roles/{subscriber}", u.id);
    let on_b = |allowed: bool, roles: serde_json::Value| {
        let expected = json!({"allowed": allowed, "subject": u.id, "roles": roles});
        let (b, token) = (&b, u.tokens.access.clone());
        async move {
            eventually(Duration::from_secs(1), || async {
                b.get(RECENT, Some(&token)).await.body == expected
            })
            .await
        }
    };
    // B answers for the user first, so its view holds them.
    assert_eq!(
        b.get(RECENT, Some(&u.tokens.access)).await.body,
        json!({"allowed": false, "subject": u.id, "roles": ["user"]})
    );
    a.call(Method::PUT, &path, root, None).await;
    assert!(
        on_b(true, json!(["user", "subscriber"])).await,
        "assignment"
    );
    a.call(Method::DELETE, &path, root, None).await;
    assert!(on_b(false, json!(["user"])).await, "removal");
    let introspected = eventually(Duration::from_secs(1), || async {
        let r = b
            .post_form_basic(
                "/oauth2/introspect",
                &cid,
                &secret,
                &[("token", &u.tokens.access)],
            )
            .await;
        r.body["roles"] == json!(["user"])
    })
    .await;
    assert!(introspected, "B's introspection drops the role");
    a.call(Method::PUT, &path, root, None).await;
    assert!(
        on_b(true, json!(["user", "subscriber"])).await,
        "assignment again"
    );
    let role = format!("/api/v1/roles/{subscriber}");
    let r = a
        .call(Method::PATCH, &role, root, Some(json!({"permissions": []})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        on_b(false, json!(["user", "subscriber"])).await,
        "permission removed"
    );
    a.call(
        Method::PATCH,
        &role,
        root,
        Some(json!({"permissions": ["films:watch_recent"]})),
    )
    .await;
    assert!(
        on_b(true, json!(["user", "subscriber"])).await,
        "permission back"
    );
    let r = a.call(Method::DELETE, &role, root, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(on_b(false, json!(["user"])).await, "role deleted");
    a.call(
        Method::PATCH,
        &format!("/api/v1/users/{}", u.id),
        root,
        Some(json!({"blocked": true})),
    )
    .await;
    let blocked_on_b = eventually(Duration::from_secs(1), || async {
        b.get(RECENT, Some(&u.tokens.access)).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(blocked_on_b, "a block must reach B within a second");
}

backend_test! {
    /// An instance whose catch-up lagged past half the feed's retention may have missed
    /// entries that the janitor deleted meanwhile: it drops every cached user and client
    /// and reloads role definitions, so a role taken away during the lag stops allowing
    /// at once (a removed role never comes back from a stale cache; no time to live
    /// needed, so warm checks never wait on the database).
    async fn check_after_feed_lag_forgets_stale_roles(app) {
        let root = app.superuser().await;
        let u = app.user().await;
        let subscriber = app.role_id("subscriber").await;
        let assignment = format!("/api/v1/users/{}/roles/{subscriber}", u.id);
        let r = app.call(Method::PUT, &assignment, Some(&root.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        // B reads the database only when its own sync runs (here: when the test says).
        let b = app.sibling(|c| c.feed_sync_interval = Duration::from_secs(3600)).await;
        let check = "/api/v1/authz/check?permission=films:watch_recent";
        let warm = b.get(check, Some(&b.tokens(&u.login).await.access)).await;
        assert_eq!(warm.body["allowed"], true, "{}", warm.text);
        let r = app.call(Method::DELETE, &assignment, Some(&root.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        // B lags past the retention, and the janitor deletes the entry it never read.
        let retention = app.app.config.change_retention().as_secs() as i64;
        app.clock.advance(retention + 1);
        let now = app.clock_now();
        app.store().prune(now, now - retention).await.unwrap();
        assert!(app.store().changes_after(0, 100).await.unwrap().is_empty(), "the entry is gone");
        usher::service::feed::resync(&b.app).await;
        let fresh = b.tokens(&u.login).await;
        let (_, claims) = decode_jwt(&fresh.access);
        assert_eq!(claims["roles"], json!(["user"]), "the new token names no removed role");
        let r = b.get(check, Some(&fresh.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({"allowed": false, "subject": u.id, "roles": ["user"]}));
    }
}
