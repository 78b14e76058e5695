//! Injected faults: the decisions for one request.
//!
//! Every request to an endpoint path takes the next sequence number from an atomic counter; each
//! fault kind is then decided by a hash of (seed, sequence number, kind) compared with its
//! probability. A run is therefore reproducible given the order in which requests arrive, and there
//! is no shared RNG to lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::FaultConfig;
use crate::metrics::{hash3, unit};

const TAG_5XX: u64 = 0xF1;
const TAG_5XX_STATUS: u64 = 0xF2;
const TAG_429: u64 = 0xF3;
const TAG_HANG: u64 = 0xF4;
const TAG_RESET: u64 = 0xF5;
const TAG_MALFORMED: u64 = 0xF6;
const TAG_NO_GZIP: u64 = 0xF7;
const TAG_JITTER: u64 = 0xF8;
const TAG_DOC_SHAPES: u64 = 0xF9;

/// The `errors` string a `doc_shapes` answer adds after the documented ones. None of the API's
/// published texts, so a client must keep a message it does not know.
pub const DOC_SHAPES_ERROR: &str = "Some data may be delayed (simulated)";

/// A fault that replaces the answer before any processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Answer this 5xx status.
    Status(u16),
    /// Answer 429 whatever the budget.
    TooManyRequests,
    /// Never answer.
    Hang,
}

/// A fault applied to the body of the final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// Send part of the body, then drop the connection.
    Reset,
    /// Send a truncated JSON body.
    Malformed,
    /// Send the body uncompressed, without `Content-Encoding`, although gzip was asked.
    NoGzip,
}

/// The decisions for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// Replace the answer (5xx first, then 429, then hang when several fire).
    pub failure: Option<Failure>,
    /// Damage the body (reset first, then malformed, then no-gzip when several fire).
    pub body: Option<BodyFault>,
    /// Give a 200 body the documentation's variant shapes (independent of the other faults).
    pub doc_shapes: bool,
    /// Delay before answering.
    pub delay: Duration,
}

/// The fault injector.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    seed: u64,
    sequence: AtomicU64,
}

impl Faults {
    /// An injector for this config and seed.
    pub fn new(config: FaultConfig, seed: u64) -> Faults {
        Faults {
            config,
            seed,
            sequence: AtomicU64::new(0),
        }
    }

    /// How many requests to endpoint paths have been planned (that is, received) so far.
    pub fn received(&self) -> u64 {
        self.sequence.load(Ordering::Relaxed)
    }

    /// Decides the faults of the next request.
    pub fn plan(&self) -> FaultPlan {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.plan_for(n)
    }

    /// Decides the faults of request number `n` (0-based).
    pub fn plan_for(&self, n: u64) -> FaultPlan {
        let c = &self.config;
        let roll = |tag: u64, p: f64| p > 0.0 && unit(hash3(self.seed, n, tag)) < p;
        let failure = if roll(TAG_5XX, c.fail_5xx) {
            let status = [500, 502, 503][(hash3(self.seed, n, TAG_5XX_STATUS) % 3) as usize];
            Some(Failure::Status(status))
        } else if roll(TAG_429, c.fail_429) {
            Some(Failure::TooManyRequests)
        } else if roll(TAG_HANG, c.hang) {
            Some(Failure::Hang)
        } else {
            None
        };
        let body = if roll(TAG_RESET, c.reset) {
            Some(BodyFault::Reset)
        } else if roll(TAG_MALFORMED, c.malformed) {
            Some(BodyFault::Malformed)
        } else if roll(TAG_NO_GZIP, c.no_gzip) {
            Some(BodyFault::NoGzip)
        } else {
            None
        };
        let delay = if c.latency_ms == 0 {
            Duration::ZERO
        } else {
            let jitter = unit(hash3(self.seed, n, TAG_JITTER)) * 0.2 * c.latency_ms as f64;
            Duration::from_micros(c.latency_ms * 1000 + (jitter * 1000.0) as u64)
        };
        FaultPlan {
            failure,
            body,
            doc_shapes: roll(TAG_DOC_SHAPES, c.doc_shapes),
            delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_zero_and_one() {
        let none = Faults::new(FaultConfig::default(), 1);
        for _ in 0..100 {
            let p = none.plan();
            assert_eq!((p.failure, p.body, p.delay), (None, None, Duration::ZERO));
            assert!(!p.doc_shapes);
        }
        let all = Faults::new(
            FaultConfig {
                fail_5xx: 1.0,
                malformed: 1.0,
                doc_shapes: 1.0,
                latency_ms: 10,
                ..FaultConfig::default()
            },
            1,
        );
        let mut statuses = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let p = all.plan();
            match p.failure {
                Some(Failure::Status(s)) => statuses.insert(s),
                other => panic!("{other:?}"),
            };
            assert_eq!(p.body, Some(BodyFault::Malformed));
            assert!(p.doc_shapes, "doc_shapes combines with any other fault");
            assert!(p.delay >= Duration::from_millis(10) && p.delay <= Duration::from_millis(12));
        }
        assert_eq!(statuses.into_iter().collect::<Vec<_>>(), [500, 502, 503]);
    }

    #[test]
    fn a_run_is_reproducible_and_shares_are_right() {
        let cfg = FaultConfig {
            hang: 0.25,
            ..FaultConfig::default()
        };
        let a = Faults::new(cfg.clone(), 9);
        let b = Faults::new(cfg, 9);
        let hangs = (0..4000)
            .filter(|_| {
                let (x, y) = (a.plan(), b.plan());
                assert_eq!(x, y);
                x.failure == Some(Failure::Hang)
            })
            .count();
        assert!((850..1150).contains(&hangs), "{hangs}");

        let cfg = FaultConfig {
            doc_shapes: 0.5,
            ..FaultConfig::default()
        };
        let (a, b) = (Faults::new(cfg.clone(), 9), Faults::new(cfg, 9));
        let shaped: Vec<bool> = (0..4000).map(|_| a.plan().doc_shapes).collect();
        assert_eq!(
            shaped,
            (0..4000).map(|_| b.plan().doc_shapes).collect::<Vec<_>>()
        );
        let n = shaped.iter().filter(|&&s| s).count();
        assert!((1800..2200).contains(&n), "{n}");
    }
}
