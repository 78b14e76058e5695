//! The WAL marker and the writer's commit number: what tells, when a store's `-wal` file is gone,
//! whether its commits were folded into the database (nothing lost) or lost with it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::meta::{set_meta, MetaKey};
use super::Store;

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

/// The first line of the marker file, for whoever finds it.
const MARKER_TEXT: &str =
    "engage: the -wal file beside this store may hold commits not yet in the database; keep them together\n";
/// The second line's prefix; the number after it is written in place after every commit.
const MARKER_SEQ: &str = "commit ";
/// Digits of the number: fixed, so that every update is one write at the same offset.
const MARKER_DIGITS: usize = 20;

/// The writer's open marker file and the last commit sequence number written to it.
pub(super) struct Marker {
    file: std::fs::File,
    seq: std::cell::Cell<u64>,
}

impl Marker {
    /// Creates (or replaces) the marker with `seq`.
    pub(super) fn create(db: &Path, seq: u64) -> std::io::Result<Marker> {
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
        set_meta(tx, MetaKey::CommitSeq, &next.to_string())?;
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
pub(super) fn marker_seq(db: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(marker_path(db)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(MARKER_SEQ))?
        .trim()
        .parse()
        .ok()
}

/// The writer's commit sequence number as the database (and its WAL, if any) holds it.
pub(super) fn stored_seq(conn: &Connection) -> rusqlite::Result<u64> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [MetaKey::CommitSeq.as_str()],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
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

/// Commits `tx`; a writer's transaction carries its next commit number, which goes into the marker
/// once committed (see [`marker_path`]).
pub(super) fn commit(marker: Option<&Marker>, tx: Transaction<'_>) -> rusqlite::Result<()> {
    let seq = marker.map(|m| m.bump(&tx)).transpose()?;
    tx.commit()?;
    if let (Some(m), Some(seq)) = (marker, seq) {
        m.committed(seq);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{IngestCounts, StoreError};
    use super::*;
    use crate::outcome::{IdOutcome, Settled, Status};
    use engagement_api::Metric;

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
                not_served: crate::outcome::NotServed::NONE,
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
        s.set_meta(MetaKey::Period, "v").unwrap();
        s.set_inputs(&[("a".into(), "b".into())]).unwrap();
        s.delete_meta(MetaKey::Period).unwrap();
        s.retry_failed().unwrap();
        assert_eq!(marker_seq(&p), Some(6));
        // The report pass's saves beside the writer carry no number: losing one loses nothing.
        Store::open_cursor(&p)
            .unwrap()
            .set_meta(MetaKey::ReportPass, "{}")
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
}
