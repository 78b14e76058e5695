//! Every query: the batcher's pending pages, the counts, and the walks the reports make.

use engagement_api::Metric;
use rusqlite::{params, OptionalExtension};

use super::meta::MetaKey;
use super::{IngestCounts, RejectRow, StatusCounts, Store, StoreError};
use crate::outcome::{MessageSource, NotServed, Status};

/// One final outcome, as the report walks see it.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeRow<'a> {
    /// The Tweet.
    pub id: u64,
    /// Its final status.
    pub status: Status,
    /// Why, for anything but `ok`.
    pub note: Option<&'a str>,
    /// Its values, in the order of the metrics asked for (`None` where absent or not served).
    pub values: &'a [Option<u64>],
    /// The age rules that withheld some of its metrics.
    pub not_served: NotServed,
    /// The messages about it, by [`MessageRow::mid`].
    pub messages: &'a [i64],
    /// The groups it is in, by [`GroupRow::gid`], ascending.
    pub groups: &'a [i64],
}

/// A group of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// Its number (what [`OutcomeRow::groups`] holds).
    pub gid: i64,
    /// Its name.
    pub name: String,
    /// Its unique IDs (0 until the ingest has ended).
    pub ids: u64,
}

/// The `(id, key)` rows of a link table (`id_messages`, `id_groups`) in ID order, walked beside
/// another ID-ordered walk: a merge, not a lookup per row.
struct Links<'a> {
    rows: rusqlite::Rows<'a>,
    next: Option<(i64, i64)>,
}

impl<'a> Links<'a> {
    fn new(mut rows: rusqlite::Rows<'a>) -> rusqlite::Result<Links<'a>> {
        let next = Self::read(&mut rows)?;
        Ok(Links { rows, next })
    }

    fn read(rows: &mut rusqlite::Rows<'a>) -> rusqlite::Result<Option<(i64, i64)>> {
        rows.next()?.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose()
    }

    /// The keys linked to `id` into `out` (cleared first), skipping links of IDs below it. The IDs
    /// asked for must ascend.
    fn take(&mut self, id: i64, out: &mut Vec<i64>) -> rusqlite::Result<()> {
        out.clear();
        while let Some((lid, key)) = self.next {
            if lid > id {
                break;
            }
            if lid == id {
                out.push(key);
            }
            self.next = Self::read(&mut self.rows)?;
        }
        Ok(())
    }
}

impl MessageRow {
    /// The text as shown: with "(numbers vary)" when its texts differed in their numbers.
    pub fn shown(&self) -> String {
        if self.varies {
            format!("{} (numbers vary)", self.text)
        } else {
            self.text.clone()
        }
    }
}

/// A message kept from the answers, with its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    /// Its number (what [`OutcomeRow::messages`] holds).
    pub mid: i64,
    /// The text, word for word.
    pub text: String,
    /// The API's (`errors` of a 200) or engage's own.
    pub source: MessageSource,
    /// Responses that brought it.
    pub responses: u64,
    /// Its texts differed in their numbers (counts, times): `text` is the first of them.
    pub varies: bool,
    /// IDs it is about.
    pub ids: u64,
}

impl Store {
    /// Where the last ingest chunk ended, and whether ingest finished.
    pub fn ingest_state(&self) -> Result<(bool, IngestCounts), StoreError> {
        let get = |k: MetaKey| -> Result<u64, StoreError> {
            Ok(self.meta(k)?.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        let done = self.meta(MetaKey::IngestDone)?.as_deref() == Some("1");
        let counts = IngestCounts {
            input_lines: get(MetaKey::InputLines)?,
            rejected_lines: get(MetaKey::RejectedLines)?,
            duplicate_ids: get(MetaKey::DuplicateIds)?,
        };
        Ok((done, counts))
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

    /// Calls `f` for every series row of `ok` Tweets that are in a group: (the Tweet's groups by
    /// [`GroupRow::gid`], metric name, bucket start, value), in Tweet order. The memberships are
    /// read beside the series, both in ID order (a merge, not a lookup per row).
    pub fn for_each_group_series(
        &self,
        mut f: impl FnMut(&[i64], &str, i64, u64),
    ) -> Result<(), StoreError> {
        if !self.has_group_tables()? {
            return Ok(());
        }
        let err = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.tweet_id, s.metric, s.bucket, s.value FROM series s \
                 JOIN outcomes o ON o.id = s.tweet_id WHERE o.status = 'ok' \
                 ORDER BY s.tweet_id, s.metric, s.bucket",
            )
            .map_err(err)?;
        let mut links = self
            .conn
            .prepare("SELECT id, gid FROM id_groups ORDER BY id, gid")
            .map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut links = Links::new(links.query([]).map_err(err)?).map_err(err)?;
        let (mut current, mut gids): (Option<i64>, Vec<i64>) = (None, Vec::new());
        while let Some(row) = rows.next().map_err(err)? {
            let id: i64 = row.get(0).map_err(err)?;
            if current != Some(id) {
                current = Some(id);
                links.take(id, &mut gids).map_err(err)?;
            }
            if gids.is_empty() {
                continue;
            }
            let m = row.get_ref(1).map_err(err)?.as_str().unwrap_or("");
            let b: i64 = row.get(2).map_err(err)?;
            let v: i64 = row.get(3).map_err(err)?;
            f(&gids, m, b, v as u64);
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

    /// Every ID below this one has its final outcome (0 when nothing is known).
    pub fn done_below(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta(MetaKey::DoneBelow)?
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
    /// in ID order, with its values for `metrics` (`None` where absent), the age rules that withheld
    /// some, and the messages about it (see [`Store::messages`]).
    pub fn for_each_outcome(
        &self,
        from: u64,
        to: Option<u64>,
        metrics: &[Metric],
        mut f: impl FnMut(&OutcomeRow<'_>),
    ) -> Result<(), StoreError> {
        let cols: String = metrics
            .iter()
            .map(|m| format!(", {}", m.as_str()))
            .collect();
        let bound = if to.is_some() { " AND id < ?2" } else { "" };
        let sql = format!(
            "SELECT id, status, note, not_served{cols} FROM outcomes WHERE id >= ?1{bound} ORDER BY id"
        );
        let err = |e| self.err(e);
        let mut stmt = self.conn.prepare(&sql).map_err(err)?;
        let mut link_stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, mid FROM id_messages WHERE id >= ?1{bound} ORDER BY id, mid"
            ))
            .map_err(err)?;
        // A store of schema 3 read through a cursor (which upgrades nothing) has no memberships:
        // the same parameters, no row.
        let group_sql = if self.has_group_tables()? {
            format!("SELECT id, gid FROM id_groups WHERE id >= ?1{bound} ORDER BY id, gid")
        } else if to.is_some() {
            "SELECT ?1, ?2 WHERE 0".to_string()
        } else {
            "SELECT ?1, ?1 WHERE 0".to_string()
        };
        let mut group_stmt = self.conn.prepare(&group_sql).map_err(err)?;
        let (mut rows, links, group_links) = match to {
            Some(to) => (
                stmt.query(params![from as i64, to as i64]).map_err(err)?,
                link_stmt
                    .query(params![from as i64, to as i64])
                    .map_err(err)?,
                group_stmt
                    .query(params![from as i64, to as i64])
                    .map_err(err)?,
            ),
            None => (
                stmt.query(params![from as i64]).map_err(err)?,
                link_stmt.query(params![from as i64]).map_err(err)?,
                group_stmt.query(params![from as i64]).map_err(err)?,
            ),
        };
        // Messages and memberships walk alongside the outcomes, all in ID order.
        let mut links = Links::new(links).map_err(err)?;
        let mut group_links = Links::new(group_links).map_err(err)?;
        let mut values = vec![None; metrics.len()];
        let mut mids: Vec<i64> = Vec::new();
        let mut gids: Vec<i64> = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let id = row.get::<_, i64>(0).map_err(err)? as u64;
            let status = Status::stored(row.get_ref(1).map_err(err)?.as_str().unwrap_or(""));
            let note = row.get_ref(2).map_err(err)?.as_str_or_null().ok().flatten();
            let not_served = NotServed::from_stored(
                row.get_ref(3).map_err(err)?.as_str_or_null().ok().flatten(),
            );
            for (i, v) in values.iter_mut().enumerate() {
                *v = match row.get_ref(i + 4).map_err(err)? {
                    rusqlite::types::ValueRef::Integer(x) => Some(x as u64),
                    _ => None,
                };
            }
            links.take(id as i64, &mut mids).map_err(err)?;
            group_links.take(id as i64, &mut gids).map_err(err)?;
            f(&OutcomeRow {
                id,
                status,
                note,
                values: &values,
                not_served,
                messages: &mids,
                groups: &gids,
            });
        }
        Ok(())
    }

    /// Whether the store has the group tables (schema 4 on): a store of an earlier schema read
    /// through a cursor, which upgrades nothing, does not.
    fn has_group_tables(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'id_groups'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// The run's groups, by name.
    pub fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
        if !self.has_group_tables()? {
            return Ok(Vec::new());
        }
        let err = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT gid, name, ids FROM groups ORDER BY name")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(GroupRow {
                    gid: r.get(0)?,
                    name: r.get(1)?,
                    ids: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(err)?;
        rows.map(|r| r.map_err(err)).collect()
    }

    /// The fewest impressions a ranked engagement rate needs: as the last run set it, else
    /// [`crate::groups::DEFAULT_MIN_IMPRESSIONS`].
    pub fn min_impressions(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta(MetaKey::MinImpressions)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::groups::DEFAULT_MIN_IMPRESSIONS))
    }

    /// IDs in two groups or more (0 until the ingest has ended).
    pub fn shared_ids(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta(MetaKey::SharedIds)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Calls `f` for every `ok` Tweet in ID order with its values for `metrics` (`None` where absent).
    pub fn for_each_ok(
        &self,
        metrics: &[Metric],
        mut f: impl FnMut(u64, &[Option<u64>]),
    ) -> Result<(), StoreError> {
        self.for_each_outcome(0, None, metrics, |row| {
            if row.status == Status::Ok {
                f(row.id, row.values)
            }
        })
    }

    /// The texts of the messages kept, by number: what the report walks need (without the counts,
    /// which read every link). A message's text never changes once kept, so a row written early in a
    /// run's report pass reads as one written at the end.
    pub fn message_texts(&self) -> Result<std::collections::HashMap<i64, String>, StoreError> {
        let err = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT mid, text FROM messages")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        rows.map(|r| r.map_err(err)).collect()
    }

    /// Why the run in this store has not finished (`None` when every ID has an outcome and the
    /// inputs were read to the end): what `history add` and `merge` refuse a store with.
    pub fn unfinished(&self) -> Result<Option<String>, StoreError> {
        let (ingested, _) = self.ingest_state()?;
        let (unique, pending) = self.unique_and_pending()?;
        Ok(if !ingested {
            Some("its inputs were not read to the end".to_string())
        } else if pending > 0 {
            Some(format!("{pending} of {unique} IDs pending"))
        } else {
            None
        })
    }

    /// The messages kept from 200 answers (and engage's notes about answers), most IDs first: each
    /// with how many responses brought it and how many IDs it is about.
    pub fn messages(&self) -> Result<Vec<MessageRow>, StoreError> {
        let err = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.mid, m.text, m.source, m.responses, m.varies, \
                 (SELECT count(*) FROM id_messages l WHERE l.mid = m.mid) AS ids \
                 FROM messages m ORDER BY ids DESC, m.responses DESC, m.text",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(MessageRow {
                    mid: r.get(0)?,
                    text: r.get(1)?,
                    source: MessageSource::parse(&r.get::<_, String>(2)?),
                    responses: r.get::<_, i64>(3)? as u64,
                    varies: r.get(4)?,
                    ids: r.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(err)?;
        rows.map(|r| r.map_err(err)).collect()
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
