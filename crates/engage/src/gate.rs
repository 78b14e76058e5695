//! Pacing: a client-side pace (governor) and a gate driven by the server's rate-limit headers.
//!
//! The pace keeps us at or under a budget we were told (`--rate N --window-secs S`); it cannot learn.
//! The gate learns from every response: `x-per-minute-remaining` says how many calls the server will
//! still take in this window and `x-per-minute-reset` when the window ends. State machine:
//!
//! - **Open**: no header seen yet, or calls remain. Each request takes one call from the estimate.
//! - **Closed until reset**: the estimate reached zero (counting requests still in flight, which the
//!   server may not have counted yet), or a 429 arrived. Everyone waits until the reset time (plus a small
//!   margin for clock skew), then the estimate is refilled from the last known limit and the gate opens.
//!
//! A 429 without a reset header closes the gate for the caller's backoff delay instead.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use engagement_api::client::RateLimit;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The wall clock the gate is read with: the system time when it was made, plus tokio's monotonic
/// time since. The server's reset times are wall-clock seconds, so the gate needs a wall clock; this
/// one does not jump when NTP steps the system clock mid-run, and it moves with tokio's paused clock,
/// so the waits it leads to are tested in paused time.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    system: SystemTime,
    at: tokio::time::Instant,
}

impl WallClock {
    /// Anchored now.
    pub fn new() -> WallClock {
        WallClock {
            system: SystemTime::now(),
            at: tokio::time::Instant::now(),
        }
    }

    /// The current wall-clock time.
    pub fn now(&self) -> SystemTime {
        self.system + self.at.elapsed()
    }
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::new()
    }
}

/// Margin added after a reset time: the server's second may tick after ours.
const RESET_MARGIN: Duration = Duration::from_millis(50);

/// Builds the local pace for "N requests per window": one cell every window/N, burst 1, so no window
/// of that length ever sees more than N + 1 starts (the gate catches the +1 when the server counts it).
pub fn pace(requests: u32, window: Duration) -> Option<DefaultDirectRateLimiter> {
    let n = NonZeroU32::new(requests)?;
    let period = window / n.get();
    let quota =
        Quota::with_period(period.max(Duration::from_nanos(1)))?.allow_burst(NonZeroU32::MIN);
    Some(RateLimiter::direct(quota))
}

#[derive(Debug, Default)]
struct State {
    limit: Option<u32>,
    /// Calls we believe remain in the current window.
    remaining: Option<i64>,
    reset: Option<SystemTime>,
    /// Closed until then (a 429 without headers, or an exhausted window).
    closed_until: Option<SystemTime>,
    in_flight: i64,
    /// The window's length, from the step between successive reset times (the shortest seen),
    /// and the latest reset time seen (`reset` is forgotten when a window begins).
    window: Option<Duration>,
    latest_reset: Option<SystemTime>,
    /// Windows answers came from (distinct reset times, in order).
    windows_seen: u32,
}

/// The header-driven gate. Shared by all in-flight batches.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
}

/// The server's budget as its headers told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests per window.
    pub limit: u32,
    /// The window's length.
    pub window: Duration,
    /// Windows the answers came from: the budget the run could use is `limit` times this.
    pub windows: u32,
}

/// What a caller must do before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go: one call is now counted as in flight.
    Go,
    /// Wait until then and ask again.
    WaitUntil(SystemTime),
}

impl Gate {
    /// A new, open gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Asks to send one request at `now`.
    pub fn try_admit(&self, now: SystemTime) -> Admit {
        let mut s = self.state.lock().expect("gate lock");
        if let Some(until) = s.closed_until {
            if now < until {
                return Admit::WaitUntil(until);
            }
            s.closed_until = None;
        }
        if let (Some(reset), Some(limit)) = (s.reset, s.limit) {
            if now >= reset + RESET_MARGIN {
                // A new window began: trust the last known limit until a response says otherwise.
                s.remaining = Some(limit as i64);
                s.reset = None;
            }
        }
        if let Some(rem) = s.remaining {
            if rem - s.in_flight <= 0 {
                if let Some(reset) = s.reset {
                    return Admit::WaitUntil(reset + RESET_MARGIN);
                }
                // No reset known: let one request through to learn the state.
                if s.in_flight > 0 {
                    return Admit::WaitUntil(now + Duration::from_millis(100));
                }
            }
        }
        s.in_flight += 1;
        Admit::Go
    }

    /// Records a response (any status) with its headers; `rate_limited` for a 429.
    pub fn observe(&self, rate: &RateLimit, rate_limited: bool, now: SystemTime) {
        let mut s = self.state.lock().expect("gate lock");
        s.in_flight = (s.in_flight - 1).max(0);
        if let Some(limit) = rate.limit {
            s.limit = Some(limit);
        }
        if let Some(rem) = rate.remaining {
            let newer_window = match (rate.reset, s.reset) {
                (Some(new), Some(old)) => new > old,
                (Some(_), None) => true,
                _ => false,
            };
            // Responses arrive out of order: within one window the smallest figure is the freshest.
            s.remaining = Some(match s.remaining {
                Some(cur) if !newer_window => cur.min(rem as i64),
                _ => rem as i64,
            });
            if let Some(new) = rate.reset {
                match s.latest_reset {
                    Some(old) if new > old => {
                        let step = new.duration_since(old).unwrap_or_default();
                        s.window = Some(s.window.map_or(step, |w| w.min(step)));
                        s.latest_reset = Some(new);
                        s.windows_seen += 1;
                    }
                    None => {
                        s.latest_reset = Some(new);
                        s.windows_seen = 1;
                    }
                    _ => {}
                }
            }
            if rate.reset.is_some() && (newer_window || s.reset.is_none()) {
                s.reset = rate.reset;
            }
        }
        if rate_limited {
            s.remaining = Some(0);
            if let Some(reset) = rate.reset.or(s.reset) {
                if reset > now {
                    s.closed_until = Some(reset + RESET_MARGIN);
                    s.reset = Some(reset);
                }
            }
        }
    }

    /// Closes the gate until `until` (a 429 without a reset header: the caller's backoff).
    pub fn close_until(&self, until: SystemTime) {
        let mut s = self.state.lock().expect("gate lock");
        s.closed_until = Some(s.closed_until.map_or(until, |u| u.max(until)));
    }

    /// Gives back an admission that did not lead to a request (shutdown while waiting).
    pub fn release(&self) {
        let mut s = self.state.lock().expect("gate lock");
        s.in_flight = (s.in_flight - 1).max(0);
    }

    /// The server's budget, once its headers said it: N requests per window (the step between
    /// two reset times, else the minute the headers are named after), and how many windows the
    /// answers came from.
    pub fn budget(&self) -> Option<Budget> {
        let s = self.state.lock().expect("gate lock");
        Some(Budget {
            limit: s.limit?,
            window: s.window.unwrap_or(Duration::from_secs(60)),
            windows: s.windows_seen,
        })
    }

    /// When the gate is closed, until when (for the progress display).
    pub fn closed_until(&self, now: SystemTime) -> Option<SystemTime> {
        let s = self.state.lock().expect("gate lock");
        match s.closed_until {
            Some(u) if u > now => Some(u),
            _ => match (s.remaining, s.reset) {
                (Some(r), Some(reset)) if r - s.in_flight <= 0 && reset > now => Some(reset),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn rl(limit: u32, remaining: u32, reset: u64) -> RateLimit {
        RateLimit {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(t(reset)),
        }
    }

    #[test]
    fn open_without_headers() {
        let g = Gate::new();
        for _ in 0..100 {
            assert_eq!(g.try_admit(t(0)), Admit::Go);
        }
    }

    #[test]
    fn closes_when_the_window_is_spent_counting_in_flight() {
        let g = Gate::new();
        assert_eq!(g.try_admit(t(0)), Admit::Go);
        g.observe(&rl(3, 2, 60), false, t(0));
        assert_eq!(g.try_admit(t(1)), Admit::Go);
        assert_eq!(g.try_admit(t(1)), Admit::Go);
        // Two in flight and two remaining: the third would exceed the budget.
        assert_eq!(g.try_admit(t(1)), Admit::WaitUntil(t(60) + RESET_MARGIN));
        g.observe(&rl(3, 1, 60), false, t(2));
        g.observe(&rl(3, 0, 60), false, t(2));
        assert!(matches!(g.try_admit(t(30)), Admit::WaitUntil(_)));
        assert_eq!(g.closed_until(t(30)), Some(t(60)));
        // After the reset the last known limit applies again.
        assert_eq!(g.try_admit(t(61)), Admit::Go);
        assert_eq!(g.try_admit(t(61)), Admit::Go);
        assert_eq!(g.try_admit(t(61)), Admit::Go);
        assert!(matches!(g.try_admit(t(61)), Admit::WaitUntil(_)));
    }

    #[test]
    fn the_budget_is_the_limit_per_step_between_resets() {
        let g = Gate::new();
        assert_eq!(g.budget(), None);
        g.try_admit(t(0));
        g.observe(&rl(30, 29, 1), false, t(0));
        let budget = |window: u64, windows: u32| {
            Some(Budget {
                limit: 30,
                window: Duration::from_secs(window),
                windows,
            })
        };
        // One window seen: the headers' minute.
        assert_eq!(g.budget(), budget(60, 1));
        // The next window's answer after the gate refilled for it (which forgets the old reset).
        assert_eq!(g.try_admit(t(2)), Admit::Go);
        g.observe(&rl(30, 29, 2), false, t(1));
        assert_eq!(g.budget(), budget(1, 2));
        g.try_admit(t(5));
        g.observe(&rl(30, 29, 6), false, t(5));
        // An answer of an older window changes nothing.
        g.observe(&rl(30, 28, 2), false, t(5));
        assert_eq!(g.budget(), budget(1, 3), "the shortest step");
    }

    #[test]
    fn a_429_closes_until_reset_and_out_of_order_answers_keep_the_minimum() {
        let g = Gate::new();
        for _ in 0..3 {
            g.try_admit(t(0));
        }
        g.observe(&rl(10, 5, 60), false, t(0));
        g.observe(&rl(10, 7, 60), false, t(0));
        assert_eq!(g.state.lock().unwrap().remaining, Some(5));
        g.observe(&rl(10, 0, 60), true, t(1));
        assert_eq!(g.try_admit(t(2)), Admit::WaitUntil(t(60) + RESET_MARGIN));
        assert_eq!(g.try_admit(t(61)), Admit::Go);
    }

    #[test]
    fn the_pace_allows_n_per_window() {
        let p = pace(30, Duration::from_secs(1)).unwrap();
        // Burst of one, then nothing until the next cell.
        assert!(p.check().is_ok());
        assert!(p.check().is_err());
        assert!(pace(0, Duration::from_secs(1)).is_none());
    }
}
