//! The report pass: the scan of the outcomes that writes `tweets.csv` and `outcomes.csv` and fills
//! the top-N heaps, run beside the fetch over the IDs below the committed resume watermark (final, so
//! no later commit changes them). Only the rest is left for the end of the run.
//!
//! The pass saves its place in the store now and then, so a killed run's next life goes on where it
//! stopped instead of rescanning what the earlier life wrote.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engagement_api::Metric;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{tuning, RunError};
use crate::report::{Scan, ScanCheckpoint};
use crate::store::{MetaKey, Store};

/// The pass an earlier life saved, or a new one (whose files are started afresh).
pub fn begin(
    store: &Store,
    out: &Path,
    metrics: &[Metric],
    top_n: usize,
) -> Result<Scan, RunError> {
    let min_impressions = store.min_impressions()?;
    let saved = store
        .meta(MetaKey::ReportPass)?
        .and_then(|raw| serde_json::from_str::<ScanCheckpoint>(&raw).ok())
        .and_then(|c| Scan::resume(out, metrics, top_n, &c))
        // A pass that ranked rates with another minimum is started afresh.
        .filter(|scan| scan.min_impressions() == min_impressions);
    match saved {
        Some(scan) => {
            tracing::info!(from = scan.upto(), "report pass resumed");
            Ok(scan)
        }
        None => {
            // Forgotten before its files are started again.
            store.delete_meta(MetaKey::ReportPass)?;
            Ok(Scan::start(out, metrics, top_n)?.with_min_impressions(min_impressions))
        }
    }
}

/// Runs the pass on its own thread until the writer is done (its watermark sender dropped), then
/// scans once more up to the last watermark and returns the pass. A failure cancels the run.
pub fn spawn(
    pass: Scan,
    db: PathBuf,
    mut committed: watch::Receiver<u64>,
    stop: CancellationToken,
) -> JoinHandle<Result<Scan, RunError>> {
    std::thread::spawn(move || {
        let r = follow(pass, &db, &mut committed);
        if r.is_err() {
            stop.cancel();
        }
        r
    })
}

fn follow(
    mut pass: Scan,
    db: &Path,
    committed: &mut watch::Receiver<u64>,
) -> Result<Scan, RunError> {
    let store = Store::open_cursor(db)?;
    let mut saved_at = (pass.upto(), Instant::now());
    let every = Duration::from_millis(tuning("ENGAGE_REPORT_SAVE_MS").unwrap_or(500));
    loop {
        // Read before the scan: once the writer is gone, this scan is the last.
        let last = committed.has_changed().is_err();
        let to = *committed.borrow_and_update();
        pass.advance(&store, Some(to))?;
        if last {
            return Ok(pass);
        }
        // Saved now and then (a write beside the run's writer, so not often).
        if pass.upto() > saved_at.0 && saved_at.1.elapsed() >= every {
            let c = pass.checkpoint()?;
            store.set_meta(
                MetaKey::ReportPass,
                &serde_json::to_string(&c).expect("serializes"),
            )?;
            saved_at = (pass.upto(), Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
