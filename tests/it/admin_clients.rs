//! Client registration: `/api/v1/clients` (RFC 7591 member names).

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

backend_test! {
    /// A confidential client is created with a generated id and a secret shown once
    /// (201, `Location`, `no-store`); later reads never show the secret; the secret is
    /// stored only as a hash.
    async fn clients_create_confidential(app) {
        let admin = app.superuser().await;
        let r = app.call(Method::POST, "/api/v1/clients", Some(&admin.tokens.access), Some(json!({
            "client_name": "Movie API", "grant_types": ["client_credentials"], "scope": "films:label",
        }))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let id = r.body["client_id"].as_str().unwrap().to_owned();
        assert_eq!(r.header("location"), Some(format!("/api/v1/clients/{id}").as_str()));
        let secret = r.body["client_secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("usher_cs_") && secret.len() == 9 + 43);
        assert_eq!(redact(r.body.clone(), &["client_id", "client_secret", "client_id_issued_at"]), json!({
            "client_id": "[redacted]", "client_name": "Movie API", "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"], "redirect_uris": [], "post_logout_redirect_uris": [],
            "scope": "films:label", "first_party": false, "builtin": false, "client_id_issued_at": "[redacted]",
            "client_secret": "[redacted]", "client_secret_expires_at": 0,
        }));
        let stored = app.store().find_client(&id).await.unwrap().unwrap();
        assert_eq!(stored.secret_hash.as_deref(), Some(usher::token::sha256_hex(secret.as_bytes()).as_str()));
        let r = app.get(&format!("/api/v1/clients/{id}"), Some(&admin.tokens.access)).await;
        assert!(r.body.get("client_secret").is_none());
        let list = app.get("/api/v1/clients", Some(&admin.tokens.access)).await;
        let ids: Vec<&str> = list.body["items"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"cinema-web") && ids.contains(&id.as_str()));
        assert!(!list.text.contains("client_secret\""));
    }
}

backend_test! {
    /// A chosen id is kept; registering it twice is 409; a public client gets no secret.
    async fn clients_create_public_and_conflict(app) {
        let admin = app.superuser().await;
        let body = json!({"client_id": "tv-app", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["http://127.0.0.1/callback"]});
        let r = app.call(Method::POST, "/api/v1/clients", Some(&admin.tokens.access), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.body["client_id"], "tv-app");
        assert!(r.body.get("client_secret").is_none());
        let r = app.call(Method::POST, "/api/v1/clients", Some(&admin.tokens.access), Some(body)).await;
        assert_problem(&r, 409, "client_id_taken");
    }
}

backend_test! {
    /// Bad redirect URIs, unknown grants, a public client with client_credentials and a
    /// third-party client with the password grant are 422 naming each field.
    async fn clients_validation(app) {
        let admin = app.superuser().await;
        let r = app.call(Method::POST, "/api/v1/clients", Some(&admin.tokens.access), Some(json!({
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "client_credentials", "implicit", "password"],
            "redirect_uris": ["http://cinema.example/cb", "https://ok.example/cb", "https://x.example/cb#frag"],
            "post_logout_redirect_uris": ["relative/path"],
        }))).await;
        assert_problem(&r, 422, "validation_failed");
        let got: Vec<(String, String)> = r.body["errors"].as_array().unwrap().iter()
            .map(|e| (e["field"].as_str().unwrap().to_owned(), e["code"].as_str().unwrap().to_owned())).collect();
        let want: Vec<(String, String)> = [
            ("grant_types[2]", "unsupported"), ("redirect_uris[0]", "format"), ("redirect_uris[2]", "format"),
            ("post_logout_redirect_uris[0]", "format"), ("grant_types", "not_allowed"), ("grant_types", "not_allowed"),
        ].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want, "{}", r.text);
        let r = app.call(Method::POST, "/api/v1/clients", Some(&admin.tokens.access), Some(json!({"grant_types": ["authorization_code"]}))).await;
        assert_eq!(r.body["errors"][0]["field"], "redirect_uris");
        let r = app.call(Method::POST, "/api/v1/clients", Some(&admin.tokens.access), Some(json!({"grant_types": ["password"]}))).await;
        assert_eq!(r.body["errors"][0]["message"], "the password grant is for first-party clients only");
        let r = app.call(Method::POST, "/api/v1/clients", Some(&admin.tokens.access), Some(json!({"client_id": "has space", "token_endpoint_auth_method": "magic"}))).await;
        let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&"client_id") && fields.contains(&"token_endpoint_auth_method"));
        assert_eq!(app.store().list_clients().await.unwrap().len(), 1);
    }
}

backend_test! {
    /// PATCH changes metadata; `rotate_secret` issues a new secret (the old one stops
    /// working at once); the built-in client cannot be changed or deleted (409).
    async fn clients_update_and_rotate(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let path = format!("/api/v1/clients/{id}");
        let r = app.call(Method::PATCH, &path, token, Some(json!({"client_name": "Renamed", "scope": "films:label films:read"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.body["client_name"].as_str(), r.body["scope"].as_str()), (Some("Renamed"), Some("films:label films:read")));
        assert!(r.body.get("client_secret").is_none());
        let r = app.call(Method::PATCH, &path, token, Some(json!({"rotate_secret": true}))).await;
        let new_secret = r.body["client_secret"].as_str().unwrap();
        assert_ne!(new_secret, secret);
        assert_oauth_error(&app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "client_credentials")]).await, 401, "invalid_client");
        assert_eq!(app.post_form_basic("/oauth2/token", &id, new_secret, &[("grant_type", "client_credentials")]).await.status, StatusCode::OK);
        let r = app.call(Method::PATCH, &path, token, Some(json!({"token_endpoint_auth_method": "none"}))).await;
        assert_problem(&r, 422, "validation_failed");
        assert_problem(&app.call(Method::PATCH, "/api/v1/clients/cinema-web", token, Some(json!({"client_name": "x"}))).await, 409, "builtin_client");
        assert_problem(&app.call(Method::DELETE, "/api/v1/clients/cinema-web", token, None).await, 409, "builtin_client");
        assert_problem(&app.call(Method::PATCH, "/api/v1/clients/nope", token, Some(json!({}))).await, 404, "client_not_found");
    }
}

backend_test! {
    /// Deleting a client (204) ends the sessions opened through it and refuses its
    /// credentials; a second delete is 404.
    async fn clients_delete_ends_sessions(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let web = app.register_client(&admin.tokens.access, json!({"grant_types": ["password", "refresh_token"], "first_party": true})).await;
        let (id, secret) = (web["client_id"].as_str().unwrap(), web["client_secret"].as_str().unwrap());
        let u = app.user().await;
        let t = app.post_form_basic("/oauth2/token", id, secret, &[("grant_type", "password"), ("username", &u.login), ("password", PASSWORD)]).await;
        let access = t.body["access_token"].as_str().unwrap();
        assert_eq!(app.get("/api/v1/users/me", Some(access)).await.status, StatusCode::OK);
        let (sid, ssecret) = app.service_client(&admin.tokens.access).await;
        let service = app.post_form_basic("/oauth2/token", &sid, &ssecret, &[("grant_type", "client_credentials")]).await;
        let service_token = service.body["access_token"].as_str().unwrap().to_owned();
        app.call(Method::DELETE, &format!("/api/v1/clients/{sid}"), token, None).await;
        assert_problem(&app.get("/api/v1/authz/check?permission=a:b", Some(&service_token)).await, 401, "token_revoked");
        let r = app.call(Method::DELETE, &format!("/api/v1/clients/{id}"), token, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_problem(&app.get("/api/v1/users/me", Some(access)).await, 401, "session_ended");
        assert_oauth_error(&app.post_form_basic("/oauth2/token", id, secret, &[("grant_type", "client_credentials")]).await, 401, "invalid_client");
        assert_problem(&app.call(Method::DELETE, &format!("/api/v1/clients/{id}"), token, None).await, 404, "client_not_found");
        assert_eq!(app.get("/api/v1/users/me", Some(&u.tokens.access)).await.status, StatusCode::OK, "cinema-web sessions untouched");
    }
}

backend_test! {
    /// Client registration needs `clients:manage`: `roles:manage` is not enough.
    async fn clients_admin_guard(app) {
        let admin = app.superuser().await;
        let u = app.user().await;
        let role = app.call(Method::POST, "/api/v1/roles", Some(&admin.tokens.access), Some(json!({"name": "role-admin", "permissions": ["roles:manage"]}))).await;
        app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{}", u.id, role.body["id"].as_str().unwrap()), Some(&admin.tokens.access), None).await;
        let r = app.get("/api/v1/clients", Some(&u.tokens.access)).await;
        assert_problem(&r, 403, "forbidden");
        assert_eq!(r.body["detail"], "this needs the clients:manage permission");
        assert_problem(&app.get("/api/v1/clients", None).await, 401, "token_missing");
    }
}

backend_test! {
    /// Error rows of one client: an unknown id is 404 `client_not_found` for GET and
    /// PATCH; a PATCH with a bad redirect URI is 422 naming it and changes nothing; a
    /// UUID-shaped `client_id` is refused (422 `uuid_form`), since a service token's
    /// `sub` is its client id and a user token's the user's UUID.
    async fn clients_one_client_errors(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        assert_problem(&app.get("/api/v1/clients/nope", token).await, 404, "client_not_found");
        assert_problem(&app.call(Method::PATCH, "/api/v1/clients/nope", token, Some(json!({"client_name": "x"}))).await, 404, "client_not_found");
        let created = app.register_client(&admin.tokens.access, json!({"client_id": "film-club", "token_endpoint_auth_method": "none", "redirect_uris": ["https://club.example/cb"]})).await;
        assert_eq!(created["client_id"], "film-club");
        let r = app.call(Method::PATCH, "/api/v1/clients/film-club", token,
            Some(json!({"redirect_uris": ["https://club.example/cb", "http://club.example/cb", "https://club.example/cb#x"]}))).await;
        assert_problem(&r, 422, "validation_failed");
        let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["redirect_uris[1]", "redirect_uris[2]"]);
        let stored = app.store().find_client("film-club").await.unwrap().unwrap();
        assert_eq!(stored.redirect_uris, r#"["https://club.example/cb"]"#);
        let uuid = uuid::Uuid::new_v4().to_string();
        for id in [uuid.clone(), uuid.to_uppercase(), uuid.replace('-', "")] {
            let r = app.call(Method::POST, "/api/v1/clients", token, Some(json!({"client_id": id, "grant_types": ["client_credentials"]}))).await;
            assert_problem(&r, 422, "validation_failed");
            assert_eq!(r.body["errors"], json!([{"field": "client_id", "code": "uuid_form", "message": "must not have the form of a UUID (user ids have it)"}]), "{id}");
        }
        assert!(app.store().find_client(&uuid).await.unwrap().is_none());
    }
}
