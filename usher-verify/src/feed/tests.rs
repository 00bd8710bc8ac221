//! Unit tests of the feed state: what each entry refuses, lag, pruning, gaps.

use std::sync::Arc;

use super::*;

fn claims(sub: &str, sid: Option<&str>, jti: &str, iat: i64, roles: &[&str]) -> Claims {
    Claims {
        sub: sub.into(),
        client_id: "web".into(),
        sid: sid.map(Into::into),
        scope: String::new(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        superuser: false,
        exp: iat + 3600,
        iat,
        jti: jti.into(),
    }
}

fn item(kind: &str, sid: Option<&str>, sub: Option<&str>, jti: Option<&str>, at: i64) -> FeedItem {
    FeedItem {
        kind: kind.into(),
        sid: sid.map(Into::into),
        sub: sub.map(Into::into),
        jti: jti.map(Into::into),
        at: Some(at),
    }
}

/// A state started at t=0 that never lags in these tests unless `max_lag` says so.
fn state(retention: u64, role_definitions: bool, cursor: Option<&str>) -> FeedState {
    let limits = FeedLimits {
        retention: Duration::from_secs(retention),
        max_lag: Duration::from_secs(1 << 32),
        role_definitions,
    };
    FeedState::new(limits, cursor.map(Into::into), None, 0)
}

fn check(state: &FeedState, claims: &Claims) -> Result<(), VerifyError> {
    state.check_at(claims, Mode::Feed, 0)
}

/// Each entry kind refuses exactly the tokens it concerns; a role change refuses the
/// user's tokens issued up to its second (a token of a later second passes); a deleted
/// client's tokens issued at or before the deletion are refused, service tokens (no
/// `sid`) included.
#[test]
fn entries_refuse_what_they_concern() {
    let state = state(3600, true, None);
    state.apply(
        &[
            item("session_ended", Some("s1"), Some("u1"), None, 100),
            item("token_revoked", None, Some("svc"), Some("j9"), 100),
            item("roles_changed", None, Some("u2"), None, 100),
            item("client_deleted", None, Some("old-etl"), None, 100),
            item("something_new", None, None, None, 100),
        ],
        100,
    );
    let s = &state;
    assert_eq!(
        check(s, &claims("u1", Some("s1"), "j1", 50, &[])),
        Err(VerifyError::SessionEnded)
    );
    assert_eq!(check(s, &claims("u1", Some("s2"), "j1", 50, &[])), Ok(()));
    assert_eq!(
        check(s, &claims("svc", None, "j9", 50, &[])),
        Err(VerifyError::Revoked)
    );
    assert_eq!(
        check(s, &claims("u2", Some("s3"), "j2", 99, &[])),
        Err(VerifyError::Stale)
    );
    assert_eq!(check(s, &claims("u2", Some("s3"), "j3", 101, &[])), Ok(()));
    let mut service = claims("old-etl", None, "j5", 100, &[]);
    service.client_id = "old-etl".into();
    assert_eq!(check(s, &service), Err(VerifyError::Revoked));
    service.iat = 101;
    assert_eq!(
        check(s, &service),
        Ok(()),
        "a client re-created later is not refused"
    );
    state.apply(&[item("roles_changed", None, None, None, 200)], 200);
    assert_eq!(
        check(s, &claims("u3", Some("s4"), "j4", 150, &["a"])),
        Err(VerifyError::Stale)
    );
    assert_eq!(check(s, &claims("u3", Some("s4"), "j4", 150, &[])), Ok(()));
}

/// Whole seconds cannot order a token and an entry of the same second (`iat` 100 for a
/// token refreshed at 100.2 s, `at` 100 for a role removed at 100.7 s), so every kind
/// refuses the token issued in its own second: a role change (of the user, or of role
/// definitions for tokens with roles) and a gap make it stale, a deleted client refuses
/// it, and an ended session or a revoked `jti` refuse it whatever its `iat` (the feed's
/// contract: a logout's tokens are refused while they have not expired). Tokens of the
/// next second pass, except for the ended session and the revoked `jti`.
#[test]
fn entries_refuse_tokens_of_their_own_second() {
    let state = state(3600, true, None);
    state.apply(
        &[
            item("roles_changed", None, Some("u1"), None, 100),
            item("client_deleted", None, Some("etl"), None, 100),
            item("session_ended", Some("s9"), Some("u9"), None, 100),
            item("token_revoked", None, Some("svc"), Some("j9"), 100),
        ],
        100,
    );
    let s = &state;
    for iat in [100, 101] {
        let stale = (iat == 100).then_some(VerifyError::Stale);
        let refused = (iat == 100).then_some(VerifyError::Revoked);
        let user = claims("u1", Some("s1"), "j1", iat, &[]);
        assert_eq!(check(s, &user).err(), stale, "roles_changed, iat {iat}");
        let mut service = claims("etl", None, "j2", iat, &[]);
        service.client_id = "etl".into();
        assert_eq!(
            check(s, &service).err(),
            refused,
            "client_deleted, iat {iat}"
        );
        let ended = claims("u9", Some("s9"), "j3", iat, &[]);
        assert_eq!(
            check(s, &ended),
            Err(VerifyError::SessionEnded),
            "iat {iat}"
        );
        let revoked = claims("svc", None, "j9", iat, &[]);
        assert_eq!(check(s, &revoked), Err(VerifyError::Revoked), "iat {iat}");
    }
    state.apply(&[item("roles_changed", None, None, None, 200)], 200);
    let with_roles = |iat| claims("u2", Some("s2"), "j4", iat, &["critic"]);
    assert_eq!(check(s, &with_roles(200)), Err(VerifyError::Stale));
    assert_eq!(check(s, &with_roles(201)), Ok(()));

    let gapped = self::state(3600, false, Some("c1"));
    gapped.begin_gap();
    gapped.advance("c2".into(), 300_900);
    let token = |iat| claims("u3", Some("s3"), "j5", iat, &[]);
    assert_eq!(check(&gapped, &token(300)), Err(VerifyError::Stale));
    assert_eq!(check(&gapped, &token(301)), Ok(()));
}

/// In live mode usher answers for roles, so staleness does not apply there (a token
/// predating a role change gets usher's current answer); revocations still do.
#[test]
fn live_mode_applies_revocations_only() {
    let state = state(3600, true, None);
    state.apply(
        &[
            item("roles_changed", None, Some("u2"), None, 100),
            item("session_ended", Some("s1"), Some("u1"), None, 100),
        ],
        100,
    );
    let old = claims("u2", Some("s3"), "j2", 99, &[]);
    assert_eq!(state.check_at(&old, Mode::Live, 0), Ok(()));
    assert_eq!(state.check_at(&old, Mode::Feed, 0), Err(VerifyError::Stale));
    let ended = claims("u1", Some("s1"), "j1", 99, &[]);
    assert_eq!(
        state.check_at(&ended, Mode::Live, 0),
        Err(VerifyError::SessionEnded)
    );
}

/// Past the maximum lag without a successful poll, feed decisions are 503 (the feed
/// can no longer vouch for a token), known revocations are still refused as such,
/// and live decisions are unaffected; the next successful poll restores them.
#[test]
fn lag_beyond_the_bound_is_unavailable() {
    let limits = FeedLimits {
        retention: Duration::from_secs(3600),
        max_lag: Duration::from_secs(75),
        role_definitions: true,
    };
    let state = FeedState::new(limits, None, None, 1_000_000);
    state.apply(
        &[item("session_ended", Some("s1"), Some("u1"), None, 1000)],
        1000,
    );
    let token = claims("u2", Some("s2"), "j", 1000, &[]);
    assert_eq!(state.check_at(&token, Mode::Feed, 1_075_000), Ok(()));
    assert_eq!(
        state.check_at(&token, Mode::Feed, 1_075_001),
        Err(VerifyError::Unavailable)
    );
    assert_eq!(state.check_at(&token, Mode::Live, 1_075_001), Ok(()));
    let ended = claims("u1", Some("s1"), "j", 1000, &[]);
    assert_eq!(
        state.check_at(&ended, Mode::Feed, 1_075_001),
        Err(VerifyError::SessionEnded)
    );
    state.advance("c1".into(), 1_100_000);
    assert_eq!(state.check_at(&token, Mode::Feed, 1_175_000), Ok(()));
    assert_eq!(state.last_sync(), 1100);
}

/// Entries older than the retention are pruned, unless a token seen lives longer
/// than the retention: then they are kept for that lifetime.
#[test]
fn prune_keeps_entries_for_the_longest_token_lifetime() {
    let state = state(3600, false, None);
    state.apply(
        &[item("session_ended", Some("s1"), Some("u1"), None, 100)],
        100,
    );
    state.prune(100 + 3600);
    assert!(check(&state, &claims("u1", Some("s1"), "j", 90, &[])).is_err());
    state.prune(101 + 3600);
    assert_eq!(
        check(&state, &claims("u1", Some("s1"), "j", 90, &[])),
        Ok(())
    );

    let state = self::state(3600, false, None);
    let mut long = claims("u2", Some("s2"), "j", 100, &[]);
    long.exp = long.iat + 7200;
    assert_eq!(check(&state, &long), Ok(()));
    state.apply(
        &[item("session_ended", Some("s2"), Some("u2"), None, 150)],
        150,
    );
    state.prune(150 + 3601);
    assert_eq!(
        check(&state, &long),
        Err(VerifyError::SessionEnded),
        "kept past the retention"
    );
    state.prune(150 + 7201);
    assert_eq!(check(&state, &long), Ok(()));
}

/// A gap drops the cursor at once, but its moment is when the next (fresh) poll
/// answers: tokens issued up to that second are stale, so revocations written
/// between the gap and the fresh cursor are not silently lost.
#[test]
fn gap_moment_is_the_next_successful_poll() {
    let state = state(3600, false, Some("c1"));
    state.begin_gap();
    assert_eq!(state.cursor(), None);
    let token = claims("u1", Some("s1"), "j", 5000, &[]);
    assert_eq!(check(&state, &token), Ok(()), "no moment yet");
    state.advance("c9".into(), 5_020_500);
    assert_eq!(state.cursor().as_deref(), Some("c9"));
    assert_eq!(check(&state, &token), Err(VerifyError::Stale));
    let same_second = claims("u1", Some("s1"), "j", 5020, &[]);
    assert_eq!(check(&state, &same_second), Err(VerifyError::Stale));
    let later = claims("u1", Some("s1"), "j", 5021, &[]);
    assert_eq!(check(&state, &later), Ok(()));
    state.advance("c10".into(), 5_060_000);
    assert_eq!(check(&state, &later), Ok(()), "one gap, one moment");
}

/// Role changes reach the listener: the user's, and role definitions (`None`).
#[test]
fn role_changes_reach_the_listener() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let listener: RolesListener =
        Box::new(move |sub| log.lock().unwrap().push(sub.map(str::to_owned)));
    let limits = FeedLimits {
        retention: Duration::from_secs(3600),
        max_lag: Duration::from_secs(75),
        role_definitions: true,
    };
    let state = FeedState::new(limits, None, Some(listener), 0);
    state.apply(
        &[
            item("roles_changed", None, Some("u1"), None, 1),
            item("session_ended", Some("s"), Some("u2"), None, 1),
            item("roles_changed", None, None, None, 1),
        ],
        1,
    );
    assert_eq!(*seen.lock().unwrap(), vec![Some("u1".to_owned()), None]);
}

/// An entry's `at` is read as usher writes it (RFC 3339) or as Unix seconds; anything
/// else (a bad date, a boolean, an absurd number) counts as missing, so one odd entry
/// cannot stall the feed.
#[test]
fn entry_times_parse_leniently() {
    let at = |v: serde_json::Value| {
        serde_json::from_value::<FeedItem>(serde_json::json!({"kind": "session_ended", "at": v}))
            .unwrap()
            .at
    };
    assert_eq!(at("2026-11-25T12:31:40Z".into()), Some(1_795_609_900));
    assert_eq!(at("2026-11-25T13:31:40+01:00".into()), Some(1_795_609_900));
    assert_eq!(at(1_795_609_900.into()), Some(1_795_609_900));
    assert_eq!(at(1_795_609_900.7.into()), Some(1_795_609_900));
    assert_eq!(at("yesterday".into()), None);
    assert_eq!(at(true.into()), None);
    assert_eq!(at(1e300.into()), None);
    assert_eq!(at(serde_json::Value::Null), None);
}
