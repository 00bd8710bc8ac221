//! Time source. Every layer reads "now" through [`Clock`] so tests can move time
//! without sleeping. Calls nothing.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in whole Unix seconds.
pub trait Clock: Send + Sync + 'static {
    /// The current time, Unix seconds (UTC).
    fn now(&self) -> i64;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; starts at the real time.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
    /// Seconds added after each reading (0: the clock stands still).
    tick: AtomicI64,
}

impl ManualClock {
    /// A manual clock set to the current wall-clock time.
    pub fn new() -> Self {
        Self {
            now: AtomicI64::new(SystemClock.now()),
            tick: AtomicI64::new(0),
        }
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    /// From now on every reading moves the clock forward by `secs` seconds afterwards
    /// (0 stops it again): two readings in one request then fall in different seconds,
    /// as they may in production at a second boundary.
    pub fn tick_on_read(&self, secs: i64) {
        self.tick.store(secs, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        match self.tick.load(Ordering::SeqCst) {
            0 => self.now.load(Ordering::SeqCst),
            tick => self.now.fetch_add(tick, Ordering::SeqCst),
        }
    }
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp (`2026-01-02T03:04:05Z`).
pub fn rfc3339(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Formats Unix seconds for people: `2026-01-02 03:04 UTC`.
pub fn human(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&format).unwrap_or_default()
}
