//! The checkpoint store: one SQLite file per run.
//!
//! Commit protocol (the invariant every resume relies on):
//! - Ingest inserts every unique input ID as `pending`, with the input position reached and the line
//!   counters, in the same transaction, every [`INGEST_CHUNK`] records. A crash mid-ingest resumes from the
//!   recorded position; `INSERT OR IGNORE` on the primary key is what makes "fetched once" hold for
//!   duplicates, without holding the ID set in memory.
//! - One writer owns the connection during a run. Each API response's outcomes (status, metrics, error)
//!   are written in one transaction, so a row is either still `pending` or has its final outcome: never
//!   half-written. Pending rows are what the next life fetches; nothing final is fetched twice.
//! - The run's identity (inputs' SHA-256, endpoint, metrics, auth, window, N) is written once, before any
//!   fetch; a resume with anything different is refused with what differs.
//!
//! WAL mode with `synchronous=NORMAL`: a commit survives a process crash (kill -9) — the WAL is in the OS
//! page cache — but the last commits may be lost on power failure, in which case those IDs are simply
//! fetched again. See `docs/store.md`.

use std::path::{Path, PathBuf};

use engagement_api::Metric;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

/// Bumped whenever the schema changes; a store from a newer version is refused.
pub const SCHEMA_VERSION: i64 = 1;
/// Marks our files apart from other SQLite databases (`PRAGMA application_id`, "ENGA").
pub const APPLICATION_ID: i32 = 0x454e_4741;
/// Records per ingest transaction (also the most IDs held in memory while ingesting).
pub const INGEST_CHUNK: usize = 200_000;

/// The final (or pending) state of one unique Tweet ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Not fetched yet (or its batch was in flight when the process stopped).
    Pending,
    /// Fetched; metrics stored.
    Ok,
    /// Deleted, no longer public, or protected.
    Unavailable,
    /// The credentials used may not read it (`Forbidden to access tweets`).
    Forbidden,
    /// Retries exhausted; the last error is kept.
    Failed,
}

impl Status {
    /// Every final status, in report order.
    pub const FINAL: [Status; 4] = [
        Status::Ok,
        Status::Unavailable,
        Status::Forbidden,
        Status::Failed,
    ];

    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ok => "ok",
            Status::Unavailable => "unavailable",
            Status::Forbidden => "forbidden",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Ok,
            Status::Unavailable,
            Status::Forbidden,
            Status::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// Why the store can't be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not an engage store (another SQLite database, or not SQLite at all).
    #[error("store {path}: {what}; refusing to touch it (point --db at a new file to start a fresh run)")]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Another process holds a lock on the store.
    #[error("store {path} is locked by another process (another engage on the same --db?); wait for it to finish")]
    Busy {
        /// The database file.
        path: PathBuf,
    },
    /// The marker says the WAL may hold commits, and the WAL is gone.
    #[error("store {path}: its write-ahead log {wal} is missing, so the last commits are lost; put the -wal file back beside the database (a copy of a store must include it), or point --db at a new file to start afresh")]
    MissingWal {
        /// The database file.
        path: PathBuf,
        /// The missing WAL.
        wal: PathBuf,
    },
    /// Written by a newer engage.
    #[error("store {path} has schema version {found}, newer than this engage understands ({SCHEMA_VERSION}); upgrade engage")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
}

/// One outcome to record.
#[derive(Debug, Clone, PartialEq)]
pub struct IdOutcome {
    /// The Tweet.
    pub id: u64,
    /// Its final status (never `Pending`).
    pub status: Status,
    /// Metric values in the run's metric order (`Ok` only; `None` where the API gave none).
    pub values: Vec<Option<u64>>,
    /// Why, for anything but `Ok` (the last error for `Failed`).
    pub note: Option<String>,
    /// Time-series jobs: this window's non-zero buckets, (metric index in run order, bucket start as
    /// Unix seconds, value).
    pub series: Vec<(usize, i64, u64)>,
}

impl IdOutcome {
    /// A final outcome other than `Ok`.
    pub fn final_status(id: u64, status: Status, note: impl Into<String>) -> IdOutcome {
        IdOutcome {
            id,
            status,
            values: Vec::new(),
            note: Some(note.into()),
            series: Vec::new(),
        }
    }
}

/// What one API response settled, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    /// Index of the window the response covers (0 for single-window jobs).
    pub window: usize,
    /// Number of windows of the run: an `Ok` becomes final with the last one.
    pub windows: usize,
    /// One outcome per ID settled by the response.
    pub outcomes: Vec<IdOutcome>,
    /// Sums over the response's Tweets per hour: (metric index, hour start as Unix seconds, value).
    pub hourly: Vec<(usize, i64, u64)>,
    /// Which credentials answered: an account's name, or `bearer` (kept for `ok` IDs).
    pub via: Option<String>,
}

/// Line counters of the ingest, as in `top.json`'s `counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Lines that held an ID or a reject (blank lines and CSV headers aside).
    pub input_lines: u64,
    /// Lines rejected.
    pub rejected_lines: u64,
    /// IDs seen again after their first occurrence.
    pub duplicate_ids: u64,
}

/// Where the ingest stopped: the next record to read is after (source, line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestPos {
    /// Index of the input source.
    pub source: usize,
    /// Last line consumed in it.
    pub line: u64,
}

/// A rejected input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRow {
    /// The input's display name.
    pub source: String,
    /// 1-based line number.
    pub line: u64,
    /// The offending text (truncated).
    pub content: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Not yet fetched.
    pub pending: u64,
    /// Fetched.
    pub ok: u64,
    /// Deleted, not public, or protected.
    pub unavailable: u64,
    /// Not readable with the credentials used.
    pub forbidden: u64,
    /// Retries exhausted.
    pub failed: u64,
}

impl StatusCounts {
    /// Every unique ID.
    pub fn unique(&self) -> u64 {
        self.pending + self.ok + self.unavailable + self.forbidden + self.failed
    }
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The connection that owns the "WAL may hold commits" marker (see [`Store::open`]).
    primary: bool,
}

/// How a connection is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The one writer: checks the file, owns the WAL marker.
    Writer,
    /// Status and report: checks the file.
    Reader,
    /// The batch producer beside a writer.
    Cursor,
}

/// The marker beside a store that says its `-wal` file may hold commits not yet in the database. It
/// exists from the first open until a clean close has checkpointed everything into the database; if it
/// is there and the `-wal` file is not, commits were lost (the WAL was deleted or not copied along), and
/// opening is refused instead of silently resuming from older data.
pub fn marker_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-engage", db.display()))
}

/// The store's write-ahead log.
pub fn wal_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.primary {
            return;
        }
        // Everything into the database file first; only a complete checkpoint (no reader in the way)
        // makes the WAL disposable, and only then does the marker go.
        let busy: rusqlite::Result<i64> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0));
        if let Ok(0) = busy {
            let _ = std::fs::remove_file(marker_path(&self.path));
        }
    }
}

fn metric_columns() -> String {
    Metric::ALL
        .iter()
        .map(|m| format!("    {} INTEGER", m.as_str()))
        .collect::<Vec<_>>()
        .join(",\n")
}

impl Store {
    /// Opens an existing store or creates a new one. An existing file that is not an engage store, is
    /// damaged, or has lost its write-ahead log is refused and left untouched.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_as(path, Mode::Writer)
    }

    /// A connection for reading (`engage status`, `engage report`): checked like [`Store::open`], but
    /// it leaves the WAL marker to the writer.
    pub fn open_reader(path: &Path) -> Result<Store, StoreError> {
        Store::open_as(path, Mode::Reader)
    }

    /// The batch producer's second connection beside a writer that has just checked the file: no
    /// second integrity check, and a small cache, since it reads the pending IDs once, forward.
    pub fn open_cursor(path: &Path) -> Result<Store, StoreError> {
        Store::open_as(path, Mode::Cursor)
    }

    fn open_as(path: &Path, mode: Mode) -> Result<Store, StoreError> {
        let primary = mode == Mode::Writer;
        let existed = path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        let sql = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let not_store = |what: String| StoreError::NotAStore {
            path: path.to_path_buf(),
            what,
        };
        if existed && marker_path(path).exists() && !wal_path(path).exists() {
            return Err(StoreError::MissingWal {
                path: path.to_path_buf(),
                wal: wal_path(path),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
        // Wait for a lock held by another process before judging the file, so "in use" is never
        // mistaken for "damaged".
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        let busy = |e: &rusqlite::Error| {
            matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            )
        };
        if existed {
            // Read before writing anything: a foreign or damaged file must stay as it was.
            let app_id: i32 = conn
                .query_row("PRAGMA application_id", [], |r| r.get(0))
                .map_err(|e| {
                    if busy(&e) {
                        StoreError::Busy {
                            path: path.to_path_buf(),
                        }
                    } else {
                        not_store(format!("not a readable SQLite database ({e})"))
                    }
                })?;
            if app_id != APPLICATION_ID {
                return Err(not_store(
                    "a SQLite database that engage did not create".into(),
                ));
            }
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sql)?;
            if version > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path: path.to_path_buf(),
                    found: version,
                });
            }
            // The writer checks that the file holds every page its header counts (a truncated copy
            // fails here) in constant time; a full `quick_check` reads the whole store, which a resume
            // of a large run should not pay, so it is for `status` and `report`. Damage inside a page
            // still surfaces as an SQLite "corrupt" error when the page is read.
            if mode == Mode::Writer {
                let (pages, page_size): (i64, i64) = conn
                    .query_row(
                        "SELECT page_count, page_size FROM pragma_page_count, pragma_page_size",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(|e| not_store(format!("damaged ({e})")))?;
                let len = std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
                if len < pages * page_size && !wal_path(path).exists() {
                    return Err(not_store(format!(
                        "damaged: truncated to {len} bytes, its header counts {pages} pages of {page_size}"
                    )));
                }
            }
            if mode == Mode::Reader {
                let check: String = conn
                    .query_row("PRAGMA quick_check", [], |r| r.get(0))
                    .map_err(|e| not_store(format!("damaged ({e})")))?;
                if check != "ok" {
                    return Err(not_store(format!("damaged ({check})")));
                }
            }
        }
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;",
        )
        .map_err(sql)?;
        if mode == Mode::Cursor {
            conn.execute_batch("PRAGMA cache_size=-2048;")
                .map_err(sql)?;
        }
        crate::fsutil::restrict(path);
        if primary {
            std::fs::write(
                marker_path(path),
                "engage: the -wal file beside this store may hold commits not yet in the database; keep them together\n",
            )
            .map_err(|e| not_store(format!("cannot write {}: {e}", marker_path(path).display())))?;
            crate::fsutil::restrict(&marker_path(path));
        }
        let store = Store {
            conn,
            path: path.to_path_buf(),
            primary,
        };
        if !existed {
            store.create_schema()?;
        }
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn create_schema(&self) -> Result<(), StoreError> {
        let ddl = format!(
            "BEGIN;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE inputs (idx INTEGER PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE tweets (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status = 'pending' OR status = 'ok' OR status = 'unavailable' OR status = 'forbidden' OR status = 'failed'),
    account TEXT,
    note TEXT,
    via TEXT,
    windows_done INTEGER NOT NULL DEFAULT 0,
{cols}
);
CREATE TABLE series (
    tweet_id INTEGER NOT NULL,
    metric TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (tweet_id, metric, bucket)
) WITHOUT ROWID;
CREATE TABLE accounts_used (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE hourly_totals (
    metric TEXT NOT NULL,
    hour INTEGER NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (metric, hour)
) WITHOUT ROWID;
CREATE TABLE rejects (source TEXT NOT NULL, line INTEGER NOT NULL, content TEXT NOT NULL, reason TEXT NOT NULL);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;",
            cols = metric_columns()
        );
        self.conn.execute_batch(&ddl).map_err(|e| self.err(e))
    }

    /// A value from `meta`.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets a value in `meta` (its own transaction).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        set_meta(&self.conn, key, value).map_err(|e| self.err(e))
    }

    /// Records the inputs' fingerprints (once, before ingest).
    pub fn set_inputs(&mut self, inputs: &[(String, String)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: path.clone(),
            source: e,
        })?;
        tx.execute("DELETE FROM inputs", [])
            .map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
        for (i, (source, sha)) in inputs.iter().enumerate() {
            tx.execute(
                "INSERT INTO inputs (idx, source, sha256) VALUES (?1, ?2, ?3)",
                params![i as i64, source, sha],
            )
            .map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
        }
        tx.commit()
            .map_err(|e| StoreError::Sqlite { path, source: e })
    }

    /// Where the last ingest chunk ended, and whether ingest finished.
    pub fn ingest_state(&self) -> Result<(IngestPos, bool, IngestCounts), StoreError> {
        let get = |k: &str| -> Result<u64, StoreError> {
            Ok(self.meta(k)?.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        let pos = IngestPos {
            source: get("ingest_source")? as usize,
            line: get("ingest_line")?,
        };
        let done = self.meta("ingest_done")?.as_deref() == Some("1");
        let counts = IngestCounts {
            input_lines: get("input_lines")?,
            rejected_lines: get("rejected_lines")?,
            duplicate_ids: get("duplicate_ids")?,
        };
        Ok((pos, done, counts))
    }

    /// Starts an ingest transaction chunk. Call [`IngestTx::commit`] with the position reached.
    pub fn ingest_tx(&mut self) -> Result<IngestTx<'_>, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: path.clone(),
            source: e,
        })?;
        Ok(IngestTx { tx, path })
    }

    /// Writes the commits of one or more responses in one transaction and returns the IDs that became
    /// final `ok` with their accumulated values (run order; absent metrics as 0), for the heaps.
    ///
    /// An `ok` for window `w` only applies to a row whose `windows_done` is `w`, so a window can never
    /// be added twice, and values accumulate across windows until the last one makes the row `ok`.
    pub fn record(
        &mut self,
        metrics: &[Metric],
        commits: &[Commit],
    ) -> Result<Vec<(u64, Vec<u64>)>, StoreError> {
        let path = self.path.clone();
        let e = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut finals = Vec::new();
        let tx = self.conn.transaction().map_err(e)?;
        {
            let set: String = metrics
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let (c, k) = (m.as_str(), i + 5);
                    format!(
                        ", {c} = CASE WHEN ?{k} IS NULL THEN {c} ELSE coalesce({c}, 0) + ?{k} END"
                    )
                })
                .collect();
            let ret: Vec<String> = metrics
                .iter()
                .map(|m| format!("coalesce({}, 0)", m.as_str()))
                .collect();
            let ok_sql = format!(
                "UPDATE tweets SET windows_done = ?2 + 1, note = NULL, via = ?{via}, \
                 status = CASE WHEN ?2 + 1 >= ?3 THEN 'ok' ELSE 'pending' END{set} \
                 WHERE id = ?1 AND windows_done = ?2 AND status = 'pending' AND ?4 = 'ok'",
                via = metrics.len() + 5,
            );
            let mut ok_stmt = tx.prepare_cached(&ok_sql).map_err(e)?;
            let sel_sql = format!(
                "SELECT {} FROM tweets WHERE id = ?1",
                if ret.is_empty() {
                    "1".to_string()
                } else {
                    ret.join(", ")
                }
            );
            let mut sel_stmt = tx.prepare_cached(&sel_sql).map_err(e)?;
            let mut other = tx
                .prepare_cached(
                    "UPDATE tweets SET status = ?2, note = ?3 WHERE id = ?1 AND status = 'pending'",
                )
                .map_err(e)?;
            let mut series = tx
                .prepare_cached(
                    "INSERT INTO series (tweet_id, metric, bucket, value) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO UPDATE SET value = value + excluded.value",
                )
                .map_err(e)?;
            let mut hourly = tx
                .prepare_cached(
                    "INSERT INTO hourly_totals (metric, hour, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT DO UPDATE SET value = value + excluded.value",
                )
                .map_err(e)?;
            let mut accounts = tx
                .prepare_cached("INSERT OR IGNORE INTO accounts_used (name) VALUES (?1)")
                .map_err(e)?;
            let mut args: Vec<rusqlite::types::Value> = Vec::with_capacity(4 + metrics.len());
            for c in commits {
                // A response's hourly sums count only if its `ok`s applied (they all do, or none).
                let mut applied = false;
                for o in &c.outcomes {
                    if o.status != Status::Ok {
                        other
                            .execute(params![o.id as i64, o.status.as_str(), o.note])
                            .map_err(e)?;
                        continue;
                    }
                    args.clear();
                    args.push((o.id as i64).into());
                    args.push((c.window as i64).into());
                    args.push((c.windows.max(1) as i64).into());
                    args.push(rusqlite::types::Value::Text("ok".into()));
                    for i in 0..metrics.len() {
                        args.push(match o.values.get(i).copied().flatten() {
                            Some(v) => (v.min(i64::MAX as u64) as i64).into(),
                            None => rusqlite::types::Value::Null,
                        });
                    }
                    args.push(match &c.via {
                        Some(v) => v.clone().into(),
                        None => rusqlite::types::Value::Null,
                    });
                    let changed = ok_stmt
                        .execute(rusqlite::params_from_iter(args.iter()))
                        .map_err(e)?;
                    if changed == 0 {
                        // Already applied (or no longer pending): never add a window twice.
                        continue;
                    }
                    applied = true;
                    let windows = c.windows.max(1);
                    if c.window + 1 >= windows {
                        let vals: Vec<u64> = if windows == 1 {
                            // One window: the row held nothing before, the values are the stored ones.
                            (0..metrics.len())
                                .map(|i| {
                                    o.values
                                        .get(i)
                                        .copied()
                                        .flatten()
                                        .map_or(0, |v| v.min(i64::MAX as u64))
                                })
                                .collect()
                        } else {
                            sel_stmt
                                .query_row([o.id as i64], |row| {
                                    (0..metrics.len())
                                        .map(|i| row.get::<_, i64>(i).map(|v| v as u64))
                                        .collect::<rusqlite::Result<Vec<u64>>>()
                                })
                                .map_err(e)?
                        };
                        finals.push((o.id, vals));
                    }
                    for &(k, bucket, value) in &o.series {
                        series
                            .execute(params![
                                o.id as i64,
                                metrics[k].as_str(),
                                bucket,
                                value.min(i64::MAX as u64) as i64
                            ])
                            .map_err(e)?;
                    }
                }
                // Contracts bill each owner account whose tokens were used, whatever the answer.
                match c.via.as_deref() {
                    Some(v) if !v.is_empty() && v != "bearer" && !c.outcomes.is_empty() => {
                        accounts.execute([v]).map_err(e)?;
                    }
                    _ => {}
                }
                for &(k, hour, value) in c.hourly.iter().filter(|_| applied) {
                    hourly
                        .execute(params![
                            metrics[k].as_str(),
                            hour,
                            value.min(i64::MAX as u64) as i64
                        ])
                        .map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)?;
        Ok(finals)
    }

    /// Pending IDs greater than `after`, ascending, at most `limit`, with the windows already done for
    /// each: the batcher's keyset page.
    pub fn pending_windows_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, usize, Option<String>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, windows_done, account FROM tweets WHERE status = 'pending' AND id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![after as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as usize,
                    r.get(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// The owner accounts whose user context was used for at least one answered request (contracts
    /// bill per unique owner account and month).
    pub fn accounts_used(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM accounts_used ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// Hourly sums over all `ok` Tweets: (metric name, hour start as Unix seconds, value), ordered.
    pub fn hourly_totals(&self) -> Result<Vec<(String, i64, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT metric, hour, value FROM hourly_totals ORDER BY metric, hour")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// Calls `f` for every series row of `ok` Tweets: (tweet, metric name, bucket start, value), in
    /// (tweet, metric, bucket) order.
    pub fn for_each_series(
        &self,
        mut f: impl FnMut(u64, &str, i64, u64),
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.tweet_id, s.metric, s.bucket, s.value FROM series s \
                 JOIN tweets t ON t.id = s.tweet_id WHERE t.status = 'ok' \
                 ORDER BY s.tweet_id, s.metric, s.bucket",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: i64 = row.get(0).map_err(|e| self.err(e))?;
            let m: String = row.get(1).map_err(|e| self.err(e))?;
            let b: i64 = row.get(2).map_err(|e| self.err(e))?;
            let v: i64 = row.get(3).map_err(|e| self.err(e))?;
            f(id as u64, &m, b, v as u64);
        }
        Ok(())
    }

    /// The series of one Tweet and metric: (bucket start, value), ascending.
    pub fn series_of(&self, tweet_id: u64, metric: Metric) -> Result<Vec<(i64, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT bucket, value FROM series WHERE tweet_id = ?1 AND metric = ?2 ORDER BY bucket",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![tweet_id as i64, metric.as_str()], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// Makes `failed` IDs pending again (`--retry-failed`). Their windows already done stay done, so
    /// a multi-window ID goes on from the window that failed.
    pub fn retry_failed(&self) -> Result<u64, StoreError> {
        self.conn
            .execute(
                "UPDATE tweets SET status = 'pending', note = NULL WHERE status = 'failed'",
                [],
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Counts per status.
    pub fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        // One pass and no sort: a GROUP BY on the unindexed status sorts every row (and holds up to
        // the page cache's size in sorter memory).
        self.conn
            .query_row(
                "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'ok'), \
                 count(*) FILTER (WHERE status = 'unavailable'), count(*) FILTER (WHERE status = 'forbidden'), \
                 count(*) FILTER (WHERE status = 'failed') FROM tweets",
                [],
                |r| {
                    Ok(StatusCounts {
                        pending: r.get::<_, i64>(0)? as u64,
                        ok: r.get::<_, i64>(1)? as u64,
                        unavailable: r.get::<_, i64>(2)? as u64,
                        forbidden: r.get::<_, i64>(3)? as u64,
                        failed: r.get::<_, i64>(4)? as u64,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    /// Calls `f` for every `ok` Tweet in ID order with its values for `metrics` (`None` where absent).
    pub fn for_each_ok(
        &self,
        metrics: &[Metric],
        mut f: impl FnMut(u64, &[Option<u64>]),
    ) -> Result<(), StoreError> {
        let cols: Vec<&str> = metrics.iter().map(|m| m.as_str()).collect();
        let sql = format!(
            "SELECT id{}{} FROM tweets WHERE status = 'ok' ORDER BY id",
            if cols.is_empty() { "" } else { ", " },
            cols.join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut values = vec![None; metrics.len()];
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: i64 = row.get(0).map_err(|e| self.err(e))?;
            for (i, v) in values.iter_mut().enumerate() {
                *v = row
                    .get::<_, Option<i64>>(i + 1)
                    .map_err(|e| self.err(e))?
                    .map(|x| x as u64);
            }
            f(id as u64, &values);
        }
        Ok(())
    }

    /// Calls `f` for every ID that did not end `ok`: (id, status, note), in ID order.
    pub fn for_each_not_ok(
        &self,
        mut f: impl FnMut(u64, Status, Option<&str>),
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, status, note FROM tweets WHERE status <> 'ok' ORDER BY id")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: i64 = row.get(0).map_err(|e| self.err(e))?;
            let s: String = row.get(1).map_err(|e| self.err(e))?;
            let note: Option<String> = row.get(2).map_err(|e| self.err(e))?;
            f(
                id as u64,
                Status::parse(&s).unwrap_or(Status::Pending),
                note.as_deref(),
            );
        }
        Ok(())
    }

    /// Calls `f` for every rejected line, in input order.
    pub fn for_each_reject(&self, mut f: impl FnMut(&RejectRow)) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, line, content, reason FROM rejects ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let r = RejectRow {
                source: row.get(0).map_err(|e| self.err(e))?,
                line: row.get::<_, i64>(1).map_err(|e| self.err(e))? as u64,
                content: row.get(2).map_err(|e| self.err(e))?,
                reason: row.get(3).map_err(|e| self.err(e))?,
            };
            f(&r);
        }
        Ok(())
    }
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(|_| ())
}

/// One ingest chunk: IDs, rejects and counters, committed together with the position reached.
pub struct IngestTx<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
}

impl IngestTx<'_> {
    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Inserts an ID; returns false when it was already there (a duplicate).
    pub fn insert_id(&self, id: u64, account: Option<&str>) -> Result<bool, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO tweets (id, account) VALUES (?1, ?2)")
            .map_err(|e| self.err(e))?;
        let n = stmt
            .execute(params![id as i64, account])
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Inserts IDs (sorted for speed); returns how many were new, the rest being duplicates. Rows go
    /// in multi-row statements: one statement per row costs more than the B-tree insert itself.
    pub fn insert_ids(&self, ids: &[(u64, Option<String>)]) -> Result<u64, StoreError> {
        const ROWS: usize = 128;
        let mut new = 0u64;
        let mut chunks = ids.chunks_exact(ROWS);
        let values = vec!["(?, ?)"; ROWS].join(", ");
        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO tweets (id, account) VALUES {values}"
            ))
            .map_err(|e| self.err(e))?;
        let mut args: Vec<rusqlite::types::Value> = Vec::with_capacity(ROWS * 2);
        for chunk in chunks.by_ref() {
            args.clear();
            for (id, account) in chunk {
                args.push((*id as i64).into());
                args.push(match account {
                    Some(a) => a.clone().into(),
                    None => rusqlite::types::Value::Null,
                });
            }
            new += stmt
                .execute(rusqlite::params_from_iter(args.iter()))
                .map_err(|e| self.err(e))? as u64;
        }
        for (id, account) in chunks.remainder() {
            new += u64::from(self.insert_id(*id, account.as_deref())?);
        }
        Ok(new)
    }

    /// Records a rejected line.
    pub fn insert_reject(&self, r: &RejectRow) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO rejects (source, line, content, reason) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![r.source, r.line as i64, r.content, r.reason])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Commits the chunk with the position and counters reached; `done` marks the ingest complete.
    pub fn commit(
        self,
        pos: IngestPos,
        counts: IngestCounts,
        done: bool,
    ) -> Result<(), StoreError> {
        let e = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        for (k, v) in [
            ("ingest_source", pos.source as u64),
            ("ingest_line", pos.line),
            ("input_lines", counts.input_lines),
            ("rejected_lines", counts.rejected_lines),
            ("duplicate_ids", counts.duplicate_ids),
            ("ingest_done", done as u64),
        ] {
            set_meta(&self.tx, k, &v.to_string()).map_err(e)?;
        }
        self.tx.commit().map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.db");
        (d, p)
    }

    #[test]
    fn ingest_dedups_and_records_outcomes() {
        let (_d, p) = tmp();
        let mut s = Store::open(&p).unwrap();
        let tx = s.ingest_tx().unwrap();
        assert!(tx.insert_id(5, None).unwrap());
        assert!(tx.insert_id(3, Some("demo")).unwrap());
        assert!(!tx.insert_id(5, None).unwrap());
        tx.insert_reject(&RejectRow {
            source: "a.txt".into(),
            line: 2,
            content: "x".into(),
            reason: "not a number".into(),
        })
        .unwrap();
        let counts = IngestCounts {
            input_lines: 4,
            rejected_lines: 1,
            duplicate_ids: 1,
        };
        tx.commit(IngestPos { source: 0, line: 4 }, counts, true)
            .unwrap();
        let (pos, done, c) = s.ingest_state().unwrap();
        assert_eq!((pos.line, done, c), (4, true, counts));
        assert_eq!(
            s.pending_windows_after(0, 10).unwrap(),
            vec![(3, 0, Some("demo".to_string())), (5, 0, None)]
        );
        assert_eq!(s.pending_windows_after(3, 10).unwrap(), vec![(5, 0, None)]);

        let metrics = [Metric::Favorites, Metric::Retweets];
        let commit = |window, outcomes| Commit {
            window,
            windows: 2,
            outcomes,
            hourly: vec![(0, 3600, 4)],
            via: Some("demo".to_string()),
        };
        let ok3 = |v| IdOutcome {
            id: 3,
            status: Status::Ok,
            values: vec![Some(v), None],
            note: None,
            series: vec![(0, 0, v)],
        };
        // Window 0 of 2: accumulates, stays pending; applying it twice changes nothing.
        let finals = s
            .record(
                &metrics,
                &[commit(0, vec![ok3(7)]), commit(0, vec![ok3(7)])],
            )
            .unwrap();
        assert!(finals.is_empty());
        assert_eq!(
            s.pending_windows_after(0, 10).unwrap(),
            vec![(3, 1, Some("demo".to_string())), (5, 0, None)]
        );
        let finals = s
            .record(
                &metrics,
                &[commit(
                    1,
                    vec![
                        ok3(5),
                        IdOutcome::final_status(5, Status::Failed, "HTTP 503"),
                    ],
                )],
            )
            .unwrap();
        assert_eq!(finals, vec![(3, vec![12, 0])]);
        assert_eq!(s.accounts_used().unwrap(), vec!["demo".to_string()]);
        assert_eq!(s.series_of(3, Metric::Favorites).unwrap(), vec![(0, 12)]);
        assert_eq!(
            s.hourly_totals().unwrap(),
            vec![("favorites".to_string(), 3600, 8)],
            "the duplicate commit adds nothing"
        );
        let c = s.status_counts().unwrap();
        assert_eq!((c.ok, c.failed, c.pending, c.unique()), (1, 1, 0, 2));
        let mut seen = vec![];
        s.for_each_ok(&metrics, |id, v| seen.push((id, v.to_vec())))
            .unwrap();
        assert_eq!(seen, vec![(3, vec![Some(12), None])]);
        let mut bad = vec![];
        s.for_each_not_ok(|id, st, note| bad.push((id, st, note.map(str::to_string))))
            .unwrap();
        assert_eq!(bad, vec![(5, Status::Failed, Some("HTTP 503".to_string()))]);
    }

    #[test]
    fn a_foreign_sqlite_file_is_refused_and_untouched() {
        let (_d, p) = tmp();
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
        let before = std::fs::read(&p).unwrap();
        let err = Store::open(&p).err().unwrap();
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
        assert!(err.to_string().contains("run.db"));
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn a_store_that_lost_its_wal_is_refused_and_a_clean_close_needs_none() {
        let (_d, p) = tmp();
        let mut s = Store::open(&p).unwrap();
        let tx = s.ingest_tx().unwrap();
        tx.insert_id(9, None).unwrap();
        tx.commit(IngestPos::default(), IngestCounts::default(), true)
            .unwrap();
        // A crash: the connection is never closed, the WAL holds the commit.
        std::mem::forget(s);
        assert!(wal_path(&p).exists() && marker_path(&p).exists());
        let saved = std::fs::read(wal_path(&p)).unwrap();
        std::fs::remove_file(wal_path(&p)).unwrap();
        let before = std::fs::read(&p).unwrap();
        let err = Store::open(&p).err().unwrap();
        assert!(matches!(err, StoreError::MissingWal { .. }), "{err}");
        assert!(err.to_string().contains("run.db-wal"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), before, "left untouched");
        // With the WAL back, the commit is there; a clean close folds it in and needs no WAL.
        std::fs::write(wal_path(&p), saved).unwrap();
        let s = Store::open(&p).unwrap();
        assert_eq!(s.status_counts().unwrap().pending, 1);
        drop(s);
        assert!(!marker_path(&p).exists());
        let _ = std::fs::remove_file(wal_path(&p));
        assert_eq!(Store::open(&p).unwrap().status_counts().unwrap().pending, 1);
    }

    #[test]
    fn a_truncated_store_is_refused() {
        let (_d, p) = tmp();
        {
            let mut s = Store::open(&p).unwrap();
            let tx = s.ingest_tx().unwrap();
            for id in 1..20_000 {
                tx.insert_id(id, None).unwrap();
            }
            tx.commit(IngestPos::default(), IngestCounts::default(), true)
                .unwrap();
        }
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let err = Store::open(&p).err().unwrap();
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), &bytes[..bytes.len() / 2]);
    }

    #[test]
    fn garbage_and_newer_schema_are_refused() {
        let (_d, p) = tmp();
        std::fs::write(&p, vec![0xAB; 8192]).unwrap();
        assert!(matches!(Store::open(&p), Err(StoreError::NotAStore { .. })));
        let (_d2, p2) = tmp();
        drop(Store::open(&p2).unwrap());
        Connection::open(&p2)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        assert!(matches!(
            Store::open(&p2),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }
}
