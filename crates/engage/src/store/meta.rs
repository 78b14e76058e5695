//! The `meta` table's settings, named by [`MetaKey`] so that no module spells a key itself.

use rusqlite::{params, Connection, OptionalExtension};

use super::marker::commit;
use super::{Store, StoreError};

/// A setting kept in the `meta` table. The stored names ([`MetaKey::as_str`]) are part of the
/// on-disk format: a store written by an earlier engage is resumed by reading them, so they never
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKey {
    /// The run's identity (JSON), written once before the first fetch; a resume must match it.
    Identity,
    /// The resolved `/historical` period, so a resume uses the one the run started with.
    Period,
    /// `1` once the inputs are read to the end.
    IngestDone,
    /// Lines that held an ID or a reject.
    InputLines,
    /// Lines rejected.
    RejectedLines,
    /// IDs seen again after their first occurrence.
    DuplicateIds,
    /// The resume watermark: every ID below it has its final outcome.
    DoneBelow,
    /// The report pass saved during the fetch (JSON), to go on with in the next life.
    ReportPass,
    /// The number of the writer's last transaction, set by every one of them (see
    /// [`marker_path`](super::marker_path)); nothing else writes it.
    CommitSeq,
    /// When the fetch of a finished run ended (RFC 3339, UTC): the time its values are "as of" in a
    /// history (`engage history add`). Set by the life that finished the fetch.
    FetchedAt,
    /// IDs in two groups or more, set when the ingest ends (runs with groups only).
    SharedIds,
    /// The fewest impressions a ranked engagement rate needs (`--min-impressions`), as the last run
    /// set it; `engage report` uses it.
    MinImpressions,
    /// Requests, 429s and budget used per app (JSON, see [`crate::apps`]), added up over the lives.
    AppStats,
}

impl MetaKey {
    /// Every key.
    pub const ALL: [MetaKey; 13] = [
        MetaKey::Identity,
        MetaKey::Period,
        MetaKey::IngestDone,
        MetaKey::InputLines,
        MetaKey::RejectedLines,
        MetaKey::DuplicateIds,
        MetaKey::DoneBelow,
        MetaKey::ReportPass,
        MetaKey::CommitSeq,
        MetaKey::FetchedAt,
        MetaKey::SharedIds,
        MetaKey::MinImpressions,
        MetaKey::AppStats,
    ];

    /// The value of the `key` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MetaKey::Identity => "identity",
            MetaKey::Period => "period",
            MetaKey::IngestDone => "ingest_done",
            MetaKey::InputLines => "input_lines",
            MetaKey::RejectedLines => "rejected_lines",
            MetaKey::DuplicateIds => "duplicate_ids",
            MetaKey::DoneBelow => "done_below",
            MetaKey::ReportPass => "report_pass",
            MetaKey::CommitSeq => "commit_seq",
            MetaKey::FetchedAt => "fetched_at",
            MetaKey::SharedIds => "shared_ids",
            MetaKey::MinImpressions => "min_impressions",
            MetaKey::AppStats => "app_stats",
        }
    }
}

impl std::fmt::Display for MetaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Store {
    /// A value from `meta`.
    pub fn meta(&self, key: MetaKey) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [key.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets a value in `meta` (its own transaction).
    pub fn set_meta(&self, key: MetaKey, value: &str) -> Result<(), StoreError> {
        self.write(|c| set_meta(c, key, value))
    }

    /// Removes a value from `meta` (its own transaction).
    pub fn delete_meta(&self, key: MetaKey) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute("DELETE FROM meta WHERE key = ?1", [key.as_str()])
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
}

/// Sets a value in `meta` on `conn`, inside whatever transaction it is in.
pub(super) fn set_meta(conn: &Connection, key: MetaKey, value: &str) -> rusqlite::Result<()> {
    // Cached: the writer sets two keys with every commit (the watermark and the commit number).
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key.as_str(), value])
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::super::tmp;
    use super::*;

    #[test]
    fn the_stored_key_names_are_those_existing_stores_hold() {
        // Renaming one would make every existing store lose that setting on resume.
        assert_eq!(
            MetaKey::ALL.map(MetaKey::as_str),
            [
                "identity",
                "period",
                "ingest_done",
                "input_lines",
                "rejected_lines",
                "duplicate_ids",
                "done_below",
                "report_pass",
                "commit_seq",
                "fetched_at",
                "shared_ids",
                "min_impressions",
                "app_stats",
            ]
        );
    }

    #[test]
    fn docs_store_md_names_every_key() {
        let doc = include_str!("../../../../docs/store.md");
        for k in MetaKey::ALL {
            assert!(
                doc.contains(&format!("`{k}`")),
                "docs/store.md does not name the meta key `{k}`"
            );
        }
    }

    #[test]
    fn a_key_written_under_its_stored_name_is_read_set_and_deleted() {
        let (_d, p) = tmp();
        let s = Store::open(&p).unwrap();
        // As an earlier engage wrote it: the plain name in the `key` column.
        s.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES ('done_below', '42')",
                [],
            )
            .unwrap();
        assert_eq!(s.meta(MetaKey::DoneBelow).unwrap().as_deref(), Some("42"));
        assert_eq!(s.done_below().unwrap(), 42);
        assert_eq!(s.meta(MetaKey::ReportPass).unwrap(), None);
        s.set_meta(MetaKey::DoneBelow, "43").unwrap();
        s.set_meta(MetaKey::ReportPass, "{}").unwrap();
        assert_eq!(s.meta(MetaKey::DoneBelow).unwrap().as_deref(), Some("43"));
        s.delete_meta(MetaKey::DoneBelow).unwrap();
        assert_eq!(s.meta(MetaKey::DoneBelow).unwrap(), None);
        assert_eq!(s.meta(MetaKey::ReportPass).unwrap().as_deref(), Some("{}"));
        // The writer's two transactions above are numbered under the stored name too.
        let seq: String = s
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'commit_seq'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(seq, "3");
    }
}
