//! Progress: an indicatif bar on a terminal (IDs resolved / total, rate, ETA, and a visible
//! "waiting for rate limit until HH:MM:SS" state); off a terminal, a log line every 10 seconds.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
                let msg = match waiting {
                    Some(t) => format!("waiting for rate limit until {}", hhmmss(t)),
                    None => String::new(),
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
                        "[{phase}] {done}/{total} IDs resolved, {} lines read, {} requests, {} retries, {} rate-limited{}",
                        progress.ingested.load(Ordering::Relaxed),
                        progress.fetch.requests.load(Ordering::Relaxed),
                        progress.fetch.retries.load(Ordering::Relaxed),
                        progress.fetch.rate_limited.load(Ordering::Relaxed),
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
