//! The ingest stage: reads every input once, in constant memory, and hands the writer the rejected
//! lines as they come, then the unique IDs in ascending order (sorted through temporary files beside
//! the store when they do not fit in memory, see [`crate::sorted`]), then the line counters.
//!
//! The same stage serves a fresh store and a resumed one whose ingest did not finish: the store's
//! `INSERT OR IGNORE` makes a second reading of what an earlier life ingested add nothing.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::writer::IngestMsg;
use super::{tuning, Progress, RunError};
use crate::ids::{self, IdsError, InputSource, ReadOptions, Record};
use crate::shard::Shard;
use crate::sorted::{self, Sorter};
use crate::store::{IngestCounts, RejectRow, INGEST_BLOCK};

/// What reading the inputs needs.
pub struct IngestPlan {
    /// The inputs, in order.
    pub sources: Vec<InputSource>,
    /// Format and column options.
    pub read: ReadOptions,
    /// Read inputs in which next to nothing is a Tweet ID, instead of refusing them.
    pub accept_rejects: bool,
    /// The owner of IDs without an `account` column value.
    pub default_account: Option<String>,
    /// Per input (by index), the group `--group-from` gives its IDs.
    pub source_groups: Vec<Option<String>>,
    /// The group of IDs that have none from their CSV group cell or their input (`--group`).
    pub default_group: Option<String>,
    /// `--shard I/N`: only the IDs of this shard are kept.
    pub shard: Option<Shard>,
    /// Where sorted runs are spilled (beside the store: the inputs can be larger than memory).
    pub spill_dir: PathBuf,
}

/// Starts the stage on its own thread. It stops early, without error, when the run stops or the
/// writer is gone; the ingest is then left unfinished, for the next life. A read error cancels the run.
pub fn spawn(
    plan: IngestPlan,
    out: mpsc::Sender<IngestMsg>,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> std::thread::JoinHandle<Result<(), RunError>> {
    std::thread::spawn(move || {
        let _span = tracing::debug_span!("ingest").entered();
        let r = read_inputs(plan, &progress, &stop, |m| out.blocking_send(m).is_ok());
        if r.is_err() {
            stop.cancel();
        }
        r
    })
}

/// Reads every input to `send`; see the module comment.
fn read_inputs(
    plan: IngestPlan,
    progress: &Progress,
    stop: &CancellationToken,
    mut send: impl FnMut(IngestMsg) -> bool,
) -> Result<(), RunError> {
    let dir = plan.spill_dir.clone();
    let spill = |e: std::io::Error| RunError::Spill {
        dir: dir.clone(),
        source: e,
    };
    let mut reader = ids::Reader::new(plan.sources, plan.read);
    let run = tuning("ENGAGE_SORT_RUN").map_or(sorted::RUN, |n| n as usize);
    let mut sorter = Sorter::new(&plan.spill_dir, run);
    let mut counts = IngestCounts::default();
    let mut rejects: Vec<RejectRow> = Vec::new();
    // The input being read, to refuse one in which next to nothing is a Tweet ID once it is read to
    // its end (before any ID is handed on, so before anything is fetched). Its figures are the
    // differences of the run's counters, so a line costs one comparison more.
    let mut file = FileTally::default();
    // Every line read, in this shard or not (the progress line's figure).
    let mut lines = 0u64;
    while let Some(item) = reader.next_record() {
        let p = item?;
        if p.source_index != file.index {
            file.check(plan.accept_rejects)?;
            file = FileTally::start(p.source_index);
        }
        lines += 1;
        file.lines += 1;
        match p.record {
            // Another shard's ID: not this store's line. Each shard counts the lines of its own
            // IDs (and their duplicates), every shard the rejects, so the merge adds up to the
            // whole run's counters (docs/sharding.md).
            Record::Id { id, .. } if plan.shard.is_some_and(|s| !s.owns(id)) => {}
            Record::Id { id, account, group } => {
                counts.input_lines += 1;
                let account = account.as_deref().or(plan.default_account.as_deref());
                // Most cells name one group: only several names need a list of their own.
                let cell = group.as_deref();
                let several: Vec<&str> = match cell {
                    Some(c) if c.contains(ids::GROUP_SEPARATOR) => ids::split_groups(c).collect(),
                    _ => Vec::new(),
                };
                let one = match cell {
                    Some(c) if !c.contains(ids::GROUP_SEPARATOR) => Some(c),
                    Some(_) if !several.is_empty() => None,
                    // No cell, or one of separators only: the input's group, else `--group`.
                    _ => plan
                        .source_groups
                        .get(p.source_index)
                        .and_then(Option::as_deref)
                        .or(plan.default_group.as_deref()),
                };
                let groups: &[&str] = match &one {
                    Some(g) => std::slice::from_ref(g),
                    None => &several,
                };
                sorter.push(id, account, groups).map_err(spill)?
            }
            Record::Reject(r) => {
                counts.input_lines += 1;
                counts.rejected_lines += 1;
                file.rejected += 1;
                if file.first.is_none() {
                    file.first = Some((r.source.clone(), r.line, r.reason.clone()));
                }
                rejects.push(RejectRow {
                    source_idx: p.source_index,
                    source: r.source,
                    line: r.line,
                    content: r.content,
                    reason: r.reason,
                });
                if rejects.len() == INGEST_BLOCK
                    && !send(IngestMsg::Rejects(std::mem::take(&mut rejects)))
                {
                    return Ok(());
                }
            }
        }
        if lines.is_multiple_of(65_536) {
            progress.ingested.store(lines, Ordering::Relaxed);
            if stop.is_cancelled() {
                return Ok(());
            }
        }
    }
    progress.ingested.store(lines, Ordering::Relaxed);
    file.check(plan.accept_rejects)?;
    if !rejects.is_empty() && !send(IngestMsg::Rejects(rejects)) {
        return Ok(());
    }
    let read = sorter.read();
    let mut merged = sorter.finish().map_err(spill)?;
    // The names first: the blocks' memberships refer to them by index.
    if !merged.group_names().is_empty() && !send(IngestMsg::Groups(merged.group_names().to_vec())) {
        return Ok(());
    }
    loop {
        let mut block = Vec::with_capacity(INGEST_BLOCK);
        let mut memberships = Vec::new();
        if !merged
            .next_block(INGEST_BLOCK, &mut block, &mut memberships)
            .map_err(spill)?
        {
            break;
        }
        if stop.is_cancelled() || !send(IngestMsg::Ids(block, memberships)) {
            return Ok(());
        }
    }
    counts.duplicate_ids = read - merged.unique();
    let (group_sizes, shared) = merged.group_counts();
    send(IngestMsg::Done(counts, group_sizes, shared));
    Ok(())
}

/// One input's figures while it is read (see [`ids::mostly_rejected`]): every line of it, whatever
/// the shard, so that every shard (and the whole run) judges an input alike.
#[derive(Default)]
struct FileTally {
    /// Its index in the input list.
    index: usize,
    /// Its lines that held an ID or a reject.
    lines: u64,
    /// Its rejected lines.
    rejected: u64,
    /// Its first reject: (input name, line, reason).
    first: Option<(String, u64, String)>,
}

impl FileTally {
    fn start(index: usize) -> FileTally {
        FileTally {
            index,
            ..FileTally::default()
        }
    }

    /// Refuses the input, read to its end, when next to nothing in it was a Tweet ID, unless such
    /// inputs are accepted.
    fn check(&self, accept: bool) -> Result<(), RunError> {
        let (lines, rejected) = (self.lines, self.rejected);
        match &self.first {
            Some((path, first_line, first_reason))
                if !accept && ids::mostly_rejected(lines, rejected) =>
            {
                Err(IdsError::MostlyRejected {
                    path: path.clone(),
                    lines,
                    rejected,
                    first_line: *first_line,
                    first_reason: first_reason.clone(),
                }
                .into())
            }
            _ => Ok(()),
        }
    }
}
