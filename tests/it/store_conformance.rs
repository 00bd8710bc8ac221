//! The [`Store`] contract, checked on both backends directly (below the HTTP layer).

use crate::backend_test;
use crate::harness::*;
use usher::store::{
    BlockOutcome, LoginCheck, NewLoginEvent, RefreshTokenRecord, RoleChange, RoleRecord, Rotation,
    SessionRecord, StoreError, UserRecord, VerifiedLogin,
};

fn user(login: &str, email: Option<&str>) -> UserRecord {
    UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        login: login.to_owned(),
        email: email.map(str::to_owned),
        password_hash: "$argon2id$x".into(),
        superuser: false,
        blocked: false,
        created_at: 1,
        updated_at: 1,
        last_login_at: None,
    }
}

fn session(id: &str, user_id: &str, now: i64) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: user_id.into(),
        client_id: "cinema-web".into(),
        scope: "openid".into(),
        started_at: now,
        last_used_at: now,
        auth_time: now,
        expires_at: now + 1000,
        ip: None,
        user_agent: None,
        ended_at: None,
        end_reason: None,
        parent_sid: None,
    }
}

fn refresh(hash: &str, now: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: hash.into(),
        session_id: String::new(),
        client_id: "cinema-web".into(),
        created_at: now,
        expires_at: now + 1000,
        used_at: None,
    }
}

backend_test! {
    /// Unique violations map to `Conflict` named `<table>_<column>_key` on both backends.
    async fn store_conflicts_are_named(app) {
        let s = app.store();
        s.insert_user(&user("Zoe", Some("z@x.io"))).await.unwrap();
        match s.insert_user(&user("zoe", None)).await {
            Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, "users_login_key"),
            other => panic!("{other:?}"),
        }
        match s.insert_user(&user("zoe2", Some("Z@X.IO"))).await {
            Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, "users_email_key"),
            other => panic!("{other:?}"),
        }
    }
}

backend_test! {
    /// Rotation spends a token once: the second presentation is `Reused` and ends the
    /// session with a feed entry; a token of another client is `Invalid` and ends nothing.
    async fn store_rotation_contract(app) {
        let s = app.store();
        let now = app.clock_now();
        let u = user("rot", None);
        s.insert_user(&u).await.unwrap();
        let mut first = refresh("h1", now);
        first.session_id = "s1".into();
        s.start_session(&session("s1", &u.id, now), Some(&first), None).await.unwrap();
        assert!(matches!(s.rotate_refresh_token("h1", "other-client", &refresh("hx", now), now).await.unwrap(), Rotation::Invalid));
        match s.rotate_refresh_token("h1", "cinema-web", &refresh("h2", now), now).await.unwrap() {
            Rotation::Rotated { session, user } => {
                assert_eq!(session.id, "s1");
                assert_eq!(user.id, u.id);
            }
            other => panic!("{other:?}"),
        }
        let before = s.last_change_seq().await.unwrap();
        match s.rotate_refresh_token("h1", "cinema-web", &refresh("h3", now), now).await.unwrap() {
            Rotation::Reused { ended } => {
                assert_eq!(ended.len(), 1);
                let change = &ended[0];
                assert_eq!(change.kind, "session_ended");
                assert_eq!(change.sid.as_deref(), Some("s1"));
                assert!(change.seq > before);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.rotate_refresh_token("h2", "cinema-web", &refresh("h4", now), now).await.unwrap(), Rotation::Invalid));
        assert!(s.find_refresh_session("h3").await.unwrap().is_none(), "a failed rotation stores nothing");
    }
}

backend_test! {
    /// Ending sessions writes feed entries in order; `changes_after` returns them in seq
    /// order and `end_session` refuses another user's session.
    async fn store_feed_order(app) {
        let s = app.store();
        let now = app.clock_now();
        let u = user("feed", None);
        s.insert_user(&u).await.unwrap();
        for i in 0..3 {
            let mut rt = refresh(&format!("f{i}"), now);
            rt.session_id = format!("fs{i}");
            s.start_session(&session(&format!("fs{i}"), &u.id, now), Some(&rt), None).await.unwrap();
        }
        let start = s.last_change_seq().await.unwrap();
        assert!(s.end_session("fs0", "someone-else", "logout", now).await.unwrap().is_empty());
        let one = s.end_session("fs0", &u.id, "logout", now).await.unwrap().remove(0);
        let rest = s.end_user_sessions(&u.id, Some("fs2"), "logout_others", now).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].sid.as_deref(), Some("fs1"));
        let feed = s.changes_after(start, 100).await.unwrap();
        let seqs: Vec<i64> = feed.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![one.seq, rest[0].seq]);
        assert!(one.seq < rest[0].seq);
        assert_eq!(s.list_active_sessions(&u.id, now).await.unwrap().len(), 1);
    }
}

backend_test! {
    /// Login events page by id, newest first; pruning deletes expired refresh tokens.
    async fn store_events_and_prune(app) {
        let s = app.store();
        let now = app.clock_now();
        let u = user("ev", None);
        s.insert_user(&u).await.unwrap();
        for outcome in ["bad_credentials", "success"] {
            s.record_login_event(&NewLoginEvent { user_id: u.id.clone(), at: now, ip: None, user_agent: None, method: "password_grant", outcome }).await.unwrap();
        }
        let all = s.list_login_events(&u.id, None, 10).await.unwrap();
        assert_eq!(all.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>(), vec!["success", "bad_credentials"]);
        let older = s.list_login_events(&u.id, Some(all[0].id), 10).await.unwrap();
        assert_eq!(older.len(), 1);
        let mut rt = refresh("old", now - 5000);
        rt.session_id = "ps".into();
        s.start_session(&session("ps", &u.id, now), Some(&rt), None).await.unwrap();
        assert!(s.find_refresh_session("old").await.unwrap().is_some());
        s.prune(now, now - 10).await.unwrap();
        assert!(s.find_refresh_session("old").await.unwrap().is_none());
    }
}

backend_test! {
    /// `reauthenticate_session` renews a live session in place (auth time, last use,
    /// expiry) and records the login; an ended or expired session is left alone (`None`,
    /// nothing recorded).
    async fn store_reauthenticates_live_sessions_only(app) {
        let s = app.store();
        let u = user("reauth", None);
        s.insert_user(&u).await.unwrap();
        let now = 1_000_000;
        s.start_session(&session("live", &u.id, now), None, None).await.unwrap();
        s.start_session(&session("ended", &u.id, now), None, None).await.unwrap();
        s.end_session_by_id("ended", "logout", now + 1).await.unwrap();
        let event = |at: i64| VerifiedLogin {
            event: NewLoginEvent { user_id: u.id.clone(), at, ip: None, user_agent: None, method: "login_page", outcome: "success" },
            password_hash: u.password_hash.clone(),
        };
        let renewed = s.reauthenticate_session("live", now + 5000, &event(now + 10)).await.unwrap().unwrap();
        assert_eq!((renewed.id.as_str(), renewed.auth_time, renewed.last_used_at, renewed.expires_at, renewed.started_at), ("live", now + 10, now + 10, now + 5000, now));
        assert_eq!(s.find_session("live").await.unwrap().unwrap().auth_time, now + 10);
        assert!(s.reauthenticate_session("ended", now + 5000, &event(now + 20)).await.unwrap().is_none());
        assert!(s.reauthenticate_session("live", now + 9000, &event(now + 6000)).await.unwrap().is_none(), "expired");
        assert!(s.reauthenticate_session("nope", now + 9000, &event(now + 20)).await.unwrap().is_none());
        let events = s.list_login_events(&u.id, None, 10).await.unwrap();
        assert_eq!(events.len(), 1, "only the successful renewal is recorded");
        assert_eq!(s.find_user(&u.id).await.unwrap().unwrap().last_login_at, Some(now + 10));
    }
}

/// The login a password check of `u` at `at` verified, against `hash`.
fn verified(u: &UserRecord, hash: &str, at: i64) -> VerifiedLogin {
    VerifiedLogin {
        event: NewLoginEvent {
            user_id: u.id.clone(),
            at,
            ip: None,
            user_agent: None,
            method: "password_grant",
            outcome: "success",
        },
        password_hash: hash.to_owned(),
    }
}

backend_test! {
    /// A login must not outlive a password change or a block that commits while its
    /// password is being hashed (issue 2: a password change and a block end every
    /// session): `start_session` re-checks the user in its transaction. A stale password
    /// hash is `PasswordChanged`, a blocked user `Blocked`, and neither writes the
    /// session, its refresh token, the login event or `last_login_at`; the current hash
    /// of an unblocked user starts the session.
    async fn store_start_session_rechecks_the_login(app) {
        let s = app.store();
        let now = 1_000_000;
        let u = user("racer", None);
        s.insert_user(&u).await.unwrap();
        let stale = u.password_hash.clone();
        s.set_password(&u.id, "$argon2id$new", None, now).await.unwrap();
        let mut rt = refresh("stale-rt", now);
        rt.session_id = "stale".into();
        let check = s.start_session(&session("stale", &u.id, now), Some(&rt), Some(&verified(&u, &stale, now))).await.unwrap();
        assert_eq!(check, LoginCheck::PasswordChanged);
        assert!(s.find_session("stale").await.unwrap().is_none());
        assert!(s.find_refresh_session(&rt.token_hash).await.unwrap().is_none());
        assert!(s.list_login_events(&u.id, None, 10).await.unwrap().is_empty());
        assert_eq!(s.find_user(&u.id).await.unwrap().unwrap().last_login_at, None);

        let v = user("blocked-racer", None);
        s.insert_user(&v).await.unwrap();
        assert!(matches!(s.set_blocked(&v.id, true, now).await.unwrap(), BlockOutcome::Set(..)));
        let mut rt = refresh("blocked-rt", now);
        rt.session_id = "blocked".into();
        let check = s.start_session(&session("blocked", &v.id, now), Some(&rt), Some(&verified(&v, &v.password_hash, now))).await.unwrap();
        assert_eq!(check, LoginCheck::Blocked);
        assert!(s.find_session("blocked").await.unwrap().is_none());
        assert!(s.find_refresh_session(&rt.token_hash).await.unwrap().is_none());
        assert!(s.list_login_events(&v.id, None, 10).await.unwrap().is_empty());
        assert_eq!(s.find_user(&v.id).await.unwrap().unwrap().last_login_at, None);
        // Signing in again in a live browser session is re-checked the same way.
        s.set_blocked(&v.id, false, now).await.unwrap();
        s.start_session(&session("live", &v.id, now), None, None).await.unwrap();
        s.set_password(&v.id, "$argon2id$other", Some("live"), now).await.unwrap();
        assert!(s.reauthenticate_session("live", now + 500, &verified(&v, &v.password_hash, now + 5)).await.unwrap().is_none());
        assert_eq!(s.find_session("live").await.unwrap().unwrap().auth_time, now, "not renewed");

        let check = s.start_session(&session("fresh", &u.id, now), Some(&refresh("fresh-rt", now)), Some(&verified(&u, "$argon2id$new", now + 1))).await.unwrap();
        assert_eq!(check, LoginCheck::Current);
        assert!(s.find_session("fresh").await.unwrap().is_some());
        let events = s.list_login_events(&u.id, None, 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>(), vec!["success"]);
        assert_eq!(s.find_user(&u.id).await.unwrap().unwrap().last_login_at, Some(now + 1));
    }
}

backend_test! {
    /// Issue 3: a superuser cannot be blocked, and the refusal is part of the update
    /// itself (`... and not ($2 and superuser)`), not a separate read, so a promotion
    /// racing a block cannot leave a blocked superuser. Blocking a superuser is
    /// `SuperuserProtected` and writes nothing (no flag, no ended session, no feed
    /// entry); unblocking one is allowed; an unknown user is `NotFound`.
    async fn store_set_blocked_refuses_superusers(app) {
        let s = app.store();
        let now = 1_000_000;
        let mut root = user("root", None);
        root.superuser = true;
        s.insert_user(&root).await.unwrap();
        s.start_session(&session("root-s", &root.id, now), None, None).await.unwrap();
        let seq = s.change_seq_high_water().await.unwrap();
        assert!(matches!(s.set_blocked(&root.id, true, now + 1).await.unwrap(), BlockOutcome::SuperuserProtected));
        let stored = s.find_user(&root.id).await.unwrap().unwrap();
        assert!(!stored.blocked && stored.superuser);
        assert_eq!(stored.updated_at, root.updated_at);
        assert!(s.find_session("root-s").await.unwrap().unwrap().ended_at.is_none());
        assert_eq!(s.change_seq_high_water().await.unwrap(), seq, "no feed entry");
        match s.set_blocked(&root.id, false, now + 2).await.unwrap() {
            BlockOutcome::Set(user, changes) => {
                assert!(!user.blocked && user.superuser);
                assert_eq!(changes.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), vec!["roles_changed"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.set_blocked("no-such-user", true, now).await, Err(StoreError::NotFound)));
        assert!(matches!(s.set_blocked("no-such-user", false, now).await, Err(StoreError::NotFound)));
    }
}

backend_test! {
    /// `delete_consent` forgets the consent and ends the user's live sessions with that
    /// client only: not the browser session they were opened through, not other users'.
    async fn store_withdrawn_consent_ends_client_sessions(app) {
        let s = app.store();
        let (u, v) = (user("consenting", None), user("bystander", None));
        s.insert_user(&u).await.unwrap();
        s.insert_user(&v).await.unwrap();
        let now = 1_000_000;
        let mut browser = session("browser", &u.id, now);
        browser.client_id = "usher".into();
        s.start_session(&browser, None, None).await.unwrap();
        let mut child = session("child", &u.id, now);
        child.parent_sid = Some("browser".into());
        s.start_session(&child, None, None).await.unwrap();
        s.start_session(&session("other-user", &v.id, now), None, None).await.unwrap();
        s.save_consent(&u.id, "cinema-web", "openid", now).await.unwrap();
        let changes = s.delete_consent(&u.id, "cinema-web", "consent_withdrawn", now + 1).await.unwrap();
        assert_eq!(changes.iter().map(|c| c.sid.clone().unwrap()).collect::<Vec<_>>(), vec!["child".to_owned()]);
        assert_eq!(s.find_consent(&u.id, "cinema-web").await.unwrap(), None);
        assert_eq!(s.find_session("child").await.unwrap().unwrap().end_reason.as_deref(), Some("consent_withdrawn"));
        assert!(s.find_session("browser").await.unwrap().unwrap().ended_at.is_none());
        assert!(s.find_session("other-user").await.unwrap().unwrap().ended_at.is_none());
    }
}

backend_test! {
    /// `update_role` changes only the members it is given, in one transaction: a
    /// description-only change never writes back permissions read before another change
    /// removed one; the answer is the role as stored; unknown ids are `NotFound`, taken
    /// names `Conflict` (issue 3: a removed permission stays removed).
    async fn store_update_role_changes_only_supplied_members(app) {
        let s = app.store();
        let now = app.clock_now();
        let role = RoleRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: "critics".into(),
            description: "Film critics".into(),
            builtin: false,
            permissions: vec!["films:review".into(), "films:watch_recent".into()],
            created_at: now,
            updated_at: now,
        };
        s.insert_role(&role).await.unwrap();
        let remove = RoleChange { permissions: Some(vec!["films:review".into()]), ..RoleChange::default() };
        let (after, entry) = s.update_role(&role.id, &remove, now + 1).await.unwrap();
        assert_eq!(entry.kind, "roles_changed");
        assert_eq!(after.permissions, vec!["films:review".to_owned()]);
        let describe = RoleChange { description: Some("Reviewers".into()), ..RoleChange::default() };
        let (after, _) = s.update_role(&role.id, &describe, now + 2).await.unwrap();
        let expected = RoleRecord {
            description: "Reviewers".into(),
            permissions: vec!["films:review".into()],
            updated_at: now + 2,
            ..role.clone()
        };
        assert_eq!(after, expected);
        assert_eq!(s.find_role(&role.id).await.unwrap().unwrap(), expected);
        let rename = RoleChange { name: Some("subscriber".into()), ..RoleChange::default() };
        match s.update_role(&role.id, &rename, now).await {
            Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, "roles_name_key"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.update_role("nope", &describe, now).await, Err(StoreError::NotFound)));
        assert_eq!(s.find_role(&role.id).await.unwrap().unwrap(), expected, "failed changes change nothing");
    }
}

backend_test! {
    /// The feed epoch is chosen once per database: the first candidate is kept and later
    /// ones are ignored. The high-water mark of feed positions survives pruning, while
    /// `last_change_seq` only sees the rows left.
    async fn store_feed_epoch_and_high_water(app) {
        let s = app.store();
        let kept = s.feed_epoch("another-candidate").await.unwrap();
        assert_ne!(kept, "another-candidate", "the epoch chosen at start is kept");
        assert_eq!(s.feed_epoch("a-third-one").await.unwrap(), kept);
        let now = app.clock_now();
        let u = user("epoch", None);
        s.insert_user(&u).await.unwrap();
        s.start_session(&session("es1", &u.id, now), None, None).await.unwrap();
        let ended = s.end_session("es1", &u.id, "logout", now).await.unwrap().remove(0);
        assert_eq!(s.change_seq_high_water().await.unwrap(), ended.seq);
        s.prune(now, now + 1).await.unwrap();
        assert_eq!(s.last_change_seq().await.unwrap(), 0);
        assert_eq!(s.change_seq_high_water().await.unwrap(), ended.seq);
    }
}

/// `USHER_DATABASE_URL=sqlite::memory:` is one database for the whole process, however
/// many connections are configured: concurrent writers and readers all see every row,
/// and none of them is refused as locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_is_one_database() {
    let app = TestApp::builder()
        .sqlite()
        .database_url("sqlite::memory:")
        .config(|c| c.database_max_connections = 10)
        .build()
        .await;
    let store = app.app.store.clone();
    let writes = (0..200).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let u = user(&format!("mem{n:03}"), None);
            store.insert_user(&u).await.unwrap();
            let found = store.find_user_by_login(&u.login).await.unwrap();
            assert_eq!(found.map(|f| f.id), Some(u.id), "mem{n} read back");
            store.list_users("mem", None, 300).await.unwrap();
        })
    });
    for task in futures_util::future::join_all(writes).await {
        task.unwrap();
    }
    let listed = store.list_users("mem", None, 300).await.unwrap();
    assert_eq!(listed.len(), 200);
    let u = app.user().await;
    let me = app.get("/api/v1/users/me", Some(&u.tokens.access)).await;
    assert_eq!(me.status, reqwest::StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["login"], u.login.as_str());
}
