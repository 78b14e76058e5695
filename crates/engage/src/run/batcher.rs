//! The batcher stage: pending IDs from the store, cut into batches for the fetch stage.
//!
//! It reads keyset pages of pending IDs in ascending order from its own connection (WAL lets it read
//! while the writer commits). IDs in flight are never offered again because the cursor only moves
//! forward. A batch holds IDs at the same window (after a resume, a multi-window run has IDs at
//! different windows) and of the same route (one set of credentials per request), so IDs are kept in
//! buckets until a bucket fills a batch or the pages run out.
//!
//! While the inputs are still being ingested, the batcher either follows the ingest (a fresh store:
//! the ingest only ever adds IDs above the ones it has added, so the cursor can follow it) or waits
//! for it to finish (a store with IDs from an earlier life, whose new IDs need not come after them).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::fetching::Batch;
use super::watermark::Watermark;
use crate::route::{Route, Routes};
use crate::store::{Store, StoreError};

/// How far the ingest has got, as the writer reports it to the batcher.
#[derive(Debug, Default, Clone, Copy)]
pub struct IngestState {
    /// Blocks of IDs committed.
    pub blocks: u64,
    /// The ingest is complete.
    pub done: bool,
    /// The ingest stopped for good (reader error, writer gone): nothing more will come.
    pub abandoned: bool,
}

/// The writer's reports on the ingest, which the batcher waits on.
#[derive(Default)]
pub struct IngestSignal {
    state: Mutex<IngestState>,
    changed: Condvar,
}

impl IngestSignal {
    /// A signal for an ingest that is already complete (or not needed).
    pub fn done() -> IngestSignal {
        IngestSignal {
            state: Mutex::new(IngestState {
                done: true,
                ..IngestState::default()
            }),
            changed: Condvar::new(),
        }
    }

    /// Changes the state and wakes the batcher.
    pub fn update(&self, f: impl FnOnce(&mut IngestState)) {
        f(&mut self.state.lock().expect("signal lock"));
        self.changed.notify_all();
    }

    fn get(&self) -> IngestState {
        *self.state.lock().expect("signal lock")
    }

    /// Waits (at most `timeout`) for anything after `seen` blocks.
    fn wait_past(&self, seen: u64, timeout: Duration) {
        let state = self.state.lock().expect("signal lock");
        let _ = self.changed.wait_timeout_while(state, timeout, |s| {
            s.blocks == seen && !s.done && !s.abandoned
        });
    }
}

/// What the batcher works with.
pub struct Batcher {
    /// Its own read connection to the store.
    pub cursor: Store,
    /// IDs per request.
    pub batch_size: usize,
    /// Which credentials serve which owner.
    pub routes: Arc<Routes>,
    /// The ingest's progress.
    pub ingest: Arc<IngestSignal>,
    /// True when the cursor may follow an unfinished ingest (a fresh store); false to wait for it.
    pub follow: bool,
    /// Shared with the writer, which settles what the batcher hands out.
    pub watermark: Arc<Mutex<Watermark>>,
    /// Where reading starts: every ID below it is final.
    pub start: u64,
}

impl Batcher {
    /// Reads and sends batches until every pending ID is handed out, the fetch stage is gone, or the
    /// run stops. Runs on a blocking thread.
    pub fn run(self, out: mpsc::Sender<Batch>, stop: CancellationToken) -> Result<(), StoreError> {
        let batch_size = self.batch_size;
        let mut buckets: BTreeMap<(usize, Route), Vec<u64>> = BTreeMap::new();
        let mut after = self.start.saturating_sub(1);
        // The lowest ID not handed out: a bucket's first, or where the cursor reads next.
        let unsent = |buckets: &BTreeMap<(usize, Route), Vec<u64>>, after: u64| {
            buckets
                .values()
                .filter_map(|ids| ids.first().copied())
                .min()
                .unwrap_or(after.saturating_add(1))
        };
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            // Read before the page: if the ingest was done then, the page sees all of it.
            let ingest = self.ingest.get();
            if ingest.abandoned {
                return Ok(());
            }
            if !ingest.done && !self.follow {
                self.ingest
                    .wait_past(ingest.blocks, Duration::from_millis(50));
                continue;
            }
            let page = self.cursor.pending_windows_after(after, batch_size * 16)?;
            if page.is_empty() && !ingest.done {
                self.ingest
                    .wait_past(ingest.blocks, Duration::from_millis(50));
                continue;
            }
            let last_page = page.is_empty();
            if let Some((id, _, _)) = page.last() {
                after = *id;
            }
            for (id, w, account) in page {
                let route = self.routes.route(account.as_deref());
                buckets.entry((w, route)).or_default().push(id);
            }
            // Set before the sends (which wait for the fetchers) and again after them.
            self.set_unsent(unsent(&buckets, after));
            let full: Vec<(usize, Route)> = buckets
                .iter()
                .filter(|(_, ids)| last_page || ids.len() >= batch_size)
                .map(|(w, _)| *w)
                .collect();
            for key in full {
                let ids = buckets.remove(&key).unwrap_or_default();
                let chunks: Vec<&[u64]> = ids.chunks(batch_size).collect();
                for (k, chunk) in chunks.iter().enumerate() {
                    if chunk.len() < batch_size && !last_page {
                        buckets.entry(key).or_default().extend_from_slice(chunk);
                        continue;
                    }
                    // Handed out from here on; held back: the rest of this bucket and the others.
                    let held = chunks
                        .get(k + 1)
                        .map_or(u64::MAX, |c| c[0])
                        .min(unsent(&buckets, after));
                    self.watermark.lock().expect("watermark lock").hand_out(
                        chunk[0],
                        chunk.len(),
                        held,
                    );
                    let batch = Batch {
                        ids: chunk.to_vec(),
                        window: key.0,
                        route: key.1,
                    };
                    if out.blocking_send(batch).is_err() {
                        return Ok(());
                    }
                }
            }
            self.set_unsent(unsent(&buckets, after));
            if last_page {
                return Ok(());
            }
        }
    }

    fn set_unsent(&self, unsent: u64) {
        self.watermark
            .lock()
            .expect("watermark lock")
            .set_unsent(unsent);
    }
}
