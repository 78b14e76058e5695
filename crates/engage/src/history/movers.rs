//! What moved: the movers between two snapshots, the running tallies of the time series, and the
//! nights' grand totals, computed in one pass over the history.
//!
//! Rules (docs/history.md): a gain is `latest − base` for a Tweet `ok` in the latest snapshot with
//! a value there. A Tweet not in the base snapshot's run counts from 0 and is `new`. A Tweet not
//! `ok` at base (unavailable, forbidden, failed) has no base to gain from and is left out; one `ok`
//! at base and unavailable at latest is `gone`. No value (a metric not served for that Tweet) is
//! never a gain from or to anything. A gain of 0 is no move and is not listed; a negative gain (the
//! API corrected a count) is listed like any other. Ties go to the lower Tweet ID.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use engagement_api::Metric;
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;

use super::scan::{statements, Merger};
use super::{state, Change, History, HistoryError, RunInfo, TweetState};
use crate::topn::TopN;

/// The most top movers per metric whose trajectories are drawn and listed.
pub const TRAJECTORIES: usize = 5;

/// One mover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gain {
    /// The Tweet.
    pub id: u64,
    /// Its value at base (`None`: not in the base run).
    pub base: Option<u64>,
    /// Its value at latest.
    pub latest: u64,
    /// `latest − base` (from 0 when new).
    pub gain: i64,
    /// Not in the base run.
    pub new: bool,
}

/// One run's grand total of one metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Night {
    /// When the run's values are as of.
    pub as_of: OffsetDateTime,
    /// Its endpoint.
    pub endpoint: String,
    /// The metric.
    pub metric: Metric,
    /// The sum over the run's `ok` Tweets with a value.
    pub total: u64,
    /// How many Tweets that is.
    pub tweets: u64,
}

/// Everything `history report` writes.
#[derive(Debug, Clone)]
pub struct Movers {
    /// The newest snapshot (`/totals` run), if any.
    pub latest: Option<OffsetDateTime>,
    /// The snapshot the gains are counted from (none with a single snapshot: every Tweet is new).
    pub base: Option<OffsetDateTime>,
    /// N.
    pub top: usize,
    /// Every metric the history holds, in table order; the lists below are indexed like it.
    pub metrics: Vec<Metric>,
    /// Per metric: the top N by gain.
    pub gains: Vec<Vec<Gain>>,
    /// Per metric: Tweets in the latest top N by value that were not in the base's.
    pub entered: Vec<Vec<u64>>,
    /// Per metric: Tweets in the base's top N by value that are not in the latest's.
    pub left: Vec<Vec<u64>>,
    /// Tweets `ok` at base and unavailable at latest, ascending.
    pub gone: Vec<u64>,
    /// Per metric: the top N by running tally (time series), as (Tweet, tally).
    pub tally: Vec<Vec<(u64, u64)>>,
    /// Per metric: the history's totals per bucket (Unix seconds of its start, sum).
    pub hourly: Vec<Vec<(i64, u64)>>,
    /// The buckets are days rather than hours.
    pub by_day: bool,
    /// Every run's grand totals, oldest first.
    pub nights: Vec<Night>,
    /// The snapshots' times, oldest first.
    pub snapshots: Vec<OffsetDateTime>,
    /// Per metric: the top movers' values at every snapshot (`None`: no value there).
    pub trajectories: Vec<Vec<(u64, Vec<Option<u64>>)>>,
    /// The movers of each group of the latest snapshot, by name (none when it has no groups): per
    /// metric, the top N by gain among the group's Tweets, by the same rules.
    pub groups: Vec<(String, Vec<Vec<Gain>>)>,
}

/// Per metric, the best gains: (base value, latest value) by gain.
type GainHeaps = Vec<Best<(Option<u64>, u64)>>;

/// The N best by a signed key, ties to the lower Tweet ID.
struct Best<T: Ord> {
    n: usize,
    heap: BinaryHeap<Reverse<(i64, Reverse<u64>, T)>>,
}

impl<T: Ord> Best<T> {
    fn new(n: usize) -> Self {
        Best {
            n,
            heap: BinaryHeap::new(),
        }
    }

    fn push(&mut self, key: i64, id: u64, payload: T) {
        if self.n == 0 {
            return;
        }
        let e = Reverse((key, Reverse(id), payload));
        if self.heap.len() < self.n {
            self.heap.push(e);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if e < *worst {
                *worst = e;
            }
        }
    }

    /// Best first.
    fn sorted(self) -> Vec<(i64, u64, T)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse((k, Reverse(id), p))| (k, id, p))
            .collect()
    }
}

fn time(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Movers {
    /// Computes the report of `history`: movers between the latest snapshot and the newest one at
    /// least `since_days` older (default: the one before it), top `top` per metric.
    pub fn compute(
        history: &History,
        top: usize,
        since_days: Option<u32>,
    ) -> Result<Movers, HistoryError> {
        let sql = |e| history.err(e);
        let runs = history.runs()?;
        if runs.is_empty() {
            return Err(HistoryError::Usage(format!(
                "history {} holds no run yet: add one with `engage history add`",
                history.path.display()
            )));
        }
        let metrics: Vec<Metric> = Metric::ALL
            .into_iter()
            .filter(|m| runs.iter().any(|r| r.metrics.contains(m)))
            .collect();
        let snaps: Vec<&RunInfo> = runs.iter().filter(|r| r.endpoint == "totals").collect();
        let latest = snaps.len().checked_sub(1);
        let base = match (latest, since_days) {
            (None, _) => None,
            (Some(l), None) => l.checked_sub(1),
            (Some(l), Some(days)) => {
                let limit = snaps[l].as_of - i64::from(days) * 86_400;
                let b = snaps.iter().rposition(|r| r.as_of <= limit);
                if b.is_none() {
                    return Err(HistoryError::Usage(format!(
                        "history {}: no snapshot at least {days} days older than the latest ({}); the oldest is from {}",
                        history.path.display(),
                        engagement_api::timefmt::rfc3339_z(time(snaps[l].as_of)),
                        engagement_api::timefmt::rfc3339_z(time(snaps[0].as_of)),
                    )));
                }
                b
            }
        };

        let k = metrics.len();
        let mut gains: Vec<Best<(Option<u64>, u64)>> = (0..k).map(|_| Best::new(top)).collect();
        // The groups of the latest snapshot, and a heap per group and metric.
        let group_names: Vec<(i64, String)> = match latest {
            Some(l) => {
                let mut stmt = history
                    .conn
                    .prepare(
                        "SELECT g.gid, g.name FROM run_groups r JOIN hgroups g ON g.gid = r.gid \
                         WHERE r.run = ?1 ORDER BY g.name",
                    )
                    .map_err(sql)?;
                let rows = stmt
                    .query_map([snaps[l].id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(sql)?;
                rows.collect::<Result<_, _>>().map_err(sql)?
            }
            None => Vec::new(),
        };
        let slot_of: std::collections::HashMap<i64, usize> = group_names
            .iter()
            .enumerate()
            .map(|(k, (gid, _))| (*gid, k))
            .collect();
        let mut group_gains: Vec<GainHeaps> = group_names
            .iter()
            .map(|_| (0..k).map(|_| Best::new(top)).collect())
            .collect();
        let mut top_latest: Vec<TopN> = (0..k).map(|_| TopN::new(top)).collect();
        let mut top_base: Vec<TopN> = (0..k).map(|_| TopN::new(top)).collect();
        let mut gone = Vec::new();
        if let Some(l) = latest {
            // `cur` is the latest; the rows of the snapshots after the base lead back to it.
            let from = base.map_or(l + 1, |b| b + 1);
            let newer: Vec<(i64, usize)> = (from..=l).map(|k| (snaps[k].id, k)).collect();
            let mut stmts = statements(&history.conn, &newer).map_err(sql)?;
            let mut merger = Merger::new(&mut stmts, vec![base, Some(l)]).map_err(sql)?;
            let mut st = [TweetState::ABSENT; 2];
            // The memberships walk beside the Tweets, both in ID order.
            let mut member_stmt = history
                .conn
                .prepare("SELECT tweet_id, gid FROM cur_groups ORDER BY tweet_id, gid")
                .map_err(sql)?;
            let mut members = member_stmt.query([]).map_err(sql)?;
            let read_member =
                |rows: &mut rusqlite::Rows<'_>| -> rusqlite::Result<Option<(u64, i64)>> {
                    Ok(match rows.next()? {
                        Some(r) => Some((r.get::<_, i64>(0)? as u64, r.get(1)?)),
                        None => None,
                    })
                };
            let mut next_member = if group_names.is_empty() {
                None
            } else {
                read_member(&mut members).map_err(sql)?
            };
            let mut mine: Vec<usize> = Vec::new();
            while let Some(id) = merger.next(&mut st).map_err(sql)? {
                mine.clear();
                while let Some((mid, gid)) = next_member {
                    if mid > id {
                        break;
                    }
                    if mid == id {
                        mine.extend(slot_of.get(&gid));
                    }
                    next_member = read_member(&mut members).map_err(sql)?;
                }
                let [b, now] = &st;
                if b.state == state::OK && now.state == state::UNAVAILABLE {
                    gone.push(id);
                }
                for (i, m) in metrics.iter().enumerate() {
                    let x = m.index();
                    if b.state == state::OK {
                        if let Some(v) = b.vals[x] {
                            top_base[i].push(id, v);
                        }
                    }
                    if now.state != state::OK {
                        continue;
                    }
                    let Some(v) = now.vals[x] else { continue };
                    top_latest[i].push(id, v);
                    let from = match b.state {
                        state::ABSENT => None,
                        state::OK => match b.vals[x] {
                            Some(f) => Some(f),
                            None => continue,
                        },
                        _ => continue,
                    };
                    let gain = v as i64 - from.unwrap_or(0) as i64;
                    if gain != 0 {
                        gains[i].push(gain, id, (from, v));
                        for g in &mine {
                            group_gains[*g][i].push(gain, id, (from, v));
                        }
                    }
                }
            }
        }
        let to_gains = |heaps: GainHeaps| -> Vec<Vec<Gain>> {
            heaps
                .into_iter()
                .map(|g| {
                    g.sorted()
                        .into_iter()
                        .map(|(gain, id, (base, latest))| Gain {
                            id,
                            base,
                            latest,
                            gain,
                            new: base.is_none(),
                        })
                        .collect()
                })
                .collect()
        };
        let gains: Vec<Vec<Gain>> = to_gains(gains);
        let groups: Vec<(String, Vec<Vec<Gain>>)> = group_names
            .into_iter()
            .map(|(_, name)| name)
            .zip(group_gains.into_iter().map(to_gains))
            .collect();
        let (mut entered, mut left) = (Vec::with_capacity(k), Vec::with_capacity(k));
        for (l, b) in top_latest.into_iter().zip(top_base) {
            let (l, b) = (l.into_sorted_vec(), b.into_sorted_vec());
            entered.push(
                l.iter()
                    .filter(|(id, _)| !b.iter().any(|(x, _)| x == id))
                    .map(|(id, _)| *id)
                    .collect(),
            );
            left.push(
                b.iter()
                    .filter(|(id, _)| !l.iter().any(|(x, _)| x == id))
                    .map(|(id, _)| *id)
                    .collect(),
            );
        }

        // The time series: one walk of the buckets in key order (Tweet, metric, bucket).
        let mut tally: Vec<TopN> = (0..k).map(|_| TopN::new(top)).collect();
        let mut hourly: BTreeMap<(usize, i64), u64> = BTreeMap::new();
        {
            let slot: Vec<Option<usize>> = Metric::ALL
                .iter()
                .map(|m| metrics.iter().position(|x| x == m))
                .collect();
            let mut stmt = history
                .conn
                .prepare("SELECT tweet_id, metric, bucket, value FROM buckets ORDER BY tweet_id, metric, bucket")
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            let mut cur: Option<(u64, usize, u64)> = None;
            while let Some(r) = rows.next().map_err(sql)? {
                let id = r.get::<_, i64>(0).map_err(sql)? as u64;
                let m = r.get::<_, i64>(1).map_err(sql)? as usize;
                let bucket: i64 = r.get(2).map_err(sql)?;
                let v = r.get::<_, i64>(3).map_err(sql)? as u64;
                let Some(i) = slot.get(m).copied().flatten() else {
                    continue;
                };
                *hourly.entry((i, bucket)).or_default() += v;
                match &mut cur {
                    Some((cid, ci, sum)) if *cid == id && *ci == i => *sum += v,
                    _ => {
                        if let Some((cid, ci, sum)) = cur {
                            tally[ci].push(cid, sum);
                        }
                        cur = Some((id, i, v));
                    }
                }
            }
            if let Some((cid, ci, sum)) = cur {
                tally[ci].push(cid, sum);
            }
        }
        let mut per_metric: Vec<Vec<(i64, u64)>> = vec![Vec::new(); k];
        for ((i, b), v) in hourly {
            per_metric[i].push((b, v));
        }
        let by_day: bool = history
            .conn
            .query_row("SELECT count(*) FROM runs WHERE series = 'day'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sql)?
            > 0;

        let mut nights = Vec::new();
        {
            let mut stmt = history
                .conn
                .prepare(
                    "SELECT r.as_of, r.endpoint, t.metric, t.total, t.tweets FROM totals t \
                     JOIN runs r ON r.id = t.run ORDER BY r.as_of, r.id, t.metric",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(sql)?;
            for row in rows {
                let (as_of, endpoint, metric, total, tweets) = row.map_err(sql)?;
                if let Ok(metric) = metric.parse() {
                    nights.push(Night {
                        as_of: time(as_of),
                        endpoint,
                        metric,
                        total: total as u64,
                        tweets: tweets as u64,
                    });
                }
            }
            nights.sort_by_key(|n| (n.as_of, n.metric));
        }

        // The top movers' values at every snapshot, newest first: `cur`, then each snapshot's row
        // back to the one before it (point lookups, a few per snapshot).
        let mut trajectories = Vec::with_capacity(k);
        {
            let mut at_cur = history
                .conn
                .prepare("SELECT state, mask, vals FROM cur WHERE tweet_id = ?1")
                .map_err(sql)?;
            let mut back = history
                .conn
                .prepare("SELECT state, mask, vals FROM snap WHERE run = ?1 AND tweet_id = ?2")
                .map_err(sql)?;
            let row = |r: &rusqlite::Row| -> rusqlite::Result<(Option<i64>, i64, Option<Vec<u8>>)> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            };
            let apply = |st: &mut TweetState, row: Option<(Option<i64>, i64, Option<Vec<u8>>)>| {
                if let Some((s, mask, vals)) = row {
                    Change::apply(
                        st,
                        s.map(|s| s as u8),
                        mask as u32,
                        vals.as_deref().unwrap_or(&[]),
                    );
                }
            };
            for (i, m) in metrics.iter().enumerate() {
                let mut lines = Vec::new();
                for g in gains[i].iter().take(TRAJECTORIES) {
                    let mut st = TweetState::ABSENT;
                    let value = |st: &TweetState| {
                        (st.state == state::OK)
                            .then(|| st.vals[m.index()])
                            .flatten()
                    };
                    apply(
                        &mut st,
                        at_cur
                            .query_row([g.id as i64], row)
                            .optional()
                            .map_err(sql)?,
                    );
                    let mut values = vec![None; snaps.len()];
                    for r in (0..snaps.len()).rev() {
                        values[r] = value(&st);
                        if r > 0 {
                            let back_row = back
                                .query_row(params![snaps[r].id, g.id as i64], row)
                                .optional()
                                .map_err(sql)?;
                            apply(&mut st, back_row);
                        }
                    }
                    lines.push((g.id, values));
                }
                trajectories.push(lines);
            }
        }

        Ok(Movers {
            latest: latest.map(|l| time(snaps[l].as_of)),
            base: base.map(|b| time(snaps[b].as_of)),
            top,
            metrics,
            gains,
            entered,
            left,
            gone,
            tally: tally.into_iter().map(TopN::into_sorted_vec).collect(),
            hourly: per_metric,
            by_day,
            nights,
            snapshots: snaps.iter().map(|r| time(r.as_of)).collect(),
            trajectories,
            groups,
        })
    }

    /// `movers.json`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let t = |x: Option<OffsetDateTime>| match x {
            Some(x) => Value::String(engagement_api::timefmt::rfc3339_z(x)),
            None => Value::Null,
        };
        let per = |f: &dyn Fn(usize) -> Value| -> Value {
            Value::Object(
                self.metrics
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.as_str().to_string(), f(i)))
                    .collect::<Map<_, _>>(),
            )
        };
        let ids = |v: &[u64]| -> Value { v.iter().map(|id| json!(id.to_string())).collect() };
        let gains = |list: &[Gain]| -> Value {
            list.iter()
                .map(|g| {
                    json!({
                        "id": g.id.to_string(),
                        "base": g.base,
                        "latest": g.latest,
                        "gain": g.gain,
                        "new": g.new,
                    })
                })
                .collect()
        };
        let mut v = json!({
            "latest": t(self.latest),
            "base": t(self.base),
            "top": self.top,
            "metrics": per(&|i| self.gains[i].iter().map(|g| json!({
                "id": g.id.to_string(),
                "base": g.base,
                "latest": g.latest,
                "gain": g.gain,
                "new": g.new,
            })).collect()),
            "entered": per(&|i| ids(&self.entered[i])),
            "left": per(&|i| ids(&self.left[i])),
            "gone": ids(&self.gone),
            "tally": per(&|i| self.tally[i].iter().map(|(id, v)| json!({
                "id": id.to_string(),
                "value": v,
            })).collect()),
            "hourly": per(&|i| self.hourly[i].iter().map(|(b, v)| json!({
                "hour": engagement_api::timefmt::rfc3339_z(time(*b)),
                "value": v,
            })).collect()),
            "snapshots": self.snapshots.iter().map(|s| t(Some(*s))).collect::<Value>(),
        });
        // Only for a history whose latest snapshot has groups: other histories keep their keys.
        if !self.groups.is_empty() {
            let groups: Map<String, Value> = self
                .groups
                .iter()
                .map(|(name, per_metric)| {
                    (
                        name.clone(),
                        json!({ "metrics": per(&|i| gains(&per_metric[i])) }),
                    )
                })
                .collect();
            v["groups"] = Value::Object(groups);
        }
        v
    }
}
