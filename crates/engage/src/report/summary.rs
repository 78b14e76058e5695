//! [`Summary`]: the figures every report shows, whether the report is final, the few lines the
//! terminal shows, and `top.json`, the contract with downstream tools.

use engagement_api::{Endpoint, Metric};
use serde_json::{json, Map, Value};

use crate::store::{IngestCounts, RejectRow, StatusCounts, Store, StoreError};
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
    /// Grand totals per metric (run order).
    pub totals: Vec<u64>,
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
        let mut row = vec![0u64; metrics.len()];
        store.for_each_ok(metrics, |id, values| {
            for (r, v) in row.iter_mut().zip(values) {
                *r = v.unwrap_or(0);
            }
            agg.add(id, &row);
        })?;
        Summary::from_aggregator(
            store,
            endpoint,
            metrics,
            top_n,
            &agg,
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
            top: (0..metrics.len()).map(|i| agg.top(i)).collect(),
            accounts_used: store.accounts_used()?,
            damaged_inputs: store.damaged_inputs()?,
            ingest_done,
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
            .max()
            .unwrap_or(0);
        s.push_str(&format!(
            "\n{:width$}  {:>15}  best Tweet\n",
            "metric", "total"
        ));
        for (i, m) in self.metrics.iter().enumerate() {
            let best = match self.top[i].first() {
                Some((id, v)) => format!("{id} ({v})"),
                None => "-".to_string(),
            };
            s.push_str(&format!(
                "{:width$}  {:>15}  {best}\n",
                m.as_str(),
                self.totals[i]
            ));
        }
        s
    }

    /// The `top.json` value.
    pub fn to_json(&self) -> Value {
        let mut totals = Map::new();
        let mut top = Map::new();
        for (i, m) in self.metrics.iter().enumerate() {
            totals.insert(m.as_str().into(), json!(self.totals[i]));
            top.insert(
                m.as_str().into(),
                Value::Array(
                    self.top[i]
                        .iter()
                        .map(|(id, v)| json!({"tweet_id": id.to_string(), "value": v}))
                        .collect(),
                ),
            );
        }
        json!({
            "endpoint": self.endpoint.as_str(),
            "top_n": self.top_n,
            "complete": self.complete(),
            "counts": {
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
            },
            "totals": totals,
            "top": top,
        })
    }
}

/// A Tweet's public address, the one link every report gives (it works for any account's Tweet).
pub fn tweet_url(id: u64) -> String {
    format!("https://x.com/i/web/status/{id}")
}
