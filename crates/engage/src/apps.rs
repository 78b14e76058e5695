//! Apps: each X app has its own rate limit (per app and contract), so each gets its own lane: a gate
//! fed by the headers of the answers it got, a local pace when its budget is known, and counters.
//! Batches that need an owner's user context go through the lane of that owner's app; bearer
//! batches take whichever lane with a bearer token admits first, so they spread over every budget.
//!
//! The figures per app (requests, 429s, budget used) are kept in the store's `meta` table as JSON
//! ([`MetaKey::AppStats`]), added up over the lives of a run; they hold names and counts only, never
//! a credential.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use serde::{Deserialize, Serialize};

use crate::gate::Gate;
use crate::store::{MetaKey, Store, StoreError};

/// The name of the app given by the `ENGAGE_*` variables or `[credentials]`.
pub const DEFAULT_APP: &str = "default";

/// An app as the run was given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// Its name (from the config), shown in the report and `engage status`.
    pub name: String,
    /// Its budget, when known: N requests per window (the local pace).
    pub rate: Option<(u32, Duration)>,
}

impl AppSpec {
    /// The one app of a run without `[[apps]]`.
    pub fn single(rate: Option<(u32, Duration)>) -> Vec<AppSpec> {
        vec![AppSpec {
            name: DEFAULT_APP.to_string(),
            rate,
        }]
    }
}

/// Counters of one app in this life.
#[derive(Debug, Default)]
pub struct AppCounters {
    /// Requests sent.
    pub requests: AtomicU64,
    /// 429 answers.
    pub rate_limited: AtomicU64,
    /// First request sent and last answer received (the time its budget was in use).
    span: Mutex<Option<(tokio::time::Instant, tokio::time::Instant)>>,
}

impl AppCounters {
    /// A request goes out at `now`.
    pub fn sent(&self, now: tokio::time::Instant) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut s = self.span.lock().expect("app lock");
        if s.is_none() {
            *s = Some((now, now));
        }
    }

    /// An answer came at `now`.
    pub fn answered(&self, now: tokio::time::Instant, rate_limited: bool) {
        if rate_limited {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let mut s = self.span.lock().expect("app lock");
        if let Some((_, last)) = s.as_mut() {
            *last = (*last).max(now);
        }
    }

    /// How long the budget was in use.
    pub fn active(&self) -> Duration {
        self.span
            .lock()
            .expect("app lock")
            .map_or(Duration::ZERO, |(a, b)| b.saturating_duration_since(a))
    }
}

/// One app's lane.
pub struct Lane {
    /// The app.
    pub spec: AppSpec,
    /// Its header-driven gate.
    pub gate: Arc<Gate>,
    /// Its local pace, when its budget was given.
    pub pace: Option<Arc<DefaultDirectRateLimiter>>,
    /// Its counters.
    pub counters: Arc<AppCounters>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("app", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl Lane {
    /// A lane with a new gate, and a pace when the app's budget is known.
    pub fn new(spec: AppSpec) -> Lane {
        let pace = spec
            .rate
            .and_then(|(n, w)| crate::gate::pace(n, w))
            .map(Arc::new);
        Lane {
            spec,
            gate: Arc::new(Gate::new()),
            pace,
            counters: Arc::default(),
        }
    }

    /// This life's figures. The budget is the server's when its headers said it: its limit in
    /// each window the answers came from (a fixed window is the server's to fill however it
    /// likes); else the configured rate over the time the app was in use.
    pub fn figures(&self) -> AppFigures {
        let active = self.counters.active().as_secs_f64();
        let capacity = match (self.gate.budget(), self.spec.rate) {
            (Some(b), _) => Some(f64::from(b.limit) * f64::from(b.windows)),
            (None, Some((n, w))) => Some(f64::from(n) / w.as_secs_f64().max(1e-9) * active),
            (None, None) => None,
        };
        AppFigures {
            name: self.spec.name.clone(),
            requests: self.counters.requests.load(Ordering::Relaxed),
            rate_limited: self.counters.rate_limited.load(Ordering::Relaxed),
            active_secs: active,
            capacity,
        }
    }
}

/// One app's figures, as kept in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppFigures {
    /// The app's name.
    pub name: String,
    /// Requests sent.
    pub requests: u64,
    /// Of them, answered 429.
    pub rate_limited: u64,
    /// Seconds from the first request to the last answer.
    pub active_secs: f64,
    /// Requests the budget allowed, when the budget is known: the server's limit times the windows
    /// the answers came from, else the configured rate times the seconds active.
    pub capacity: Option<f64>,
}

impl AppFigures {
    /// The share of the budget used (0 to about 1), when the budget is known.
    pub fn used(&self) -> Option<f64> {
        self.capacity
            .filter(|c| *c > 0.0)
            .map(|c| self.requests as f64 / c)
    }

    /// `main: 120 requests, 0 answered 429, 98.7 % of the budget used`.
    pub fn line(&self) -> String {
        let used = match self.used() {
            Some(u) => format!("{:.1} % of its budget used", u * 100.0),
            None => "budget unknown".to_string(),
        };
        format!(
            "{}: {} requests, {} answered 429, {used}",
            self.name, self.requests, self.rate_limited
        )
    }
}

/// Adds this life's figures to those the store holds (by app name) and saves them.
pub fn record(store: &Store, life: &[AppFigures]) -> Result<Vec<AppFigures>, StoreError> {
    let mut all = load(store)?;
    for f in life.iter().filter(|f| f.requests > 0) {
        match all.iter_mut().find(|a| a.name == f.name) {
            Some(a) => {
                a.requests += f.requests;
                a.rate_limited += f.rate_limited;
                a.active_secs += f.active_secs;
                a.capacity = match (a.capacity, f.capacity) {
                    (Some(x), Some(y)) => Some(x + y),
                    (x, y) => x.or(y),
                };
            }
            None => all.push(f.clone()),
        }
    }
    let json = serde_json::to_string(&all).expect("figures serialize");
    store.set_meta(MetaKey::AppStats, &json)?;
    Ok(all)
}

/// The figures per app the store holds (none before the first request); unreadable figures are
/// none (they are statistics, not the run's results).
pub fn load(store: &Store) -> Result<Vec<AppFigures>, StoreError> {
    Ok(store
        .meta(MetaKey::AppStats)?
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_add_up_over_lives_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert!(load(&store).unwrap().is_empty());
        let f = |name: &str, requests, capacity| AppFigures {
            name: name.into(),
            requests,
            rate_limited: 1,
            active_secs: 10.0,
            capacity,
        };
        record(&store, &[f("a", 90, Some(100.0)), f("b", 5, None)]).unwrap();
        let all = record(&store, &[f("a", 100, Some(100.0)), f("c", 0, None)]).unwrap();
        assert_eq!(all, load(&store).unwrap());
        assert_eq!(all.len(), 2, "an app without requests is not listed");
        assert_eq!(
            (all[0].requests, all[0].rate_limited, all[0].used()),
            (190, 2, Some(0.95))
        );
        assert_eq!(
            all[0].line(),
            "a: 190 requests, 2 answered 429, 95.0 % of its budget used"
        );
        assert_eq!(
            all[1].line(),
            "b: 5 requests, 1 answered 429, budget unknown"
        );
    }
}
