//! Password hashing with argon2id on a fixed pool of `hash_pool_size` OS threads, never
//! on the async workers. At most `hash_queue_size` jobs wait for a thread; beyond that
//! the caller gets `Unavailable` (503, `Retry-After: 1`) instead of an unbounded queue.
//!
//! Each thread keeps one argon2 memory buffer while busy (no 19 MiB allocation and
//! zeroing per hash) and frees it after [`IDLE_RELEASE`] without work. The buffer is
//! reserved above glibc's largest mmap threshold (32 MiB), so it is always mapped on
//! its own and really returned to the system when freed: an idle server goes back to
//! its small footprint. Also the password policy.

use flume::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::time::Duration;

use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use super::{FieldError, ServiceError};
use crate::config::Config;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD: usize = 8;
/// Longest accepted password, in characters.
pub const MAX_PASSWORD: usize = 256;
/// A hashing thread frees its buffer after this long without work.
pub const IDLE_RELEASE: Duration = Duration::from_secs(5);
/// Buffers are reserved at least this large (blocks of 1 KiB) to be mmapped by glibc.
const MIN_RESERVE_BLOCKS: usize = 33 * 1024;
/// Salt length (bytes) and hash length (bytes) of new hashes.
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Checks the password policy; `field` names the member in the error. A password
/// holding a control character is refused as every other text is (the token endpoint
/// could never accept it).
pub fn check_password(field: &str, password: &str) -> Option<FieldError> {
    let n = password.chars().count();
    if super::has_forbidden_control(password) {
        Some(super::control_character_error(field))
    } else if n < MIN_PASSWORD {
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

/// What a hashing thread is asked to do.
enum Work {
    /// Hash a new password; answer the PHC string.
    Hash(SecretString),
    /// Check a password against a PHC string.
    Verify(SecretString, String),
}

/// The answer of a hashing thread.
enum Answer {
    Hashed(Result<String, String>),
    Verified(bool),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Answer>,
}

/// The argon2id pool.
pub struct PasswordHasher {
    jobs: Sender<Job>,
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

fn busy() -> ServiceError {
    ServiceError::Unavailable {
        detail: "too many logins at once; retry shortly",
        retry_after: 1,
        internal: "password hashing queue full".into(),
    }
}

/// Runs argon2 in `buffer`, growing it (reserved large enough to be mmapped) if needed.
fn argon2_into(
    params: Params,
    buffer: &mut Vec<Block>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    let needed = params.block_count();
    if buffer.len() < needed {
        *buffer = Vec::with_capacity(needed.max(MIN_RESERVE_BLOCKS));
        buffer.resize(needed, Block::default());
    }
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password, salt, out, &mut buffer[..])
        .map_err(|e| e.to_string())
}

fn hash_new(params: &Params, buffer: &mut Vec<Block>, password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt);
    let mut out = [0u8; HASH_LEN];
    argon2_into(params.clone(), buffer, password, &salt, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params
            .try_into()
            .map_err(|e: argon2::password_hash::Error| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

fn verify(buffer: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if argon2_into(params, buffer, password, salt.as_ref(), &mut out).is_err() {
        return false;
    }
    crate::token::constant_time_eq(&out, expected.as_bytes())
}

/// One hashing thread: takes jobs until the pool is dropped.
fn worker(params: Params, jobs: Receiver<Job>) {
    let mut buffer: Vec<Block> = Vec::new();
    loop {
        // Every idle thread waits on the queue at once, so each one frees its buffer
        // IDLE_RELEASE after its own last job.
        let job = match jobs.recv_timeout(IDLE_RELEASE) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                buffer = Vec::new();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let answer = match job.work {
            Work::Hash(pw) => Answer::Hashed(hash_new(
                &params,
                &mut buffer,
                pw.expose_secret().as_bytes(),
            )),
            Work::Verify(pw, phc) => {
                Answer::Verified(verify(&mut buffer, pw.expose_secret().as_bytes(), &phc))
            }
        };
        let _ = job.reply.send(answer);
    }
}

impl PasswordHasher {
    /// Starts the pool with the configured cost and sizes, and computes the dummy hash
    /// used to spend the same time on unknown logins.
    pub fn new(config: &Config) -> Result<Self, ServiceError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            Some(HASH_LEN),
        )
        .map_err(|e| ServiceError::Internal(format!("argon2 params: {e}")))?;
        let dummy_hash = hash_new(
            &params,
            &mut Vec::new(),
            crate::token::opaque::random_id(16).as_bytes(),
        )
        .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))?;
        let (jobs, rx) = flume::bounded::<Job>(config.hash_queue_size);
        for i in 0..config.hash_pool_size {
            let (params, rx) = (params.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("usher-hash-{i}"))
                .spawn(move || worker(params, rx))
                .map_err(|e| ServiceError::Internal(format!("hashing thread: {e}")))?;
        }
        Ok(Self { jobs, dummy_hash })
    }

    async fn run(&self, work: Work) -> Result<Answer, ServiceError> {
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job { work, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(busy()),
            Err(TrySendError::Disconnected(_)) => {
                return Err(ServiceError::Internal("hashing threads are gone".into()));
            }
        }
        answer
            .await
            .map_err(|_| ServiceError::Internal("hashing thread stopped".into()))
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, ServiceError> {
        match self.run(Work::Hash(password.clone())).await? {
            Answer::Hashed(Ok(phc)) => Ok(phc),
            Answer::Hashed(Err(e)) => Err(ServiceError::Internal(format!("argon2: {e}"))),
            Answer::Verified(_) => Err(ServiceError::Internal("hashing answer mismatch".into())),
        }
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
        match self.run(Work::Verify(password.clone(), phc)).await? {
            Answer::Verified(ok) => Ok(known && ok),
            Answer::Hashed(_) => Err(ServiceError::Internal("hashing answer mismatch".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(pool: usize, queue: usize) -> PasswordHasher {
        let mut c = Config::load_from(None, &[]).unwrap();
        c.argon2_memory_kib = 64;
        c.argon2_iterations = 1;
        c.hash_pool_size = pool;
        c.hash_queue_size = queue;
        PasswordHasher::new(&c).unwrap()
    }

    /// A hash is a standard argon2id PHC string that the RustCrypto verifier accepts; the
    /// right password verifies, a wrong one and the dummy path do not.
    #[tokio::test]
    async fn hash_and_verify() {
        use argon2::password_hash::PasswordVerifier as _;
        let h = hasher(1, 4);
        let pw = SecretString::from("correct horse".to_owned());
        let phc = h.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(h.verify(&pw, Some(&phc)).await.unwrap());
        assert!(
            !h.verify(&SecretString::from("wrong".to_owned()), Some(&phc))
                .await
                .unwrap()
        );
        assert!(!h.verify(&pw, None).await.unwrap());
        assert!(!h.verify(&pw, Some("garbage")).await.unwrap());
        // Hashes made by the RustCrypto hasher (other costs) verify too.
        let other = {
            use argon2::password_hash::PasswordHasher as _;
            let p = Params::new(128, 2, 1, None).unwrap();
            Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
                .hash_password(b"correct horse")
                .unwrap()
                .to_string()
        };
        assert!(h.verify(&pw, Some(&other)).await.unwrap());
    }

    /// With every thread busy and the queue full, the next job is refused at once.
    #[tokio::test]
    async fn full_queue_is_busy() {
        let h = hasher(1, 0);
        let pw = SecretString::from("correct horse".to_owned());
        let results = futures_util::future::join_all((0..8).map(|_| h.hash(&pw))).await;
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(ServiceError::Unavailable { .. })))
        );
    }
}
