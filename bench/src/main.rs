//! `usher-bench`: a lean HTTP/1.1 load generator for usher (see `bench/README.md`).
//!
//! Each scenario opens N keep-alive connections (hyper's `client::conn::http1`), sends
//! requests back to back on each for a duration after a warm-up, records the latency of
//! every successful answer and reports requests/s, errors by status and p50/p90/p99/max
//! latency. The `hash` scenario times usher's argon2id cost instead. Only loopback
//! targets are accepted.
#![warn(clippy::missing_docs_in_private_items)]

mod conn;
mod hash;
mod load;
mod scenarios;
mod stats;
mod target;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Command line of `usher-bench`.
#[derive(Debug, Parser)]
#[command(
    name = "usher-bench",
    version,
    about = "HTTP/1.1 load generator for usher"
)]
struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    command: Command,
}

/// Scenarios (and one helper).
#[derive(Debug, Subcommand)]
enum Command {
    /// POST /oauth2/token, grant_type=password, back to back on every connection.
    Password(LoadArgs),
    /// Password grant once per connection, then chained refresh grants (newest token).
    Refresh(LoadArgs),
    /// GET /api/v1/users/me with a bearer token obtained once.
    Bearer(LoadArgs),
    /// Password grants on most connections; bearer GETs at a fixed rate on a few.
    BearerUnderPasswordLoad(MixedArgs),
    /// GET /api/v1/authz/check?permission=… with a bearer token.
    Check(LoadArgs),
    /// POST /oauth2/introspect with HTTP Basic client credentials.
    Introspect(LoadArgs),
    /// POST /oauth2/token, grant_type=client_credentials, with HTTP Basic.
    ClientCredentials(LoadArgs),
    /// Times argon2id hashes on one thread; prints the password-grant ceiling.
    Hash(HashArgs),
    /// Prints a free TCP port on 127.0.0.1 (for bench/run.sh).
    FreePort,
}

/// Options of the HTTP scenarios.
#[derive(Debug, Clone, Args)]
struct LoadArgs {
    /// Base URL of usher (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Keep-alive connections, each sending back to back.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured duration (`10s`, `500ms`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before the measurement (requests sent, not recorded).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Login for the password grant.
    #[arg(long, default_value = "bench")]
    user: String,
    /// Password for the password grant.
    #[arg(long, default_value = "bench-password")]
    password: String,
    /// Public client of the password and refresh grants.
    #[arg(long, default_value = "cinema-web")]
    public_client_id: String,
    /// Confidential client (introspect, client-credentials).
    #[arg(long)]
    client_id: Option<String>,
    /// Secret of the confidential client.
    #[arg(long)]
    client_secret: Option<String>,
    /// Access token to use instead of obtaining one with the password grant.
    #[arg(long)]
    token: Option<String>,
    /// Permission asked by the check scenario.
    #[arg(long, default_value = "films:watch_recent")]
    permission: String,
    /// Runtime worker threads of the generator (it shares the cores with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Longest wait for one answer.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Password-grant ceiling from the hash scenario (grants/s): enables its target.
    #[arg(long)]
    hash_ceiling: Option<f64>,
    /// Backend label for the Markdown row.
    #[arg(long, default_value = "-")]
    label: String,
    /// Print the figures as one JSON object on stdout (the human line goes to stderr).
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print Markdown table rows on stdout (the human line goes to stderr).
    #[arg(long)]
    markdown: bool,
}

/// Options of `bearer-under-password-load`.
#[derive(Debug, Clone, Args)]
struct MixedArgs {
    /// Shared options; `--connections` counts both sides.
    #[command(flatten)]
    load: LoadArgs,
    /// Connections that send the bearer GETs (taken from `--connections`).
    #[arg(long, default_value_t = 4)]
    probe_connections: usize,
    /// Bearer GETs per second, all probe connections together.
    #[arg(long, default_value_t = 200.0)]
    probe_rate: f64,
}

/// Options of the `hash` scenario (defaults are usher's).
#[derive(Debug, Clone, Args)]
struct HashArgs {
    /// argon2id memory cost in KiB (USHER_ARGON2_MEMORY_KIB).
    #[arg(long, default_value_t = 19456)]
    memory_kib: u32,
    /// argon2id passes (USHER_ARGON2_ITERATIONS).
    #[arg(long, default_value_t = 2)]
    iterations: u32,
    /// argon2id lanes (USHER_ARGON2_PARALLELISM).
    #[arg(long, default_value_t = 1)]
    parallelism: u32,
    /// Timed hashes; the median is reported.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Print one JSON object on stdout (the human line goes to stderr).
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print a Markdown bullet on stdout (the human line goes to stderr).
    #[arg(long)]
    markdown: bool,
}

/// Parses `10`, `10s`, `1.5s`, `500ms` or `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration like 10s, 500ms or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?}: out of range"))
}

/// Runs the chosen scenario; a failure prints one line and exits with status 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(args) => run_hash(&args),
        Command::FreePort => free_port(),
        Command::Password(args) => runtime(&args, scenarios::Kind::Password),
        Command::Refresh(args) => runtime(&args, scenarios::Kind::Refresh),
        Command::Bearer(args) => runtime(&args, scenarios::Kind::Bearer),
        Command::Check(args) => runtime(&args, scenarios::Kind::Check),
        Command::Introspect(args) => runtime(&args, scenarios::Kind::Introspect),
        Command::ClientCredentials(args) => runtime(&args, scenarios::Kind::ClientCredentials),
        Command::BearerUnderPasswordLoad(args) => {
            tokio_runtime(args.load.threads).and_then(|rt| rt.block_on(scenarios::run_mixed(&args)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("usher-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a single-side scenario on its own runtime.
fn runtime(args: &LoadArgs, kind: scenarios::Kind) -> Result<(), String> {
    tokio_runtime(args.threads)?.block_on(scenarios::run(args, kind))
}

/// A multi-thread runtime with `threads` workers (the generator's share of the cores).
fn tokio_runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// The `hash` scenario.
fn run_hash(args: &HashArgs) -> Result<(), String> {
    let cost = hash::Cost {
        memory_kib: args.memory_kib,
        iterations: args.iterations,
        parallelism: args.parallelism,
    };
    let report = hash::measure(cost, args.samples)?;
    if args.json {
        eprintln!("{}", report.human());
        println!("{}", report.json());
    } else if args.markdown {
        eprintln!("{}", report.human());
        println!("{}", report.markdown());
    } else {
        println!("{}", report.human());
    }
    Ok(())
}

/// Prints a port that was free on 127.0.0.1 a moment ago.
fn free_port() -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?
        .port();
    println!("{port}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The clap definition is consistent.
    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    /// Durations accept seconds by default and ms, s, m units.
    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
