//! Password hashing with argon2id on a bounded pool of blocking threads, never on the
//! async workers. At most `hash_pool_size` hashes run at once and at most
//! `hash_queue_size` wait; beyond that the caller gets `Unavailable` (503, Retry-After)
//! instead of an unbounded queue. Also the password policy.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::{FieldError, ServiceError};
use crate::config::Config;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD: usize = 8;
/// Longest accepted password, in characters.
pub const MAX_PASSWORD: usize = 256;

/// Checks the password policy; `field` names the member in the error.
pub fn check_password(field: &str, password: &str) -> Option<FieldError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        Some(FieldError::new(
            field,
            "too_short",
            format!("must be at least {MIN_PASSWORD} characters"),
        ))
    } else if n > MAX_PASSWORD {
        Some(FieldError::new(
            field,
            "too_long",
            format!("must be at most {MAX_PASSWORD} characters"),
        ))
    } else {
        None
    }
}

/// The argon2id pool.
pub struct PasswordHasher {
    argon: Argon2<'static>,
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("running", &self.running.available_permits())
            .finish_non_exhaustive()
    }
}

fn busy() -> ServiceError {
    ServiceError::Unavailable {
        detail: "too many logins at once; retry shortly",
        retry_after: 1,
        internal: "password hashing queue full".into(),
    }
}

impl PasswordHasher {
    /// A pool with the configured cost and sizes. Computes the dummy hash used to spend
    /// the same time on unknown logins.
    pub fn new(config: &Config) -> Result<Self, ServiceError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| ServiceError::Internal(format!("argon2 params: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon
            .hash_password(crate::token::opaque::random_id(16).as_bytes())
            .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))?
            .to_string();
        Ok(Self {
            argon,
            running: Arc::new(Semaphore::new(config.hash_pool_size)),
            admitted: Arc::new(Semaphore::new(config.hash_pool_size + config.hash_queue_size)),
            dummy_hash,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let _admitted = self.admitted.clone().try_acquire_owned().map_err(|_| busy())?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| busy())?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let _running = running;
            job(&argon)
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("hashing task: {e}")))
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, ServiceError> {
        let password = password.clone();
        self.run(move |argon| {
            argon
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
        })
        .await?
    }

    /// Checks `password` against `phc`; with `None` (unknown login) checks against a dummy
    /// hash of the same cost and answers false, so both cases take the same time.
    pub async fn verify(
        &self,
        password: &SecretString,
        phc: Option<&str>,
    ) -> Result<bool, ServiceError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let ok = self
            .run(move |argon| {
                PasswordHash::new(&phc)
                    .map(|parsed| {
                        argon
                            .verify_password(password.expose_secret().as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && ok)
    }
}
