//! The account API: sign-up, profile, password change and login history.

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

backend_test! {
    /// Sign-up answers 201 with `Location` and the profile (never the hash) and stores
    /// an argon2id hash.
    async fn signup_created(app) {
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": "Alice.B", "password": PASSWORD, "email": "Alice@Example.com"}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_owned();
        assert_eq!(r.header("location"), Some(format!("/api/v1/users/{id}").as_str()));
        assert_eq!(
            redact(r.body.clone(), &["id", "created_at"]),
            json!({"id": "[redacted]", "login": "Alice.B", "email": "Alice@Example.com", "email_verified": false,
                   "roles": ["user"], "superuser": false, "created_at": "[redacted]", "last_login_at": null})
        );
        assert!(!r.text.contains("argon2"));
        let stored = app.store().find_user(&id).await.unwrap().unwrap();
        assert!(stored.password_hash.starts_with("$argon2id$"));
        assert!(!stored.password_hash.contains(PASSWORD));
    }
}

backend_test! {
    /// A login or e-mail already taken, in any letter case, is 409 with its own code,
    /// and nothing is stored.
    async fn signup_taken_conflict(app) {
        let ok = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": "erin", "password": PASSWORD, "email": "erin@example.com"}))).await;
        assert_eq!(ok.status, StatusCode::CREATED);
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": "ERIN", "password": PASSWORD}))).await;
        assert_problem(&r, 409, "login_taken");
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": "erin2", "password": PASSWORD, "email": "ERIN@example.COM"}))).await;
        assert_problem(&r, 409, "email_taken");
        assert!(app.store().find_user_by_login("erin2").await.unwrap().is_none());
    }
}

backend_test! {
    /// Every failing field is named in one 422: rule violations, missing members and
    /// wrong JSON types alike.
    async fn signup_validation_names_every_field(app) {
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": "a b", "password": "short", "email": "not-an-email"}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"], json!([
            {"field": "login", "code": "format", "message": "may contain only letters, digits, '.', '_' and '-'"},
            {"field": "password", "code": "too_short", "message": "must be at least 8 characters"},
            {"field": "email", "code": "format", "message": "must be an e-mail address"},
        ]));
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": 42, "email": "x@y.zz"}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"], json!([
            {"field": "login", "code": "type", "message": "must be a string"},
            {"field": "password", "code": "required", "message": "is required"},
        ]));
        let long = "p".repeat(257);
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": "ab", "password": long}))).await;
        let codes: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
        assert_eq!(codes, vec!["too_short", "too_long"]);
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!(["not", "an", "object"]))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "body");
    }
}

backend_test! {
    /// A login longer than 64 characters is 422 naming `login` (`too_long`), at sign-up
    /// and in a profile change; exactly 64 is accepted (issue 2: logins of 3–64).
    async fn login_too_long_is_422(app) {
        let long = "a".repeat(65);
        let r = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": long, "password": PASSWORD}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"], json!([{"field": "login", "code": "too_long", "message": "must be at most 64 characters"}]));
        assert!(app.store().find_user_by_login(&long).await.unwrap().is_none());
        let u = app.user().await;
        let r = app.call(Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"login": long}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"], json!([{"field": "login", "code": "too_long", "message": "must be at most 64 characters"}]));
        assert_eq!(app.store().find_user(&u.id).await.unwrap().unwrap().login, u.login);
        let max = "b".repeat(64);
        let r = app.call(Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"login": max}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["login"], max.as_str());
    }
}

backend_test! {
    /// PATCH with an e-mail another user has, in any letter case, is 409 `email_taken`
    /// and changes nothing.
    async fn me_update_email_taken_conflict(app) {
        let ok = app.call(Method::POST, "/api/v1/users", None, Some(json!({"login": "holder", "password": PASSWORD, "email": "taken@example.com"}))).await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
        let u = app.user().await;
        let r = app.call(Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"login": "newname", "email": "TAKEN@example.COM"}))).await;
        assert_problem(&r, 409, "email_taken");
        let stored = app.store().find_user(&u.id).await.unwrap().unwrap();
        assert_eq!((stored.login.as_str(), stored.email), (u.login.as_str(), None));
        assert!(app.store().find_user_by_login("newname").await.unwrap().is_none());
    }
}

backend_test! {
    /// Malformed JSON is 400, a wrong content type 415, a body over the limit 413: all
    /// problem+json, nothing stored.
    async fn signup_body_errors(app) {
        let r = read(app.client.post(app.url("/api/v1/users")).header("content-type", "application/json").body("{\"login\": ").send().await.unwrap()).await;
        assert_problem(&r, 400, "malformed_json");
        let r = read(app.client.post(app.url("/api/v1/users")).header("content-type", "text/plain").body("{}").send().await.unwrap()).await;
        assert_problem(&r, 415, "unsupported_media_type");
        let r = read(app.client.post(app.url("/api/v1/users")).body("{}").send().await.unwrap()).await;
        assert_problem(&r, 415, "unsupported_media_type");
        let big = json!({"login": "zed", "password": PASSWORD, "pad": "x".repeat(70 * 1024)});
        let r = app.call(Method::POST, "/api/v1/users", None, Some(big)).await;
        assert_problem(&r, 413, "body_too_large");
        assert!(app.store().find_user_by_login("zed").await.unwrap().is_none());
    }
}

backend_test! {
    /// `GET /users/me` returns the caller's profile with `last_login_at` set.
    async fn me_returns_profile(app) {
        let u = app.user().await;
        let r = app.get("/api/v1/users/me", Some(&u.tokens.access)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["id"], u.id.as_str());
        assert_eq!(r.body["login"], u.login.as_str());
        assert!(r.body["last_login_at"].is_string());
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
}

backend_test! {
    /// PATCH changes login and e-mail; `email: null` removes it; a taken login is 409 and
    /// an invalid one 422, and neither changes anything.
    async fn me_update_profile(app) {
        let u = app.user().await;
        let other = app.user().await;
        let r = app.call(Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"login": "renamed", "email": "r@example.org"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.body["login"].as_str(), r.body["email"].as_str()), (Some("renamed"), Some("r@example.org")));
        let r = app.call(Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"email": null}))).await;
        assert_eq!(r.body["email"], serde_json::Value::Null);
        assert_eq!(r.body["login"], "renamed");
        let r = app.call(Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"login": other.login.to_uppercase()}))).await;
        assert_problem(&r, 409, "login_taken");
        let r = app.call(Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"login": "x", "email": 3}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"].as_array().unwrap().len(), 2);
        let stored = app.store().find_user(&u.id).await.unwrap().unwrap();
        assert_eq!(stored.login, "renamed");
        assert_eq!(app.login("renamed", PASSWORD).await.status, StatusCode::OK);
    }
}

backend_test! {
    /// A password change answers 204, ends every other session at once, keeps the
    /// current one, and only the new password logs in afterwards.
    async fn password_change_ends_other_sessions(app) {
        let u = app.user().await;
        let second = app.tokens(&u.login).await;
        let r = app.call(Method::PUT, "/api/v1/users/me/password", Some(&u.tokens.access), Some(json!({"current_password": PASSWORD, "new_password": "a whole new secret"}))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_eq!(app.get("/api/v1/users/me", Some(&u.tokens.access)).await.status, StatusCode::OK);
        assert_problem(&app.get("/api/v1/users/me", Some(&second.access)).await, 401, "session_ended");
        assert_oauth_error(&app.refresh(&second.refresh).await, 400, "invalid_grant");
        assert_oauth_error(&app.login(&u.login, PASSWORD).await, 400, "invalid_grant");
        assert_eq!(app.login(&u.login, "a whole new secret").await.status, StatusCode::OK);
    }
}

backend_test! {
    /// A wrong current password is 403 `wrong_password` (not recorded as a login); a weak
    /// new one is 422; neither changes the password.
    async fn password_change_errors(app) {
        let u = app.user().await;
        let r = app.call(Method::PUT, "/api/v1/users/me/password", Some(&u.tokens.access), Some(json!({"current_password": "nope nope", "new_password": "a whole new secret"}))).await;
        assert_problem(&r, 403, "wrong_password");
        let r = app.call(Method::PUT, "/api/v1/users/me/password", Some(&u.tokens.access), Some(json!({"current_password": PASSWORD, "new_password": "short"}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "new_password");
        let r = app.call(Method::PUT, "/api/v1/users/me/password", Some(&u.tokens.access), Some(json!({}))).await;
        assert_eq!(r.body["errors"].as_array().unwrap().len(), 2);
        let history = app.get("/api/v1/users/me/login-history", Some(&u.tokens.access)).await;
        assert_eq!(history.body["items"].as_array().unwrap().len(), 1);
        assert_eq!(app.login(&u.login, PASSWORD).await.status, StatusCode::OK);
    }
}

backend_test! {
    /// The login history lists attempts newest first with time, IP, user agent, method
    /// and outcome, and pages with an opaque cursor.
    async fn login_history_pages(app) {
        let u = app.user().await;
        app.login(&u.login, "wrong password").await;
        let r = read(app.client.post(app.url("/oauth2/token")).header("user-agent", "Cinema/2.0 (phone)")
            .form(&[("grant_type", "password"), ("username", &u.login), ("password", PASSWORD), ("client_id", "cinema-web")]).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::OK);
        let page1 = app.get("/api/v1/users/me/login-history?limit=2", Some(&u.tokens.access)).await;
        assert_eq!(page1.status, StatusCode::OK);
        assert_eq!(
            redact(page1.body["items"].clone(), &["at"]),
            json!([
                {"at": "[redacted]", "ip": "127.0.0.1", "user_agent": "Cinema/2.0 (phone)", "method": "password_grant", "outcome": "success"},
                {"at": "[redacted]", "ip": "127.0.0.1", "user_agent": null, "method": "password_grant", "outcome": "bad_credentials"},
            ])
        );
        assert!(page1.body["items"][0]["at"].as_str().unwrap().ends_with('Z'));
        let cursor = page1.body["next_cursor"].as_str().unwrap();
        let page2 = app.get(&format!("/api/v1/users/me/login-history?limit=2&cursor={cursor}"), Some(&u.tokens.access)).await;
        assert_eq!(page2.body["items"].as_array().unwrap().len(), 1);
        assert_eq!(page2.body["items"][0]["outcome"], "success");
        assert_eq!(page2.body["next_cursor"], serde_json::Value::Null);
    }
}

backend_test! {
    /// `limit` outside 1–100 and a cursor usher did not issue are 422 naming the field.
    async fn login_history_bad_parameters(app) {
        let u = app.user().await;
        for q in ["limit=0", "limit=101", "limit=ten"] {
            let r = app.get(&format!("/api/v1/users/me/login-history?{q}"), Some(&u.tokens.access)).await;
            assert_problem(&r, 422, "validation_failed");
            assert_eq!(r.body["errors"][0]["field"], "limit");
        }
        let r = app.get("/api/v1/users/me/login-history?cursor=bm9wZQ", Some(&u.tokens.access)).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "cursor");
    }
}

backend_test! {
    /// Unknown members are refused (422 `unknown`), so a typo never silently does nothing.
    async fn unknown_members_refused(app) {
        let u = app.user().await;
        let r = app.call(Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"logn": "typo"}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"], json!([{"field": "logn", "code": "unknown", "message": "is not a member of this request"}]));
    }
}

backend_test! {
    /// Wrong current passwords count towards the login's lockout: once locked, even the
    /// right current password is refused.
    async fn password_change_shares_lockout(app) {
        let u = app.user().await;
        let body = |current: &str| Some(json!({"current_password": current, "new_password": "a whole new secret"}));
        for _ in 0..app.app.config.login_lockout_threshold {
            let r = app.call(Method::PUT, "/api/v1/users/me/password", Some(&u.tokens.access), body("wrong guess")).await;
            assert_problem(&r, 403, "wrong_password");
        }
        let r = app.call(Method::PUT, "/api/v1/users/me/password", Some(&u.tokens.access), body(PASSWORD)).await;
        assert_problem(&r, 403, "wrong_password");
        assert_oauth_error(&app.login(&u.login, PASSWORD).await, 400, "invalid_grant");
    }
}

backend_test! {
    /// The login history is the caller's own: another user's attempts never appear.
    async fn login_history_is_private(app) {
        let a = app.user().await;
        let b = app.user().await;
        app.login(&b.login, "wrong password").await;
        let r = app.get("/api/v1/users/me/login-history", Some(&a.tokens.access)).await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    }
}
