//! Response bodies, written by hand into one `String`.
//!
//! Design note. A response is computed in two steps. First a "cube" of running counts:
//! for every returned Tweet t, requested metric m and hour boundary i of the window,
//! `cum[t][m][i] = cumulative(t, m, boundary_i)` with time clamped at `now` (for `/totals` the window
//! is the single bucket [creation, now], so the cube is `[0, cumulative(now)]`). Then each grouping is
//! written by walking its `group_by` levels in order; a leaf is a sum of differences of the cube over
//! the Tweets, metric and hours the path above it selects. Because every number is a difference of
//! the same cube, a day equals the sum of its hours and a type total equals the sum over Tweets
//! exactly. The JSON is written straight into a `String` (no `serde_json::Value` tree): a 250-ID
//! `/totals` answer is a few allocations.
//!
//! The `doc_shapes` fault reuses the same walk: the unrequested metric is one more column of the cube
//! (written only in groupings with a `tweet.id` level), and the bare-number leaves are the same
//! sums written without quotes, so the requested numbers cannot differ from the plain answer.

use engagement_api::digits::push_u64;
use engagement_api::request::EngagementRequest;
use engagement_api::window::format_time;
use engagement_api::{Endpoint, GroupBy, Metric};
use std::borrow::Cow;
use time::{Duration, OffsetDateTime};

use crate::config::HourWithoutDay;
use crate::faults::DOC_SHAPES_ERROR;
use crate::metrics::{
    created_at_ms, to_ms, TweetModel, IMPRESSIONS_MAX_AGE, LEGACY_METRICS_FROM, VIDEO_VIEWS_MAX_AGE,
};

const HOUR_MS: i64 = 3_600_000;
const HOUR_LABELS: [&str; 24] = [
    "00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15",
    "16", "17", "18", "19", "20", "21", "22", "23",
];

/// `{"errors":[...]}`.
pub fn errors_body<S: AsRef<str>>(errors: &[S]) -> String {
    let mut out =
        String::with_capacity(32 + errors.iter().map(|e| e.as_ref().len()).sum::<usize>());
    out.push_str("{\"errors\":");
    push_str_array(&mut out, errors.iter().map(|e| e.as_ref()));
    out.push('}');
    out
}

/// What a successful answer is made of, once the server has decided which Tweets it returns.
#[derive(Debug)]
pub struct Answer<'a> {
    /// The validated request.
    pub request: &'a EngagementRequest,
    /// Tweets whose data is returned, without repeats, in request order.
    pub returned: &'a [u64],
    /// Deleted Tweets, listed in `unavailable_tweet_ids`.
    pub unavailable: &'a [u64],
    /// The server's now.
    pub now: OffsetDateTime,
    /// The metric seed.
    pub seed: u64,
    /// How `engagement.hour` nests without `engagement.day`.
    pub hour_without_day: HourWithoutDay,
    /// The `doc_shapes` fault fired: bare-number counts, one unrequested metric, an extra error.
    pub doc_shapes: bool,
}

/// The metric a `doc_shapes` answer adds: the first in table order that the endpoint serves for
/// these credentials and the request did not name, preferring one without an age rule so the
/// unsupported lists stay those of the requested metrics whenever possible.
fn unrequested_metric(req: &EngagementRequest) -> Option<Metric> {
    let candidates: Vec<Metric> = req
        .endpoint
        .allowed_metrics(req.auth)
        .into_iter()
        .filter(|m| !req.metrics.contains(m))
        .collect();
    let aged = |m: &Metric| {
        matches!(
            m,
            Metric::Impressions | Metric::Engagements | Metric::VideoViews
        )
    };
    candidates
        .iter()
        .copied()
        .find(|m| !aged(m))
        .or_else(|| candidates.first().copied())
}

/// The 200 body.
pub fn success_body(a: &Answer<'_>) -> String {
    let req = a.request;
    let now_ms = to_ms(a.now);
    // The age rules apply to the unrequested metric as to any other: it is a metric the API chose
    // to send, so its unsupported IDs are listed too.
    let metrics: Cow<'_, [Metric]> = match unrequested_metric(req).filter(|_| a.doc_shapes) {
        Some(extra) => req.metrics.iter().copied().chain([extra]).collect(),
        None => Cow::Borrowed(&req.metrics[..]),
    };
    let cube = Cube::build(a, now_ms, metrics);

    let unsupported_ie: Vec<u64> = if req.endpoint == Endpoint::Totals
        && cube
            .metrics
            .iter()
            .any(|m| matches!(m, Metric::Impressions | Metric::Engagements))
    {
        a.returned
            .iter()
            .copied()
            .filter(|&id| is_older(id, now_ms, IMPRESSIONS_MAX_AGE))
            .collect()
    } else {
        Vec::new()
    };
    let unsupported_video: Vec<u64> = if cube.metrics.contains(&Metric::VideoViews) {
        a.returned
            .iter()
            .copied()
            .filter(|&id| is_older(id, now_ms, VIDEO_VIEWS_MAX_AGE))
            .collect()
    } else {
        Vec::new()
    };

    let mut errors: Vec<String> = Vec::new();
    if !a.unavailable.is_empty() {
        errors.push(format!(
            "{} Tweet ID(s) are unavailable",
            a.unavailable.len()
        ));
    }
    if !unsupported_ie.is_empty() {
        errors.push(format!(
            "Impressions & engagements for tweets older than 90 days ({} - {}) are not supported",
            format_time(a.now - IMPRESSIONS_MAX_AGE),
            format_time(a.now)
        ));
    }
    if a.doc_shapes {
        errors.push(DOC_SHAPES_ERROR.to_string());
    }

    // Roughly 30 bytes per Tweet and metric is the common [tweet.id, engagement.type] shape, so a
    // 250-ID /totals answer is written without regrowing; hourly series grow by doubling instead of
    // reserving their worst case up front.
    let guess = 256 + 32 * cube.tweets * cube.metrics.len() * req.groupings.len();
    let mut out = String::with_capacity(guess.min(1 << 20));
    out.push('{');
    let mut first = true;
    let mut key = |out: &mut String, k: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        push_json_str(out, k);
        out.push(':');
    };
    if let Some(w) = req.window {
        key(&mut out, "start");
        push_json_str(&mut out, &format_time(w.start));
        key(&mut out, "end");
        push_json_str(&mut out, &format_time(w.end));
    }
    if !errors.is_empty() {
        key(&mut out, "errors");
        push_str_array(&mut out, errors.iter().map(String::as_str));
    }
    for (name, ids) in [
        ("unavailable_tweet_ids", a.unavailable),
        (
            "unsupported_for_impressions_engagements_tweet_ids",
            &unsupported_ie[..],
        ),
        (
            "unsupported_for_video_views_tweet_ids",
            &unsupported_video[..],
        ),
    ] {
        if !ids.is_empty() {
            key(&mut out, name);
            push_id_array(&mut out, ids);
        }
    }
    for g in &req.groupings {
        key(&mut out, &g.name);
        let levels = effective_levels(&g.group_by, a.hour_without_day);
        let sel = Sel {
            extra: levels.contains(&GroupBy::TweetId),
            ..Sel::all(cube.hours)
        };
        cube.write_level(&mut out, &levels, sel);
    }
    out.push('}');
    out
}

fn is_older(id: u64, now_ms: i64, age: Duration) -> bool {
    now_ms - created_at_ms(id) > age.whole_milliseconds() as i64
}

/// With `by_day`, a day level is inserted above an hour level that has none.
fn effective_levels(group_by: &[GroupBy], mode: HourWithoutDay) -> Vec<GroupBy> {
    let mut levels = group_by.to_vec();
    if mode == HourWithoutDay::ByDay && !levels.contains(&GroupBy::EngagementDay) {
        if let Some(h) = levels.iter().position(|l| *l == GroupBy::EngagementHour) {
            levels.insert(h, GroupBy::EngagementDay);
        }
    }
    levels
}

/// Which hours a path selects.
#[derive(Debug, Clone, Copy)]
enum Hours {
    /// Buckets `[i, j)`: the whole window, a day, or one hour.
    Range(usize, usize),
    /// Every bucket whose index is `≡ offset (mod 24)`: one hour of the day across all days.
    HourOfDay(usize),
}

/// The part of the cube a path in the output selects.
#[derive(Debug, Clone, Copy)]
struct Sel {
    tweet: Option<usize>,
    metric: Option<usize>,
    hours: Hours,
    /// A day level is above, so hour keys are that day's hours.
    in_day: bool,
    /// The grouping is per Tweet, so it lists the `doc_shapes` metric too.
    extra: bool,
}

impl Sel {
    fn all(hours: usize) -> Sel {
        Sel {
            tweet: None,
            metric: None,
            hours: Hours::Range(0, hours),
            in_day: false,
            extra: false,
        }
    }
}

/// Running counts at every hour boundary, per returned Tweet and metric.
struct Cube<'a> {
    ids: &'a [u64],
    tweets: usize,
    /// The requested metrics, then the `doc_shapes` one if any.
    metrics: Cow<'a, [Metric]>,
    /// How many of `metrics` were requested; summed groupings use only these.
    requested: usize,
    /// Write the counts of odd-positioned Tweets (and of odd-positioned metrics where no Tweet is
    /// selected) as bare JSON numbers, as two published examples do.
    numbers: bool,
    /// Number of buckets (1 for `/totals`).
    hours: usize,
    /// `cum[((t * metrics) + m) * (hours + 1) + i]`.
    cum: Vec<u64>,
    /// `excluded[t * metrics + m]`: left out of the Tweet's entries (`/totals` 90-day rule).
    excluded: Vec<bool>,
    /// Unix seconds of the window start (hour-aligned); 0 for `/totals`.
    start_secs: i64,
    /// (label, first bucket, end bucket) of every UTC day the window touches.
    days: Vec<(String, usize, usize)>,
}

impl<'a> Cube<'a> {
    fn build(a: &Answer<'a>, now_ms: i64, metrics: Cow<'a, [Metric]>) -> Cube<'a> {
        let req = a.request;
        let (hours, boundaries, start_secs) = match req.window {
            Some(w) => {
                let start_ms = to_ms(w.start);
                let h = w.hours().max(0) as usize;
                let b: Vec<i64> = (0..=h as i64)
                    .map(|i| (start_ms + i * HOUR_MS).min(now_ms))
                    .collect();
                (h, b, w.start.unix_timestamp())
            }
            // i64::MIN reads as "before creation", so bucket 0 starts at 0.
            None => (1, vec![i64::MIN, now_ms], 0),
        };
        let legacy_from = to_ms(LEGACY_METRICS_FROM);
        let stride = hours + 1;
        let mut cum = vec![0u64; a.returned.len() * metrics.len() * stride];
        let mut excluded = vec![false; a.returned.len() * metrics.len()];
        for (t, &id) in a.returned.iter().enumerate() {
            let model = TweetModel::new(a.seed, id);
            let old_for_ie = is_older(id, now_ms, IMPRESSIONS_MAX_AGE);
            let old_for_video = is_older(id, now_ms, VIDEO_VIEWS_MAX_AGE);
            for (m, &metric) in metrics.iter().enumerate() {
                let cell = t * metrics.len() + m;
                excluded[cell] = req.endpoint == Endpoint::Totals
                    && old_for_ie
                    && matches!(metric, Metric::Impressions | Metric::Engagements);
                let total = if metric == Metric::VideoViews && old_for_video {
                    0
                } else {
                    model.lifetime(metric)
                };
                let legacy = req.endpoint == Endpoint::Historical
                    && matches!(
                        metric,
                        Metric::Favorites | Metric::Replies | Metric::Retweets
                    );
                let row = &mut cum[cell * stride..(cell + 1) * stride];
                for (slot, &b) in row.iter_mut().zip(&boundaries) {
                    // Clamping the time to the cutoff makes every bucket before it read 0 while
                    // keeping every bucket a difference of running counts.
                    let b = if legacy { b.max(legacy_from) } else { b };
                    *slot = model.scaled(total, b);
                }
            }
        }
        let mut days: Vec<(String, usize, usize)> = Vec::new();
        if req.window.is_some() {
            let mut last_day = None;
            for i in 0..hours {
                let day = day_of(start_secs, i);
                match days.last_mut() {
                    Some(last) if last_day == Some(day) => last.2 = i + 1,
                    _ => {
                        days.push((day_label(day), i, i + 1));
                        last_day = Some(day);
                    }
                }
            }
        }
        Cube {
            ids: a.returned,
            tweets: a.returned.len(),
            metrics,
            requested: req.metrics.len(),
            numbers: a.doc_shapes,
            hours,
            cum,
            excluded,
            start_secs,
            days,
        }
    }

    fn hour_of_day(&self, bucket: usize) -> usize {
        ((self.start_secs + bucket as i64 * 3600).div_euclid(3600)).rem_euclid(24) as usize
    }

    fn excluded(&self, t: usize, m: usize) -> bool {
        self.excluded[t * self.metrics.len() + m]
    }

    fn write_level(&self, out: &mut String, levels: &[GroupBy], sel: Sel) {
        let Some((level, rest)) = levels.split_first() else {
            let v = self.leaf(&sel);
            if self.numbers && sel.tweet.or(sel.metric).is_some_and(|i| i % 2 == 1) {
                push_u64(out, v);
            } else {
                push_count(out, v);
            }
            return;
        };
        out.push('{');
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !first {
                out.push(',');
            }
            first = false;
        };
        match level {
            GroupBy::TweetId => {
                for t in 0..self.tweets {
                    if sel.metric.is_some_and(|m| self.excluded(t, m)) {
                        continue;
                    }
                    sep(out);
                    out.push('"');
                    push_u64(out, self.ids[t]);
                    out.push_str("\":");
                    self.write_level(
                        out,
                        rest,
                        Sel {
                            tweet: Some(t),
                            ..sel
                        },
                    );
                }
            }
            GroupBy::EngagementType => {
                let shown = if sel.extra {
                    self.metrics.len()
                } else {
                    self.requested
                };
                for (m, metric) in self.metrics[..shown].iter().enumerate() {
                    if sel.tweet.is_some_and(|t| self.excluded(t, m)) {
                        continue;
                    }
                    sep(out);
                    out.push('"');
                    out.push_str(metric.as_str());
                    out.push_str("\":");
                    self.write_level(
                        out,
                        rest,
                        Sel {
                            metric: Some(m),
                            ..sel
                        },
                    );
                }
            }
            GroupBy::EngagementDay => {
                let (lo, hi) = match sel.hours {
                    Hours::Range(i, j) => (i, j),
                    Hours::HourOfDay(_) => (0, self.hours),
                };
                for (label, i, j) in &self.days {
                    let (i, j) = ((*i).max(lo), (*j).min(hi));
                    if i >= j {
                        continue;
                    }
                    sep(out);
                    push_json_str(out, label);
                    out.push(':');
                    let day = Sel {
                        hours: Hours::Range(i, j),
                        in_day: true,
                        ..sel
                    };
                    self.write_level(out, rest, day);
                }
            }
            GroupBy::EngagementHour => {
                let (lo, hi) = match sel.hours {
                    Hours::Range(i, j) => (i, j),
                    Hours::HourOfDay(_) => (0, self.hours),
                };
                if sel.in_day {
                    for i in lo..hi {
                        sep(out);
                        push_json_str(out, HOUR_LABELS[self.hour_of_day(i)]);
                        out.push(':');
                        self.write_level(
                            out,
                            rest,
                            Sel {
                                hours: Hours::Range(i, i + 1),
                                ..sel
                            },
                        );
                    }
                } else {
                    // Hour of day across the whole window: keys in clock order, each the sum of
                    // that hour over every day. Only hours that occur in the window appear.
                    let mut offsets = [usize::MAX; 24];
                    for (i, slot) in (lo..hi.min(lo + 24)).map(|i| (i, self.hour_of_day(i))) {
                        offsets[slot] = i;
                    }
                    for (h, &i) in offsets.iter().enumerate() {
                        if i == usize::MAX {
                            continue;
                        }
                        sep(out);
                        push_json_str(out, HOUR_LABELS[h]);
                        out.push(':');
                        self.write_level(
                            out,
                            rest,
                            Sel {
                                hours: Hours::HourOfDay(i),
                                ..sel
                            },
                        );
                    }
                }
            }
        }
        out.push('}');
    }

    /// The sum over the selected Tweets and metrics of the selected hours.
    fn leaf(&self, sel: &Sel) -> u64 {
        let m_range = match sel.metric {
            Some(m) => m..m + 1,
            None => 0..self.requested,
        };
        let t_range = match sel.tweet {
            Some(t) => t..t + 1,
            None => 0..self.tweets,
        };
        let stride = self.hours + 1;
        let mut sum = 0u64;
        for t in t_range {
            for m in m_range.clone() {
                if self.excluded(t, m) {
                    continue;
                }
                let cell = t * self.metrics.len() + m;
                let c = &self.cum[cell * stride..(cell + 1) * stride];
                sum += match sel.hours {
                    Hours::Range(i, j) => c[j] - c[i],
                    Hours::HourOfDay(first) => (first..self.hours)
                        .step_by(24)
                        .map(|i| c[i + 1] - c[i])
                        .sum(),
                };
            }
        }
        sum
    }
}

fn day_of(start_secs: i64, bucket: usize) -> i64 {
    (start_secs + bucket as i64 * 3600).div_euclid(86_400)
}

fn day_label(unix_day: i64) -> String {
    // Unix day 0 is Julian day 2440588.
    let d = time::Date::from_julian_day((unix_day + 2_440_588) as i32).expect("window dates fit");
    let mut s = String::with_capacity(10);
    push_padded(&mut s, d.year() as u64, 4);
    s.push('-');
    push_padded(&mut s, u8::from(d.month()) as u64, 2);
    s.push('-');
    push_padded(&mut s, d.day() as u64, 2);
    s
}

fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut buf = [0u8; 20];
    let digits = engagement_api::digits::format_u64(&mut buf, v);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// A count leaf: a JSON string of a base-10 integer.
fn push_count(out: &mut String, v: u64) {
    out.push('"');
    push_u64(out, v);
    out.push('"');
}

fn push_id_array(out: &mut String, ids: &[u64]) {
    out.push('[');
    for (i, &id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_count(out, id);
    }
    out.push(']');
}

fn push_str_array<'s>(out: &mut String, items: impl Iterator<Item = &'s str>) {
    out.push('[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, s);
    }
    out.push(']');
}

/// A JSON string literal; grouping names and error texts come from the client, so escape them.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                out.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
                out.push(char::from(b"0123456789abcdef"[(b & 0xf) as usize]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\u{1}é");
        assert_eq!(s, r#""a\"b\\c\u0001é""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\u{1}é");
        assert_eq!(errors_body(&["x \"y\""]), r#"{"errors":["x \"y\""]}"#);
    }

    #[test]
    fn numbers_and_days() {
        let mut s = String::new();
        push_u64(&mut s, 0);
        s.push(' ');
        push_u64(&mut s, u64::MAX);
        assert_eq!(s, "0 18446744073709551615");
        assert_eq!(day_label(0), "1970-01-01");
        assert_eq!(day_label(19_844), "2024-05-01");
    }
}
