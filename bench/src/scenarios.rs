//! The HTTP scenarios: what each sends, what it needs first (a token, a refresh chain per
//! connection, confidential client credentials), its target from issues 2 and 3, and how
//! its figures are printed.

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::conn::{Conn, RequestSpec};
use crate::hash::PASSWORD_TARGET_SHARE;
use crate::load::{self, RefreshChain, Window, Work};
use crate::stats::{Goal, Summary};
use crate::target::Target;
use crate::{LoadArgs, MixedArgs};

/// The token endpoint.
const TOKEN_PATH: &str = "/oauth2/token";

/// The single-side scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Password grant.
    Password,
    /// Chained refresh grants.
    Refresh,
    /// Bearer-authenticated GET of the caller's profile.
    Bearer,
    /// Permission check with a bearer token.
    Check,
    /// Token introspection by a confidential client.
    Introspect,
    /// Client-credentials grant.
    ClientCredentials,
}

impl Kind {
    /// The scenario's name on the command line and in reports.
    fn name(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Refresh => "refresh",
            Self::Bearer => "bearer",
            Self::Check => "check",
            Self::Introspect => "introspect",
            Self::ClientCredentials => "client-credentials",
        }
    }

    /// The target from issues 2 and 3, if the scenario has one.
    fn goal(self, hash_ceiling: Option<f64>) -> Option<Goal> {
        let rate = |min: f64, text: &str| Goal {
            min_rps: Some(min),
            max_p99_ms: None,
            text: text.to_owned(),
        };
        match self {
            Self::Password => hash_ceiling.map(|ceiling| {
                let min = ceiling * PASSWORD_TARGET_SHARE;
                rate(min, &format!("≥ {min:.1}/s (85 % of {ceiling:.1})"))
            }),
            Self::Refresh => Some(rate(2000.0, "≥ 2,000/s")),
            Self::Bearer => None,
            Self::Check => Some(Goal {
                min_rps: Some(40_000.0),
                max_p99_ms: Some(5.0),
                text: "≥ 40,000/s, p99 ≤ 5 ms".to_owned(),
            }),
            Self::Introspect => Some(rate(20_000.0, "≥ 20,000/s")),
            Self::ClientCredentials => Some(rate(2500.0, "≥ 2,500/s")),
        }
    }
}

/// Runs one single-side scenario and prints its figures.
pub(crate) async fn run(args: &LoadArgs, kind: Kind) -> Result<(), String> {
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if matches!(kind, Kind::Introspect | Kind::ClientCredentials) {
        confidential(args, kind)?;
    }
    let target = Target::resolve(&args.url).await?;
    let workers = prepare(args, kind, &target).await?;
    let window = Window::starting_now(args.warmup, args.duration);
    let result = load::run_closed(workers, window).await?;
    let summary = result.recorder.summarize(window.measured());
    let goal = kind.goal(args.hash_ceiling);
    let mut human = summary.human(kind.name(), args.connections);
    if kind == Kind::Refresh {
        human.push_str(&format!("; chains restarted {}", result.restarts));
    }
    if args.json {
        let mut doc = json!({ "scenario": kind.name(), "result": summary.json(args.connections) });
        if let Some(goal) = &goal {
            doc["target"] = goal.json(&summary);
        }
        if kind == Kind::Refresh {
            doc["chains_restarted"] = json!(result.restarts);
        }
        eprintln!("{human}");
        println!("{doc}");
    } else if args.markdown {
        eprintln!("{human}");
        let conns = args.connections.to_string();
        println!(
            "{}",
            summary.markdown(kind.name(), &args.label, &conns, goal.as_ref())
        );
    } else {
        println!("{human}");
    }
    Ok(())
}

/// Opens the connections and builds each one's work: a refresh chain per connection, or
/// the scenario's fixed request (with a token obtained once).
async fn prepare(
    args: &LoadArgs,
    kind: Kind,
    target: &Target,
) -> Result<Vec<(Conn, Work)>, String> {
    let conns = load::open_connections(target, args.connections, args.timeout).await?;
    let spec = match kind {
        Kind::Refresh => return start_chains(args, target, conns).await,
        Kind::Password => login_spec(args, target)?,
        Kind::Bearer => RequestSpec::get(target, "/api/v1/users/me")?
            .bearer(&access_token(args, target).await?)?,
        Kind::Check => {
            let permission: String =
                form_urlencoded::byte_serialize(args.permission.as_bytes()).collect();
            RequestSpec::get(
                target,
                &format!("/api/v1/authz/check?permission={permission}"),
            )?
            .bearer(&access_token(args, target).await?)?
        }
        Kind::Introspect => {
            let token = access_token(args, target).await?;
            let (id, secret) = confidential(args, kind)?;
            RequestSpec::post_form(target, "/oauth2/introspect", &[("token", &token)])?
                .basic(id, secret)?
        }
        Kind::ClientCredentials => {
            let (id, secret) = confidential(args, kind)?;
            RequestSpec::post_form(target, TOKEN_PATH, &[("grant_type", "client_credentials")])?
                .basic(id, secret)?
        }
    };
    Ok(conns
        .into_iter()
        .map(|conn| (conn, Work::fixed(spec.clone())))
        .collect())
}

/// Starts one refresh chain per connection, all at once, before the clock starts.
async fn start_chains(
    args: &LoadArgs,
    target: &Target,
    conns: Vec<Conn>,
) -> Result<Vec<(Conn, Work)>, String> {
    let login = login_spec(args, target)?;
    let refresh = RequestSpec::post_form(target, TOKEN_PATH, &[])?;
    let mut set = JoinSet::new();
    for mut conn in conns {
        let (login, refresh) = (login.clone(), refresh.clone());
        let client_id = args.public_client_id.clone();
        set.spawn(async move {
            let chain = RefreshChain::start(&mut conn, login, &client_id).await?;
            Ok::<_, String>((conn, Work::refresh(refresh, chain)))
        });
    }
    let mut workers = Vec::with_capacity(args.connections);
    while let Some(joined) = set.join_next().await {
        workers.push(joined.map_err(|e| format!("setup task: {e}"))??);
    }
    Ok(workers)
}

/// The password grant of `--user` through the public client.
fn login_spec(args: &LoadArgs, target: &Target) -> Result<RequestSpec, String> {
    RequestSpec::post_form(
        target,
        TOKEN_PATH,
        &[
            ("grant_type", "password"),
            ("username", &args.user),
            ("password", &args.password),
            ("client_id", &args.public_client_id),
        ],
    )
}

/// `--token`, or an access token from one password grant.
async fn access_token(args: &LoadArgs, target: &Target) -> Result<String, String> {
    if let Some(token) = &args.token {
        return Ok(token.clone());
    }
    let mut conn = Conn::new(target.addr, args.timeout);
    let tokens = load::grant_tokens(&mut conn, &login_spec(args, target)?).await?;
    Ok(tokens.access)
}

/// The confidential client's credentials, required by `kind`.
fn confidential(args: &LoadArgs, kind: Kind) -> Result<(&str, &str), String> {
    match (&args.client_id, &args.client_secret) {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => Err(format!(
            "{} needs --client-id and --client-secret of a confidential client",
            kind.name()
        )),
    }
}

/// Runs `bearer-under-password-load`: closed-loop password grants on most connections,
/// bearer GETs at a fixed total rate on `--probe-connections`; reports both sides. The
/// bearer side's p99 is the figure that matters (issue 2: ≤ 10 ms).
pub(crate) async fn run_mixed(args: &MixedArgs) -> Result<(), String> {
    let load = &args.load;
    if args.probe_connections == 0 || args.probe_connections >= load.connections {
        return Err("--probe-connections must be at least 1 and below --connections".into());
    }
    if !args.probe_rate.is_finite() || args.probe_rate <= 0.0 {
        return Err("--probe-rate must be positive".into());
    }
    let target = Target::resolve(&load.url).await?;
    let grinders = load.connections - args.probe_connections;
    let bearer = RequestSpec::get(&target, "/api/v1/users/me")?
        .bearer(&access_token(load, &target).await?)?;
    let password = login_spec(load, &target)?;
    let conns = load::open_connections(&target, grinders, load.timeout).await?;
    let probes = load::open_connections(&target, args.probe_connections, load.timeout).await?;
    let workers = conns
        .into_iter()
        .map(|c| (c, Work::fixed(password.clone())))
        .collect();

    let window = Window::starting_now(load.warmup, load.duration);
    let period =
        std::time::Duration::from_secs_f64(args.probe_connections as f64 / args.probe_rate);
    let mut probe_set = JoinSet::new();
    for (i, conn) in probes.into_iter().enumerate() {
        let first = Instant::now() + period.mul_f64(i as f64 / args.probe_connections as f64);
        probe_set.spawn(load::open_loop(conn, bearer.clone(), window, first, period));
    }
    let password_side = load::run_closed(workers, window).await?;
    let mut probe_recorder = crate::stats::Recorder::default();
    while let Some(joined) = probe_set.join_next().await {
        probe_recorder.merge(joined.map_err(|e| format!("probe task: {e}"))?);
    }
    let grants = password_side.recorder.summarize(window.measured());
    let gets = probe_recorder.summarize(window.measured());
    report_mixed(args, grinders, &grants, &gets);
    Ok(())
}

/// Prints both sides of `bearer-under-password-load`.
fn report_mixed(args: &MixedArgs, grinders: usize, grants: &Summary, gets: &Summary) {
    let load = &args.load;
    let goal = Goal {
        min_rps: None,
        max_p99_ms: Some(10.0),
        text: "p99 ≤ 10 ms".to_owned(),
    };
    let password_goal = Kind::Password.goal(load.hash_ceiling);
    let human = format!(
        "{}\n{} (target p99 ≤ 10 ms: {})",
        grants.human("bearer-under-password-load: password side", grinders),
        gets.human(
            &format!(
                "bearer-under-password-load: bearer side at {:.0} req/s",
                args.probe_rate
            ),
            args.probe_connections
        ),
        goal.verdict(gets),
    );
    if load.json {
        let mut password = grants.json(grinders);
        if let Some(g) = &password_goal {
            password["target"] = g.json(grants);
        }
        let mut bearer = gets.json(args.probe_connections);
        bearer["rate_per_s"] = json!(args.probe_rate);
        bearer["target"] = goal.json(gets);
        let doc = json!({
            "scenario": "bearer-under-password-load",
            "password": password,
            "bearer": bearer,
        });
        eprintln!("{human}");
        println!("{doc}");
    } else if load.markdown {
        eprintln!("{human}");
        let name = "bearer-under-password-load: password side";
        println!(
            "{}",
            grants.markdown(
                name,
                &load.label,
                &grinders.to_string(),
                password_goal.as_ref()
            )
        );
        let name = format!(
            "bearer-under-password-load: **bearer side** ({:.0} req/s)",
            args.probe_rate
        );
        let conns = args.probe_connections.to_string();
        println!("{}", gets.markdown(&name, &load.label, &conns, Some(&goal)));
    } else {
        println!("{human}");
    }
}
