//! Top-N updates per second: the bounded heaps of `engage::topn` against sorting everything.
//!
//! One "update" is one (Tweet, metric) value offered to a list. The inputs are 100,000 Tweets with
//! 7 metrics each (a `/totals` run's shape), N = 10:
//! - `random`: heavy-tailed values in random ID order, the common case, where almost every candidate
//!   loses against the list's minimum and costs one comparison;
//! - `ascending`: values that grow with every Tweet, the worst case, where every candidate enters
//!   the list and costs a sift-down.
//!
//! The baseline keeps every (ID, value) pair per metric, sorts by value descending then ID ascending
//! and truncates to N: what the heaps replace, and the model the property tests check them against.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engage::topn::{Aggregator, TopN};
use std::hint::black_box;

const TWEETS: usize = 100_000;
const METRICS: usize = 7;
const N: usize = 10;

/// splitmix64: a deterministic, dependency-free source of bench data.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Rows of (Tweet ID, one value per metric).
type Rows = Vec<(u64, [u64; METRICS])>;

/// Heavy-tailed values (most Tweets get little engagement), IDs in random order.
fn random_rows() -> Rows {
    (0..TWEETS as u64)
        .map(|i| {
            let id = 1_800_000_000_000_000_000 + (mix(i) >> 4);
            let mut v = [0u64; METRICS];
            for (m, slot) in v.iter_mut().enumerate() {
                let r = mix(i * 31 + m as u64);
                // Zero for about a fifth of the cells, else up to 2^(r % 24).
                *slot = if r.is_multiple_of(5) {
                    0
                } else {
                    (r >> 8) % (1u64 << (r % 24))
                };
            }
            (id, v)
        })
        .collect()
}

/// Every Tweet beats the previous one on every metric: each candidate enters the list.
fn ascending_rows() -> Rows {
    (0..TWEETS as u64)
        .map(|i| (1_800_000_000_000_000_000 + i, [i + 1; METRICS]))
        .collect()
}

fn heaps(rows: &Rows) -> Aggregator {
    let mut agg = Aggregator::new(N, METRICS);
    for (id, values) in rows {
        agg.add(*id, &values.map(Some));
    }
    agg
}

/// The baseline: collect everything, sort per metric, keep N. Returns the lists for a check.
fn sort_everything(rows: &Rows) -> Vec<Vec<(u64, u64)>> {
    (0..METRICS)
        .map(|m| {
            let mut all: Vec<(u64, u64)> = rows
                .iter()
                .map(|(id, v)| (*id, v[m]))
                .filter(|&(_, v)| v > 0)
                .collect();
            all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(N);
            all
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("topn");
    g.throughput(Throughput::Elements((TWEETS * METRICS) as u64));
    for (name, rows) in [("random", random_rows()), ("ascending", ascending_rows())] {
        // Both sides must agree before their speeds mean anything.
        let agg = heaps(&rows);
        let sorted = sort_everything(&rows);
        for (m, expected) in sorted.iter().enumerate() {
            assert_eq!(&agg.top(m), expected, "{name}: metric {m}");
        }
        g.bench_with_input(BenchmarkId::new("heap", name), &rows, |b, rows| {
            b.iter(|| black_box(heaps(black_box(rows))))
        });
        g.bench_with_input(
            BenchmarkId::new("sort_everything", name),
            &rows,
            |b, rows| b.iter(|| black_box(sort_everything(black_box(rows)))),
        );
    }
    g.finish();

    // One list alone, to separate the heap from the aggregator's bookkeeping.
    let mut g = c.benchmark_group("topn_single");
    let rows = random_rows();
    let values: Vec<(u64, u64)> = rows.iter().map(|(id, v)| (*id, v[0])).collect();
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function("push/random", |b| {
        b.iter(|| {
            let mut t = TopN::new(N);
            for &(id, v) in black_box(&values) {
                t.push(id, v);
            }
            black_box(t)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
