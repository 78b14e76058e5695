//! Request building, in requests/s: what engage does before every attempt of every batch.
//!
//! - `build_and_body/*`: `RequestBuilder` (IDs, metrics, groupings, window) → `build_at` (every
//!   request rule) → `to_body` (the JSON sent), as the fetcher does per attempt;
//! - `to_body/*`: the serialization alone, on an already validated request;
//! - `sign/oauth1`: `Credentials::authorization`, the fresh OAuth 1.0a HMAC-SHA1 header of each
//!   attempt (nonce, timestamp, base string, HMAC, header).
//!
//! Shapes: `/totals` with 250 IDs × 7 metrics grouped by Tweet and metric (engage's default job), and
//! `/historical` with 25 IDs × 17 metrics over a 28-day window with engage's two time-series
//! groupings (`series` by day and `hourly`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engage_sim::DEMO;
use engagement_api::auth::{Credentials, UserCredentials};
use engagement_api::{AuthKind, Endpoint, EngagementRequest, GroupBy, RequestBuilder};
use std::hint::black_box;
use time::macros::datetime;
use time::OffsetDateTime;

use GroupBy::*;

const NOW: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);

fn ids(n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| 1_900_000_000_000_000_000 + i * 7_919_000_003)
        .collect()
}

fn build(endpoint: Endpoint, ids: &[u64]) -> EngagementRequest {
    let b = RequestBuilder::new(endpoint, AuthKind::User)
        .tweet_ids(ids.iter().copied())
        .metrics(endpoint.allowed_metrics(AuthKind::User));
    let b = match endpoint {
        Endpoint::Totals => b.grouping("by_tweet", &[TweetId, EngagementType]),
        _ => b
            .grouping("series", &[TweetId, EngagementType, EngagementDay])
            .grouping("hourly", &[EngagementType, EngagementDay, EngagementHour])
            .start(datetime!(2026-05-01 00:00 UTC))
            .end(datetime!(2026-05-29 00:00 UTC)),
    };
    b.build_at(NOW).expect("a valid request")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1));
    let cases = [
        ("totals_250x7", Endpoint::Totals, ids(250)),
        ("historical_25x17", Endpoint::Historical, ids(25)),
    ];
    for (name, endpoint, ids) in &cases {
        let body = build(*endpoint, ids).to_body();
        println!("{name}: body of {} bytes", body.len());
        g.bench_with_input(BenchmarkId::new("build_and_body", name), ids, |b, ids| {
            b.iter(|| build(*endpoint, black_box(ids)).to_body())
        });
        let req = build(*endpoint, ids);
        g.bench_with_input(BenchmarkId::new("to_body", name), &req, |b, req| {
            b.iter(|| black_box(req).to_body())
        });
    }
    let creds = Credentials::User(UserCredentials {
        consumer_key: DEMO.consumer_key.into(),
        consumer_secret: DEMO.consumer_secret.into(),
        access_token: DEMO.access_token.into(),
        access_token_secret: DEMO.access_token_secret.into(),
    });
    let url = "http://127.0.0.1:8787/insights/engagement/totals";
    g.bench_function("sign/oauth1", |b| {
        b.iter(|| creds.authorization("POST", black_box(url)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
