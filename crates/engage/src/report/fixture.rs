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
    store_with(
        dir,
        n,
        pending,
        Some(IngestCounts::default()),
        &["bearer"],
        false,
    )
}

/// [`store`] with three overlapping groups: `even` (even ID numbers), `third` (multiples of 3)
/// and `all`.
pub(super) fn grouped_store(dir: &Path, n: u64, pending: bool) -> Store {
    store_with(
        dir,
        n,
        pending,
        Some(IngestCounts::default()),
        &["bearer"],
        true,
    )
}

/// [`store`] with the given line counters (`None`: the ingest is recorded as not finished), the
/// outcomes committed 250 at a time, each commit answered by the next credentials of `via` in turn.
pub(super) fn store_with(
    dir: &Path,
    n: u64,
    pending: bool,
    ingest: Option<IngestCounts>,
    via: &[&str],
    groups: bool,
) -> Store {
    let mut s = Store::open(&dir.join("run.db")).unwrap();
    let tx = s.ingest_tx().unwrap();
    let ids: Vec<(u64, Option<String>)> = (1..=n).map(|i| (i * 7919, None)).collect();
    tx.insert_ids(&ids).unwrap();
    tx.commit(ingest).unwrap();
    if groups {
        // Three overlapping groups: "even" and "third" by the ID's number, "all" holds every ID.
        let tx = s.ingest_tx().unwrap();
        let names = ["even".to_string(), "third".into(), "all".into()];
        let gids = tx.insert_groups(&names).unwrap();
        let mut memberships = Vec::new();
        let mut sizes = [0u64; 3];
        let mut shared = 0;
        for (id, _) in &ids {
            let k = id / 7919;
            let mine: Vec<u32> = [(k % 2 == 0), (k % 3 == 0), true]
                .iter()
                .enumerate()
                .filter(|(_, i)| **i)
                .map(|(g, _)| g as u32)
                .collect();
            shared += u64::from(mine.len() > 1);
            for g in mine {
                sizes[g as usize] += 1;
                memberships.push((*id, g));
            }
        }
        tx.insert_memberships(&memberships, &gids).unwrap();
        tx.set_group_counts(&gids, &sizes, shared).unwrap();
        tx.commit(None).unwrap();
    }
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
