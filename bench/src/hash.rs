//! The `hash` scenario: no HTTP. Times argon2id hashes of usher's cost on one thread and
//! derives the machine's ceiling for the password grant (one hash per grant): cores ÷
//! hash time. Issue 2's target for the password grant is 85 % of that ceiling.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use serde_json::{Value, json};

/// Share of the ceiling the password grant must reach (issue 2).
pub(crate) const PASSWORD_TARGET_SHARE: f64 = 0.85;

/// The argon2id cost, as usher's `USHER_ARGON2_*` keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cost {
    /// Memory in KiB.
    pub(crate) memory_kib: u32,
    /// Passes.
    pub(crate) iterations: u32,
    /// Lanes.
    pub(crate) parallelism: u32,
}

/// The measured hash time and what follows from it.
#[derive(Debug, Clone)]
pub(crate) struct HashReport {
    /// The cost measured.
    pub(crate) cost: Cost,
    /// Timed hashes (after one untimed).
    pub(crate) samples: usize,
    /// Median time of one hash.
    pub(crate) median: Duration,
    /// Fastest hash.
    pub(crate) min: Duration,
    /// Slowest hash.
    pub(crate) max: Duration,
    /// Cores of this machine (`available_parallelism`).
    pub(crate) cores: usize,
    /// Hashes per second measured with one thread per core hashing at once (shared
    /// caches and memory bandwidth make it lower than the ceiling).
    pub(crate) all_cores_per_s: f64,
}

impl HashReport {
    /// Hashes per second on one core.
    pub(crate) fn per_core(&self) -> f64 {
        1.0 / self.median.as_secs_f64()
    }

    /// Password grants per second the machine's cores allow: cores ÷ hash time.
    pub(crate) fn ceiling(&self) -> f64 {
        self.cores as f64 * self.per_core()
    }

    /// One human-readable line.
    pub(crate) fn human(&self) -> String {
        format!(
            "hash: argon2id m={} KiB t={} p={}: median {:.1} ms (min {:.1}, max {:.1}, {} samples, \
             one thread) → {:.1} hashes/s per core; {} cores → ceiling {:.1} password grants/s, \
             target (85 %) {:.1}/s; all cores hashing at once: {:.1} hashes/s",
            self.cost.memory_kib,
            self.cost.iterations,
            self.cost.parallelism,
            ms(self.median),
            ms(self.min),
            ms(self.max),
            self.samples,
            self.per_core(),
            self.cores,
            self.ceiling(),
            self.ceiling() * PASSWORD_TARGET_SHARE,
            self.all_cores_per_s,
        )
    }

    /// The JSON form.
    pub(crate) fn json(&self) -> Value {
        json!({
            "scenario": "hash",
            "memory_kib": self.cost.memory_kib,
            "iterations": self.cost.iterations,
            "parallelism": self.cost.parallelism,
            "samples": self.samples,
            "median_ms": ms(self.median),
            "min_ms": ms(self.min),
            "max_ms": ms(self.max),
            "hashes_per_s_per_core": self.per_core(),
            "cores": self.cores,
            "ceiling_per_s": self.ceiling(),
            "password_target_per_s": self.ceiling() * PASSWORD_TARGET_SHARE,
            "all_cores_per_s": self.all_cores_per_s,
        })
    }

    /// A Markdown bullet for the report's machine section.
    pub(crate) fn markdown(&self) -> String {
        format!(
            "- argon2id hash (m={} KiB, t={}, p={}), one thread: median {:.1} ms over {} samples \
             → {:.1} hashes/s per core; {} cores → ceiling **{:.1} password grants/s**, target \
             (85 %) **{:.1}/s**; all cores hashing at once: {:.1} hashes/s",
            self.cost.memory_kib,
            self.cost.iterations,
            self.cost.parallelism,
            ms(self.median),
            self.samples,
            self.per_core(),
            self.cores,
            self.ceiling(),
            self.ceiling() * PASSWORD_TARGET_SHARE,
            self.all_cores_per_s,
        )
    }
}

/// Milliseconds as a float.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times `samples` hashes (after one untimed warm-up) on the calling thread, then
/// `samples` hashes on each core at once. Each hash allocates its own memory, as usher's
/// hasher does.
pub(crate) fn measure(cost: Cost, samples: usize) -> Result<HashReport, String> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| format!("argon2 parameters: {e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let samples = samples.max(1);
    hash_once(&argon, 0)?;
    let mut times = (1..=samples)
        .map(|i| hash_once(&argon, i))
        .collect::<Result<Vec<_>, _>>()?;
    times.sort_unstable();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|_| scope.spawn(|| (0..samples).try_for_each(|i| hash_once(&argon, i).map(drop))))
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "hashing thread panicked".to_owned())?)
    })?;
    let all_cores_per_s = (cores * samples) as f64 / started.elapsed().as_secs_f64();
    Ok(HashReport {
        cost,
        samples: times.len(),
        median: times[times.len() / 2],
        min: times[0],
        max: times[times.len() - 1],
        cores,
        all_cores_per_s,
    })
}

/// Times one hash of a password derived from `i`.
fn hash_once(argon: &Argon2<'_>, i: usize) -> Result<Duration, String> {
    let password = format!("bench-password-{i}");
    let mut out = [0u8; 32];
    let started = Instant::now();
    argon
        .hash_password_into(password.as_bytes(), b"usher-bench-salt", &mut out)
        .map_err(|e| format!("argon2: {e}"))?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny cost measures and derives the ceiling from the median.
    #[test]
    fn measures_a_small_cost() {
        let cost = Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let report = measure(cost, 3).unwrap();
        assert_eq!(report.samples, 3);
        assert!(report.min <= report.median && report.median <= report.max);
        let expected = report.cores as f64 / report.median.as_secs_f64();
        assert!((report.ceiling() - expected).abs() < 1e-6);
    }
}
