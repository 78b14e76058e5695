//! The resume watermark: the ID below which every ID has its final outcome.
//!
//! Each commit records it in the store, and a resumed life starts its keyset cursor there instead of
//! walking the finished part of the store. It is computed from what the batcher has handed out and
//! what the writer has settled:
//!
//! - the batcher reads pending IDs in ascending order and cuts batches from them (per window and
//!   route, so batches of different buckets interleave), holding back partial batches;
//! - a batch is *open* from the moment it is handed out until every one of its IDs has a final
//!   outcome, counted per response by the writer (an `ok` before the last window of a multi-window
//!   run is not final);
//! - the lowest unsettled ID is then the lowest first ID of an open batch, or the lowest ID the
//!   batcher has read and not handed out yet (`unsent`), whichever is lower.
//!
//! Everything below [`Watermark::low`] is final, which is the only property a resume relies on; the
//! watermark may lag (it never runs ahead).

use std::collections::BTreeMap;

use crate::outcome::{Settled, Status};

/// Open batches and the batcher's read position.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// Batches handed out and not settled: first (lowest) ID -> IDs still without a final outcome.
    open: BTreeMap<u64, usize>,
    /// The lowest ID read and not handed out yet, or where the batcher reads next.
    unsent: u64,
}

impl Watermark {
    /// Before anything is handed out: the batcher reads from `start` (every ID below it is final).
    pub fn new(start: u64) -> Watermark {
        Watermark {
            open: BTreeMap::new(),
            unsent: start,
        }
    }

    /// Every ID below this one has its final outcome.
    pub fn low(&self) -> u64 {
        self.open
            .keys()
            .next()
            .map_or(self.unsent, |&k| k.min(self.unsent))
    }

    /// The lowest ID the batcher holds without having handed it out (or where it reads next).
    pub fn set_unsent(&mut self, unsent: u64) {
        self.unsent = unsent;
    }

    /// A batch of `len` IDs, the lowest `first`, is handed out; `unsent` is what the batcher still
    /// holds back after it.
    pub fn hand_out(&mut self, first: u64, len: usize, unsent: u64) {
        if len > 0 {
            *self.open.entry(first).or_default() += len;
        }
        self.unsent = unsent;
    }

    /// `n` IDs of the batch that starts at `origin` have their final outcome.
    pub fn settle(&mut self, origin: u64, n: usize) {
        if let Some(left) = self.open.get_mut(&origin) {
            *left = left.saturating_sub(n);
            if *left == 0 {
                self.open.remove(&origin);
            }
        }
    }

    /// Counts what one response settled: every outcome of the last window, and anything but `ok`
    /// before it (an `ok` goes on to the next window).
    pub fn settle_response(&mut self, s: &Settled) {
        let last = s.window + 1 >= s.windows.max(1);
        let settled = s
            .outcomes
            .iter()
            .filter(|o| last || o.status != Status::Ok)
            .count();
        self.settle(s.origin, settled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_where_the_last_life_stopped() {
        let w = Watermark::new(500);
        assert_eq!(w.low(), 500);
    }

    #[test]
    fn an_open_batch_holds_the_watermark_at_its_first_id() {
        let mut w = Watermark::new(1);
        w.hand_out(10, 3, 13);
        w.hand_out(13, 2, 15);
        assert_eq!(w.low(), 10);
        // The later batch settles first: the earlier one still holds the watermark.
        w.settle(13, 2);
        assert_eq!(w.low(), 10);
        w.settle(10, 2);
        assert_eq!(w.low(), 10, "one ID of the first batch is still open");
        w.settle(10, 1);
        assert_eq!(w.low(), 15);
    }

    #[test]
    fn held_back_ids_hold_the_watermark() {
        let mut w = Watermark::new(1);
        // A partial batch of another bucket starts at 4 and is held back.
        w.hand_out(10, 2, 4);
        w.settle(10, 2);
        assert_eq!(w.low(), 4);
    }

    #[test]
    fn ok_before_the_last_window_is_not_final() {
        use crate::outcome::IdOutcome;
        let mut w = Watermark::new(1);
        w.hand_out(7, 2, 9);
        let ok = |id| IdOutcome {
            id,
            status: Status::Ok,
            values: vec![],
            note: None,
            series: vec![],
            not_served: crate::outcome::NotServed::NONE,
        };
        let first_window = Settled {
            window: 0,
            windows: 2,
            outcomes: vec![
                ok(7),
                IdOutcome::final_status(8, Status::Unavailable, "gone"),
            ],
            origin: 7,
            ..Settled::default()
        };
        w.settle_response(&first_window);
        assert_eq!(w.low(), 7, "7 goes on to the second window");
        let second = Settled {
            window: 1,
            windows: 2,
            outcomes: vec![ok(7)],
            origin: 7,
            ..Settled::default()
        };
        w.settle_response(&second);
        assert_eq!(w.low(), 9);
    }

    proptest! {
        /// Model: IDs 1..=n in ascending order, cut into batches that are handed out in order and
        /// settled one ID at a time in any order. After every step, every ID below the watermark is
        /// settled (it never runs ahead), and the watermark is an unsettled ID's batch start or the
        /// read position (it does not lag behind what it knows).
        #[test]
        fn never_ahead_of_an_unsettled_id(
            sizes in proptest::collection::vec(1usize..6, 1..20),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..120),
            handed in any::<prop::sample::Index>(),
        ) {
            // Batches as (first ID, IDs).
            let mut batches = Vec::new();
            let mut next = 1u64;
            for s in &sizes {
                batches.push((next, (next..next + *s as u64).collect::<Vec<_>>()));
                next += *s as u64;
            }
            let handed_out = handed.index(batches.len() + 1);
            let mut w = Watermark::new(1);
            let mut unsettled: Vec<(u64, u64)> = Vec::new(); // (batch first, id)
            for (k, (first, ids)) in batches.iter().take(handed_out).enumerate() {
                let unsent = batches.get(k + 1).map_or(next, |b| b.0);
                w.hand_out(*first, ids.len(), unsent);
                unsettled.extend(ids.iter().map(|&id| (*first, id)));
            }
            let check = |w: &Watermark, unsettled: &[(u64, u64)]| {
                let low = w.low();
                for &(_, id) in unsettled {
                    prop_assert!(id >= low, "unsettled {id} below the watermark {low}");
                }
                let unsent = batches.get(handed_out).map_or(next, |b| b.0);
                let tight = unsettled.iter().map(|&(first, _)| first).min().unwrap_or(unsent).min(unsent);
                prop_assert_eq!(low, tight);
                Ok(())
            };
            check(&w, &unsettled)?;
            for ix in order {
                if unsettled.is_empty() {
                    break;
                }
                let (first, _) = unsettled.remove(ix.index(unsettled.len()));
                w.settle(first, 1);
                check(&w, &unsettled)?;
            }
        }
    }
}
