//! Third-party clients and usher's own API: a user token issued to a third-party client
//! (through the user's consent) may call userinfo and the permission check, never the
//! account or admin API (403 `first_party_only`); only a superuser registers or changes
//! a first-party client (403 `superuser_required`).

use crate::backend_test;
use crate::harness::flow::*;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The redirect URI of the film club's app.
const CLUB_CB: &str = "https://club.example/cb";

/// The `WWW-Authenticate` of a `first_party_only` refusal (RFC 6750 §3.1).
const FIRST_PARTY_CHALLENGE: &str = "Bearer realm=\"usher\", error=\"insufficient_scope\", error_description=\"this token was issued to a third-party client; this endpoint needs a first-party client's token\"";

/// Registers the third-party public client `film-club` (as `admin`).
async fn film_club(app: &TestApp, admin: &str) {
    app.register_client(
        admin,
        json!({
            "client_id": "film-club", "client_name": "Film Club", "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"], "redirect_uris": [CLUB_CB],
            "scope": "openid profile roles",
        }),
    )
    .await;
}

/// Signs `login` in on `app.client`, consents to `client_id` (redirect URI `cb`) and
/// redeems the code: the client's access token for that user.
async fn consented_token(app: &TestApp, login: &str, client_id: &str, cb: &str) -> String {
    browser_sign_in(app, &app.client, login).await;
    let scope = [("scope", "openid profile roles")];
    let r = browse(app, &app.client, &authorize_path(client_id, cb, &scope)).await;
    let location = r.header("location").unwrap_or_default().to_owned();
    let r = if location.starts_with("/consent?") {
        let page = browse(app, &app.client, &location).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let form = [
            ("csrf", form_value(&page.text, "csrf").unwrap()),
            ("request", form_value(&page.text, "request").unwrap()),
            ("decision", "allow".to_owned()),
        ];
        read(
            app.client
                .post(app.url("/consent"))
                .form(&form)
                .send()
                .await
                .unwrap(),
        )
        .await
    } else {
        r
    };
    let r = redeem(app, client_id, &code_of(&r), cb).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts the whole `first_party_only` answer: status, challenge, content type, body.
fn assert_first_party_only(r: &Resp, what: &str) {
    assert_problem(r, 403, "first_party_only");
    assert_eq!(
        r.header("www-authenticate"),
        Some(FIRST_PARTY_CHALLENGE),
        "{what}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(
        redact(r.body.clone(), &["instance"]),
        json!({
            "type": "urn:usher:problem:first_party_only", "title": "Forbidden", "status": 403,
            "code": "first_party_only", "instance": "[redacted]",
            "detail": "this token was issued to a third-party client; this endpoint needs a first-party client's token",
        }),
        "{what}"
    );
}

backend_test! {
    /// A film-club app a superuser consented to holds a token with the superuser's
    /// roles and `superuser` claim; it must not act on the account API (issue 2:
    /// `/api/v1/users/me*`, sessions, logout) nor on any admin endpoint (issue 3): each
    /// answers 403 `first_party_only` with RFC 6750 §3.1 `insufficient_scope`, and
    /// nothing changes. The same token still gets userinfo (OIDC Core §5.3) and the
    /// permission check; the user's own cinema-web token keeps working.
    async fn third_party_token_refused_on_account_and_admin_api(app) {
        let root = app.superuser().await;
        film_club(&app, &root.tokens.access).await;
        let victim = app.user().await;
        let club = consented_token(&app, &root.login, "film-club", CLUB_CB).await;
        let (_, claims) = decode_jwt(&club);
        assert_eq!((claims["client_id"].clone(), claims["superuser"].clone()), (json!("film-club"), json!(true)));
        let sid = claims["sid"].as_str().unwrap().to_owned();
        let subscriber = app.role_id("subscriber").await;
        let calls: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, "/api/v1/users/me".into(), None),
            (Method::PATCH, "/api/v1/users/me".into(), Some(json!({"login": "taken-over", "email": "evil@club.example"}))),
            (Method::PUT, "/api/v1/users/me/password".into(), Some(json!({"current_password": PASSWORD, "new_password": "club owns this now"}))),
            (Method::GET, "/api/v1/users/me/login-history".into(), None),
            (Method::GET, "/api/v1/users/me/sessions".into(), None),
            (Method::DELETE, format!("/api/v1/users/me/sessions/{sid}"), None),
            (Method::POST, "/api/v1/auth/logout".into(), None),
            (Method::POST, "/api/v1/auth/logout-others".into(), None),
            (Method::GET, "/api/v1/roles".into(), None),
            (Method::POST, "/api/v1/roles".into(), Some(json!({"name": "club-admins", "permissions": ["roles:manage"]}))),
            (Method::GET, format!("/api/v1/roles/{subscriber}"), None),
            (Method::PATCH, format!("/api/v1/roles/{subscriber}"), Some(json!({"permissions": []}))),
            (Method::DELETE, format!("/api/v1/roles/{subscriber}"), None),
            (Method::GET, "/api/v1/users?login=u".into(), None),
            (Method::GET, format!("/api/v1/users/{}", victim.id), None),
            (Method::PATCH, format!("/api/v1/users/{}", victim.id), Some(json!({"blocked": true}))),
            (Method::GET, format!("/api/v1/users/{}/roles", victim.id), None),
            (Method::PUT, format!("/api/v1/users/{}/roles/{subscriber}", victim.id), None),
            (Method::DELETE, format!("/api/v1/users/{}/roles/{subscriber}", victim.id), None),
            (Method::GET, "/api/v1/clients".into(), None),
            (Method::POST, "/api/v1/clients".into(), Some(json!({"client_id": "club-2", "grant_types": ["client_credentials"]}))),
            (Method::GET, "/api/v1/clients/film-club".into(), None),
            (Method::PATCH, "/api/v1/clients/film-club".into(), Some(json!({"first_party": true}))),
            (Method::DELETE, "/api/v1/clients/film-club".into(), None),
        ];
        for (method, path, body) in calls {
            let what = format!("{method} {path}");
            let r = app.call(method, &path, Some(&club), body).await;
            assert_first_party_only(&r, &what);
        }
        // Nothing changed: the account, the session, the victim, the roles, the clients.
        let me = app.store().find_user(&root.id).await.unwrap().unwrap();
        assert_eq!((me.login.as_str(), me.email.as_deref()), (root.login.as_str(), None));
        assert!(app.store().find_session(&sid).await.unwrap().unwrap().ended_at.is_none());
        let stored_victim = app.store().find_user(&victim.id).await.unwrap().unwrap();
        assert!(!stored_victim.blocked);
        assert!(app.store().user_role_ids(&victim.id).await.unwrap().is_empty());
        let roles = app.store().list_roles().await.unwrap();
        assert!(roles.iter().all(|r| r.name != "club-admins"));
        assert_eq!(roles.iter().find(|r| r.id == subscriber).unwrap().permissions, vec!["films:watch_recent".to_owned()]);
        let clients = app.store().list_clients().await.unwrap();
        assert_eq!(clients.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(), vec!["cinema-web", "film-club"]);
        assert!(!clients[1].first_party);
        // What a third-party client may do with the token.
        let r = app.get("/oauth2/userinfo", Some(&club)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(redact(r.body, &["updated_at"]), json!({"sub": root.id, "preferred_username": root.login, "updated_at": "[redacted]", "roles": ["user"]}));
        let r = app.get("/api/v1/authz/check?permission=roles:manage", Some(&club)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({"allowed": true, "subject": root.id, "roles": ["user"], "superuser": true}));
        // The superuser's first-party token is unaffected.
        assert_eq!(app.get("/api/v1/users/me", Some(&root.tokens.access)).await.status, StatusCode::OK);
        assert_eq!(app.get("/api/v1/clients", Some(&root.tokens.access)).await.status, StatusCode::OK);
    }
}

backend_test! {
    /// A client registered with `first_party` is usher's own: its users' tokens use the
    /// account API. Made third-party later (by the superuser), its tokens are refused at
    /// once (the client cache drops the changed client); made first-party again, they
    /// work again.
    async fn first_party_flag_decides_at_once(app) {
        let root = app.superuser().await;
        let boxoffice = first_party_client(&app, &root.tokens.access, "boxoffice").await;
        let u = app.user().await;
        let cb = "https://boxoffice.example/cb";
        let token = consented_token(&app, &u.login, &boxoffice, cb).await;
        let r = app.get("/api/v1/users/me", Some(&token)).await;
        assert_eq!((r.status, r.body["id"].clone()), (StatusCode::OK, json!(u.id)));
        let path = format!("/api/v1/clients/{boxoffice}");
        let r = app.call(Method::PATCH, &path, Some(&root.tokens.access), Some(json!({"first_party": false}))).await;
        assert_eq!((r.status, r.body["first_party"].clone()), (StatusCode::OK, json!(false)), "{}", r.text);
        assert_first_party_only(&app.get("/api/v1/users/me", Some(&token)).await, "after the demotion");
        let r = app.call(Method::PATCH, &path, Some(&root.tokens.access), Some(json!({"first_party": true}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(app.get("/api/v1/users/me", Some(&token)).await.status, StatusCode::OK);
    }
}

backend_test! {
    /// A `clients:manage` holder who is not the superuser cannot register a first-party
    /// client (it would get codes from signed-in users without a consent page, to a
    /// redirect URI of the holder's choice), make a client first-party, or change a
    /// first-party client: 403 `superuser_required`, nothing stored. Third-party clients
    /// stay theirs to manage; the superuser does all of it.
    async fn clients_first_party_needs_superuser(app) {
        let root = app.superuser().await;
        let role = app.call(Method::POST, "/api/v1/roles", Some(&root.tokens.access), Some(json!({"name": "client-admins", "permissions": ["clients:manage"]}))).await;
        let ca = app.user().await;
        let assign = format!("/api/v1/users/{}/roles/{}", ca.id, role.body["id"].as_str().unwrap());
        assert_eq!(app.call(Method::PUT, &assign, Some(&root.tokens.access), None).await.status, StatusCode::NO_CONTENT);
        let token = Some(ca.tokens.access.as_str());
        let sneaky = json!({"client_id": "sneaky", "token_endpoint_auth_method": "none", "first_party": true,
            "grant_types": ["authorization_code"], "redirect_uris": ["https://attacker.example/cb"]});
        let r = app.call(Method::POST, "/api/v1/clients", token, Some(sneaky.clone())).await;
        assert_problem(&r, 403, "superuser_required");
        assert_eq!(r.body["detail"], "only a superuser can register or change a first-party client");
        assert!(app.store().find_client("sneaky").await.unwrap().is_none());
        // A third-party client is the holder's to register, but not to promote.
        let mut plain = sneaky.clone();
        plain["first_party"] = json!(false);
        let r = app.call(Method::POST, "/api/v1/clients", token, Some(plain)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let r = app.call(Method::PATCH, "/api/v1/clients/sneaky", token, Some(json!({"first_party": true}))).await;
        assert_problem(&r, 403, "superuser_required");
        assert!(!app.store().find_client("sneaky").await.unwrap().unwrap().first_party);
        let r = app.call(Method::PATCH, "/api/v1/clients/sneaky", token, Some(json!({"client_name": "Still mine"}))).await;
        assert_eq!((r.status, r.body["client_name"].clone()), (StatusCode::OK, json!("Still mine")));
        // A first-party client registered by the superuser is out of the holder's reach.
        let boxoffice = first_party_client(&app, &root.tokens.access, "boxoffice").await;
        let path = format!("/api/v1/clients/{boxoffice}");
        for body in [json!({"redirect_uris": ["https://attacker.example/cb"]}), json!({"first_party": false}), json!({"client_name": "x"})] {
            assert_problem(&app.call(Method::PATCH, &path, token, Some(body.clone())).await, 403, "superuser_required");
        }
        let stored = app.store().find_client(&boxoffice).await.unwrap().unwrap();
        assert_eq!((stored.redirect_uris.as_str(), stored.first_party), (r#"["https://boxoffice.example/cb"]"#, true));
        // The superuser may.
        let r = app.call(Method::PATCH, "/api/v1/clients/sneaky", Some(&root.tokens.access), Some(json!({"first_party": true}))).await;
        assert_eq!((r.status, r.body["first_party"].clone()), (StatusCode::OK, json!(true)), "{}", r.text);
    }
}

backend_test! {
    /// The ids usher uses itself cannot be registered: `usher`, the pseudo client of
    /// every browser session (deleting a client ends its sessions, so a registered
    /// `usher` could end every user's browser session), and `cinema-web`, in any letter
    /// case: 422 `reserved`, nothing stored. A client holding `usher` from before the
    /// reservation can be neither changed nor deleted (409 `builtin_client`), and
    /// browser sessions survive the attempt.
    async fn clients_reserved_ids_refused(app) {
        let root = app.superuser().await;
        let token = Some(root.tokens.access.as_str());
        for id in ["usher", "USHER", "cinema-web", "Cinema-Web"] {
            let r = app.call(Method::POST, "/api/v1/clients", token, Some(json!({"client_id": id, "grant_types": ["client_credentials"]}))).await;
            assert_problem(&r, 422, "validation_failed");
            assert_eq!(r.body["errors"], json!([{"field": "client_id", "code": "reserved", "message": "is reserved for usher's own use"}]), "{id}");
        }
        assert_eq!(app.store().list_clients().await.unwrap().len(), 1, "only cinema-web");
        assert_problem(&app.call(Method::DELETE, "/api/v1/clients/usher", token, None).await, 404, "client_not_found");
        // A registration from before the reservation.
        let mut legacy = app.store().find_client("cinema-web").await.unwrap().unwrap();
        legacy.client_id = "usher".into();
        legacy.builtin = false;
        app.store().insert_client(&legacy).await.unwrap();
        let u = app.user().await;
        browser_sign_in(&app, &app.client, &u.login).await;
        let browser = app.store().list_active_sessions(&u.id, app.clock_now()).await.unwrap()
            .into_iter().find(|s| s.client_id == "usher").expect("a browser session");
        assert_problem(&app.call(Method::DELETE, "/api/v1/clients/usher", token, None).await, 409, "builtin_client");
        assert_problem(&app.call(Method::PATCH, "/api/v1/clients/usher", token, Some(json!({"client_name": "x"}))).await, 409, "builtin_client");
        assert!(app.store().find_client("usher").await.unwrap().is_some());
        assert!(app.store().find_session(&browser.id).await.unwrap().unwrap().ended_at.is_none());
        assert_eq!(browse(&app, &app.client, "/account").await.status, StatusCode::OK, "still signed in");
    }
}
