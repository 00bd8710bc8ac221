//! `POST /oauth2/token` with `grant_type=password` (RFC 6749 §4.3) and the endpoint's
//! request-level errors (§5.2).

use crate::backend_test;
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;

backend_test! {
    /// A correct login returns Bearer access, refresh and ID tokens with `no-store`; the
    /// access token is an RFC 9068 JWT with every documented claim (RFC 6749 §5.1).
    async fn token_password_success_returns_tokens(app) {
        let profile = app.sign_up("alice").await;
        let r = app.login("alice", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
        assert_eq!(
            redact(r.body.clone(), &["access_token", "refresh_token", "id_token"]),
            json!({
                "access_token": "[redacted]",
                "token_type": "Bearer",
                "expires_in": 900,
                "refresh_token": "[redacted]",
                "scope": "openid profile email roles offline_access",
                "id_token": "[redacted]",
            })
        );
        let t = tokens_of(&r);
        assert!(t.refresh.starts_with("usher_rt_"));
        let (header, claims) = decode_jwt(&t.access);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], app.app.keys.current().signing_key().kid.as_str());
        assert_eq!(claims["iss"], app.base.as_str());
        assert_eq!(claims["sub"], profile["id"]);
        assert_eq!(claims["aud"], "cinema");
        assert_eq!(claims["client_id"], "cinema-web");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
        assert_eq!(claims["roles"], json!(["user"]));
        assert!(claims["jti"].is_string() && claims["sid"].is_string());
        assert!(claims.get("superuser").is_none(), "superuser only for superusers");
        let (id_header, id_claims) = decode_jwt(t.id_token.as_deref().unwrap());
        assert_eq!(id_header["typ"], "JWT");
        assert_eq!(id_claims["aud"], "cinema-web");
        assert_eq!(id_claims["sid"], claims["sid"]);
        assert_eq!(id_claims["preferred_username"], "alice");
        // The session and the login event are stored.
        let sessions = app.store().list_active_sessions(profile["id"].as_str().unwrap(), app.clock_now()).await.unwrap();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].id, claims["sid"].as_str().unwrap());
    }
}

backend_test! {
    /// Logins are matched case-insensitively (sign-up rule: unique case-insensitively).
    async fn token_password_login_is_case_insensitive(app) {
        app.sign_up("Alice").await;
        let r = app.login("aLICE", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

backend_test! {
    /// A wrong password and an unknown login get the same `invalid_grant` body; only the
    /// attempt on the existing login is recorded, as `bad_credentials`.
    async fn token_password_bad_credentials_same_answer(app) {
        let u = app.user().await;
        let wrong = app.login(&u.login, "not the password").await;
        let unknown = app.login("nobody-here", "not the password").await;
        assert_oauth_error(&wrong, 400, "invalid_grant");
        assert_oauth_error(&unknown, 400, "invalid_grant");
        assert_eq!(wrong.body, unknown.body);
        assert_eq!(wrong.body, json!({"error": "invalid_grant", "error_description": "invalid login or password"}));
        let history = app.get("/api/v1/users/me/login-history", Some(&u.tokens.access)).await;
        let outcomes: Vec<&str> = history.body["items"].as_array().unwrap().iter().map(|i| i["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, vec!["bad_credentials", "success"]);
    }
}

backend_test! {
    /// An unknown client is 401 `invalid_client` with a Basic challenge (RFC 6749 §5.2).
    async fn token_unknown_client_invalid_client(app) {
        app.sign_up("bob").await;
        let r = app.post_form("/oauth2/token", &[("grant_type", "password"), ("username", "bob"), ("password", PASSWORD), ("client_id", "no-such-client")]).await;
        assert_oauth_error(&r, 401, "invalid_client");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"usher\""));
        // A public client presenting a secret does not match its registered method either.
        let r = app.post_form("/oauth2/token", &[("grant_type", "password"), ("username", "bob"), ("password", PASSWORD), ("client_id", "cinema-web"), ("client_secret", "x")]).await;
        assert_oauth_error(&r, 401, "invalid_client");
    }
}

backend_test! {
    /// An unknown grant type is `unsupported_grant_type`; a missing one is `invalid_request`.
    async fn token_grant_type_errors(app) {
        let r = app.post_form("/oauth2/token", &[("grant_type", "implicit"), ("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "unsupported_grant_type");
        let r = app.post_form("/oauth2/token", &[("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "invalid_request");
        assert!(r.body["error_description"].as_str().unwrap().contains("grant_type"));
    }
}

backend_test! {
    /// Missing, empty or repeated parameters and a non-form body are `invalid_request`
    /// (RFC 6749 §3.1, §3.2).
    async fn token_malformed_requests_invalid_request(app) {
        let r = app.post_form("/oauth2/token", &[("grant_type", "password"), ("username", "x"), ("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "invalid_request");
        assert!(r.body["error_description"].as_str().unwrap().contains("password"));
        let r = app.post_form("/oauth2/token", &[("grant_type", "password"), ("username", "x"), ("password", ""), ("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "invalid_request");
        let r = read(app.client.post(app.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=password&grant_type=password&username=x&password=y&client_id=cinema-web")
            .send().await.unwrap()).await;
        assert_oauth_error(&r, 400, "invalid_request");
        assert!(r.body["error_description"].as_str().unwrap().contains("repeated"));
        let r = read(app.client.post(app.url("/oauth2/token")).json(&json!({"grant_type": "password"})).send().await.unwrap()).await;
        assert_oauth_error(&r, 400, "invalid_request");
        let r = app.post_form("/oauth2/token", &[("grant_type", "password"), ("client_id", "cinema-web")]).await;
        assert_oauth_error(&r, 400, "invalid_request");
    }
}

backend_test! {
    /// A body over `USHER_MAX_BODY_BYTES` is 400 `invalid_request` in the RFC 6749 §5.2
    /// format, not the 413 problem+json of the JSON API: §5.2 governs this endpoint.
    /// Nothing is recorded.
    async fn token_oversized_body_invalid_request(app) {
        let profile = app.sign_up("oscar").await;
        let pad = "x".repeat(app.app.config.max_body_bytes);
        let r = app.post_form("/oauth2/token", &[("grant_type", "password"), ("username", "oscar"), ("password", PASSWORD), ("client_id", "cinema-web"), ("pad", &pad)]).await;
        assert_oauth_error(&r, 400, "invalid_request");
        assert_eq!(r.header("pragma"), Some("no-cache"));
        assert_eq!(r.body, json!({"error": "invalid_request", "error_description": "the request body is too large"}));
        let id = profile["id"].as_str().unwrap();
        assert!(app.store().list_login_events(id, None, 10).await.unwrap().is_empty());
        assert!(app.store().list_active_sessions(id, app.clock_now()).await.unwrap().is_empty());
    }
}

backend_test! {
    /// A scope the client may not ask for is `invalid_scope`; a narrower one is granted
    /// as asked and without `openid` there is no ID token (RFC 6749 §3.3).
    async fn token_password_scope_rules(app) {
        app.sign_up("carol").await;
        let base = [("grant_type", "password"), ("username", "carol"), ("password", PASSWORD), ("client_id", "cinema-web")];
        let mut form = base.to_vec();
        form.push(("scope", "openid admin"));
        let r = app.post_form("/oauth2/token", &form).await;
        assert_oauth_error(&r, 400, "invalid_scope");
        let mut form = base.to_vec();
        form.push(("scope", "profile roles"));
        let r = app.post_form("/oauth2/token", &form).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["scope"], "profile roles");
        assert!(r.body.get("id_token").is_none());
    }
}

backend_test! {
    /// After `login_lockout_threshold` failures the login is locked: even the right
    /// password is refused with the same body and recorded as `locked_out`.
    async fn token_password_lockout_after_failures(app) {
        let u = app.user().await;
        let threshold = app.app.config.login_lockout_threshold;
        for _ in 0..threshold {
            assert_oauth_error(&app.login(&u.login, "wrong password!").await, 400, "invalid_grant");
        }
        let r = app.login(&u.login, PASSWORD).await;
        assert_oauth_error(&r, 400, "invalid_grant");
        assert_eq!(r.body["error_description"], "invalid login or password");
        let history = app.get("/api/v1/users/me/login-history?limit=1", Some(&u.tokens.access)).await;
        assert_eq!(history.body["items"][0]["outcome"], "locked_out");
    }
}

backend_test! {
    /// A superuser's access token carries `superuser: true`.
    async fn token_password_superuser_claim(app) {
        let u = app.user().await;
        let user = app.store().find_user(&u.id).await.unwrap().unwrap();
        let mut promoted = user.clone();
        promoted.superuser = true;
        app.store().upsert_superuser(&promoted, app.clock_now()).await.unwrap();
        let t = app.tokens(&u.login).await;
        let (_, claims) = decode_jwt(&t.access);
        assert_eq!(claims["superuser"], true);
    }
}

/// A password check against a PHC string of a high cost (64 MiB, 8 passes: most of a
/// second), so that it holds a hashing thread while the test probes the endpoint.
const COSTLY_PHC: &str = "$argon2id$v=19$m=65536,t=8,p=1$AAAAAAAAAAAAAAAAAAAAAA\
                          $AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

backend_test! {
    /// When the only hashing thread is busy and no job may wait, the token endpoint
    /// answers 503 `temporarily_unavailable` with `Retry-After: 1` at once instead of
    /// queueing without bound (issue 2, Speed), and records nothing; once the thread
    /// is free the same login succeeds.
    config(|c| {
        c.hash_pool_size = 1;
        c.hash_queue_size = 0;
    });
    async fn token_password_hash_pool_full_is_503(app) {
        let profile = app.sign_up("dave").await;
        let occupy = || {
            let hasher = app.app.hasher.clone();
            Box::pin(async move {
                let pw = secrecy::SecretString::from("anything".to_owned());
                hasher.verify(&pw, Some(COSTLY_PHC)).await
            })
        };
        // With no queue, a job is accepted only when the thread waits for one: the first
        // poll that stays pending has handed the costly job to the thread.
        let mut busy = occupy();
        let mut tries = 0;
        while futures_util::poll!(&mut busy).is_ready() {
            tries += 1;
            assert!(tries < 500, "the hashing thread never took the job");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            busy = occupy();
        }
        let r = app.login("dave", PASSWORD).await;
        assert_oauth_error(&r, 503, "temporarily_unavailable");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.body, json!({"error": "temporarily_unavailable", "error_description": "too many logins at once; retry shortly"}));
        assert!(!busy.await.unwrap(), "the costly check ran to its end");
        let id = profile["id"].as_str().unwrap();
        assert!(app.store().list_login_events(id, None, 10).await.unwrap().is_empty(), "nothing recorded");
        // The thread takes a new job once it waits for one again (a moment after it
        // answered the costly one).
        let back = eventually(std::time::Duration::from_secs(5), || async {
            app.login("dave", PASSWORD).await.status == StatusCode::OK
        })
        .await;
        assert!(back, "logins succeed again once the thread is free");
        let events = app.store().list_login_events(id, None, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].outcome, "success");
    }
}

backend_test! {
    /// Many concurrent password grants of one user all succeed, each with its own
    /// session, and `last_login_at` is set: the login's re-check of the user inside its
    /// transaction queues logins of one user on the row instead of deadlocking them
    /// (which would answer 500).
    async fn token_password_concurrent_logins_of_one_user(app, config = |c| c.hash_queue_size = 64) {
        let u = app.user().await;
        let logins = (0..16).map(|_| app.login(&u.login, PASSWORD));
        let answers = futures_util::future::join_all(logins).await;
        for r in &answers {
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.header("cache-control"), Some("no-store"));
        }
        let mut sids: Vec<String> = answers
            .iter()
            .map(|r| decode_jwt(r.body["access_token"].as_str().unwrap()).1["sid"].as_str().unwrap().to_owned())
            .collect();
        sids.sort();
        sids.dedup();
        assert_eq!(sids.len(), 16, "one session each");
        let user = app.store().find_user(&u.id).await.unwrap().unwrap();
        assert!(user.last_login_at.is_some());
        let history = app.get("/api/v1/users/me/login-history?limit=100", Some(&u.tokens.access)).await;
        let successes = history.body["items"].as_array().unwrap().iter().filter(|i| i["outcome"] == "success").count();
        assert_eq!(successes, 17, "the harness's login and the 16 concurrent ones");
    }
}
