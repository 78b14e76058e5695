//! Groups of Tweets (campaigns, hashtags, competitors): where an ID's group labels come from, and
//! the per-group distribution the reports compare (see `docs/groups.md`).
//!
//! An ID's groups are, in this order of precedence: its CSV group cell (several names separated by
//! [`crate::ids::GROUP_SEPARATOR`]); else the name `--group-from` derives from its input; else
//! `--group`. An ID read several times is in the union of its occurrences' groups. It is fetched
//! once and counted in each of its groups.

use std::path::Path;

use engagement_api::Metric;

use crate::ids::InputSource;
use crate::topn::TopN;

/// The fewest impressions a Tweet must have for its engagement rate to be ranked (`--min-impressions`
/// when not given): with fewer, one engagement is a large share of nothing (3 impressions and 1
/// engagement would be 33 %), and such Tweets would fill the list. At 100, one engagement is 1 %.
pub const DEFAULT_MIN_IMPRESSIONS: u64 = 100;

/// A rate in the top-N lists: parts per million (`TopN` ranks integers; ties go to the lower ID).
pub const RATE_SCALE: u64 = 1_000_000;

/// Engagement rate, `engagements / impressions`, over the Tweets that have both served: their sums
/// (the rate of a group or of the run is `sum(engagements) / sum(impressions)`, not a mean of
/// ratios) and the best per-Tweet rates among Tweets with at least the minimum impressions.
#[derive(Debug, Clone)]
pub struct Rate {
    /// Engagements of the Tweets counted.
    pub engagements: u64,
    /// Impressions of the Tweets counted.
    pub impressions: u64,
    /// Tweets with both served.
    pub tweets: u64,
    /// Best rates ([`RATE_SCALE`]), among Tweets with at least the minimum impressions.
    pub top: TopN,
}

impl Rate {
    /// An empty rate keeping the best `n`.
    pub fn new(n: usize) -> Rate {
        Rate {
            engagements: 0,
            impressions: 0,
            tweets: 0,
            top: TopN::new(n),
        }
    }

    /// Where engagements and impressions are among `metrics`, when both are.
    pub fn columns(metrics: &[Metric]) -> Option<(usize, usize)> {
        let at = |m| metrics.iter().position(|x| *x == m);
        Some((at(Metric::Engagements)?, at(Metric::Impressions)?))
    }

    /// Counts one Tweet's values (`None`: not served, and then not counted).
    pub fn add(&mut self, id: u64, engagements: Option<u64>, impressions: Option<u64>, min: u64) {
        let (Some(e), Some(i)) = (engagements, impressions) else {
            return;
        };
        self.engagements = self.engagements.saturating_add(e);
        self.impressions = self.impressions.saturating_add(i);
        self.tweets += 1;
        if i >= min.max(1) {
            let scaled = (u128::from(e) * u128::from(RATE_SCALE) / u128::from(i)) as u64;
            self.top.push(id, scaled);
        }
    }

    /// Adds another's counts and lists.
    pub fn merge(&mut self, other: &Rate) {
        self.engagements = self.engagements.saturating_add(other.engagements);
        self.impressions = self.impressions.saturating_add(other.impressions);
        self.tweets += other.tweets;
        for (id, v) in other.top.sorted() {
            self.top.push(id, v);
        }
    }

    /// `sum(engagements) / sum(impressions)`, `None` without impressions.
    pub fn overall(&self) -> Option<f64> {
        (self.impressions > 0).then(|| self.engagements as f64 / self.impressions as f64)
    }

    /// What a checkpoint keeps: engagements, impressions, Tweets, the list.
    pub fn to_parts(&self) -> (u64, u64, u64, Vec<(u64, u64)>) {
        (
            self.engagements,
            self.impressions,
            self.tweets,
            self.top.sorted(),
        )
    }

    /// Rebuilds from [`Rate::to_parts`].
    pub fn from_parts(n: usize, parts: &(u64, u64, u64, Vec<(u64, u64)>)) -> Rate {
        let mut r = Rate::new(n);
        (r.engagements, r.impressions, r.tweets) = (parts.0, parts.1, parts.2);
        for &(id, v) in &parts.3 {
            r.top.push(id, v);
        }
        r
    }
}

/// Where `--group-from` takes an input's group name from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupFrom {
    /// The input file's name without its extensions (`brand.csv.gz` is `brand`).
    File,
    /// The first folder under the input folder given (`tweets/rival/a.txt` is `rival` for
    /// `--input tweets`); files directly in it, and inputs that are files, have none.
    Folder,
}

impl GroupFrom {
    /// The value of `--group-from`, as the run's identity stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupFrom::File => "file",
            GroupFrom::Folder => "folder",
        }
    }

    /// Parses `file` or `folder`.
    pub fn parse(s: &str) -> Option<GroupFrom> {
        match s {
            "file" => Some(GroupFrom::File),
            "folder" => Some(GroupFrom::Folder),
            _ => None,
        }
    }

    /// The group name of `source`, found by expanding the input `given`.
    pub fn label(self, given: &Path, source: &InputSource) -> Option<String> {
        match self {
            GroupFrom::File => {
                let name = match source {
                    InputSource::Stdin => return None,
                    InputSource::File(p) => p.file_name()?.to_string_lossy().into_owned(),
                    InputSource::Spooled { name, .. } => {
                        Path::new(name).file_name()?.to_string_lossy().into_owned()
                    }
                };
                Some(file_stem(&name).to_string()).filter(|s| !s.is_empty())
            }
            GroupFrom::Folder => {
                let InputSource::File(p) = source else {
                    return None;
                };
                let rest = p.strip_prefix(given).ok()?;
                let mut parts = rest.components();
                let first = parts.next()?;
                // A file directly in the folder given has no folder of its own.
                parts.next()?;
                Some(first.as_os_str().to_string_lossy().into_owned())
            }
        }
    }
}

/// A file name without its extensions: a trailing `.gz`, then the last extension (`brand.csv.gz`
/// and `brand.csv` are `brand`, `spring.2026.txt` is `spring.2026`).
fn file_stem(name: &str) -> &str {
    let lower = name.to_ascii_lowercase();
    let name = if lower.ends_with(".gz") && name.len() > 3 {
        &name[..name.len() - 3]
    } else {
        name
    };
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

/// Values below this are counted exactly; above, in buckets of at most 1/64 of their value.
const EXACT_BELOW: u64 = 1024;
/// Buckets per power of two above [`EXACT_BELOW`].
const SUB_BUCKETS: u64 = 64;

/// The distribution of one metric's values in one group, for its median and 90th percentile in
/// bounded memory: exact below 1,024, and above that within 1/64 (1.6 %) of the value (the bucket's
/// lowest value is reported, so a quantile never exceeds the value it stands for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Count per bucket, grown on demand.
    counts: Vec<u64>,
    /// Values added.
    n: u64,
    /// The largest value added.
    max: u64,
}

fn bucket_of(v: u64) -> usize {
    if v < EXACT_BELOW {
        return v as usize;
    }
    let octave = 63 - v.leading_zeros() as u64; // >= 10
    let shift = octave - SUB_BUCKETS.trailing_zeros() as u64;
    let sub = (v >> shift) - SUB_BUCKETS; // 0..64
    (EXACT_BELOW + (octave - 10) * SUB_BUCKETS + sub) as usize
}

fn bucket_low(b: usize) -> u64 {
    let b = b as u64;
    if b < EXACT_BELOW {
        return b;
    }
    let octave = (b - EXACT_BELOW) / SUB_BUCKETS + 10;
    let sub = (b - EXACT_BELOW) % SUB_BUCKETS;
    let shift = octave - SUB_BUCKETS.trailing_zeros() as u64;
    (SUB_BUCKETS + sub) << shift
}

impl Histogram {
    /// Counts one value.
    pub fn add(&mut self, v: u64) {
        let b = bucket_of(v);
        if b >= self.counts.len() {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    /// Values added.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The largest value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (nearest rank: the smallest value with at least `q` of the values
    /// at or below it), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_low(b).min(self.max));
            }
        }
        Some(self.max)
    }

    /// The non-empty buckets as (bucket, count) pairs, and the maximum: what a checkpoint keeps.
    pub fn to_sparse(&self) -> (Vec<(u32, u64)>, u64) {
        let pairs = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(b, c)| (b as u32, *c))
            .collect();
        (pairs, self.max)
    }

    /// Rebuilds a histogram from [`Histogram::to_sparse`].
    pub fn from_sparse(pairs: &[(u32, u64)], max: u64) -> Histogram {
        let mut h = Histogram {
            counts: Vec::new(),
            n: 0,
            max,
        };
        for &(b, c) in pairs {
            let b = b as usize;
            if b >= h.counts.len() {
                h.counts.resize(b + 1, 0);
            }
            h.counts[b] += c;
            h.n += c;
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn file_and_folder_names() {
        let f = |p: &str| GroupFrom::File.label(Path::new("x"), &InputSource::File(p.into()));
        assert_eq!(f("in/brand.csv.gz").as_deref(), Some("brand"));
        assert_eq!(f("in/brand.csv").as_deref(), Some("brand"));
        assert_eq!(f("spring.2026.TXT").as_deref(), Some("spring.2026"));
        assert_eq!(f("ids").as_deref(), Some("ids"));
        assert_eq!(
            GroupFrom::File.label(Path::new("-"), &InputSource::Stdin),
            None
        );
        let d = |given: &str, p: &str| {
            GroupFrom::Folder.label(Path::new(given), &InputSource::File(p.into()))
        };
        assert_eq!(d("tweets", "tweets/rival/a.txt").as_deref(), Some("rival"));
        assert_eq!(
            d("tweets/", "tweets/rival/x/a.txt").as_deref(),
            Some("rival")
        );
        assert_eq!(d("tweets", "tweets/a.txt"), None, "directly in the folder");
        assert_eq!(d("a.txt", "a.txt"), None, "a file given");
    }

    #[test]
    fn a_rate_is_a_ratio_of_sums_and_ranks_only_tweets_with_enough_impressions() {
        let mut r = Rate::new(3);
        r.add(1, Some(1), Some(3), 100); // 33 %, too few impressions to rank
        r.add(2, Some(5), Some(100), 100); // 5 %
        r.add(3, Some(20), Some(1000), 100); // 2 %
        r.add(4, None, Some(1000), 100); // engagements not served: not counted at all
        r.add(5, Some(1), Some(20), 100); // 5 %, too few again
        r.add(6, Some(10), Some(200), 100); // 5 %: ties with 2, the lower ID first
        assert_eq!((r.engagements, r.impressions, r.tweets), (37, 1323, 5));
        assert_eq!(r.overall(), Some(37.0 / 1323.0));
        assert_eq!(r.top.sorted(), vec![(2, 50_000), (6, 50_000), (3, 20_000)]);
        let mut merged = Rate::new(3);
        merged.merge(&Rate::from_parts(3, &r.to_parts()));
        assert_eq!(merged.to_parts(), r.to_parts());
        assert_eq!(Rate::new(3).overall(), None);
        assert_eq!(
            Rate::columns(&[Metric::Impressions, Metric::Favorites, Metric::Engagements]),
            Some((2, 0))
        );
        assert_eq!(Rate::columns(&[Metric::Impressions]), None);
    }

    #[test]
    fn buckets_are_exact_low_and_tight_high() {
        for v in [0, 1, 1023, 1024, 1025, 5000, 123_456_789, u64::MAX] {
            let b = bucket_of(v);
            let low = bucket_low(b);
            assert!(low <= v, "{v}");
            assert!(v - low <= v / 64, "{v}: {low}");
            if v < 1024 {
                assert_eq!(low, v);
            }
            assert_eq!(bucket_of(low), b, "{v}");
        }
    }

    proptest! {
        #[test]
        fn quantiles_match_the_sorted_values(values in prop::collection::vec(0u64..5000, 1..300), q in 0.0f64..1.0) {
            let mut h = Histogram::default();
            for v in &values {
                h.add(*v);
            }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1];
            let got = h.quantile(q).unwrap();
            prop_assert!(got <= exact && exact - got <= exact / 64, "{} vs {}", got, exact);
            let (pairs, max) = h.to_sparse();
            prop_assert_eq!(Histogram::from_sparse(&pairs, max), h.clone());
            prop_assert_eq!(h.max(), *sorted.last().unwrap());
        }
    }
}
