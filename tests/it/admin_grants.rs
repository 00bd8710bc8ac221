//! An administrator hands out only what they hold: a `roles:manage` holder who is not a
//! superuser cannot create, change, assign, take away or delete a role holding a
//! permission they lack (403 `permission_not_held`); the superuser is unaffected.

use crate::backend_test;
use crate::harness::*;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::json;

/// A user whose only admin right is a role granting `roles:manage` (given by `admin`).
async fn role_admin(app: &TestApp, admin: &str) -> User {
    let created = app
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(admin),
            Some(json!({"name": "role-admins", "permissions": ["roles:manage"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let u = app.user().await;
    let path = format!(
        "/api/v1/users/{}/roles/{}",
        u.id,
        created.body["id"].as_str().unwrap()
    );
    let r = app.call(Method::PUT, &path, Some(admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    u
}

/// A role granting `clients:manage`, created by `admin`; its id.
async fn clients_role(app: &TestApp, admin: &str) -> String {
    let r = app
        .call(
            Method::POST,
            "/api/v1/roles",
            Some(admin),
            Some(json!({"name": "client-admins", "permissions": ["clients:manage"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

fn assert_not_held(r: &Resp, detail: &str) {
    assert_problem(r, 403, "permission_not_held");
    assert_eq!(r.body["detail"], detail);
}

const GRANT: &str = "a role can only be given permissions that you hold";
const HELD: &str = "this role holds a permission that you do not hold";

backend_test! {
    /// Creating a role with a permission the creator lacks is 403 and stores nothing;
    /// one within what they hold is created (issue 3: admin endpoints need
    /// `roles:manage`; no admin action escalates beyond it).
    async fn grants_create_beyond_held_is_403(app) {
        let root = app.superuser().await;
        let ra = role_admin(&app, &root.tokens.access).await;
        let token = Some(ra.tokens.access.as_str());
        let r = app.call(Method::POST, "/api/v1/roles", token,
            Some(json!({"name": "escalate", "permissions": ["roles:manage", "clients:manage"]}))).await;
        assert_not_held(&r, GRANT);
        assert!(app.store().list_roles().await.unwrap().iter().all(|r| r.name != "escalate"));
        let r = app.call(Method::POST, "/api/v1/roles", token,
            Some(json!({"name": "deputies", "permissions": ["roles:manage"]}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.body["permissions"], json!(["roles:manage"]));
    }
}

backend_test! {
    /// Changing a role's permissions, built-in `user` and `anonymous` included, to a set
    /// holding a permission the editor lacks is 403 and changes nothing; so is stripping
    /// or renaming a role that holds one; a description change is allowed.
    async fn grants_update_beyond_held_is_403(app) {
        let root = app.superuser().await;
        let ra = role_admin(&app, &root.tokens.access).await;
        let token = Some(ra.tokens.access.as_str());
        for name in ["user", "anonymous", "subscriber"] {
            let id = app.role_id(name).await;
            let r = app.call(Method::PATCH, &format!("/api/v1/roles/{id}"), token,
                Some(json!({"permissions": ["clients:manage"]}))).await;
            assert_not_held(&r, GRANT);
            let stored = app.store().find_role(&id).await.unwrap().unwrap();
            assert!(!stored.permissions.contains(&"clients:manage".to_owned()), "{name}");
        }
        // The editor's own role keeps only what they hold: allowed.
        let own = app.role_id("role-admins").await;
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{own}"), token,
            Some(json!({"permissions": ["roles:manage"], "description": "Role admins"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let subscriber = app.role_id("subscriber").await;
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{subscriber}"), token,
            Some(json!({"description": "Recent films"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["permissions"], json!(["films:watch_recent"]));
        // A role holding a permission the editor lacks cannot be stripped, nor renamed
        // (its name would be free for a role of the editor's own, and offline verifiers
        // trust role names).
        for change in [json!({"permissions": []}), json!({"name": "lapsed"}), json!({"name": "lapsed", "permissions": []})] {
            let r = app.call(Method::PATCH, &format!("/api/v1/roles/{subscriber}"), token, Some(change.clone())).await;
            assert_not_held(&r, HELD);
            let stored = app.store().find_role(&subscriber).await.unwrap().unwrap();
            assert_eq!((stored.name.as_str(), stored.permissions.clone()), ("subscriber", vec!["films:watch_recent".to_owned()]), "{change}");
        }
        // Renaming to its own name is no rename.
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{subscriber}"), token,
            Some(json!({"name": "subscriber", "description": "Recent films"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // The escalation never happened: the editor still cannot register clients.
        assert_problem(&app.get("/api/v1/clients", token).await, 403, "forbidden");
    }
}

backend_test! {
    /// Assigning a role holding a permission the caller lacks, to themselves or anyone,
    /// and taking such a role away, are 403 and change no assignment.
    async fn grants_assign_and_unassign_beyond_held_are_403(app) {
        let root = app.superuser().await;
        let ra = role_admin(&app, &root.tokens.access).await;
        let token = Some(ra.tokens.access.as_str());
        let role = clients_role(&app, &root.tokens.access).await;
        let before = app.store().user_role_ids(&ra.id).await.unwrap();
        let r = app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{role}", ra.id), token, None).await;
        assert_not_held(&r, HELD);
        assert_eq!(app.store().user_role_ids(&ra.id).await.unwrap(), before);
        let check = app.get("/api/v1/authz/check?permission=clients:manage", token).await;
        assert_eq!(check.body["allowed"], false);
        let other = app.user().await;
        let path = format!("/api/v1/users/{}/roles/{role}", other.id);
        assert_not_held(&app.call(Method::PUT, &path, token, None).await, HELD);
        assert!(app.store().user_role_ids(&other.id).await.unwrap().is_empty());
        // Given by the superuser, it cannot be taken away by the role admin either.
        assert_eq!(app.call(Method::PUT, &path, Some(&root.tokens.access), None).await.status, StatusCode::NO_CONTENT);
        assert_not_held(&app.call(Method::DELETE, &path, token, None).await, HELD);
        assert_eq!(app.store().user_role_ids(&other.id).await.unwrap(), vec![role.clone()]);
        assert_not_held(&app.call(Method::DELETE, &format!("/api/v1/roles/{role}"), token, None).await, HELD);
        assert!(app.store().find_role(&role).await.unwrap().is_some());
        // A role within what they hold: assigned and taken away.
        let subscriber_free = app.call(Method::POST, "/api/v1/roles", token,
            Some(json!({"name": "ushers", "permissions": []}))).await;
        let free = subscriber_free.body["id"].as_str().unwrap();
        let path = format!("/api/v1/users/{}/roles/{free}", other.id);
        assert_eq!(app.call(Method::PUT, &path, token, None).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.call(Method::DELETE, &path, token, None).await.status, StatusCode::NO_CONTENT);
    }
}

backend_test! {
    /// The superuser may create, change, assign, take away and delete any role (issue 3:
    /// the superuser is allowed everything).
    async fn grants_superuser_unaffected(app) {
        let root = app.superuser().await;
        let token = Some(root.tokens.access.as_str());
        let role = clients_role(&app, &root.tokens.access).await;
        let user_role = app.role_id("user").await;
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{user_role}"), token,
            Some(json!({"permissions": ["films:list"]}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let u = app.user().await;
        let path = format!("/api/v1/users/{}/roles/{role}", u.id);
        assert_eq!(app.call(Method::PUT, &path, token, None).await.status, StatusCode::NO_CONTENT);
        let check = app.get("/api/v1/authz/check?permission=clients:manage", Some(&u.tokens.access)).await;
        assert_eq!(check.body["allowed"], true);
        assert_eq!(app.call(Method::DELETE, &path, token, None).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.call(Method::DELETE, &format!("/api/v1/roles/{role}"), token, None).await.status, StatusCode::NO_CONTENT);
        assert!(app.store().find_role(&role).await.unwrap().is_none());
    }
}
