//! [`Summary`]: the figures every report shows, whether the report is final, the few lines the
//! terminal shows, and `top.json`, the contract with downstream tools.

use engagement_api::{Endpoint, Metric};
use serde_json::{json, Map, Value};

use super::scan::{withheld_reason, Withheld, WITHHELD_REASONS};
use crate::groups::{Rate, RATE_SCALE};
use crate::outcome::Status;
use crate::store::{IngestCounts, MessageRow, RejectRow, StatusCounts, Store, StoreError};
use crate::topn::Aggregator;

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// N.
    pub top_n: usize,
    /// The run's metrics, in order.
    pub metrics: Vec<Metric>,
    /// Line counters.
    pub ingest: IngestCounts,
    /// Outcome counters.
    pub status: StatusCounts,
    /// Grand totals per metric (run order), over the Tweets that have a value.
    pub totals: Vec<u64>,
    /// Per metric, how many Tweets its total is over (the `ok` Tweets with a value).
    pub served: Vec<u64>,
    /// Per metric, the `ok` Tweets without a value, by why ([`WITHHELD_REASONS`]).
    pub withheld: Vec<Withheld>,
    /// The messages that came with the answers (most IDs first).
    pub messages: Vec<MessageRow>,
    /// Top-N per metric (run order): (tweet id, value).
    pub top: Vec<Vec<(u64, u64)>>,
    /// Owner accounts whose user context was used for an answered request (contracts bill per
    /// unique owner account and month).
    pub accounts_used: Vec<String>,
    /// Inputs not read to their end (a truncated or corrupt gzip stream): the reject standing for
    /// each, which names the input and the last line read. A run with any "finished with problems".
    pub damaged_inputs: Vec<RejectRow>,
    /// The inputs were read to the end (the line counters are known).
    pub ingest_done: bool,
    /// The figures of each group, by name (empty for a run without groups).
    pub groups: Vec<GroupFigures>,
    /// IDs in two groups or more (each counted in every one of its groups).
    pub in_several_groups: u64,
    /// Engagement rate, when the run has engagements and impressions.
    pub rate: Option<RateFigures>,
    /// Requests, 429s and budget used per app, over every life of the run (statistics of the
    /// fetch, not results: report.html and `engage status` show them, top.json does not).
    pub apps: Vec<crate::apps::AppFigures>,
}

/// One group's figures: what a run over that group's IDs alone would report (its line counters
/// aside, which are the run's), and each metric's distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFigures {
    /// The group's name.
    pub name: String,
    /// Its outcome counters.
    pub status: StatusCounts,
    /// Per metric (run order), over the Tweets that have a value.
    pub totals: Vec<u64>,
    /// Per metric, how many Tweets its total is over.
    pub served: Vec<u64>,
    /// Per metric, the `ok` Tweets without a value, by why.
    pub withheld: Vec<Withheld>,
    /// Top-N per metric: (tweet id, value).
    pub top: Vec<Vec<(u64, u64)>>,
    /// Per metric, the median of the values served (`None` when none is).
    pub median: Vec<Option<u64>>,
    /// Per metric, the 90th percentile.
    pub p90: Vec<Option<u64>>,
    /// Per metric, the largest value.
    pub max: Vec<u64>,
    /// Engagement rate, when the run has engagements and impressions.
    pub rate: Option<RateFigures>,
}

/// Engagement rate figures: `engagements / impressions` over the Tweets that have both served.
#[derive(Debug, Clone, PartialEq)]
pub struct RateFigures {
    /// The fewest impressions a Tweet needs to be ranked.
    pub min_impressions: u64,
    /// Tweets with both served.
    pub tweets: u64,
    /// Their engagements.
    pub engagements: u64,
    /// Their impressions.
    pub impressions: u64,
    /// Best per-Tweet rates: (tweet id, rate in parts per million), best first.
    pub top: Vec<(u64, u64)>,
}

impl RateFigures {
    /// The figures of a filled [`Rate`].
    pub fn of(r: Rate, min_impressions: u64) -> RateFigures {
        RateFigures {
            min_impressions,
            tweets: r.tweets,
            engagements: r.engagements,
            impressions: r.impressions,
            top: r.top.into_sorted_vec(),
        }
    }

    /// `sum(engagements) / sum(impressions)`, `None` without impressions.
    pub fn overall(&self) -> Option<f64> {
        (self.impressions > 0).then(|| self.engagements as f64 / self.impressions as f64)
    }

    /// The `engagement_rate` value of top.json.
    pub fn to_json(&self) -> Value {
        json!({
            "min_impressions": self.min_impressions,
            "tweets": self.tweets,
            "engagements": self.engagements,
            "impressions": self.impressions,
            "rate": self.overall(),
            "top": self
                .top
                .iter()
                .map(|(id, v)| json!({"tweet_id": id.to_string(), "value": *v as f64 / RATE_SCALE as f64}))
                .collect::<Vec<_>>(),
        })
    }
}

impl GroupFigures {
    /// A metric's mean over the Tweets that have it.
    pub fn mean(&self, i: usize) -> Option<f64> {
        (self.served[i] > 0).then(|| self.totals[i] as f64 / self.served[i] as f64)
    }
}

impl Summary {
    /// Builds the summary from the store: the aggregator is filled from the `ok` rows, once.
    pub fn from_store(
        store: &Store,
        endpoint: Endpoint,
        metrics: &[Metric],
        top_n: usize,
    ) -> Result<Summary, StoreError> {
        let mut agg = Aggregator::new(top_n, metrics.len());
        let mut withheld = vec![[0; 3]; metrics.len()];
        store.for_each_outcome(0, None, metrics, |row| {
            if row.status != Status::Ok {
                return;
            }
            for (k, m) in metrics.iter().enumerate() {
                if row.values[k].is_none() {
                    withheld[k][withheld_reason(row.not_served, *m)] += 1;
                }
            }
            agg.add(row.id, row.values);
        })?;
        Summary::from_aggregator(
            store,
            endpoint,
            metrics,
            top_n,
            &agg,
            withheld,
            store.status_counts()?,
        )
    }

    /// Builds the summary from an aggregator that already holds every `ok` row.
    pub fn from_aggregator(
        store: &Store,
        endpoint: Endpoint,
        metrics: &[Metric],
        top_n: usize,
        agg: &Aggregator,
        withheld: Vec<Withheld>,
        status: StatusCounts,
    ) -> Result<Summary, StoreError> {
        let (ingest_done, ingest) = store.ingest_state()?;
        Ok(Summary {
            endpoint,
            top_n,
            metrics: metrics.to_vec(),
            ingest,
            status,
            totals: agg.totals().to_vec(),
            served: agg.served().to_vec(),
            withheld,
            messages: store.messages()?,
            top: (0..metrics.len()).map(|i| agg.top(i)).collect(),
            accounts_used: store.accounts_used()?,
            damaged_inputs: store.damaged_inputs()?,
            ingest_done,
            groups: Vec::new(),
            in_several_groups: 0,
            rate: None,
            apps: crate::apps::load(store)?,
        })
    }

    /// Every ID has an outcome and the inputs were read to the end: the report is final.
    pub fn complete(&self) -> bool {
        self.ingest_done && self.status.pending == 0
    }

    /// What is missing from a partial report (`None` when complete), as a phrase.
    pub fn unfinished(&self) -> Option<String> {
        let mut what = Vec::new();
        if self.status.pending > 0 {
            what.push(format!(
                "{} of {} IDs are still pending",
                self.status.pending,
                self.status.unique()
            ));
        }
        if !self.ingest_done {
            what.push("the inputs have not been read to the end".to_string());
        }
        (!what.is_empty()).then(|| what.join(" and "))
    }

    /// The counts as one sentence.
    pub(super) fn counts_sentence(&self) -> String {
        let c = &self.status;
        format!(
            "{} unique IDs from {} input lines ({} rejected, {} duplicates): {} ok, {} unavailable, {} forbidden, {} failed{}.",
            c.unique(),
            self.ingest.input_lines,
            self.ingest.rejected_lines,
            self.ingest.duplicate_ids,
            c.ok,
            c.unavailable,
            c.forbidden,
            c.failed,
            if c.pending > 0 { format!(", {} still pending", c.pending) } else { String::new() }
        )
    }

    /// Whether some `ok` Tweet lacks a value for some metric.
    pub fn any_not_served(&self) -> bool {
        self.withheld.iter().flatten().any(|n| *n > 0)
    }

    /// One sentence on the values the API did not serve, when there are any: which metrics, for
    /// how many Tweets, and why; such values are blank, not counted and never ranked.
    pub fn not_served_sentence(&self) -> Option<String> {
        const WHY: [&str; 3] = [
            "older than 90 days",
            "older than 1800 days",
            "for which the answer had no value",
        ];
        let mut parts = Vec::new();
        for (r, why) in WHY.iter().enumerate() {
            // Metrics with the same count under the same reason are named together.
            let mut groups: Vec<(u64, Vec<&str>)> = Vec::new();
            for (k, m) in self.metrics.iter().enumerate() {
                let n = self.withheld[k][r];
                if n == 0 {
                    continue;
                }
                match groups.iter_mut().find(|(c, _)| *c == n) {
                    Some((_, names)) => names.push(m.as_str()),
                    None => groups.push((n, vec![m.as_str()])),
                }
            }
            for (n, names) in groups {
                let names = match names.split_last() {
                    Some((last, [])) => last.to_string(),
                    Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                    None => continue,
                };
                let tweets = if n == 1 { "Tweet" } else { "Tweets" };
                parts.push(format!("{names} for {n} {tweets} {why}"));
            }
        }
        if parts.is_empty() {
            return None;
        }
        Some(format!(
            "Not served by the API: {}. Those values are blank, not counted in the totals (each total says how many Tweets it is over) and never ranked.",
            parts.join("; ")
        ))
    }

    /// How many Tweets are in several groups, and that each is counted in every one of them.
    pub fn several_sentence(&self) -> String {
        match self.in_several_groups {
            0 => "No Tweet is in more than one group.".to_string(),
            1 => "1 Tweet is in two groups or more and counted in each (shares add up to more than the Tweets).".to_string(),
            n => format!(
                "{n} Tweets are in two groups or more and counted in each (shares add up to more than the Tweets)."
            ),
        }
    }

    /// What each group lacks: per group, the metrics some of its `ok` Tweets have no value for,
    /// with how many and why (a group of unowned Tweets, read with public metrics only, lacks the
    /// owned ones).
    pub fn groups_lacking(&self) -> Vec<String> {
        const WHY: [&str; 3] = [
            "older than 90 days",
            "older than 1800 days",
            "not returned (public metrics only, or the answer had none)",
        ];
        let mut out = Vec::new();
        for g in &self.groups {
            // Metrics missing for the same Tweets for the same reasons are named together.
            // ((Tweets without a value, reasons), metric names).
            type Lack<'a> = ((u64, Vec<&'a str>), Vec<&'a str>);
            let mut parts: Vec<Lack> = Vec::new();
            for (k, m) in self.metrics.iter().enumerate() {
                let missing: u64 = g.withheld[k].iter().sum();
                if missing == 0 {
                    continue;
                }
                let why: Vec<&str> = WHY
                    .iter()
                    .zip(g.withheld[k])
                    .filter(|(_, n)| *n > 0)
                    .map(|(w, _)| *w)
                    .collect();
                let key = (missing, why);
                match parts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, names)) => names.push(m.as_str()),
                    None => parts.push((key, vec![m.as_str()])),
                }
            }
            let parts: Vec<String> = parts
                .into_iter()
                .map(|((missing, why), names)| {
                    let names = match names.split_last() {
                        Some((last, [])) => last.to_string(),
                        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                        None => String::new(),
                    };
                    format!(
                        "{names} for {missing} of its {} Tweets: {}",
                        g.status.ok,
                        why.join("; ")
                    )
                })
                .collect();
            if !parts.is_empty() {
                out.push(format!("{} lacks {}.", g.name, parts.join("; ")));
            }
        }
        out
    }

    /// A few lines for the terminal: the counts, and per metric its total and best Tweet. Its length
    /// does not grow with N (the tables are in the files).
    pub fn overview(&self) -> String {
        let mut s = format!(
            "Top {} per metric — /{}{}\n{}\n",
            self.top_n,
            self.endpoint,
            if self.complete() {
                ""
            } else {
                " (partial report)"
            },
            self.counts_sentence()
        );
        let width = self
            .metrics
            .iter()
            .map(|m| m.as_str().len())
            .chain(["metric".len()])
            .chain(self.rate.as_ref().map(|_| "engagement rate".len()))
            .max()
            .unwrap_or(0);
        // The Tweets each total is over, when that is not every `ok` Tweet.
        let over = self.any_not_served();
        s.push_str(&format!(
            "\n{:width$}  {:>15}{}  best Tweet\n",
            "metric",
            "total",
            if over { "  over Tweets" } else { "" }
        ));
        for (i, m) in self.metrics.iter().enumerate() {
            let best = match self.top[i].first() {
                Some((id, v)) => format!("{id} ({v})"),
                None => "-".to_string(),
            };
            let tweets = if over {
                format!("  {:>11}", self.served[i])
            } else {
                String::new()
            };
            s.push_str(&format!(
                "{:width$}  {:>15}{tweets}  {best}\n",
                m.as_str(),
                self.totals[i]
            ));
        }
        if let Some(r) = &self.rate {
            // One row like the metrics': the ratio of the sums, and the best-ranked Tweet.
            let best = match r.top.first() {
                Some((id, v)) => format!("{id} ({:.2} %)", *v as f64 * 100.0 / RATE_SCALE as f64),
                None => "-".to_string(),
            };
            let rate = r
                .overall()
                .map_or("-".to_string(), |x| format!("{:.2} %", x * 100.0));
            let tweets = if over {
                format!("  {:>11}", r.tweets)
            } else {
                String::new()
            };
            s.push_str(&format!(
                "{:width$}  {rate:>15}{tweets}  {best}\n",
                "engagement rate"
            ));
        }
        if let Some(line) = self.not_served_sentence() {
            s.push('\n');
            s.push_str(&line);
            s.push('\n');
        }
        if !self.groups.is_empty() {
            s.push_str(&format!(
                "\n{} groups, compared in top.md, report.html and groups.csv (top.json `groups`). {}\n",
                self.groups.len(),
                self.several_sentence()
            ));
            let width = self
                .groups
                .iter()
                .map(|g| g.name.chars().count())
                .max()
                .unwrap_or(0);
            for g in &self.groups {
                let rate = g
                    .rate
                    .as_ref()
                    .and_then(|r| r.overall())
                    .map_or(String::new(), |x| {
                        format!(", engagement rate {:.2} %", x * 100.0)
                    });
                s.push_str(&format!(
                    "  {:width$}  {} IDs, {} ok{rate}\n",
                    g.name,
                    g.status.unique(),
                    g.status.ok
                ));
            }
        }
        if !self.messages.is_empty() {
            s.push_str(&format!(
                "\n{} distinct message(s) came with the answers: listed by `engage status`, in top.json (`messages`) and report.html.\n",
                self.messages.len()
            ));
        }
        s
    }

    /// The `top.json` value: the keys below, and `groups` and `in_several_groups` for a run with
    /// groups (a run without them has exactly the keys it always had).
    pub fn to_json(&self) -> Value {
        let mut value = self.figures_json(&self.totals, &self.served, &self.withheld, &self.top);
        let figures = value.as_object_mut().expect("an object");
        let mut out = Map::new();
        out.insert("endpoint".into(), json!(self.endpoint.as_str()));
        out.insert("top_n".into(), json!(self.top_n));
        out.insert("complete".into(), json!(self.complete()));
        out.insert(
            "counts".into(),
            json!({
                "input_lines": self.ingest.input_lines,
                "rejected_lines": self.ingest.rejected_lines,
                "duplicate_ids": self.ingest.duplicate_ids,
                "unique_ids": self.status.unique(),
                "ok": self.status.ok,
                "unavailable": self.status.unavailable,
                "forbidden": self.status.forbidden,
                "failed": self.status.failed,
                "pending": self.status.pending,
                "damaged_inputs": self.damaged_inputs.len(),
            }),
        );
        for k in ["totals", "served", "not_served", "not_served_by_reason"] {
            out.insert(k.into(), figures.remove(k).expect("a figure"));
        }
        out.insert(
            "messages".into(),
            self.messages
                .iter()
                .map(|m| {
                    json!({
                        "text": m.text,
                        "varies": m.varies,
                        "from": m.source.as_str(),
                        "responses": m.responses,
                        "ids": m.ids,
                    })
                })
                .collect(),
        );
        out.insert("top".into(), figures.remove("top").expect("a figure"));
        if let Some(r) = &self.rate {
            out.insert("engagement_rate".into(), r.to_json());
        }
        if !self.groups.is_empty() {
            let mut groups = Map::new();
            for g in &self.groups {
                let mut v = self.figures_json(&g.totals, &g.served, &g.withheld, &g.top);
                let o = v.as_object_mut().expect("an object");
                let c = &g.status;
                let counts = json!({
                    "unique_ids": c.unique(),
                    "ok": c.ok,
                    "unavailable": c.unavailable,
                    "forbidden": c.forbidden,
                    "failed": c.failed,
                    "pending": c.pending,
                });
                let mut ordered = Map::new();
                ordered.insert("counts".into(), counts);
                for k in [
                    "totals",
                    "served",
                    "not_served",
                    "not_served_by_reason",
                    "top",
                ] {
                    ordered.insert(k.into(), o.remove(k).expect("a figure"));
                }
                if let Some(r) = &g.rate {
                    ordered.insert("engagement_rate".into(), r.to_json());
                }
                groups.insert(g.name.clone(), Value::Object(ordered));
            }
            out.insert("groups".into(), Value::Object(groups));
            out.insert("in_several_groups".into(), json!(self.in_several_groups));
        }
        Value::Object(out)
    }

    /// `totals`, `served`, `not_served`, `not_served_by_reason` and `top` of some figures, keyed
    /// by metric.
    fn figures_json(
        &self,
        all_totals: &[u64],
        all_served: &[u64],
        all_withheld: &[Withheld],
        all_top: &[Vec<(u64, u64)>],
    ) -> Value {
        let mut totals = Map::new();
        let mut served = Map::new();
        let mut not_served = Map::new();
        let mut reasons = Map::new();
        let mut top = Map::new();
        for (i, m) in self.metrics.iter().enumerate() {
            totals.insert(m.as_str().into(), json!(all_totals[i]));
            served.insert(m.as_str().into(), json!(all_served[i]));
            let withheld = all_withheld[i];
            not_served.insert(m.as_str().into(), json!(withheld.iter().sum::<u64>()));
            reasons.insert(
                m.as_str().into(),
                Value::Object(
                    WITHHELD_REASONS
                        .iter()
                        .zip(withheld)
                        .filter(|(_, n)| *n > 0)
                        .map(|(why, n)| (why.to_string(), json!(n)))
                        .collect(),
                ),
            );
            top.insert(
                m.as_str().into(),
                Value::Array(
                    all_top[i]
                        .iter()
                        .map(|(id, v)| json!({"tweet_id": id.to_string(), "value": v}))
                        .collect(),
                ),
            );
        }
        json!({
            "totals": totals,
            "served": served,
            "not_served": not_served,
            "not_served_by_reason": reasons,
            "top": top,
        })
    }
}

/// A Tweet's public address, the one link every report gives (it works for any account's Tweet).
pub fn tweet_url(id: u64) -> String {
    format!("https://x.com/i/web/status/{id}")
}
