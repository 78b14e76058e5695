//! `engage history add`: one finished run store into the history, in one write transaction.
//!
//! A `/totals` run becomes a snapshot at its "as of" time. Added in date order (the nightly case),
//! it is merged with `cur` alone: for every Tweet whose state changed, `cur` takes the new state and
//! the snapshot gets the row that leads back to the old one. A run added between two held
//! snapshots (a backfill) is merged with the rows of the snapshots after it instead, and the next
//! one's rows are rewritten to lead back to it. The history is read through a second connection
//! while the first one writes: in WAL mode it reads the history as it was before this add,
//! whatever is written meanwhile. `/28hr` and `/historical` runs add their buckets; a bucket held
//! from a run of an earlier "as of" is replaced, one from a later run is kept.

use std::path::{Path, PathBuf};

use engagement_api::{Endpoint, Metric};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::scan::{statements, Merger};
use super::{state, Change, History, HistoryError, TweetState};
use crate::outcome::Status;
use crate::run::OpenRun;
use crate::store::{MetaKey, Store};

/// When a run's values are "as of".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The time the run store records (`meta.fetched_at`).
    Recorded,
    /// This time (`--as-of`), for a store that does not record one or to correct it.
    At(OffsetDateTime),
}

/// What an add did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The run store.
    pub db: PathBuf,
    /// Its endpoint.
    pub endpoint: Endpoint,
    /// Its "as of" time.
    pub as_of: OffsetDateTime,
    /// Unique IDs in it.
    pub ids: u64,
    /// The history held it already: nothing was changed.
    pub already: bool,
    /// Tweets whose status or values differ from the snapshot before this one (all of them for the
    /// first).
    pub changed: u64,
    /// Values that differ.
    pub values: u64,
    /// `snap` rows written (on a backfill, the later snapshot's rewritten rows included).
    pub rows: u64,
    /// Buckets written (time series).
    pub buckets: u64,
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Ok => state::OK,
        Status::Unavailable => state::UNAVAILABLE,
        Status::Forbidden => state::FORBIDDEN,
        Status::Failed | Status::Pending => state::FAILED,
    }
}

/// Opens a run store to add it, as `engage report` does (`run::open_run`) but without reading
/// every page first (`PRAGMA quick_check`): the add reads each page once anyway, and damage found
/// then is the same error (exit 5). A whole check would add a fifth to a nightly add.
fn open_store(db: &Path) -> Result<OpenRun, HistoryError> {
    Ok(crate::run::open_run_with(db, Store::open_cursor)?)
}

/// Adds the finished run in store `db` to the history at `history` (created if there is none).
/// Adding a run the history holds (same identity, same "as of") changes nothing.
pub fn add(history: &Path, db: &Path, as_of: AsOf) -> Result<Added, HistoryError> {
    let run = open_store(db)?;
    if let Some(shard) = &run.identity.shard {
        return Err(HistoryError::Usage(format!(
            "{} is shard {shard} of a run, not a whole run: merge the shards (`engage merge --history`) and add the merged store",
            db.display()
        )));
    }
    if let Some(why) = run.store.unfinished()? {
        return Err(HistoryError::Unfinished { db: db.into(), why });
    }
    let unique = run.store.unique_count()?;
    let fetched_at = run.store.meta(MetaKey::FetchedAt)?;
    let as_of = match as_of {
        AsOf::At(t) => t,
        AsOf::Recorded => {
            let raw = fetched_at
                .clone()
                .ok_or_else(|| HistoryError::NoAsOf { db: db.into() })?;
            OffsetDateTime::parse(&raw, &Rfc3339).map_err(|e| {
                HistoryError::Usage(format!(
                    "{}: unreadable fetched_at `{raw}` ({e}); give the time with --as-of",
                    db.display()
                ))
            })?
        }
    };
    let as_of_secs = as_of.unix_timestamp();
    let identity = run.store.meta(MetaKey::Identity)?.unwrap_or_default();
    let key = {
        let mut h = Sha256::new();
        // The identity is the same every night for one collection; the fetch time (to the
        // nanosecond) tells its runs apart, the "as of" time the same store added at two times.
        h.update(identity.as_bytes());
        h.update(format!("\n{}\n{as_of_secs}", fetched_at.as_deref().unwrap_or("")).as_bytes());
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut added = Added {
        db: db.into(),
        endpoint: run.endpoint,
        as_of,
        ids: unique,
        already: false,
        changed: 0,
        values: 0,
        rows: 0,
        buckets: 0,
    };

    let mut hist = History::open(history, true)?;
    let path = hist.path.clone();
    let sql = |source| HistoryError::Sqlite {
        path: path.clone(),
        source,
    };
    // The write lock first: what is read below is then what this add changes.
    let tx = hist
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let held: Option<i64> = tx
        .query_row("SELECT id FROM runs WHERE key = ?1", [&key], |r| r.get(0))
        .optional()
        .map_err(sql)?;
    if held.is_some() {
        added.already = true;
        return Ok(added);
    }
    let series = run.identity.series.clone();
    if let Some(g) = &series {
        let other: Option<String> = tx
            .query_row(
                "SELECT series FROM runs WHERE series IS NOT NULL AND series <> ?1 LIMIT 1",
                [g],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        if let Some(other) = other {
            return Err(HistoryError::Usage(format!(
                "{}: series by {g}, but the history {} holds series by {other}; keep one granularity per history",
                db.display(),
                path.display()
            )));
        }
    }
    // The snapshots held, oldest first, before this one is added; this one goes at `at`.
    let snapshots: Vec<(i64, i64)> = {
        let mut s = tx
            .prepare("SELECT id, as_of FROM runs WHERE endpoint = 'totals' ORDER BY as_of, id")
            .map_err(sql)?;
        let all = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql)?
            .collect::<Result<Vec<(i64, i64)>, _>>()
            .map_err(sql)?;
        all
    };
    let at = snapshots.iter().filter(|(_, t)| *t <= as_of_secs).count();
    let next: Option<i64> = snapshots.get(at).map(|(id, _)| *id);
    let metrics_list = run
        .metrics
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let ok = run.store.status_counts()?.ok;
    tx.execute(
        "INSERT INTO runs (key, endpoint, as_of, ids, ok, metrics, series, source, added_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            key,
            run.endpoint.as_str(),
            as_of_secs,
            unique as i64,
            ok as i64,
            metrics_list,
            series,
            db.to_string_lossy(),
            OffsetDateTime::now_utc().unix_timestamp()
        ],
    )
    .map_err(sql)?;
    let me = tx.last_insert_rowid();

    // The run's group labels, kept with it whatever its endpoint.
    let gids = record_groups(&tx, &path, me, &run.store)?;
    let mut totals = vec![(0u64, 0u64); run.metrics.len()];
    if run.endpoint == Endpoint::Totals {
        if let Some(n) = next {
            // Rewritten below against this snapshot.
            tx.execute("DELETE FROM snap WHERE run = ?1", [n])
                .map_err(sql)?;
        }
        // The held history as it was before this add, whatever this transaction writes.
        let reader = Connection::open(&path).map_err(sql)?;
        reader.execute_batch("BEGIN").map_err(sql)?;
        // The states at the snapshots before and after this one: `cur` and the rows of every
        // snapshot from the one after on (none for a night added in date order).
        let newer: Vec<(i64, usize)> = snapshots[at..]
            .iter()
            .enumerate()
            .map(|(k, (id, _))| (*id, at + k))
            .collect();
        let mut stmts = statements(&reader, &newer).map_err(sql)?;
        let prev_cut = at.checked_sub(1);
        let next_cut = next.map(|_| at);
        let merger = Merger::new(&mut stmts, vec![prev_cut, next_cut]).map_err(sql)?;
        let insert = tx
            .prepare(
                "INSERT INTO snap (run, tweet_id, state, mask, vals) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql)?;
        let insert_cur = tx
            .prepare("INSERT INTO cur (tweet_id, state, mask, vals) VALUES (?1, ?2, ?3, ?4)")
            .map_err(sql)?;
        let update_cur = tx
            .prepare("UPDATE cur SET state = ?2, mask = ?3, vals = ?4 WHERE tweet_id = ?1")
            .map_err(sql)?;
        let mut pass = Pass {
            merger,
            insert,
            insert_cur,
            update_cur,
            me,
            oldest: at == 0,
            next,
            metrics: &run.metrics,
            states: [TweetState::ABSENT; 2],
            change: Change::default(),
            totals: &mut totals,
            added: &mut added,
        };
        // The run store's outcomes are read on a thread of their own, in chunks, while this one
        // merges and writes: the two halves of an add take about as long as each other.
        // The newest snapshot's memberships are the ones the movers per group are counted over.
        let newest = next.is_none();
        if newest {
            tx.execute("DELETE FROM cur_groups", []).map_err(sql)?;
        }
        let mut insert_group = tx
            .prepare("INSERT OR IGNORE INTO cur_groups (tweet_id, gid) VALUES (?1, ?2)")
            .map_err(sql)?;
        let store = run.store;
        let width = run.metrics.len();
        let (chunks_tx, chunks_rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
        let metrics = run.metrics.clone();
        let reading = std::thread::spawn(move || {
            let mut chunk = Chunk::default();
            let r = store.for_each_outcome(0, None, &metrics, |row| {
                chunk.ids.push(row.id);
                chunk.status.push(row.status);
                chunk.values.extend_from_slice(row.values);
                chunk.groups.extend(row.groups.iter().map(|g| (row.id, *g)));
                if chunk.ids.len() == CHUNK {
                    // A closed channel means the merge failed; its error is the add's.
                    let _ = chunks_tx.send(std::mem::take(&mut chunk));
                }
            });
            if !chunk.ids.is_empty() {
                let _ = chunks_tx.send(chunk);
            }
            r
        });
        let mut merged = Ok(());
        for chunk in chunks_rx.iter() {
            if newest {
                for (id, g) in &chunk.groups {
                    if let Some(gid) = gids.get(g) {
                        merged = insert_group.execute(params![*id as i64, gid]).map(|_| ());
                        if merged.is_err() {
                            break;
                        }
                    }
                }
                if merged.is_err() {
                    break;
                }
            }
            for (k, (&id, &status)) in chunk.ids.iter().zip(&chunk.status).enumerate() {
                merged = pass.feed(
                    id,
                    Some((status, &chunk.values[k * width..(k + 1) * width])),
                );
                if merged.is_err() {
                    break;
                }
            }
            if merged.is_err() {
                break;
            }
        }
        // Dropping the receiver ends a reader blocked on a full channel.
        drop(chunks_rx);
        let read = reading.join().map_err(|_| {
            HistoryError::Usage(format!("{}: reading the run store panicked", db.display()))
        })?;
        merged.map_err(sql)?;
        read?;
        pass.finish().map_err(sql)?;
        drop(pass);
        drop(insert_group);
        drop(stmts);
        drop(reader);
    } else {
        run.store.for_each_outcome(0, None, &run.metrics, |row| {
            if row.status == Status::Ok {
                add_totals(&mut totals, row.values);
            }
        })?;
        let mut upsert = tx
            .prepare(
                "INSERT INTO buckets (tweet_id, metric, bucket, value, as_of) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (tweet_id, metric, bucket) DO UPDATE SET value = excluded.value, as_of = excluded.as_of \
                 WHERE excluded.as_of >= buckets.as_of",
            )
            .map_err(sql)?;
        let mut failed = None;
        run.store.for_each_series(|tweet, metric, bucket, value| {
            if failed.is_some() {
                return;
            }
            let Ok(m) = metric.parse::<Metric>() else {
                return;
            };
            crate::failpoint::hit("history-add");
            match upsert.execute(params![
                tweet as i64,
                m.index() as i64,
                bucket,
                value as i64,
                as_of_secs
            ]) {
                Ok(_) => added.buckets += 1,
                Err(e) => failed = Some(e),
            }
        })?;
        if let Some(e) = failed {
            return Err(sql(e));
        }
    }
    {
        let mut ins = tx
            .prepare("INSERT INTO totals (run, metric, total, tweets) VALUES (?1, ?2, ?3, ?4)")
            .map_err(sql)?;
        for (m, (total, tweets)) in run.metrics.iter().zip(&totals) {
            ins.execute(params![me, m.as_str(), *total as i64, *tweets as i64])
                .map_err(sql)?;
        }
    }
    crate::failpoint::hit("history-commit");
    tx.commit().map_err(sql)?;
    Ok(added)
}

/// Records the run store's groups as the history's (`hgroups`) and the run's labels with their sizes
/// (`run_groups`); returns the history's number of each of the store's groups.
fn record_groups(
    tx: &rusqlite::Transaction<'_>,
    history: &Path,
    run: i64,
    store: &Store,
) -> Result<std::collections::HashMap<i64, i64>, HistoryError> {
    let mut gids = std::collections::HashMap::new();
    let sql = |e| HistoryError::Sqlite {
        path: history.to_path_buf(),
        source: e,
    };
    for g in store.groups()? {
        tx.execute(
            "INSERT OR IGNORE INTO hgroups (name) VALUES (?1)",
            [&g.name],
        )
        .map_err(sql)?;
        let gid: i64 = tx
            .query_row("SELECT gid FROM hgroups WHERE name = ?1", [&g.name], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        tx.execute(
            "INSERT INTO run_groups (run, gid, ids) VALUES (?1, ?2, ?3)",
            params![run, gid, g.ids as i64],
        )
        .map_err(sql)?;
        gids.insert(g.gid, gid);
    }
    Ok(gids)
}

/// Outcomes per chunk read ahead.
const CHUNK: usize = 4096;

/// A chunk of outcomes: IDs, statuses, and the run's metrics' values row after row.
#[derive(Default)]
struct Chunk {
    ids: Vec<u64>,
    status: Vec<Status>,
    values: Vec<Option<u64>>,
    /// Memberships (Tweet, the run store's group number), in Tweet order.
    groups: Vec<(u64, i64)>,
}

fn add_totals(totals: &mut [(u64, u64)], values: &[Option<u64>]) {
    for (t, v) in totals.iter_mut().zip(values) {
        if let Some(v) = v {
            t.0 += v;
            t.1 += 1;
        }
    }
}

/// The merge of the run's outcomes (in ID order) with the held snapshots (in Tweet order).
struct Pass<'a, 's> {
    merger: Merger<'s>,
    insert: rusqlite::Statement<'a>,
    insert_cur: rusqlite::Statement<'a>,
    update_cur: rusqlite::Statement<'a>,
    me: i64,
    /// This snapshot is the oldest: nothing comes before it, and it needs no rows of its own.
    oldest: bool,
    /// The snapshot after this one (a backfill), whose rows are rewritten against this one.
    next: Option<i64>,
    metrics: &'a [Metric],
    /// The Tweet's state at the snapshot before this one and at the one after it.
    states: [TweetState; 2],
    change: Change,
    totals: &'a mut [(u64, u64)],
    added: &'a mut Added,
}

impl Pass<'_, '_> {
    /// The run's outcome for `id` (in ascending order); the held Tweets below it are not in the run.
    fn feed(&mut self, id: u64, run: Option<(Status, &[Option<u64>])>) -> rusqlite::Result<()> {
        while let Some(t) = self.merger.peek().filter(|&t| t < id) {
            self.merger.next(&mut self.states)?;
            self.emit(t, true, None)?;
        }
        let held = self.merger.peek() == Some(id);
        if held {
            self.merger.next(&mut self.states)?;
        } else {
            self.states = [TweetState::ABSENT; 2];
        }
        self.emit(id, held, run)
    }

    /// The held Tweets above the run's last ID.
    fn finish(&mut self) -> rusqlite::Result<()> {
        while let Some(t) = self.merger.peek() {
            self.merger.next(&mut self.states)?;
            self.emit(t, true, None)?;
        }
        Ok(())
    }

    /// Writes what changed for Tweet `id`, `held` when the history has it (a `cur` row), with the
    /// run's outcome for it (`None`: not in the run).
    fn emit(
        &mut self,
        id: u64,
        held: bool,
        run: Option<(Status, &[Option<u64>])>,
    ) -> rusqlite::Result<()> {
        let [before, after] = self.states;
        let mut now = TweetState::ABSENT;
        if let Some((status, values)) = run {
            // A metric this run did not ask has no value in it.
            now.state = status_code(status);
            if status == Status::Ok {
                for (m, v) in self.metrics.iter().zip(values) {
                    now.vals[m.index()] = *v;
                }
                add_totals(self.totals, values);
            }
        }
        let changed = Change::between(&before, &now, &mut self.change);
        if changed {
            self.added.changed += 1;
            self.added.values += u64::from(self.change.mask.count_ones());
        }
        // This snapshot's row turns its state back into the one before it.
        if !self.oldest && Change::between(&now, &before, &mut self.change) {
            self.write(self.me, id)?;
        }
        match self.next {
            // A backfill: the next snapshot's row now leads back to this one; `cur` stays.
            Some(n) if Change::between(&after, &now, &mut self.change) => self.write(n, id)?,
            Some(_) => {}
            // The newest snapshot: `cur` is its state.
            None if changed => {
                Change::between(&TweetState::ABSENT, &now, &mut self.change);
                crate::failpoint::hit("history-add");
                let c = &self.change;
                let vals = (!c.vals.is_empty()).then_some(c.vals.as_slice());
                // A held Tweet's row is updated by its key: one seek, where an upsert tries an
                // insert first.
                let stmt = if held {
                    &mut self.update_cur
                } else {
                    &mut self.insert_cur
                };
                stmt.execute(params![
                    id as i64,
                    i64::from(now.state),
                    c.mask as i64,
                    vals
                ])?;
            }
            None => {}
        }
        Ok(())
    }

    fn write(&mut self, run: i64, id: u64) -> rusqlite::Result<()> {
        crate::failpoint::hit("history-add");
        let c = &self.change;
        self.insert.execute(params![
            run,
            id as i64,
            c.state.map(i64::from),
            c.mask as i64,
            (!c.vals.is_empty()).then_some(c.vals.as_slice())
        ])?;
        self.added.rows += 1;
        Ok(())
    }
}
