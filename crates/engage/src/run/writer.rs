//! The writer stage: the one connection that writes the store during a run.
//!
//! It takes two inputs: the fetch stage's [`Settled`] answers and, while the inputs are read, the
//! ingest's blocks ([`IngestMsg`]). Answers go first: each is one transaction, or several queued ones
//! together (at most [`GROUP`]), each ingest block its own. With every answer it settles the batch's
//! IDs in the resume [`Watermark`] and records the new watermark in the same transaction; the
//! committed watermark is published to the report pass. When a write fails the writer cancels the run
//! (no new request is sent for answers that could not be kept) and returns the error; everything
//! committed before stays, and the same command resumes once the cause is fixed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use engagement_api::Metric;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::batcher::IngestSignal;
use super::watermark::Watermark;
use super::Progress;
use crate::outcome::{Settled, Status};
use crate::store::{IngestCounts, RejectRow, Store, StoreError};

/// Answers written in one transaction at most, when they queue up.
const GROUP: usize = 64;

/// What the ingest stage hands the writer.
#[derive(Debug)]
pub enum IngestMsg {
    /// The group names, before any block: [`IngestMsg::Ids`]' memberships refer to them by index.
    Groups(Vec<String>),
    /// Unique IDs, ascending, with their accounts; and memberships `(id, group index)`, ascending.
    Ids(Vec<(u64, Option<String>)>, Vec<(u64, u32)>),
    /// Rejected lines, in input order.
    Rejects(Vec<RejectRow>),
    /// The inputs are read to the end: the line counters, each group's unique IDs (by index) and
    /// how many IDs are in two groups or more.
    Done(IngestCounts, Vec<u64>, u64),
}

/// The writer and what it reports to.
pub struct Writer {
    /// The store, written only here during a run.
    pub store: Store,
    /// The run's metrics, in store order.
    pub metrics: Vec<Metric>,
    /// Shared with the batcher, which hands out what the writer settles.
    pub watermark: Arc<Mutex<Watermark>>,
    /// Tells the batcher how far the ingest has got.
    pub ingest: Arc<IngestSignal>,
    /// The committed watermark, for the report pass; dropped when the writer ends.
    pub committed: watch::Sender<u64>,
    /// Counters for the progress display.
    pub progress: Arc<Progress>,
    /// The store's number of each group, by the ingest's index ([`IngestMsg::Groups`]).
    pub group_ids: Vec<i64>,
}

enum Next {
    Settled(Settled),
    Ingest(IngestMsg),
    Closed,
}

impl Writer {
    /// Writes until both inputs are closed; returns the store. On a failed write it cancels `stop`.
    /// Runs on its own thread; `rt` is the runtime the channels belong to.
    pub fn run(
        mut self,
        mut settled: mpsc::Receiver<Settled>,
        mut ingest: mpsc::Receiver<IngestMsg>,
        stop: CancellationToken,
        rt: Handle,
    ) -> Result<Store, StoreError> {
        let mut group = Vec::with_capacity(GROUP);
        loop {
            let next = rt.block_on(async {
                tokio::select! {
                    biased;
                    Some(s) = settled.recv() => Next::Settled(s),
                    Some(m) = ingest.recv() => Next::Ingest(m),
                    else => Next::Closed,
                }
            });
            let written = match next {
                Next::Settled(s) => {
                    group.push(s);
                    while group.len() < GROUP {
                        match settled.try_recv() {
                            Ok(s) => group.push(s),
                            Err(_) => break,
                        }
                    }
                    self.record(&mut group)
                }
                Next::Ingest(m) => self.ingest(m),
                Next::Closed => return Ok(self.store),
            };
            if let Err(e) = written {
                tracing::error!(store = %self.store.path().display(), "writing the store failed: {e}");
                stop.cancel();
                return Err(e);
            }
        }
    }

    /// Commits a group of answers with the watermark they leave.
    fn record(&mut self, group: &mut Vec<Settled>) -> Result<(), StoreError> {
        let _span = tracing::debug_span!("commit", answers = group.len()).entered();
        let done_below = {
            let mut w = self.watermark.lock().expect("watermark lock");
            for s in group.iter() {
                w.settle_response(s);
            }
            w.low()
        };
        crate::failpoint::hit("before-commit");
        if crate::failpoint::fails("commit-error") {
            return Err(StoreError::Sqlite {
                path: self.store.path().to_path_buf(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    Some("database or disk is full (failpoint commit-error)".into()),
                ),
            });
        }
        let finals = self.store.record(&self.metrics, group, Some(done_below))?;
        self.committed.send_if_modified(|w| {
            let higher = done_below > *w;
            *w = (*w).max(done_below);
            higher
        });
        crate::failpoint::hit("after-commit");
        let others = group
            .iter()
            .flat_map(|s| &s.outcomes)
            .filter(|o| o.status != Status::Ok)
            .count();
        self.progress
            .resolved
            .fetch_add(finals + others as u64, Ordering::Relaxed);
        group.clear();
        Ok(())
    }

    /// Writes one ingest message in its own transaction.
    fn ingest(&mut self, msg: IngestMsg) -> Result<(), StoreError> {
        let new = write_ingest(&mut self.store, &msg, &mut self.group_ids)?;
        self.progress.total.fetch_add(new, Ordering::Relaxed);
        let (block, done) = match msg {
            IngestMsg::Ids(..) => (1, false),
            IngestMsg::Rejects(_) | IngestMsg::Groups(_) => (0, false),
            IngestMsg::Done(..) => (0, true),
        };
        self.ingest.update(|s| {
            s.blocks += block;
            s.done |= done;
        });
        Ok(())
    }
}

/// Writes one ingest message in its own transaction; returns how many IDs were new to the store.
/// `group_ids` is set by the groups message and maps the memberships of the blocks after it.
fn write_ingest(
    store: &mut Store,
    msg: &IngestMsg,
    group_ids: &mut Vec<i64>,
) -> Result<u64, StoreError> {
    let tx = store.ingest_tx()?;
    let mut new = 0;
    let mut finished = None;
    match msg {
        IngestMsg::Groups(names) => *group_ids = tx.insert_groups(names)?,
        IngestMsg::Ids(ids, memberships) => {
            new = tx.insert_ids(ids)?;
            if !memberships.is_empty() {
                tx.insert_memberships(memberships, group_ids)?;
            }
        }
        IngestMsg::Rejects(rejects) => {
            for r in rejects {
                tx.insert_reject(r)?;
            }
        }
        IngestMsg::Done(counts, sizes, shared) => {
            if !group_ids.is_empty() {
                tx.set_group_counts(group_ids, sizes, *shared)?;
            }
            finished = Some(*counts)
        }
    }
    tx.commit(finished)?;
    Ok(new)
}
