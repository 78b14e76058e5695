//! The store against a plain in-memory model: random sequences of what a run does to its store
//! (ingest blocks, commits of answers for one or several windows, a clean close or a kill and a
//! resume, `--retry-failed`, a saved report pass) are applied to both, and after every step every
//! query the pipeline and the reports use must agree with the model. The model is a `BTreeMap` of
//! IDs to their state, written from the commit protocol's rules, not from the SQL. It also counts
//! the writer's transactions, which the commit number in `meta` and in the marker must follow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use engagement_api::Metric;
use proptest::prelude::*;
use proptest::sample::Index;
use rusqlite::Connection;

use super::marker::{marker_path, marker_seq, stored_seq, wal_path};
use super::{IngestCounts, MetaKey, RejectRow, StatusCounts, Store};
use crate::outcome::{IdOutcome, Settled, Status};

/// The run's metrics: the model's values are in this order.
const METRICS: [Metric; 2] = [Metric::Favorites, Metric::Retweets];

/// What the API said about one ID in one response.
#[derive(Debug, Clone)]
enum Answer {
    Ok {
        values: [Option<u64>; 2],
        /// (metric index, bucket, value)
        series: Vec<(usize, i64, u64)>,
    },
    Unavailable,
    Forbidden,
    Failed,
}

/// Which window a response covers: most often the one its first ID is at (what the batcher asks
/// for), sometimes any (a response applied again, or one for a window already done).
#[derive(Debug, Clone, Copy)]
enum WindowPick {
    AtFirstId,
    Any(usize),
}

/// One API response.
#[derive(Debug, Clone)]
struct Response {
    window: WindowPick,
    /// IDs picked among those ingested (whatever their state: answers for final IDs change
    /// nothing).
    answers: Vec<(Index, Answer)>,
    /// (metric index, hour, value)
    hourly: Vec<(usize, i64, u64)>,
    via: Option<&'static str>,
}

#[derive(Debug, Clone)]
enum Op {
    /// One ingest transaction: ascending unique IDs, rejected lines, and perhaps the end of the
    /// inputs with their counters.
    Ingest {
        ids: Vec<(u64, Option<&'static str>)>,
        one_by_one: bool,
        rejects: Vec<(usize, u64, u8)>,
        finish: Option<IngestCounts>,
    },
    /// The writer's transaction over one or more responses, with perhaps a new watermark.
    Record {
        responses: Vec<Response>,
        done_below: Option<u64>,
    },
    /// A `/totals` response of many `ok` IDs (the multi-row insert path): consecutive ingested IDs
    /// from `start`.
    RecordMany {
        start: Index,
        len: usize,
        window: WindowPick,
    },
    /// The end of a life and a resume: a clean close, or a kill (the connection never closed, the
    /// WAL not checkpointed).
    Reopen {
        crash: bool,
    },
    RetryFailed,
    SaveReportPass(u8),
    /// The batcher's keyset page.
    Page {
        after: u64,
        limit: usize,
    },
    /// The report's range scan, its split point and count.
    Outcomes {
        from: u64,
        to: Option<u64>,
    },
}

/// A final outcome as `for_each_outcome` gives it: id, status, note, values.
type OutcomeRow = (u64, Status, Option<String>, Vec<Option<u64>>);

/// An ID's state as the commit protocol defines it.
#[derive(Debug, Clone, Default)]
struct Id {
    account: Option<String>,
    windows_done: usize,
    /// Sums of the windows done (multi-window runs), once one applied.
    partial: Option<Vec<Option<i64>>>,
    /// The final outcome: status, note, values.
    outcome: Option<(Status, Option<String>, Vec<Option<u64>>)>,
}

#[derive(Debug, Default)]
struct Model {
    windows: usize,
    ids: BTreeMap<u64, Id>,
    series: BTreeMap<(u64, &'static str, i64), u64>,
    hourly: BTreeMap<(&'static str, i64), u64>,
    accounts: BTreeSet<String>,
    rejects: BTreeMap<(usize, u64), RejectRow>,
    ingest: (bool, IngestCounts),
    done_below: u64,
    report_pass: Option<String>,
    /// Transactions of the writer so far: each sets the next commit number.
    commits: u64,
}

fn clamp(v: Option<u64>) -> Option<i64> {
    v.map(|x| x.min(i64::MAX as u64) as i64)
}

/// A rejected line; `read` tells one reading of the inputs from another (a line read again after
/// a kill must keep what the first reading stored).
fn reject(source_idx: usize, line: u64, read: u8) -> RejectRow {
    RejectRow {
        source_idx,
        source: format!("in{source_idx}.txt"),
        line,
        content: format!("x{line} (read {read})"),
        reason: "not a Tweet ID".into(),
    }
}

fn note(status: Status) -> String {
    format!("{} by the model", status.as_str())
}

impl Model {
    fn ids_in_order(&self) -> Vec<u64> {
        self.ids.keys().copied().collect()
    }

    fn window_of(&self, pick: WindowPick, first: Option<u64>) -> usize {
        match pick {
            WindowPick::AtFirstId => first
                .and_then(|id| self.ids.get(&id))
                .map_or(0, |i| i.windows_done.min(self.windows - 1)),
            WindowPick::Any(w) => w % self.windows,
        }
    }

    /// Applies one response as the protocol says, and returns how many IDs became final `ok`.
    fn record(&mut self, commit: &Settled) -> u64 {
        let mut finals = 0;
        let mut applied = false;
        // Answers other than `ok` are final at once, for a multi-window ID too.
        for o in commit.outcomes.iter().filter(|o| o.status != Status::Ok) {
            let id = self.ids.get_mut(&o.id).expect("picked among the ingested");
            if id.outcome.is_none() {
                id.outcome = Some((o.status, o.note.clone(), vec![None; METRICS.len()]));
            }
        }
        for o in commit.outcomes.iter().filter(|o| o.status == Status::Ok) {
            let id = self.ids.get_mut(&o.id).expect("picked among the ingested");
            if id.outcome.is_some() {
                // A final outcome never changes.
                continue;
            }
            let now: Vec<Option<i64>> = (0..METRICS.len())
                .map(|i| clamp(o.values.get(i).copied().flatten()))
                .collect();
            let as_values = |v: &[Option<i64>]| v.iter().map(|x| x.map(|x| x as u64)).collect();
            let last = if self.windows == 1 {
                id.outcome = Some((Status::Ok, None, as_values(&now)));
                true
            } else {
                // A window applies only to an ID at that window: never twice, never skipped.
                if id.windows_done != commit.window {
                    continue;
                }
                id.windows_done += 1;
                let sums: Vec<Option<i64>> = (0..METRICS.len())
                    .map(|i| match (id.partial.as_ref().and_then(|p| p[i]), now[i]) {
                        (sum, None) => sum,
                        (None, now) => now,
                        (Some(sum), Some(now)) => Some(sum.saturating_add(now)),
                    })
                    .collect();
                let last = commit.window + 1 >= self.windows;
                if last {
                    id.outcome = Some((Status::Ok, None, as_values(&sums)));
                    id.partial = None;
                } else {
                    id.partial = Some(sums);
                }
                last
            };
            finals += u64::from(last);
            applied = true;
            self.add_series(o);
        }
        if let Some(v) = commit.via.as_deref() {
            if !v.is_empty() && v != "bearer" && !commit.outcomes.is_empty() {
                self.accounts.insert(v.to_string());
            }
        }
        if applied {
            for &(k, hour, value) in &commit.hourly {
                *self.hourly.entry((METRICS[k].as_str(), hour)).or_default() += value;
            }
        }
        finals
    }

    fn add_series(&mut self, o: &IdOutcome) {
        for &(k, bucket, value) in &o.series {
            *self
                .series
                .entry((o.id, METRICS[k].as_str(), bucket))
                .or_default() += value;
        }
    }

    fn counts(&self) -> StatusCounts {
        let mut c = StatusCounts::default();
        for id in self.ids.values() {
            match id.outcome.as_ref().map(|o| o.0) {
                None => c.pending += 1,
                Some(Status::Ok) => c.ok += 1,
                Some(Status::Unavailable) => c.unavailable += 1,
                Some(Status::Forbidden) => c.forbidden += 1,
                Some(_) => c.failed += 1,
            }
        }
        c
    }

    fn pending_after(&self, after: u64, limit: usize) -> Vec<(u64, usize, Option<String>)> {
        self.ids
            .range(after + 1..)
            .filter(|(_, i)| i.outcome.is_none())
            .map(|(&id, i)| (id, i.windows_done, i.account.clone()))
            .take(limit)
            .collect()
    }

    fn outcomes(&self, from: u64, to: Option<u64>) -> Vec<OutcomeRow> {
        self.ids
            .range(from..)
            .take_while(|(&id, _)| to.is_none_or(|to| id < to))
            .filter_map(|(&id, i)| {
                let (s, n, v) = i.outcome.clone()?;
                Some((id, s, n, v))
            })
            .collect()
    }
}

/// Every query the pipeline and the reports use, against the model.
fn check(store: &Store, model: &Model) {
    let counts = model.counts();
    assert_eq!(store.status_counts().unwrap(), counts);
    assert_eq!(
        store.unique_and_pending().unwrap(),
        (counts.unique(), counts.pending)
    );
    assert_eq!(store.unique_count().unwrap(), counts.unique());
    assert_eq!(
        store.pending_windows_after(0, usize::MAX).unwrap(),
        model.pending_after(0, usize::MAX)
    );
    let mut ok = Vec::new();
    store
        .for_each_ok(&METRICS, |id, v| ok.push((id, v.to_vec())))
        .unwrap();
    let want: Vec<_> = model
        .outcomes(0, None)
        .into_iter()
        .filter(|o| o.1 == Status::Ok)
        .map(|(id, _, _, v)| (id, v))
        .collect();
    assert_eq!(ok, want, "for_each_ok");
    let mut not_ok = Vec::new();
    store
        .for_each_not_ok(|id, s, n| not_ok.push((id, s, n.map(str::to_string))))
        .unwrap();
    let want: Vec<_> = model
        .ids
        .iter()
        .filter_map(|(&id, i)| match &i.outcome {
            None => Some((id, Status::Pending, None)),
            Some((Status::Ok, ..)) => None,
            Some((s, n, _)) => Some((id, *s, n.clone())),
        })
        .collect();
    assert_eq!(not_ok, want, "for_each_not_ok");
    assert_eq!(store.done_below().unwrap(), model.done_below);
    assert_eq!(store.ingest_state().unwrap(), model.ingest);
    assert_eq!(store.meta(MetaKey::ReportPass).unwrap(), model.report_pass);
    let accounts: Vec<String> = model.accounts.iter().cloned().collect();
    assert_eq!(store.accounts_used().unwrap(), accounts);
    let hourly: Vec<(String, i64, u64)> = model
        .hourly
        .iter()
        .map(|(&(m, h), &v)| (m.to_string(), h, v))
        .collect();
    assert_eq!(store.hourly_totals().unwrap(), hourly, "hourly_totals");
    let mut series = Vec::new();
    store
        .for_each_series(|id, m, b, v| series.push((id, m.to_string(), b, v)))
        .unwrap();
    let want: Vec<_> = model
        .series
        .iter()
        .filter(|((id, ..), _)| matches!(model.ids[id].outcome, Some((Status::Ok, ..))))
        .map(|(&(id, m, b), &v)| (id, m.to_string(), b, v))
        .collect();
    assert_eq!(series, want, "for_each_series");
    let mut rejects = Vec::new();
    store.for_each_reject(|r| rejects.push(r.clone())).unwrap();
    let want: Vec<RejectRow> = model.rejects.values().cloned().collect();
    assert_eq!(rejects, want, "for_each_reject");
    // Every transaction of the writer is numbered, in the database and, once committed, in the
    // marker: what tells a WAL folded in from a WAL lost.
    assert_eq!(
        stored_seq(&store.conn).unwrap(),
        model.commits,
        "commit_seq"
    );
    assert_eq!(marker_seq(store.path()), Some(model.commits), "the marker");
}

fn apply(store: &mut Store, model: &mut Model, op: &Op) {
    match op {
        Op::Ingest {
            ids,
            one_by_one,
            rejects,
            finish,
        } => {
            model.commits += 1;
            let tx = store.ingest_tx().unwrap();
            let new_in_model = ids
                .iter()
                .filter(|(id, _)| !model.ids.contains_key(id))
                .count() as u64;
            if *one_by_one {
                for (id, account) in ids {
                    let new = tx.insert_id(*id, *account).unwrap();
                    assert_eq!(new, !model.ids.contains_key(id), "insert_id({id})");
                    model.ids.entry(*id).or_insert_with(|| Id {
                        account: account.map(str::to_string),
                        ..Id::default()
                    });
                }
            } else {
                let rows: Vec<(u64, Option<String>)> = ids
                    .iter()
                    .map(|(id, a)| (*id, a.map(str::to_string)))
                    .collect();
                assert_eq!(tx.insert_ids(&rows).unwrap(), new_in_model, "insert_ids");
                for (id, account) in rows {
                    model.ids.entry(id).or_insert_with(|| Id {
                        account,
                        ..Id::default()
                    });
                }
            }
            for &(source_idx, line, read) in rejects {
                let r = reject(source_idx, line, read);
                tx.insert_reject(&r).unwrap();
                model.rejects.entry((source_idx, line)).or_insert(r);
            }
            tx.commit(*finish).unwrap();
            if let Some(c) = finish {
                model.ingest = (true, *c);
            }
        }
        Op::Record {
            responses,
            done_below,
        } => {
            model.commits += 1;
            let ids = model.ids_in_order();
            let mut commits = Vec::new();
            let mut expected = 0;
            for r in responses {
                let picked: Vec<(u64, &Answer)> = if ids.is_empty() {
                    Vec::new()
                } else {
                    r.answers.iter().map(|(i, a)| (*i.get(&ids), a)).collect()
                };
                let window = model.window_of(r.window, picked.first().map(|p| p.0));
                let outcomes = picked
                    .iter()
                    .map(|&(id, a)| match a {
                        Answer::Ok { values, series } => IdOutcome {
                            id,
                            status: Status::Ok,
                            values: values.to_vec(),
                            note: None,
                            series: series.clone(),
                            not_served: crate::outcome::NotServed::NONE,
                        },
                        Answer::Unavailable => IdOutcome::final_status(
                            id,
                            Status::Unavailable,
                            note(Status::Unavailable),
                        ),
                        Answer::Forbidden => {
                            IdOutcome::final_status(id, Status::Forbidden, note(Status::Forbidden))
                        }
                        Answer::Failed => {
                            IdOutcome::final_status(id, Status::Failed, note(Status::Failed))
                        }
                    })
                    .collect();
                let commit = Settled {
                    window,
                    windows: model.windows,
                    outcomes,
                    hourly: r.hourly.clone(),
                    via: r.via.map(str::to_string),
                    origin: picked.first().map_or(0, |p| p.0),
                    messages: Vec::new(),
                };
                expected += model.record(&commit);
                commits.push(commit);
            }
            let finals = store.record(&METRICS, &commits, *done_below).unwrap();
            assert_eq!(finals, expected, "IDs that became final ok");
            if let Some(w) = done_below {
                model.done_below = *w;
            }
        }
        Op::RecordMany { start, len, window } => {
            let ids = model.ids_in_order();
            if ids.is_empty() {
                return;
            }
            model.commits += 1;
            let from = start.index(ids.len());
            let picked = &ids[from..(from + len).min(ids.len())];
            let window = model.window_of(*window, picked.first().copied());
            let commit = Settled {
                window,
                windows: model.windows,
                outcomes: picked
                    .iter()
                    .map(|&id| IdOutcome {
                        id,
                        status: Status::Ok,
                        values: vec![Some(id % 7), (id % 3 != 0).then_some(id)],
                        note: None,
                        series: Vec::new(),
                        not_served: crate::outcome::NotServed::NONE,
                    })
                    .collect(),
                hourly: vec![(0, 3600, 1)],
                via: Some("bearer".into()),
                origin: picked[0],
                messages: Vec::new(),
            };
            let expected = model.record(&commit);
            assert_eq!(store.record(&METRICS, &[commit], None).unwrap(), expected);
        }
        Op::Reopen { .. } => unreachable!("the caller owns the store"),
        Op::RetryFailed => {
            model.commits += 1;
            let failed = model.counts().failed;
            assert_eq!(store.retry_failed().unwrap(), failed, "retry_failed");
            for id in model.ids.values_mut() {
                if matches!(id.outcome, Some((Status::Failed, ..))) {
                    // Its windows done stay done: a resume goes on from the window that failed.
                    id.outcome = None;
                }
            }
            model.done_below = 0;
            model.report_pass = None;
        }
        Op::SaveReportPass(n) => {
            model.commits += 1;
            let pass = format!("{{\"upto\":{n}}}");
            store.set_meta(MetaKey::ReportPass, &pass).unwrap();
            model.report_pass = Some(pass);
        }
        Op::Page { after, limit } => {
            assert_eq!(
                store.pending_windows_after(*after, *limit).unwrap(),
                model.pending_after(*after, *limit),
                "pending_windows_after({after}, {limit})"
            );
        }
        Op::Outcomes { from, to } => {
            let mut seen = Vec::new();
            store
                .for_each_outcome(*from, *to, &METRICS, |r| {
                    seen.push((
                        r.id,
                        r.status,
                        r.note.map(str::to_string),
                        r.values.to_vec(),
                    ))
                })
                .unwrap();
            assert_eq!(seen, model.outcomes(*from, *to), "for_each_outcome");
            let from_on: Vec<u64> = model.ids.range(*from..).map(|(&id, _)| id).collect();
            let count = store.unique_count_from(*from).unwrap();
            assert_eq!(count, from_on.len() as u64, "unique_count_from");
            assert_eq!(
                store.midpoint_from(*from, count).unwrap(),
                from_on.get(from_on.len() / 2).copied(),
                "midpoint_from"
            );
        }
    }
}

fn account() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), Just(Some("alice")), Just(Some("bob"))]
}

fn value() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        2 => Just(None),
        6 => (0u64..1_000).prop_map(Some),
        1 => Just(Some(u64::MAX)),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let series = prop::collection::vec((0usize..2, 0i64..3, 1u64..50), 0..3)
        .prop_map(|v| v.into_iter().map(|(k, b, x)| (k, b * 86_400, x)).collect());
    prop_oneof![
        5 => ([value(), value()], series).prop_map(|(values, series)| Answer::Ok { values, series }),
        1 => Just(Answer::Unavailable),
        1 => Just(Answer::Forbidden),
        2 => Just(Answer::Failed),
    ]
}

fn window_pick() -> impl Strategy<Value = WindowPick> {
    prop_oneof![4 => Just(WindowPick::AtFirstId), 1 => (0usize..3).prop_map(WindowPick::Any)]
}

fn response() -> impl Strategy<Value = Response> {
    (
        window_pick(),
        prop::collection::vec((any::<Index>(), answer()), 0..6),
        prop::collection::vec((0usize..2, 0i64..3, 1u64..20), 0..2),
        prop_oneof![
            Just(None),
            Just(Some("bearer")),
            Just(Some("alice")),
            Just(Some("bob")),
            Just(Some(""))
        ],
    )
        .prop_map(|(window, answers, hourly, via)| Response {
            window,
            answers,
            hourly: hourly
                .into_iter()
                .map(|(k, h, v)| (k, h * 3600, v))
                .collect(),
            via,
        })
}

fn counts() -> impl Strategy<Value = IngestCounts> {
    (0u64..100, 0u64..10, 0u64..10).prop_map(|(i, r, d)| IngestCounts {
        input_lines: i,
        rejected_lines: r,
        duplicate_ids: d,
    })
}

fn op() -> impl Strategy<Value = Op> {
    // Blocks of a few IDs out of a small range (so they overlap, as when a killed ingest is read
    // again), or a long run that fills a whole multi-row insert.
    let ids = prop_oneof![
        4 => prop::collection::btree_map(1u64..=60, account(), 0..12)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
        1 => (1u64..=60, 120u64..=200).prop_map(|(start, len)| {
            (start..start + len).map(|id| (id, (id % 5 == 0).then_some("alice"))).collect()
        }),
    ];
    prop_oneof![
        4 => (
            ids,
            any::<bool>(),
            prop::collection::vec((0usize..2, 1u64..30, 0u8..4), 0..3),
            prop::option::weighted(0.3, counts())
        )
            .prop_map(|(ids, one_by_one, rejects, finish)| Op::Ingest {
                ids,
                one_by_one,
                rejects,
                finish
            }),
        6 => (
            prop::collection::vec(response(), 1..4),
            prop::option::weighted(0.3, 0u64..70)
        )
            .prop_map(|(responses, done_below)| Op::Record {
                responses,
                done_below
            }),
        1 => (any::<Index>(), 40usize..130, window_pick())
            .prop_map(|(start, len, window)| Op::RecordMany { start, len, window }),
        2 => prop::bool::weighted(0.3).prop_map(|crash| Op::Reopen { crash }),
        1 => Just(Op::RetryFailed),
        1 => any::<u8>().prop_map(Op::SaveReportPass),
        1 => (0u64..70, 1usize..10).prop_map(|(after, limit)| Op::Page { after, limit }),
        1 => (0u64..70, prop::option::of(0u64..80))
            .prop_map(|(from, to)| Op::Outcomes { from, to }),
    ]
}

/// The files a `kill -9` of the writer would leave, copied from the open `store` to `to`: the
/// database, its WAL holding the commits, and the marker (no connection is on the copy, as none
/// survives a kill, so the next open recovers the WAL as after a crash).
fn killed_copy(store: &Store, to: &Path) {
    for suffix in ["", "-wal", "-engage"] {
        std::fs::copy(
            format!("{}{suffix}", store.path().display()),
            format!("{}{suffix}", to.display()),
        )
        .unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_store_agrees_with_the_model(
        windows in 1usize..=3,
        ops in prop::collection::vec(op(), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut path = dir.path().join("run.db");
        let mut store = Store::open(&path).unwrap();
        let mut model = Model { windows, ..Model::default() };
        let mut kills = 0;
        check(&store, &model);
        for op in &ops {
            if let Op::Reopen { crash } = op {
                if *crash {
                    kills += 1;
                    let killed = dir.path().join(format!("killed{kills}.db"));
                    killed_copy(&store, &killed);
                    drop(store);
                    path = killed;
                    if kills % 2 == 0 {
                        // Read by a plain SQLite client, the last to close it: the WAL is folded
                        // into the database and deleted, the marker stays, and its number must
                        // tell that nothing was lost.
                        Connection::open(&path)
                            .unwrap()
                            .query_row("SELECT count(*) FROM ids", [], |r| r.get::<_, i64>(0))
                            .unwrap();
                        assert!(!wal_path(&path).exists() && marker_path(&path).exists());
                    }
                } else {
                    drop(store);
                    assert!(!marker_path(&path).exists(), "a clean close removes the marker");
                }
                store = Store::open(&path).unwrap();
                // `status` and `report` read through a checked connection of their own.
                let reader = Store::open_reader(&path).unwrap();
                assert_eq!(reader.status_counts().unwrap(), model.counts());
            } else {
                apply(&mut store, &mut model, op);
            }
            check(&store, &model);
        }
    }
}
