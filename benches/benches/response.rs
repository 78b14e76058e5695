//! Response parsing in MB/s: `engagement_api::response::parse_response` on the bodies engage reads.
//!
//! The simulator's renderer is private to its crate, so the bodies are written here in the same
//! shape it writes them (counts as strings, IDs as object keys, grouping levels nested in
//! `group_by` order, `start`/`end` on `/historical`):
//! - `totals_250x7`: a full `/totals` answer, 250 Tweets × the 7 metrics of user context, grouped
//!   by `tweet.id`, `engagement.type` (engage's `by_tweet`);
//! - `historical_25x17_series`: a full `/historical` answer over 28 days, 25 Tweets × the 17
//!   metrics, grouped by `tweet.id`, `engagement.type`, `engagement.day` (engage's `series`);
//! - `historical_25x17_series_hourly`: the same plus engage's second grouping, `hourly`
//!   (`engagement.type`, `engagement.day`, `engagement.hour`): the whole body of a time-series job.
//!
//! Each body is checked to parse into the expected number of cells before it is timed.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engagement_api::response::parse_response;
use engagement_api::window::format_time;
use engagement_api::{AuthKind, Endpoint, EngagementRequest, GroupBy, RequestBuilder};
use std::fmt::Write;
use std::hint::black_box;
use time::macros::datetime;
use time::{Date, Duration};

use GroupBy::*;

/// Deterministic counts with the spread of real ones (mostly small, a few large).
fn count(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 8) % (1u64 << (z % 20))
}

fn ids(n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| 1_900_000_000_000_000_000 + i * 7_919_000_003)
        .collect()
}

/// A `"key":` prefix, with a comma unless it is the first key of its object.
fn key(out: &mut String, first: &mut bool, k: impl std::fmt::Display) {
    if !*first {
        out.push(',');
    }
    *first = false;
    write!(out, "\"{k}\":").expect("writing to a String");
}

fn totals() -> (EngagementRequest, String) {
    let ids = ids(250);
    let req = RequestBuilder::new(Endpoint::Totals, AuthKind::User)
        .tweet_ids(ids.iter().copied())
        .metrics(Endpoint::Totals.allowed_metrics(AuthKind::User))
        .grouping("by_tweet", &[TweetId, EngagementType])
        .build()
        .expect("a valid /totals request");
    let mut out = String::from("{\"by_tweet\":{");
    let mut first_id = true;
    for (t, id) in ids.iter().enumerate() {
        key(&mut out, &mut first_id, id);
        out.push('{');
        let mut first_m = true;
        for (m, metric) in req.metrics.iter().enumerate() {
            key(&mut out, &mut first_m, metric.as_str());
            write!(out, "\"{}\"", count((t * 64 + m) as u64)).expect("writing to a String");
        }
        out.push('}');
    }
    out.push_str("}}");
    (req, out)
}

fn historical(with_hourly: bool) -> (EngagementRequest, String) {
    let ids = ids(25);
    let (start, end, now) = (
        datetime!(2026-05-01 00:00 UTC),
        datetime!(2026-05-29 00:00 UTC),
        datetime!(2026-06-01 00:00 UTC),
    );
    let mut b = RequestBuilder::new(Endpoint::Historical, AuthKind::User)
        .tweet_ids(ids.iter().copied())
        .metrics(Endpoint::Historical.allowed_metrics(AuthKind::User))
        .grouping("series", &[TweetId, EngagementType, EngagementDay])
        .start(start)
        .end(end);
    if with_hourly {
        b = b.grouping("hourly", &[EngagementType, EngagementDay, EngagementHour]);
    }
    let req = b.build_at(now).expect("a valid /historical request");
    let days: Vec<Date> = (0..(end - start).whole_days())
        .map(|d| (start + Duration::days(d)).date())
        .collect();
    let mut out = format!(
        "{{\"start\":\"{}\",\"end\":\"{}\",\"series\":{{",
        format_time(start),
        format_time(end)
    );
    let mut first_id = true;
    for (t, id) in ids.iter().enumerate() {
        key(&mut out, &mut first_id, id);
        out.push('{');
        let mut first_m = true;
        for (m, metric) in req.metrics.iter().enumerate() {
            key(&mut out, &mut first_m, metric.as_str());
            out.push('{');
            let mut first_d = true;
            for (d, day) in days.iter().enumerate() {
                key(&mut out, &mut first_d, day);
                write!(out, "\"{}\"", count(((t * 32 + m) * 32 + d) as u64))
                    .expect("writing to a String");
            }
            out.push('}');
        }
        out.push('}');
    }
    out.push('}');
    if with_hourly {
        out.push_str(",\"hourly\":{");
        let mut first_m = true;
        for (m, metric) in req.metrics.iter().enumerate() {
            key(&mut out, &mut first_m, metric.as_str());
            out.push('{');
            let mut first_d = true;
            for (d, day) in days.iter().enumerate() {
                key(&mut out, &mut first_d, day);
                out.push('{');
                let mut first_h = true;
                for h in 0..24 {
                    key(&mut out, &mut first_h, format_args!("{h:02}"));
                    write!(out, "\"{}\"", count(((m * 32 + d) * 32 + h) as u64))
                        .expect("writing to a String");
                }
                out.push('}');
            }
            out.push('}');
        }
        out.push('}');
    }
    out.push('}');
    (req, out)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_response");
    let cases = [
        ("totals_250x7", totals(), 250 * 7),
        ("historical_25x17_series", historical(false), 25 * 17 * 28),
        (
            "historical_25x17_series_hourly",
            historical(true),
            25 * 17 * 28 + 17 * 28 * 24,
        ),
    ];
    for (name, (req, body), cells) in &cases {
        let parsed = parse_response(body.as_bytes(), &req.groupings).expect("the body parses");
        let got: usize = parsed.groupings.iter().map(|g| g.cells.len()).sum();
        assert_eq!(got, *cells, "{name}: cells");
        println!(
            "{name}: {} bytes, {cells} cells, {:.1} bytes per cell",
            body.len(),
            body.len() as f64 / *cells as f64
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| parse_response(black_box(body.as_bytes()), &req.groupings))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
