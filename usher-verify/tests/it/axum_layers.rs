//! The axum integration: extractors and guards answering per RFC 6750.

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use tower::ServiceExt;
use usher_verify::{Authenticated, RequireRole, RequireScope, RoleName, ScopeName, Verifier};

use crate::support::{AUD, Issuer, TestKey, claims, now};

struct Subscriber;
impl RoleName for Subscriber {
    const NAME: &'static str = "subscriber";
}

struct Films;
impl ScopeName for Films {
    const NAME: &'static str = "films";
}

/// The router of a small movie API, as the crate docs set it up.
fn app(v: &Verifier) -> Router {
    Router::new()
        .route(
            "/films",
            get(|user: Option<Authenticated>| async move {
                user.map_or("anonymous".into(), |u| u.sub.clone())
            }),
        )
        .route(
            "/me",
            get(|user: Authenticated| async move { user.sub.clone() }),
        )
        .route(
            "/watch",
            get(|user: Authenticated| async move { user.sub.clone() })
                .layer(v.require_role("subscriber")),
        )
        .route(
            "/typed",
            get(|user: RequireRole<Subscriber>| async move { user.sub.clone() }),
        )
        .route(
            "/scoped",
            get(|_: RequireScope<Films>| async { "ok" }).layer(v.require_scope("admin")),
        )
        .layer(v.layer())
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn call(app: &Router, path: &str, token: Option<&str>) -> Answer {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    if status.is_client_error() {
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    Answer {
        status,
        challenge,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn setup() -> (Issuer, TestKey, Router) {
    let key = TestKey::new(0, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let v = Verifier::builder(&issuer.url, AUD)
        .realm("movies")
        .build()
        .await
        .unwrap();
    let app = app(&v);
    (issuer, key, app)
}

/// No token: 401 with a bare `Bearer` challenge and no error code (RFC 6750 §3.1);
/// an open route with `Option<Authenticated>` serves the anonymous caller.
#[tokio::test]
async fn axum_missing_token_bare_challenge_and_anonymous_open_route() {
    let (_issuer, _key, app) = setup().await;
    let a = call(&app, "/me", None).await;
    assert_eq!(
        (a.status, a.challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer"))
    );
    let body: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["error_description"], "an access token is required");
    let a = call(&app, "/films", None).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "anonymous"));
}

/// A bad token is 401 `invalid_token` with the realm and the cause, also on an open
/// route (a bad token is never treated as anonymous); the body repeats it as JSON.
#[tokio::test]
async fn axum_invalid_token_is_401_with_challenge() {
    let (issuer, key, app) = setup().await;
    let mut c = claims(&issuer.url);
    c["exp"] = json!(now() - 60);
    let expired = key.sign(&c);
    for path in ["/me", "/films", "/watch"] {
        let a = call(&app, path, Some(&expired)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            a.challenge.as_deref(),
            Some(
                "Bearer realm=\"movies\", error=\"invalid_token\", error_description=\"the access token has expired\""
            )
        );
        let body: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            body,
            json!({"error": "invalid_token", "error_description": "the access token has expired"})
        );
    }
}

/// A role guard answers 403 `insufficient_scope` naming the role when the token lacks
/// it, lets the role holder through (the handler's extractor reuses the claims), and lets
/// a superuser through; the typed extractor behaves the same.
#[tokio::test]
async fn axum_require_role_403_then_role_and_superuser_pass() {
    let (issuer, key, app) = setup().await;
    let plain = key.sign(&claims(&issuer.url));
    for path in ["/watch", "/typed"] {
        let a = call(&app, path, Some(&plain)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            a.challenge.as_deref(),
            Some(
                "Bearer realm=\"movies\", error=\"insufficient_scope\", error_description=\"the subscriber role is required\""
            )
        );
    }
    let mut c = claims(&issuer.url);
    c["roles"] = json!(["member", "subscriber"]);
    let subscriber = key.sign(&c);
    let mut c = claims(&issuer.url);
    c["sub"] = json!("root");
    c["roles"] = json!([]);
    c["superuser"] = json!(true);
    let root = key.sign(&c);
    for (token, sub) in [(&subscriber, "u1"), (&root, "root")] {
        for path in ["/watch", "/typed"] {
            let a = call(&app, path, Some(token)).await;
            assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, sub), "{path}");
        }
    }
}

/// A scope guard's 403 carries the `scope` attribute (RFC 6750 §3); the guard and the
/// extractor behind it each need their scope.
#[tokio::test]
async fn axum_require_scope_403_names_scope() {
    let (issuer, key, app) = setup().await;
    let a = call(&app, "/scoped", Some(&key.sign(&claims(&issuer.url)))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.challenge.unwrap().ends_with("scope=\"admin\""));
    let mut c = claims(&issuer.url);
    c["scope"] = json!("admin films");
    assert_eq!(
        call(&app, "/scoped", Some(&key.sign(&c))).await.status,
        StatusCode::OK
    );
}

/// A route whose router has no verifier installed answers 500, not 401: a setup bug.
#[tokio::test]
async fn axum_extractor_without_verifier_is_500() {
    let app = Router::new().route(
        "/me",
        get(|user: Authenticated| async move { user.sub.clone() }),
    );
    let a = call(&app, "/me", Some("a.b.c")).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.challenge, None);
}
