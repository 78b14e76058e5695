//! A store filled with outcomes, for the report tests.

use std::path::Path;

use engagement_api::Metric;

use crate::outcome::{IdOutcome, Settled, Status};
use crate::store::{IngestCounts, Store};

/// The metrics the fixture's outcomes carry.
pub(super) const METRICS: [Metric; 2] = [Metric::Favorites, Metric::Retweets];

/// A store of `n` IDs: most `ok`, some unavailable or failed with notes that need CSV quoting,
/// and, when `pending`, every tenth ID without an outcome.
pub(super) fn store(dir: &Path, n: u64, pending: bool) -> Store {
    store_with(dir, n, pending, Some(IngestCounts::default()), &["bearer"])
}

/// [`store`] with the given line counters (`None`: the ingest is recorded as not finished), the
/// outcomes committed 250 at a time, each commit answered by the next credentials of `via` in turn.
pub(super) fn store_with(
    dir: &Path,
    n: u64,
    pending: bool,
    ingest: Option<IngestCounts>,
    via: &[&str],
) -> Store {
    let mut s = Store::open(&dir.join("run.db")).unwrap();
    let tx = s.ingest_tx().unwrap();
    let ids: Vec<(u64, Option<String>)> = (1..=n).map(|i| (i * 7919, None)).collect();
    tx.insert_ids(&ids).unwrap();
    tx.commit(ingest).unwrap();
    let outcomes = ids
        .iter()
        .filter(|(id, _)| !(pending && (id / 7919) % 10 == 0))
        .map(|&(id, _)| match (id / 7919) % 13 {
            3 => IdOutcome::final_status(id, Status::Unavailable, "deleted, \"or\" not public"),
            5 => IdOutcome::final_status(id, Status::Failed, "HTTP 503,\nretried"),
            _ => IdOutcome {
                id,
                status: Status::Ok,
                values: vec![Some(id % 1000), (id % 3 == 0).then_some(id % 17)],
                note: None,
                series: vec![],
                not_served: crate::outcome::NotServed::NONE,
            },
        })
        .collect::<Vec<_>>();
    let commits: Vec<Settled> = outcomes
        .chunks(250)
        .enumerate()
        .map(|(i, c)| Settled {
            window: 0,
            windows: 1,
            outcomes: c.to_vec(),
            hourly: vec![],
            via: Some(via[i % via.len()].into()),
            origin: c[0].id,
            messages: Vec::new(),
        })
        .collect();
    s.record(&METRICS, &commits, None).unwrap();
    s
}
