//! The authorization code flow end to end over HTTP: the form-post authorization
//! request, `offline_access` and refresh tokens (OIDC Core §11), the ID token's claims
//! per scope, code redemption by confidential clients, PKCE verifier lengths, and the
//! built-in client's redirect URIs from the configuration.

use crate::backend_test;
use crate::harness::flow::*;
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn form_of(path: &str) -> Vec<(String, String)> {
    let query = path.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

backend_test! {
    /// `POST /oauth2/authorize` (OIDC Core §3.1.2.1): a valid request is answered with a
    /// 303 to the same request as a GET, which carries the `SameSite=Lax` cookie that a
    /// cross-site POST lacks, so single sign-on and `prompt=none` work; an invalid one
    /// gets the same page or error redirect as the GET.
    async fn authorize_post_redirects_to_get(app) {
        let u = app.user().await;
        browser_sign_in(&app, &app.client, &u.login).await;
        let path = authorize_path("cinema-web", CINEMA_CB, &[("prompt", "none"), ("nonce", "n 1")]);
        // The cross-site POST: no cookie.
        let cross_site = app.browser();
        let r = read(cross_site.post(app.url("/oauth2/authorize")).form(&form_of(&path)).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        assert_eq!(r.header("location"), Some(path.as_str()));
        assert_eq!(r.text, "");
        let r = browse(&app, &app.client, r.header("location").unwrap()).await;
        assert!(r.header("location").unwrap().starts_with("http://127.0.0.1:9000/callback?code="), "SSO after the redirect");
        let bad = authorize_path("nope", CINEMA_CB, &[]);
        let r = read(cross_site.post(app.url("/oauth2/authorize")).form(&form_of(&bad)).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.header("location").is_none());
        assert!(r.text.contains("The app is not registered with usher."), "{}", r.text);
        let wrong = authorize_path("cinema-web", CINEMA_CB, &[("prompt", "select_account")]);
        let r = read(cross_site.post(app.url("/oauth2/authorize")).form(&form_of(&wrong)).send().await.unwrap()).await;
        assert_eq!(query_param(r.header("location").unwrap(), "error").as_deref(), Some("invalid_request"));
    }
}

backend_test! {
    /// OIDC Core §11: the code flow issues a refresh token only with `offline_access`
    /// (and a client allowed the refresh grant); without it the session lasts as long as
    /// its access token. The password grant keeps issuing one.
    async fn offline_access_decides_refresh_token(app) {
        let u = app.user().await;
        browser_sign_in(&app, &app.client, &u.login).await;
        let code = code_of(&browse(&app, &app.client, &authorize_path("cinema-web", CINEMA_CB, &[("scope", "openid profile")])).await);
        let r = redeem(&app, "cinema-web", &code, CINEMA_CB).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.body.get("refresh_token").is_none(), "{}", r.text);
        assert_eq!(r.body["scope"], "openid profile");
        let (_, claims) = decode_jwt(r.body["access_token"].as_str().unwrap());
        let session = app.store().find_session(claims["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(session.expires_at, app.clock_now() + app.app.config.access_token_ttl.as_secs() as i64);
        let code = code_of(&browse(&app, &app.client, &authorize_path("cinema-web", CINEMA_CB, &[("scope", "openid offline_access")])).await);
        let r = redeem(&app, "cinema-web", &code, CINEMA_CB).await;
        assert_eq!(r.body["scope"], "openid offline_access");
        let refresh = r.body["refresh_token"].as_str().expect("a refresh token with offline_access");
        assert_eq!(app.refresh(refresh).await.status, StatusCode::OK);
        assert!(!u.tokens.refresh.is_empty(), "the password grant issues one without offline_access");
    }
}

backend_test! {
    /// OIDC Core §11: a third-party client gets `offline_access` only with
    /// `prompt=consent`; otherwise it is dropped from the granted scope (no refresh
    /// token). With it, the consent page lists it in words and a refresh token comes.
    async fn offline_access_for_third_party_needs_prompt_consent(app) {
        let admin = app.superuser().await;
        let client = app.register_client(&admin.tokens.access, json!({
            "client_name": "Film Club", "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["https://club.example/cb"],
            "scope": "openid email offline_access",
        })).await;
        let id = client["client_id"].as_str().unwrap();
        let cb = "https://club.example/cb";
        let u = app.user().await;
        browser_sign_in(&app, &app.client, &u.login).await;
        let t = &app;
        let consent = |r: Resp| async move {
            let page = browse(t, &t.client, r.header("location").unwrap()).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text);
            let form = [("csrf", form_value(&page.text, "csrf").unwrap()), ("request", form_value(&page.text, "request").unwrap()), ("decision", "allow".to_owned())];
            (page.text, read(t.client.post(t.url("/consent")).form(&form).send().await.unwrap()).await)
        };
        let r = browse(&app, &app.client, &authorize_path(id, cb, &[("scope", "openid offline_access")])).await;
        let (page, r) = consent(r).await;
        assert!(page.contains("<li>Confirm who you are</li>") && !page.contains("Stay signed in"), "{page}");
        let r = redeem(&app, id, &code_of(&r), cb).await;
        assert_eq!((r.status, r.body["scope"].clone()), (StatusCode::OK, json!("openid")));
        assert!(r.body.get("refresh_token").is_none());
        let r = browse(&app, &app.client, &authorize_path(id, cb, &[("scope", "openid offline_access"), ("prompt", "consent")])).await;
        let (page, r) = consent(r).await;
        assert!(page.contains("<li>Stay signed in while you are away</li>"), "{page}");
        let r = redeem(&app, id, &code_of(&r), cb).await;
        assert_eq!(r.body["scope"], "openid offline_access");
        assert!(r.body["refresh_token"].is_string(), "{}", r.text);
        assert_eq!(app.store().find_consent(&u.id, id).await.unwrap().as_deref(), Some("openid offline_access"));
    }
}

backend_test! {
    /// The code flow's ID token (OIDC Core §2, §5.4): `sid` is the new session (opened
    /// through the browser session), and `preferred_username`, `email`,
    /// `email_verified` and `roles` appear only with their scopes.
    async fn code_flow_id_token_claims_per_scope(app) {
        let u = app.user().await;
        let r = app.call(reqwest::Method::PATCH, "/api/v1/users/me", Some(&u.tokens.access), Some(json!({"email": "claims@example.org"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        browser_sign_in(&app, &app.client, &u.login).await;
        let t = &app;
        let id_token = |scope: &'static str| async move {
            let code = code_of(&browse(t, &t.client, &authorize_path("cinema-web", CINEMA_CB, &[("scope", scope)])).await);
            let r = redeem(t, "cinema-web", &code, CINEMA_CB).await;
            let t = tokens_of(&r);
            let (_, id) = decode_jwt(t.id_token.as_deref().unwrap());
            let (_, access) = decode_jwt(&t.access);
            (id, access)
        };
        let (id, access) = id_token("openid").await;
        assert_eq!(id["sid"], access["sid"]);
        let session = app.store().find_session(id["sid"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!((session.client_id.as_str(), session.user_id.as_str()), ("cinema-web", u.id.as_str()));
        let browser = app.store().find_session(session.parent_sid.as_deref().unwrap()).await.unwrap().unwrap();
        assert_eq!(browser.client_id, "usher");
        for claim in ["preferred_username", "email", "email_verified", "roles", "updated_at"] {
            assert!(id.get(claim).is_none(), "{claim} without its scope: {id}");
        }
        let (id, _) = id_token("openid profile email roles").await;
        assert_eq!(id["preferred_username"], u.login.as_str());
        assert_eq!(id["email"], "claims@example.org");
        assert_eq!(id["email_verified"], false);
        assert_eq!(id["roles"], json!(["user"]));
        let (id, _) = id_token("openid email").await;
        assert_eq!((id.get("email").is_some(), id.get("roles").is_none(), id.get("preferred_username").is_none()), (true, true, true));
    }
}

backend_test! {
    /// RFC 6749 §4.1.3 / §2.3.1: a confidential client redeems its code with
    /// `client_secret_basic` or `client_secret_post` (PKCE optional for it); a wrong
    /// secret is `invalid_client`; a code redeemed by another client is `invalid_grant`.
    async fn code_redemption_by_confidential_and_wrong_client(app) {
        let admin = app.superuser().await;
        let t = &app;
        let register = |method: &'static str| {
            let token = admin.tokens.access.clone();
            async move {
                t.register_client(&token, json!({
                    "client_name": format!("Box {method}"), "token_endpoint_auth_method": method, "first_party": true,
                    "grant_types": ["authorization_code"], "redirect_uris": ["https://box.example/cb"], "scope": "openid",
                })).await
            }
        };
        let basic = register("client_secret_basic").await;
        let post = register("client_secret_post").await;
        let (basic_id, basic_secret) = (basic["client_id"].as_str().unwrap(), basic["client_secret"].as_str().unwrap());
        let (post_id, post_secret) = (post["client_id"].as_str().unwrap(), post["client_secret"].as_str().unwrap());
        let u = app.user().await;
        browser_sign_in(&app, &app.client, &u.login).await;
        let code_for = |id: &str| authorize_path(id, "https://box.example/cb", &[("scope", "openid"), ("code_challenge", ""), ("code_challenge_method", "")]);
        let code = code_of(&browse(&app, &app.client, &code_for(basic_id)).await);
        let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", "https://box.example/cb")];
        assert_oauth_error(&app.post_form_basic("/oauth2/token", basic_id, "wrong", &form).await, 401, "invalid_client");
        let code = code_of(&browse(&app, &app.client, &code_for(basic_id)).await);
        let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", "https://box.example/cb")];
        let r = app.post_form_basic("/oauth2/token", basic_id, basic_secret, &form).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let (_, id) = decode_jwt(r.body["id_token"].as_str().unwrap());
        assert_eq!(id["aud"], basic_id);
        let code = code_of(&browse(&app, &app.client, &code_for(post_id)).await);
        let r = app.post_form("/oauth2/token", &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://box.example/cb"), ("client_id", post_id), ("client_secret", post_secret)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // A code of cinema-web redeemed by another client.
        let code = code_of(&browse(&app, &app.client, &authorize_path("cinema-web", CINEMA_CB, &[])).await);
        let r = app.post_form("/oauth2/token", &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CINEMA_CB), ("code_verifier", VERIFIER), ("client_id", post_id), ("client_secret", post_secret)]).await;
        assert_oauth_error(&r, 400, "invalid_grant");
        assert_oauth_error(&redeem(&app, "cinema-web", &code, CINEMA_CB).await, 400, "invalid_grant");
    }
}

backend_test! {
    /// RFC 7636 §4.1: a verifier has 43 to 128 characters. With the challenge of each
    /// verifier, 43 and 128 redeem; 42 and 129 are `invalid_grant`.
    async fn pkce_verifier_lengths(app) {
        let u = app.user().await;
        browser_sign_in(&app, &app.client, &u.login).await;
        for (len, ok) in [(42, false), (43, true), (128, true), (129, false)] {
            let verifier: String = "abcdefghijklmnopqrstuvwxyz0123456789-._~".chars().cycle().take(len).collect();
            let challenge = challenge_of(&verifier);
            let code = code_of(&browse(&app, &app.client, &authorize_path("cinema-web", CINEMA_CB, &[("code_challenge", &challenge)])).await);
            let r = redeem_with(&app, "cinema-web", &code, CINEMA_CB, &verifier).await;
            if ok {
                assert_eq!(r.status, StatusCode::OK, "{len}: {}", r.text);
            } else {
                assert_oauth_error(&r, 400, "invalid_grant");
            }
        }
    }
}

backend_test! {
    /// `USHER_CINEMA_WEB_REDIRECT_URIS` and `USHER_CINEMA_WEB_POST_LOGOUT_REDIRECT_URIS`
    /// are comma-separated lists applied to the built-in client at start: the
    /// authorization endpoint and the end-session endpoint accept exactly them.
    async fn cinema_web_uris_from_comma_separated_env(app) {
        let vars = vec![
            ("USHER_CINEMA_WEB_REDIRECT_URIS".to_owned(), "https://cinema.example/cb, https://m.cinema.example/cb".to_owned()),
            ("USHER_CINEMA_WEB_POST_LOGOUT_REDIRECT_URIS".to_owned(), "https://cinema.example/bye,https://m.cinema.example/bye".to_owned()),
        ];
        let loaded = usher::config::Config::load_from(None, &vars).unwrap();
        let app = app
            .same_backend()
            .config(move |c| {
                c.cinema_web_redirect_uris = loaded.cinema_web_redirect_uris;
                c.cinema_web_post_logout_redirect_uris = loaded.cinema_web_post_logout_redirect_uris;
            })
            .build()
            .await;
        let stored = app.store().find_client("cinema-web").await.unwrap().unwrap();
        let uris: Value = serde_json::from_str(&stored.redirect_uris).unwrap();
        assert_eq!(uris, json!(["https://cinema.example/cb", "https://m.cinema.example/cb"]));
        let uris: Value = serde_json::from_str(&stored.post_logout_redirect_uris).unwrap();
        assert_eq!(uris, json!(["https://cinema.example/bye", "https://m.cinema.example/bye"]));
        let r = app.get(&authorize_path("cinema-web", "https://m.cinema.example/cb", &[]), None).await;
        assert!(r.header("location").unwrap().starts_with("/login?request="));
        let r = app.get(&authorize_path("cinema-web", CINEMA_CB, &[]), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "the test default is replaced");
        let r = app.get("/oauth2/logout?client_id=cinema-web&post_logout_redirect_uri=https%3A%2F%2Fm.cinema.example%2Fbye", None).await;
        assert_eq!(r.status, StatusCode::OK, "a confirmation page: {}", r.text);
    }
}
