//! The schema: created whole in one transaction, and upgraded from schemas 1, 2 and 3.

use engagement_api::Metric;
use rusqlite::Connection;

/// Bumped whenever the schema changes; a store from a newer version is refused.
pub const SCHEMA_VERSION: i64 = 4;
/// Marks our files apart from other SQLite databases (`PRAGMA application_id`, "ENGA").
pub const APPLICATION_ID: i32 = 0x454e_4741;

/// Creates every table, the view and the ids, in one transaction.
pub(super) fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
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
{v3}
{v4}
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;",
        tables = v2_tables(),
        v3 = v3_changes(),
        v4 = V4_CHANGES
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
pub(super) fn migrate_v1(conn: &Connection) -> rusqlite::Result<()> {
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

/// What schema 3 adds over schema 2: the metrics the API did not serve for an `ok` Tweet (its age
/// rules), and the messages that came with 200 answers and the IDs each is about.
fn v3_changes() -> String {
    let view_cols: String = Metric::ALL
        .iter()
        .map(|m| format!(", o.{m}", m = m.as_str()))
        .collect();
    format!(
        "ALTER TABLE outcomes ADD COLUMN not_served TEXT;
ALTER TABLE partial ADD COLUMN not_served TEXT;
CREATE TABLE messages (
    mid INTEGER PRIMARY KEY,
    shape TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    responses INTEGER NOT NULL,
    varies INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE id_messages (
    id INTEGER NOT NULL,
    mid INTEGER NOT NULL,
    PRIMARY KEY (id, mid)
) WITHOUT ROWID;
DROP VIEW tweets;
CREATE VIEW tweets AS
    SELECT i.id, coalesce(o.status, 'pending') AS status, i.account, o.note, o.via, i.windows_done,
        o.not_served{view_cols}
    FROM ids i LEFT JOIN outcomes o ON o.id = i.id;"
    )
}

/// Schema 2 to 3 in one transaction: two columns added (no row is rewritten), two tables, the view.
pub(super) fn migrate_v2(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
{v3}
PRAGMA user_version = 3;
COMMIT;",
        v3 = v3_changes()
    ))
}

/// What schema 4 adds over schema 3: the groups (campaigns, hashtags, competitors) and which IDs
/// are in each. `ids` is each group's unique IDs, set when the ingest ends. Memberships are keyed by
/// ID first, so the report's walk in ID order reads them beside the outcomes.
const V4_CHANGES: &str = "CREATE TABLE groups (
    gid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    ids INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE id_groups (
    id INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    PRIMARY KEY (id, gid)
) WITHOUT ROWID;";

/// Schema 3 to 4 in one transaction: two new tables, empty (a run of schema 3 had no groups).
pub(super) fn migrate_v3(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
{V4_CHANGES}
PRAGMA user_version = 4;
COMMIT;"
    ))
}

/// One `INTEGER` column per metric, for `outcomes` and `partial`.
fn metric_columns() -> String {
    Metric::ALL
        .iter()
        .map(|m| format!("    {} INTEGER", m.as_str()))
        .collect::<Vec<_>>()
        .join(",\n")
}

#[cfg(test)]
mod tests {
    use super::super::{tmp, Store};
    use super::*;
    use crate::outcome::{IdOutcome, Settled, Status};

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
                        not_served: crate::outcome::NotServed::NONE,
                    }],
                    hourly: vec![],
                    via: Some("bearer".into()),
                    origin: 2,
                    messages: Vec::new(),
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
}

#[cfg(test)]
mod v3_cursor_tests {
    use super::super::{tmp, Store};
    use super::*;
    use crate::outcome::{IdOutcome, NotServed, Settled, Status};

    /// A cursor does not upgrade the store it reads (`engage history add` reads run stores that
    /// way): a schema 3 store, without the group tables, is walked as before, with no groups.
    #[test]
    fn a_schema_3_store_read_through_a_cursor_has_its_outcomes_and_no_groups() {
        let (_d, p) = tmp();
        let metrics = [Metric::Favorites];
        {
            let mut s = Store::open(&p).unwrap();
            let tx = s.ingest_tx().unwrap();
            tx.insert_ids(&[(5, None), (9, None)]).unwrap();
            tx.commit(None).unwrap();
            let ok = |id| IdOutcome {
                id,
                status: Status::Ok,
                values: vec![Some(id)],
                note: None,
                series: vec![],
                not_served: NotServed::NONE,
            };
            s.record(
                &metrics,
                &[Settled {
                    window: 0,
                    windows: 1,
                    outcomes: vec![ok(5), ok(9)],
                    hourly: vec![],
                    via: None,
                    origin: 5,
                    messages: Vec::new(),
                }],
                None,
            )
            .unwrap();
        }
        // Back to schema 3 as an earlier engage left it.
        Connection::open(&p)
            .unwrap()
            .execute_batch("DROP TABLE groups; DROP TABLE id_groups; PRAGMA user_version = 3;")
            .unwrap();
        let s = Store::open_cursor(&p).unwrap();
        let mut seen = Vec::new();
        s.for_each_outcome(0, None, &metrics, |row| {
            seen.push((row.id, row.values[0], row.groups.to_vec()))
        })
        .unwrap();
        assert_eq!(seen, vec![(5, Some(5), vec![]), (9, Some(9), vec![])]);
        assert!(s.groups().unwrap().is_empty());
        let mut series = 0;
        s.for_each_group_series(|_, _, _, _| series += 1).unwrap();
        assert_eq!(series, 0);
    }
}
