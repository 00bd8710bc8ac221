//! The load itself: prepared connections, a shared time window (warm-up, then the
//! measured part), closed-loop workers that send back to back, and open-loop probes that
//! send at a fixed rate. An answer counts when it completes inside the measured part,
//! whenever its request started, so the rate is not biased by requests in flight at the
//! window's edges.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::conn::{Conn, Failure, RequestSpec};
use crate::stats::Recorder;
use crate::target::Target;

/// The shared time window of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Start of the measured part (end of the warm-up).
    pub(crate) measure_from: Instant,
    /// End of the run: no request is sent after it.
    pub(crate) until: Instant,
}

impl Window {
    /// A window starting now.
    pub(crate) fn starting_now(warmup: Duration, duration: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        Self {
            measure_from,
            until: measure_from + duration,
        }
    }

    /// Length of the measured part.
    pub(crate) fn measured(&self) -> Duration {
        self.until - self.measure_from
    }

    /// True when an answer completed at `done` is part of the measurement.
    fn counts(&self, done: Instant) -> bool {
        done >= self.measure_from && done <= self.until
    }
}

/// What a closed-loop worker sends: the same request again and again, or, with a
/// refresh chain, that request's form replaced by the chain's next refresh grant.
#[derive(Debug)]
pub(crate) struct Work {
    /// The request (for a chain: the token endpoint, with its body replaced each time).
    request: RequestSpec,
    /// The refresh chain, if the worker runs one.
    chain: Option<RefreshChain>,
}

impl Work {
    /// The same request again and again.
    pub(crate) fn fixed(request: RequestSpec) -> Self {
        Self {
            request,
            chain: None,
        }
    }

    /// Chained refresh grants sent as `request` with the chain's form.
    pub(crate) fn refresh(request: RequestSpec, chain: RefreshChain) -> Self {
        Self {
            request,
            chain: Some(chain),
        }
    }

    /// The next request to send.
    fn next_request(&self) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
        match &self.chain {
            Some(chain) => self
                .request
                .with_form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &chain.token),
                    ("client_id", &chain.client_id),
                ])
                .build(),
            None => self.request.build(),
        }
    }
}

/// One connection's refresh-token chain (RFC 6749 §6): the newest token of its own
/// session only, since presenting a used one ends the session (RFC 9700 §4.14).
#[derive(Debug)]
pub(crate) struct RefreshChain {
    /// The password grant that starts (or restarts) the chain.
    login: RequestSpec,
    /// The public client named in every refresh grant.
    client_id: String,
    /// The newest refresh token of the chain.
    token: String,
    /// How often the chain had to start again with a password grant after a failure.
    pub(crate) restarts: u64,
}

impl RefreshChain {
    /// Starts a chain on `conn` with a password grant.
    pub(crate) async fn start(
        conn: &mut Conn,
        login: RequestSpec,
        client_id: &str,
    ) -> Result<Self, String> {
        let token = grant_tokens(conn, &login).await?.refresh;
        Ok(Self {
            login,
            client_id: client_id.to_owned(),
            token,
            restarts: 0,
        })
    }

    /// After a failed refresh the token may or may not have been rotated, so presenting it
    /// again could end the session as a reuse: start a new chain instead (not measured).
    async fn restart(&mut self, conn: &mut Conn, window: &Window) {
        self.restarts += 1;
        while Instant::now() < window.until {
            match grant_tokens(conn, &self.login).await {
                Ok(tokens) => {
                    self.token = tokens.refresh;
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// The tokens of a successful grant.
#[derive(Debug)]
pub(crate) struct Tokens {
    /// The access token.
    pub(crate) access: String,
    /// The refresh token (empty when the grant issued none).
    pub(crate) refresh: String,
}

/// Sends a token request and reads the tokens from a 200 answer; anything else is an
/// error naming the status and the start of the body (an RFC 6749 error, no secret).
pub(crate) async fn grant_tokens(conn: &mut Conn, request: &RequestSpec) -> Result<Tokens, String> {
    let reply = conn
        .send(request.build())
        .await
        .map_err(|e| format!("token request: {e}"))?;
    if !reply.status.is_success() {
        let body = String::from_utf8_lossy(&reply.body);
        let body: String = body.chars().take(300).collect();
        return Err(format!("token request answered {}: {body}", reply.status));
    }
    let doc: serde_json::Value = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("token response is not JSON: {e}"))?;
    let field = |name: &str| doc.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(Tokens {
        access: field("access_token").ok_or("token response without access_token")?,
        refresh: field("refresh_token").unwrap_or_default(),
    })
}

/// Opens `n` connections at once.
pub(crate) async fn open_connections(
    target: &Target,
    n: usize,
    timeout: Duration,
) -> Result<Vec<Conn>, String> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let addr = target.addr;
        set.spawn(async move {
            let mut conn = Conn::new(addr, timeout);
            conn.open().await.map(|()| conn)
        });
    }
    let mut conns = Vec::with_capacity(n);
    while let Some(joined) = set.join_next().await {
        let conn = joined
            .map_err(|e| format!("connection task: {e}"))?
            .map_err(|e| format!("cannot open a connection to {}: {e}", target.addr))?;
        conns.push(conn);
    }
    Ok(conns)
}

/// What a closed-loop worker hands back.
#[derive(Debug)]
pub(crate) struct WorkerResult {
    /// Its measurements.
    pub(crate) recorder: Recorder,
    /// Refresh chains restarted (0 for fixed requests).
    pub(crate) restarts: u64,
}

/// Sends back to back on one connection until the window ends.
pub(crate) async fn closed_loop(mut conn: Conn, mut work: Work, window: Window) -> WorkerResult {
    let mut recorder = Recorder::default();
    while Instant::now() < window.until {
        let request = work.next_request();
        let started = Instant::now();
        let result = conn.send(request).await;
        let done = Instant::now();
        let counts = window.counts(done);
        match result {
            Ok(reply) if reply.status.is_success() => {
                if counts {
                    recorder.ok(done - started);
                }
                if let Some(chain) = &mut work.chain {
                    match rotated_token(&reply.body) {
                        Some(token) => chain.token = token,
                        None => chain.restart(&mut conn, &window).await,
                    }
                }
            }
            Ok(reply) => {
                if counts {
                    recorder.status(reply.status);
                }
                if let Some(chain) = &mut work.chain {
                    chain.restart(&mut conn, &window).await;
                }
            }
            Err(failure) => {
                if counts {
                    recorder.failure(&failure);
                }
                back_off(&failure).await;
                if let Some(chain) = &mut work.chain {
                    chain.restart(&mut conn, &window).await;
                }
            }
        }
    }
    let restarts = work.chain.map_or(0, |chain| chain.restarts);
    WorkerResult { recorder, restarts }
}

/// The new refresh token of a successful refresh answer.
fn rotated_token(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    doc.get("refresh_token")?.as_str().map(str::to_owned)
}

/// A short pause after a transport failure, so that a server that went away is not
/// hammered with connection attempts.
async fn back_off(failure: &Failure) {
    if matches!(failure, Failure::Connect(_)) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `spec` every `period` on one connection, from `first` until the window ends.
/// Latency is measured from the actual send to the complete answer; a tick missed
/// because the previous answer was late is sent at once (the rate is kept).
pub(crate) async fn open_loop(
    mut conn: Conn,
    spec: RequestSpec,
    window: Window,
    first: Instant,
    period: Duration,
) -> Recorder {
    let mut recorder = Recorder::default();
    let mut ticks = tokio::time::interval_at(first, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        ticks.tick().await;
        let started = Instant::now();
        if started >= window.until {
            break;
        }
        let result = conn.send(spec.build()).await;
        let done = Instant::now();
        if !window.counts(done) {
            continue;
        }
        match result {
            Ok(reply) if reply.status.is_success() => recorder.ok(done - started),
            Ok(reply) => recorder.status(reply.status),
            Err(failure) => {
                recorder.failure(&failure);
                back_off(&failure).await;
            }
        }
    }
    recorder
}

/// Runs closed-loop workers, one per `(connection, work)`, and merges what they saw.
pub(crate) async fn run_closed(
    workers: Vec<(Conn, Work)>,
    window: Window,
) -> Result<WorkerResult, String> {
    let mut set = JoinSet::new();
    for (conn, work) in workers {
        set.spawn(closed_loop(conn, work, window));
    }
    let mut total = WorkerResult {
        recorder: Recorder::default(),
        restarts: 0,
    };
    while let Some(joined) = set.join_next().await {
        let result = joined.map_err(|e| format!("worker task: {e}"))?;
        total.recorder.merge(result.recorder);
        total.restarts += result.restarts;
    }
    Ok(total)
}
