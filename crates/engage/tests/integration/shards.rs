//! Sharded runs: N shards (`--shard I/N`) merged with `engage merge` give the reports of one
//! unsharded run over the same inputs; the merge refuses what is not the N finished shards of one
//! run.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use engage::merge::{merge, MergeError};
use engage::run::{run, Progress, RunSpec};
use engage::series::Granularity;
use engage::shard::Shard;
use engage_sim::SimConfig;
use engagement_api::{AuthKind, Endpoint};
use tokio_util::sync::CancellationToken;

use super::pipeline::{
    case, case_named, demo_user, go, ids, read_json, results, sim, spec, Case, NOW,
};

/// Every line of a collection: IDs, each tenth again further down, and bad lines among them.
fn lines(n: usize, salt: u64) -> Vec<String> {
    let all = ids(n, salt);
    let mut out = Vec::new();
    for (k, id) in all.iter().enumerate() {
        out.push(id.to_string());
        if k % 10 == 3 {
            out.push(all[k / 2].to_string());
        }
        if k % 97 == 5 {
            out.push(if k % 2 == 0 {
                "1.23457E+18".into()
            } else {
                format!("junk{k}")
            });
        }
    }
    out
}

/// The same collection as a CSV with a `group` column: IDs in one group, some in two, some in
/// none, a duplicate in another group than its first occurrence (its groups are the union).
fn grouped_lines(n: usize, salt: u64) -> Vec<String> {
    let groups = [
        "brand",
        "rival",
        "brand|spring-sale",
        "",
        "spring-sale|rival",
    ];
    let mut out = vec!["tweet_id,group".to_string()];
    for (k, l) in lines(n, salt).into_iter().enumerate() {
        out.push(format!("{l},{}", groups[k % groups.len()]));
    }
    out
}

fn shard_spec(base: &RunSpec, c: &Case, i: u32, n: u32) -> RunSpec {
    let mut sp = clone_spec(base);
    sp.db = c.dir.join(format!("shard-{i}.db"));
    sp.out = c.dir.join(format!("shard-{i}.out"));
    sp.shard = Some(Shard { index: i, count: n });
    sp
}

/// RunSpec has no Clone (its routes hold credentials); the fields the tests change are copied.
fn clone_spec(s: &RunSpec) -> RunSpec {
    RunSpec {
        inputs: s.inputs.clone(),
        read: s.read.clone(),
        db: s.db.clone(),
        out: s.out.clone(),
        endpoint: s.endpoint,
        metrics: s.metrics.clone(),
        routes: s.routes.clone(),
        default_account: s.default_account.clone(),
        top_n: s.top_n,
        concurrency: s.concurrency,
        apps: s.apps.clone(),
        client: s.client.clone(),
        retry: s.retry,
        outage: s.outage,
        period: s.period,
        period_spec: s.period_spec.clone(),
        series: s.series,
        retry_failed: s.retry_failed,
        accept_rejects: s.accept_rejects,
        shard: s.shard,
        default_group: s.default_group.clone(),
        group_from: s.group_from,
        min_impressions: s.min_impressions,
    }
}

/// The files of a report that must be byte for byte a single run's (outcomes.csv without its
/// messages column, whose texts record the answers as they came).
fn same_reports(single: &Path, merged: &Path) {
    assert_eq!(
        results(&single.join("top.json")),
        results(&merged.join("top.json"))
    );
    // top.md without its messages section, for the same reason as top.json.
    let md = |d: &Path| {
        let text = std::fs::read_to_string(d.join("top.md")).unwrap();
        match text.split_once("\n## Messages that came with the answers\n") {
            Some((head, rest)) => {
                format!("{head}{}", rest.find("\n## ").map_or("", |i| &rest[i..]))
            }
            None => text,
        }
    };
    assert_eq!(md(single), md(merged), "top.md");
    for f in [
        "top.csv",
        "tweets.csv",
        "rejects.csv",
        "series.csv",
        "hourly.csv",
    ] {
        let a = std::fs::read_to_string(single.join(f)).ok();
        let b = std::fs::read_to_string(merged.join(f)).ok();
        assert_eq!(a.is_some(), b.is_some(), "{f}");
        assert!(a == b, "{f} differs from the single run's");
    }
    let outcomes = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("outcomes.csv"))
            .unwrap()
            .lines()
            .map(|l| l.splitn(4, ',').take(3).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(outcomes(single), outcomes(merged));
}

fn dbs(c: &Case, n: u32) -> Vec<PathBuf> {
    (0..n)
        .map(|i| c.dir.join(format!("shard-{i}.db")))
        .collect()
}

async fn run_shards(base: &RunSpec, c: &Case, n: u32) {
    for i in 0..n {
        go(shard_spec(base, c, i, n)).await.unwrap();
    }
}

#[tokio::test]
async fn four_totals_shards_merge_into_the_single_runs_reports() {
    let s = sim(SimConfig {
        deleted: 0.05,
        protected: 0.03,
        ..SimConfig::default()
    })
    .await;
    let c = case_named("ids.csv", &grouped_lines(3000, 1));
    let single = spec(&c, &s.url(), "single.db", demo_user());
    let single_out = single.out.clone();
    let base = clone_spec(&single);
    go(single).await.unwrap();
    run_shards(&base, &c, 4).await;
    // Each shard kept about a quarter of the IDs, and every shard the rejects.
    let whole = read_json(&single_out.join("top.json"));
    let unique = whole["counts"]["unique_ids"].as_u64().unwrap();
    assert!(whole["counts"]["duplicate_ids"].as_u64().unwrap() > 200);
    assert!(whole["counts"]["rejected_lines"].as_u64().unwrap() > 20);
    for i in 0..4 {
        let t = read_json(&c.dir.join(format!("shard-{i}.out/top.json")));
        let u = t["counts"]["unique_ids"].as_u64().unwrap();
        assert!(
            u > unique / 5 && u < unique / 3,
            "shard {i}: {u} of {unique}"
        );
        assert_eq!(
            t["counts"]["rejected_lines"],
            whole["counts"]["rejected_lines"]
        );
    }
    let out = c.dir.join("merged.out");
    // In any order of the arguments.
    let mut shards = dbs(&c, 4);
    shards.reverse();
    let m = merge(&shards, &c.dir.join("merged.db"), &out).unwrap();
    assert_eq!(m.shards, 4);
    same_reports(&single_out, &out);
    // The groups, with IDs in two of them, are the single run's.
    let groups = read_json(&out.join("top.json"))["groups"].clone();
    assert!(groups.as_object().is_some_and(|g| g.len() == 3), "{groups}");
    assert!(out.join("groups.csv").exists());
    // The merged store is the single run's: same identity, so the same history key.
    let id = |db: &Path| engage::run::open_run(db).unwrap().identity;
    assert_eq!(id(&c.dir.join("merged.db")), id(&c.dir.join("single.db")));
    // Its groups with their sizes (what a history keeps of them) too.
    let groups = |db: &Path| -> Vec<(String, u64)> {
        let run = engage::run::open_run(db).unwrap();
        let g = run.store.groups().unwrap();
        g.into_iter().map(|g| (g.name, g.ids)).collect()
    };
    assert_eq!(
        groups(&c.dir.join("merged.db")),
        groups(&c.dir.join("single.db"))
    );
    // Merging again rebuilds the same store and reports.
    merge(&dbs(&c, 4), &c.dir.join("merged.db"), &out).unwrap();
    same_reports(&single_out, &out);
}

#[tokio::test]
async fn four_historical_shards_over_40_days_merge_into_the_single_runs_reports() {
    let s = sim(SimConfig {
        deleted: 0.05,
        ..SimConfig::default()
    })
    .await;
    // IDs from the last 120 days; the period is 40 days (two windows), by day.
    let c = case_named("ids.csv", &grouped_lines(800, 2));
    let mut single = spec(&c, &s.url(), "single.db", demo_user());
    let period = engagement_api::window::resolve_period(
        Some(NOW - time::Duration::days(41)),
        Some(NOW - time::Duration::days(1)),
        None,
        NOW,
    )
    .unwrap();
    single.endpoint = Endpoint::Historical;
    single.metrics = Endpoint::Historical.allowed_metrics(AuthKind::User);
    single.period = Some(period);
    single.period_spec = Some(engage::run::format_period(&period));
    single.series = Some(Granularity::Day);
    let single_out = single.out.clone();
    let base = clone_spec(&single);
    go(single).await.unwrap();
    run_shards(&base, &c, 4).await;
    let out = c.dir.join("merged.out");
    merge(&dbs(&c, 4), &c.dir.join("merged.db"), &out).unwrap();
    assert!(std::fs::metadata(out.join("series.csv")).unwrap().len() > 1000);
    same_reports(&single_out, &out);
}

/// Runs shard `i` until it has settled some IDs and not all, then stops it as Ctrl-C would.
async fn interrupted(sp: RunSpec) {
    let progress = Arc::new(Progress::default());
    let cancel = CancellationToken::new();
    let watch = {
        let (p, c) = (progress.clone(), cancel.clone());
        tokio::spawn(async move {
            while p.resolved.load(Ordering::Relaxed) < 250 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            c.cancel();
        })
    };
    let o = run(sp, progress, cancel).await.unwrap();
    watch.abort();
    assert!(o.interrupted, "the shard finished before it was stopped");
}

#[tokio::test]
async fn a_shard_stopped_mid_run_is_refused_then_resumed_to_the_same_merge() {
    let s = sim(SimConfig {
        deleted: 0.05,
        faults: engage_sim::FaultConfig {
            latency_ms: 20,
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = case(&lines(6000, 3));
    let single = spec(&c, &s.url(), "single.db", demo_user());
    let single_out = single.out.clone();
    let base = clone_spec(&single);
    go(single).await.unwrap();
    for i in [0, 1, 3] {
        go(shard_spec(&base, &c, i, 4)).await.unwrap();
    }
    let mut two = shard_spec(&base, &c, 2, 4);
    two.concurrency = Some(1);
    interrupted(two).await;
    let out = c.dir.join("merged.out");
    let e = merge(&dbs(&c, 4), &c.dir.join("merged.db"), &out).unwrap_err();
    assert_eq!(e.exit_code(), engage::exit::USAGE);
    let msg = e.to_string();
    assert!(
        msg.contains("shard-2.db (shard 2/4) is not finished") && msg.contains("IDs pending"),
        "{msg}"
    );
    assert!(!c.dir.join("merged.db").exists());
    // The same command resumes it.
    go(shard_spec(&base, &c, 2, 4)).await.unwrap();
    merge(&dbs(&c, 4), &c.dir.join("merged.db"), &out).unwrap();
    same_reports(&single_out, &out);
}

fn refused(r: Result<engage::merge::Merged, MergeError>) -> String {
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), engage::exit::USAGE, "{e}");
    e.to_string()
}

#[tokio::test]
async fn merge_refuses_a_missing_shard_one_given_twice_and_another_runs() {
    let s = sim(SimConfig::default()).await;
    let c = case(&lines(400, 4));
    let base = spec(&c, &s.url(), "unused.db", demo_user());
    run_shards(&base, &c, 4).await;
    // Another run: other inputs, in a folder of its own.
    let other = case(&lines(400, 5));
    let other_base = spec(&other, &s.url(), "unused.db", demo_user());
    go(shard_spec(&other_base, &other, 3, 4)).await.unwrap();
    // The same inputs in 3 shards.
    let mut three = shard_spec(&base, &c, 0, 3);
    three.db = c.dir.join("three-0.db");
    go(three).await.unwrap();

    let merged = c.dir.join("merged.db");
    let out = c.dir.join("merged.out");
    let all = dbs(&c, 4);

    let msg = refused(merge(&all[..3], &merged, &out));
    assert!(
        msg.contains("shard 3/4 of the run missing: 3 given, 4 needed"),
        "{msg}"
    );
    let msg = refused(merge(&[&all[..1], &all[1..]].concat()[..1], &merged, &out));
    assert!(
        msg.contains("shards 1/4, 2/4, 3/4 of the run missing"),
        "{msg}"
    );

    let twice = vec![
        all[0].clone(),
        all[1].clone(),
        all[2].clone(),
        all[1].clone(),
    ];
    let msg = refused(merge(&twice, &merged, &out));
    assert!(
        msg.contains("shard 1/4 is given twice: ") && msg.contains("shard-1.db"),
        "{msg}"
    );

    let foreign = vec![
        all[0].clone(),
        all[1].clone(),
        all[2].clone(),
        other.dir.join("shard-3.db"),
    ];
    let msg = refused(merge(&foreign, &merged, &out));
    assert!(
        msg.contains("(shard 3/4) is a shard of another run than")
            && msg.contains("inputs: stored"),
        "{msg}"
    );

    let mixed = vec![all[0].clone(), c.dir.join("three-0.db")];
    let msg = refused(merge(&mixed, &merged, &out));
    assert!(
        msg.contains("number of shards") || msg.contains("given twice"),
        "{msg}"
    );

    let whole = c.dir.join("whole.db");
    let mut w = clone_spec(&base);
    w.db = whole.clone();
    w.out = c.dir.join("whole.out");
    go(w).await.unwrap();
    let msg = refused(merge(&[whole, all[1].clone()], &merged, &out));
    assert!(msg.contains("whole.db is not a shard store"), "{msg}");

    let msg = refused(merge(&[all[0].clone(), all[1].clone()], &all[0], &out));
    assert!(msg.contains("missing"), "{msg}");
    assert!(
        !merged.exists() && !out.exists(),
        "a refused merge writes nothing"
    );
}

#[tokio::test]
async fn a_resume_with_another_shard_is_refused() {
    let s = sim(SimConfig::default()).await;
    let c = case(&lines(200, 6));
    let base = spec(&c, &s.url(), "unused.db", demo_user());
    go(shard_spec(&base, &c, 1, 4)).await.unwrap();
    let mut again = shard_spec(&base, &c, 2, 4);
    again.db = c.dir.join("shard-1.db");
    let e = go(again).await.unwrap_err();
    assert_eq!(e.exit_code(), engage::exit::USAGE);
    assert!(e.to_string().contains("shard: stored 1/4, now 2/4"), "{e}");
    let mut whole = clone_spec(&base);
    whole.db = c.dir.join("shard-1.db");
    let e = go(whole).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("shard: stored 1/4, now none (the whole run)"),
        "{e}"
    );
}

#[tokio::test]
async fn every_shard_judges_a_mostly_rejected_input_over_all_its_lines() {
    // 160 IDs and 140 bad lines: less than half rejected, so the whole run reads it; a shard that
    // judged only the lines of its own IDs (about 40 and the 140) would refuse it.
    let s = sim(SimConfig::default()).await;
    let mut l: Vec<String> = ids(160, 7).iter().map(|i| i.to_string()).collect();
    l.extend((0..140).map(|k| format!("junk{k}")));
    let c = case(&l);
    let base = spec(&c, &s.url(), "unused.db", demo_user());
    for i in 0..4 {
        let o = go(shard_spec(&base, &c, i, 4)).await.unwrap();
        assert_eq!(o.summary.ingest.rejected_lines, 140);
    }
    let out = c.dir.join("merged.out");
    merge(&dbs(&c, 4), &c.dir.join("merged.db"), &out).unwrap();
    let t = read_json(&out.join("top.json"));
    assert_eq!(t["counts"]["input_lines"], 300);
    assert_eq!(t["counts"]["unique_ids"], 160);
}

#[tokio::test]
async fn merge_refuses_shards_whose_relative_period_resolved_to_other_hours() {
    let s = sim(SimConfig::default()).await;
    let c = case(&lines(100, 8));
    let mut base = spec(&c, &s.url(), "unused.db", demo_user());
    base.endpoint = Endpoint::Historical;
    base.metrics = Endpoint::Historical.allowed_metrics(AuthKind::User);
    base.series = Some(Granularity::Day);
    // `--days 3` as two shards started an hour apart resolve it.
    base.period_spec = Some("days=3".into());
    for (i, hours_ago) in [(0, 2), (1, 1)] {
        let end = NOW - time::Duration::hours(hours_ago);
        let p = engagement_api::window::resolve_period(None, Some(end), Some(3), NOW).unwrap();
        let mut sp = shard_spec(&base, &c, i, 2);
        sp.period = Some(p);
        go(sp).await.unwrap();
    }
    let msg = refused(merge(
        &dbs(&c, 2),
        &c.dir.join("merged.db"),
        &c.dir.join("m"),
    ));
    assert!(
        msg.contains("is a shard of another run") && msg.contains("period: "),
        "{msg}"
    );
}
