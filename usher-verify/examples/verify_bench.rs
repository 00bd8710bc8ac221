//! One-thread benchmark of offline verification:
//! `cargo run --release -p usher-verify --example verify_bench [SECONDS]`.
//!
//! Measures on a current-thread runtime (one core), per second of the thread's CPU time
//! (Linux `/proc/thread-self/schedstat`; wall time elsewhere), in interleaved rounds
//! reported as medians, so that a busy machine disturbs the figures less:
//! (a) raw RSA-2048 RS256 signature verifications per second with josekit;
//! (b) full offline verifications per second through the axum extractor
//!     (`Authenticated::from_request_parts` on a request carrying the header), with the
//!     verified-token cache off, so every call parses, checks the signature and the
//!     claims;
//! (c) the same with the cache on and a distinct token per call (cold: every call
//!     misses, hashes and inserts; one pass over pre-signed tokens per round);
//! (d) the same with the cache on and one token (warm: hits).
//! The ratio the issue asks for is (b)/(a); (c)/(a) is the honest cold figure with the
//! cache enabled (the default).

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::KeyPair;
use josekit::jws::{JwsSigner, JwsVerifier, RS256};
use serde_json::{Value, json};
use usher_verify::{Authenticated, Verifier};

const AUD: &str = "movie-api";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs `count` distinct usher-shaped access tokens on all cores.
fn sign_tokens(pem: &[u8], issuer: &str, count: usize) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let signer = RS256.signer_from_pem(pem).unwrap();
                    let header = b64(json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}).to_string().as_bytes());
                    (t..count)
                        .step_by(threads)
                        .map(|n| {
                            let claims = json!({
                                "iss": issuer, "sub": format!("user-{n}"), "aud": AUD, "client_id": "web",
                                "exp": now() + 3600, "iat": now(), "jti": format!("jti-{n}"),
                                "sid": format!("sid-{n}"), "scope": "openid profile films",
                                "roles": ["member", "subscriber"],
                            });
                            let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
                            let signature = signer.sign(input.as_bytes()).unwrap();
                            format!("{input}.{}", b64(&signature))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Runs `step` repeatedly for about `budget`; returns calls per second.
async fn rate<F: AsyncFnMut(usize)>(budget: Duration, mut step: F) -> f64 {
    let clock = Clock::start();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        for _ in 0..64 {
            step(n).await;
            n += 1;
        }
    }
    n as f64 / clock.seconds()
}

/// Time spent by this thread: on-CPU time from `/proc/thread-self/schedstat` (Linux),
/// so that other processes on a busy machine do not count; wall time elsewhere.
struct Clock {
    wall: Instant,
    cpu: Option<u64>,
}

fn cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_nanos(),
        }
    }

    fn seconds(&self) -> f64 {
        match (self.cpu, cpu_nanos()) {
            (Some(start), Some(end)) if end > start => (end - start) as f64 / 1e9,
            _ => self.wall.elapsed().as_secs_f64(),
        }
    }
}

/// A request's parts carrying `verifier` in its extensions, as a guard leaves them.
fn parts_with(verifier: &Verifier) -> Parts {
    Request::get("/films/1/watch")
        .extension(verifier.clone())
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// Runs the extractor over `headers` in turn for about `budget`; calls per second.
async fn extractor_rate(verifier: &Verifier, headers: &[HeaderValue], budget: Duration) -> f64 {
    let mut parts = parts_with(verifier);
    rate(budget, async |n| {
        parts
            .headers
            .insert(AUTHORIZATION, headers[n % headers.len()].clone());
        let user = Authenticated::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        black_box(user);
    })
    .await
}

/// Runs the extractor once over each of `headers` (all distinct); calls per second.
async fn one_pass_rate(verifier: &Verifier, headers: &[HeaderValue]) -> f64 {
    let mut parts = parts_with(verifier);
    let clock = Clock::start();
    for header in headers {
        parts.headers.insert(AUTHORIZATION, header.clone());
        let user = Authenticated::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        black_box(user);
    }
    headers.len() as f64 / clock.seconds()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let budget = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pair = RS256.generate_key_pair(2048).unwrap();
        let mut jwk: Value = serde_json::from_str(&pair.to_jwk_public_key().to_string()).unwrap();
        jwk["kid"] = json!("k1");
        jwk["alg"] = json!("RS256");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let doc = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/.well-known/jwks.json")});
        let keys = json!({"keys": [jwk.clone()]});
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(doc) }),
            )
            .route(
                "/.well-known/jwks.json",
                get(move || async move { Json(keys) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        // Figures are measured in interleaved rounds and reported as medians, so that
        // load from other processes hits them alike.
        let rounds = 7;
        let slice = budget / rounds as u32;
        let cold_count = (seconds as usize * 4000).max(rounds * 500);
        eprintln!("signing {cold_count} tokens…");
        let tokens = sign_tokens(&pair.to_pem_private_key(), &issuer, cold_count);
        let headers: Vec<HeaderValue> = tokens
            .iter()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).unwrap())
            .collect();
        let raw = RS256
            .verifier_from_jwk(&josekit::jwk::Jwk::from_bytes(jwk.to_string()).unwrap())
            .unwrap();
        let split: Vec<(Vec<u8>, Vec<u8>)> = tokens
            .iter()
            .take(64)
            .map(|t| {
                let (input, sig) = t.rsplit_once('.').unwrap();
                (
                    input.as_bytes().to_vec(),
                    URL_SAFE_NO_PAD.decode(sig).unwrap(),
                )
            })
            .collect();
        let uncached = Verifier::builder(&issuer, AUD)
            .verified_cache(None)
            .build()
            .await
            .unwrap();
        // Large enough that no distinct token is evicted before it is used.
        let cold = Verifier::builder(&issuer, AUD)
            .verified_cache(Some((cold_count as u64 * 4, Duration::from_secs(600))))
            .build()
            .await
            .unwrap();
        let warm = Verifier::builder(&issuer, AUD).build().await.unwrap();

        let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
        for chunk in headers.chunks(cold_count.div_ceil(rounds)) {
            // (a) raw signature checks of the same tokens.
            a.push(
                rate(slice, async |n| {
                    let (input, sig) = &split[n % split.len()];
                    raw.verify(black_box(input), black_box(sig)).unwrap();
                })
                .await,
            );
            // (b) every call verifies: parse, signature, claims.
            b.push(extractor_rate(&uncached, &headers[..64], slice).await);
            // (c) cache on, every call a miss: the same plus hashing and inserting.
            c.push(one_pass_rate(&cold, chunk).await);
            // (d) cache on, one token: hits.
            d.push(extractor_rate(&warm, &headers[..1], slice / 4).await);
        }
        let (a, b, c, d) = (median(a), median(b), median(c), median(d));

        println!("one thread, RSA-2048, per CPU-second, medians of {rounds} interleaved rounds (indicative)");
        println!("(a) raw RS256 verify (josekit):                   {a:>10.0} /s");
        println!(
            "(b) extractor, no verified cache:                 {b:>10.0} /s  ({:.1} % of a)",
            100.0 * b / a
        );
        println!(
            "(c) extractor, verified cache, distinct tokens:   {c:>10.0} /s  ({:.1} % of a)",
            100.0 * c / a
        );
        println!(
            "(d) extractor, verified cache, same token (warm): {d:>10.0} /s  ({:.1}x a)",
            d / a
        );
    });
}
