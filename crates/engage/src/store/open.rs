//! Opening a store: the checks that refuse a file engage should not touch (not SQLite, someone
//! else's database, truncated, newer, its WAL lost), the upgrade of an older schema, and the
//! writer's marker.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::marker::{marker_path, marker_seq, stored_seq, wal_path, Marker};
use super::schema::{
    create_schema, migrate_v1, migrate_v2, migrate_v3, APPLICATION_ID, SCHEMA_VERSION,
};
use super::{Store, StoreError};

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
            if version < SCHEMA_VERSION && mode != Mode::Cursor {
                let upgrade = |from: i64| {
                    let step = match from {
                        1 => migrate_v1,
                        2 => migrate_v2,
                        _ => migrate_v3,
                    };
                    step(&conn).map_err(|e| {
                        if busy(&e) {
                            StoreError::Busy {
                                path: path.to_path_buf(),
                            }
                        } else {
                            not_store(format!(
                                "cannot upgrade its schema {from} to {SCHEMA_VERSION} ({e})"
                            ))
                        }
                    })
                };
                for from in version.max(1)..SCHEMA_VERSION {
                    upgrade(from)?;
                }
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
}

#[cfg(test)]
mod tests {
    use super::super::{tmp, IngestCounts};
    use super::*;

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
