//! Bounded top-N per metric, plus grand totals.
//!
//! A run may cover millions of Tweets but reports only the best few per
//! metric, so each metric keeps a min-heap of at most N entries: memory is
//! O(N) and a push is O(log N), or O(1) for the common case of a candidate
//! that cannot make the list.
//!
//! Ranking is total and deterministic so reports are reproducible across
//! runs and resumes: higher value first, and on equal values the lower
//! Tweet ID first. Zero values are never listed (a top list of Tweets with
//! no engagement says nothing).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Heap capacity is reserved lazily beyond this, so a huge N costs nothing
/// until entries actually arrive.
const MAX_PREALLOCATED: usize = 1024;

/// One candidate, ordered so that "greater" means "ranks higher".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    value: u64,
    tweet_id: u64,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value
            .cmp(&other.value)
            .then_with(|| other.tweet_id.cmp(&self.tweet_id))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The N highest-ranked `(tweet_id, value)` pairs seen so far.
///
/// Each Tweet ID is expected to be pushed at most once; pushing the same ID
/// twice may list it twice.
#[derive(Debug, Clone)]
pub struct TopN {
    n: usize,
    /// Min-heap on rank: the root is the entry that would be evicted next.
    heap: BinaryHeap<Reverse<Entry>>,
}

impl TopN {
    /// A list keeping at most `n` entries (`n == 0` keeps nothing).
    pub fn new(n: usize) -> TopN {
        TopN {
            n,
            heap: BinaryHeap::with_capacity(n.min(MAX_PREALLOCATED)),
        }
    }

    /// The maximum number of entries kept.
    pub fn capacity(&self) -> usize {
        self.n
    }

    /// How many entries are kept now.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Offers a Tweet's value; it is kept if it ranks among the best N.
    pub fn push(&mut self, tweet_id: u64, value: u64) {
        if value == 0 || self.n == 0 {
            return;
        }
        let entry = Entry { value, tweet_id };
        if self.heap.len() < self.n {
            self.heap.push(Reverse(entry));
            return;
        }
        // Full: only a candidate that beats the current worst gets in, and
        // the replacement is a single sift-down.
        if let Some(mut worst) = self.heap.peek_mut() {
            if entry > worst.0 {
                *worst = Reverse(entry);
            }
        }
    }

    /// The lowest-ranked kept entry as `(tweet_id, value)`, i.e. the bar a
    /// new candidate must beat once the list is full.
    pub fn min(&self) -> Option<(u64, u64)> {
        self.heap.peek().map(|e| (e.0.tweet_id, e.0.value))
    }

    /// Kept entries as `(tweet_id, value)`, best first: value descending,
    /// then Tweet ID ascending.
    pub fn sorted(&self) -> Vec<(u64, u64)> {
        self.clone().into_sorted_vec()
    }

    /// Like [`TopN::sorted`], consuming the list to avoid a copy.
    pub fn into_sorted_vec(self) -> Vec<(u64, u64)> {
        // Ascending in `Reverse<Entry>` is descending in rank.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(e)| (e.tweet_id, e.value))
            .collect()
    }
}

/// Top-N lists and grand totals for a fixed set of metrics.
///
/// Metrics are addressed by index; the caller owns the index-to-name
/// mapping. A value the API did not serve (`None`) is neither counted in
/// its metric's total nor ranked: each total says over how many Tweets it
/// is taken ([`Aggregator::served`]).
#[derive(Debug, Clone)]
pub struct Aggregator {
    tops: Vec<TopN>,
    totals: Vec<u64>,
    served: Vec<u64>,
    tweets: u64,
}

/// What an [`Aggregator`] holds, to be saved and rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// Each metric's total.
    pub totals: Vec<u64>,
    /// Each metric's number of Tweets with a value.
    pub served: Vec<u64>,
    /// Tweets added.
    pub tweets: u64,
    /// Each metric's best, best first.
    pub tops: Vec<Vec<(u64, u64)>>,
}

impl Aggregator {
    /// Tracks `metric_count` metrics, keeping the best `n` Tweets of each.
    pub fn new(n: usize, metric_count: usize) -> Aggregator {
        Aggregator {
            tops: (0..metric_count).map(|_| TopN::new(n)).collect(),
            totals: vec![0; metric_count],
            served: vec![0; metric_count],
            tweets: 0,
        }
    }

    /// Number of metrics tracked.
    pub fn metric_count(&self) -> usize {
        self.totals.len()
    }

    /// Adds one Tweet's values; `values[i]` is metric `i`, `None` where it has none.
    ///
    /// # Panics
    ///
    /// If `values.len()` differs from the metric count: silently dropping
    /// or misattributing metrics would corrupt a report.
    pub fn add(&mut self, tweet_id: u64, values: &[Option<u64>]) {
        assert_eq!(
            values.len(),
            self.totals.len(),
            "Aggregator::add: expected one value per metric"
        );
        self.tweets += 1;
        for (i, value) in values.iter().enumerate() {
            let Some(value) = *value else { continue };
            // Saturating: a pinned maximum is a visibly absurd total, while
            // a wrapped one would look plausible and be wrong.
            self.totals[i] = self.totals[i].saturating_add(value);
            self.served[i] += 1;
            self.tops[i].push(tweet_id, value);
        }
    }

    /// Best Tweets for metric `i` as `(tweet_id, value)`, best first.
    ///
    /// # Panics
    ///
    /// If `i` is not a metric index.
    pub fn top(&self, i: usize) -> Vec<(u64, u64)> {
        self.tops[i].sorted()
    }

    /// The top-N list of metric `i`.
    ///
    /// # Panics
    ///
    /// If `i` is not a metric index.
    pub fn topn(&self, i: usize) -> &TopN {
        &self.tops[i]
    }

    /// Sum of each metric over the Tweets that have it, saturating at `u64::MAX`.
    pub fn totals(&self) -> &[u64] {
        &self.totals
    }

    /// How many Tweets each metric's total is over.
    pub fn served(&self) -> &[u64] {
        &self.served
    }

    /// How many Tweets have been added.
    pub fn tweets(&self) -> u64 {
        self.tweets
    }

    /// What it holds, to be saved.
    pub fn parts(&self) -> Parts {
        Parts {
            totals: self.totals.clone(),
            served: self.served.clone(),
            tweets: self.tweets,
            tops: (0..self.tops.len()).map(|i| self.top(i)).collect(),
        }
    }

    /// Rebuilds an aggregator from [`Aggregator::parts`]: the same lists, totals and counts.
    ///
    /// # Panics
    ///
    /// If the totals, the counts and the lists are not one per metric.
    pub fn from_parts(n: usize, parts: &Parts) -> Aggregator {
        assert!(
            parts.totals.len() == parts.tops.len() && parts.served.len() == parts.tops.len(),
            "Aggregator::from_parts: one list per metric"
        );
        let mut agg = Aggregator::new(n, parts.totals.len());
        for (top, entries) in agg.tops.iter_mut().zip(&parts.tops) {
            for &(id, v) in entries {
                top.push(id, v);
            }
        }
        agg.totals = parts.totals.clone();
        agg.served = parts.served.clone();
        agg.tweets = parts.tweets;
        agg
    }

    /// Adds everything `other` holds (the same N and metrics), as if its Tweets had been added here:
    /// the best N of a union are among the best N of each part, and ties break the same way.
    ///
    /// # Panics
    ///
    /// If the metric counts differ.
    pub fn merge(&mut self, other: &Aggregator) {
        assert_eq!(
            self.totals.len(),
            other.totals.len(),
            "Aggregator::merge: metric counts differ"
        );
        self.tweets += other.tweets;
        for (i, (total, o)) in self.totals.iter_mut().zip(&other.totals).enumerate() {
            *total = total.checked_add(*o).unwrap_or(u64::MAX);
            self.served[i] += other.served[i];
            for (id, v) in other.tops[i].sorted() {
                self.tops[i].push(id, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn model(entries: &[(u64, u64)], n: usize) -> Vec<(u64, u64)> {
        let mut all: Vec<(u64, u64)> = entries.iter().copied().filter(|&(_, v)| v > 0).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    #[test]
    fn keeps_largest_with_ties_by_lower_id() {
        let mut t = TopN::new(3);
        for (id, v) in [(10, 5), (3, 7), (8, 5), (1, 5), (4, 2), (9, 7)] {
            t.push(id, v);
        }
        assert_eq!(t.sorted(), vec![(3, 7), (9, 7), (1, 5)]);
        assert_eq!(t.min(), Some((1, 5)));
        assert_eq!(t.len(), 3);
        assert_eq!(t.into_sorted_vec(), vec![(3, 7), (9, 7), (1, 5)]);
    }

    #[test]
    fn tie_at_the_boundary_prefers_lower_id_regardless_of_order() {
        let mut a = TopN::new(1);
        a.push(5, 10);
        a.push(2, 10);
        let mut b = TopN::new(1);
        b.push(2, 10);
        b.push(5, 10);
        assert_eq!(a.sorted(), vec![(2, 10)]);
        assert_eq!(b.sorted(), vec![(2, 10)]);
    }

    #[test]
    fn n_zero_keeps_nothing() {
        let mut t = TopN::new(0);
        t.push(1, 100);
        assert!(t.is_empty());
        assert_eq!(t.sorted(), vec![]);
        assert_eq!(t.min(), None);
        assert_eq!(t.capacity(), 0);
    }

    #[test]
    fn n_one_keeps_the_best() {
        let mut t = TopN::new(1);
        for (id, v) in [(1, 3), (2, 9), (3, 4), (4, 9)] {
            t.push(id, v);
        }
        assert_eq!(t.sorted(), vec![(2, 9)]);
    }

    #[test]
    fn zeros_are_never_admitted() {
        let mut t = TopN::new(5);
        for id in 1..=10 {
            t.push(id, 0);
        }
        assert!(t.is_empty());
        t.push(11, 1);
        assert_eq!(t.sorted(), vec![(11, 1)]);
    }

    #[test]
    fn fewer_than_n_entries() {
        let mut t = TopN::new(10);
        t.push(7, 1);
        t.push(3, 2);
        assert_eq!(t.sorted(), vec![(3, 2), (7, 1)]);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn huge_n_does_not_preallocate() {
        let mut t = TopN::new(usize::MAX);
        t.push(1, u64::MAX);
        assert_eq!(t.sorted(), vec![(1, u64::MAX)]);
    }

    #[test]
    fn aggregator_tracks_each_metric_and_totals() {
        let mut agg = Aggregator::new(2, 3);
        agg.add(1, &[Some(5), Some(0), Some(1)]);
        agg.add(2, &[Some(3), Some(4), Some(1)]);
        agg.add(3, &[Some(9), Some(4), Some(0)]);
        assert_eq!(agg.metric_count(), 3);
        assert_eq!(agg.tweets(), 3);
        assert_eq!(agg.totals(), &[17, 8, 2]);
        assert_eq!(agg.top(0), vec![(3, 9), (1, 5)]);
        assert_eq!(agg.top(1), vec![(2, 4), (3, 4)]);
        assert_eq!(agg.top(2), vec![(1, 1), (2, 1)]);
        assert_eq!(agg.topn(0).len(), 2);
        assert_eq!(agg.served(), &[3, 3, 3]);
    }

    #[test]
    fn a_value_not_served_is_neither_counted_nor_ranked() {
        let mut agg = Aggregator::new(3, 2);
        agg.add(1, &[Some(5), None]);
        agg.add(2, &[None, Some(0)]);
        agg.add(3, &[Some(2), Some(7)]);
        assert_eq!(agg.tweets(), 3);
        assert_eq!(agg.totals(), &[7, 7]);
        assert_eq!(agg.served(), &[2, 2]);
        assert_eq!(agg.top(0), vec![(1, 5), (3, 2)]);
        assert_eq!(agg.top(1), vec![(3, 7)]);
    }

    #[test]
    fn aggregator_totals_saturate() {
        let mut agg = Aggregator::new(1, 1);
        agg.add(1, &[Some(u64::MAX - 1)]);
        agg.add(2, &[Some(5)]);
        agg.add(3, &[Some(5)]);
        assert_eq!(agg.totals(), &[u64::MAX]);
        assert_eq!(agg.top(0), vec![(1, u64::MAX - 1)]);
    }

    #[test]
    fn aggregator_with_no_metrics() {
        let mut agg = Aggregator::new(3, 0);
        agg.add(1, &[]);
        assert_eq!(agg.totals(), &[] as &[u64]);
        assert_eq!(agg.tweets(), 1);
    }

    #[test]
    #[should_panic(expected = "one value per metric")]
    fn aggregator_rejects_wrong_arity() {
        Aggregator::new(1, 2).add(1, &[Some(1)]);
    }

    fn unique_entries() -> impl Strategy<Value = Vec<(u64, u64)>> {
        // Small value range to force ties; ids unique as in real use.
        (
            prop::collection::btree_set(any::<u64>(), 0..200),
            prop::collection::vec(0u64..6, 200),
        )
            .prop_map(|(ids, values): (BTreeSet<u64>, Vec<u64>)| {
                ids.into_iter().zip(values).collect::<Vec<_>>()
            })
            .prop_shuffle()
    }

    proptest! {
        #[test]
        fn matches_sort_and_truncate_model(entries in unique_entries(), n in 0usize..40) {
            let mut t = TopN::new(n);
            for &(id, v) in &entries {
                t.push(id, v);
            }
            let expected = model(&entries, n);
            prop_assert_eq!(t.sorted(), expected.clone());
            prop_assert_eq!(t.into_sorted_vec(), expected);
        }

        #[test]
        fn merged_halves_equal_one_pass(
            rows in prop::collection::btree_map(any::<u64>(), (prop::option::of(0u64..4), prop::option::of(any::<u64>())), 0..100),
            n in 0usize..10,
            cut in any::<u64>(),
        ) {
            let (mut whole, mut low, mut high) =
                (Aggregator::new(n, 2), Aggregator::new(n, 2), Aggregator::new(n, 2));
            for (&id, &(a, b)) in &rows {
                whole.add(id, &[a, b]);
                if id < cut { low.add(id, &[a, b]) } else { high.add(id, &[a, b]) }
            }
            low.merge(&high);
            let low = Aggregator::from_parts(n, &low.parts());
            prop_assert_eq!(low.top(0), whole.top(0));
            prop_assert_eq!(low.top(1), whole.top(1));
            prop_assert_eq!(low.totals(), whole.totals());
            prop_assert_eq!(low.tweets(), whole.tweets());
            prop_assert_eq!(low.served(), whole.served());
        }

        #[test]
        fn aggregator_matches_model(
            rows in prop::collection::btree_map(any::<u64>(), (0u64..4, any::<u64>()), 0..100),
            n in 0usize..10,
        ) {
            let mut agg = Aggregator::new(n, 2);
            for (&id, &(a, b)) in &rows {
                agg.add(id, &[Some(a), Some(b)]);
            }
            let m0: Vec<(u64, u64)> = rows.iter().map(|(&id, &(a, _))| (id, a)).collect();
            let m1: Vec<(u64, u64)> = rows.iter().map(|(&id, &(_, b))| (id, b)).collect();
            prop_assert_eq!(agg.top(0), model(&m0, n));
            prop_assert_eq!(agg.top(1), model(&m1, n));
            let total1 = m1.iter().fold(0u64, |acc, &(_, b)| acc.saturating_add(b));
            prop_assert_eq!(agg.totals(), &[m0.iter().map(|&(_, a)| a).sum::<u64>(), total1][..]);
        }
    }
}
