//! The metric model: every count is a pure function of (seed, Tweet ID, metric, time).
//!
//! Design note. Each Tweet has a lifetime total per metric and a saturating curve `F(age)` that says
//! which share of it has happened by a given age; the running count is
//! `cumulative(t) = floor(T · F(t − created_at))`. Every other number the simulator serves is a
//! difference of two `cumulative` values: an hour bucket is `cum(hour_end) − cum(hour_start)`, a day is
//! the sum of its hours (which telescopes to `cum(day_end) − cum(day_start)`), a window is
//! `cum(end) − cum(start)`, and `/totals` is `cum(now)`. So the groupings of one response agree with each
//! other by construction, and tests can recompute any value from [`cumulative`] or [`count`].
//!
//! - `T` is heavy-tailed: a per-Tweet popularity drawn from a Pareto distribution (shape 1.16, the
//!   "80/20" shape) scales every metric of the Tweet, so a Tweet that is big in impressions is big in
//!   everything; per-metric ratios set the scale (impressions up to 10^7, engagements ~3 % of
//!   impressions, likes ~1 %, the rest smaller) and a per-(Tweet, metric) factor in [0.5, 1.5) keeps the
//!   metrics from being exact multiples of each other. About 70 % of Tweets have no video (video views
//!   stay 0) and about half have no media at all.
//! - `F(a) = 1 − (τ / (a + τ))^k` with a per-Tweet τ of 1–12 hours and k ∈ {1, 2}. Both forms are ratios
//!   of integers, so `cumulative` is computed exactly in `u128` and is monotone non-decreasing in `t`
//!   (a float `powf` is not guaranteed monotone, and a single step backwards would break the
//!   differences). It costs a handful of multiplications, no loop over hours.

use engagement_api::Metric;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// `/totals` serves impressions and engagements only for Tweets created at most this long ago;
/// older IDs go into `unsupported_for_impressions_engagements_tweet_ids`.
pub const IMPRESSIONS_MAX_AGE: Duration = Duration::days(90);
/// Video views are served only for Tweets created at most this long ago; older IDs go into
/// `unsupported_for_video_views_tweet_ids` and read `"0"`.
pub const VIDEO_VIEWS_MAX_AGE: Duration = Duration::days(1800);
/// `/historical` reads favorites, replies and retweets as 0 in hours before this time.
pub const LEGACY_METRICS_FROM: OffsetDateTime = datetime!(2015-09-15 00:00 UTC);

/// Twitter's snowflake epoch (2010-11-04T01:42:54.657Z) in Unix milliseconds.
pub const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// Hash tags keep the independent draws of one Tweet independent.
const TAG_POPULARITY: u64 = 0x01;
const TAG_TAU: u64 = 0x02;
const TAG_SHAPE: u64 = 0x03;
const TAG_VIDEO: u64 = 0x04;
const TAG_MEDIA: u64 = 0x05;
const TAG_DELETED: u64 = 0x06;
const TAG_PROTECTED: u64 = 0x07;
/// Per-metric factors use `TAG_METRIC + metric index`.
const TAG_METRIC: u64 = 0x100;

/// Median-ish impressions scale of an ordinary Tweet; popularity multiplies it.
const IMPRESSIONS_BASE: f64 = 200.0;
/// The largest lifetime impressions any Tweet gets.
const IMPRESSIONS_CAP: f64 = 1.0e7;
/// Pareto shape of popularity: lower means a heavier tail.
const PARETO_SHAPE: f64 = 1.16;

/// Lifetime total of each metric as a share of the Tweet's impressions, indexed by [`Metric::index`].
const RATIO: [f64; 18] = [
    1.0,     // impressions
    0.03,    // engagements (organic + promoted; not the sum of the others)
    0.012,   // favorites
    0.003,   // retweets
    0.0015,  // replies
    0.3,     // video_views (only Tweets with video)
    0.0005,  // quote_tweets
    0.2,     // media_views (only Tweets with media)
    0.01,    // media_engagements (only Tweets with media)
    0.005,   // url_clicks
    0.002,   // hashtag_clicks
    0.01,    // detail_expands
    0.001,   // permalink_clicks
    0.0001,  // app_install_attempts
    0.0002,  // app_opens
    0.00005, // email_tweet
    0.0005,  // user_follows
    0.003,   // user_profile_clicks
];

/// splitmix64's finaliser: a cheap, well-mixed 64-bit permutation.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of three words; the simulator's only source of randomness.
pub(crate) fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix(mix(mix(a) ^ b) ^ c)
}

/// Maps a hash to a uniform value in [0, 1).
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Creation time in Unix milliseconds, from the snowflake ID.
pub fn created_at_ms(tweet_id: u64) -> i64 {
    (tweet_id >> 22) as i64 + SNOWFLAKE_EPOCH_MS
}

/// Creation time, from the snowflake ID: `(id >> 22) + 1288834974657` ms.
pub fn created_at(tweet_id: u64) -> OffsetDateTime {
    from_ms(created_at_ms(tweet_id))
}

/// A Tweet ID created at `t` (sequence bits `seq`), the inverse of [`created_at`] up to the
/// millisecond. Times before the snowflake epoch give the epoch.
pub fn tweet_id_at(t: OffsetDateTime, seq: u64) -> u64 {
    let ms = (to_ms(t) - SNOWFLAKE_EPOCH_MS).max(0) as u64;
    (ms << 22) | (seq & 0x3F_FFFF)
}

/// Unix milliseconds, rounded down.
pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos().div_euclid(1_000_000)) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).expect("snowflake times fit")
}

/// Whether the Tweet counts as deleted: a seeded share `p` of all IDs.
pub fn is_deleted(seed: u64, tweet_id: u64, p: f64) -> bool {
    unit(hash3(seed, tweet_id, TAG_DELETED)) < p
}

/// Whether the Tweet counts as protected (private account): a seeded share `p` of all IDs,
/// independent of [`is_deleted`].
pub fn is_protected(seed: u64, tweet_id: u64, p: f64) -> bool {
    unit(hash3(seed, tweet_id, TAG_PROTECTED)) < p
}

/// Everything about one Tweet that does not depend on the metric, drawn once so a response that asks
/// many metrics at many times hashes the Tweet only once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TweetModel {
    seed: u64,
    id: u64,
    created_ms: i64,
    impressions: f64,
    tau_ms: u128,
    square: bool,
    has_video: bool,
    has_media: bool,
}

impl TweetModel {
    pub(crate) fn new(seed: u64, id: u64) -> TweetModel {
        // 1 − unit is in (0, 1], so the power never divides by zero.
        let u = 1.0 - unit(hash3(seed, id, TAG_POPULARITY));
        let popularity = u.powf(-1.0 / PARETO_SHAPE);
        let has_video = unit(hash3(seed, id, TAG_VIDEO)) < 0.3;
        TweetModel {
            seed,
            id,
            created_ms: created_at_ms(id),
            impressions: (IMPRESSIONS_BASE * popularity).min(IMPRESSIONS_CAP),
            tau_ms: (3_600_000.0 * (1.0 + 11.0 * unit(hash3(seed, id, TAG_TAU)))) as u128,
            square: hash3(seed, id, TAG_SHAPE) & 1 == 1,
            has_video,
            has_media: has_video || unit(hash3(seed, id, TAG_MEDIA)) < 0.3,
        }
    }

    /// Lifetime total of a metric.
    pub(crate) fn lifetime(&self, metric: Metric) -> u64 {
        let present = match metric {
            Metric::VideoViews => self.has_video,
            Metric::MediaViews | Metric::MediaEngagements => self.has_media,
            _ => true,
        };
        if !present {
            return 0;
        }
        let factor = 0.5
            + unit(hash3(
                self.seed,
                self.id,
                TAG_METRIC + metric.index() as u64,
            ));
        // `as` saturates; the product is at most 1.5e7 anyway.
        (self.impressions * RATIO[metric.index()] * factor) as u64
    }

    /// The running count at Unix millisecond `t_ms`.
    pub(crate) fn cumulative_ms(&self, metric: Metric, t_ms: i64) -> u64 {
        self.scaled(self.lifetime(metric), t_ms)
    }

    /// `floor(total · F(age))`, exact in integers.
    pub(crate) fn scaled(&self, total: u64, t_ms: i64) -> u64 {
        if total == 0 || t_ms <= self.created_ms {
            return 0;
        }
        // Ages are below 2^43 ms (the snowflake range), so the squares below stay far inside u128.
        let a = (t_ms - self.created_ms) as u128;
        let tau = self.tau_ms;
        let total = total as u128;
        let v = if self.square {
            // 1 − (τ/(a+τ))² = (a² + 2aτ) / (a+τ)²
            let d = a + tau;
            total * (a * a + 2 * a * tau) / (d * d)
        } else {
            // 1 − τ/(a+τ) = a / (a+τ)
            total * a / (a + tau)
        };
        v as u64
    }
}

/// The running count of `metric` for the Tweet at time `t`: 0 before creation, then rising towards
/// the Tweet's lifetime total. Monotone non-decreasing in `t`.
pub fn cumulative(seed: u64, tweet_id: u64, metric: Metric, t: OffsetDateTime) -> u64 {
    TweetModel::new(seed, tweet_id).cumulative_ms(metric, to_ms(t))
}

/// The count that occurred in `[from, to)`: `cumulative(to) − cumulative(from)` (0 if `to ≤ from`).
pub fn count(
    seed: u64,
    tweet_id: u64,
    metric: Metric,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> u64 {
    let m = TweetModel::new(seed, tweet_id);
    m.cumulative_ms(metric, to_ms(to))
        .saturating_sub(m.cumulative_ms(metric, to_ms(from)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-20 00:00 UTC);

    #[test]
    fn snowflake_round_trip() {
        let id = 1_790_000_000_000_000_001u64;
        let t = created_at(id);
        assert_eq!(tweet_id_at(t, id & 0x3F_FFFF), id);
        assert_eq!(created_at(0), datetime!(2010-11-04 01:42:54.657 UTC));
    }

    #[test]
    fn cumulative_is_zero_before_creation_and_monotone_after() {
        for seq in 0..200u64 {
            let id = tweet_id_at(NOW - Duration::days(3), seq);
            for metric in Metric::ALL {
                assert_eq!(cumulative(42, id, metric, created_at(id)), 0);
                let mut last = 0;
                for h in 0..200 {
                    let v = cumulative(42, id, metric, created_at(id) + Duration::minutes(37 * h));
                    assert!(v >= last, "{metric} went backwards");
                    last = v;
                }
            }
        }
    }

    #[test]
    fn counts_are_heavy_tailed_and_metrics_correlate() {
        let ids: Vec<u64> = (0..10_000u64)
            .map(|s| tweet_id_at(NOW - Duration::days(60), s))
            .collect();
        let mut imp: Vec<u64> = ids
            .iter()
            .map(|&id| cumulative(42, id, Metric::Impressions, NOW))
            .collect();
        imp.sort_unstable();
        let total: u64 = imp.iter().sum();
        let top_1pct: u64 = imp[imp.len() - 100..].iter().sum();
        assert!(top_1pct * 5 > total, "top 1% should hold a big share");
        assert!(*imp.last().unwrap() <= 10_000_000);
        let no_video = ids
            .iter()
            .filter(|&&id| cumulative(42, id, Metric::VideoViews, NOW) == 0)
            .count();
        assert!((6_000..8_500).contains(&no_video), "{no_video}");
        // The most seen Tweet also has more likes than the median one.
        let best = ids
            .iter()
            .max_by_key(|&&id| cumulative(42, id, Metric::Impressions, NOW))
            .unwrap();
        assert!(cumulative(42, *best, Metric::Favorites, NOW) > 10);
    }

    #[test]
    fn count_is_a_difference() {
        let id = tweet_id_at(NOW - Duration::hours(30), 7);
        let a = NOW - Duration::hours(20);
        assert_eq!(
            count(1, id, Metric::Impressions, a, NOW),
            cumulative(1, id, Metric::Impressions, NOW) - cumulative(1, id, Metric::Impressions, a)
        );
        assert_eq!(count(1, id, Metric::Impressions, NOW, a), 0);
    }

    #[test]
    fn seeded_shares() {
        let n = (0..10_000u64).filter(|&i| is_deleted(3, i, 0.1)).count();
        assert!((800..1_200).contains(&n), "{n}");
        assert!((0..1000u64).all(|i| is_protected(3, i, 1.0)));
        assert!((0..1000u64).all(|i| !is_protected(3, i, 0.0)));
    }
}
