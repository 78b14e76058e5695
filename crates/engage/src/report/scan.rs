//! The outcome pass: one scan of the store's outcomes in ID order that writes `tweets.csv` and
//! `outcomes.csv` (under temporary names, published with the rest of the report) and fills the
//! figures (top-N heaps, totals, status counts) as it goes. It can run in the background during a
//! run, be saved in the store ([`ScanCheckpoint`]) and go on in a later life, and end in two halves
//! on two threads when much is left.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use engagement_api::digits::push_u64;
use engagement_api::Metric;

use std::collections::BTreeMap;

use super::files::{create, csv_err, io, staging_name, ReportError};
use crate::groups::{Histogram, Rate};
use crate::outcome::{AgeRule, NotServed, Status};
use crate::store::{OutcomeRow, StatusCounts, Store};
use crate::topn::{Aggregator, Parts};

/// Outcomes from which the last part of a pass is scanned in two halves (below, one thread is faster).
pub const SPLIT_AT: u64 = 100_000;

/// What one scan of outcomes found.
pub(super) struct Pass {
    /// The top-N heaps and totals of the `ok` rows.
    pub(super) agg: Aggregator,
    /// Outcome counts (`pending` is left at zero: pending IDs have no outcome row).
    pub(super) status: StatusCounts,
    /// Per metric, the `ok` Tweets without a value, by why: [`Withheld`].
    pub(super) withheld: Vec<Withheld>,
    /// The same figures per group, by the store's group number (empty for a run without groups).
    pub(super) groups: BTreeMap<i64, GroupPass>,
    /// Engagement rate, when the run has engagements and impressions.
    pub(super) rate: Option<Rate>,
}

/// Checkpointed [`Rate`]: engagements, impressions, Tweets, the list.
type RateParts = (u64, u64, u64, Vec<(u64, u64)>);

/// One group's figures in a pass: what a pass over that group's IDs alone would find, and the
/// distribution of each metric's values (for the median and the 90th percentile).
#[derive(Debug, Clone)]
pub(super) struct GroupPass {
    pub(super) agg: Aggregator,
    pub(super) status: StatusCounts,
    pub(super) withheld: Vec<Withheld>,
    pub(super) hist: Vec<Histogram>,
    pub(super) rate: Option<Rate>,
}

impl GroupPass {
    pub(super) fn new(top_n: usize, metrics: usize, rate: bool) -> GroupPass {
        GroupPass {
            agg: Aggregator::new(top_n, metrics),
            status: StatusCounts::default(),
            withheld: vec![[0; 3]; metrics],
            hist: vec![Histogram::default(); metrics],
            rate: rate.then(|| Rate::new(top_n)),
        }
    }

    fn merge(&mut self, other: &GroupPass) {
        self.agg.merge(&other.agg);
        add_withheld(&mut self.withheld, &other.withheld);
        add_status(&mut self.status, &other.status);
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            a.merge(b);
        }
        if let (Some(a), Some(b)) = (&mut self.rate, &other.rate) {
            a.merge(b);
        }
    }

    fn checkpoint(&self, gid: i64) -> GroupCheckpoint {
        let parts = self.agg.parts();
        let s = self.status;
        GroupCheckpoint {
            gid,
            counts: [s.ok, s.unavailable, s.forbidden, s.failed],
            totals: parts.totals,
            served: parts.served,
            tweets: parts.tweets,
            tops: parts.tops,
            withheld: self.withheld.clone(),
            hist: self.hist.iter().map(Histogram::to_sparse).collect(),
            rate: self.rate.as_ref().map(Rate::to_parts),
        }
    }

    fn from_checkpoint(top_n: usize, metrics: usize, c: &GroupCheckpoint) -> Option<GroupPass> {
        let fits = [
            c.totals.len(),
            c.served.len(),
            c.tops.len(),
            c.withheld.len(),
            c.hist.len(),
        ]
        .iter()
        .all(|n| *n == metrics);
        if !fits {
            return None;
        }
        let [ok, unavailable, forbidden, failed] = c.counts;
        Some(GroupPass {
            agg: Aggregator::from_parts(
                top_n,
                &Parts {
                    totals: c.totals.clone(),
                    served: c.served.clone(),
                    tweets: c.tweets,
                    tops: c.tops.clone(),
                },
            ),
            status: StatusCounts {
                pending: 0,
                ok,
                unavailable,
                forbidden,
                failed,
            },
            withheld: c.withheld.clone(),
            hist: c
                .hist
                .iter()
                .map(|(pairs, max)| Histogram::from_sparse(pairs, *max))
                .collect(),
            rate: c.rate.as_ref().map(|p| Rate::from_parts(top_n, p)),
        })
    }
}

/// A [`GroupPass`] in a [`ScanCheckpoint`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupCheckpoint {
    /// The store's group number.
    pub gid: i64,
    /// ok, unavailable, forbidden, failed.
    pub counts: [u64; 4],
    /// Per metric.
    pub totals: Vec<u64>,
    /// Per metric.
    pub served: Vec<u64>,
    /// `ok` Tweets added.
    pub tweets: u64,
    /// Per metric, best first.
    pub tops: Vec<Vec<(u64, u64)>>,
    /// Per metric.
    pub withheld: Vec<Withheld>,
    /// Per metric, the histogram's non-empty buckets and its maximum.
    pub hist: Vec<(Vec<(u32, u64)>, u64)>,
    /// Engagement rate, when the run has it.
    #[serde(default)]
    pub rate: Option<RateParts>,
}

fn add_withheld(a: &mut [Withheld], b: &[Withheld]) {
    for (a, b) in a.iter_mut().zip(b) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
}

fn add_status(a: &mut StatusCounts, b: &StatusCounts) {
    a.ok += b.ok;
    a.unavailable += b.unavailable;
    a.forbidden += b.forbidden;
    a.failed += b.failed;
}

fn count_status(c: &mut StatusCounts, status: Status) {
    match status {
        Status::Ok => c.ok += 1,
        Status::Unavailable => c.unavailable += 1,
        Status::Forbidden => c.forbidden += 1,
        Status::Failed | Status::Pending => c.failed += 1,
    }
}

/// Why `ok` Tweets have no value for a metric: counts by the 90-day rule, the 1800-day rule, and
/// "not returned" (the answer had no value and named no rule).
pub type Withheld = [u64; 3];

/// The names of [`Withheld`]'s places, as top.json and the reports give them.
pub const WITHHELD_REASONS: [&str; 3] = ["90-day", "1800-day", "not returned"];

/// The place in [`Withheld`] for a value missing under these rules.
pub(crate) fn withheld_reason(rules: NotServed, metric: Metric) -> usize {
    match rules.rule_for(metric) {
        Some(AgeRule::Days90) => 0,
        Some(AgeRule::Days1800) => 1,
        None => 2,
    }
}

impl Pass {
    fn merge(&mut self, other: &Pass, top_n: usize) {
        self.agg.merge(&other.agg);
        add_withheld(&mut self.withheld, &other.withheld);
        add_status(&mut self.status, &other.status);
        if let (Some(a), Some(b)) = (&mut self.rate, &other.rate) {
            a.merge(b);
        }
        for (gid, g) in &other.groups {
            self.groups
                .entry(*gid)
                .or_insert_with(|| GroupPass::new(top_n, g.hist.len(), g.rate.is_some()))
                .merge(g);
        }
    }
}

/// A [`Scan`] saved in the store, so that a resumed run goes on with it instead of rescanning
/// what an earlier life already wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanCheckpoint {
    /// The report folder.
    pub dir: String,
    /// The run's metrics.
    pub metrics: Vec<String>,
    /// N.
    pub top_n: usize,
    /// Outcomes below this ID are in the files.
    pub upto: u64,
    /// Bytes of the `tweets.csv` part that hold them.
    pub tweets_len: u64,
    /// Bytes of the `outcomes.csv` part that hold them.
    pub outcomes_len: u64,
    /// ok, unavailable, forbidden, failed.
    pub counts: [u64; 4],
    /// Per metric.
    pub totals: Vec<u64>,
    /// `ok` Tweets added.
    pub tweets: u64,
    /// Per metric, best first.
    pub tops: Vec<Vec<(u64, u64)>>,
    /// Per metric, the Tweets each total is over (absent in checkpoints of an older engage, which
    /// are then not resumed).
    #[serde(default)]
    pub served: Vec<u64>,
    /// Per metric, the `ok` Tweets without a value, by why.
    #[serde(default)]
    pub withheld: Vec<Withheld>,
    /// The figures per group (none for a run without groups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupCheckpoint>,
    /// The fewest impressions a ranked engagement rate needs (absent in checkpoints of an older
    /// engage, which are then not resumed when the run has a rate).
    #[serde(default)]
    pub min_impressions: Option<u64>,
    /// Engagement rate, when the run has it.
    #[serde(default)]
    pub rate: Option<RateParts>,
}

/// A pass over the outcomes in ID order, written as it goes into `tweets.csv` and `outcomes.csv`
/// under temporary names, renamed when complete (a report left by an earlier run stays whole until
/// then). Rows are final below the store's resume watermark, so a run can scan them while it fetches
/// the rest.
pub struct Scan {
    dir: PathBuf,
    metrics: Vec<Metric>,
    top_n: usize,
    /// Where engagements and impressions are among the metrics, when both are.
    rate_cols: Option<(usize, usize)>,
    /// The fewest impressions a ranked engagement rate needs.
    min_impressions: u64,
    pass: Pass,
    /// Next ID to scan from.
    upto: u64,
    tweets: (PathBuf, BufWriter<File>),
    outcomes: (PathBuf, csv::Writer<BufWriter<File>>),
}

impl Scan {
    /// A pass from the first ID, with the files' headers written, into the part files a resumed
    /// life goes on with ([`Scan::resume`]).
    pub fn start(dir: &Path, metrics: &[Metric], top_n: usize) -> Result<Scan, ReportError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Scan::begin(
            dir,
            metrics,
            top_n,
            dir.join(PART_TWEETS),
            dir.join(PART_OUTCOMES),
        )
    }

    /// A pass from the first ID into the files `tweets` and `outcomes`, with their headers written.
    pub(super) fn begin(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        tweets: PathBuf,
        outcomes: PathBuf,
    ) -> Result<Scan, ReportError> {
        let mut p = Scan::open(dir, metrics, top_n, 0, tweets, outcomes)?;
        let mut header = String::from("tweet_id");
        for m in metrics {
            header.push(',');
            header.push_str(m.as_str());
        }
        header.push_str(",not_served\n");
        p.tweets
            .1
            .write_all(header.as_bytes())
            .map_err(io(&p.tweets.0))?;
        p.outcomes
            .1
            .write_record(["tweet_id", "outcome", "note", "messages"])
            .map_err(csv_err(&p.outcomes.0))?;
        Ok(p)
    }

    /// A pass from `from`, without headers, to be appended to another.
    fn start_part(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        from: u64,
    ) -> Result<Scan, ReportError> {
        Scan::open(
            dir,
            metrics,
            top_n,
            from,
            staging_name(dir, "tweets.csv.half"),
            staging_name(dir, "outcomes.csv.half"),
        )
    }

    fn open(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        from: u64,
        tweets: PathBuf,
        outcomes: PathBuf,
    ) -> Result<Scan, ReportError> {
        let rate_cols = Rate::columns(metrics);
        Ok(Scan {
            dir: dir.to_path_buf(),
            metrics: metrics.to_vec(),
            top_n,
            rate_cols,
            min_impressions: crate::groups::DEFAULT_MIN_IMPRESSIONS,
            pass: Pass {
                agg: Aggregator::new(top_n, metrics.len()),
                status: StatusCounts::default(),
                withheld: vec![[0; 3]; metrics.len()],
                groups: BTreeMap::new(),
                rate: rate_cols.map(|_| Rate::new(top_n)),
            },
            upto: from,
            tweets: (tweets.clone(), create(&tweets)?),
            outcomes: (
                outcomes.clone(),
                csv::Writer::from_writer(create(&outcomes)?),
            ),
        })
    }

    /// Next ID the pass scans from.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Sets the fewest impressions a ranked engagement rate needs; before the first step only.
    pub fn with_min_impressions(mut self, n: u64) -> Scan {
        debug_assert_eq!(self.upto, 0, "set before the pass starts");
        self.min_impressions = n;
        self
    }

    /// The fewest impressions a ranked engagement rate needs.
    pub fn min_impressions(&self) -> u64 {
        self.min_impressions
    }

    /// The report folder.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run's metrics.
    pub(super) fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// N.
    pub(super) fn top_n(&self) -> usize {
        self.top_n
    }

    /// Flushes the files and describes the pass so far, for [`Scan::resume`] in a later life.
    pub fn checkpoint(&mut self) -> Result<ScanCheckpoint, ReportError> {
        self.flush_files()?;
        // On disk before the checkpoint that names their lengths is saved: a resumed pass after a
        // power failure must not go on from rows the disk never got. This runs beside the fetch.
        self.tweets
            .1
            .get_ref()
            .sync_data()
            .map_err(io(&self.tweets.0))?;
        self.outcomes
            .1
            .get_ref()
            .get_ref()
            .sync_data()
            .map_err(io(&self.outcomes.0))?;
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(io(p));
        let parts = self.pass.agg.parts();
        let s = self.pass.status;
        Ok(ScanCheckpoint {
            dir: self.dir.to_string_lossy().into_owned(),
            metrics: self
                .metrics
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            top_n: self.top_n,
            upto: self.upto,
            tweets_len: len(&self.tweets.0)?,
            outcomes_len: len(&self.outcomes.0)?,
            counts: [s.ok, s.unavailable, s.forbidden, s.failed],
            totals: parts.totals,
            tweets: parts.tweets,
            tops: parts.tops,
            served: parts.served,
            withheld: self.pass.withheld.clone(),
            groups: self
                .pass
                .groups
                .iter()
                .map(|(gid, g)| g.checkpoint(*gid))
                .collect(),
            min_impressions: Some(self.min_impressions),
            rate: self.pass.rate.as_ref().map(Rate::to_parts),
        })
    }

    /// Goes on with a pass an earlier life checkpointed, when its files are still there and hold at
    /// least what it recorded (cut back to exactly that); `None` otherwise, to start afresh.
    pub fn resume(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        c: &ScanCheckpoint,
    ) -> Option<Scan> {
        let same = c.dir == dir.to_string_lossy()
            && c.top_n == top_n
            && c.metrics
                .iter()
                .map(String::as_str)
                .eq(metrics.iter().map(|m| m.as_str()))
            && c.totals.len() == metrics.len()
            && c.tops.len() == metrics.len()
            && c.served.len() == metrics.len()
            && c.withheld.len() == metrics.len();
        let rate_cols = Rate::columns(metrics);
        if !same || rate_cols.is_some() != c.rate.is_some() {
            return None;
        }
        let min_impressions = c
            .min_impressions
            .unwrap_or(crate::groups::DEFAULT_MIN_IMPRESSIONS);
        let reopen = |p: &Path, len: u64| -> Option<File> {
            let f = std::fs::OpenOptions::new().write(true).open(p).ok()?;
            if f.metadata().ok()?.len() < len {
                return None;
            }
            f.set_len(len).ok()?;
            let mut f = f;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).ok()?;
            Some(f)
        };
        let tweets = dir.join(PART_TWEETS);
        let outcomes = dir.join(PART_OUTCOMES);
        let mut groups = BTreeMap::new();
        for g in &c.groups {
            groups.insert(g.gid, GroupPass::from_checkpoint(top_n, metrics.len(), g)?);
        }
        let t = reopen(&tweets, c.tweets_len)?;
        let o = reopen(&outcomes, c.outcomes_len)?;
        let [ok, unavailable, forbidden, failed] = c.counts;
        Some(Scan {
            dir: dir.to_path_buf(),
            metrics: metrics.to_vec(),
            top_n,
            rate_cols,
            min_impressions,
            pass: Pass {
                agg: Aggregator::from_parts(
                    top_n,
                    &Parts {
                        totals: c.totals.clone(),
                        served: c.served.clone(),
                        tweets: c.tweets,
                        tops: c.tops.clone(),
                    },
                ),
                withheld: c.withheld.clone(),
                groups,
                rate: c.rate.as_ref().map(|p| Rate::from_parts(top_n, p)),
                status: StatusCounts {
                    pending: 0,
                    ok,
                    unavailable,
                    forbidden,
                    failed,
                },
            },
            upto: c.upto,
            tweets: (tweets, BufWriter::new(t)),
            outcomes: (outcomes, csv::Writer::from_writer(BufWriter::new(o))),
        })
    }

    /// Scans the outcomes from where the pass stopped up to `to` (excluded; `None`: to the end).
    pub fn advance(&mut self, store: &Store, to: Option<u64>) -> Result<(), ReportError> {
        if to.is_some_and(|t| t <= self.upto) {
            return Ok(());
        }
        let mut line = String::new();
        let (mut failure, mut other_failure) = (None, None);
        // The messages' texts: few, and read afresh each step (a step may have brought new ones).
        let texts = store.message_texts()?;
        let text = |mid: &i64| texts.get(mid).map(String::as_str).unwrap_or("");
        let Scan {
            pass,
            tweets,
            outcomes,
            metrics,
            top_n,
            rate_cols,
            min_impressions,
            ..
        } = self;
        let (rate_cols, min_impressions) = (*rate_cols, *min_impressions);
        store.for_each_outcome(self.upto, to, metrics, |row: &OutcomeRow<'_>| {
            let id = row.id;
            count_status(&mut pass.status, row.status);
            // Each of its groups counts it as a pass over that group alone would.
            for gid in row.groups {
                let g = pass
                    .groups
                    .entry(*gid)
                    .or_insert_with(|| GroupPass::new(*top_n, metrics.len(), rate_cols.is_some()));
                count_status(&mut g.status, row.status);
                if row.status != Status::Ok {
                    continue;
                }
                for (k, v) in row.values.iter().enumerate() {
                    match v {
                        Some(v) => g.hist[k].add(*v),
                        None => g.withheld[k][withheld_reason(row.not_served, metrics[k])] += 1,
                    }
                }
                g.agg.add(id, row.values);
                if let (Some(r), Some((e, i))) = (&mut g.rate, rate_cols) {
                    r.add(id, row.values[e], row.values[i], min_impressions);
                }
            }
            // outcomes.csv: every ID not `ok`, and every `ok` one a message is about.
            if (row.status != Status::Ok || !row.messages.is_empty()) && other_failure.is_none() {
                let messages: Vec<&str> = row.messages.iter().map(text).collect();
                other_failure = outcomes
                    .1
                    .write_record([
                        &id.to_string(),
                        row.status.as_str(),
                        row.note.unwrap_or(""),
                        &messages.join(" | "),
                    ])
                    .err();
            }
            if row.status != Status::Ok || failure.is_some() {
                return;
            }
            line.clear();
            push_u64(&mut line, id);
            let mut missing = false;
            for v in row.values {
                line.push(',');
                match v {
                    Some(x) => push_u64(&mut line, *x),
                    None => missing = true,
                }
            }
            line.push(',');
            if missing {
                // Why each blank is blank: `metric:reason`, `;`-separated.
                let mut first = true;
                for (k, m) in metrics.iter().enumerate() {
                    if row.values[k].is_some() {
                        continue;
                    }
                    let why = withheld_reason(row.not_served, *m);
                    pass.withheld[k][why] += 1;
                    if !first {
                        line.push(';');
                    }
                    first = false;
                    line.push_str(m.as_str());
                    line.push(':');
                    line.push_str(WITHHELD_REASONS[why]);
                }
            }
            line.push('\n');
            failure = tweets.1.write_all(line.as_bytes()).err();
            pass.agg.add(id, row.values);
            if let (Some(r), Some((e, i))) = (&mut pass.rate, rate_cols) {
                r.add(id, row.values[e], row.values[i], min_impressions);
            }
        })?;
        if let Some(e) = failure {
            return Err(io(&self.tweets.0)(e));
        }
        if let Some(e) = other_failure {
            return Err(csv_err(&self.outcomes.0)(e));
        }
        if let Some(to) = to {
            self.upto = to;
        }
        Ok(())
    }

    /// Scans what is left, in two halves on two threads when at least `split_at` outcomes are
    /// left.
    pub(super) fn scan_rest(&mut self, store: &Store, split_at: u64) -> Result<(), ReportError> {
        let left = store.unique_count_from(self.upto)?;
        match store.midpoint_from(self.upto, left)? {
            Some(mid) if left >= split_at => {
                let db = store.path().to_path_buf();
                let mut second = Scan::start_part(&self.dir, &self.metrics, self.top_n, mid)?;
                second.min_impressions = self.min_impressions;
                let (first, other) = std::thread::scope(|s| {
                    let other = s.spawn(|| {
                        let store = Store::open_cursor(&db)?;
                        second.advance(&store, None)?;
                        Ok::<_, ReportError>(second)
                    });
                    (self.advance(store, Some(mid)), other.join())
                });
                first?;
                let second = other.map_err(|_| {
                    io(&self.dir)(std::io::Error::other("report thread panicked"))
                })??;
                self.append(second)?;
            }
            _ => self.advance(store, None)?,
        }
        Ok(())
    }

    /// Appends a later part's rows and figures: the last rows of this pass (written past its own
    /// writers, which must not write after it).
    fn append(&mut self, part: Scan) -> Result<(), ReportError> {
        let (tweets, outcomes, pass) = part.flush()?;
        self.flush_files()?;
        for (to, from) in [(&self.tweets.0, &tweets), (&self.outcomes.0, &outcomes)] {
            let mut out = std::fs::OpenOptions::new()
                .append(true)
                .open(to)
                .map_err(io(to))?;
            let mut src = File::open(from).map_err(io(from))?;
            std::io::copy(&mut src, &mut out).map_err(io(to))?;
            std::fs::remove_file(from).map_err(io(from))?;
        }
        self.pass.merge(&pass, self.top_n);
        Ok(())
    }

    fn flush_files(&mut self) -> Result<(), ReportError> {
        self.tweets.1.flush().map_err(io(&self.tweets.0))?;
        self.outcomes.1.flush().map_err(io(&self.outcomes.0))
    }

    /// Flushes both files; their paths and the figures.
    fn flush(mut self) -> Result<(PathBuf, PathBuf, Pass), ReportError> {
        self.flush_files()?;
        Ok((self.tweets.0, self.outcomes.0, self.pass))
    }

    /// Ends the pass: both files flushed to disk (still under their temporary names), and the
    /// figures.
    pub(super) fn close(self) -> Result<(PathBuf, PathBuf, Pass), ReportError> {
        crate::failpoint::hit("report-write");
        let Scan {
            tweets,
            outcomes,
            pass,
            ..
        } = self;
        let t = tweets
            .1
            .into_inner()
            .map_err(|e| io(&tweets.0)(e.into_error()))?;
        let o = outcomes
            .1
            .into_inner()
            .map_err(|e| io(&outcomes.0)(e.into_error()))?
            .into_inner()
            .map_err(|e| io(&outcomes.0)(e.into_error()))?;
        // Whole, not fsynced: see `files::finish`.
        drop((t, o));
        Ok((tweets.0, outcomes.0, pass))
    }
}

/// The part files of a run's outcome pass (see [`Scan::resume`]).
const PART_TWEETS: &str = ".tweets.csv.part";
const PART_OUTCOMES: &str = ".outcomes.csv.part";

#[cfg(test)]
mod tests {
    use engagement_api::Endpoint;

    use super::*;
    use crate::report::fixture::{grouped_store, store};
    use crate::report::{finish_reports, write_reports};

    /// With groups, whose figures the checkpoint carries too.
    #[test]
    fn a_pass_resumed_from_its_checkpoint_writes_what_one_pass_writes() {
        let metrics = [Metric::Favorites, Metric::Retweets];
        let d = tempfile::tempdir().unwrap();
        let s = grouped_store(d.path(), 3_001, false);
        let (one, two) = (d.path().join("one"), d.path().join("two"));
        let (a, _) = write_reports(&one, &s, Endpoint::Totals, &metrics, 10, None).unwrap();

        let mut first = Scan::start(&two, &metrics, 10).unwrap();
        first.advance(&s, Some(7919 * 1200)).unwrap();
        let saved = first.checkpoint().unwrap();
        // The life goes on past its checkpoint, then dies: rows after it are on disk, unsaved.
        first.advance(&s, Some(7919 * 2000)).unwrap();
        first.checkpoint().unwrap();
        std::mem::forget(first);
        // The checkpoint survives a trip through the store's `meta` as JSON.
        let saved: ScanCheckpoint =
            serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
        assert!(
            Scan::resume(&one, &metrics, 10, &saved).is_none(),
            "another folder"
        );
        assert!(
            Scan::resume(&two, &metrics[..1], 10, &saved).is_none(),
            "other metrics"
        );
        let resumed = Scan::resume(&two, &metrics, 10, &saved).expect("files are there");
        assert_eq!(resumed.upto(), 7919 * 1200);
        let (b, _) = finish_reports(resumed, &s, Endpoint::Totals, None, 1).unwrap();
        assert_eq!(b.groups.len(), 3);
        assert_eq!(a.groups, b.groups);
        for f in [
            "tweets.csv",
            "outcomes.csv",
            "top.json",
            "top.csv",
            "groups.csv",
        ] {
            assert!(
                std::fs::read(one.join(f)).unwrap() == std::fs::read(two.join(f)).unwrap(),
                "{f} differs"
            );
        }
        assert_eq!(a.status, b.status);
        // A checkpoint whose files were cut shorter than it says is not resumed.
        let mut again = Scan::start(&two, &metrics, 10).unwrap();
        again.advance(&s, Some(7919 * 1200)).unwrap();
        let c = again.checkpoint().unwrap();
        drop(again);
        let part = two.join(".tweets.csv.part");
        let len = std::fs::metadata(&part).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&part)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        assert!(Scan::resume(&two, &metrics, 10, &c).is_none());
    }

    #[test]
    fn two_halves_write_exactly_what_one_pass_writes() {
        let metrics = [Metric::Favorites, Metric::Retweets];
        for (pending, grouped) in [(false, false), (true, false), (false, true), (true, true)] {
            let d = tempfile::tempdir().unwrap();
            let s = if grouped {
                grouped_store(d.path(), 3_001, pending)
            } else {
                store(d.path(), 3_001, pending)
            };
            let (one, two) = (d.path().join("one"), d.path().join("two"));
            let whole = Scan::start(&one, &metrics, 10).unwrap();
            let (a, _) = finish_reports(whole, &s, Endpoint::Totals, None, u64::MAX).unwrap();
            // Two background steps (one of them empty), then the rest in two halves.
            let mut steps = Scan::start(&two, &metrics, 10).unwrap();
            steps.advance(&s, Some(7919 * 1000)).unwrap();
            steps.advance(&s, Some(7919 * 1000)).unwrap();
            steps.advance(&s, Some(7919 * 1500 + 1)).unwrap();
            assert_eq!(steps.upto(), 7919 * 1500 + 1);
            let (b, _) = finish_reports(steps, &s, Endpoint::Totals, None, 1).unwrap();
            for f in [
                "tweets.csv",
                "outcomes.csv",
                "top.json",
                "top.csv",
                "top.md",
                "groups.csv",
            ] {
                let (x, y) = (std::fs::read(one.join(f)), std::fs::read(two.join(f)));
                assert_eq!(x.is_ok(), grouped || f != "groups.csv", "{f}");
                assert!(
                    x.ok() == y.ok(),
                    "{f} differs (pending: {pending}, groups: {grouped})"
                );
            }
            assert_eq!(a.groups, b.groups);
            if grouped {
                // "all" is every ID: its figures are the run's.
                let all = a.groups.iter().find(|g| g.name == "all").unwrap();
                assert_eq!(
                    (all.totals.clone(), all.top.clone()),
                    (a.totals.clone(), a.top.clone())
                );
                assert_eq!(all.status, a.status);
                let several = (1..=3_001u64).filter(|k| k % 2 == 0 || k % 3 == 0).count();
                assert_eq!(a.in_several_groups, several as u64);
            }
            assert_eq!(a.status, b.status);
            assert_eq!(a.status.unique(), 3_001);
            assert_eq!(a.status.pending, if pending { 300 } else { 0 });
            let names: Vec<_> = std::fs::read_dir(&two)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
            assert!(names.iter().any(|n| n == "tweets.csv"), "{names:?}");
            let tweets = std::fs::read_to_string(one.join("tweets.csv")).unwrap();
            assert_eq!(tweets.lines().count() as u64, 1 + a.status.ok);
        }
    }
}
