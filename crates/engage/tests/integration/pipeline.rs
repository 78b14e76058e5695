//! End-to-end tests of the pipeline against the simulator over real HTTP on 127.0.0.1:0.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use engage::apps::AppSpec;
use engage::fetch::RetryPolicy;
use engage::health::OutagePolicy;
use engage::ids::ReadOptions;
use engage::outcome::Status;
use engage::route::Routes;
use engage::run::{run, Progress, RunError, RunSpec};
use engage::store::Store;
use engage_sim::{metrics, SimConfig, SimHandle, DEMO};
use engagement_api::auth::{BearerToken, Credentials, UserCredentials};
use engagement_api::client::ClientConfig;
use engagement_api::{AuthKind, Endpoint, Metric};
use time::macros::datetime;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

pub(crate) const NOW: OffsetDateTime = datetime!(2026-11-20 12:00 UTC);
const TWEPOCH_MS: i128 = 1_288_834_974_657;

fn snowflake(created: OffsetDateTime, low: u64) -> u64 {
    let ms = (created.unix_timestamp_nanos() / 1_000_000 - TWEPOCH_MS) as u64;
    (ms << 22) | (low & ((1 << 22) - 1))
}

/// `n` distinct IDs created over the 120 days before NOW (so some are past the 90-day rule).
pub(crate) fn ids(n: usize, salt: u64) -> Vec<u64> {
    (0..n as u64)
        .map(|i| {
            let secs = (i * 7919 + salt * 104_729) % (120 * 24 * 3600);
            snowflake(NOW - time::Duration::seconds(secs as i64 + 60), i + salt)
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

pub(crate) fn demo_user() -> Credentials {
    Credentials::User(UserCredentials {
        consumer_key: DEMO.consumer_key.into(),
        consumer_secret: DEMO.consumer_secret.into(),
        access_token: DEMO.access_token.into(),
        access_token_secret: DEMO.access_token_secret.into(),
    })
}

pub(crate) async fn sim(config: SimConfig) -> SimHandle {
    engage_sim::start(
        SimConfig {
            now: Some(NOW),
            ..config
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("simulator starts")
}

pub(crate) struct Case {
    _dir: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) input: PathBuf,
}

pub(crate) fn case(lines: &[String]) -> Case {
    case_named("ids.txt", lines)
}

/// An input file of that name (the extension picks the format) in a fresh folder.
pub(crate) fn case_named(name: &str, lines: &[String]) -> Case {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let input = dir.join(name);
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    Case {
        _dir: d,
        dir,
        input,
    }
}

pub(crate) fn spec(c: &Case, url: &str, db: &str, credentials: Credentials) -> RunSpec {
    let endpoint = Endpoint::Totals;
    RunSpec {
        inputs: vec![c.input.to_string_lossy().into_owned()],
        read: ReadOptions::default(),
        db: c.dir.join(db),
        out: c.dir.join(format!("{db}.out")),
        endpoint,
        metrics: endpoint.allowed_metrics(credentials.kind()),
        routes: match credentials {
            Credentials::User(u) => Routes::single_user(endpoint, "demo", u),
            Credentials::Bearer(b) => Routes::bearer_only(endpoint, b),
        },
        default_account: None,
        default_group: None,
        group_from: None,
        min_impressions: None,
        top_n: 10,
        concurrency: Some(4),
        apps: AppSpec::single(None),
        client: ClientConfig {
            base_url: url.to_string(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            allow_insecure_http: false,
        },
        retry: RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        },
        // Probes a few times a second, so that a test's outage ends soon after its server is back.
        outage: OutagePolicy {
            probe_base: Duration::from_millis(50),
            probe_cap: Duration::from_millis(400),
            limit: Duration::from_secs(120),
            ..OutagePolicy::default()
        },
        period: None,
        period_spec: None,
        series: None,
        retry_failed: false,
        accept_rejects: false,
        shard: None,
    }
}

pub(crate) async fn go(spec: RunSpec) -> Result<engage::run::RunOutcome, RunError> {
    let rx = CancellationToken::new();
    run(spec, Arc::new(Progress::default()), rx).await
}

pub(crate) fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// A `top.json` without its `messages`: what two runs over the same IDs must agree on. Messages
/// record the answers as they came, and another batching or commit order hears other texts
/// ("2 Tweet ID(s) are unavailable" first instead of "5 …") and counts other responses.
pub(crate) fn results(p: &Path) -> serde_json::Value {
    let mut v = read_json(p);
    v.as_object_mut().unwrap().remove("messages");
    v
}

/// `ok + unavailable + forbidden + failed + pending == unique_ids` in a `top.json`.
fn assert_adds_up(top: &serde_json::Value) {
    let n = &top["counts"];
    let sum: u64 = ["ok", "unavailable", "forbidden", "failed", "pending"]
        .iter()
        .map(|k| {
            n[k].as_u64()
                .unwrap_or_else(|| panic!("no count {k} in {n}"))
        })
        .sum();
    assert_eq!(sum, n["unique_ids"].as_u64().unwrap(), "{n}");
}

/// Every status in the store, by ID.
fn statuses(db: &Path) -> BTreeMap<u64, Status> {
    let s = Store::open(db).unwrap();
    let mut out = BTreeMap::new();
    s.for_each_ok(&[], |id, _| {
        out.insert(id, Status::Ok);
    })
    .unwrap();
    s.for_each_not_ok(|id, st, _| {
        if st != Status::Pending {
            out.insert(id, st);
        }
    })
    .unwrap();
    out
}

mod outcomes {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_unique_id_gets_exactly_one_outcome_and_the_simulators_numbers() {
        let seed = 11;
        let config = SimConfig {
            seed,
            deleted: 0.02,
            protected: 0.01,
            ..SimConfig::default()
        };
        let (p_deleted, p_protected) = (config.deleted, config.protected);
        let s = sim(config).await;
        let unique = ids(3000, 1);
        let mut lines: Vec<String> = unique.iter().map(|i| i.to_string()).collect();
        lines.extend(unique[..40].iter().map(|i| format!("  {i}  "))); // duplicates
        lines.push("1.23457E+18".into());
        lines.push("".into());
        lines.push("junk".into());
        let c = case(&lines);
        let sp = spec(&c, &s.url(), "run.db", demo_user());
        let metrics_run = sp.metrics.clone();
        let out = go(sp).await.unwrap();
        assert!(!out.interrupted);

        let json = read_json(&c.dir.join("run.db.out/top.json"));
        let counts = &json["counts"];
        assert_eq!(counts["unique_ids"], 3000);
        assert_eq!(counts["duplicate_ids"], 40);
        assert_eq!(counts["rejected_lines"], 2);
        assert_eq!(counts["input_lines"], 3042);
        let sum: u64 = ["ok", "unavailable", "forbidden", "failed"]
            .iter()
            .map(|k| counts[k].as_u64().unwrap())
            .sum();
        assert_eq!(sum, 3000);
        assert_eq!(counts["failed"], 0);

        let st = statuses(&c.dir.join("run.db"));
        assert_eq!(st.keys().copied().collect::<Vec<_>>(), unique);
        for (&id, &status) in &st {
            let gone = metrics::is_deleted(seed, id, p_deleted)
                || metrics::is_protected(seed, id, p_protected);
            assert_eq!(status == Status::Unavailable, gone, "{id}: {status:?}");
        }

        // The report equals "sort everything the simulator says" for every metric.
        let store = Store::open(&c.dir.join("run.db")).unwrap();
        let mut stored = BTreeMap::new();
        store
            .for_each_ok(&metrics_run, |id, v| {
                stored.insert(id, v.to_vec());
            })
            .unwrap();
        for (k, m) in metrics_run.iter().enumerate() {
            let mut expect: Vec<(u64, u64)> = Vec::new();
            let mut total = 0u64;
            for &id in stored.keys() {
                let age = NOW - metrics::created_at(id);
                let supported = match m {
                    Metric::Impressions | Metric::Engagements => age <= time::Duration::days(90),
                    Metric::VideoViews => age <= time::Duration::days(1800),
                    _ => true,
                };
                let v = if supported {
                    metrics::cumulative(seed, id, *m, NOW)
                } else {
                    0
                };
                assert_eq!(stored[&id][k].unwrap_or(0), v, "{id} {m}");
                total += v;
                if v > 0 {
                    expect.push((id, v));
                }
            }
            expect.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            expect.truncate(10);
            let got: Vec<(u64, u64)> = json["top"][m.as_str()]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["tweet_id"].as_str().unwrap().parse().unwrap(),
                        e["value"].as_u64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, expect, "{m}");
            assert_eq!(json["totals"][m.as_str()].as_u64().unwrap(), total, "{m}");
        }
        let rejects = std::fs::read_to_string(c.dir.join("run.db.out/rejects.csv")).unwrap();
        assert!(rejects.contains("scientific notation"), "{rejects}");
        assert!(rejects.contains(",3041,1.23457E+18,"), "{rejects}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unowned_ids_end_forbidden_and_the_rest_is_resent() {
        let mut config = SimConfig::default();
        let mut second = config.accounts[0].clone();
        second.name = "other".into();
        second.access_token = "other-token".into();
        second.access_token_secret = "other-secret".into();
        config.accounts.push(second);
        let s = sim(config).await;
        let unique = ids(600, 2);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        go(spec(&c, &s.url(), "run.db", demo_user())).await.unwrap();
        for (id, status) in statuses(&c.dir.join("run.db")) {
            // Account 0 of 2 owns the even IDs.
            let want = if id % 2 == 0 {
                Status::Ok
            } else {
                Status::Forbidden
            };
            assert_eq!(status, want, "{id}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bearer_runs_ask_for_public_metrics_only() {
        let s = sim(SimConfig::default()).await;
        let unique = ids(300, 3);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        let sp = spec(
            &c,
            &s.url(),
            "run.db",
            Credentials::Bearer(BearerToken(DEMO.bearer_token.into())),
        );
        assert_eq!(
            sp.metrics,
            Endpoint::Totals.allowed_metrics(AuthKind::Bearer)
        );
        go(sp).await.unwrap();
        let json = read_json(&c.dir.join("run.db.out/top.json"));
        assert_eq!(json["counts"]["ok"], 300);
        let keys: Vec<&String> = json["top"].as_object().unwrap().keys().collect();
        assert!(!keys.iter().any(|k| *k == "impressions"), "{keys:?}");
        assert_eq!(keys.len(), 5);
    }
}

mod retries {
    use super::*;
    use engage_sim::FaultConfig;

    /// The fault soak: 10% 5xx, 5% 429, 2% hangs, 1% malformed, 1% resets, 1% non-gzip bodies, plus
    /// deleted and protected Tweets. Every unique ID ends with exactly one outcome, every ok number
    /// equals a fault-free run's, and `failed` appears only where retries ran out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fault_soak_loses_nothing_and_changes_no_number() {
        let faults = FaultConfig {
            fail_5xx: 0.10,
            fail_429: 0.05,
            hang: 0.02,
            malformed: 0.01,
            reset: 0.01,
            no_gzip: 0.01,
            ..FaultConfig::default()
        };
        let base = SimConfig {
            seed: 21,
            deleted: 0.01,
            protected: 0.002,
            ..SimConfig::default()
        };
        let faulty = sim(SimConfig {
            faults,
            ..base.clone()
        })
        .await;
        let clean = sim(base).await;
        let unique = ids(40_000, 4);
        let mut lines: Vec<String> = unique.iter().map(|i| i.to_string()).collect();
        lines.extend(unique[..500].iter().map(|i| i.to_string()));
        let c = case(&lines);

        let mut sp = spec(&c, &faulty.url(), "faulty.db", demo_user());
        sp.retry.max_attempts = 40;
        sp.client.request_timeout = Duration::from_millis(400);
        sp.concurrency = Some(8);
        let out = go(sp).await.unwrap();
        let injected = out.retries + out.rate_limited;
        assert!(
            out.retries >= 10 && out.rate_limited >= 3,
            "faults injected: {out:?}"
        );
        go(spec(&c, &clean.url(), "clean.db", demo_user()))
            .await
            .unwrap();
        let a = results(&c.dir.join("faulty.db.out/top.json"));
        let b = results(&c.dir.join("clean.db.out/top.json"));
        assert_eq!(a, b, "the same report as a fault-free run");
        assert_eq!(a["counts"]["failed"], 0);
        let st = statuses(&c.dir.join("faulty.db"));
        assert_eq!(
            st.keys().copied().collect::<Vec<_>>(),
            unique,
            "exactly one outcome per unique ID"
        );
        // Every ok ID's numbers equal the fault-free run's.
        let metrics_run = Endpoint::Totals.allowed_metrics(AuthKind::User);
        let rows = |db: &str| {
            let mut m = BTreeMap::new();
            Store::open(&c.dir.join(db))
                .unwrap()
                .for_each_ok(&metrics_run, |id, v| {
                    m.insert(id, v.to_vec());
                })
                .unwrap();
            m
        };
        assert_eq!(rows("faulty.db"), rows("clean.db"));
        eprintln!(
            "fault soak: {} requests, {injected} faults answered (retries + 429s), {} unique IDs",
            out.requests,
            unique.len()
        );

        // With few attempts, some batches run out: only those IDs are failed, each with its last error.
        let mut sp = spec(&c, &faulty.url(), "short.db", demo_user());
        sp.retry.max_attempts = 2;
        sp.client.request_timeout = Duration::from_millis(400);
        let out = go(sp).await.unwrap();
        let st = statuses(&c.dir.join("short.db"));
        assert_eq!(st.len(), unique.len());
        let failed = st.values().filter(|s| **s == Status::Failed).count() as u64;
        assert_eq!(failed, out.summary.status.failed);
        assert!(failed > 0 && failed < unique.len() as u64, "{failed}");
        let outcomes = std::fs::read_to_string(c.dir.join("short.db.out/outcomes.csv")).unwrap();
        // The note may be quoted (an unreadable body's first line can hold quotes).
        for line in outcomes.lines().filter(|l| l.contains(",failed,")) {
            let note = line.split_once(",failed,").map_or("", |(_, n)| n);
            assert!(
                note.trim_start_matches('"')
                    .starts_with("failed after 2 attempts: "),
                "{line}"
            );
        }
        let short = rows("short.db");
        let clean_rows = rows("clean.db");
        for (id, v) in &short {
            assert_eq!(Some(v), clean_rows.get(id), "{id}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exhausted_retries_end_failed_with_the_last_error() {
        let faults = FaultConfig {
            fail_5xx: 1.0,
            ..FaultConfig::default()
        };
        let s = sim(SimConfig {
            faults,
            ..SimConfig::default()
        })
        .await;
        let unique = ids(300, 5);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        let mut sp = spec(&c, &s.url(), "run.db", demo_user());
        sp.retry.max_attempts = 3;
        let out = go(sp).await.unwrap();
        assert_eq!(out.requests, 2 * 3, "two batches, three attempts each");
        assert_eq!(out.summary.status.failed, 300);
        let outcomes = std::fs::read_to_string(c.dir.join("run.db.out/outcomes.csv")).unwrap();
        // --retry-failed against a healed server: every failed ID is fetched once more and ends ok.
        let healed = sim(SimConfig::default()).await;
        let mut again = spec(&c, &healed.url(), "run.db", demo_user());
        again.retry_failed = true;
        let out2 = go(again).await.unwrap();
        assert_eq!((out2.requests, out2.summary.status.ok), (2, 300));
        assert_eq!(
            outcomes
                .lines()
                .filter(|l| l.contains(",failed,failed after 3 attempts: server error (HTTP 50"))
                .count(),
            300,
            "{outcomes}"
        );
    }

    /// A server that answers every request with a 403 whose body is an HTML page (a proxy's
    /// refusal): it reads each request whole, so closing after the answer is a clean end.
    async fn html_403_server() -> (String, Arc<std::sync::atomic::AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let body = "<html><head><title>403 Forbidden</title></head>\n<body>denied</body></html>";
                    let answer = format!(
                        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(answer.as_bytes()).await;
                });
            }
        });
        (url, hits)
    }

    /// A 403 that is not JSON names no ID: every ID of the request ends `forbidden` with the page's
    /// first line, at once (one request per batch, no retry), and nothing ends `failed`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_non_json_403_ends_the_requests_ids_forbidden_not_failed() {
        let (url, hits) = html_403_server().await;
        let unique = ids(300, 7);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        let mut sp = spec(&c, &url, "run.db", demo_user());
        sp.retry.max_attempts = 3;
        let out = go(sp).await.unwrap();
        let st = &out.summary.status;
        assert_eq!((st.forbidden, st.failed), (300, 0), "{st:?}");
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::Relaxed),
            2,
            "two batches, no retry"
        );
        let outcomes = std::fs::read_to_string(c.dir.join("run.db.out/outcomes.csv")).unwrap();
        assert_eq!(
            outcomes
                .lines()
                .filter(|l| l.contains(
                    ",forbidden,forbidden (HTTP 403): <html><head><title>403 Forbidden</title></head>"
                ))
                .count(),
            300,
            "{outcomes}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_401_aborts_the_run_and_leaves_ids_pending() {
        let s = sim(SimConfig::default()).await;
        let unique = ids(300, 6);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        let err = go(spec(
            &c,
            &s.url(),
            "run.db",
            Credentials::Bearer(BearerToken("wrong-token".into())),
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, RunError::Abort(_)), "{err}");
        assert!(!err.to_string().contains("wrong-token"), "{err}");
        assert!(statuses(&c.dir.join("run.db")).is_empty(), "nothing final");
        let store = Store::open(&c.dir.join("run.db")).unwrap();
        assert_eq!(store.status_counts().unwrap().pending, 300);
    }
}

mod resume {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupted_run_resumes_to_the_same_report_without_refetching() {
        let s = sim(SimConfig {
            deleted: 0.01,
            ..SimConfig::default()
        })
        .await;
        let unique = ids(5000, 7);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        go(spec(&c, &s.url(), "whole.db", demo_user()))
            .await
            .unwrap();

        // First life: stop once a few batches are committed.
        let rx = CancellationToken::new();
        let tx = rx.clone();
        let progress = Arc::new(Progress::default());
        let p2 = progress.clone();
        let stopper = tokio::spawn(async move {
            while p2.resolved.load(std::sync::atomic::Ordering::Relaxed) < 1000 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tx.cancel();
        });
        let mut sp = spec(&c, &s.url(), "parts.db", demo_user());
        sp.concurrency = Some(1);
        let first = run(sp, progress, rx).await.unwrap();
        stopper.await.unwrap();
        assert!(first.interrupted);
        // Its report says so, with counts that add up.
        let partial = read_json(&c.dir.join("parts.db.out/top.json"));
        assert_eq!(partial["complete"], false, "{partial}");
        assert_eq!(partial["counts"]["pending"], first.summary.status.pending);
        assert_adds_up(&partial);
        let done_first = first.summary.status.unique() - first.summary.status.pending;
        assert!(
            done_first >= 1000 && first.summary.status.pending > 0,
            "{:?}",
            first.summary.status
        );

        // The watermark the second life starts from: everything below it final, and it has moved.
        {
            let db = rusqlite::Connection::open(c.dir.join("parts.db")).unwrap();
            let w: i64 = db
                .query_row("SELECT value FROM meta WHERE key = 'done_below'", [], |r| {
                    r.get::<_, String>(0)
                })
                .map(|v| v.parse().unwrap())
                .unwrap();
            let below = |t: &str| -> i64 {
                db.query_row(
                    &format!("SELECT count(*) FROM {t} WHERE id < ?1"),
                    [w],
                    |r| r.get(0),
                )
                .unwrap()
            };
            assert!(below("ids") >= 1000, "watermark {w} has moved");
            assert_eq!(
                below("ids"),
                below("outcomes"),
                "every ID below {w} is final"
            );
        }
        let second = go(spec(&c, &s.url(), "parts.db", demo_user()))
            .await
            .unwrap();
        assert!(!second.interrupted);
        let pending = first.summary.status.pending;
        assert_eq!(
            second.requests,
            pending.div_ceil(250),
            "only pending IDs are fetched"
        );
        let whole = results(&c.dir.join("whole.db.out/top.json"));
        assert_eq!(whole, results(&c.dir.join("parts.db.out/top.json")));
        assert_eq!(whole["complete"], true, "{whole}");
        assert_eq!(whole["counts"]["pending"], 0, "{whole}");
        assert_adds_up(&whole);
    }

    /// A life that finds the ingest finished by an earlier one shows the recorded line count, not 0.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_life_after_the_ingest_shows_the_lines_read() {
        let s = sim(SimConfig::default()).await;
        let unique = ids(300, 9);
        let mut lines: Vec<String> = unique.iter().map(|i| i.to_string()).collect();
        lines.push("junk".into());
        let c = case(&lines);
        go(spec(&c, &s.url(), "run.db", demo_user())).await.unwrap();
        let progress = Arc::new(Progress::default());
        let rx = CancellationToken::new();
        run(
            spec(&c, &s.url(), "run.db", demo_user()),
            progress.clone(),
            rx,
        )
        .await
        .unwrap();
        assert_eq!(
            progress.ingested.load(std::sync::atomic::Ordering::Relaxed),
            301
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resume_with_other_inputs_or_settings_is_refused_with_what_differs() {
        let s = sim(SimConfig::default()).await;
        let unique = ids(300, 8);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        go(spec(&c, &s.url(), "run.db", demo_user())).await.unwrap();
        let mut other = spec(&c, &s.url(), "run.db", demo_user());
        other.top_n = 5;
        let err = go(other).await.unwrap_err().to_string();
        assert!(err.contains("top N: stored 10, now 5"), "{err}");
        std::fs::write(&c.input, "1790000000000000001\n").unwrap();
        let err = go(spec(&c, &s.url(), "run.db", demo_user()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("inputs: stored"), "{err}");
    }
}

mod time_series {
    use super::*;
    use engage::series::Granularity;
    use engagement_api::Window;
    use proptest::prelude::*;

    fn historical(c: &Case, url: &str, db: &str, period: Window, series: Granularity) -> RunSpec {
        let mut sp = spec(c, url, db, demo_user());
        sp.endpoint = Endpoint::Historical;
        sp.metrics = Endpoint::Historical.allowed_metrics(AuthKind::User);
        sp.period = Some(period);
        sp.period_spec = Some(engage::run::format_period(&period));
        sp.series = Some(series);
        sp
    }

    /// Checks every stored number against the simulator's own function over the whole period.
    fn check_against_simulator(
        db: &Path,
        seed: u64,
        period: Window,
        metrics_run: &[Metric],
    ) -> usize {
        let store = Store::open(db).unwrap();
        let mut per_metric_total = vec![0u64; metrics_run.len()];
        let mut n = 0;
        store
            .for_each_ok(metrics_run, |id, values| {
                n += 1;
                for (k, m) in metrics_run.iter().enumerate() {
                    let want = metrics::count(seed, id, *m, period.start, period.end.min(NOW));
                    assert_eq!(values[k].unwrap_or(0), want, "{id} {m} over {period:?}");
                    per_metric_total[k] += want;
                }
            })
            .unwrap();
        // The series rows of each Tweet add up to its total, and the hourly sums to the grand total.
        let mut series_sum = vec![0u64; metrics_run.len()];
        store
            .for_each_series(|_, m, bucket, v| {
                assert!(
                    bucket >= period.start.unix_timestamp() - 86_400
                        && bucket < period.end.unix_timestamp()
                );
                let k = metrics_run.iter().position(|x| x.as_str() == m).unwrap();
                series_sum[k] += v;
            })
            .unwrap();
        assert_eq!(series_sum, per_metric_total);
        let mut hourly_sum = vec![0u64; metrics_run.len()];
        for (m, hour, v) in store.hourly_totals().unwrap() {
            assert!(hour >= period.start.unix_timestamp() && hour < period.end.unix_timestamp());
            let k = metrics_run.iter().position(|x| x.as_str() == m).unwrap();
            hourly_sum[k] += v;
        }
        assert_eq!(hourly_sum, per_metric_total);
        n
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4, .. ProptestConfig::default() })]
        /// Merged windows equal the simulator's function over the whole period: no hour lost at a
        /// window boundary, none counted twice.
        #[test]
        fn split_windows_merge_exactly(start_h in 24i64 * 30..24 * 100, len_h in 24i64 * 29..24 * 70, minute in 0i64..60, hourly in any::<bool>()) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let seed = 5;
                let s = sim(SimConfig { seed, deleted: 0.05, ..SimConfig::default() }).await;
                let start = NOW - time::Duration::hours(start_h) + time::Duration::minutes(minute);
                let end = (start + time::Duration::hours(len_h)).min(NOW);
                let period = engagement_api::window::resolve_period(Some(start), Some(end), None, NOW).unwrap();
                let unique = ids(40, 9);
                let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
                let g = if hourly { Granularity::Hour } else { Granularity::Day };
                let sp = historical(&c, &s.url(), "run.db", period, g);
                let metrics_run = sp.metrics.clone();
                let out = go(sp).await.unwrap();
                let windows = engagement_api::window::split(period.start, period.end).len() as u64;
                assert!(windows >= 2, "{period:?}");
                assert_eq!(out.requests, 2 * windows, "two batches of at most 25, each through every window");
                let n = check_against_simulator(&c.dir.join("run.db"), seed, period, &metrics_run);
                assert_eq!(n as u64, out.summary.status.ok);
                assert_eq!(out.summary.status.unique(), 40);
            });
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resume_in_the_middle_of_a_multi_window_run_refetches_no_finished_window() {
        let seed = 6;
        let s = sim(SimConfig {
            seed,
            ..SimConfig::default()
        })
        .await;
        let period =
            engagement_api::window::resolve_period(None, Some(NOW), Some(80), NOW).unwrap();
        let unique = ids(200, 10);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        let whole = go(historical(
            &c,
            &s.url(),
            "whole.db",
            period,
            Granularity::Day,
        ))
        .await
        .unwrap();
        let windows = engagement_api::window::split(period.start, period.end).len() as u64;
        assert_eq!(whole.requests, 8 * windows);

        // First life: stop after 11 responses, mid-way through some batch's windows.
        let rx = CancellationToken::new();
        let tx = rx.clone();
        let progress = Arc::new(Progress::default());
        let p2 = progress.clone();
        let stopper = tokio::spawn(async move {
            while p2.fetch.requests.load(std::sync::atomic::Ordering::Relaxed) < 11 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tx.cancel();
        });
        let mut sp = historical(&c, &s.url(), "parts.db", period, Granularity::Day);
        sp.concurrency = Some(1);
        let first = run(sp, progress, rx).await.unwrap();
        stopper.await.unwrap();
        assert!(first.interrupted);
        let second = go(historical(
            &c,
            &s.url(),
            "parts.db",
            period,
            Granularity::Day,
        ))
        .await
        .unwrap();
        assert_eq!(
            first.requests + second.requests,
            whole.requests,
            "every (batch, window) fetched exactly once across the two lives"
        );
        assert_eq!(
            results(&c.dir.join("whole.db.out/top.json")),
            results(&c.dir.join("parts.db.out/top.json"))
        );
        check_against_simulator(
            &c.dir.join("parts.db"),
            seed,
            period,
            &Endpoint::Historical.allowed_metrics(AuthKind::User),
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_28hr_run_keeps_hourly_series() {
        let seed = 8;
        let s = sim(SimConfig {
            seed,
            ..SimConfig::default()
        })
        .await;
        // Tweets from the last three days, so the 28-hour window holds engagement.
        let unique: Vec<u64> = (0..30u64)
            .map(|i| snowflake(NOW - time::Duration::hours(1 + i as i64 * 2), i))
            .collect();
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        let mut sp = spec(&c, &s.url(), "run.db", demo_user());
        sp.endpoint = Endpoint::Hr28;
        sp.metrics = Endpoint::Hr28.allowed_metrics(AuthKind::User);
        sp.series = Some(Granularity::Hour);
        let metrics_run = sp.metrics.clone();
        go(sp).await.unwrap();
        let w = engagement_api::window::window_28hr(NOW);
        let clamped = Window {
            start: w.start,
            end: w.end.min(NOW),
        };
        let n = check_against_simulator(&c.dir.join("run.db"), seed, clamped, &metrics_run);
        assert_eq!(n, 30);
    }
}

mod accounts {
    use super::*;

    fn account(name: &str) -> UserCredentials {
        UserCredentials {
            consumer_key: DEMO.consumer_key.into(),
            consumer_secret: DEMO.consumer_secret.into(),
            access_token: format!("{name}-token"),
            access_token_secret: format!("{name}-secret"),
        }
    }

    /// A simulator with two accounts, `a` owning the even IDs and `b` the odd ones.
    fn two_accounts() -> SimConfig {
        SimConfig {
            accounts: ["a", "b"]
                .iter()
                .map(|n| engage_sim::Account {
                    name: n.to_string(),
                    access_token: format!("{n}-token"),
                    access_token_secret: format!("{n}-secret"),
                    app: None,
                })
                .collect(),
            ..SimConfig::default()
        }
    }

    fn routes(endpoint: Endpoint, bearer: bool) -> Routes {
        Routes {
            endpoint,
            accounts: ["a", "b"]
                .iter()
                .map(|n| (n.to_string(), Credentials::User(account(n))))
                .collect(),
            account_apps: Vec::new(),
            bearers: bearer
                .then(|| {
                    (
                        0,
                        Credentials::Bearer(BearerToken(DEMO.bearer_token.into())),
                    )
                })
                .into_iter()
                .collect(),
            bearer_only: false,
        }
    }

    fn via(db: &Path) -> BTreeMap<u64, (String, Option<i64>)> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, status, via, impressions FROM tweets")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                (
                    format!(
                        "{}:{}",
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?.unwrap_or_default()
                    ),
                    r.get(3)?,
                ),
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_ids_use_their_owner_and_the_rest_falls_back_to_the_bearer_token() {
        let s = sim(two_accounts()).await;
        let unique = ids(900, 11);
        // Rows 0..300 name their true owner, 300..600 name the wrong one, 600.. name nobody.
        let mut lines = vec!["tweet_id,account".to_string()];
        for (i, id) in unique.iter().enumerate() {
            let owner = if id % 2 == 0 { "a" } else { "b" };
            let wrong = if id % 2 == 0 { "b" } else { "a" };
            lines.push(match i {
                0..300 => format!("{id},{owner}"),
                300..600 => format!("{id},{wrong}"),
                _ => format!("{id},"),
            });
        }
        let c = case_named("ids.csv", &lines);
        let mut sp = spec(&c, &s.url(), "run.db", demo_user());
        sp.routes = routes(Endpoint::Totals, true);
        let out = go(sp).await.unwrap();
        assert_eq!(out.summary.status.ok, 900, "{:?}", out.summary.status);
        let rows = via(&c.dir.join("run.db"));
        for (i, id) in unique.iter().enumerate() {
            let owner = if id % 2 == 0 { "a" } else { "b" };
            let (how, impressions) = &rows[id];
            if i < 300 {
                assert_eq!(how, &format!("ok:{owner}"), "{id}");
                let young = NOW - metrics::created_at(*id) <= time::Duration::days(90);
                assert_eq!(
                    impressions.is_some(),
                    young,
                    "owned: impressions fetched when under 90 days"
                );
            } else {
                assert_eq!(how, "ok:bearer", "{id} (row {i})");
                assert!(impressions.is_none(), "bearer: public metrics only");
            }
        }
        let store = Store::open(&c.dir.join("run.db")).unwrap();
        assert_eq!(
            store.accounts_used().unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        let md = std::fs::read_to_string(c.dir.join("run.db.out/top.md")).unwrap();
        assert!(md.contains("2 owner accounts used (a, b)"), "{md}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn time_series_ids_without_an_owner_end_forbidden_and_without_bearer_a_403_is_final() {
        let s = sim(two_accounts()).await;
        let unique = ids(100, 12);
        let mut lines = vec!["tweet_id,account".to_string()];
        for (i, id) in unique.iter().enumerate() {
            // Half name account a (right for even IDs, wrong for odd), half nobody.
            lines.push(if i < 50 {
                format!("{id},a")
            } else {
                format!("{id},")
            });
        }
        let c = case_named("ids.csv", &lines);
        let mut sp = spec(&c, &s.url(), "run.db", demo_user());
        sp.endpoint = Endpoint::Historical;
        sp.metrics = Endpoint::Historical.allowed_metrics(AuthKind::User);
        let period =
            engagement_api::window::resolve_period(None, Some(NOW), Some(10), NOW).unwrap();
        sp.period = Some(period);
        sp.series = Some(engage::series::Granularity::Day);
        sp.routes = routes(Endpoint::Historical, true);
        go(sp).await.unwrap();
        let rows = via(&c.dir.join("run.db"));
        for (i, id) in unique.iter().enumerate() {
            let want = match (i < 50, id % 2 == 0) {
                (true, true) => "ok:a",
                (true, false) => "forbidden:",
                (false, _) => "forbidden:",
            };
            assert_eq!(rows[id].0, want, "{id} (row {i})");
        }
        let out = std::fs::read_to_string(c.dir.join("run.db.out/outcomes.csv")).unwrap();
        assert!(out.contains("no configured account owns it"), "{out}");
    }
}

mod outage {
    use super::*;
    use std::sync::atomic::Ordering;

    /// Stops `s` once the run behind `progress` has resolved `after` IDs; after `down`, starts the
    /// same simulator again on the same port (`None`: leaves it stopped).
    fn outage(
        s: SimHandle,
        config: SimConfig,
        progress: Arc<Progress>,
        after: u64,
        down: Option<Duration>,
    ) -> tokio::task::JoinHandle<Option<SimHandle>> {
        tokio::spawn(async move {
            while progress.resolved.load(Ordering::Relaxed) < after {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let addr = s.addr;
            s.shutdown().await;
            let down = down?;
            tokio::time::sleep(down).await;
            Some(restart(config, addr).await)
        })
    }

    async fn restart(config: SimConfig, addr: SocketAddr) -> SimHandle {
        engage_sim::start(
            SimConfig {
                now: Some(NOW),
                ..config
            },
            addr,
        )
        .await
        .expect("the simulator starts again on its port")
    }

    /// The simulator stopped for 5 s in the middle of a run and started again on the same port: no ID
    /// ends `failed`, and the report is the one a run without the outage writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mid_run_outage_fails_nothing_and_changes_no_number() {
        let config = SimConfig {
            seed: 31,
            deleted: 0.01,
            ..SimConfig::default()
        };
        let s = sim(config.clone()).await;
        let unique = ids(30_000, 12);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        go(spec(&c, &s.url(), "clean.db", demo_user()))
            .await
            .unwrap();

        let progress = Arc::new(Progress::default());
        let mut sp = spec(&c, &s.url(), "outage.db", demo_user());
        // 120 batches at 40 a second: the 5 s outage, from 5,000 IDs resolved on, falls inside.
        sp.apps = AppSpec::single(Some((40, Duration::from_secs(1))));
        let down = outage(
            s,
            config,
            progress.clone(),
            5_000,
            Some(Duration::from_secs(5)),
        );
        let rx = CancellationToken::new();
        let out = run(sp, progress.clone(), rx).await.unwrap();
        let _back = down.await.unwrap();
        assert!(!out.interrupted, "{:?}", out.summary.status);
        assert_eq!(out.summary.status.failed, 0, "{:?}", out.summary.status);
        assert!(progress.health.outages() >= 1, "the outage was seen");
        assert!(progress.health.outage().is_none(), "and is over");
        assert_eq!(
            results(&c.dir.join("outage.db.out/top.json")),
            results(&c.dir.join("clean.db.out/top.json")),
            "the same report as a run without the outage"
        );
    }

    /// The simulator stopped for longer than the outage limit: the run stops as interrupted with
    /// nothing `failed`, and the resume (with the simulator back) completes to the same report.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_longer_than_the_limit_interrupts_and_the_resume_completes() {
        let config = SimConfig {
            seed: 32,
            deleted: 0.01,
            ..SimConfig::default()
        };
        let s = sim(config.clone()).await;
        let (url, addr) = (s.url(), s.addr);
        let unique = ids(20_000, 13);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        go(spec(&c, &url, "clean.db", demo_user())).await.unwrap();

        let progress = Arc::new(Progress::default());
        let mut sp = spec(&c, &url, "outage.db", demo_user());
        sp.apps = AppSpec::single(Some((40, Duration::from_secs(1))));
        sp.outage.limit = Duration::from_secs(2);
        let down = outage(s, config.clone(), progress.clone(), 2_000, None);
        let rx = CancellationToken::new();
        let out = run(sp, progress.clone(), rx).await.unwrap();
        assert!(down.await.unwrap().is_none());
        let st = &out.summary.status;
        assert!(out.interrupted, "{st:?}");
        assert_eq!(st.failed, 0, "{st:?}");
        assert!(st.ok + st.unavailable >= 2_000 && st.pending > 0, "{st:?}");
        assert!(
            !statuses(&c.dir.join("outage.db"))
                .values()
                .any(|s| *s == Status::Failed),
            "nothing failed in the store"
        );
        let why = progress
            .health
            .gave_up()
            .expect("the run says why it stopped");
        assert!(why.contains(&url), "{why}");
        assert!(why.contains("connection refused"), "{why}");
        assert!(
            !why.contains("check the base URL"),
            "it answered before: {why}"
        );

        let _back = restart(config, addr).await;
        let again = go(spec(&c, &url, "outage.db", demo_user())).await.unwrap();
        assert!(!again.interrupted);
        assert_eq!(again.summary.status.failed, 0);
        assert_eq!(
            results(&c.dir.join("outage.db.out/top.json")),
            results(&c.dir.join("clean.db.out/top.json"))
        );
    }
}

mod apps {
    use super::*;
    use engage_sim::App;

    fn sim_app(name: &str, rate_limit: Option<u32>) -> App {
        App {
            name: name.into(),
            consumer_key: format!("{name}-key"),
            consumer_secret: format!("{name}-secret"),
            bearer_tokens: vec![format!("{name}-bearer")],
            rate_limit,
        }
    }

    fn bearer(name: &str) -> Credentials {
        Credentials::Bearer(BearerToken(format!("{name}-bearer")))
    }

    fn app(name: &str) -> AppSpec {
        AppSpec {
            name: name.into(),
            rate: None,
        }
    }

    /// Three apps with budgets of 20, 30 and 50 requests a second, a bearer run with the adaptive
    /// limit: every ID is served, each app's share follows its budget, no app is sent more than
    /// its budget allows, and each app's figures are kept in the store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_apps_of_different_rates_share_a_bearer_run_by_their_budgets() {
        let s = sim(SimConfig {
            rate_limit: Some(20),
            window_secs: 1,
            apps: vec![sim_app("b", Some(30)), sim_app("c", Some(50))],
            ..SimConfig::default()
        })
        .await;
        // 300 requests: three seconds of the three budgets together.
        let unique = ids(75_000, 21);
        let c = case(&unique.iter().map(|i| i.to_string()).collect::<Vec<_>>());
        let mut sp = spec(
            &c,
            &s.url(),
            "run.db",
            Credentials::Bearer(BearerToken(DEMO.bearer_token.into())),
        );
        sp.concurrency = None;
        sp.routes.bearers = vec![
            (
                0,
                Credentials::Bearer(BearerToken(DEMO.bearer_token.into())),
            ),
            (1, bearer("b")),
            (2, bearer("c")),
        ];
        sp.apps = vec![app("a"), app("b"), app("c")];
        let out = go(sp).await.unwrap();
        assert_eq!(out.summary.status.ok, 75_000, "{:?}", out.summary.status);
        let figures = &out.apps;
        let names: Vec<&str> = figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            figures.iter().map(|f| f.requests).sum::<u64>(),
            out.requests
        );
        for (f, limit) in figures.iter().zip([20u64, 30, 50]) {
            // Never more than the budget allows in the one-second windows it touched (the
            // headers' limit times the windows the answers came from).
            let capacity = f.capacity.expect("the headers said the budget");
            assert_eq!(capacity % limit as f64, 0.0, "{f:?}");
            assert!(f.requests as f64 <= capacity, "{f:?}");
            assert!(
                capacity <= (limit * (f.active_secs.ceil() as u64 + 1)) as f64,
                "{f:?}"
            );
        }
        let (a, b, c3) = (&figures[0], &figures[1], &figures[2]);
        assert!(
            a.requests <= b.requests && b.requests <= c3.requests && a.requests < c3.requests,
            "{figures:?}"
        );
        let limited: u64 = figures.iter().map(|f| f.rate_limited).sum();
        assert!(limited * 100 <= out.requests, "{figures:?}");
        let store = Store::open(&c.dir.join("run.db")).unwrap();
        let kept: Vec<(String, u64, u64)> = engage::apps::load(&store)
            .unwrap()
            .into_iter()
            .map(|f| (f.name, f.requests, f.rate_limited))
            .collect();
        let said: Vec<(String, u64, u64)> = figures
            .iter()
            .map(|f| (f.name.clone(), f.requests, f.rate_limited))
            .collect();
        assert_eq!(kept, said);
    }

    /// Two owners whose tokens belong to two apps: each owner's batches are signed with its own
    /// app's keys (the simulator refuses a token signed with another app's), and each app's
    /// requests are counted apart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_owner_is_fetched_through_its_apps_keys() {
        let account = |name: &str, app: Option<&str>| engage_sim::Account {
            name: name.into(),
            access_token: format!("{name}-token"),
            access_token_secret: format!("{name}-token-secret"),
            app: app.map(String::from),
        };
        let s = sim(SimConfig {
            apps: vec![sim_app("b", None)],
            accounts: vec![account("one", None), account("two", Some("b"))],
            ..SimConfig::default()
        })
        .await;
        let unique = ids(2_000, 22);
        let mut lines = vec!["tweet_id,account".to_string()];
        for id in &unique {
            lines.push(format!("{id},{}", if id % 2 == 0 { "one" } else { "two" }));
        }
        let c = case_named("ids.csv", &lines);
        let mut sp = spec(&c, &s.url(), "run.db", demo_user());
        let user = |name: &str, key: &str, secret: &str| {
            (
                name.to_string(),
                Credentials::User(UserCredentials {
                    consumer_key: key.into(),
                    consumer_secret: secret.into(),
                    access_token: format!("{name}-token"),
                    access_token_secret: format!("{name}-token-secret"),
                }),
            )
        };
        sp.routes = Routes {
            endpoint: Endpoint::Totals,
            accounts: vec![
                user("one", DEMO.consumer_key, DEMO.consumer_secret),
                user("two", "b-key", "b-secret"),
            ],
            account_apps: vec![0, 1],
            bearers: Vec::new(),
            bearer_only: false,
        };
        sp.apps = vec![app("default"), app("b")];
        let out = go(sp).await.unwrap();
        assert_eq!(out.summary.status.ok, 2_000, "{:?}", out.summary.status);
        let requests: Vec<(String, u64)> = out
            .apps
            .iter()
            .map(|f| (f.name.clone(), f.requests))
            .collect();
        // 1,000 IDs each: four requests of 250.
        assert_eq!(requests, [("default".to_string(), 4), ("b".to_string(), 4)]);
    }
}
