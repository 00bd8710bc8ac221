//! Role administration: `/api/v1/roles` and the admin guard.

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

backend_test! {
    /// The built-in roles and the seeded `subscriber` role are listed with permissions.
    async fn roles_list_has_builtins(app) {
        let admin = app.superuser().await;
        let r = app.get("/api/v1/roles", Some(&admin.tokens.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.body["items"].as_array().unwrap();
        let by_name = |n: &str| items.iter().find(|i| i["name"] == n).unwrap().clone();
        assert_eq!(by_name("anonymous")["builtin"], true);
        assert_eq!(by_name("anonymous")["permissions"], json!([]));
        assert_eq!(by_name("user")["builtin"], true);
        assert_eq!(by_name("subscriber")["builtin"], false);
        assert_eq!(by_name("subscriber")["permissions"], json!(["films:watch_recent"]));
    }
}

backend_test! {
    /// Without a token: 401; with a user token lacking `roles:manage`: 403; with a role
    /// granting `roles:manage`: allowed.
    async fn roles_admin_guard(app) {
        let r = app.get("/api/v1/roles", None).await;
        assert_problem(&r, 401, "token_missing");
        let plain = app.user().await;
        let r = app.get("/api/v1/roles", Some(&plain.tokens.access)).await;
        assert_problem(&r, 403, "forbidden");
        // The permission is checked before the body is even read.
        let r = read(app.client.post(app.url("/api/v1/roles")).bearer_auth(&plain.tokens.access)
            .header("content-type", "text/plain").body("not json").send().await.unwrap()).await;
        assert_problem(&r, 403, "forbidden");
        assert_eq!(r.body["detail"], "this needs the roles:manage permission");
        let admin = app.superuser().await;
        let created = app.call(Method::POST, "/api/v1/roles", Some(&admin.tokens.access),
            Some(json!({"name": "role-admins", "permissions": ["roles:manage"]}))).await;
        let role_id = created.body["id"].as_str().unwrap();
        let r = app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{role_id}", plain.id), Some(&admin.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get("/api/v1/roles", Some(&plain.tokens.access)).await.status, StatusCode::OK);
        // A service token is never an admin.
        let (id, secret) = app.service_client(&admin.tokens.access).await;
        let t = app.post_form_basic("/oauth2/token", &id, &secret, &[("grant_type", "client_credentials")]).await;
        let r = app.get("/api/v1/roles", Some(t.body["access_token"].as_str().unwrap())).await;
        assert_problem(&r, 403, "forbidden");
    }
}

backend_test! {
    /// Create answers 201 with `Location` and the role; get, change and delete follow;
    /// the deleted role is gone from every user.
    async fn roles_crud(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let r = app.call(Method::POST, "/api/v1/roles", token,
            Some(json!({"name": "critics", "description": "Film critics", "permissions": ["films:review", "films:watch_recent", "films:review"]}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_owned();
        assert_eq!(r.header("location"), Some(format!("/api/v1/roles/{id}").as_str()));
        assert_eq!(redact(r.body.clone(), &["id", "created_at", "updated_at"]), json!({
            "id": "[redacted]", "name": "critics", "description": "Film critics",
            "permissions": ["films:review", "films:watch_recent"], "builtin": false,
            "created_at": "[redacted]", "updated_at": "[redacted]",
        }));
        let r = app.get(&format!("/api/v1/roles/{id}"), token).await;
        assert_eq!(r.body["name"], "critics");
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{id}"), token, Some(json!({"name": "reviewers", "permissions": ["films:review"]}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.body["name"].clone(), r.body["permissions"].clone()), (json!("reviewers"), json!(["films:review"])));
        assert_eq!(r.body["description"], "Film critics");
        let u = app.user().await;
        app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{id}", u.id), token, None).await;
        let r = app.call(Method::DELETE, &format!("/api/v1/roles/{id}"), token, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_problem(&app.get(&format!("/api/v1/roles/{id}"), token).await, 404, "role_not_found");
        assert_problem(&app.call(Method::DELETE, &format!("/api/v1/roles/{id}"), token, None).await, 404, "role_not_found");
        let roles = app.get(&format!("/api/v1/users/{}/roles", u.id), token).await;
        assert_eq!(roles.body["items"].as_array().unwrap().len(), 1, "only the implicit user role is left");
        assert!(app.store().user_role_ids(&u.id).await.unwrap().is_empty());
    }
}

backend_test! {
    /// A taken name is 409; bad names and permissions are 422 naming each element;
    /// nothing is stored.
    async fn roles_create_errors(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let r = app.call(Method::POST, "/api/v1/roles", token, Some(json!({"name": "subscriber", "permissions": []}))).await;
        assert_problem(&r, 409, "role_name_taken");
        let r = app.call(Method::POST, "/api/v1/roles", token, Some(json!({"name": "Bad Name", "permissions": ["films", "ok:fine", "a:b:c"]}))).await;
        assert_problem(&r, 422, "validation_failed");
        let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["name", "permissions[0]", "permissions[2]"]);
        let r = app.call(Method::POST, "/api/v1/roles", token, Some(json!({"description": 5, "extra": true}))).await;
        let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["description", "extra", "name", "permissions"]);
        assert_eq!(app.store().list_roles().await.unwrap().len(), 3);
    }
}

backend_test! {
    /// Built-in roles keep their names and cannot be deleted (409), but their
    /// permissions and description can change; renaming onto a taken name is 409.
    async fn roles_builtin_rules(app) {
        let admin = app.superuser().await;
        let token = Some(admin.tokens.access.as_str());
        let anonymous = app.role_id("anonymous").await;
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{anonymous}"), token, Some(json!({"name": "guests"}))).await;
        assert_problem(&r, 409, "builtin_role");
        let r = app.call(Method::DELETE, &format!("/api/v1/roles/{anonymous}"), token, None).await;
        assert_problem(&r, 409, "builtin_role");
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{anonymous}"), token, Some(json!({"name": "anonymous", "permissions": ["films:list"]}))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["permissions"], json!(["films:list"]));
        let subscriber = app.role_id("subscriber").await;
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{subscriber}"), token, Some(json!({"name": "user"}))).await;
        assert_problem(&r, 409, "role_name_taken");
        assert_problem(&app.call(Method::PATCH, "/api/v1/roles/nope", token, Some(json!({}))).await, 404, "role_not_found");
    }
}

backend_test! {
    /// Concurrent PATCHes of different members of one role all take effect: one that
    /// only changes the description never brings back a permission another removed.
    async fn roles_concurrent_patches_keep_a_removal(app) {
        let admin = app.superuser().await;
        let id = app.role_id("subscriber").await;
        let path = format!("/api/v1/roles/{id}");
        for round in 0..5 {
            let start = json!({"permissions": ["films:watch_recent", "films:review"]});
            let r = app.call(Method::PATCH, &path, Some(&admin.tokens.access), Some(start)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let describe = (0..4).map(|i| {
                app.call(Method::PATCH, &path, Some(&admin.tokens.access), Some(json!({"description": format!("round {round} edit {i}")})))
            });
            let remove = app.call(Method::PATCH, &path, Some(&admin.tokens.access), Some(json!({"permissions": ["films:watch_recent"]})));
            let (removed, described) = tokio::join!(remove, futures_util::future::join_all(describe));
            assert_eq!(removed.status, StatusCode::OK);
            assert!(described.iter().all(|r| r.status == StatusCode::OK));
            let stored = app.store().find_role(&id).await.unwrap().unwrap();
            assert_eq!(stored.permissions, vec!["films:watch_recent".to_owned()], "round {round}");
            assert!(stored.description.starts_with(&format!("round {round} edit ")));
        }
    }
}

backend_test! {
    /// A PATCH with a malformed permission is 422 naming the element and changes nothing.
    async fn roles_update_bad_permission_is_422(app) {
        let admin = app.superuser().await;
        let id = app.role_id("subscriber").await;
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{id}"), Some(&admin.tokens.access),
            Some(json!({"permissions": ["films:watch_recent", "Films:All", "films"]}))).await;
        assert_problem(&r, 422, "validation_failed");
        let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["permissions[1]", "permissions[2]"]);
        let stored = app.store().find_role(&id).await.unwrap().unwrap();
        assert_eq!(stored.permissions, vec!["films:watch_recent".to_owned()]);
    }
}
