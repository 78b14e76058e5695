//! Progress: an indicatif bar on a terminal (IDs resolved / total, rate, ETA, and a visible
//! "waiting for rate limit until HH:MM:SS" or "API unreachable since HH:MM:SS UTC: <cause>; next probe
//! in N s" state) and the limit on requests in flight (`in flight ≤ 24, adaptive`); off a terminal,
//! a log line every 10 seconds.
//!
//! The rate and the ETA come from the IDs resolved over the last minute ([`Rate`]), waits for the
//! rate limit included: a run that fetches for ten seconds and then waits fifty is going at a sixth
//! of its burst speed, and its ETA says so. (indicatif's own estimate only moves when the position
//! does, so it kept the burst speed through every wait, and took the IDs an earlier life resolved
//! for progress of this one.)

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engage::health::OutageView;
use engage::run::Progress;
use engagement_api::timefmt::hhmmss_utc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// A running display.
pub struct Display {
    task: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

/// How long the rate is averaged over: the API's rate-limit windows are per minute, so a minute
/// holds a whole cycle of fetching and waiting.
const SPAN: Duration = Duration::from_secs(60);

/// Less than this of history gives no rate yet (the first samples say little).
const MIN_SPAN: Duration = Duration::from_secs(5);

/// The recent rate of resolved IDs, from samples of the running count.
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// Records the count of resolved IDs at `at`; forgets what is older than [`SPAN`], keeping one
    /// sample at or beyond its edge so the average covers the whole span.
    pub fn push(&mut self, at: Instant, resolved: u64) {
        self.samples.push_back((at, resolved));
        while self
            .samples
            .get(1)
            .is_some_and(|(t, _)| at.saturating_duration_since(*t) >= SPAN)
        {
            self.samples.pop_front();
        }
    }

    /// IDs per second over the span; `None` until [`MIN_SPAN`] of history.
    pub fn per_sec(&self) -> Option<f64> {
        let ((t0, n0), (t1, n1)) = (self.samples.front()?, self.samples.back()?);
        let secs = t1.saturating_duration_since(*t0);
        (secs >= MIN_SPAN).then(|| n1.saturating_sub(*n0) as f64 / secs.as_secs_f64())
    }

    /// Time to resolve `left` more IDs at the recent rate; `None` while unknown (no history yet,
    /// or nothing resolved over the last minute).
    pub fn eta(&self, left: u64) -> Option<Duration> {
        if left == 0 {
            return Some(Duration::ZERO);
        }
        let r = self.per_sec().filter(|r| *r > 0.0)?;
        Some(Duration::from_secs_f64((left as f64 / r).min(1e9)))
    }
}

/// `1h02m`, `3m05s`, `42s`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// "120 IDs/s, ETA 3m05s" (or what is known of it).
fn rate_text(rate: &Rate, left: u64) -> String {
    match (rate.per_sec(), rate.eta(left)) {
        (None, _) => "ETA …".to_string(),
        (Some(r), Some(eta)) => format!("{r:.0} IDs/s, ETA {}", short_duration(eta)),
        (Some(_), None) => "0 IDs/s over the last minute, ETA unknown".to_string(),
    }
}

/// `in flight ≤ 24, adaptive` (or `in flight ≤ 8` when fixed); empty before the fetch starts.
fn limit_text(limit: Option<(usize, bool)>) -> String {
    match limit {
        Some((n, true)) => format!("in flight ≤ {n}, adaptive"),
        Some((n, false)) => format!("in flight ≤ {n}"),
        None => String::new(),
    }
}

/// `API unreachable since 02:41:07 UTC: connection refused; next probe in 40 s`.
fn outage_text(o: &OutageView) -> String {
    let next = match o.next_probe {
        Some(d) => format!("next probe in {} s", d.as_secs_f64().ceil() as u64),
        None => "probing".to_string(),
    };
    format!(
        "API unreachable since {}: {}; {next}",
        hhmmss_utc(o.since),
        o.cause
    )
}

impl Display {
    /// Starts showing `progress`.
    pub fn start(progress: Arc<Progress>) -> Display {
        let tty = std::io::stderr().is_terminal();
        let bar = tty.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(5));
            b.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} IDs  {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b
        });
        let b2 = bar.clone();
        let task = tokio::spawn(async move {
            let mut last_log = Instant::now();
            let mut rate = Rate::default();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let phase = progress.phase();
                let total = progress.total.load(Ordering::Relaxed);
                let done = progress.resolved.load(Ordering::Relaxed);
                rate.push(Instant::now(), done);
                let mut speed = rate_text(&rate, total.saturating_sub(done));
                let limit = limit_text(progress.concurrency());
                if !limit.is_empty() {
                    speed = format!("{speed}, {limit}");
                }
                // An outage first: while it lasts, the gate's state says nothing.
                let waiting = match (progress.health.outage(), progress.waiting_until()) {
                    (Some(o), _) => Some(outage_text(&o)),
                    (None, Some(t)) => {
                        Some(format!("waiting for rate limit until {}", hhmmss_utc(t)))
                    }
                    (None, None) => None,
                };
                if let Some(b) = &b2 {
                    b.set_prefix(phase);
                    if phase == "ingest" {
                        b.set_length(0);
                        b.set_message(format!(
                            "{} lines read",
                            progress.ingested.load(Ordering::Relaxed)
                        ));
                    } else {
                        b.set_length(total);
                        b.set_position(done);
                        b.set_message(match &waiting {
                            Some(w) => format!("{speed}  {w}"),
                            None => speed,
                        });
                    }
                } else if last_log.elapsed() >= Duration::from_secs(10) {
                    last_log = Instant::now();
                    eprintln!(
                        "[{phase}] {done}/{total} IDs resolved, {speed}, {} lines read, {} requests, {} retries, {} rate-limited, {} without connection{}",
                        progress.ingested.load(Ordering::Relaxed),
                        progress.fetch.requests.load(Ordering::Relaxed),
                        progress.fetch.retries.load(Ordering::Relaxed),
                        progress.fetch.rate_limited.load(Ordering::Relaxed),
                        progress.fetch.unreachable.load(Ordering::Relaxed),
                        waiting.map(|w| format!(", {w}")).unwrap_or_default()
                    );
                }
            }
        });
        Display { task, bar }
    }

    /// Stops the display.
    pub fn finish(self) {
        self.task.abort();
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples every 200 ms, as the display takes them, from `resolved(ms since start)`.
    fn sampled(secs: u64, resolved: impl Fn(u64) -> u64) -> Rate {
        let t0 = Instant::now();
        let mut r = Rate::default();
        for ms in (0..=secs * 1000).step_by(200) {
            r.push(t0 + Duration::from_millis(ms), resolved(ms));
        }
        r
    }

    #[test]
    fn the_limit_in_flight_says_whether_it_adapts() {
        assert_eq!(limit_text(Some((24, true))), "in flight ≤ 24, adaptive");
        assert_eq!(limit_text(Some((8, false))), "in flight ≤ 8");
        assert_eq!(limit_text(None), "");
    }

    #[test]
    fn waits_for_the_rate_limit_slow_the_rate_and_lengthen_the_eta() {
        // A minute of 10 s bursts at 1,000 IDs/s, each followed by 50 s of waiting.
        let cycle = |ms: u64| (ms / 60_000) * 10_000 + (ms % 60_000).min(10_000);
        let r = sampled(300, cycle);
        let per_sec = r.per_sec().unwrap();
        assert!((per_sec - 10_000.0 / 60.0).abs() < 1.0, "{per_sec}");
        let eta = r.eta(100_000).unwrap().as_secs();
        assert!(
            (595..=605).contains(&eta),
            "{eta} s, not the 100 s of the burst speed"
        );
    }

    #[test]
    fn ids_resolved_by_an_earlier_life_are_not_progress() {
        // A resume that starts at 50,000 and resolves 100 IDs/s.
        let r = sampled(30, |ms| 50_000 + ms / 10);
        assert!((r.per_sec().unwrap() - 100.0).abs() < 0.5);
        assert_eq!(r.eta(6_000).unwrap().as_secs(), 60);
    }

    #[test]
    fn no_rate_without_history_and_no_eta_while_nothing_moves() {
        assert_eq!(sampled(2, |ms| ms).per_sec(), None);
        let stalled = sampled(120, |ms| if ms < 30_000 { ms } else { 30_000 });
        assert_eq!(stalled.per_sec(), Some(0.0));
        assert_eq!(stalled.eta(10), None);
        assert_eq!(stalled.eta(0), Some(Duration::ZERO));
        assert_eq!(
            rate_text(&stalled, 10),
            "0 IDs/s over the last minute, ETA unknown"
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(short_duration(Duration::from_secs(3720)), "1h02m");
    }

    use engagement_api::client::ConnectCause;
    use std::time::SystemTime;

    #[test]
    fn the_outage_text_says_since_when_why_and_when_the_next_probe_goes() {
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_016_067);
        let mut o = OutageView {
            since,
            cause: ConnectCause::Refused,
            next_probe: Some(Duration::from_millis(39_200)),
        };
        assert_eq!(
            outage_text(&o),
            "API unreachable since 02:41:07 UTC: connection refused; next probe in 40 s"
        );
        o.next_probe = None;
        o.cause = ConnectCause::Dns;
        assert_eq!(
            outage_text(&o),
            "API unreachable since 02:41:07 UTC: DNS lookup failed; probing"
        );
    }
}
