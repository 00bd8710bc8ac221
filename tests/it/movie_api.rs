//! The movie API example (`examples/movie_api/`) end to end against a real usher: the
//! cinema's film rule (issue 5) in feed and live mode, and the ETL's service-to-service
//! call. Each test starts usher, then the example's router on 127.0.0.1:0 with a
//! verifier fed by a confidential client registered through the admin API, built exactly
//! as the example builds it, and runs the ETL as of [`TODAY`].

use std::time::Duration;

use crate::backend_test;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Date;
use time::macros::date;
use usher_verify::{Mode, Verifier, VerifyError};

#[expect(dead_code, reason = "the example's `main` is not used by the tests")]
#[path = "../../examples/movie_api/main.rs"]
mod movie_app;

use movie_app::Label;

/// The day the ETL labels the films as of.
const TODAY: Date = date!(2026 - 03 - 01);
/// A film released less than 3 years before [`TODAY`].
const RECENT: &str = "the-long-queue";
/// A film released long before [`TODAY`].
const CATALOGUE: &str = "metropolis";

/// The movie API running in-process against one usher, labelled by its ETL.
struct Cinema {
    /// `http://127.0.0.1:<port>` of the movie API.
    base: String,
    /// Client for the movie API.
    client: reqwest::Client,
    /// The movie API's verifier.
    verifier: Verifier,
    /// The movie API's client at usher (feed and ETL).
    client_id: String,
    /// Its secret.
    client_secret: String,
    /// The superuser who registered the client.
    admin: User,
    /// What the ETL sent.
    labels: Vec<(String, Label)>,
    /// The movie API's server task.
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Cinema {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Cinema {
    /// Registers the movie API's client at `app` (as a superuser), starts the movie API
    /// with a feed-mode verifier, waits for the feed's first cursor and runs the ETL.
    async fn start(app: &TestApp) -> Self {
        let admin = app.superuser().await;
        let (client_id, client_secret) = app.service_client(&admin.tokens.access).await;
        let config = movie_app::Config {
            issuer: app.base.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        };
        let verifier = movie_app::verifier_builder(&config).build().await.unwrap();
        // The feed starts at "now" once its first poll has answered; entries written
        // before that would be unknown to it.
        let started = eventually(Duration::from_secs(5), || async {
            verifier.feed_cursor().is_some()
        })
        .await;
        assert!(started, "the revocation feed never answered");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = movie_app::app(verifier.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let labels = movie_app::run_etl(&config, &base, TODAY).await.unwrap();
        Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            verifier,
            client_id,
            client_secret,
            admin,
            labels,
            server,
        }
    }

    /// Sends a request to the movie API with an optional bearer token and JSON body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    /// GET on the movie API.
    async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, None).await
    }
}

/// Waits (at most a second, less than the 2 s live cache) until the movie API's feed has
/// read every entry usher has written so far.
async fn feed_caught_up(app: &TestApp, cinema: &Cinema) {
    let last = app.store().last_change_seq().await.unwrap();
    let caught_up = eventually(Duration::from_secs(1), || async {
        cinema
            .verifier
            .feed_cursor()
            .is_some_and(|c| cursor_seq(&c) >= last)
    })
    .await;
    assert!(
        caught_up,
        "the feed reports usher's entries within a second"
    );
}

/// The position in a revocation-feed cursor (`rv:EPOCH.SEQ.ISSUED`, base64url).
fn cursor_seq(cursor: &str) -> i64 {
    let text = String::from_utf8(usher::token::b64url_decode(cursor.as_bytes()).unwrap()).unwrap();
    text.split('.').nth(1).unwrap().parse().unwrap()
}

/// The path of `GET /films/{film}/watch` (feed mode).
fn watch(film: &str) -> String {
    format!("/films/{film}/watch")
}

/// The path of `GET /films/{film}/watch-live` (live mode).
fn watch_live(film: &str) -> String {
    format!("/films/{film}/watch-live")
}

/// The body of a successful watch of `film` (`the-long-queue` or `metropolis`).
fn watched(film: &str, viewer: Option<&str>) -> Value {
    let (title, label) = match film {
        RECENT => ("The Long Queue", "recent"),
        CATALOGUE => ("Metropolis", "catalogue"),
        _ => unreachable!("no fixture for {film}"),
    };
    json!({
        "film": film, "title": title, "label": label,
        "stream": format!("/streams/{film}.m3u8"), "viewer": viewer,
    })
}

/// Asserts a 200 watch of `film` by `viewer`.
fn assert_watched(r: &Resp, film: &str, viewer: Option<&str>) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, watched(film, viewer));
}

/// Asserts a refusal by the verifier (RFC 6750 §3): status, exact challenge, `no-store`
/// and the whole JSON body.
fn assert_refused(r: &Resp, status: u16, challenge: &str, error: &str, description: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.header("www-authenticate"), Some(challenge), "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body,
        json!({"error": error, "error_description": description})
    );
}

/// A caller who may not watch a recent film: 403 saying a subscription is needed. With
/// a token, RFC 6750 `insufficient_scope`; without one, `access_denied` and a challenge
/// naming the realm (RFC 6750 §3: signing in may help).
fn assert_subscription_needed(r: &Resp, with_token: bool) {
    if with_token {
        assert_forbidden(r, "a subscription is needed to watch this film");
    } else {
        let description = "a subscription is needed to watch this film; sign in as a subscriber";
        assert_refused(
            r,
            403,
            "Bearer realm=\"cinema\"",
            "access_denied",
            description,
        );
    }
}

/// No token (RFC 6750 §3.1): 401 with a bare `Bearer` challenge.
fn assert_token_required(r: &Resp) {
    let description = "an access token is required";
    assert_refused(r, 401, "Bearer", "invalid_request", description);
}

/// A bad, ended or stale token: 401 `invalid_token` in the realm `cinema`.
fn assert_invalid_token(r: &Resp, description: &str) {
    let challenge = format!(
        "Bearer realm=\"cinema\", error=\"invalid_token\", error_description=\"{description}\""
    );
    assert_refused(r, 401, &challenge, "invalid_token", description);
}

/// A missing role or permission: 403 `insufficient_scope` in the realm `cinema`.
fn assert_forbidden(r: &Resp, description: &str) {
    let challenge = format!(
        "Bearer realm=\"cinema\", error=\"insufficient_scope\", error_description=\"{description}\""
    );
    assert_refused(r, 403, &challenge, "insufficient_scope", description);
}

/// Gives `user` the `subscriber` role through the admin API and returns their access
/// token refreshed a second later, which names the role (a token of the change's own
/// second is stale in feed mode: whole seconds cannot order it after the change).
async fn subscribe(app: &TestApp, cinema: &Cinema, user: &User) -> String {
    let path = subscription(app, user).await;
    let r = app
        .call(Method::PUT, &path, Some(&cinema.admin.tokens.access), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.clock.advance(1);
    let r = app.refresh(&user.tokens.refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access = tokens_of(&r).access;
    assert_eq!(
        decode_jwt(&access).1["roles"],
        json!(["user", "subscriber"])
    );
    access
}

/// The admin path of `user`'s `subscriber` assignment.
async fn subscription(app: &TestApp, user: &User) -> String {
    let subscriber = app.role_id("subscriber").await;
    format!("/api/v1/users/{}/roles/{subscriber}", user.id)
}

/// The ETL's rule: released less than 3 years before the day is `recent`; exactly 3
/// years is `catalogue`; on 29 February the cut-off is 28 February three years before.
#[test]
fn etl_label_under_three_years_is_recent() {
    assert_eq!(
        movie_app::label(date!(2023 - 03 - 02), TODAY),
        Label::Recent
    );
    assert_eq!(
        movie_app::label(date!(2023 - 03 - 01), TODAY),
        Label::Catalogue
    );
    assert_eq!(
        movie_app::label(date!(1927 - 01 - 10), TODAY),
        Label::Catalogue
    );
    let leap = date!(2028 - 02 - 29);
    assert_eq!(
        movie_app::label(date!(2025 - 02 - 28), leap),
        Label::Catalogue
    );
    assert_eq!(movie_app::label(date!(2025 - 03 - 01), leap), Label::Recent);
}

backend_test! {
    /// Listing is open to everyone (a bad token is not even looked at) and shows the
    /// ETL's labels; anyone may watch a catalogue film. A recent film is refused with a
    /// clear 403 (issue 5) to anonymous, whose rights are usher's `anonymous` role (a
    /// `Bearer realm` challenge tells the client that signing in may help), and to a
    /// plain user, who holds neither the role nor the permission (`insufficient_scope`),
    /// on both routes. A bad token is 401; an unknown film is 404.
    async fn watch_recent_film_refused_to_anonymous_and_plain_user(app) {
        let cinema = Cinema::start(&app).await;
        let label = |id: &str, label| (id.to_owned(), label);
        assert_eq!(cinema.labels, vec![
            label("casablanca", Label::Catalogue),
            label("metropolis", Label::Catalogue),
            label("popcorn-at-midnight", Label::Recent),
            label("spirited-away", Label::Catalogue),
            label("the-long-queue", Label::Recent),
        ]);
        let listing = json!({"films": [
            {"id": "metropolis", "title": "Metropolis", "released": "1927-01-10", "label": "catalogue"},
            {"id": "casablanca", "title": "Casablanca", "released": "1942-11-26", "label": "catalogue"},
            {"id": "spirited-away", "title": "Spirited Away", "released": "2001-07-20", "label": "catalogue"},
            {"id": "the-long-queue", "title": "The Long Queue", "released": "2024-09-13", "label": "recent"},
            {"id": "popcorn-at-midnight", "title": "Popcorn at Midnight", "released": "2025-11-14", "label": "recent"},
        ]});
        for token in [None, Some("garbage")] {
            let r = cinema.get("/films", token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.body, listing);
        }
        let u = app.user().await;
        for token in [None, Some(u.tokens.access.as_str())] {
            assert_watched(&cinema.get(&watch(CATALOGUE), token).await, CATALOGUE, None);
            assert_watched(&cinema.get(&watch_live(CATALOGUE), token).await, CATALOGUE, None);
        }
        for path in [watch(RECENT), watch_live(RECENT)] {
            assert_subscription_needed(&cinema.get(&path, None).await, false);
            assert_subscription_needed(&cinema.get(&path, Some(&u.tokens.access)).await, true);
        }
        assert_invalid_token(&cinema.get(&watch(RECENT), Some("garbage")).await, "the access token is malformed");
        let r = cinema.get(&watch("no-such-film"), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.body, json!({"error": "not_found", "error_description": "no such film"}));
    }
}

backend_test! {
    /// A user given `subscriber` through the admin API: their older token is refused as
    /// stale once the feed reports the change (401 `invalid_token`, "refresh it"). A
    /// token refreshed in the change's own second is stale too in feed mode (whole
    /// seconds cannot order it after the change), though it names the role; refreshed a
    /// second later, the new token gets the recent film on both routes. The superuser,
    /// who holds no role, watches anything.
    async fn watch_recent_film_allowed_to_subscriber_after_refresh(app) {
        let cinema = Cinema::start(&app).await;
        let u = app.user().await;
        // The role is granted a second after the user's token was issued.
        app.clock.advance(1);
        let path = subscription(&app, &u).await;
        let r = app.call(Method::PUT, &path, Some(&cinema.admin.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let stale = eventually(Duration::from_secs(1), || async {
            cinema.get(&watch(RECENT), Some(&u.tokens.access)).await.status == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(stale, "the older token must be stale within a second");
        let r = cinema.get(&watch(RECENT), Some(&u.tokens.access)).await;
        assert_invalid_token(&r, "the access token predates a change of the user's roles; refresh it");
        let r = app.refresh(&u.tokens.refresh).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let same_second = tokens_of(&r);
        assert_eq!(decode_jwt(&same_second.access).1["roles"], json!(["user", "subscriber"]));
        let r = cinema.get(&watch(RECENT), Some(&same_second.access)).await;
        assert_invalid_token(&r, "the access token predates a change of the user's roles; refresh it");
        app.clock.advance(1);
        let r = app.refresh(&same_second.refresh).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let access = tokens_of(&r).access;
        assert_eq!(decode_jwt(&access).1["roles"], json!(["user", "subscriber"]));
        assert_watched(&cinema.get(&watch(RECENT), Some(&access)).await, RECENT, Some(&u.id));
        assert_watched(&cinema.get(&watch_live(RECENT), Some(&access)).await, RECENT, Some(&u.id));
        let admin = &cinema.admin;
        assert_eq!(decode_jwt(&admin.tokens.access).1["roles"], json!(["user"]));
        for path in [watch(RECENT), watch_live(RECENT)] {
            assert_watched(&cinema.get(&path, Some(&admin.tokens.access)).await, RECENT, Some(&admin.id));
        }
        let r = cinema.get("/films/popcorn-at-midnight/watch", Some(&admin.tokens.access)).await;
        assert_eq!((r.status, &r.body["viewer"]), (StatusCode::OK, &json!(admin.id)));
    }
}

backend_test! {
    /// Live mode, with the example's own settings (a 2 s live cache): a subscriber whose
    /// role is taken away (`DELETE` of the assignment, a second after their token was
    /// issued, as with a real clock) is refused on the first request once the feed has
    /// reported the change (within a second, before the cached answer expires), with the
    /// same token, which still names the role: 403 `insufficient_scope`, not a stale
    /// token (usher's live answer already reflects the change). The feed route sees the
    /// token as stale and asks for a refresh.
    async fn watch_live_role_removed_refused_at_once(app) {
        let cinema = Cinema::start(&app).await;
        let u = app.user().await;
        let access = subscribe(&app, &cinema, &u).await;
        assert_watched(&cinema.get(&watch_live(RECENT), Some(&access)).await, RECENT, Some(&u.id));
        app.clock.advance(1);
        let path = subscription(&app, &u).await;
        let r = app.call(Method::DELETE, &path, Some(&cinema.admin.tokens.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        feed_caught_up(&app, &cinema).await;
        assert_subscription_needed(&cinema.get(&watch_live(RECENT), Some(&access)).await, true);
        assert_eq!(decode_jwt(&access).1["roles"], json!(["user", "subscriber"]));
        let r = cinema.get(&watch(RECENT), Some(&access)).await;
        assert_invalid_token(&r, "the access token predates a change of the user's roles; refresh it");
    }
}

backend_test! {
    /// The feed route's rule is "the `subscriber` role OR `films:watch_recent` through
    /// the live check" (issue 5): a user holding the permission through another role
    /// watches a recent film there. Anonymous is a principal too: once usher's
    /// `anonymous` role is granted the permission, anonymous callers watch recent films
    /// (as soon as the feed reports the role change).
    async fn watch_recent_film_by_permission_without_subscriber_role(app) {
        let cinema = Cinema::start(&app).await;
        let admin = &cinema.admin.tokens.access;
        let critics = json!({"name": "critics", "permissions": ["films:watch_recent"]});
        let r = app.call(Method::POST, "/api/v1/roles", Some(admin), Some(critics)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let critics = r.body["id"].as_str().unwrap().to_owned();
        let u = app.user().await;
        let r = app.call(Method::PUT, &format!("/api/v1/users/{}/roles/{critics}", u.id), Some(admin), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        app.clock.advance(1);
        let r = app.refresh(&u.tokens.refresh).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let access = tokens_of(&r).access;
        assert_eq!(decode_jwt(&access).1["roles"], json!(["user", "critics"]));
        assert_watched(&cinema.get(&watch(RECENT), Some(&access)).await, RECENT, Some(&u.id));
        assert_watched(&cinema.get(&watch_live(RECENT), Some(&access)).await, RECENT, Some(&u.id));

        assert_subscription_needed(&cinema.get(&watch(RECENT), None).await, false);
        let anonymous = app.role_id("anonymous").await;
        let body = json!({"permissions": ["films:watch_recent"]});
        let r = app.call(Method::PATCH, &format!("/api/v1/roles/{anonymous}"), Some(admin), Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        feed_caught_up(&app, &cinema).await;
        assert_watched(&cinema.get(&watch(RECENT), None).await, RECENT, None);
    }
}

backend_test! {
    /// The ETL runs again on its schedule, each time for the day its `today` function
    /// gives: a film that was recent becomes catalogue once three years have passed.
    async fn etl_runs_periodically_with_the_given_day(app) {
        let cinema = Cinema::start(&app).await;
        let config = movie_app::Config {
            issuer: app.base.clone(),
            client_id: cinema.client_id.clone(),
            client_secret: cinema.client_secret.clone(),
        };
        let later = date!(2027 - 09 - 14);
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = runs.clone();
        let today = move || match counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => TODAY,
            _ => later,
        };
        let label_of = |r: &Resp, id: &str| {
            r.body["films"].as_array().unwrap().iter().find(|f| f["id"] == id).unwrap()["label"].clone()
        };
        let schedule = tokio::spawn(movie_app::run_etl_every(config, cinema.base.clone(), Duration::from_millis(200), today));
        let relabelled = eventually(Duration::from_secs(10), || async {
            label_of(&cinema.get("/films", None).await, RECENT) == json!("catalogue")
        })
        .await;
        schedule.abort();
        assert!(relabelled, "the second run labels as of {later}");
        assert!(runs.load(std::sync::atomic::Ordering::SeqCst) >= 2);
        let listing = cinema.get("/films", None).await;
        assert_eq!(label_of(&listing, "popcorn-at-midnight"), json!("recent"));
        assert_eq!(label_of(&listing, CATALOGUE), json!("catalogue"));
    }
}

backend_test! {
    /// Feed mode: a subscriber who logs out is refused within a second, while their
    /// access token has not expired (offline verification still accepts it): 401
    /// `invalid_token`, "the session of the access token has ended".
    async fn watch_feed_logout_refused_within_a_second(app) {
        let cinema = Cinema::start(&app).await;
        let u = app.user().await;
        let access = subscribe(&app, &cinema, &u).await;
        assert_watched(&cinema.get(&watch(RECENT), Some(&access)).await, RECENT, Some(&u.id));
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let refused = eventually(Duration::from_secs(1), || async {
            cinema.get(&watch(RECENT), Some(&access)).await.status == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(refused, "a logout must be refused within a second in feed mode");
        let r = cinema.get(&watch(RECENT), Some(&access)).await;
        assert_invalid_token(&r, "the session of the access token has ended");
        let exp = decode_jwt(&access).1["exp"].as_i64().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!(exp > now + 60, "the token has not expired");
        assert!(cinema.verifier.authenticate(&access, Mode::Offline).await.is_ok());
        assert_eq!(cinema.verifier.authenticate(&access, Mode::Feed).await.unwrap_err(), VerifyError::SessionEnded);
    }
}

backend_test! {
    /// `PUT /films/labels` took the ETL's labels with its `client_credentials` token and
    /// takes them again from such a token (naming the client); a film it does not know
    /// is 422. A user token without `films:label` is refused with 403 and the `scope`
    /// attribute (RFC 6750 §3.1), no token with 401; the labels stay as they were.
    async fn labels_service_token_accepted_user_token_refused(app) {
        let cinema = Cinema::start(&app).await;
        let label_of = |r: &Resp, id: &str| {
            r.body["films"].as_array().unwrap().iter().find(|f| f["id"] == id).unwrap()["label"].clone()
        };
        assert_eq!(label_of(&cinema.get("/films", None).await, RECENT), "recent");
        let form = [("grant_type", "client_credentials"), ("scope", "films:label")];
        let r = app.post_form_basic("/oauth2/token", &cinema.client_id, &cinema.client_secret, &form).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let service = r.body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(decode_jwt(&service).1["sub"], json!(cinema.client_id));
        let relabel = json!({"labels": {CATALOGUE: "catalogue"}});
        let r = cinema.call(Method::PUT, "/films/labels", Some(&service), Some(relabel.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({"labelled": 1, "client_id": cinema.client_id}));
        let unknown = json!({"labels": {"no-such-film": "recent", CATALOGUE: "recent"}});
        let r = cinema.call(Method::PUT, "/films/labels", Some(&service), Some(unknown)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body, json!({"error": "unknown_film", "error_description": "no such film", "films": ["no-such-film"]}));
        let u = app.user().await;
        let steal = json!({"labels": {RECENT: "catalogue"}});
        let r = cinema.call(Method::PUT, "/films/labels", Some(&u.tokens.access), Some(steal.clone())).await;
        let description = "the films:label scope is required";
        let challenge = format!("Bearer realm=\"cinema\", error=\"insufficient_scope\", error_description=\"{description}\", scope=\"films:label\"");
        assert_refused(&r, 403, &challenge, "insufficient_scope", description);
        assert_token_required(&cinema.call(Method::PUT, "/films/labels", None, Some(steal)).await);
        let listing = cinema.get("/films", None).await;
        assert_eq!((label_of(&listing, RECENT), label_of(&listing, CATALOGUE)), (json!("recent"), json!("catalogue")));
        assert_subscription_needed(&cinema.get(&watch(RECENT), None).await, false);
    }
}
