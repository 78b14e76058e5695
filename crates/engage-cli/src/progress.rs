//! Progress: an indicatif bar on a terminal (IDs resolved / total, rate, ETA, and a visible
//! "waiting for rate limit until HH:MM:SS" or "API unreachable since HH:MM:SS UTC: <cause>; next probe
//! in N s" state); off a terminal, a log line every 10 seconds.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use engage::health::OutageView;
use engage::run::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// A running display.
pub struct Display {
    task: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

fn hhmmss(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // UTC: the local offset cannot be read soundly from a multi-threaded process.
    match time::OffsetDateTime::from_unix_timestamp(secs as i64) {
        Ok(t) => format!("{:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second()),
        Err(_) => "?".into(),
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
        hhmmss(o.since),
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
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {pos}/{len} IDs  {per_sec}  ETA {eta}  {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        });
        let b2 = bar.clone();
        let task = tokio::spawn(async move {
            let mut last_log = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let phase = progress.phase();
                let total = progress.total.load(Ordering::Relaxed);
                let done = progress.resolved.load(Ordering::Relaxed);
                let waiting = progress.waiting_until();
                // An outage first: while it lasts, the gate's state says nothing.
                let msg = match (progress.health.outage(), waiting) {
                    (Some(o), _) => outage_text(&o),
                    (None, Some(t)) => format!("waiting for rate limit until {}", hhmmss(t)),
                    (None, None) => String::new(),
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
                        b.set_message(msg);
                    }
                } else if last_log.elapsed() >= Duration::from_secs(10) {
                    last_log = std::time::Instant::now();
                    eprintln!(
                        "[{phase}] {done}/{total} IDs resolved, {} lines read, {} requests, {} retries, {} rate-limited, {} without connection{}",
                        progress.ingested.load(Ordering::Relaxed),
                        progress.fetch.requests.load(Ordering::Relaxed),
                        progress.fetch.retries.load(Ordering::Relaxed),
                        progress.fetch.rate_limited.load(Ordering::Relaxed),
                        progress.fetch.unreachable.load(Ordering::Relaxed),
                        if msg.is_empty() { String::new() } else { format!(", {msg}") }
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
    use engagement_api::client::ConnectCause;

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
