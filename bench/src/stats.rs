//! Recording and reporting: per-request latencies (microseconds) of the successful
//! answers, failures counted by status or kind, and the summary printed as a human line,
//! a JSON object or a Markdown table row (the row's columns match `bench/run.sh`).

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::conn::Failure;

/// What one worker saw during the measured window.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// Latency of every 2xx answer, in microseconds.
    latencies_us: Vec<u32>,
    /// Failures: HTTP status (`"503"`) or transport kind (`"timeout"`) → count.
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// Records a successful answer.
    pub(crate) fn ok(&mut self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(us);
    }

    /// Records a non-2xx answer.
    pub(crate) fn status(&mut self, status: StatusCode) {
        *self.errors.entry(status.as_u16().to_string()).or_default() += 1;
    }

    /// Records a request that got no answer.
    pub(crate) fn failure(&mut self, failure: &Failure) {
        *self.errors.entry(failure.label().to_owned()).or_default() += 1;
    }

    /// Adds another worker's records to these.
    pub(crate) fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    /// Sorts the latencies and computes the figures for a window of `window` length.
    pub(crate) fn summarize(mut self, window: Duration) -> Summary {
        self.latencies_us.sort_unstable();
        let ms = |q: f64| percentile(&self.latencies_us, q) as f64 / 1000.0;
        let ok = self.latencies_us.len() as u64;
        let seconds = window.as_secs_f64();
        Summary {
            ok,
            errors: self.errors,
            seconds,
            rps: if seconds > 0.0 {
                ok as f64 / seconds
            } else {
                0.0
            },
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The figures of one measured side of a scenario.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// Successful (2xx) answers completed inside the window.
    pub(crate) ok: u64,
    /// Failures by status or kind.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Length of the measured window.
    pub(crate) seconds: f64,
    /// Successful answers per second.
    pub(crate) rps: f64,
    /// Median latency of the successful answers, in milliseconds.
    pub(crate) p50_ms: f64,
    /// 90th percentile latency, in milliseconds.
    pub(crate) p90_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub(crate) p99_ms: f64,
    /// Slowest successful answer, in milliseconds.
    pub(crate) max_ms: f64,
}

impl Summary {
    /// Errors as `503×12, timeout×1`, or `0`.
    pub(crate) fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".to_owned();
        }
        self.errors
            .iter()
            .map(|(kind, n)| format!("{kind}×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One human-readable line.
    pub(crate) fn human(&self, name: &str, connections: usize) -> String {
        format!(
            "{name}: {connections} conn, {:.1} s: {:.1} req/s ok ({} ok), errors {}; \
             latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
            self.seconds,
            self.rps,
            self.ok,
            self.errors_text(),
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
        )
    }

    /// The JSON form.
    pub(crate) fn json(&self, connections: usize) -> Value {
        json!({
            "connections": connections,
            "seconds": round(self.seconds),
            "ok": self.ok,
            "requests_per_s": round(self.rps),
            "errors": self.errors,
            "latency_ms": {
                "p50": round(self.p50_ms),
                "p90": round(self.p90_ms),
                "p99": round(self.p99_ms),
                "max": round(self.max_ms),
            },
        })
    }

    /// A Markdown row: scenario, backend, connections, req/s, errors, p50, p90, p99,
    /// max, target, verdict.
    pub(crate) fn markdown(
        &self,
        name: &str,
        backend: &str,
        connections: &str,
        goal: Option<&Goal>,
    ) -> String {
        let (target, verdict) = match goal {
            Some(g) => (g.text.as_str(), g.verdict(self)),
            None => ("—", "—"),
        };
        format!(
            "| {name} | {backend} | {connections} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {target} | {verdict} |",
            self.rps,
            self.errors_text(),
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
        )
    }
}

/// Rounds to three decimals for the JSON output.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A target from issues 2 and 3.
#[derive(Debug, Clone)]
pub(crate) struct Goal {
    /// Lowest acceptable successful requests per second.
    pub(crate) min_rps: Option<f64>,
    /// Highest acceptable p99 latency, in milliseconds.
    pub(crate) max_p99_ms: Option<f64>,
    /// The target as written in the table.
    pub(crate) text: String,
}

impl Goal {
    /// `met` or `missed` (a run with any error misses).
    pub(crate) fn verdict(&self, s: &Summary) -> &'static str {
        let fast = self.min_rps.is_none_or(|min| s.rps >= min);
        let quick = self
            .max_p99_ms
            .is_none_or(|max| s.ok > 0 && s.p99_ms <= max);
        if fast && quick && s.errors.is_empty() {
            "met"
        } else {
            "missed"
        }
    }

    /// The JSON form.
    pub(crate) fn json(&self, s: &Summary) -> Value {
        json!({
            "min_requests_per_s": self.min_rps.map(round),
            "max_p99_ms": self.max_p99_ms,
            "text": self.text,
            "verdict": self.verdict(s),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles use the nearest rank; an empty set gives 0.
    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    /// Merged recorders add up successes and errors; rates use the window length.
    #[test]
    fn merge_and_summarize() {
        let mut a = Recorder::default();
        a.ok(Duration::from_millis(2));
        a.status(StatusCode::SERVICE_UNAVAILABLE);
        let mut b = Recorder::default();
        b.ok(Duration::from_millis(4));
        b.status(StatusCode::SERVICE_UNAVAILABLE);
        a.merge(b);
        let s = a.summarize(Duration::from_secs(2));
        assert_eq!(s.ok, 2);
        assert_eq!(s.rps, 1.0);
        assert_eq!(s.max_ms, 4.0);
        assert_eq!(s.errors_text(), "503×2");
        let goal = Goal {
            min_rps: Some(1.0),
            max_p99_ms: None,
            text: String::new(),
        };
        assert_eq!(goal.verdict(&s), "missed");
    }
}
