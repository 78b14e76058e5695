//! Every write: the inputs' fingerprints, the ingest of IDs and rejected lines, the commits of
//! outcomes, and `--retry-failed`. Each is one transaction of the writer, numbered (see
//! [`marker_path`](super::marker_path)).

use std::path::PathBuf;

use engagement_api::Metric;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::marker::{commit, Marker};
use super::meta::{set_meta, MetaKey};
use super::{IngestCounts, RejectRow, Store, StoreError};
use crate::outcome::{IdOutcome, Message, NotServed, Settled, Status};

/// IDs (or rejected lines) per ingest transaction.
pub const INGEST_BLOCK: usize = 8_192;
/// `ok` rows per multi-row insert (a `/totals` response of 250 IDs is five statements).
const OK_ROWS: usize = 50;

impl Store {
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
            let ok_row = format!("(?, 'ok', ?, ?{marks})");
            let ok_one = format!(
                "INSERT OR IGNORE INTO outcomes (id, status, via, not_served{cols}) VALUES {ok_row}"
            );
            let ok_many = format!(
                "INSERT OR IGNORE INTO outcomes (id, status, via, not_served{cols}) VALUES {}",
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
                // Whether any outcome of the response applied: its messages count only then.
                let mut settled_any = false;
                for o in c.outcomes.iter().filter(|o| o.status != Status::Ok) {
                    settled_any |= other
                        .execute(params![o.id as i64, o.status.as_str(), o.note])
                        .map_err(e)?
                        > 0;
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
                    let mut rules: Vec<Option<&str>> = Vec::with_capacity(OK_ROWS);
                    for group in oks.chunks(OK_ROWS) {
                        ids.clear();
                        values.clear();
                        rules.clear();
                        for o in group {
                            ids.push(o.id as i64);
                            rules.push(o.not_served.to_stored());
                            values.extend(
                                (0..metrics.len())
                                    .map(|i| clamp(o.values.get(i).copied().flatten())),
                            );
                        }
                        let mut args: Vec<&dyn rusqlite::ToSql> =
                            Vec::with_capacity(group.len() * (3 + metrics.len()));
                        for (k, id) in ids.iter().enumerate() {
                            args.push(id);
                            args.push(&via);
                            args.push(&rules[k]);
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
                            for row in args.chunks(3 + metrics.len()) {
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
                            let rule = o.not_served.to_stored();
                            let mut args: Vec<&dyn rusqlite::ToSql> = vec![&id, &via, &rule];
                            args.extend(values.iter().map(|v| v as &dyn rusqlite::ToSql));
                            let n = stmt.execute(args.as_slice()).map_err(e)?;
                            finals += n as u64;
                            n > 0
                        } else {
                            let last = c.window + 1 >= windows;
                            let done = add_window(&tx, metrics, o, (c.window, last), via, &values)
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
                if applied || settled_any {
                    for m in &c.messages {
                        keep_message(&tx, m).map_err(e)?;
                    }
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
            set_meta(&tx, MetaKey::DoneBelow, &w.to_string()).map_err(e)?;
        }
        commit(self.marker.as_ref(), tx).map_err(e)?;
        Ok(finals)
    }

    /// Makes `failed` IDs pending again (`--retry-failed`). Their windows already done stay done, so
    /// a multi-window ID goes on from the window that failed.
    pub fn retry_failed(&self) -> Result<u64, StoreError> {
        let e = |e| self.err(e);
        let tx = self.conn.unchecked_transaction().map_err(e)?;
        // Failed IDs below the resume watermark become pending: it no longer holds, nor does a
        // report pass saved over them.
        tx.execute(
            "DELETE FROM meta WHERE key = ?1 OR key = ?2",
            [MetaKey::DoneBelow.as_str(), MetaKey::ReportPass.as_str()],
        )
        .map_err(e)?;
        let n = tx
            .execute("DELETE FROM outcomes WHERE status = 'failed'", [])
            .map_err(e)?;
        commit(self.marker.as_ref(), tx).map_err(e)?;
        Ok(n as u64)
    }
}

/// Adds one window's values of an `ok` ID of a multi-window run, and returns whether they applied
/// (the ID was at that window and not final). The last window moves the sums into `outcomes`; the
/// age rules of every window are kept together (a rule found in any window holds for the Tweet).
fn add_window(
    conn: &Connection,
    metrics: &[Metric],
    o: &IdOutcome,
    (window, last): (usize, bool),
    via: Option<&str>,
    values: &[Option<i64>],
) -> rusqlite::Result<bool> {
    let id = o.id as i64;
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
    type Before = (Option<String>, Vec<Option<i64>>);
    let before: Option<Before> = conn
        .prepare_cached(&format!(
            "SELECT not_served{cols} FROM partial WHERE id = ?1"
        ))?
        .query_row([id], |r| {
            Ok((
                r.get(0)?,
                (1..=metrics.len())
                    .map(|i| r.get(i))
                    .collect::<rusqlite::Result<_>>()?,
            ))
        })
        .optional()?;
    let rules = o.not_served.union(NotServed::from_stored(
        before.as_ref().and_then(|b| b.0.as_deref()),
    ));
    let sums: Vec<Option<i64>> = values
        .iter()
        .enumerate()
        .map(|(i, now)| {
            if rules.rule_for(metrics[i]).is_some() {
                return None;
            }
            match (before.as_ref().and_then(|b| b.1[i]), *now) {
                (sum, None) => sum,
                (None, now) => now,
                (Some(sum), Some(now)) => Some(sum.saturating_add(now)),
            }
        })
        .collect();
    let rule = rules.to_stored();
    let marks = ", ?".repeat(metrics.len());
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&id];
    if last {
        args.push(&via);
        args.push(&rule);
        args.extend(sums.iter().map(|v| v as &dyn rusqlite::ToSql));
        conn.prepare_cached(&format!(
            "INSERT INTO outcomes (id, status, via, not_served{cols}) VALUES (?, 'ok', ?, ?{marks})"
        ))?
        .execute(args.as_slice())?;
        conn.prepare_cached("DELETE FROM partial WHERE id = ?1")?
            .execute([id])?;
    } else {
        args.push(&rule);
        args.extend(sums.iter().map(|v| v as &dyn rusqlite::ToSql));
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO partial (id, not_served{cols}) VALUES (?, ?{marks})"
        ))?
        .execute(args.as_slice())?;
    }
    Ok(true)
}

/// Distinct messages kept one by one; past this, further new ones are counted under
/// [`OTHER_MESSAGES`].
pub const MAX_MESSAGES: i64 = 1_000;
/// The text further distinct messages are counted under.
pub const OTHER_MESSAGES: &str = "(further distinct messages, not kept one by one)";

/// A message's shape: its text with every run of digits as `#`. Texts of one shape are one message
/// (the API's texts carry counts and times: "2 Tweet ID(s) are unavailable", "… older than 90 days
/// (2026-09-02T17:38:38Z - …)"), kept under the first of its texts, which never changes (the
/// report pass writes it into outcomes.csv as it goes), and marked as varying.
fn shape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !digits {
                out.push('#');
            }
            digits = true;
        } else {
            out.push(c);
            digits = false;
        }
    }
    out
}

/// Counts one response's message and links it to the IDs it is about.
fn keep_message(conn: &Connection, m: &Message) -> rusqlite::Result<()> {
    let mut key = shape(&m.text);
    let known: Option<i64> = conn
        .prepare_cached("SELECT mid FROM messages WHERE shape = ?1")?
        .query_row([&key], |r| r.get(0))
        .optional()?;
    let mut text = m.text.as_str();
    if known.is_none() {
        let held: i64 = conn
            .prepare_cached("SELECT count(*) FROM messages")?
            .query_row([], |r| r.get(0))?;
        if held >= MAX_MESSAGES {
            key = OTHER_MESSAGES.to_string();
            text = OTHER_MESSAGES;
        }
    }
    let mid: i64 = conn
        .prepare_cached(
            "INSERT INTO messages (shape, text, source, responses) VALUES (?1, ?2, ?3, 1) \
             ON CONFLICT (shape) DO UPDATE SET responses = responses + 1, \
             varies = varies OR text <> excluded.text RETURNING mid",
        )?
        .query_row(params![key, text, m.source.as_str()], |r| r.get(0))?;
    let mut link =
        conn.prepare_cached("INSERT OR IGNORE INTO id_messages (id, mid) VALUES (?1, ?2)")?;
    for &id in &m.ids {
        link.execute(params![id as i64, mid])?;
    }
    Ok(())
}

#[cfg(test)]
#[test]
fn texts_that_differ_in_numbers_only_are_one_message() {
    assert_eq!(
        shape("12 Tweet ID(s) are unavailable"),
        "# Tweet ID(s) are unavailable"
    );
    assert_eq!(
        shape("older than 90 days (2026-09-02T17:38:38Z - x)"),
        "older than # days (#-#-#T#:#:#Z - x)"
    );
    assert_eq!(shape("no digits"), "no digits");
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

    /// Records the group names (those already there are kept) and returns their numbers, in the
    /// order given.
    pub fn insert_groups(&self, names: &[String]) -> Result<Vec<i64>, StoreError> {
        let mut insert = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO groups (name) VALUES (?1)")
            .map_err(|e| self.err(e))?;
        let mut get = self
            .tx
            .prepare_cached("SELECT gid FROM groups WHERE name = ?1")
            .map_err(|e| self.err(e))?;
        names
            .iter()
            .map(|n| {
                insert.execute([n]).map_err(|e| self.err(e))?;
                get.query_row([n], |r| r.get(0)).map_err(|e| self.err(e))
            })
            .collect()
    }

    /// Records memberships `(id, group index)`, `gids` mapping the indexes to the store's numbers
    /// ([`IngestTx::insert_groups`]); ascending IDs, so the rows are appended.
    pub fn insert_memberships(
        &self,
        memberships: &[(u64, u32)],
        gids: &[i64],
    ) -> Result<(), StoreError> {
        const ROWS: usize = 128;
        let values = vec!["(?, ?)"; ROWS].join(", ");
        let mut many = self
            .tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO id_groups (id, gid) VALUES {values}"
            ))
            .map_err(|e| self.err(e))?;
        let mut one = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO id_groups (id, gid) VALUES (?1, ?2)")
            .map_err(|e| self.err(e))?;
        let mut chunks = memberships.chunks_exact(ROWS);
        let mut args: Vec<i64> = Vec::with_capacity(ROWS * 2);
        for chunk in chunks.by_ref() {
            args.clear();
            for (id, g) in chunk {
                args.push(*id as i64);
                args.push(gids[*g as usize]);
            }
            many.execute(rusqlite::params_from_iter(args.iter()))
                .map_err(|e| self.err(e))?;
        }
        for (id, g) in chunks.remainder() {
            one.execute(params![*id as i64, gids[*g as usize]])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Records each group's unique IDs (`sizes` by the index `gids` maps) and how many IDs are in
    /// two groups or more.
    pub fn set_group_counts(
        &self,
        gids: &[i64],
        sizes: &[u64],
        shared: u64,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("UPDATE groups SET ids = ?2 WHERE gid = ?1")
            .map_err(|e| self.err(e))?;
        for (gid, n) in gids.iter().zip(sizes) {
            stmt.execute(params![gid, *n as i64])
                .map_err(|e| self.err(e))?;
        }
        set_meta(&self.tx, MetaKey::SharedIds, &shared.to_string()).map_err(|e| self.err(e))
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
                (MetaKey::InputLines, counts.input_lines),
                (MetaKey::RejectedLines, counts.rejected_lines),
                (MetaKey::DuplicateIds, counts.duplicate_ids),
                (MetaKey::IngestDone, 1),
            ] {
                set_meta(&self.tx, k, &v.to_string()).map_err(e)?;
            }
        }
        commit(self.marker, self.tx).map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tmp;
    use super::*;

    /// A rule found in any window holds for the Tweet: the metric it covers ends NULL with the rule
    /// kept, whatever another window said; a message counts once per response that applied, and
    /// never for a response applied twice.
    #[test]
    fn not_served_rules_and_messages_survive_windows_and_repeats() {
        use crate::outcome::{AgeRule, MessageSource, NotServed};
        let (_d, p) = tmp();
        let mut s = Store::open(&p).unwrap();
        let tx = s.ingest_tx().unwrap();
        for id in [1, 2] {
            tx.insert_id(id, None).unwrap();
        }
        tx.commit(None).unwrap();
        let metrics = [Metric::Favorites, Metric::VideoViews];
        let ok = |id, video: Option<u64>, not_served| IdOutcome {
            id,
            status: Status::Ok,
            values: vec![Some(10), video],
            note: None,
            series: vec![],
            not_served,
        };
        let old = NotServed::NONE.with(AgeRule::Days1800);
        let commit = |window, outcomes, text: &str| Settled {
            window,
            windows: 2,
            outcomes,
            hourly: vec![],
            via: Some("bearer".into()),
            origin: 1,
            messages: vec![Message {
                text: text.into(),
                source: MessageSource::Api,
                ids: vec![2],
            }],
        };
        let w0 = commit(
            0,
            vec![ok(1, Some(4), NotServed::NONE), ok(2, None, old)],
            "video 1 of 2",
        );
        s.record(&metrics, &[w0.clone(), w0], None).unwrap();
        let w1 = commit(
            1,
            vec![
                ok(1, Some(3), NotServed::NONE),
                ok(2, Some(9), NotServed::NONE),
            ],
            "video 2 of 2",
        );
        s.record(&metrics, std::slice::from_ref(&w1), None).unwrap();
        s.record(&metrics, &[w1], None).unwrap();
        let mut rows = Vec::new();
        s.for_each_outcome(0, None, &metrics, |r| {
            rows.push((r.id, r.values.to_vec(), r.not_served, r.messages.len()))
        })
        .unwrap();
        assert_eq!(
            rows,
            vec![
                (1, vec![Some(20), Some(7)], NotServed::NONE, 0),
                (2, vec![Some(20), None], old, 1),
            ]
        );
        let m = s.messages().unwrap();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(
            (m[0].text.as_str(), m[0].responses, m[0].ids, m[0].varies),
            ("video 1 of 2", 2, 1, true)
        );
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
            messages: Vec::new(),
        };
        let ok3 = |v| IdOutcome {
            id: 3,
            status: Status::Ok,
            values: vec![Some(v), None],
            note: None,
            series: vec![(0, 0, v)],
            not_served: crate::outcome::NotServed::NONE,
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
}
