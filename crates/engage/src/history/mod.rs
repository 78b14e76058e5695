//! The history store: finished runs, night after night, in one SQLite file of its own.
//!
//! Layout (see `docs/history.md`):
//! - `runs`: one row per run added, keyed by a hash of the run's identity and its fetch and "as of"
//!   times, so adding the same run again finds it and changes nothing.
//! - `cur`: every Tweet's state at the newest `/totals` snapshot: its status and its values (a bit
//!   mask over [`Metric::ALL`] and the values as varints).
//! - `snap`: per snapshot and Tweet, what turns the Tweet's state at that snapshot back into its
//!   state at the snapshot before it: the status when it changed, the values that changed. Only
//!   changes are stored: a night where 10 % of the values moved stores those and nothing else, and
//!   the oldest snapshot needs no rows at all (before it, every Tweet is absent).
//!   The state at an older snapshot is `cur` with the rows of every newer snapshot applied, newest
//!   first ([`scan`]): adding a night in date order reads `cur` alone, and the movers since the
//!   night before read `cur` and one night's rows, however long the history.
//! - `totals`: per run and metric, the grand total and the number of Tweets it is over.
//! - `buckets`: the `/28hr` and `/historical` per-Tweet buckets; an hour fetched again by a run of
//!   a later "as of" replaces the earlier value, so the running tally is a plain sum.
//!
//! Values only mean something for a Tweet that is `ok`: a row for a Tweet that is not says only its
//! status, and the values it had are not kept.
//!
//! Adding is one write transaction ([`add`]): a crash leaves the history as before or as after.

use std::path::{Path, PathBuf};

use engagement_api::Metric;
use rusqlite::{Connection, OptionalExtension};

use crate::report::ReportError;
use crate::run::RunError;
use crate::store::StoreError;

mod add;
mod files;
mod html;
mod movers;
mod scan;

pub use add::{add, Added, AsOf};
pub use files::write_report;
pub use html::render as render_html;
pub use movers::{Gain, Movers, Night};

/// Bumped whenever the history's layout changes; a history from a newer version is refused.
pub const HISTORY_VERSION: i64 = 2;
/// Marks a history apart from other SQLite files, run stores included (`PRAGMA application_id`,
/// "ENGH").
pub const HISTORY_APPLICATION_ID: i32 = 0x454e_4748;

/// Status codes of a Tweet in a snapshot, as `snap.state` stores them.
pub(crate) mod state {
    /// Not in that run's input (or never seen).
    pub const ABSENT: u8 = 0;
    /// Fetched.
    pub const OK: u8 = 1;
    /// Deleted, not public or protected.
    pub const UNAVAILABLE: u8 = 2;
    /// Not readable with the credentials used.
    pub const FORBIDDEN: u8 = 3;
    /// Retries exhausted: nothing known.
    pub const FAILED: u8 = 4;
}

/// Why a history command failed. Each variant maps to one documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite refused an operation on the history.
    #[error("history {path}: {source}")]
    Sqlite {
        /// The history file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not a history (a run store, another database, not SQLite).
    #[error(
        "history {path}: {what}; refusing to touch it (point --history at a new file to start one)"
    )]
    NotAHistory {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Written by a newer engage.
    #[error("history {path} has version {found}, newer than this engage understands ({HISTORY_VERSION}); upgrade engage")]
    Newer {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// No history at that path (status, report).
    #[error("{path}: no such history (check --history; `engage history add` creates one)")]
    NoHistory {
        /// The path given.
        path: PathBuf,
    },
    /// A run that has not finished cannot be added.
    #[error("{db}: the run has not finished ({why}); only a finished run, every ID with an outcome, is added: run the same `engage run` again to finish it")]
    Unfinished {
        /// The run store.
        db: PathBuf,
        /// What is missing.
        why: String,
    },
    /// The run store does not say when it was fetched.
    #[error("{db}: the store does not record when its values were fetched (it was finished by an engage without the history); give that time with --as-of")]
    NoAsOf {
        /// The run store.
        db: PathBuf,
    },
    /// Something the history cannot take or answer, said in words (bad usage).
    #[error("{0}")]
    Usage(String),
    /// The run store could not be read.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The run store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A report file could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl HistoryError {
    /// The documented exit code this error ends a command with.
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            HistoryError::NotAHistory { .. } | HistoryError::Newer { .. } => exit::STORE,
            HistoryError::NoHistory { .. }
            | HistoryError::Unfinished { .. }
            | HistoryError::NoAsOf { .. }
            | HistoryError::Usage(_) => exit::USAGE,
            HistoryError::Run(e) => e.exit_code(),
            HistoryError::Store(e) => e.exit_code(),
            HistoryError::Report(e) => e.exit_code(),
            HistoryError::Sqlite { source, .. } => crate::store::sqlite_exit_code(source),
        }
    }
}

/// One run held in a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// The history's number of the run (the order it was added in).
    pub id: i64,
    /// `totals`, `28hr` or `historical`.
    pub endpoint: String,
    /// When its values were fetched (Unix seconds).
    pub as_of: i64,
    /// Unique IDs of the run.
    pub ids: u64,
    /// Of them, `ok`.
    pub ok: u64,
    /// The run store's path as it was given.
    pub source: String,
    /// Its metrics.
    pub metrics: Vec<Metric>,
}

/// An open history.
pub struct History {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

/// The layout, created whole in one transaction.
const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    as_of INTEGER NOT NULL,
    ids INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    series TEXT,
    source TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE cur (
    tweet_id INTEGER PRIMARY KEY,
    state INTEGER NOT NULL,
    mask INTEGER NOT NULL,
    vals BLOB
);
CREATE TABLE snap (
    run INTEGER NOT NULL,
    tweet_id INTEGER NOT NULL,
    state INTEGER,
    mask INTEGER NOT NULL,
    vals BLOB,
    PRIMARY KEY (run, tweet_id)
) WITHOUT ROWID;
CREATE TABLE totals (
    run INTEGER NOT NULL,
    metric TEXT NOT NULL,
    total INTEGER NOT NULL,
    tweets INTEGER NOT NULL,
    PRIMARY KEY (run, metric)
) WITHOUT ROWID;
CREATE TABLE buckets (
    tweet_id INTEGER NOT NULL,
    metric INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    value INTEGER NOT NULL,
    as_of INTEGER NOT NULL,
    PRIMARY KEY (tweet_id, metric, bucket)
) WITHOUT ROWID;
";

/// What version 2 adds: the groups of the runs (`docs/groups.md`). `run_groups` keeps each run's
/// group labels with their sizes; `cur_groups` the memberships as of the newest snapshot, which the
/// movers per group are counted over.
const V2_GROUPS: &str = "
CREATE TABLE hgroups (gid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE run_groups (
    run INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    ids INTEGER NOT NULL,
    PRIMARY KEY (run, gid)
) WITHOUT ROWID;
CREATE TABLE cur_groups (
    tweet_id INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    PRIMARY KEY (tweet_id, gid)
) WITHOUT ROWID;
";

/// The metric bit order of `snap.mask` and `buckets.metric`: [`Metric::ALL`]'s, recorded in `meta`
/// so that a history is never read with another order.
fn metric_order() -> String {
    Metric::ALL
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl History {
    /// Opens the history at `path`; creates it when `create` and there is none (or an empty file).
    pub fn open(path: &Path, create: bool) -> Result<History, HistoryError> {
        let existed = std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if !existed && !create {
            return Err(HistoryError::NoHistory { path: path.into() });
        }
        let sql = |source| HistoryError::Sqlite {
            path: path.into(),
            source,
        };
        let not_history = |what: &str| HistoryError::NotAHistory {
            path: path.into(),
            what: what.into(),
        };
        let conn = Connection::open(path).map_err(sql)?;
        crate::fsutil::restrict(path);
        // Before the first read: another `history add` may be creating this file right now.
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(sql)?;
        // Both in one read, so a history another process finishes creating in between is not
        // taken for a foreign file (its mark and its tables appear in one transaction).
        let (app, tables): (i32, i64) = match conn.query_row(
            "SELECT (SELECT application_id FROM pragma_application_id), \
             (SELECT count(*) FROM sqlite_master)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ) {
            Ok(v) => v,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
                return Err(not_history("not a SQLite database"))
            }
            Err(e) => return Err(sql(e)),
        };
        // An empty database without our mark is a history another process is creating (it has
        // written the file's header, not yet its tables): `create` waits for it and checks again.
        let blank = app == 0 && tables == 0;
        if existed && app != HISTORY_APPLICATION_ID && !(blank && create) {
            return Err(not_history(if app == crate::store::APPLICATION_ID {
                "this is a run store, not a history (a run store goes to --db)"
            } else {
                "not an engage history"
            }));
        }
        // WAL: `history add` reads the snapshots through a second connection while it writes the new
        // one, and `history report` can read while a night is added.
        // Switching to WAL takes the file's exclusive lock and does not wait for a busy one
        // (another `history add` creating the same file): try again for as long as a lock waits.
        let waited = std::time::Instant::now();
        loop {
            match conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") {
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && waited.elapsed() < std::time::Duration::from_secs(60) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.map_err(sql)?,
            }
        }
        let h = History {
            conn,
            path: path.into(),
        };
        if !existed || blank {
            h.create()?;
        }
        let version: i64 = h
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if version > HISTORY_VERSION {
            return Err(HistoryError::Newer {
                path: path.into(),
                found: version,
            });
        }
        if version < 2 {
            // Version 1 had no groups: the tables are added, empty, in one transaction.
            h.conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE; {V2_GROUPS} PRAGMA user_version = 2; COMMIT;"
                ))
                .map_err(sql)?;
        }
        let order: Option<String> = h
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'metric_order'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        if order.as_deref() != Some(metric_order().as_str()) {
            return Err(not_history("its metric order is not this engage's"));
        }
        Ok(h)
    }

    /// Creates the layout, unless a process that raced this one already did: the write lock is
    /// taken first (waiting for the other creator), then the file is looked at again.
    fn create(&self) -> Result<(), HistoryError> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(|e| self.err(e))?;
        let (app, tables): (i32, i64) = tx
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id), \
                 (SELECT count(*) FROM sqlite_master)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        if app == 0 && tables > 0 {
            return Err(HistoryError::NotAHistory {
                path: self.path.clone(),
                what: "not an engage history".into(),
            });
        }
        if app == 0 {
            tx.execute_batch(&format!(
                "{SCHEMA}{V2_GROUPS}
                 INSERT INTO meta (key, value) VALUES ('metric_order', '{}');
                 PRAGMA application_id = {HISTORY_APPLICATION_ID};
                 PRAGMA user_version = {HISTORY_VERSION};",
                metric_order()
            ))
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The history file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every run held, oldest "as of" first.
    pub fn runs(&self) -> Result<Vec<RunInfo>, HistoryError> {
        runs(&self.conn).map_err(|e| self.err(e))
    }

    /// Bytes on disk: the file and its write-ahead log.
    pub fn size_on_disk(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        [self.path.as_path(), wal.as_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Every run held, oldest "as of" first (ties in the order they were added).
pub(crate) fn runs(conn: &Connection) -> rusqlite::Result<Vec<RunInfo>> {
    let mut stmt = conn.prepare(
        "SELECT id, endpoint, as_of, ids, ok, source, metrics FROM runs ORDER BY as_of, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let metrics: String = r.get(6)?;
        Ok(RunInfo {
            id: r.get(0)?,
            endpoint: r.get(1)?,
            as_of: r.get(2)?,
            ids: r.get::<_, i64>(3)? as u64,
            ok: r.get::<_, i64>(4)? as u64,
            source: r.get(5)?,
            metrics: metrics.split(',').filter_map(|m| m.parse().ok()).collect(),
        })
    })?;
    rows.collect()
}

/// One Tweet's state at a snapshot: its status and, per metric of [`Metric::ALL`], its value
/// (`None`: no value, as for a metric not served for that Tweet). The values mean something only
/// when the status is `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TweetState {
    pub state: u8,
    pub vals: [Option<u64>; 18],
}

impl TweetState {
    pub const ABSENT: TweetState = TweetState {
        state: state::ABSENT,
        vals: [None; 18],
    };
}

/// What changed for one Tweet from one snapshot to the next: a `snap` row.
#[derive(Debug, Clone, Default)]
pub(crate) struct Change {
    pub state: Option<u8>,
    pub mask: u32,
    /// The changed values, in mask order, as varints of `value + 1` (0 for no value).
    pub vals: Vec<u8>,
}

impl Change {
    /// The row that turns `a` into `b` (its values only when `b` is `ok`: no other state has
    /// values that count); false when nothing changed.
    pub fn between(a: &TweetState, b: &TweetState, buf: &mut Change) -> bool {
        buf.state = (a.state != b.state).then_some(b.state);
        buf.mask = 0;
        buf.vals.clear();
        if b.state != state::OK {
            return buf.state.is_some();
        }
        for i in 0..18 {
            if a.vals[i] != b.vals[i] {
                buf.mask |= 1 << i;
                put_varint(&mut buf.vals, b.vals[i].map_or(0, |v| v + 1));
            }
        }
        buf.state.is_some() || buf.mask != 0
    }

    /// Applies a stored row to a state.
    pub fn apply(st: &mut TweetState, state: Option<u8>, mask: u32, mut vals: &[u8]) {
        if let Some(s) = state {
            st.state = s;
        }
        let mut m = mask;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let v = get_varint(&mut vals);
            if i < 18 {
                st.vals[i] = v.checked_sub(1);
            }
        }
        // A state that is not `ok` has no values: every state is kept in this one form, so that
        // a row computed between two states turns the one into the other exactly.
        if st.state != state::OK {
            st.vals = [None; 18];
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint; a blob cut short reads as 0 (no value) rather than panic.
fn get_varint(b: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some((&x, rest)) = b.split_first() {
        *b = rest;
        if shift < 64 {
            v |= u64::from(x & 0x7f) << shift;
        }
        shift += 7;
        if x & 0x80 == 0 {
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_applied_gives_the_later_state() {
        let mut a = TweetState::ABSENT;
        a.state = state::OK;
        a.vals[0] = Some(5);
        a.vals[3] = Some(300);
        let mut b = a;
        b.vals[0] = Some(1 << 40);
        b.vals[3] = None;
        b.vals[17] = Some(0);
        let mut c = Change::default();
        assert!(Change::between(&a, &b, &mut c));
        assert_eq!(c.state, None);
        assert_eq!(c.mask, 1 | 1 << 3 | 1 << 17);
        let mut x = a;
        Change::apply(&mut x, c.state, c.mask, &c.vals);
        assert_eq!(x, b);
        assert!(!Change::between(&b, &b, &mut c));
    }

    #[test]
    fn a_run_store_or_another_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.db");
        drop(crate::store::Store::open(&p).unwrap());
        let e = History::open(&p, true).err().unwrap();
        assert!(e.to_string().contains("run store"), "{e}");
        assert_eq!(e.exit_code(), crate::exit::STORE);
        let junk = d.path().join("junk");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let e = History::open(&junk, true).err().unwrap();
        assert_eq!(e.exit_code(), crate::exit::STORE, "{e}");
        let e = History::open(&d.path().join("none"), false).err().unwrap();
        assert_eq!(e.exit_code(), crate::exit::USAGE, "{e}");
        // An SQLite database with tables of its own but no mark is not taken over either.
        let other = d.path().join("other.db");
        rusqlite::Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let e = History::open(&other, true).err().unwrap();
        assert_eq!(e.exit_code(), crate::exit::STORE, "{e}");
    }

    /// Two nightly jobs started together on a history that does not exist yet (cron on two
    /// collections' runs, say) both get it: the one that did not create it waits for the other,
    /// instead of taking the half-created file for a foreign one.
    #[test]
    fn histories_created_at_once_by_several_processes_are_one_history() {
        for round in 0..20 {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("h.db");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let opened: Vec<Result<(), String>> = (0..4)
                .map(|_| {
                    let (p, barrier) = (p.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        History::open(&p, true).map(drop).map_err(|e| e.to_string())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            assert!(
                opened.iter().all(Result::is_ok),
                "round {round}: {opened:?}"
            );
        }
    }
}
