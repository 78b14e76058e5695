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
//!   that grow in place split pages, which cost twice as much per ID. Pending rows are what the next
//!   life fetches; nothing final is fetched twice.
//! - The run's identity (inputs' SHA-256, endpoint, metrics, auth, window, N) is written once, before any
//!   fetch; a resume with anything different is refused with what differs.
//!
//! WAL mode with `synchronous=NORMAL`: a commit survives a process crash (kill -9) — the WAL is in the OS
//! page cache — but the last commits may be lost on power failure, in which case those IDs are simply
//! fetched again. See `docs/store.md`.
//!
//! Where things are: this file holds the types every caller sees ([`Store`], [`StoreError`], the
//! counters); `schema` creates the tables and upgrades schema 1; `open` checks a file before using
//! it (not a store, newer, truncated, lost WAL); `marker` is the WAL marker and the writer's commit
//! number that tell a lost WAL from one folded in; `meta` names the settings kept in the `meta`
//! table ([`MetaKey`]); `write` is the ingest and the commits of outcomes; `read` is every query.
//! What a fetch settles ([`Status`](crate::outcome::Status), [`Settled`](crate::outcome::Settled))
//! is in [`crate::outcome`].

use std::path::{Path, PathBuf};

use rusqlite::Connection;

mod marker;
mod merge;
mod meta;
mod open;
mod read;
mod schema;
mod write;

#[cfg(test)]
mod model_tests;

pub use marker::{marker_path, wal_path};
pub use merge::Disagreement;
pub use meta::MetaKey;
pub use read::{GroupRow, MessageRow, OutcomeRow};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use write::{IngestTx, INGEST_BLOCK};

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
        match self {
            StoreError::NotAStore { .. }
            | StoreError::MissingWal { .. }
            | StoreError::NewerSchema { .. } => crate::exit::STORE,
            StoreError::Busy { .. } => crate::exit::USAGE,
            StoreError::Sqlite { source, .. } => sqlite_exit_code(source),
        }
    }
}

/// The exit code of an SQLite error on an engage file (a store or a history): damage is the file's
/// (5), a full disk or a permission the machine's (6), a lock another process's (2).
pub fn sqlite_exit_code(e: &rusqlite::Error) -> u8 {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        // Damage found while reading a page is as much "the file is damaged" as a failed check.
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
    marker: Option<marker::Marker>,
}

impl Store {
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
}

/// A fresh directory and the path of a store in it (not created yet).
#[cfg(test)]
fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("run.db");
    (d, p)
}
