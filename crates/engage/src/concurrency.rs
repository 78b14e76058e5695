//! The in-flight limit: fixed (`--concurrency N`), or adaptive (the default).
//!
//! The right number of requests in flight is the budget's rate times the API's latency, and neither
//! is known before the run. The adaptive limit finds it with AIMD on the round-trip times, after the
//! model of vector's Adaptive Request Concurrency:
//!
//! - answers are grouped in periods of about one round trip (the baseline RTT);
//! - at the end of a period, when every permit was in use at some point of it and the mean RTT of
//!   the period is no more than [`SPIKE`] times the baseline, the limit grows: doubling while in slow
//!   start (until the first back-off), then by one;
//! - a 429, a 5xx or a timeout in the period (back-pressure), or a mean RTT above [`SPIKE`] times the
//!   baseline, halves it (at least 1) and ends slow start;
//! - the baseline is an EWMA of the periods' mean RTTs.
//!
//! The limit never goes above [`MAX_CONCURRENCY`]. It only bounds requests in flight: the gate and
//! the local pace still bound the rate, so an adaptive limit never sends more than the budget allows.
//! The permits are a semaphore's: growing adds permits, shrinking forgets free ones at once and the
//! rest as they are given back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The most requests in flight, adaptive or fixed. The budget, not the number of open requests,
/// bounds throughput long before this; the cap keeps sockets, buffered answers and the queues
/// between the stages (sized from it) bounded.
pub const MAX_CONCURRENCY: usize = 256;

/// The adaptive limit's start.
pub const INITIAL: usize = 4;

/// A period's mean RTT above this multiple of the baseline is a latency spike.
pub const SPIKE: f64 = 1.5;

/// Weight of the newest period in the baseline RTT.
const ALPHA: f64 = 0.4;

/// Shortest period, so that a loopback API with microsecond answers is not adjusted per answer.
const MIN_PERIOD: Duration = Duration::from_millis(5);

/// How an answer bears on the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// An answer that says nothing against more load (success, 4xx other than 429).
    Fine,
    /// A 429, a 5xx or a timeout: the API or the budget asks for less.
    BackPressure,
    /// The request never reached a server (no connection): it says nothing about the API's
    /// latency, and the outage breaker deals with it.
    Unmeasured,
}

#[derive(Debug)]
struct State {
    limit: usize,
    /// Permits still to take out of circulation after a decrease (they were in use then).
    owed: usize,
    /// Requests on the wire now.
    sending: usize,
    slow_start: bool,
    /// Baseline RTT (EWMA of the periods' means), once one period has ended.
    baseline: Option<f64>,
    /// This period: sum and count of RTTs, whether back-pressure came, whether the limit was reached.
    sum: f64,
    count: u32,
    pressure: bool,
    reached: bool,
    /// When this period began (answers to earlier requests do not count) and when it may end.
    begun: Option<Instant>,
    ends: Option<Instant>,
}

/// The in-flight limit of a run.
#[derive(Debug)]
pub struct Concurrency {
    permits: Arc<Semaphore>,
    /// `None`: fixed.
    state: Option<Mutex<State>>,
    /// The current limit, for the progress line.
    shown: AtomicUsize,
    max: usize,
}

/// One batch's right to be in flight; given back on drop (or forgotten while the limit shrinks).
#[derive(Debug)]
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    owner: Arc<Concurrency>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let (Some(p), Some(state)) = (self.permit.take(), &self.owner.state) {
            let mut s = state.lock().expect("concurrency lock");
            if s.owed > 0 {
                s.owed -= 1;
                p.forget();
            }
        }
    }
}

impl Concurrency {
    /// Exactly `n` in flight (`--concurrency N`).
    pub fn fixed(n: usize) -> Arc<Concurrency> {
        let n = n.clamp(1, MAX_CONCURRENCY);
        Arc::new(Concurrency {
            permits: Arc::new(Semaphore::new(n)),
            state: None,
            shown: AtomicUsize::new(n),
            max: n,
        })
    }

    /// Adaptive, from [`INITIAL`] up to `max`.
    pub fn adaptive(max: usize) -> Arc<Concurrency> {
        let max = max.clamp(1, MAX_CONCURRENCY);
        let limit = INITIAL.min(max);
        Arc::new(Concurrency {
            permits: Arc::new(Semaphore::new(limit)),
            state: Some(Mutex::new(State {
                limit,
                owed: 0,
                sending: 0,
                slow_start: true,
                baseline: None,
                sum: 0.0,
                count: 0,
                pressure: false,
                reached: false,
                begun: None,
                ends: None,
            })),
            shown: AtomicUsize::new(limit),
            max,
        })
    }

    /// Whether the limit adapts.
    pub fn is_adaptive(&self) -> bool {
        self.state.is_some()
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.shown.load(Ordering::Relaxed)
    }

    /// The highest the limit can go (the queues between the stages are sized from it).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits for a permit.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Permit {
            permit: Some(permit),
            owner: self.clone(),
        }
    }

    /// A request goes on the wire now.
    pub fn sending(&self) {
        if let Some(state) = &self.state {
            let mut s = state.lock().expect("concurrency lock");
            s.sending += 1;
            if s.sending >= s.limit {
                s.reached = true;
            }
        }
    }

    /// A request sent with [`Self::sending`] was answered after `rtt`, at `now`.
    ///
    /// Only answers to requests sent since the period began count towards it: the answers of the
    /// requests sent before a change say nothing about the new limit (and a burst of 429s from
    /// them would halve it twice).
    pub fn answered(&self, rtt: Duration, feedback: Feedback, now: Instant) {
        let Some(state) = &self.state else { return };
        let mut s = state.lock().expect("concurrency lock");
        s.sending = s.sending.saturating_sub(1);
        let sent = now.checked_sub(rtt).unwrap_or(now);
        if s.begun.is_some_and(|b| sent < b) {
            return;
        }
        match feedback {
            Feedback::Fine => {
                s.sum += rtt.as_secs_f64();
                s.count += 1;
            }
            Feedback::BackPressure => s.pressure = true,
            Feedback::Unmeasured => return,
        }
        // Enough answers to judge by: half the limit, at most eight (one would be noise).
        let need = s.limit.div_ceil(2).min(8) as u32;
        if s.ends.is_some_and(|e| now < e) || !(s.pressure || s.count >= need) {
            return;
        }
        let before = s.limit;
        let mean = (s.count > 0).then(|| s.sum / s.count as f64);
        let spike = matches!((mean, s.baseline), (Some(m), Some(b)) if m > b * SPIKE);
        if s.pressure || spike {
            s.limit = (s.limit / 2).max(1);
            s.slow_start = false;
        } else if s.reached {
            s.limit = if s.slow_start {
                s.limit * 2
            } else {
                s.limit + 1
            }
            .min(self.max);
        }
        if let Some(m) = mean {
            s.baseline = Some(s.baseline.map_or(m, |b| b + ALPHA * (m - b)));
        }
        self.resize(&mut s, before);
        s.sum = 0.0;
        s.count = 0;
        s.pressure = false;
        s.reached = s.sending >= s.limit;
        s.begun = Some(now);
        let period = Duration::from_secs_f64(s.baseline.unwrap_or(0.0)).max(MIN_PERIOD);
        s.ends = Some(now + period);
    }

    /// Moves the semaphore from `before` permits to the state's limit.
    fn resize(&self, s: &mut State, before: usize) {
        use std::cmp::Ordering as O;
        match s.limit.cmp(&before) {
            O::Greater => {
                let mut more = s.limit - before;
                // Permits still owed from a decrease are simply no longer owed.
                let settle = more.min(s.owed);
                s.owed -= settle;
                more -= settle;
                self.permits.add_permits(more);
            }
            O::Less => {
                let fewer = before - s.limit;
                let now = self.permits.forget_permits(fewer);
                s.owed += fewer - now;
            }
            O::Equal => {}
        }
        self.shown.store(s.limit, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(100);

    /// Keeps `c.limit()` requests in flight for `rounds` round trips of `rtt` each (in paused time)
    /// with `feedback` for every answer; returns the limit after each round.
    async fn drive(
        c: &Arc<Concurrency>,
        rounds: usize,
        rtt: impl Fn(usize) -> Duration,
        feedback: impl Fn(usize) -> Feedback,
    ) -> Vec<usize> {
        let mut seen = Vec::new();
        for round in 0..rounds {
            let n = c.limit();
            let mut held = Vec::new();
            for _ in 0..n {
                held.push(c.acquire().await);
                c.sending();
            }
            tokio::time::sleep(rtt(round)).await;
            for p in held {
                c.answered(rtt(round), feedback(round), Instant::now());
                drop(p);
            }
            seen.push(c.limit());
        }
        seen
    }

    /// The free permits plus those in use equal the limit once every permit is back.
    fn available(c: &Concurrency) -> usize {
        c.permits.available_permits()
    }

    #[tokio::test(start_paused = true)]
    async fn grows_under_constant_latency_doubling_then_by_one() {
        let c = Concurrency::adaptive(MAX_CONCURRENCY);
        assert_eq!(c.limit(), INITIAL);
        // Every round fills the limit and answers as fast as the last: it grows every round, up to
        // the maximum and no further.
        let seen = drive(&c, 8, |_| RTT, |_| Feedback::Fine).await;
        assert_eq!(seen, [8, 16, 32, 64, 128, 256, 256, 256]);
        assert_eq!(available(&c), MAX_CONCURRENCY);
    }

    #[tokio::test(start_paused = true)]
    async fn halves_on_back_pressure_then_grows_by_one() {
        let c = Concurrency::adaptive(MAX_CONCURRENCY);
        drive(&c, 3, |_| RTT, |_| Feedback::Fine).await;
        let before = c.limit();
        assert_eq!(before, 32);
        // One round with 429s or 5xx: halved once, not once per answer.
        let seen = drive(&c, 1, |_| RTT, |_| Feedback::BackPressure).await;
        assert_eq!(seen, [before / 2]);
        assert_eq!(available(&c), before / 2);
        // Out of slow start: additive increase.
        let seen = drive(&c, 3, |_| RTT, |_| Feedback::Fine).await;
        assert_eq!(seen, [17, 18, 19]);
    }

    #[tokio::test(start_paused = true)]
    async fn halves_on_a_latency_spike() {
        let c = Concurrency::adaptive(MAX_CONCURRENCY);
        drive(&c, 3, |_| RTT, |_| Feedback::Fine).await;
        assert_eq!(c.limit(), 32);
        // Answers suddenly three times slower: less is in flight.
        let seen = drive(&c, 1, |_| RTT * 3, |_| Feedback::Fine).await;
        assert_eq!(seen, [16]);
        // Jitter within the tolerance is not a spike: it grows again (after a period as long as
        // the baseline, which the spike lengthened).
        let seen = drive(&c, 2, |_| RTT * 13 / 10, |_| Feedback::Fine).await;
        assert_eq!(seen, [16, 17]);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_grow_while_the_limit_is_not_used() {
        let c = Concurrency::adaptive(MAX_CONCURRENCY);
        // One request at a time (a gate holding the others): nothing says more would help.
        for _ in 0..10 {
            let p = c.acquire().await;
            c.sending();
            tokio::time::sleep(RTT).await;
            c.answered(RTT, Feedback::Fine, Instant::now());
            drop(p);
        }
        assert_eq!(c.limit(), INITIAL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_decrease_while_permits_are_held_takes_them_back_as_they_return() {
        let c = Concurrency::adaptive(MAX_CONCURRENCY);
        drive(&c, 2, |_| RTT, |_| Feedback::Fine).await;
        assert_eq!(c.limit(), 16);
        let mut held = Vec::new();
        for _ in 0..16 {
            held.push(c.acquire().await);
            c.sending();
        }
        tokio::time::sleep(RTT).await;
        c.answered(RTT, Feedback::BackPressure, Instant::now());
        assert_eq!(c.limit(), 8);
        // All 16 were in use: none free to forget, eight owed.
        assert_eq!(available(&c), 0);
        held.truncate(4);
        assert_eq!(available(&c), 4, "the first eight returned are forgotten");
        drop(held);
        assert_eq!(available(&c), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_limit_never_moves() {
        let c = Concurrency::fixed(8);
        assert!(!c.is_adaptive());
        let seen = drive(&c, 3, |_| RTT, |_| Feedback::BackPressure).await;
        assert_eq!(seen, [8, 8, 8]);
        assert_eq!(Concurrency::fixed(1000).limit(), MAX_CONCURRENCY);
    }
}
