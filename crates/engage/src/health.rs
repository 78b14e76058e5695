//! The API's health: a circuit breaker beside the gate, so that an outage stalls the run instead of
//! failing its IDs.
//!
//! The gate answers "not now" (429s); the breaker answers "nobody is there". Shared by every batch.
//! State machine:
//!
//! - **Closed**: requests go. Each attempt that could not connect at all (connection refused, DNS,
//!   TLS handshake, connect timeout) lengthens a streak; any HTTP response, even a 5xx or a 429, ends it.
//! - **Open**: `threshold` such failures in a row, across all batches. No batch sends: each waits at
//!   the breaker as it waits at the gate. One probe, a real request of one waiting batch, goes
//!   `probe_base` after the breaker opened, then after doubling delays capped at `probe_cap`. An answered
//!   probe closes the breaker and every batch goes on.
//! - **Given up**: still open `limit` after the streak began. Every batch ends interrupted with its
//!   IDs pending, and the run stops as interrupted (resumable).
//!
//! What counts as "could not connect" is decided by the client's type, [`Retryable::Unreachable`]. A
//! request that connected and then timed out, or whose connection broke before the answer, neither
//! opens nor closes the breaker and is charged to its batch as before: the server was reached, and a
//! slow or broken answer can belong to the request (one heavy `/historical` window) rather than to the
//! service, so counting it would let one poisonous batch stall the whole run.
//!
//! Attempts: one that could not connect is never charged to its batch (connecting does not depend on
//! what the batch asks), and neither is any attempt that ended without an answer while the breaker was
//! open (it was in flight when the outage began). A batch's `max_attempts` is thus spent on answers
//! and on failures of established connections only; an outage costs time, bounded by `limit`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use engagement_api::client::{ConnectCause, Outcome, Reply, Retryable};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When the breaker opens, how it probes, and how long it waits at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutagePolicy {
    /// Attempts in a row, across all batches, that could not connect before the breaker opens.
    pub threshold: u32,
    /// Delay before the first probe; doubles after each failed probe.
    pub probe_base: Duration,
    /// Longest delay between probes.
    pub probe_cap: Duration,
    /// An outage longer than this (from its first failed attempt) stops the run as interrupted.
    pub limit: Duration,
}

/// The default `--outage-limit-secs`: 30 minutes.
pub const DEFAULT_OUTAGE_LIMIT: Duration = Duration::from_secs(1800);

impl Default for OutagePolicy {
    fn default() -> Self {
        OutagePolicy {
            // Few enough that an outage is seen within the first round of requests in flight (8 by
            // default), enough that one lost connection does not hold every batch.
            threshold: 3,
            probe_base: Duration::from_secs(1),
            probe_cap: Duration::from_secs(60),
            limit: DEFAULT_OUTAGE_LIMIT,
        }
    }
}

impl OutagePolicy {
    /// The delay before the next probe after `failed` failed probes: `probe_base`, doubled, capped.
    pub fn probe_delay(&self, failed: u32) -> Duration {
        self.probe_base
            .saturating_mul(1u32 << failed.min(20))
            .min(self.probe_cap)
    }
}

/// What an attempt's reply says about the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Some HTTP response arrived: the service is there.
    Answered,
    /// No connection could be made.
    Unreachable {
        /// Refused, DNS, TLS, timeout.
        cause: ConnectCause,
        /// The transport's words.
        detail: String,
    },
    /// Connected, but no response (a request timeout, a connection broken before the status line).
    NoAnswer,
    /// Nothing was sent (the request could not even be signed).
    NotSent,
}

impl Signal {
    /// Reads a reply.
    pub fn of(reply: &Reply) -> Signal {
        if reply.status.is_some() {
            return Signal::Answered;
        }
        match &reply.outcome {
            Outcome::Retryable(Retryable::Unreachable { cause, detail }) => Signal::Unreachable {
                cause: *cause,
                detail: detail.clone(),
            },
            Outcome::Retryable(_) => Signal::NoAnswer,
            // Success and answers from the server always carry a status; a fatal without one was
            // refused before sending.
            _ => Signal::NotSent,
        }
    }
}

/// The outage as the progress line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageView {
    /// When the first attempt of the outage failed.
    pub since: SystemTime,
    /// Why the last attempt could not connect.
    pub cause: ConnectCause,
    /// How long until the next probe; `None` while one is in flight.
    pub next_probe: Option<Duration>,
}

/// Why a batch may not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// The run is stopping.
    Shutdown,
    /// The outage outlasted the limit (the text says where, why and since when).
    GaveUp(String),
}

#[derive(Debug)]
struct Open {
    /// When the next probe may go.
    next_probe: Instant,
    /// A probe is in flight.
    probing: bool,
    /// Probes that failed so far.
    failed_probes: u32,
}

#[derive(Debug, Default)]
struct State {
    policy: OutagePolicy,
    base_url: String,
    /// Attempts in a row that could not connect, across all batches.
    streak: u32,
    /// When the streak's first attempt failed: wall clock for people, tokio's clock for the limit.
    streak_since: Option<(SystemTime, Instant)>,
    /// The last failure to connect.
    cause: Option<(ConnectCause, String)>,
    open: Option<Open>,
    gave_up: Option<String>,
    /// Times the breaker opened.
    outages: u64,
    /// Some request of this run was answered: without one, a wrong base URL is as likely as an outage.
    answered_once: bool,
}

impl State {
    fn deadline(&self) -> Option<Instant> {
        self.streak_since.map(|(_, t)| t + self.policy.limit)
    }

    /// Said when nothing of this run was ever answered.
    fn hint(&self) -> &'static str {
        if self.answered_once {
            ""
        } else {
            "; no request of this run was answered: check the base URL"
        }
    }

    fn give_up(&mut self) -> String {
        if let Some(m) = &self.gave_up {
            return m.clone();
        }
        let (cause, detail) = self
            .cause
            .clone()
            .unwrap_or((ConnectCause::Other, String::new()));
        let since = self
            .streak_since
            .map_or_else(|| "?".to_string(), |(t, _)| utc(t));
        let m = format!(
            "the API at {} was unreachable for longer than the outage limit ({}): {cause} since {since} ({detail}){}; nothing was marked failed",
            self.base_url,
            human(self.policy.limit),
            self.hint(),
        );
        self.gave_up = Some(m.clone());
        m
    }
}

/// The shared breaker.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    /// Bumped on every change a waiting batch must see (opened, closed, probe done, gave up).
    changed: watch::Sender<u64>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(OutagePolicy::default(), "")
    }
}

impl Health {
    /// A closed breaker for the API at `base_url` (named in messages).
    pub fn new(policy: OutagePolicy, base_url: &str) -> Health {
        Health {
            state: Mutex::new(State {
                policy,
                base_url: base_url.to_string(),
                ..State::default()
            }),
            changed: watch::channel(0).0,
        }
    }

    /// Sets the policy and the base URL (before the run's first request).
    pub fn configure(&self, policy: OutagePolicy, base_url: &str) {
        let mut s = self.state.lock().expect("health lock");
        s.policy = policy;
        s.base_url = base_url.to_string();
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Waits until this batch may send: at once while the breaker is closed; while it is open, until
    /// this batch is the one to probe, or the breaker closed. The ticket must be told what the
    /// attempt got ([`Ticket::observe`]); dropped unused, it lets the next batch probe.
    pub async fn pass(&self, stop: &CancellationToken) -> Result<Ticket<'_>, Halt> {
        let mut changed = self.changed.subscribe();
        loop {
            if stop.is_cancelled() {
                return Err(Halt::Shutdown);
            }
            changed.borrow_and_update();
            let until = {
                let mut s = self.state.lock().expect("health lock");
                let now = Instant::now();
                if let Some(m) = &s.gave_up {
                    return Err(Halt::GaveUp(m.clone()));
                }
                let deadline = s.deadline();
                match s.open.as_mut() {
                    None => {
                        return Ok(Ticket {
                            health: self,
                            probe: false,
                            used: false,
                        })
                    }
                    Some(_) if deadline.is_some_and(|d| now >= d) => {
                        let m = s.give_up();
                        drop(s);
                        self.notify();
                        return Err(Halt::GaveUp(m));
                    }
                    Some(open) if !open.probing && now >= open.next_probe => {
                        open.probing = true;
                        return Ok(Ticket {
                            health: self,
                            probe: true,
                            used: false,
                        });
                    }
                    Some(open) => {
                        let next = (!open.probing).then_some(open.next_probe);
                        match (next, deadline) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        }
                    }
                }
            };
            let sleep = async {
                match until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                r = changed.changed() => { let _ = r; }
                _ = stop.cancelled() => return Err(Halt::Shutdown),
            }
        }
    }

    /// Records what an attempt got; `true` when the attempt is not charged to its batch.
    fn observe(&self, signal: &Signal, probe: bool) -> bool {
        let now = Instant::now();
        let mut guard = self.state.lock().expect("health lock");
        // Through a plain reference, so that fields borrow apart.
        let s = &mut *guard;
        let was_open = s.open.is_some();
        let free = match signal {
            Signal::Answered => {
                if s.open.is_some() {
                    let down = s.streak_since.map(|(_, t)| now - t).unwrap_or_default();
                    tracing::warn!(
                        "the API at {} answers again after {}; going on",
                        s.base_url,
                        human(down)
                    );
                    s.open = None;
                }
                s.streak = 0;
                s.streak_since = None;
                s.answered_once = true;
                false
            }
            Signal::Unreachable { cause, detail } => {
                s.streak += 1;
                s.streak_since.get_or_insert((SystemTime::now(), now));
                s.cause = Some((*cause, detail.clone()));
                let policy = s.policy;
                match &mut s.open {
                    // Only the probe reschedules; the others were in flight when it opened.
                    Some(open) if probe => {
                        open.failed_probes += 1;
                        open.probing = false;
                        open.next_probe = now + policy.probe_delay(open.failed_probes);
                    }
                    Some(_) => {}
                    None if s.streak >= policy.threshold => {
                        s.open = Some(Open {
                            next_probe: now + policy.probe_delay(0),
                            probing: false,
                            failed_probes: 0,
                        });
                        s.outages += 1;
                        let since = s.streak_since.map_or_else(String::new, |(t, _)| utc(t));
                        tracing::warn!(
                            "the API at {} is unreachable since {since}: {cause} ({detail}){}; holding every batch and probing with one request (every {} at most); stopping as interrupted if this lasts {}",
                            s.base_url,
                            s.hint(),
                            human(policy.probe_cap),
                            human(policy.limit),
                        );
                    }
                    None => {}
                }
                true
            }
            Signal::NoAnswer => {
                if let (Some(open), true) = (&mut s.open, probe) {
                    // Connected but got no answer: not the answer that closes the breaker.
                    open.failed_probes += 1;
                    open.probing = false;
                    open.next_probe = now + s.policy.probe_delay(open.failed_probes);
                }
                s.open.is_some()
            }
            Signal::NotSent => {
                if let (Some(open), true) = (s.open.as_mut(), probe) {
                    open.probing = false;
                }
                false
            }
        };
        // Batches wait only while it is open: nothing to tell them otherwise.
        let changed = was_open || guard.open.is_some();
        drop(guard);
        if changed {
            self.notify();
        }
        free
    }

    fn release(&self) {
        let mut s = self.state.lock().expect("health lock");
        if let Some(open) = s.open.as_mut() {
            open.probing = false;
        }
        drop(s);
        self.notify();
    }

    /// The current outage, for the progress line.
    pub fn outage(&self) -> Option<OutageView> {
        let s = self.state.lock().expect("health lock");
        let open = s.open.as_ref()?;
        let now = Instant::now();
        Some(OutageView {
            since: s.streak_since.map_or(SystemTime::now(), |(t, _)| t),
            cause: s.cause.as_ref().map_or(ConnectCause::Other, |(c, _)| *c),
            next_probe: (!open.probing).then(|| open.next_probe.saturating_duration_since(now)),
        })
    }

    /// Why the run stopped, when the outage outlasted the limit.
    pub fn gave_up(&self) -> Option<String> {
        self.state.lock().expect("health lock").gave_up.clone()
    }

    /// How many times the breaker opened.
    pub fn outages(&self) -> u64 {
        self.state.lock().expect("health lock").outages
    }
}

/// Leave to send one attempt; see [`Health::pass`].
#[derive(Debug)]
pub struct Ticket<'a> {
    health: &'a Health,
    probe: bool,
    used: bool,
}

impl Ticket<'_> {
    /// Whether this attempt is the probe of an open breaker (what the tests check of a ticket).
    #[cfg(test)]
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records what the attempt got; `true` when it is not charged to its batch.
    pub fn observe(mut self, signal: &Signal) -> bool {
        self.used = true;
        self.health.observe(signal, self.probe)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.used && self.probe {
            self.health.release();
        }
    }
}

/// `HH:MM:SS UTC`.
pub fn utc(t: SystemTime) -> String {
    engagement_api::timefmt::hhmmss_utc(t)
}

/// `400 ms`, `45 s`, `3 min 20 s`, `30 min`.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{} ms", d.as_millis());
    }
    let secs = d.as_secs_f64().round() as u64;
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engagement_api::client::{Fatal, RateLimit};
    use std::sync::Arc;

    const URL: &str = "https://api.example.test";

    fn refused() -> Signal {
        Signal::Unreachable {
            cause: ConnectCause::Refused,
            detail: "tcp connect error: Connection refused (os error 111)".into(),
        }
    }

    fn policy() -> OutagePolicy {
        OutagePolicy {
            threshold: 3,
            probe_base: Duration::from_secs(1),
            probe_cap: Duration::from_secs(8),
            limit: Duration::from_secs(60),
        }
    }

    /// `n` attempts that could not connect, each let through and observed; all are free.
    async fn fail(h: &Health, sd: &CancellationToken, n: usize) {
        for _ in 0..n {
            let t = h.pass(sd).await.expect("passes");
            assert!(
                t.observe(&refused()),
                "an attempt that could not connect is free"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_in_a_row_and_then_lets_one_probe_through() {
        let h = Health::new(policy(), URL);
        let sd = CancellationToken::new();
        fail(&h, &sd, 2).await;
        assert_eq!(h.outage(), None, "below the threshold");
        // Any answer ends the streak, a 5xx included.
        assert!(!h.pass(&sd).await.unwrap().observe(&Signal::Answered));
        fail(&h, &sd, 2).await;
        assert_eq!(h.outage(), None, "the streak began again");
        fail(&h, &sd, 1).await;
        let o = h.outage().expect("open after three in a row");
        assert_eq!(o.cause, ConnectCause::Refused);
        assert_eq!(o.next_probe, Some(Duration::from_secs(1)));
        assert_eq!(h.outages(), 1);

        // No batch passes before the first probe is due; then one, as the probe.
        let start = Instant::now();
        let probe = h.pass(&sd).await.unwrap();
        assert!(probe.is_probe());
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // While it is in flight, every other batch waits.
        assert!(
            tokio::time::timeout(Duration::from_secs(10), h.pass(&sd))
                .await
                .is_err(),
            "a second batch passed while the probe was in flight"
        );
        assert_eq!(h.outage().unwrap().next_probe, None);
        // A probe given back unused (its batch was stopped) lets the next batch probe at once.
        drop(probe);
        let at = Instant::now();
        let probe = h.pass(&sd).await.unwrap();
        assert!(probe.is_probe());
        assert_eq!(at.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_back_off_doubling_up_to_the_cap() {
        let h = Health::new(policy(), URL);
        let sd = CancellationToken::new();
        fail(&h, &sd, 3).await;
        let mut gaps = Vec::new();
        let mut last = Instant::now();
        for _ in 0..7 {
            let probe = h.pass(&sd).await.unwrap();
            assert!(probe.is_probe());
            gaps.push(last.elapsed().as_secs());
            probe.observe(&refused());
            last = Instant::now();
        }
        assert_eq!(gaps, vec![1, 2, 4, 8, 8, 8, 8]);
        // A probe that connected but got no answer does not close the breaker either.
        let probe = h.pass(&sd).await.unwrap();
        assert!(probe.observe(&Signal::NoAnswer), "free while open");
        assert!(h.outage().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_answered_probe_closes_it_and_every_waiting_batch_goes_on() {
        let h = Arc::new(Health::new(policy(), URL));
        let sd = CancellationToken::new();
        fail(&h, &sd, 3).await;
        let probe = h.pass(&sd).await.unwrap();
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let (h, sd) = (h.clone(), sd.clone());
                tokio::spawn(async move {
                    let t = h.pass(&sd).await.expect("passes");
                    (t.is_probe(), Instant::now())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(30)).await;
        let answered_at = Instant::now();
        assert!(
            !probe.observe(&Signal::Answered),
            "an answer is charged as usual"
        );
        for w in waiters {
            let (was_probe, at) = w.await.unwrap();
            assert!(!was_probe);
            assert_eq!(at, answered_at, "released by the answer, not by a timer");
        }
        assert_eq!(h.outage(), None);
        assert_eq!(h.gave_up(), None);
        // Closed again: a failure without an answer on a working connection is the batch's.
        assert!(!h.pass(&sd).await.unwrap().observe(&Signal::NoAnswer));
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_past_the_limit_gives_up_for_good_naming_the_url_and_cause() {
        let h = Arc::new(Health::new(
            OutagePolicy {
                limit: Duration::from_secs(20),
                ..policy()
            },
            URL,
        ));
        let sd = CancellationToken::new();
        let start = Instant::now();
        fail(&h, &sd, 3).await;
        // Probes keep failing until the limit, counted from the first failed attempt.
        let why = loop {
            match h.pass(&sd).await {
                Ok(t) => {
                    t.observe(&refused());
                }
                Err(Halt::GaveUp(why)) => break why,
                Err(Halt::Shutdown) => unreachable!(),
            }
        };
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        assert!(why.contains(URL), "{why}");
        assert!(why.contains("connection refused"), "{why}");
        assert!(why.contains("nothing was marked failed"), "{why}");
        assert!(
            why.contains("check the base URL"),
            "nothing was ever answered: {why}"
        );
        assert_eq!(h.gave_up().as_deref(), Some(why.as_str()));
        // For good: a late answer does not take it back, and every batch is told at once.
        h.observe(&Signal::Answered, false);
        assert!(matches!(h.pass(&sd).await, Err(Halt::GaveUp(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_ends_the_wait() {
        let h = Arc::new(Health::new(policy(), URL));
        let sd = CancellationToken::new();
        let tx = sd.clone();
        fail(&h, &sd, 3).await;
        let _probe = h.pass(&sd).await.unwrap();
        let waiter = {
            let (h, sd) = (h.clone(), sd.clone());
            tokio::spawn(async move { h.pass(&sd).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.cancel();
        assert_eq!(waiter.await.unwrap(), Err(Halt::Shutdown));
    }

    #[test]
    fn replies_are_read_as_answered_unreachable_or_no_answer() {
        let reply = |status, outcome| Reply {
            rate: RateLimit::default(),
            status,
            outcome,
            elapsed: Duration::ZERO,
        };
        let server = Outcome::Retryable(Retryable::Server {
            status: 503,
            errors: vec![],
        });
        assert_eq!(Signal::of(&reply(Some(503), server)), Signal::Answered);
        let broken = Outcome::Retryable(Retryable::Connection("reset".into()));
        assert_eq!(
            Signal::of(&reply(Some(200), broken.clone())),
            Signal::Answered
        );
        assert_eq!(Signal::of(&reply(None, broken)), Signal::NoAnswer);
        assert_eq!(
            Signal::of(&reply(None, Outcome::Retryable(Retryable::Timeout))),
            Signal::NoAnswer
        );
        let tls = Outcome::Retryable(Retryable::Unreachable {
            cause: ConnectCause::Tls,
            detail: "invalid peer certificate".into(),
        });
        assert_eq!(
            Signal::of(&reply(None, tls)),
            Signal::Unreachable {
                cause: ConnectCause::Tls,
                detail: "invalid peer certificate".into()
            }
        );
        let unsigned = Outcome::Fatal(Fatal::Unauthorized { errors: vec![] });
        assert_eq!(Signal::of(&reply(None, unsigned)), Signal::NotSent);
    }
}
