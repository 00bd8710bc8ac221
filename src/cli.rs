//! The command line: `serve` (default), `migrate`, `create-superuser`, `keys rotate`,
//! `healthcheck`. Each command returns a one-line error; `main` prints it and exits
//! non-zero.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::app_state::{self, AppState};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::keystore::generate_key_file;
use crate::service::accounts;
use crate::service::passwords::{PasswordHasher, check_password};
use crate::store::UserRecord;

/// usher, the cinema's OAuth 2.0 / OpenID Connect provider.
#[derive(Debug, Parser)]
#[command(name = "usher", version, about)]
pub struct Cli {
    /// A TOML configuration file, layered under the USHER_* environment variables.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (migrates the database first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create a superuser, or make an existing login a superuser and set its password.
    CreateSuperuser {
        /// The login.
        #[arg(long)]
        login: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Manage signing keys.
    Keys {
        /// Key action.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Exit 0 when the server on the configured bind address answers /healthz.
    Healthcheck,
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Generate a new RSA-2048 key: published by every instance within a minute (the key
    /// directory is re-read every minute), signing after the activation delay.
    Rotate,
}

/// A command failure: one line for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl CliError {
    fn from_display(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// Runs a command with a loaded configuration.
pub async fn run(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let store = app_state::connect_store(&config)
                .await
                .map_err(|e| CliError(format!("database: {e}")))?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::CreateSuperuser {
            login,
            password_stdin,
        } => create_superuser(config, &login, password_stdin).await,
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let (path, kid) =
                generate_key_file(&config.keys_dir).map_err(CliError::from_display)?;
            println!(
                "new key {kid} ({}): published within a minute, signs after {}",
                path.display(),
                humantime::format_duration(config.key_activation_delay)
            );
            Ok(())
        }
        Command::Healthcheck => healthcheck(&config),
    }
}

async fn serve(config: Config) -> Result<(), CliError> {
    let bind = config.bind;
    let app = AppState::build(config, Arc::new(SystemClock))
        .await
        .map_err(CliError::from_display)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| CliError(format!("cannot listen on {bind}: {e}")))?;
    crate::spawn_background(&app);
    tracing::info!(
        %bind,
        issuer = %app.config.issuer,
        store = app.store.backend(),
        state = app.state.backend(),
        kid = %app.keys.current().signing_key().kid,
        "usher listening"
    );
    crate::serve(app, listener, shutdown_signal())
        .await
        .map_err(|e| CliError(format!("server: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

fn read_password(from_stdin: bool) -> Result<SecretString, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError(format!("cannot read the password: {e}")))?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        // Drain the rest so a multi-line input is not silently accepted.
        let mut rest = String::new();
        let _ = std::io::stdin().read_to_string(&mut rest);
        return Ok(SecretString::from(password));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError(
            "no terminal to ask for the password: use --password-stdin".into(),
        ));
    }
    let first = rpassword::prompt_password("Password: ")
        .map_err(|e| CliError(format!("cannot read the password: {e}")))?;
    let second = rpassword::prompt_password("Repeat password: ")
        .map_err(|e| CliError(format!("cannot read the password: {e}")))?;
    if first != second {
        return Err(CliError("the passwords do not match".into()));
    }
    Ok(SecretString::from(first))
}

async fn create_superuser(config: Config, login: &str, stdin: bool) -> Result<(), CliError> {
    if let Some(e) = accounts::check_login("login", login) {
        return Err(CliError(format!("invalid login: {}", e.message)));
    }
    let password = read_password(stdin)?;
    if let Some(e) = check_password("password", password.expose_secret()) {
        return Err(CliError(format!("weak password: {}", e.message)));
    }
    let store = app_state::connect_store(&config)
        .await
        .map_err(|e| CliError(format!("database: {e}")))?;
    let hasher = PasswordHasher::new(&config).map_err(CliError::from_display)?;
    let password_hash = hasher
        .hash(&password)
        .await
        .map_err(CliError::from_display)?;
    let now = SystemClock.now();
    let user = UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        login: login.to_owned(),
        email: None,
        password_hash,
        superuser: true,
        blocked: false,
        created_at: now,
        updated_at: now,
        last_login_at: None,
    };
    let (stored, created, changes) = store
        .upsert_superuser(&user, now)
        .await
        .map_err(|e| CliError(format!("database: {e}")))?;
    publish(&config, &changes).await;
    if created {
        println!("superuser {} created (id {})", stored.login, stored.id);
    } else {
        let ended = changes
            .iter()
            .filter(|c| c.kind == crate::service::feed::SESSION_ENDED)
            .count();
        println!(
            "{} is now a superuser; password set, {ended} session(s) ended",
            stored.login,
        );
    }
    Ok(())
}

/// Tells running instances of changes this command committed: through Redis at once
/// when configured; otherwise (or if Redis fails) they read them from the database at
/// their next periodic sync.
async fn publish(config: &Config, changes: &[crate::store::ChangeRecord]) {
    if changes.is_empty() || config.redis_url.is_none() {
        return;
    }
    let sent = match app_state::connect_state(config).await {
        Ok(state) => match serde_json::to_string(changes) {
            Ok(payload) => state.publish(&payload).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        eprintln!(
            "warning: the change is in the database; running instances see it at their next sync (redis: {e})"
        );
    }
}

fn healthcheck(config: &Config) -> Result<(), CliError> {
    let mut addr = config.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| CliError(format!("unhealthy: cannot connect to {addr}: {e}")))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(CliError::from_display)?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(CliError::from_display)?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| CliError(format!("unhealthy: {e}")))?;
    if head.starts_with(b"HTTP/1.1 200") {
        println!("healthy");
        Ok(())
    } else {
        Err(CliError(format!(
            "unhealthy: {}",
            String::from_utf8_lossy(&head)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The clap definition is consistent (clap's own debug assertions).
    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
