//! The per-App request budget: N requests per fixed window of S seconds.
//!
//! Windows are aligned to multiples of S since the Unix epoch on the real clock, so every client
//! can compute the reset time, and `x-per-minute-reset` is exact. Every request to an endpoint path
//! counts, including the ones that end in an error or in the 429 itself, as a contract budget would.
//! The state is one small mutex held for a few instructions; it is not a contention point at the
//! request rates the simulator serves.

use std::sync::Mutex;

/// The outcome of counting one request, and what the rate-limit headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// Whether this request is within the budget.
    pub allowed: bool,
    /// `x-per-minute-limit`: the budget per window.
    pub limit: u32,
    /// `x-per-minute-remaining`: requests left in this window after this one.
    pub remaining: u32,
    /// `x-per-minute-reset`: Unix seconds when the window ends.
    pub reset: u64,
}

/// A fixed-window request counter.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window_secs: u64,
    /// (window index, requests counted in it)
    state: Mutex<(u64, u32)>,
}

impl RateLimiter {
    /// `limit` requests per `window_secs` (both at least 1).
    pub fn new(limit: u32, window_secs: u64) -> RateLimiter {
        RateLimiter {
            limit,
            window_secs: window_secs.max(1),
            state: Mutex::new((0, 0)),
        }
    }

    /// Counts one request at Unix time `now_secs`.
    pub fn check(&self, now_secs: u64) -> RateStatus {
        let window = now_secs / self.window_secs;
        let used = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.0 != window {
                *s = (window, 0);
            }
            s.1 = s.1.saturating_add(1);
            s.1
        };
        RateStatus {
            allowed: used <= self.limit,
            limit: self.limit,
            remaining: self.limit.saturating_sub(used),
            reset: (window + 1) * self.window_secs,
        }
    }

    /// The text of the 429 answer; it contains "rate limit", which clients match on.
    pub fn message(&self) -> String {
        format!(
            "Exceeded rate limit: {} requests per {} seconds",
            self.limit, self.window_secs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_down_and_resets_on_the_boundary() {
        let r = RateLimiter::new(3, 60);
        let t = 1_800_000_020;
        let got: Vec<(bool, u32)> = (0..5)
            .map(|_| r.check(t))
            .map(|s| (s.allowed, s.remaining))
            .collect();
        assert_eq!(
            got,
            [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
        );
        assert_eq!(r.check(t).reset, 1_800_000_060);
        let next = r.check(1_800_000_060);
        assert!(next.allowed);
        assert_eq!(next.remaining, 2);
        assert_eq!(next.reset, 1_800_000_120);
        assert!(r.message().contains("rate limit"));
    }
}
