//! The history store against the simulator: nights run with the simulator's "now" moved 24 hours
//! each night, added to a history, and its report checked against the simulator's own values.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use engage::fetch::RetryPolicy;
use engage::health::OutagePolicy;
use engage::history::{self, AsOf, History, HistoryError};
use engage::ids::ReadOptions;
use engage::route::Routes;
use engage::run::{run, Progress, RunSpec};
use engage::series::Granularity;
use engage_sim::{metrics, SimConfig, DEMO};
use engagement_api::auth::UserCredentials;
use engagement_api::client::ClientConfig;
use engagement_api::{AuthKind, Endpoint, Metric};
use serde_json::Value;
use time::macros::datetime;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const NOW: OffsetDateTime = datetime!(2026-11-20 12:00 UTC);
const DAY: time::Duration = time::Duration::hours(24);

fn night(k: i64) -> OffsetDateTime {
    NOW + DAY * k as i32
}

/// `n` IDs created at `from` and up to `span_hours` after it.
fn ids_from(from: OffsetDateTime, span_hours: u64, n: u64, salt: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let t =
                from + time::Duration::minutes(((i * 7919 + salt * 31) % (span_hours * 60)) as i64);
            metrics::tweet_id_at(t, i + salt * 1000)
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn user() -> UserCredentials {
    UserCredentials {
        consumer_key: DEMO.consumer_key.into(),
        consumer_secret: DEMO.consumer_secret.into(),
        access_token: DEMO.access_token.into(),
        access_token_secret: DEMO.access_token_secret.into(),
    }
}

/// Runs `ids` on `endpoint` against a simulator whose "now" is `now`, into `dir/<name>.db`.
async fn run_night(
    dir: &Path,
    name: &str,
    endpoint: Endpoint,
    ids: &[u64],
    sim: SimConfig,
    now: OffsetDateTime,
) -> PathBuf {
    let s = engage_sim::start(
        SimConfig {
            now: Some(now),
            ..sim
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("simulator starts");
    let input = dir.join(format!("{name}.txt"));
    let text: String = ids.iter().map(|i| format!("{i}\n")).collect();
    std::fs::write(&input, text).unwrap();
    run_input(dir, name, endpoint, &input, s).await
}

/// Runs the input file `input` on `endpoint` against the simulator `s` into `dir/<name>.db`, and
/// stops the simulator.
async fn run_input(
    dir: &Path,
    name: &str,
    endpoint: Endpoint,
    input: &Path,
    s: engage_sim::SimHandle,
) -> PathBuf {
    let db = dir.join(format!("{name}.db"));
    let spec = RunSpec {
        inputs: vec![input.to_string_lossy().into_owned()],
        read: ReadOptions::default(),
        db: db.clone(),
        out: dir.join(format!("{name}.out")),
        endpoint,
        metrics: endpoint.allowed_metrics(AuthKind::User),
        routes: Routes::single_user(endpoint, "demo", user()),
        default_account: None,
        default_group: None,
        group_from: None,
        min_impressions: None,
        top_n: 10,
        concurrency: Some(4),
        apps: engage::apps::AppSpec::single(None),
        client: ClientConfig {
            base_url: s.url(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            allow_insecure_http: false,
        },
        retry: RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        },
        outage: OutagePolicy::default(),
        period: None,
        period_spec: None,
        series: (endpoint == Endpoint::Hr28).then_some(Granularity::Hour),
        retry_failed: false,
        accept_rejects: false,
        shard: None,
    };
    let out = run(
        spec,
        Arc::new(Progress::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(!out.interrupted);
    s.shutdown().await;
    db
}

fn report(history: &Path, out: &Path, top: usize, since: Option<u32>) -> Value {
    let h = History::open(history, false).unwrap();
    history::write_report(&h, out, top, since).unwrap();
    serde_json::from_slice(&std::fs::read(out.join("movers.json")).unwrap()).unwrap()
}

/// The movers the simulator implies: for every metric, the top `n` by gain among Tweets `ok` at
/// latest (`base_of` gives the base value, `None` for a Tweet not in the base run).
fn expected_movers(
    seed: u64,
    metric: Metric,
    latest_ids: &[u64],
    latest_ok: impl Fn(u64) -> bool,
    latest: OffsetDateTime,
    base_of: impl Fn(u64) -> Option<u64>,
    n: usize,
) -> Vec<Value> {
    let mut all: Vec<(i64, u64, Option<u64>, u64)> = latest_ids
        .iter()
        .filter(|&&id| latest_ok(id))
        .map(|&id| {
            let l = metrics::cumulative(seed, id, metric, latest);
            let b = base_of(id);
            (l as i64 - b.unwrap_or(0) as i64, id, b, l)
        })
        .filter(|g| g.0 != 0)
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter()
        .take(n)
        .map(|(gain, id, base, latest)| {
            serde_json::json!({"id": id.to_string(), "base": base, "latest": latest, "gain": gain, "new": base.is_none()})
        })
        .collect()
}

/// The top `n` IDs by value (zeros left out), ties to the lower ID.
fn top_by_value(values: &BTreeMap<u64, u64>, n: usize) -> Vec<u64> {
    let mut v: Vec<(u64, u64)> = values
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(id, v)| (*id, *v))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().take(n).map(|(id, _)| id).collect()
}

fn id_list(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().parse().unwrap())
        .collect()
}

/// Three nights with the simulator's "now" 24 hours apart: IDs of set A every night, set B (posted
/// after the first night) from the second night on, and on the third night a fifth of the IDs
/// deleted.
struct ThreeNights {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    seed: u64,
    a: Vec<u64>,
    b: Vec<u64>,
    dbs: [PathBuf; 3],
}

const SEED: u64 = 21;
const DELETED_ON_NIGHT_3: f64 = 0.2;

async fn three_nights() -> ThreeNights {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // Posted in the 30 days before the first night, and the day after it: no Tweet reaches the
    // 90-day rule.
    let a = ids_from(NOW - DAY * 30, 30 * 24, 80, 1);
    let b = ids_from(NOW + time::Duration::hours(1), 20, 20, 2);
    let ab: Vec<u64> = a
        .iter()
        .chain(&b)
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let sim = SimConfig {
        seed: SEED,
        ..SimConfig::default()
    };
    let n1 = run_night(&dir, "night1", Endpoint::Totals, &a, sim.clone(), night(0)).await;
    let n2 = run_night(&dir, "night2", Endpoint::Totals, &ab, sim.clone(), night(1)).await;
    let n3 = run_night(
        &dir,
        "night3",
        Endpoint::Totals,
        &ab,
        SimConfig {
            deleted: DELETED_ON_NIGHT_3,
            ..sim
        },
        night(2),
    )
    .await;
    ThreeNights {
        _tmp: tmp,
        dir,
        seed: SEED,
        a,
        b,
        dbs: [n1, n2, n3],
    }
}

fn add_all(history: &Path, dbs: &[(&PathBuf, OffsetDateTime)]) {
    for (db, at) in dbs {
        let a = history::add(history, db, AsOf::At(*at)).unwrap();
        assert!(!a.already);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nights_of_movers_equal_the_simulators_values() {
    let t = three_nights().await;
    let hist = t.dir.join("history.db");
    add_all(
        &hist,
        &[
            (&t.dbs[0], night(0)),
            (&t.dbs[1], night(1)),
            (&t.dbs[2], night(2)),
        ],
    );
    let all: Vec<u64> =
        t.a.iter()
            .chain(&t.b)
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    let deleted = |id: u64| metrics::is_deleted(t.seed, id, DELETED_ON_NIGHT_3);
    let in_a = |id: u64| t.a.binary_search(&id).is_ok();
    let top = 7;
    let metrics_run = Endpoint::Totals.allowed_metrics(AuthKind::User);

    // Base: the night before the latest.
    let j = report(&hist, &t.dir.join("r1"), top, None);
    assert_eq!(j["latest"], "2026-11-22T12:00:00Z");
    assert_eq!(j["base"], "2026-11-21T12:00:00Z");
    assert_eq!(j["top"], top);
    for m in &metrics_run {
        let want = expected_movers(
            t.seed,
            *m,
            &all,
            |id| !deleted(id),
            night(2),
            |id| Some(metrics::cumulative(t.seed, id, *m, night(1))),
            top,
        );
        assert_eq!(j["metrics"][m.as_str()], Value::Array(want), "{m}");
        // Entered and left the top N by value.
        let at = |when: OffsetDateTime, ok: &dyn Fn(u64) -> bool, ids: &[u64]| {
            ids.iter()
                .filter(|&&id| ok(id))
                .map(|&id| (id, metrics::cumulative(t.seed, id, *m, when)))
                .collect::<BTreeMap<_, _>>()
        };
        let l = top_by_value(&at(night(2), &|id| !deleted(id), &all), top);
        let b = top_by_value(&at(night(1), &|_| true, &all), top);
        let entered: Vec<u64> = l.iter().filter(|x| !b.contains(x)).copied().collect();
        let left: Vec<u64> = b.iter().filter(|x| !l.contains(x)).copied().collect();
        assert_eq!(id_list(&j["entered"][m.as_str()]), entered, "{m} entered");
        assert_eq!(id_list(&j["left"][m.as_str()]), left, "{m} left");
    }
    let gone: Vec<u64> = all.iter().copied().filter(|&id| deleted(id)).collect();
    assert!(!gone.is_empty());
    assert_eq!(id_list(&j["gone"]), gone);
    // No Tweet is a mover and gone.
    for m in &metrics_run {
        for g in j["metrics"][m.as_str()].as_array().unwrap() {
            let id: u64 = g["id"].as_str().unwrap().parse().unwrap();
            assert!(!deleted(id));
        }
    }

    // Base two days back: the Tweets of set B were not in the first night and count from 0.
    let j = report(&hist, &t.dir.join("r2"), top, Some(2));
    assert_eq!(j["base"], "2026-11-20T12:00:00Z");
    let mut saw_new = false;
    for m in &metrics_run {
        let want = expected_movers(
            t.seed,
            *m,
            &all,
            |id| !deleted(id),
            night(2),
            |id| in_a(id).then(|| metrics::cumulative(t.seed, id, *m, night(0))),
            top,
        );
        saw_new |= want.iter().any(|g| g["new"] == true);
        assert_eq!(j["metrics"][m.as_str()], Value::Array(want), "{m}");
    }
    assert!(saw_new, "set B should reach the movers");
    // Too far back: refused with a message, exit 2.
    let h = History::open(&hist, false).unwrap();
    let e = history::write_report(&h, &t.dir.join("r3"), top, Some(3))
        .err()
        .unwrap();
    assert_eq!(e.exit_code(), engage::exit::USAGE, "{e}");

    // nights.csv: each night's grand total per metric and how many Tweets it is over.
    let csv = std::fs::read_to_string(t.dir.join("r1/nights.csv")).unwrap();
    let mut want = String::from("as_of,endpoint,metric,total,tweets\n");
    for (k, ids) in [(0, &t.a), (1, &all), (2, &all)] {
        let ok: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&id| k < 2 || !deleted(id))
            .collect();
        let mut sorted = metrics_run.clone();
        sorted.sort();
        for m in sorted {
            let total: u64 = ok
                .iter()
                .map(|&id| metrics::cumulative(t.seed, id, m, night(k)))
                .sum();
            want.push_str(&format!(
                "{},totals,{m},{total},{}\n",
                engagement_api::timefmt::rfc3339_z(night(k)),
                ok.len()
            ));
        }
    }
    assert_eq!(csv, want);
    for f in ["movers.md", "movers.csv", "history.html"] {
        assert!(t.dir.join("r1").join(f).is_file(), "{f}");
    }
}

/// The rows of a history, to compare two of them.
fn snapshot_rows(history: &Path) -> Vec<(i64, String, i64)> {
    let c = rusqlite::Connection::open(history).unwrap();
    let mut s = c
        .prepare(
            "SELECT count(*), 'snap', coalesce(sum(length(vals)), 0) FROM snap \
             UNION ALL SELECT count(*), 'cur', coalesce(sum(length(vals)), 0) FROM cur \
             UNION ALL SELECT count(*), 'runs', 0 FROM runs",
        )
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_run_twice_changes_nothing_and_backfill_in_any_order_is_the_same_history() {
    let t = three_nights().await;
    let in_order = t.dir.join("in-order.db");
    add_all(
        &in_order,
        &[
            (&t.dbs[0], night(0)),
            (&t.dbs[1], night(1)),
            (&t.dbs[2], night(2)),
        ],
    );
    let before = snapshot_rows(&in_order);
    let r_before = report(&in_order, &t.dir.join("a"), 10, Some(2));
    for (db, at) in [(&t.dbs[1], night(1)), (&t.dbs[2], night(2))] {
        let again = history::add(&in_order, db, AsOf::At(at)).unwrap();
        assert!(again.already);
    }
    assert_eq!(snapshot_rows(&in_order), before);
    assert_eq!(report(&in_order, &t.dir.join("b"), 10, Some(2)), r_before);

    // The last night first, then the first, then the middle one: every report is the same.
    let shuffled = t.dir.join("shuffled.db");
    add_all(
        &shuffled,
        &[
            (&t.dbs[2], night(2)),
            (&t.dbs[0], night(0)),
            (&t.dbs[1], night(1)),
        ],
    );
    for since in [None, Some(1), Some(2)] {
        assert_eq!(
            report(&shuffled, &t.dir.join("c"), 10, since),
            report(&in_order, &t.dir.join("d"), 10, since),
            "since {since:?}"
        );
    }
    assert_eq!(
        std::fs::read(t.dir.join("c/nights.csv")).unwrap(),
        std::fs::read(t.dir.join("d/nights.csv")).unwrap()
    );
    // The same rows, whatever the order the nights came in.
    assert_eq!(snapshot_rows(&shuffled), snapshot_rows(&in_order));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_28hr_running_tally_of_two_overlapping_windows_counts_each_hour_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let seed = 8;
    // Posted in the three days before the first run, so both windows hold engagement.
    let ids = ids_from(NOW - DAY * 3, 72, 30, 3);
    let sim = SimConfig {
        seed,
        ..SimConfig::default()
    };
    let first = run_night(dir, "w1", Endpoint::Hr28, &ids, sim.clone(), NOW).await;
    let later = NOW + time::Duration::hours(24);
    let second = run_night(dir, "w2", Endpoint::Hr28, &ids, sim, later).await;
    let (w1, w2) = (
        engagement_api::window::window_28hr(NOW),
        engagement_api::window::window_28hr(later),
    );
    assert!(w2.start < w1.end, "the windows overlap");
    let hist = dir.join("history.db");
    add_all(&hist, &[(&first, NOW), (&second, later)]);
    let j = report(&hist, &dir.join("r"), 1000, None);
    let mut checked = 0;
    for m in Endpoint::Hr28.allowed_metrics(AuthKind::User) {
        // The simulator's own sum over the union of the two windows (the second one up to its now).
        let want: BTreeMap<String, u64> = ids
            .iter()
            .map(|&id| (id.to_string(), metrics::count(seed, id, m, w1.start, later)))
            .filter(|(_, v)| *v > 0)
            .collect();
        let got: BTreeMap<String, u64> = j["tally"][m.as_str()]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["id"].as_str().unwrap().to_string(),
                    x["value"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{m}");
        checked += want.len();
        // The history's hourly totals: each hour once, as the later run saw it.
        let mut hours = BTreeMap::new();
        let mut h = w1.start;
        while h < w2.end {
            let sum: u64 = ids
                .iter()
                .map(|&id| {
                    metrics::count(seed, id, m, h, (h + time::Duration::hours(1)).min(later))
                })
                .sum();
            if sum > 0 {
                hours.insert(engagement_api::timefmt::rfc3339_z(h), sum);
            }
            h += time::Duration::hours(1);
        }
        let got: BTreeMap<String, u64> = j["hourly"][m.as_str()]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["hour"].as_str().unwrap().to_string(),
                    x["value"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, hours, "{m} hourly");
    }
    assert!(checked > 100, "too little to compare: {checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_store_is_refused_and_the_history_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ids = ids_from(NOW - DAY * 10, 240, 50, 4);
    let finished = run_night(dir, "ok", Endpoint::Totals, &ids, SimConfig::default(), NOW).await;
    let hist = dir.join("history.db");
    add_all(&hist, &[(&finished, NOW)]);
    let before = snapshot_rows(&hist);

    // A run stopped before anything was fetched: its inputs are not read to the end.
    let input = dir.join("stopped.txt");
    std::fs::write(
        &input,
        ids.iter().map(|i| format!("{i}\n")).collect::<String>(),
    )
    .unwrap();
    let db = dir.join("stopped.db");
    let spec = RunSpec {
        inputs: vec![input.to_string_lossy().into_owned()],
        read: ReadOptions::default(),
        db: db.clone(),
        out: dir.join("stopped.out"),
        endpoint: Endpoint::Totals,
        metrics: Endpoint::Totals.allowed_metrics(AuthKind::User),
        routes: Routes::single_user(Endpoint::Totals, "demo", user()),
        default_account: None,
        default_group: None,
        group_from: None,
        min_impressions: None,
        top_n: 10,
        concurrency: Some(1),
        apps: engage::apps::AppSpec::single(None),
        // Nothing listens there; the run is stopped before it asks.
        client: ClientConfig {
            base_url: "http://127.0.0.1:9".into(),
            ..ClientConfig::default()
        },
        retry: RetryPolicy::default(),
        outage: OutagePolicy::default(),
        period: None,
        period_spec: None,
        series: None,
        retry_failed: false,
        accept_rejects: false,
        shard: None,
    };
    let cancel = CancellationToken::new();
    cancel.cancel();
    let out = run(spec, Arc::new(Progress::default()), cancel)
        .await
        .unwrap();
    assert!(out.interrupted);
    let e = history::add(&hist, &db, AsOf::At(NOW + DAY)).err().unwrap();
    assert!(matches!(e, HistoryError::Unfinished { .. }), "{e}");
    assert_eq!(e.exit_code(), engage::exit::USAGE);
    assert!(e.to_string().contains("stopped.db"), "{e}");
    assert_eq!(snapshot_rows(&hist), before);

    // A store without a recorded fetch time needs --as-of; one with it is taken as recorded.
    let a = history::add(&dir.join("h2.db"), &finished, AsOf::Recorded).unwrap();
    assert!(!a.already);
    assert!((OffsetDateTime::now_utc() - a.as_of).whole_minutes().abs() < 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_is_never_a_gain_from_or_to_anything() {
    let t = three_nights().await;
    let all: Vec<u64> =
        t.a.iter()
            .chain(&t.b)
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    let deleted = |id: u64| metrics::is_deleted(t.seed, id, DELETED_ON_NIGHT_3);
    let m = Metric::Impressions;
    let base_of = |id: u64| Some(metrics::cumulative(t.seed, id, m, night(1)));
    let movers = expected_movers(t.seed, m, &all, |id| !deleted(id), night(2), base_of, 10);
    let id_of = |g: &Value| g["id"].as_str().unwrap().parse::<u64>().unwrap();
    // The two biggest movers: the first has no value at base, the second none at latest (as a
    // Tweet too old for the metric has none); counted as 0, the first would gain its whole count.
    let (x, y) = (id_of(&movers[0]), id_of(&movers[1]));
    let no_value = |db: &Path, id: u64| {
        let c = rusqlite::Connection::open(db).unwrap();
        let n = c
            .execute(
                "UPDATE outcomes SET impressions = NULL WHERE id = ?1 AND status = 'ok'",
                [id as i64],
            )
            .unwrap();
        assert_eq!(n, 1);
    };
    no_value(&t.dbs[1], x);
    no_value(&t.dbs[2], y);
    let hist = t.dir.join("history.db");
    add_all(
        &hist,
        &[
            (&t.dbs[0], night(0)),
            (&t.dbs[1], night(1)),
            (&t.dbs[2], night(2)),
        ],
    );
    let j = report(&hist, &t.dir.join("r"), 10, None);
    // Neither is listed (counted from 0, `x` would be new and on top), and the rest move up.
    let want = expected_movers(
        t.seed,
        m,
        &all,
        |id| !deleted(id) && id != x && id != y,
        night(2),
        base_of,
        10,
    );
    assert_eq!(j["metrics"]["impressions"], Value::Array(want));
    let listed: Vec<u64> = j["metrics"]["impressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert!(!listed.contains(&x) && !listed.contains(&y), "{listed:?}");
    // The grand totals are over the Tweets with a value.
    let csv = std::fs::read_to_string(t.dir.join("r/nights.csv")).unwrap();
    let tweets = |night_k: i64| -> u64 {
        let when = engagement_api::timefmt::rfc3339_z(night(night_k));
        csv.lines()
            .find(|l| l.starts_with(&format!("{when},totals,impressions,")))
            .and_then(|l| l.rsplit(',').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let ok3 = all.iter().filter(|&&id| !deleted(id)).count() as u64;
    assert_eq!((tweets(1), tweets(2)), (all.len() as u64 - 1, ok3 - 1));
}

/// Two nights of a grouped run (`docs/groups.md`): the history keeps each run's group labels, and
/// the movers of each group are the history's movers among that group's Tweets, by the same rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_history_keeps_the_labels_and_gives_movers_per_group() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ids = ids_from(NOW - DAY * 30, 30 * 24, 90, 5);
    // Every ID in `all`, and in `even` or `odd` by its place.
    let group_of = |k: usize| if k.is_multiple_of(2) { "even" } else { "odd" };
    let csv: String = std::iter::once("tweet_id,group\n".to_string())
        .chain(
            ids.iter()
                .enumerate()
                .map(|(k, id)| format!("{id},{}|all\n", group_of(k))),
        )
        .collect();
    let input = dir.join("grouped.csv");
    std::fs::write(&input, csv).unwrap();
    let hist = dir.join("history.db");
    for k in 0..2 {
        let s = engage_sim::start(
            SimConfig {
                seed: SEED,
                now: Some(night(k)),
                ..SimConfig::default()
            },
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .unwrap();
        let db = run_input(dir, &format!("g{k}"), Endpoint::Totals, &input, s).await;
        history::add(&hist, &db, AsOf::At(night(k))).unwrap();
    }
    let labels: Vec<(i64, String, i64)> = rusqlite::Connection::open(&hist)
        .unwrap()
        .prepare(
            "SELECT r.run, g.name, r.ids FROM run_groups r JOIN hgroups g ON g.gid = r.gid \
             ORDER BY r.run, g.name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let n = ids.len() as i64;
    let want: Vec<(i64, String, i64)> = [1, 2]
        .iter()
        .flat_map(|run| {
            [("all", n), ("even", (n + 1) / 2), ("odd", n / 2)]
                .map(|(g, size)| (*run, g.to_string(), size))
        })
        .collect();
    assert_eq!(labels, want, "each run's labels");

    let movers = report(&hist, &dir.join("report"), 1000, None);
    let groups = movers["groups"].as_object().expect("movers per group");
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["all", "even", "odd"]);
    let place: BTreeMap<u64, usize> = ids.iter().enumerate().map(|(k, id)| (*id, k)).collect();
    for (m, list) in movers["metrics"].as_object().unwrap() {
        let list = list.as_array().unwrap();
        assert!(!list.is_empty() || m != "impressions", "{m} moved");
        assert_eq!(
            &groups["all"]["metrics"][m],
            &Value::Array(list.clone()),
            "{m}"
        );
        for g in ["even", "odd"] {
            let theirs: Vec<Value> = list
                .iter()
                .filter(|x| {
                    let id: u64 = x["id"].as_str().unwrap().parse().unwrap();
                    group_of(place[&id]) == g
                })
                .cloned()
                .collect();
            assert_eq!(groups[g]["metrics"][m], Value::Array(theirs), "{g} {m}");
        }
    }
    let md = std::fs::read_to_string(dir.join("report/movers.md")).unwrap();
    assert!(md.contains("## Group even"), "{md}");
}

/// A history of version 1 (before groups) gets the group tables, empty, when opened.
#[test]
fn a_version_1_history_is_upgraded_with_empty_group_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let hist = tmp.path().join("history.db");
    drop(History::open(&hist, true).unwrap());
    rusqlite::Connection::open(&hist)
        .unwrap()
        .execute_batch(
            "DROP TABLE hgroups; DROP TABLE run_groups; DROP TABLE cur_groups; PRAGMA user_version = 1;",
        )
        .unwrap();
    drop(History::open(&hist, false).unwrap());
    let c = rusqlite::Connection::open(&hist).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, history::HISTORY_VERSION);
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('hgroups', 'run_groups', 'cur_groups')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 3);
}
