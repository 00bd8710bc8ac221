//! `POST /oauth2/token` with `grant_type=refresh_token` (RFC 6749 §6): rotation, reuse
//! detection (RFC 9700 §4.14) and the concurrent race.

use crate::backend_test;
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;

backend_test! {
    /// A refresh returns new access and refresh tokens in the same session, and a new ID
    /// token since the scope has `openid` (issue 2: "`id_token` when scope has
    /// `openid`"); the old refresh token stops working.
    async fn token_refresh_rotates(app) {
        let u = app.user().await;
        let r = app.refresh(&u.tokens.refresh).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(
            redact(r.body.clone(), &["access_token", "refresh_token", "id_token"]),
            json!({"access_token": "[redacted]", "token_type": "Bearer", "expires_in": 900,
                   "refresh_token": "[redacted]", "scope": "openid profile email roles offline_access",
                   "id_token": "[redacted]"})
        );
        let next = tokens_of(&r);
        assert_ne!(next.refresh, u.tokens.refresh);
        let (_, old) = decode_jwt(&u.tokens.access);
        let (_, new) = decode_jwt(&next.access);
        assert_eq!(old["sid"], new["sid"], "same session");
        assert_ne!(old["jti"], new["jti"]);
        assert_eq!(app.get("/api/v1/users/me", Some(&next.access)).await.status, StatusCode::OK);
        // The stored token is the hash, never the value.
        let sid = new["sid"].as_str().unwrap();
        assert_eq!(app.store().find_refresh_session(&usher::token::sha256_hex(next.refresh.as_bytes())).await.unwrap().as_deref(), Some(sid));
        assert_eq!(app.store().find_refresh_session(&next.refresh).await.unwrap(), None);
    }
}

backend_test! {
    /// Presenting a spent refresh token is `invalid_grant` and ends the whole session:
    /// its access tokens and its newest refresh token are refused at once.
    async fn token_refresh_reuse_ends_session(app) {
        let u = app.user().await;
        let next = tokens_of(&app.refresh(&u.tokens.refresh).await);
        let replay = app.refresh(&u.tokens.refresh).await;
        assert_oauth_error(&replay, 400, "invalid_grant");
        let me = app.get("/api/v1/users/me", Some(&next.access)).await;
        assert_problem(&me, 401, "session_ended");
        assert_oauth_error(&app.refresh(&next.refresh).await, 400, "invalid_grant");
        let (_, claims) = decode_jwt(&next.access);
        let session = app.store().find_session(claims["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(session.end_reason.as_deref(), Some("refresh_token_reuse"));
    }
}

backend_test! {
    /// Two concurrent uses of one refresh token: exactly one wins; the loser is a reuse,
    /// so the session ends and the winner's new tokens die with it.
    async fn token_refresh_concurrent_exactly_one_wins(app) {
        let u = app.user().await;
        let (a, b) = tokio::join!(app.refresh(&u.tokens.refresh), app.refresh(&u.tokens.refresh));
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "a: {} b: {}", a.text, b.text);
        let (winner, loser) = if a.status == StatusCode::OK { (a, b) } else { (b, a) };
        assert_oauth_error(&loser, 400, "invalid_grant");
        let won = tokens_of(&winner);
        assert_problem(&app.get("/api/v1/users/me", Some(&won.access)).await, 401, "session_ended");
        assert_oauth_error(&app.refresh(&won.refresh).await, 400, "invalid_grant");
    }
}

backend_test! {
    /// An unknown refresh token is `invalid_grant` and ends nothing.
    async fn token_refresh_unknown_invalid_grant(app) {
        let u = app.user().await;
        assert_oauth_error(&app.refresh("usher_rt_not-a-real-token").await, 400, "invalid_grant");
        assert_eq!(app.get("/api/v1/users/me", Some(&u.tokens.access)).await.status, StatusCode::OK);
    }
}

backend_test! {
    /// A refresh token past its lifetime is `invalid_grant` (and not a reuse).
    async fn token_refresh_expired_invalid_grant(app) {
        let u = app.user().await;
        app.clock.advance(app.app.config.refresh_token_ttl.as_secs() as i64 + 1);
        assert_oauth_error(&app.refresh(&u.tokens.refresh).await, 400, "invalid_grant");
        let (_, claims) = decode_jwt(&u.tokens.access);
        let session = app.store().find_session(claims["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(session.ended_at, None);
    }
}

backend_test! {
    /// A narrower scope is granted (without `openid`, no ID token); a wider one is
    /// `invalid_scope` and spends nothing (RFC 6749 §6).
    async fn token_refresh_scope_narrowing(app) {
        let u = app.user().await;
        let wide = app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &u.tokens.refresh), ("client_id", "cinema-web"), ("scope", "openid admin")]).await;
        assert_oauth_error(&wide, 400, "invalid_scope");
        let stored = app.store().find_refresh(&usher::token::sha256_hex(u.tokens.refresh.as_bytes())).await.unwrap().unwrap();
        assert_eq!(stored.used_at, None, "the refused request spent nothing");
        let narrow = app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &u.tokens.refresh), ("client_id", "cinema-web"), ("scope", "profile")]).await;
        assert_eq!(narrow.status, StatusCode::OK, "{}", narrow.text);
        assert_eq!(narrow.body["scope"], "profile");
        assert!(narrow.body.get("id_token").is_none());
    }
}

backend_test! {
    /// After logout the session's refresh token is refused.
    async fn token_refresh_after_logout_invalid_grant(app) {
        let u = app.user().await;
        let r = app.call(reqwest::Method::POST, "/api/v1/auth/logout", Some(&u.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_oauth_error(&app.refresh(&u.tokens.refresh).await, 400, "invalid_grant");
    }
}

backend_test! {
    /// A spent refresh token presented with a wider scope is still a reuse (RFC 9700
    /// §4.14): `invalid_grant`, not `invalid_scope`, and the whole session ends.
    async fn token_refresh_reuse_with_wider_scope_ends_session(app) {
        let u = app.user().await;
        let next = tokens_of(&app.refresh(&u.tokens.refresh).await);
        let replay = app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &u.tokens.refresh), ("client_id", "cinema-web"), ("scope", "openid admin")]).await;
        assert_oauth_error(&replay, 400, "invalid_grant");
        assert_eq!(replay.body, json!({"error": "invalid_grant", "error_description": "the refresh token is invalid, expired or revoked"}));
        assert_problem(&app.get("/api/v1/users/me", Some(&next.access)).await, 401, "session_ended");
        assert_oauth_error(&app.refresh(&next.refresh).await, 400, "invalid_grant");
        let (_, claims) = decode_jwt(&next.access);
        let session = app.store().find_session(claims["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(session.end_reason.as_deref(), Some("refresh_token_reuse"));
    }
}

backend_test! {
    /// The ID token of a refresh (the default) is for the same session and the same
    /// authentication time as the login's (OIDC Core §12.2), for the client.
    async fn token_refresh_id_token_keeps_session(app) {
        let u = app.user().await;
        let r = app.refresh(&u.tokens.refresh).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let (_, first) = decode_jwt(u.tokens.id_token.as_deref().unwrap());
        let (header, again) = decode_jwt(r.body["id_token"].as_str().expect("an ID token"));
        assert_eq!(header["typ"], "JWT");
        assert_eq!(again["sid"], first["sid"]);
        assert_eq!(again["auth_time"], first["auth_time"]);
        assert_eq!(again["sub"], u.id.as_str());
        assert_eq!(again["aud"], "cinema-web");
    }
}

backend_test! {
    /// With `USHER_ID_TOKEN_ON_REFRESH=false` the refresh grant returns no ID token
    /// (OIDC Core §12.2 allows it), the rest of the response unchanged.
    config(|c| c.id_token_on_refresh = false);
    async fn token_refresh_no_id_token_when_disabled(app) {
        let u = app.user().await;
        assert!(u.tokens.id_token.is_some(), "the password grant still returns one");
        let r = app.refresh(&u.tokens.refresh).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            redact(r.body.clone(), &["access_token", "refresh_token"]),
            json!({"access_token": "[redacted]", "token_type": "Bearer", "expires_in": 900,
                   "refresh_token": "[redacted]", "scope": "openid profile email roles offline_access"})
        );
    }
}
