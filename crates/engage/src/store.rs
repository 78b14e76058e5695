//! The checkpoint store: one SQLite file per run.
//!
//! Commit protocol (the invariant every resume relies on):
//! - Ingest inserts every unique input ID into `ids` (an ID without a row in `outcomes` is pending)
//!   in ascending order (see [`crate::sorted`]), and the rejected lines, keyed by their position, in
//!   blocks; the line counters and `ingest_done` come last. A crash mid-ingest reads the inputs again:
//!   `INSERT OR IGNORE` on both keys makes that repeat nothing, without holding the ID set in memory.
//! - One writer owns the connection during a run. Each API response's outcomes (status, metrics, error)
//!   are written in one transaction, so an ID either has no `outcomes` row yet (pending) or has its final
//!   outcome: never half-written. A final outcome is an insert, never an update of the ID's row: rows
//!   that grow in place split pages, which cost twice as much per ID. Pending rows are what the next life fetches; nothing final is fetched twice.
//! - The run's identity (inputs' SHA-256, endpoint, metrics, auth, window, N) is written once, before any
//!   fetch; a resume with anything different is refused with what differs.
//!
//! WAL mode with `synchronous=NORMAL`: a commit survives a process crash (kill -9) — the WAL is in the OS
//! page cache — but the last commits may be lost on power failure, in which case those IDs are simply
//! fetched again. See `docs/store.md`.

use std::path::{Path, PathBuf};

use engagement_api::Metric;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use crate::outcome::{IdOutcome, Settled, Status};

/// Bumped whenever the schema changes; a store from a newer version is refused.
pub const SCHEMA_VERSION: i64 = 2;
/// Marks our files apart from other SQLite databases (`PRAGMA application_id`, "ENGA").
pub const APPLICATION_ID: i32 = 0x454e_4741;
/// IDs (or rejected lines) per ingest transaction.
pub const INGEST_BLOCK: usize = 8_192;
/// `ok` rows per multi-row insert (a `/totals` response of 250 IDs is five statements).
const OK_ROWS: usize = 50;

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

impl StoreError {
    /// The documented exit code this error ends a command with.
    pub fn exit_code(&self) -> u8 {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::NotAStore { .. }
            | StoreError::MissingWal { .. }
            | StoreError::NewerSchema { .. } => crate::exit::STORE,
            StoreError::Busy { .. } => crate::exit::USAGE,
            StoreError::Sqlite { source, .. } => match source.sqlite_error_code() {
                // Damage found while reading a page is as much "the store is damaged" as a failed check.
                Some(C::DatabaseCorrupt | C::NotADatabase) => crate::exit::STORE,
                Some(
                    C::DiskFull
                    | C::CannotOpen
                    | C::ReadOnly
                    | C::PermissionDenied
                    | C::SystemIoFailure
                    | C::NoLargeFileSupport,
                ) => crate::exit::ENVIRONMENT,
                Some(C::DatabaseBusy | C::DatabaseLocked) => crate::exit::USAGE,
                _ => crate::exit::INTERNAL,
            },
        }
    }
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

/// A rejected input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRow {
    /// Index of the input in the run's input list.
    pub source_idx: usize,
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
    /// The writer's marker (see [`marker_path`]); readers and cursors have none.
    marker: Option<Marker>,
}

/// The key in `meta` of the writer's commit sequence number (see [`marker_path`]).
const COMMIT_SEQ: &str = "commit_seq";

/// The first line of the marker file, for whoever finds it.
const MARKER_TEXT: &str =
    "engage: the -wal file beside this store may hold commits not yet in the database; keep them together\n";
/// The second line's prefix; the number after it is written in place after every commit.
const MARKER_SEQ: &str = "commit ";
/// Digits of the number: fixed, so that every update is one write at the same offset.
const MARKER_DIGITS: usize = 20;

/// The writer's open marker file and the last commit sequence number written to it.
struct Marker {
    file: std::fs::File,
    seq: std::cell::Cell<u64>,
}

impl Marker {
    /// Creates (or replaces) the marker with `seq`.
    fn create(db: &Path, seq: u64) -> std::io::Result<Marker> {
        let mut file = crate::fsutil::create_private(&marker_path(db))?;
        std::io::Write::write_all(
            &mut file,
            format!("{MARKER_TEXT}{MARKER_SEQ}{seq:0MARKER_DIGITS$}\n").as_bytes(),
        )?;
        Ok(Marker {
            file,
            seq: std::cell::Cell::new(seq),
        })
    }

    /// Sets the next sequence number inside the transaction `tx`, which the caller commits.
    fn bump(&self, tx: &Connection) -> rusqlite::Result<u64> {
        let next = self.seq.get() + 1;
        set_meta(tx, COMMIT_SEQ, &next.to_string())?;
        Ok(next)
    }

    /// Records `seq` once its transaction is committed: after, never before, so the marker never
    /// claims a commit the WAL may not hold. No fsync: like the WAL's own commits
    /// (`synchronous=NORMAL`), this survives a killed process, which is what the marker is for.
    fn committed(&self, seq: u64) {
        self.seq.set(seq);
        let digits = format!("{seq:0MARKER_DIGITS$}");
        let at = (MARKER_TEXT.len() + MARKER_SEQ.len()) as u64;
        // A failed write leaves an older number: the check at open gets less strict, never wrong.
        #[cfg(unix)]
        let _ = std::os::unix::fs::FileExt::write_all_at(&self.file, digits.as_bytes(), at);
        #[cfg(not(unix))]
        let _ = {
            use std::io::{Seek, Write};
            (&self.file)
                .seek(std::io::SeekFrom::Start(at))
                .and_then(|_| (&self.file).write_all(digits.as_bytes()))
        };
    }
}

/// The commit sequence number a marker file holds; `None` when it has none (written by an engage
/// from before the number) or cannot be read.
fn marker_seq(db: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(marker_path(db)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(MARKER_SEQ))?
        .trim()
        .parse()
        .ok()
}

/// The writer's commit sequence number as the database (and its WAL, if any) holds it.
fn stored_seq(conn: &Connection) -> rusqlite::Result<u64> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [COMMIT_SEQ], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
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
/// exists from the writer's open until a clean close has checkpointed everything into the database.
///
/// It holds the number of the writer's last commit: every transaction of the writer also sets
/// `meta.commit_seq` to the next number, and once it is committed the writer writes that number
/// into the marker. When the `-wal` file is missing at open, the database file alone tells whether
/// anything was lost: a `commit_seq` at least the marker's means every commit reached the database
/// (any SQLite client that was the last to close the store, `sqlite3` or `engage status`, folded the
/// WAL in and deleted it: nothing lost, the store opens); a lower one means commits were lost (the
/// WAL was deleted, or a copy left it behind), and opening is refused instead of silently resuming
/// from older data. A marker without a number (written by an engage from before it) cannot tell
/// the two apart, so a missing WAL is refused then, as it always was.
pub fn marker_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-engage", db.display()))
}

/// The store's write-ahead log.
pub fn wal_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.marker.is_none() {
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

/// Creates every table, the view and the ids, in one transaction.
fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    let ddl = format!(
        "BEGIN;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE inputs (idx INTEGER PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL);
{tables}
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
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;",
        tables = v2_tables()
    );
    conn.execute_batch(&ddl)
}

/// The tables and view that schema 2 adds over schema 1's single `tweets` table.
fn v2_tables() -> String {
    let cols = metric_columns();
    let view_cols: String = Metric::ALL
        .iter()
        .map(|m| format!(", o.{m}", m = m.as_str()))
        .collect();
    format!(
        "CREATE TABLE ids (
    id INTEGER PRIMARY KEY,
    account TEXT,
    windows_done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL
        CHECK (status = 'ok' OR status = 'unavailable' OR status = 'forbidden' OR status = 'failed'),
    note TEXT,
    via TEXT,
{cols}
);
CREATE TABLE partial (
    id INTEGER PRIMARY KEY,
{cols}
);
CREATE TABLE rejects (
    source_idx INTEGER NOT NULL,
    line INTEGER NOT NULL,
    source TEXT NOT NULL,
    content TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (source_idx, line)
) WITHOUT ROWID;
CREATE VIEW tweets AS
    SELECT i.id, coalesce(o.status, 'pending') AS status, i.account, o.note, o.via, i.windows_done{view_cols}
    FROM ids i LEFT JOIN outcomes o ON o.id = i.id;"
    )
}

/// Schema 1 kept everything in one `tweets` table, updated in place; moves it into schema 2's tables
/// in one transaction, nothing fetched lost.
fn migrate_v1(conn: &Connection) -> rusqlite::Result<()> {
    let cols: String = Metric::ALL
        .iter()
        .map(|m| format!(", {}", m.as_str()))
        .collect();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
ALTER TABLE tweets RENAME TO tweets_v1;
ALTER TABLE rejects RENAME TO rejects_v1;
{tables}
INSERT OR IGNORE INTO rejects (source_idx, line, source, content, reason)
    SELECT coalesce((SELECT min(idx) FROM inputs WHERE inputs.source = r.source), 0), line, source, content, reason
    FROM rejects_v1 r ORDER BY rowid;
DROP TABLE rejects_v1;
INSERT INTO ids (id, account, windows_done) SELECT id, account, windows_done FROM tweets_v1;
INSERT INTO outcomes (id, status, note, via{cols})
    SELECT id, status, note, via{cols} FROM tweets_v1 WHERE status <> 'pending';
INSERT INTO partial (id{cols})
    SELECT id{cols} FROM tweets_v1 WHERE status = 'pending' AND windows_done > 0;
DROP TABLE tweets_v1;
PRAGMA user_version = 2;
COMMIT;",
        tables = v2_tables()
    ))
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
        let mut existed = path.exists()
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
        let missing_wal = || StoreError::MissingWal {
            path: path.to_path_buf(),
            wal: wal_path(path),
        };
        // Judged before the connection exists: opening it creates an empty WAL. With the marker
        // there and the WAL not, what the database holds decides (see [`marker_path`]).
        let marked = marker_path(path).exists();
        let wal_gone = existed && marked && !wal_path(path).exists();
        let must_hold = if wal_gone {
            Some(marker_seq(path).ok_or_else(missing_wal)?)
        } else {
            None
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
        // Wait for a lock held by another process before judging the file, so "in use" is never
        // mistaken for "damaged".
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        if mode == Mode::Reader && marked {
            // A writer is running or was killed: whatever else this reader does, its close (when
            // it is the last connection) leaves the WAL as it is rather than folding it in.
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map_err(sql)?;
        }
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
            // An empty database (no table, no ids set) is what a life killed while creating the
            // store leaves (its first transaction rolled back): nothing in it to keep, so it is
            // created again. Anything else without our id is someone else's.
            let empty = app_id == 0
                && conn
                    .query_row(
                        "SELECT (SELECT count(*) FROM sqlite_master) = 0 AND user_version = 0 \
                         FROM pragma_user_version",
                        [],
                        |r| r.get::<_, bool>(0),
                    )
                    .unwrap_or(false);
            if empty {
                existed = false;
            } else if app_id != APPLICATION_ID {
                return Err(not_store(
                    "a SQLite database that engage did not create".into(),
                ));
            }
        }
        if existed {
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sql)?;
            if version > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path: path.to_path_buf(),
                    found: version,
                });
            }
            if let Some(marked) = must_hold {
                let held = stored_seq(&conn).map_err(|e| not_store(format!("damaged ({e})")))?;
                if held < marked {
                    return Err(missing_wal());
                }
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
            if version == 1 && mode != Mode::Cursor {
                migrate_v1(&conn).map_err(|e| {
                    if busy(&e) {
                        StoreError::Busy {
                            path: path.to_path_buf(),
                        }
                    } else {
                        not_store(format!(
                            "cannot upgrade its schema 1 to {SCHEMA_VERSION} ({e})"
                        ))
                    }
                })?;
            }
        }
        if !existed {
            // Created whole in one transaction, in rollback-journal mode, before WAL mode and the
            // marker: a kill at any point leaves either an empty file or a complete empty store.
            create_schema(&conn).map_err(sql)?;
        }
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-8192;",
        )
        .map_err(sql)?;
        if mode == Mode::Cursor {
            conn.execute_batch("PRAGMA cache_size=-2048;")
                .map_err(sql)?;
        }
        crate::fsutil::restrict(path);
        let marker = if mode == Mode::Writer {
            // Written once the store is whole and in WAL mode, with the number its database holds.
            let seq = stored_seq(&conn).map_err(sql)?;
            Some(Marker::create(path, seq).map_err(|e| {
                not_store(format!("cannot write {}: {e}", marker_path(path).display()))
            })?)
        } else {
            None
        };
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            marker,
        })
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

    /// A value from `meta`.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets a value in `meta` (its own transaction).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write(|c| set_meta(c, key, value))
    }

    /// Removes a value from `meta` (its own transaction).
    pub fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute("DELETE FROM meta WHERE key = ?1", [key])
                .map(|_| ())
        })
    }

    /// Runs `f` in its own transaction: the writer's with its commit number, anyone else's (the
    /// report pass saving where it is) as a plain statement.
    fn write(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> Result<(), StoreError> {
        let e = |e| self.err(e);
        if self.marker.is_none() {
            return f(&self.conn).map_err(e);
        }
        let tx = self.conn.unchecked_transaction().map_err(e)?;
        f(&tx).map_err(e)?;
        commit(self.marker.as_ref(), tx).map_err(e)
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
        commit(self.marker.as_ref(), tx).map_err(|e| StoreError::Sqlite { path, source: e })
    }

    /// Where the last ingest chunk ended, and whether ingest finished.
    pub fn ingest_state(&self) -> Result<(bool, IngestCounts), StoreError> {
        let get = |k: &str| -> Result<u64, StoreError> {
            Ok(self.meta(k)?.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        let done = self.meta("ingest_done")?.as_deref() == Some("1");
        let counts = IngestCounts {
            input_lines: get("input_lines")?,
            rejected_lines: get("rejected_lines")?,
            duplicate_ids: get("duplicate_ids")?,
        };
        Ok((done, counts))
    }

    /// Starts an ingest transaction: IDs and rejects, and at the end the line counters.
    pub fn ingest_tx(&mut self) -> Result<IngestTx<'_>, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: path.clone(),
            source: e,
        })?;
        Ok(IngestTx {
            tx,
            path,
            marker: self.marker.as_ref(),
        })
    }

    /// Writes the commits of one or more responses in one transaction and returns how many IDs became
    /// final `ok`.
    ///
    /// A final outcome is inserted into `outcomes` unless the ID already has one, so a commit applied
    /// twice changes nothing. An `ok` for window `w` of a multi-window run applies only while the ID's
    /// `windows_done` is `w`; its values add to the ID's `partial` sums, and the last window moves the
    /// sums into `outcomes`.
    ///
    /// `done_below`, when given, is recorded with them: every ID below it has its final outcome, so a
    /// resume can start its keyset cursor there instead of walking the finished part of the store.
    pub fn record(
        &mut self,
        metrics: &[Metric],
        commits: &[Settled],
        done_below: Option<u64>,
    ) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let e = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut finals = 0u64;
        let tx = self.conn.transaction().map_err(e)?;
        {
            let cols: String = metrics
                .iter()
                .map(|m| format!(", {}", m.as_str()))
                .collect();
            let marks = ", ?".repeat(metrics.len());
            let ok_row = format!("(?, 'ok', ?{marks})");
            let ok_one =
                format!("INSERT OR IGNORE INTO outcomes (id, status, via{cols}) VALUES {ok_row}");
            let ok_many = format!(
                "INSERT OR IGNORE INTO outcomes (id, status, via{cols}) VALUES {}",
                vec![ok_row.as_str(); OK_ROWS].join(", ")
            );
            let mut other = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO outcomes (id, status, note) VALUES (?1, ?2, ?3)",
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
            let clamp = |v: Option<u64>| v.map(|x| x.min(i64::MAX as u64) as i64);
            for c in commits {
                let windows = c.windows.max(1);
                let via = c.via.as_deref();
                for o in c.outcomes.iter().filter(|o| o.status != Status::Ok) {
                    other
                        .execute(params![o.id as i64, o.status.as_str(), o.note])
                        .map_err(e)?;
                }
                let oks: Vec<&IdOutcome> = c
                    .outcomes
                    .iter()
                    .filter(|o| o.status == Status::Ok)
                    .collect();
                // A response's hourly sums count only if its `ok`s applied (they all do, or none).
                let mut applied = false;
                if windows == 1 && oks.iter().all(|o| o.series.is_empty()) {
                    // The common case (`/totals`): the whole response in multi-row inserts.
                    let mut values: Vec<Option<i64>> = Vec::with_capacity(OK_ROWS * metrics.len());
                    let mut ids: Vec<i64> = Vec::with_capacity(OK_ROWS);
                    for group in oks.chunks(OK_ROWS) {
                        ids.clear();
                        values.clear();
                        for o in group {
                            ids.push(o.id as i64);
                            values.extend(
                                (0..metrics.len())
                                    .map(|i| clamp(o.values.get(i).copied().flatten())),
                            );
                        }
                        let mut args: Vec<&dyn rusqlite::ToSql> =
                            Vec::with_capacity(group.len() * (2 + metrics.len()));
                        for (k, id) in ids.iter().enumerate() {
                            args.push(id);
                            args.push(&via);
                            for v in &values[k * metrics.len()..(k + 1) * metrics.len()] {
                                args.push(v);
                            }
                        }
                        let sql = if group.len() == OK_ROWS {
                            &ok_many
                        } else {
                            &ok_one
                        };
                        let mut stmt = tx.prepare_cached(sql).map_err(e)?;
                        let n = if group.len() == OK_ROWS {
                            stmt.execute(args.as_slice()).map_err(e)? as u64
                        } else {
                            let mut n = 0;
                            for row in args.chunks(2 + metrics.len()) {
                                n += stmt.execute(row).map_err(e)? as u64;
                            }
                            n
                        };
                        finals += n;
                        applied |= n > 0;
                    }
                } else {
                    for o in oks {
                        let values: Vec<Option<i64>> = (0..metrics.len())
                            .map(|i| clamp(o.values.get(i).copied().flatten()))
                            .collect();
                        let changed = if windows == 1 {
                            let mut stmt = tx.prepare_cached(&ok_one).map_err(e)?;
                            let id = o.id as i64;
                            let mut args: Vec<&dyn rusqlite::ToSql> = vec![&id, &via];
                            args.extend(values.iter().map(|v| v as &dyn rusqlite::ToSql));
                            let n = stmt.execute(args.as_slice()).map_err(e)?;
                            finals += n as u64;
                            n > 0
                        } else {
                            let last = c.window + 1 >= windows;
                            let done = add_window(&tx, metrics, o.id, c.window, last, via, &values)
                                .map_err(e)?;
                            finals += u64::from(done && last);
                            done
                        };
                        if !changed {
                            // Already applied (or already final): never add a window twice.
                            continue;
                        }
                        applied = true;
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
                }
                // Contracts bill each owner account whose tokens were used, whatever the answer.
                match via {
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
        if let Some(w) = done_below {
            set_meta(&tx, "done_below", &w.to_string()).map_err(e)?;
        }
        commit(self.marker.as_ref(), tx).map_err(e)?;
        Ok(finals)
    }

    /// Pending IDs greater than `after`, ascending, at most `limit`, with the windows already done for
    /// each: the batcher's keyset page.
    pub fn pending_windows_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, usize, Option<String>)>, StoreError> {
        let mut page = Vec::new();
        self.walk_ids(after, |id, windows_done, account, outcome| {
            if outcome.is_none() {
                page.push((id, windows_done, account.map(str::to_string)));
            }
            page.len() < limit
        })?;
        Ok(page)
    }

    /// Walks `ids` after `after` in ID order beside `outcomes`, both in ID order (a merge of two
    /// sequential scans, where a join would look every ID up): `f(id, windows_done, account, outcome)`,
    /// with the outcome's status and note when it has one, until `f` returns false.
    fn walk_ids(
        &self,
        after: u64,
        mut f: impl FnMut(u64, usize, Option<&str>, Option<(Status, Option<&str>)>) -> bool,
    ) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        let mut ids = self
            .conn
            .prepare_cached("SELECT id, windows_done, account FROM ids WHERE id > ?1 ORDER BY id")
            .map_err(err)?;
        let mut outs = self
            .conn
            .prepare_cached("SELECT id, status, note FROM outcomes WHERE id > ?1 ORDER BY id")
            .map_err(err)?;
        let mut ids = ids.query([after as i64]).map_err(err)?;
        let mut outs = outs.query([after as i64]).map_err(err)?;
        // The current outcome row, owned (notes are rare: only IDs that did not end `ok`).
        let read = |o: &rusqlite::Row| -> rusqlite::Result<(i64, Status, Option<String>)> {
            Ok((
                o.get(0)?,
                Status::stored(o.get_ref(1)?.as_str().unwrap_or("")),
                o.get(2)?,
            ))
        };
        let mut out = outs
            .next()
            .map_err(err)?
            .map(read)
            .transpose()
            .map_err(err)?;
        while let Some(row) = ids.next().map_err(err)? {
            let id: i64 = row.get(0).map_err(err)?;
            let windows_done: i64 = row.get(1).map_err(err)?;
            let account = row.get_ref(2).map_err(err)?.as_str_or_null().ok().flatten();
            while out.as_ref().is_some_and(|o| o.0 < id) {
                out = outs
                    .next()
                    .map_err(err)?
                    .map(read)
                    .transpose()
                    .map_err(err)?;
            }
            let outcome = match &out {
                Some((oid, status, note)) if *oid == id => Some((*status, note.as_deref())),
                _ => None,
            };
            if !f(id as u64, windows_done as usize, account, outcome) {
                break;
            }
        }
        Ok(())
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
                 JOIN outcomes o ON o.id = s.tweet_id WHERE o.status = 'ok' \
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
        let e = |e| self.err(e);
        let tx = self.conn.unchecked_transaction().map_err(e)?;
        // Failed IDs below the resume watermark become pending: it no longer holds, nor does a
        // report pass saved over them.
        tx.execute(
            "DELETE FROM meta WHERE key = 'done_below' OR key = 'report_pass'",
            [],
        )
        .map_err(e)?;
        let n = tx
            .execute("DELETE FROM outcomes WHERE status = 'failed'", [])
            .map_err(e)?;
        commit(self.marker.as_ref(), tx).map_err(e)?;
        Ok(n as u64)
    }

    /// Every ID below this one has its final outcome (0 when nothing is known).
    pub fn done_below(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta("done_below")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Counts per status.
    pub fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        // One pass and no sort: a GROUP BY on the unindexed status sorts every row (and holds up to
        // the page cache's size in sorter memory). Pending IDs are the ones without an outcome.
        let (unique, mut c) = self
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM ids), count(*) FILTER (WHERE status = 'ok'), \
                 count(*) FILTER (WHERE status = 'unavailable'), count(*) FILTER (WHERE status = 'forbidden'), \
                 count(*) FILTER (WHERE status = 'failed') FROM outcomes",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        StatusCounts {
                            pending: 0,
                            ok: r.get::<_, i64>(1)? as u64,
                            unavailable: r.get::<_, i64>(2)? as u64,
                            forbidden: r.get::<_, i64>(3)? as u64,
                            failed: r.get::<_, i64>(4)? as u64,
                        },
                    ))
                },
            )
            .map_err(|e| self.err(e))?;
        c.pending = unique.saturating_sub(c.unique());
        Ok(c)
    }

    /// Unique IDs: a count of `ids`' B-tree entries (narrow rows, few pages).
    pub fn unique_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM ids", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Unique IDs and how many of them are pending: two counts of B-tree entries, no row decoded.
    pub fn unique_and_pending(&self) -> Result<(u64, u64), StoreError> {
        let (unique, done): (i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM ids), (SELECT count(*) FROM outcomes)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok((unique as u64, (unique - done).max(0) as u64))
    }

    /// IDs from `from` on.
    pub fn unique_count_from(&self, from: u64) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM ids WHERE id >= ?1",
                [from as i64],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The ID in the middle of the `count` IDs from `from` on, to scan their outcomes in two halves;
    /// `None` when there are none. (Read from `ids`, whose rows are narrower than those of
    /// `outcomes`.)
    pub fn midpoint_from(&self, from: u64, count: u64) -> Result<Option<u64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM ids WHERE id >= ?1 ORDER BY id LIMIT 1 OFFSET ?2",
                [from as i64, (count / 2) as i64],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map(|v| v as u64))
            .map_err(|e| self.err(e))
    }

    /// Calls `f` for every final outcome with `from <= id < to` (no upper bound when `to` is `None`),
    /// in ID order: (id, status, note, values for `metrics`, `None` where absent).
    pub fn for_each_outcome(
        &self,
        from: u64,
        to: Option<u64>,
        metrics: &[Metric],
        mut f: impl FnMut(u64, Status, Option<&str>, &[Option<u64>]),
    ) -> Result<(), StoreError> {
        let cols: String = metrics
            .iter()
            .map(|m| format!(", {}", m.as_str()))
            .collect();
        let bound = if to.is_some() { " AND id < ?2" } else { "" };
        let sql = format!(
            "SELECT id, status, note{cols} FROM outcomes WHERE id >= ?1{bound} ORDER BY id"
        );
        let err = |e| self.err(e);
        let mut stmt = self.conn.prepare(&sql).map_err(err)?;
        let mut rows = match to {
            Some(to) => stmt.query(params![from as i64, to as i64]),
            None => stmt.query(params![from as i64]),
        }
        .map_err(err)?;
        let mut values = vec![None; metrics.len()];
        while let Some(row) = rows.next().map_err(err)? {
            let id = row.get::<_, i64>(0).map_err(err)?;
            let status = Status::stored(row.get_ref(1).map_err(err)?.as_str().unwrap_or(""));
            let note = row.get_ref(2).map_err(err)?.as_str_or_null().ok().flatten();
            for (i, v) in values.iter_mut().enumerate() {
                *v = match row.get_ref(i + 3).map_err(err)? {
                    rusqlite::types::ValueRef::Integer(x) => Some(x as u64),
                    _ => None,
                };
            }
            f(id as u64, status, note, &values);
        }
        Ok(())
    }

    /// Calls `f` for every `ok` Tweet in ID order with its values for `metrics` (`None` where absent).
    pub fn for_each_ok(
        &self,
        metrics: &[Metric],
        mut f: impl FnMut(u64, &[Option<u64>]),
    ) -> Result<(), StoreError> {
        self.for_each_outcome(0, None, metrics, |id, status, _, values| {
            if status == Status::Ok {
                f(id, values)
            }
        })
    }

    /// Calls `f` for every ID that did not end `ok`, pending ones included: (id, status, note), in
    /// ID order. Finding the pending ones walks every ID.
    pub fn for_each_not_ok(
        &self,
        mut f: impl FnMut(u64, Status, Option<&str>),
    ) -> Result<(), StoreError> {
        self.walk_ids(0, |id, _, _, outcome| {
            match outcome {
                None => f(id, Status::Pending, None),
                Some((Status::Ok, _)) => {}
                Some((status, note)) => f(id, status, note),
            }
            true
        })
    }

    /// Calls `f` for every rejected line, in input order.
    pub fn for_each_reject(&self, mut f: impl FnMut(&RejectRow)) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_idx, source, line, content, reason FROM rejects ORDER BY source_idx, line",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let r = RejectRow {
                source_idx: row.get::<_, i64>(0).map_err(|e| self.err(e))? as usize,
                source: row.get(1).map_err(|e| self.err(e))?,
                line: row.get::<_, i64>(2).map_err(|e| self.err(e))? as u64,
                content: row.get(3).map_err(|e| self.err(e))?,
                reason: row.get(4).map_err(|e| self.err(e))?,
            };
            f(&r);
        }
        Ok(())
    }

    /// The rejects that stand for an input not read to its end (a truncated or corrupt gzip stream,
    /// [`crate::ids::reason::GZIP_DAMAGED`]), in input order. They are ordinary reject rows, so
    /// any store that recorded one (a resume, `engage report`, a store from an earlier engage)
    /// knows of it.
    pub fn damaged_inputs(&self) -> Result<Vec<RejectRow>, StoreError> {
        let prefix = crate::ids::reason::GZIP_DAMAGED;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_idx, source, line, content, reason FROM rejects \
                 WHERE substr(reason, 1, ?2) = ?1 ORDER BY source_idx, line",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![prefix, prefix.len() as i64], |row| {
                Ok(RejectRow {
                    source_idx: row.get::<_, i64>(0)? as usize,
                    source: row.get(1)?,
                    line: row.get::<_, i64>(2)? as u64,
                    content: row.get(3)?,
                    reason: row.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// Adds one window's values of an `ok` ID of a multi-window run, and returns whether they applied
/// (the ID was at that window and not final). The last window moves the sums into `outcomes`.
fn add_window(
    conn: &Connection,
    metrics: &[Metric],
    id: u64,
    window: usize,
    last: bool,
    via: Option<&str>,
    values: &[Option<i64>],
) -> rusqlite::Result<bool> {
    let id = id as i64;
    let moved = conn
        .prepare_cached(
            "UPDATE ids SET windows_done = ?2 + 1 WHERE id = ?1 AND windows_done = ?2 \
             AND NOT EXISTS (SELECT 1 FROM outcomes WHERE id = ?1)",
        )?
        .execute(params![id, window as i64])?;
    if moved == 0 {
        return Ok(false);
    }
    let cols: String = metrics
        .iter()
        .map(|m| format!(", {}", m.as_str()))
        .collect();
    let before: Option<Vec<Option<i64>>> = conn
        .prepare_cached(&format!("SELECT 1{cols} FROM partial WHERE id = ?1"))?
        .query_row([id], |r| (1..=metrics.len()).map(|i| r.get(i)).collect())
        .optional()?;
    let sums: Vec<Option<i64>> = values
        .iter()
        .enumerate()
        .map(
            |(i, now)| match (before.as_ref().and_then(|b| b[i]), *now) {
                (sum, None) => sum,
                (None, now) => now,
                (Some(sum), Some(now)) => Some(sum.saturating_add(now)),
            },
        )
        .collect();
    let marks = ", ?".repeat(metrics.len());
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&id];
    if last {
        args.push(&via);
        args.extend(sums.iter().map(|v| v as &dyn rusqlite::ToSql));
        conn.prepare_cached(&format!(
            "INSERT INTO outcomes (id, status, via{cols}) VALUES (?, 'ok', ?{marks})"
        ))?
        .execute(args.as_slice())?;
        conn.prepare_cached("DELETE FROM partial WHERE id = ?1")?
            .execute([id])?;
    } else {
        args.extend(sums.iter().map(|v| v as &dyn rusqlite::ToSql));
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO partial (id{cols}) VALUES (?{marks})"
        ))?
        .execute(args.as_slice())?;
    }
    Ok(true)
}

/// Commits `tx`; a writer's transaction carries its next commit number, which goes into the marker
/// once committed (see [`marker_path`]).
fn commit(marker: Option<&Marker>, tx: Transaction<'_>) -> rusqlite::Result<()> {
    let seq = marker.map(|m| m.bump(&tx)).transpose()?;
    tx.commit()?;
    if let (Some(m), Some(seq)) = (marker, seq) {
        m.committed(seq);
    }
    Ok(())
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    // Cached: the writer sets two keys with every commit (the watermark and the commit number).
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])
    .map(|_| ())
}

/// One ingest chunk: IDs, rejects and counters, committed together with the position reached.
pub struct IngestTx<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
    marker: Option<&'a Marker>,
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
            .prepare_cached("INSERT OR IGNORE INTO ids (id, account) VALUES (?1, ?2)")
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
                "INSERT OR IGNORE INTO ids (id, account) VALUES {values}"
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
                "INSERT OR IGNORE INTO rejects (source_idx, line, source, content, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![
            r.source_idx as i64,
            r.line as i64,
            r.source,
            r.content,
            r.reason
        ])
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Commits; with the final line counters, marks the ingest complete.
    pub fn commit(self, finished: Option<IngestCounts>) -> Result<(), StoreError> {
        let e = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        if let Some(counts) = finished {
            for (k, v) in [
                ("input_lines", counts.input_lines),
                ("rejected_lines", counts.rejected_lines),
                ("duplicate_ids", counts.duplicate_ids),
                ("ingest_done", 1),
            ] {
                set_meta(&self.tx, k, &v.to_string()).map_err(e)?;
            }
        }
        commit(self.marker, self.tx).map_err(e)
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
            source_idx: 0,
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
        tx.commit(Some(counts)).unwrap();
        let (done, c) = s.ingest_state().unwrap();
        assert_eq!((done, c), (true, counts));
        assert_eq!(
            s.pending_windows_after(0, 10).unwrap(),
            vec![(3, 0, Some("demo".to_string())), (5, 0, None)]
        );
        assert_eq!(s.pending_windows_after(3, 10).unwrap(), vec![(5, 0, None)]);

        let metrics = [Metric::Favorites, Metric::Retweets];
        let commit = |window, outcomes| Settled {
            window,
            windows: 2,
            outcomes,
            hourly: vec![(0, 3600, 4)],
            via: Some("demo".to_string()),
            origin: 3,
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
                None,
            )
            .unwrap();
        assert_eq!(finals, 0);
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
                Some(6),
            )
            .unwrap();
        assert_eq!(finals, 1);
        assert_eq!(s.done_below().unwrap(), 6);
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
        let mut walked = vec![];
        s.for_each_not_ok(|id, st, note| walked.push((id, st, note.map(str::to_string))))
            .unwrap();
        assert_eq!(walked, bad, "nothing pending");
        // --retry-failed: 5 is pending again, from the window it failed at.
        assert_eq!(s.retry_failed().unwrap(), 1);
        assert_eq!(
            s.done_below().unwrap(),
            0,
            "the watermark goes with the failures"
        );
        assert_eq!(s.pending_windows_after(0, 10).unwrap(), vec![(5, 0, None)]);
        let mut walked = vec![];
        s.for_each_not_ok(|id, st, note| walked.push((id, st, note.is_none())))
            .unwrap();
        assert_eq!(walked, vec![(5, Status::Pending, true)]);
    }

    #[test]
    fn a_schema_1_store_is_upgraded_with_everything_it_held() {
        let (_d, p) = tmp();
        {
            // Schema 1 as it was written: one `tweets` table, outcomes updated in place.
            let c = Connection::open(&p).unwrap();
            let cols: String = Metric::ALL
                .iter()
                .map(|m| format!(", {} INTEGER", m.as_str()))
                .collect();
            c.execute_batch(&format!(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE inputs (idx INTEGER PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL);
                 CREATE TABLE tweets (id INTEGER PRIMARY KEY, status TEXT NOT NULL DEFAULT 'pending',
                     account TEXT, note TEXT, via TEXT, windows_done INTEGER NOT NULL DEFAULT 0{cols});
                 CREATE TABLE series (tweet_id INTEGER NOT NULL, metric TEXT NOT NULL, bucket INTEGER NOT NULL,
                     value INTEGER NOT NULL, PRIMARY KEY (tweet_id, metric, bucket)) WITHOUT ROWID;
                 CREATE TABLE accounts_used (name TEXT PRIMARY KEY) WITHOUT ROWID;
                 CREATE TABLE hourly_totals (metric TEXT NOT NULL, hour INTEGER NOT NULL, value INTEGER NOT NULL,
                     PRIMARY KEY (metric, hour)) WITHOUT ROWID;
                 CREATE TABLE rejects (source TEXT NOT NULL, line INTEGER NOT NULL, content TEXT NOT NULL, reason TEXT NOT NULL);
                 INSERT INTO tweets (id, status, account, windows_done, favorites, retweets)
                     VALUES (1, 'pending', 'demo', 0, NULL, NULL);
                 INSERT INTO tweets (id, status, account, windows_done, favorites, retweets)
                     VALUES (2, 'pending', NULL, 1, 7, NULL);
                 INSERT INTO tweets (id, status, via, windows_done, favorites, retweets)
                     VALUES (3, 'ok', 'bearer', 2, 4, 1);
                 INSERT INTO tweets (id, status, note) VALUES (4, 'failed', 'HTTP 503');
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = 1;"
            ))
            .unwrap();
        }
        let mut s = Store::open(&p).unwrap();
        let version: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let c = s.status_counts().unwrap();
        assert_eq!((c.pending, c.ok, c.failed, c.unique()), (2, 1, 1, 4));
        assert_eq!(
            s.pending_windows_after(0, 10).unwrap(),
            vec![(1, 0, Some("demo".to_string())), (2, 1, None)]
        );
        let metrics = [Metric::Favorites, Metric::Retweets];
        let mut ok = vec![];
        s.for_each_ok(&metrics, |id, v| ok.push((id, v.to_vec())))
            .unwrap();
        assert_eq!(ok, vec![(3, vec![Some(4), Some(1)])]);
        // ID 2's sums of window 0 survived: its last window adds to them.
        let done = s
            .record(
                &metrics,
                &[Settled {
                    window: 1,
                    windows: 2,
                    outcomes: vec![IdOutcome {
                        id: 2,
                        status: Status::Ok,
                        values: vec![Some(5), Some(2)],
                        note: None,
                        series: vec![],
                    }],
                    hourly: vec![],
                    via: Some("bearer".into()),
                    origin: 2,
                }],
                None,
            )
            .unwrap();
        assert_eq!(done, 1);
        let mut ok = vec![];
        s.for_each_ok(&metrics, |id, v| ok.push((id, v.to_vec())))
            .unwrap();
        assert_eq!(
            ok,
            vec![(2, vec![Some(12), Some(2)]), (3, vec![Some(4), Some(1)])]
        );
        // The `tweets` view answers the queries written for schema 1.
        let rows: Vec<(i64, String)> = s
            .conn
            .prepare("SELECT id, status FROM tweets ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let statuses: Vec<&str> = rows.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(statuses, ["pending", "ok", "ok", "failed"]);
    }

    #[test]
    fn a_store_killed_while_being_created_is_created_again() {
        // What a kill while creating leaves: an empty database (its first transaction rolled
        // back), perhaps already in WAL mode.
        let (_d, p) = tmp();
        Connection::open(&p)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL;")
            .unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 0);
        let s = Store::open(&p).unwrap();
        assert_eq!(s.unique_count().unwrap(), 0);
        // The marker is written once the store is whole and in WAL mode: its WAL is there.
        assert!(marker_path(&p).exists() && wal_path(&p).exists());
        std::mem::forget(s);
        assert!(Store::open(&p).is_ok(), "a kill right after creation");
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

    /// The files a `kill -9` of the writer would leave: copies of the database, its WAL and the
    /// marker, taken while `s` is open, into `to` (no connection of this process is on the copy, so
    /// the next open recovers the WAL as after a crash).
    fn crash_copy(s: &Store, to: &Path) {
        let from = s.path();
        for suffix in ["", "-wal", "-engage"] {
            std::fs::copy(
                format!("{}{suffix}", from.display()),
                format!("{}{suffix}", to.display()),
            )
            .unwrap();
        }
    }

    /// A store with 3 IDs, one of them `ok`, committed to the WAL only.
    fn killed_store(d: &tempfile::TempDir) -> PathBuf {
        let p = d.path().join("live.db");
        let mut s = Store::open(&p).unwrap();
        let tx = s.ingest_tx().unwrap();
        for id in [1, 2, 3] {
            tx.insert_id(id, None).unwrap();
        }
        tx.commit(Some(IngestCounts::default())).unwrap();
        let commit = Settled {
            windows: 1,
            outcomes: vec![IdOutcome {
                id: 2,
                status: Status::Ok,
                values: vec![Some(4)],
                note: None,
                series: vec![],
            }],
            via: Some("bearer".into()),
            origin: 1,
            ..Settled::default()
        };
        s.record(&[Metric::Favorites], &[commit], Some(2)).unwrap();
        let killed = d.path().join("killed.db");
        crash_copy(&s, &killed);
        killed
    }

    #[test]
    fn a_killed_store_read_by_any_sqlite_client_resumes() {
        let d = tempfile::tempdir().unwrap();
        let p = killed_store(&d);
        // What `sqlite3 run.db "select ..."` does: its close, the last one, folds the WAL into the
        // database and deletes it; the marker stays.
        {
            let c = Connection::open(&p).unwrap();
            let n: i64 = c
                .query_row("SELECT count(*) FROM ids", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 3);
        }
        assert!(!wal_path(&p).exists() && marker_path(&p).exists());
        let s = Store::open(&p).unwrap();
        let c = s.status_counts().unwrap();
        assert_eq!((c.ok, c.pending), (1, 2), "nothing was lost");
        assert_eq!(s.done_below().unwrap(), 2);
    }

    #[test]
    fn engage_readers_leave_a_killed_store_resumable() {
        let d = tempfile::tempdir().unwrap();
        let p = killed_store(&d);
        drop(Store::open_reader(&p).unwrap());
        let s = Store::open(&p).unwrap();
        assert_eq!(s.status_counts().unwrap().ok, 1);
    }

    #[test]
    fn a_killed_store_copied_without_its_wal_is_refused_even_after_a_read() {
        let d = tempfile::tempdir().unwrap();
        let p = killed_store(&d);
        std::fs::remove_file(wal_path(&p)).unwrap();
        // A reader of the copy sees the older database; its close must not make the copy look
        // complete.
        drop(
            Connection::open(&p)
                .unwrap()
                .query_row("SELECT count(*) FROM ids", [], |r| r.get::<_, i64>(0)),
        );
        let before = std::fs::read(&p).unwrap();
        for open in [Store::open, Store::open_reader] {
            let err = open(&p).err().unwrap();
            assert!(matches!(err, StoreError::MissingWal { .. }), "{err}");
        }
        assert_eq!(std::fs::read(&p).unwrap(), before, "left untouched");
    }

    #[test]
    fn a_store_that_lost_its_wal_is_refused_and_a_clean_close_needs_none() {
        let d = tempfile::tempdir().unwrap();
        let p = killed_store(&d);
        let saved = std::fs::read(wal_path(&p)).unwrap();
        std::fs::remove_file(wal_path(&p)).unwrap();
        let before = std::fs::read(&p).unwrap();
        let err = Store::open(&p).err().unwrap();
        assert!(matches!(err, StoreError::MissingWal { .. }), "{err}");
        assert!(err.to_string().contains("killed.db-wal"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), before, "left untouched");
        // With the WAL back, the commits are there; a clean close folds them in and needs no WAL.
        std::fs::write(wal_path(&p), saved).unwrap();
        let s = Store::open(&p).unwrap();
        assert_eq!(s.status_counts().unwrap().pending, 2);
        drop(s);
        assert!(!marker_path(&p).exists());
        let _ = std::fs::remove_file(wal_path(&p));
        assert_eq!(Store::open(&p).unwrap().status_counts().unwrap().pending, 2);
    }

    #[test]
    fn the_marker_holds_the_number_of_the_writers_last_commit() {
        let d = tempfile::tempdir().unwrap();
        let p = killed_store(&d);
        // killed_store: the ingest, then one response.
        assert_eq!(marker_seq(&p), Some(2));
        let mut s = Store::open(&p).unwrap();
        assert_eq!(stored_seq(&s.conn).unwrap(), 2);
        s.set_meta("k", "v").unwrap();
        s.set_inputs(&[("a".into(), "b".into())]).unwrap();
        s.delete_meta("k").unwrap();
        s.retry_failed().unwrap();
        assert_eq!(marker_seq(&p), Some(6));
        // The report pass's saves beside the writer carry no number: losing one loses nothing.
        Store::open_cursor(&p)
            .unwrap()
            .set_meta("report_pass", "{}")
            .unwrap();
        assert_eq!(stored_seq(&s.conn).unwrap(), 6);
        assert_eq!(marker_seq(&p), Some(6));
    }

    #[test]
    fn a_marker_without_a_number_refuses_a_missing_wal_as_before() {
        // What an engage from before the number leaves.
        let old = |d: &tempfile::TempDir| {
            let p = killed_store(d);
            std::fs::write(marker_path(&p), MARKER_TEXT).unwrap();
            p
        };
        let d = tempfile::tempdir().unwrap();
        let p = old(&d);
        Connection::open(&p)
            .unwrap()
            .query_row("SELECT count(*) FROM ids", [], |r| r.get::<_, i64>(0))
            .unwrap();
        assert!(!wal_path(&p).exists());
        let err = Store::open(&p).err().unwrap();
        assert!(matches!(err, StoreError::MissingWal { .. }), "{err}");
        // With its WAL, it opens, and the marker gets the number.
        let d = tempfile::tempdir().unwrap();
        let p = old(&d);
        let s = Store::open(&p).unwrap();
        assert_eq!(s.status_counts().unwrap().ok, 1);
        assert_eq!(marker_seq(&p), Some(2));
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
            tx.commit(Some(IngestCounts::default())).unwrap();
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
