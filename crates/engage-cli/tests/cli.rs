//! The `engage` binary, driven as a user drives it: a simulator started with `engage sim` in its own
//! process, `engage run` / `status` / `report` as child processes, exit codes, signals, `kill -9`,
//! and the files left behind.
//!
//! Every simulator is pinned (`--now`, `--seed`), so the metrics, and with them the reports, are
//! deterministic: two runs over the same IDs must write byte-identical `top.json` files whatever
//! faults, signals or kills happened on the way.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use engage::exit;
use engage_sim::DEMO;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};

/// The simulator's pinned clock.
const NOW: &str = "2026-11-20T12:00:00Z";
/// Snowflake epoch (ms since the Unix epoch).
const TWEPOCH_MS: u64 = 1_288_834_974_657;

/// Lines that are not Tweet IDs; each must end up in `rejects.csv` exactly once.
const BAD_LINES: &[&str] = &[
    "1.23457E+18",
    "not-an-id",
    "-1790000000000000001",
    "1790000000000000001.0",
    "99999999999999999999999",
];

/// The reports documented as deterministic (README "Outputs"): the same store writes the same bytes.
/// (`report.html` carries the time it was generated.)
const REPORTS: &[&str] = &[
    "top.json",
    "top.md",
    "top.csv",
    "tweets.csv",
    "outcomes.csv",
    "rejects.csv",
];

/// An `engage` command with a clean environment: no `ENGAGE_*` variable and no `RUST_LOG` from the
/// caller leaks into the child.
fn engage() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_engage"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ENGAGE_") {
            c.env_remove(&k);
        }
    }
    c.env_remove("RUST_LOG");
    c
}

/// The simulator's built-in demo user credentials.
fn demo_credentials(c: &mut Command) -> &mut Command {
    c.env("ENGAGE_CONSUMER_KEY", DEMO.consumer_key)
        .env("ENGAGE_CONSUMER_SECRET", DEMO.consumer_secret)
        .env("ENGAGE_ACCESS_TOKEN", DEMO.access_token)
        .env("ENGAGE_ACCESS_TOKEN_SECRET", DEMO.access_token_secret)
}

/// `engage run` against `url` with the demo credentials and a short first backoff.
fn run_cmd(url: &str, input: &Path, db: &Path, out: &Path) -> Command {
    let mut c = engage();
    demo_credentials(&mut c);
    c.arg("run")
        .arg("--base-url")
        .arg(url)
        .arg("--input")
        .arg(input)
        .arg("--db")
        .arg(db)
        .arg("--out")
        .arg(out)
        .args(["--backoff-ms", "5"]);
    c
}

/// A simulator in its own process, killed on drop.
struct Sim {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    url: String,
}

impl Sim {
    /// `engage sim --addr 127.0.0.1:0 --now NOW --seed SEED EXTRA...`; waits for its first stdout line.
    fn start(seed: u64, extra: &[&str]) -> Sim {
        Sim::start_at(seed, NOW, extra)
    }

    /// The same with the simulator's clock at `now`.
    fn start_at(seed: u64, now: &str, extra: &[&str]) -> Sim {
        let mut child = engage()
            .args(["sim", "--addr", "127.0.0.1:0", "--now", now, "--seed"])
            .arg(seed.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("engage sim starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("reading the simulator's stdout");
        let url = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("engage sim {extra:?}: unexpected first line {line:?}")
            })
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Sim {
            child,
            _stdout: stdout,
            url,
        }
    }
}

impl Sim {
    /// How many requests reached the API's paths so far (the simulator's `/sim/requests`).
    fn received(&self) -> u64 {
        self.counted()["requests"]
            .as_u64()
            .expect("a request count")
    }

    /// How many Tweet IDs the simulator answered with a 200 so far (each request's distinct IDs).
    fn ids_answered(&self) -> u64 {
        self.counted()["ids"].as_u64().expect("an ID count")
    }

    /// The simulator's `/sim/requests` answer.
    fn counted(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr).expect("simulator reachable");
        write!(
            conn,
            "GET /sim/requests HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(body.trim())
            .unwrap_or_else(|e| panic!("unexpected answer {answer:?}: {e}"))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds since the Unix epoch of [`NOW`].
fn now_ms() -> u64 {
    let t = time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339)
        .expect("NOW parses");
    t.unix_timestamp() as u64 * 1000
}

/// `n` distinct snowflake IDs created in the 60 days before [`NOW`].
fn snowflakes(n: usize, rng: &mut StdRng) -> Vec<u64> {
    let now = now_ms();
    let span = 60 * 24 * 3600 * 1000;
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ms = now - rng.random_range(60_000..span);
        let id = ((ms - TWEPOCH_MS) << 22) | rng.random_range(0..1u64 << 22);
        if seen.insert(id) {
            out.push(id);
        }
    }
    out
}

/// An input file's lines and what the run must make of them.
struct Collection {
    lines: Vec<String>,
    unique: BTreeSet<u64>,
    duplicates: usize,
    /// (1-based line number, content) of every bad line.
    bad: Vec<(u64, String)>,
}

/// `unique` IDs, `duplicates` repeats of some of them and `bad` lines, shuffled.
fn collection(seed: u64, unique: usize, duplicates: usize, bad: &[&str]) -> Collection {
    let mut rng = StdRng::seed_from_u64(seed);
    let ids = snowflakes(unique, &mut rng);
    let mut lines: Vec<String> = ids.iter().map(u64::to_string).collect();
    for _ in 0..duplicates {
        lines.push(ids[rng.random_range(0..ids.len())].to_string());
    }
    lines.extend(bad.iter().map(|s| s.to_string()));
    lines.shuffle(&mut rng);
    let bad_set: HashSet<&str> = bad.iter().copied().collect();
    let bad = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| bad_set.contains(l.as_str()))
        .map(|(i, l)| (i as u64 + 1, l.clone()))
        .collect();
    Collection {
        lines,
        unique: ids.into_iter().collect(),
        duplicates,
        bad,
    }
}

impl Collection {
    fn write(&self, path: &Path) {
        std::fs::write(path, self.lines.join("\n") + "\n").expect("writing the input");
    }
}

fn code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| panic!("engage ended by a signal: {status:?}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs to the end; asserts the exit code, with stderr in the message when it differs.
fn expect_code(cmd: &mut Command, want: u8) -> Output {
    let out = cmd.output().expect("engage runs");
    assert_eq!(
        code(out.status),
        i32::from(want),
        "exit code of {cmd:?}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a resumed run must reproduce of a report: all of it but the messages, which record the
/// answers as they came (a resumed run cuts other batches, so the API says "2 Tweet ID(s) are
/// unavailable" once where it said "1 …" twice): top.json without `messages`, top.md without its
/// messages section, outcomes.csv without its `messages` column. Other files byte for byte.
fn results_of(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    match name {
        "top.json" => {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v.as_object_mut().unwrap().remove("messages");
            v.to_string()
        }
        "top.md" => match text.split_once("\n## Messages that came with the answers\n") {
            Some((head, rest)) => {
                format!("{head}{}", rest.find("\n## ").map_or("", |i| &rest[i..]))
            }
            None => text,
        },
        "outcomes.csv" => text
            .lines()
            .map(|line| {
                // The last field, quoted or not, is the messages.
                let mut quoted = false;
                let mut cut = line.len();
                for (i, c) in line.char_indices() {
                    match c {
                        '"' => quoted = !quoted,
                        ',' if !quoted => cut = i,
                        _ => {}
                    }
                }
                format!("{}\n", &line[..cut])
            })
            .collect(),
        _ => text,
    }
}

fn counts(top: &serde_json::Value) -> BTreeMap<String, u64> {
    top["counts"]
        .as_object()
        .expect("top.json has counts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect()
}

/// `ok + unavailable + forbidden + failed + pending == unique_ids` in a `top.json`.
fn assert_adds_up(top: &serde_json::Value) {
    let n = counts(top);
    let outcomes: u64 = ["ok", "unavailable", "forbidden", "failed", "pending"]
        .iter()
        .map(|k| {
            *n.get(*k)
                .unwrap_or_else(|| panic!("top.json counts without {k}: {n:?}"))
        })
        .sum();
    assert_eq!(outcomes, n["unique_ids"], "{n:?}");
}

/// Rows of a CSV file without quoting (the files checked here hold none), header skipped.
fn csv_rows(path: &Path, columns: usize) -> Vec<Vec<String>> {
    let t =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    t.lines()
        .skip(1)
        .map(|l| l.splitn(columns, ',').map(str::to_string).collect())
        .collect()
}

/// What the store shows of a run's progress, read the way an operator would (read-only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StoreProgress {
    /// `meta.input_lines`: lines ingested (committed).
    lines: u64,
    /// IDs with a final status.
    done: u64,
}

impl StoreProgress {
    /// `None` while the store does not exist or cannot be read yet; zero before its schema exists.
    fn read(db: &Path) -> Option<StoreProgress> {
        if std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) == 0 {
            return None;
        }
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        conn.busy_timeout(Duration::from_secs(2)).ok()?;
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('meta', 'tweets')",
                [],
                |r| r.get(0),
            )
            .ok()?;
        if tables < 2 {
            // Created, but killed before its schema was committed.
            return Some(StoreProgress::default());
        }
        let lines: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'input_lines'",
                [],
                |r| r.get(0),
            )
            .ok();
        let done: i64 = conn
            .query_row(
                "SELECT count(*) FROM tweets WHERE status <> 'pending'",
                [],
                |r| r.get(0),
            )
            .ok()?;
        Some(StoreProgress {
            lines: lines.and_then(|v| v.parse().ok()).unwrap_or(0),
            done: done as u64,
        })
    }

    /// Reads a store that must be readable (between lives), retrying briefly.
    fn read_settled(db: &Path) -> StoreProgress {
        for _ in 0..50 {
            if let Some(p) = StoreProgress::read(db) {
                return p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) == 0 {
            return StoreProgress::default();
        }
        panic!("{}: store unreadable", db.display());
    }

    fn ahead_of(&self, other: &StoreProgress) -> bool {
        self.lines > other.lines || self.done > other.done
    }
}

/// Waits until the store of the running `child` shows progress beyond `since`; fails when the child
/// exits first or nothing happens for a long time.
fn wait_for_progress(
    child: &mut Child,
    db: &Path,
    since: StoreProgress,
    what: &str,
) -> StoreProgress {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("{what}: engage exited ({st}) before the store showed progress");
        }
        if let Some(p) = StoreProgress::read(db) {
            if p.ahead_of(&since) {
                return p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no progress in the store within 30 s (still at {since:?})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn file_mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    v
}

mod exit_codes {
    use super::*;

    #[test]
    fn a_clean_run_exits_0() {
        let sim = Sim::start(3, &["--deleted", "0.02"]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(3, 700, 20, BAD_LINES);
        let input = d.path().join("ids.txt");
        c.write(&input);
        let out = d.path().join("out");
        expect_code(
            &mut run_cmd(&sim.url, &input, &d.path().join("run.db"), &out),
            exit::OK,
        );
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["unique_ids"], 700);
        assert_eq!(n["duplicate_ids"], 20);
        assert_eq!(n["rejected_lines"], BAD_LINES.len() as u64);
        assert_eq!(n["failed"], 0);
        assert!(n["unavailable"] > 0, "{n:?}");
    }

    #[test]
    fn a_run_prints_a_short_summary_and_the_report_paths_not_the_tables() {
        let sim = Sim::start(15, &["--deleted", "0.02"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(15, 600, 0, BAD_LINES).write(&input);
        let out = d.path().join("out");
        let o = expect_code(
            run_cmd(&sim.url, &input, &d.path().join("run.db"), &out).args(["--top", "1000"]),
            exit::OK,
        );
        let stdout = text(&o.stdout);
        assert!(!stdout.contains("| rank |"), "tables on stdout:\n{stdout}");
        assert!(stdout.contains("600 unique IDs"), "{stdout}");
        let top = read_json(&out.join("top.json"));
        let metrics = top["top"].as_object().unwrap().len();
        assert!(
            stdout.lines().count() <= metrics + 16,
            "{} lines on stdout for {metrics} metrics:\n{stdout}",
            stdout.lines().count()
        );
        for name in REPORTS {
            let p = out.join(name);
            assert!(
                stdout.lines().any(|l| l.trim() == p.display().to_string()),
                "{} not listed:\n{stdout}",
                p.display()
            );
        }
        // The best Tweet of the first metric, with its value.
        let (m, list) = top["top"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, l)| !l.as_array().unwrap().is_empty())
            .expect("a metric with a top list");
        let best = &list[0];
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(m.as_str()))
            .unwrap_or_else(|| panic!("no line for {m}:\n{stdout}"));
        assert!(
            line.contains(best["tweet_id"].as_str().unwrap()),
            "{line} / {best}"
        );
    }

    #[test]
    fn logs_off_a_terminal_have_no_colour_codes() {
        let sim = Sim::start(16, &[]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(16, 50, 0, &[]).write(&input);
        let o = expect_code(
            run_cmd(
                &sim.url,
                &input,
                &d.path().join("run.db"),
                &d.path().join("out"),
            )
            .env("RUST_LOG", "engage=info"),
            exit::OK,
        );
        let err = text(&o.stderr);
        assert!(err.contains("INFO"), "logs at info level:\n{err}");
        assert!(
            !err.contains('\u{1b}'),
            "ANSI escape codes in a piped stderr:\n{err:?}"
        );
    }

    #[test]
    fn an_unknown_metric_is_bad_usage_naming_the_flag_and_the_allowed_metrics() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(4, 10, 0, &[]).write(&input);
        let out = expect_code(
            run_cmd(
                "http://127.0.0.1:9",
                &input,
                &d.path().join("run.db"),
                &d.path().join("out"),
            )
            .args(["--metrics", "foo"]),
            exit::USAGE,
        );
        let err = text(&out.stderr);
        assert!(err.contains("--metrics"), "{err}");
        assert!(err.contains("foo"), "{err}");
        for allowed in ["impressions", "favorites", "retweets", "replies"] {
            assert!(
                err.contains(allowed),
                "allowed metric {allowed} not listed: {err}"
            );
        }
    }

    #[test]
    fn a_missing_input_file_is_bad_usage_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("no-such-ids.txt");
        let out = expect_code(
            &mut run_cmd(
                "http://127.0.0.1:9",
                &missing,
                &d.path().join("run.db"),
                &d.path().join("out"),
            ),
            exit::USAGE,
        );
        let err = text(&out.stderr);
        assert!(err.contains("no-such-ids.txt"), "{err}");
    }

    #[test]
    fn plain_http_to_a_remote_host_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(5, 10, 0, &[]).write(&input);
        let out = expect_code(
            &mut run_cmd(
                "http://example.com",
                &input,
                &d.path().join("run.db"),
                &d.path().join("out"),
            ),
            exit::USAGE,
        );
        let err = text(&out.stderr);
        assert!(err.contains("example.com"), "{err}");
        assert!(err.contains("--allow-insecure-http"), "{err}");
        assert!(
            !d.path().join("run.db").exists(),
            "no store for a refused run"
        );
    }

    /// Runs to the end, or fails after a minute (a refused flag must not start a job that hangs).
    fn output_within_a_minute(cmd: &mut Command) -> Output {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("engage starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!(
                    "{cmd:?} still running after a minute\nstderr:\n{}",
                    text(&o.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    /// Exit 2 with `flag` in the message, nothing created in `dir` but what the test put there.
    fn refused_naming(cmd: &mut Command, flag: &str, dir: &Path) -> String {
        let before = files_in(dir);
        let o = output_within_a_minute(cmd);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}\nstderr:\n{err}");
        assert!(err.contains(flag), "{cmd:?}: {flag} not named:\n{err}");
        assert_eq!(files_in(dir), before, "{cmd:?} created files");
        err
    }

    #[test]
    fn concurrency_above_the_cap_or_zero_is_refused_naming_the_flag_by_run_and_demo() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(13, 10, 0, &[]).write(&input);
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        for k in ["0", "257", "10000"] {
            let err = refused_naming(
                run_cmd("http://127.0.0.1:9", &input, &db, &out).args(["--concurrency", k]),
                &format!("--concurrency {k}"),
                d.path(),
            );
            assert!(err.contains("256"), "{err}");
            let err = refused_naming(
                engage()
                    .args(["demo", "--ids", "50", "--concurrency", k, "--dir"])
                    .arg(d.path()),
                &format!("--concurrency {k}"),
                d.path(),
            );
            assert!(err.contains("256"), "{err}");
        }
    }

    #[test]
    fn days_0_is_refused_naming_the_flag_by_run_and_demo() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(14, 10, 0, &[]).write(&input);
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        let err = refused_naming(
            run_cmd("http://127.0.0.1:9", &input, &db, &out).args([
                "--endpoint",
                "historical",
                "--days",
                "0",
            ]),
            "--days 0",
            d.path(),
        );
        assert!(!err.contains("--start"), "--start was not given: {err}");
        refused_naming(
            engage()
                .args([
                    "demo",
                    "--endpoint",
                    "historical",
                    "--ids",
                    "50",
                    "--days",
                    "0",
                    "--dir",
                ])
                .arg(d.path()),
            "--days 0",
            d.path(),
        );
        // A period before the API's first day names the flag that set it, with its value.
        let err = refused_naming(
            run_cmd("http://127.0.0.1:9", &input, &db, &out).args([
                "--endpoint",
                "historical",
                "--days",
                "100000",
            ]),
            "--days 100000",
            d.path(),
        );
        assert!(!err.contains("--start"), "--start was not given: {err}");
    }

    #[test]
    fn ids_that_fail_every_attempt_exit_3_and_are_listed_with_the_last_error() {
        let sim = Sim::start(6, &["--fail-5xx", "1.0"]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(6, 30, 0, &[]);
        let input = d.path().join("ids.txt");
        c.write(&input);
        let out = d.path().join("out");
        let o = expect_code(
            run_cmd(&sim.url, &input, &d.path().join("run.db"), &out).args(["--max-attempts", "2"]),
            exit::FAILED_IDS,
        );
        // The summary says how they failed, as the store records it.
        let err = text(&o.stderr);
        assert!(
            err.contains("30 IDs failed: 30 after 2 attempts (server error (HTTP 50")
                && err.contains("(see outcomes.csv)"),
            "{err}"
        );
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!((n["failed"], n["ok"]), (30, 0), "{n:?}");
        let rows = csv_rows(&out.join("outcomes.csv"), 3);
        let listed: BTreeSet<u64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
        assert_eq!(listed, c.unique);
        for r in &rows {
            assert_eq!(r[1], "failed", "{r:?}");
            assert!(r[2].contains("after 2 attempts"), "{r:?}");
            assert!(r[2].contains("server error (HTTP 50"), "{r:?}");
        }
    }

    /// SIGINT or SIGTERM: requests in flight finish, exit 4; the same command then completes to the
    /// report of an uninterrupted run.
    fn interrupted_then_resumed(signal: libc::c_int, seed: u64) {
        let sim = Sim::start(seed, &["--latency-ms", "50", "--deleted", "0.01"]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(seed, 4000, 40, BAD_LINES);
        let input = d.path().join("ids.txt");
        c.write(&input);
        let (ref_out, db, out) = (
            d.path().join("ref-out"),
            d.path().join("run.db"),
            d.path().join("out"),
        );
        let slow = ["--concurrency", "1"];
        expect_code(
            run_cmd(&sim.url, &input, &d.path().join("ref.db"), &ref_out).args(slow),
            exit::OK,
        );

        let mut child = run_cmd(&sim.url, &input, &db, &out)
            .args(slow)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let seen = wait_for_progress(
            &mut child,
            &db,
            StoreProgress {
                lines: u64::MAX,
                done: 0,
            },
            "signal test",
        );
        assert!(seen.done > 0);
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let o = child.wait_with_output().unwrap();
        let err = text(&o.stderr);
        assert_eq!(
            code(o.status),
            i32::from(exit::INTERRUPTED),
            "stderr:\n{err}"
        );
        assert!(err.contains("resume"), "{err}");
        let partial = read_json(&out.join("top.json"));
        assert_eq!(partial["complete"], false, "{partial}");
        let n = counts(&partial);
        assert!(n["pending"] > 0, "{n:?}");
        assert_adds_up(&partial);
        let after = StoreProgress::read_settled(&db);
        assert!(
            after.done >= seen.done && after.done < c.unique.len() as u64,
            "stopped early with its progress kept: {after:?}, seen {seen:?}"
        );

        expect_code(run_cmd(&sim.url, &input, &db, &out).args(slow), exit::OK);
        let whole = read_json(&out.join("top.json"));
        assert_eq!(whole["complete"], true, "{whole}");
        assert_eq!(counts(&whole)["pending"], 0, "{whole}");
        assert_adds_up(&whole);
        assert_eq!(
            std::fs::read(out.join("top.json")).unwrap(),
            std::fs::read(ref_out.join("top.json")).unwrap(),
            "top.json after an interrupted and resumed run differs from an uninterrupted run's"
        );
    }

    #[test]
    fn sigint_exits_4_and_the_same_command_resumes_to_the_same_report() {
        interrupted_then_resumed(libc::SIGINT, 8);
    }

    #[test]
    fn sigterm_exits_4_and_the_same_command_resumes_to_the_same_report() {
        interrupted_then_resumed(libc::SIGTERM, 9);
    }

    /// Nothing listens at the base URL: once the outage outlasts `--outage-limit-secs`, the run stops
    /// as interrupted (exit 4) with the cause and the URL, and no ID is marked failed.
    #[test]
    fn an_unreachable_api_exits_4_naming_the_cause_and_the_base_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(13, 600, 0, &[]).write(&input);
        let db = d.path().join("run.db");
        let o = expect_code(
            run_cmd(&url, &input, &db, &d.path().join("out")).args(["--outage-limit-secs", "1"]),
            exit::INTERRUPTED,
        );
        let err = text(&o.stderr);
        let why = err
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line: {err}"));
        assert!(why.contains(&url), "{err}");
        assert!(why.contains("connection refused"), "{err}");
        assert!(why.contains("nothing was marked failed"), "{err}");
        assert!(
            why.contains("check the base URL"),
            "nothing ever answered: {err}"
        );
        assert!(
            err.contains("run the same command again to resume"),
            "{err}"
        );
        let status =
            text(&expect_code(engage().arg("status").arg("--db").arg(&db), exit::OK).stdout);
        assert!(status.contains("failed:    0\n"), "{status}");
        assert!(status.contains("pending:   600\n"), "{status}");
    }

    /// A store that engage cannot trust: exit 5, the file named, its bytes unchanged.
    fn refused_store(db: &Path) {
        let before = std::fs::read(db).unwrap();
        let d = db.parent().unwrap();
        let input = d.join("ids.txt");
        collection(10, 10, 0, &[]).write(&input);
        let o = expect_code(
            &mut run_cmd("http://127.0.0.1:9", &input, db, &d.join("out")),
            exit::STORE,
        );
        let err = text(&o.stderr);
        assert!(err.contains(&db.display().to_string()), "{err}");
        let o = expect_code(engage().arg("status").arg("--db").arg(db), exit::STORE);
        let err = text(&o.stderr);
        assert!(err.contains(&db.display().to_string()), "{err}");
        assert!(
            std::fs::read(db).unwrap() == before,
            "{} was modified",
            db.display()
        );
    }

    #[test]
    fn a_store_of_garbage_bytes_exits_5_untouched() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("garbage.db");
        let mut rng = StdRng::seed_from_u64(11);
        let bytes: Vec<u8> = (0..16_384).map(|_| rng.random()).collect();
        std::fs::write(&db, bytes).unwrap();
        refused_store(&db);
    }

    #[test]
    fn a_foreign_sqlite_file_exits_5_untouched() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("foreign.db");
        {
            let c = Connection::open(&db).unwrap();
            c.execute_batch(
                "CREATE TABLE tweets (id INTEGER PRIMARY KEY, status TEXT);
                 INSERT INTO tweets VALUES (1, 'pending'), (2, 'ok');",
            )
            .unwrap();
        }
        refused_store(&db);
    }

    /// `status` and `report` on a path with no store are bad usage (2), never an internal error,
    /// and leave nothing behind; `report` on a foreign file is a refused store (5).
    #[test]
    fn status_and_report_on_a_missing_or_foreign_store() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("missing.db");
        for cmd in [
            engage().arg("status").arg("--db").arg(&missing),
            engage()
                .arg("report")
                .arg("--db")
                .arg(&missing)
                .arg("--out")
                .arg(d.path().join("out")),
        ] {
            let o = expect_code(cmd, exit::USAGE);
            let err = text(&o.stderr);
            assert!(
                err.contains("missing.db") && err.contains("no such store"),
                "{err}"
            );
        }
        assert!(!missing.exists(), "nothing created");
        let foreign = d.path().join("notes.txt");
        std::fs::write(
            &foreign,
            "not a database at all, just some notes\n".repeat(200),
        )
        .unwrap();
        let o = expect_code(
            engage()
                .arg("report")
                .arg("--db")
                .arg(&foreign)
                .arg("--out")
                .arg(d.path().join("out")),
            exit::STORE,
        );
        assert!(text(&o.stderr).contains("notes.txt"), "{}", text(&o.stderr));
    }

    /// A `--db` in a folder that does not exist, and an `--out` that cannot be written, are the
    /// machine's doing (6): the message names the path and the cause, not SQLite's words alone.
    #[test]
    fn a_missing_db_folder_and_a_read_only_out_exit_6_naming_the_path() {
        let sim = Sim::start(14, &[]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(14, 300, 0, &[]).write(&input);
        let db = d.path().join("no-such-folder/run.db");
        let o = expect_code(
            &mut run_cmd(&sim.url, &input, &db, &d.path().join("out")),
            exit::ENVIRONMENT,
        );
        let err = text(&o.stderr);
        assert!(
            err.contains("no-such-folder") && err.contains("does not exist"),
            "{err}"
        );
        assert_eq!(
            sim.received(),
            0,
            "nothing fetched for a run that cannot keep it"
        );

        // Root ignores permissions: only an unprivileged user can see a read-only folder refused.
        if unsafe { libc::geteuid() } != 0 {
            let out = d.path().join("read-only");
            std::fs::create_dir(&out).unwrap();
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).unwrap();
            let db = d.path().join("ro.db");
            let o = expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::ENVIRONMENT);
            let err = text(&o.stderr);
            assert!(err.contains("read-only"), "{err}");
        } else {
            // As root, a regular file where the folder should be fails the same way.
            let out = d.path().join("a-file");
            std::fs::write(&out, "").unwrap();
            let db = d.path().join("ro.db");
            let o = expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::ENVIRONMENT);
            let err = text(&o.stderr);
            assert!(err.contains("a-file"), "{err}");
        }
    }

    /// The simulator's `--malformed` fault truncates the body of whatever answer a request gets,
    /// a 400 for protected Tweets included. An unreadable 400 must be retried, not taken for a
    /// request the API refuses outright (which would abort the run with exit 2).
    #[test]
    fn a_truncated_error_body_is_retried_not_fatal() {
        let sim = Sim::start(12, &["--protected", "1.0", "--malformed", "0.5"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(12, 8, 0, &[]).write(&input);
        let out = d.path().join("out");
        expect_code(
            run_cmd(&sim.url, &input, &d.path().join("run.db"), &out).args([
                "--concurrency",
                "1",
                "--max-attempts",
                "30",
            ]),
            exit::OK,
        );
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["unavailable"], 8, "{n:?}");
    }
}

mod status_report {
    use super::*;

    /// `engage status` lines as `key -> first number`.
    fn status_numbers(stdout: &str) -> BTreeMap<String, u64> {
        stdout
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                let n = v.split_whitespace().next()?.parse().ok()?;
                Some((k.trim().to_string(), n))
            })
            .collect()
    }

    #[test]
    fn status_matches_top_json_and_report_rewrites_identical_files() {
        let sim = Sim::start(21, &["--deleted", "0.03", "--protected", "0.01"]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(21, 1500, 60, BAD_LINES);
        let input = d.path().join("ids.txt");
        c.write(&input);
        let (db, out, out2) = (
            d.path().join("run.db"),
            d.path().join("out"),
            d.path().join("out2"),
        );
        expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::OK);
        let n = counts(&read_json(&out.join("top.json")));

        let o = expect_code(engage().arg("status").arg("--db").arg(&db), exit::OK);
        let s = status_numbers(&text(&o.stdout));
        assert_eq!(s["lines"], n["input_lines"], "{s:?} vs {n:?}");
        assert_eq!(s["unique"], n["unique_ids"], "{s:?} vs {n:?}");
        for k in ["ok", "unavailable", "forbidden", "failed"] {
            assert_eq!(s[k], n[k], "{k}: {s:?} vs {n:?}");
        }
        assert_eq!(s["pending"], 0);
        let stdout = text(&o.stdout);
        assert!(
            stdout.contains(&format!(
                "({} rejected, {} duplicate IDs)",
                n["rejected_lines"], n["duplicate_ids"]
            )),
            "{stdout}"
        );
        assert_eq!(n["unique_ids"], c.unique.len() as u64);
        assert!(n["unavailable"] > 0, "{n:?}");

        let o = expect_code(
            engage()
                .arg("report")
                .arg("--db")
                .arg(&db)
                .arg("--out")
                .arg(&out2),
            exit::OK,
        );
        assert!(text(&o.stdout).contains("top.json"), "{}", text(&o.stdout));
        let names = |dir: &Path| -> Vec<String> {
            files_in(dir)
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&out), names(&out2));
        for name in REPORTS {
            assert!(
                std::fs::read(out.join(name)).unwrap() == std::fs::read(out2.join(name)).unwrap(),
                "engage report wrote a different {name} than the run"
            );
        }
    }
}

mod crash {
    use super::*;

    /// Faults of the crash test's simulator.
    const FAULTS: &[&str] = &[
        "--fail-5xx",
        "0.05",
        "--malformed",
        "0.01",
        "--fail-429",
        "0.02",
        "--reset",
        "0.01",
        "--no-gzip",
        "0.01",
        "--latency-ms",
        "10",
        "--deleted",
        "0.01",
        "--protected",
        "0.002",
    ];
    const RUN_FLAGS: &[&str] = &["--concurrency", "2", "--max-attempts", "30"];
    const SEED: u64 = 2026;
    const UNIQUE: usize = 60_000;
    const DUPLICATES: usize = 500;
    /// Lives killed with SIGKILL after doing some work, before the final life runs to the end.
    const KILLS: usize = 12;

    /// One killed life: what the store showed when it started and after it was killed.
    struct Life {
        start: StoreProgress,
        end: StoreProgress,
    }

    /// The killed lives and the last one sort in small runs (the inputs spill to temporary files)
    /// and save their report pass at every step, so the kills land in those paths too; the
    /// uninterrupted reference runs with the defaults.
    fn crash_cmd(url: &str, input: &Path, db: &Path, out: &Path) -> Command {
        let mut c = run_cmd(url, input, db, out);
        c.args(RUN_FLAGS)
            .env("ENGAGE_SORT_RUN", "7000")
            .env("ENGAGE_REPORT_SAVE_MS", "0")
            .env("RUST_LOG", "engage::run=info");
        c
    }

    fn life(url: &str, input: &Path, db: &Path, out: &Path, log: &Path) -> Child {
        crash_cmd(url, input, db, out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("engage run starts")
    }

    /// Kills `child` with SIGKILL; fails if it had already ended by itself.
    fn kill(child: &mut Child, what: &str, log: &Path) {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "{what} ended by itself ({st}) before it was killed: the run is too fast for this \
                 test (raise UNIQUE or the latency)\nstderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        child.kill().unwrap();
        let st = child.wait().unwrap();
        if st.signal() != Some(libc::SIGKILL) {
            panic!(
                "{what} ended by itself ({st}) before it was killed: the run is too fast for this \
                 test (raise UNIQUE or the latency)\nstderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    /// An operator looks at the store between two lives; the next life must resume all the same:
    /// `engage status`, then an SQLite client that opens the file read-write and closes it, as the
    /// `sqlite3` shell does (its close, the last one, folds the WAL into the database and deletes
    /// it; the marker stays).
    fn look(db: &Path, when: &str) {
        expect_code(engage().arg("status").arg("--db").arg(db), exit::OK);
        let ids: i64 = Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM ids", [], |r| r.get(0))
            .unwrap();
        assert!(ids > 0, "{when}: no IDs in the store");
        let wal = PathBuf::from(format!("{}-wal", db.display()));
        assert!(!wal.exists(), "{when}: the reader's close left the WAL");
    }

    #[test]
    fn killed_at_random_points_resumes_to_the_identical_report() {
        let started = Instant::now();
        let sim = Sim::start(SEED, FAULTS);
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let c = collection(SEED, UNIQUE, DUPLICATES, BAD_LINES);
        let input = dir.join("ids.txt");
        c.write(&input);

        // The uninterrupted reference, in the background on the same simulator.
        let reference = {
            let (url, input, dir) = (sim.url.clone(), input.clone(), dir.clone());
            std::thread::spawn(move || {
                run_cmd(&url, &input, &dir.join("ref.db"), &dir.join("ref-out"))
                    .args(RUN_FLAGS)
                    .output()
                    .expect("reference run")
            })
        };

        let (db, out) = (dir.join("crash.db"), dir.join("crash-out"));
        let mut rng = StdRng::seed_from_u64(SEED);

        // A blind kill early on (usually during startup or ingest), not counted as a life.
        let log = dir.join("life-0.log");
        let mut child = life(&sim.url, &input, &db, &out, &log);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..=150)));
        kill(&mut child, "the blind first life", &log);

        let mut lives: Vec<Life> = Vec::new();
        let mut prev = StoreProgress::read_settled(&db);
        while lives.len() < KILLS {
            let n = lives.len() + 1;
            let start = StoreProgress::read_settled(&db);
            assert!(
                start.done >= prev.done && start.lines >= prev.lines,
                "life {n} starts behind the last one's end: {start:?} < {prev:?}"
            );
            if n > 1 {
                look(&db, &format!("before life {n}"));
            }
            let log = dir.join(format!("life-{n}.log"));
            let mut child = life(&sim.url, &input, &db, &out, &log);
            let what = format!("life {n} (after {} kills)", lives.len());
            let mut seen = wait_for_progress(&mut child, &db, start, &what);
            std::thread::sleep(Duration::from_millis(rng.random_range(0..=300)));
            if let Some(p) = StoreProgress::read(&db) {
                seen = p;
            }
            kill(&mut child, &what, &log);
            let end = StoreProgress::read_settled(&db);
            assert!(
                end.done >= seen.done && end.lines >= seen.lines,
                "life {n}: committed progress was lost by the kill: {seen:?} seen, {end:?} after"
            );
            assert!(
                end.ahead_of(&start),
                "life {n} did no work: {start:?} -> {end:?}"
            );
            prev = end;
            lives.push(Life { start, end });
        }

        // The last life runs to the end.
        let last_start = StoreProgress::read_settled(&db);
        look(&db, "before the last life");
        let final_run = expect_code(&mut crash_cmd(&sim.url, &input, &db, &out), exit::OK);
        let reference = reference.join().expect("reference thread");
        assert_eq!(
            code(reference.status),
            i32::from(exit::OK),
            "reference run:\n{}",
            text(&reference.stderr)
        );

        // The report is exactly the uninterrupted run's.
        assert!(
            results_of(&out, "top.json") == results_of(&dir.join("ref-out"), "top.json"),
            "top.json after {KILLS} kills differs from the uninterrupted run's"
        );
        for name in REPORTS {
            assert!(
                results_of(&dir.join("ref-out"), name) == results_of(&out, name),
                "{name} after {KILLS} kills differs from the uninterrupted run's"
            );
        }

        // Lives went on with a report pass an earlier life saved (the path a kill exercises).
        let resumed_passes = (1..=KILLS)
            .map(|n| std::fs::read_to_string(dir.join(format!("life-{n}.log"))).unwrap_or_default())
            .chain([text(&final_run.stderr)])
            .filter(|log| log.contains("report pass resumed"))
            .count();
        assert!(resumed_passes > 0, "no life resumed a saved report pass");

        // Every unique input ID exactly once, each with a final status.
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, status FROM tweets ORDER BY id")
            .unwrap();
        let rows: Vec<(i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let stored: BTreeSet<u64> = rows.iter().map(|(id, _)| *id as u64).collect();
        assert_eq!(stored.len(), rows.len(), "an ID is stored twice");
        assert!(
            stored == c.unique,
            "stored IDs differ from the unique input IDs: {} stored, {} missing, {} extra",
            stored.len(),
            c.unique.difference(&stored).count(),
            stored.difference(&c.unique).count()
        );
        let statuses: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut m, (_, s)| {
            *m.entry(s.as_str()).or_default() += 1;
            m
        });
        assert!(!statuses.contains_key("pending"), "{statuses:?}");
        drop(stmt);
        drop(conn);

        let n = counts(&read_json(&out.join("top.json")));
        let unique = c.unique.len() as u64;
        assert_eq!(n["unique_ids"], unique, "{n:?}");
        assert_eq!(
            n["ok"] + n["unavailable"] + n["forbidden"] + n["failed"],
            unique,
            "{n:?}"
        );
        assert_eq!(n["failed"], 0, "{n:?}");
        assert_eq!(n["duplicate_ids"], c.duplicates as u64, "{n:?}");
        assert_eq!(n["rejected_lines"], c.bad.len() as u64, "{n:?}");
        assert_eq!(n["input_lines"], c.lines.len() as u64, "{n:?}");

        // Each bad line once, whatever phase the kills hit.
        let mut rejects: Vec<(u64, String)> = csv_rows(&out.join("rejects.csv"), 4)
            .into_iter()
            .map(|r| (r[1].parse().unwrap(), r[2].clone()))
            .collect();
        rejects.sort();
        assert_eq!(rejects, c.bad);

        let work: Vec<String> = lives
            .iter()
            .map(|l| {
                if l.start.lines == 0 {
                    format!("ingest+{}", l.end.done - l.start.done)
                } else {
                    (l.end.done - l.start.done).to_string()
                }
            })
            .collect();
        let requests = |o: &Output| {
            text(&o.stderr)
                .lines()
                .find(|l| l.ends_with("in this run"))
                .map(|l| l.split(',').next().unwrap_or("").trim().to_string())
                .unwrap_or_default()
        };
        println!(
            "crash test: {} lives ({KILLS} killed after work, 1 killed blind, 1 to the end); \
             IDs done per killed life [{}]; last life {} IDs, {}; reference {}; {unique} IDs, {:.1} s",
            KILLS + 2,
            work.join(", "),
            unique - last_start.done,
            requests(&final_run),
            requests(&reference),
            started.elapsed().as_secs_f64()
        );
    }
}

mod reports {
    use super::*;

    /// Runs `cmd` with the file-mode creation mask `mask`.
    fn with_umask(cmd: &mut Command, mask: libc::mode_t) -> &mut Command {
        use std::os::unix::process::CommandExt;
        // SAFETY: umask(2) is async-signal-safe and changes only the child's own mask.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(mask);
                Ok(())
            })
        }
    }

    #[test]
    fn reports_follow_the_umask_and_the_store_stays_owner_only() {
        let sim = Sim::start(41, &["--deleted", "0.02"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(41, 300, 3, BAD_LINES).write(&input);
        for (mask, want) in [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)] {
            let (db, out, again) = (
                d.path().join(format!("run-{mask:o}.db")),
                d.path().join(format!("out-{mask:o}")),
                d.path().join(format!("again-{mask:o}")),
            );
            expect_code(
                with_umask(&mut run_cmd(&sim.url, &input, &db, &out), mask),
                exit::OK,
            );
            expect_code(
                with_umask(
                    engage()
                        .arg("report")
                        .arg("--db")
                        .arg(&db)
                        .arg("--out")
                        .arg(&again),
                    mask,
                ),
                exit::OK,
            );
            for dir in [&out, &again] {
                let files = files_in(dir);
                assert!(files.len() >= 7, "{files:?}");
                for f in files {
                    assert_eq!(file_mode(&f), want, "umask {mask:o}: {}", f.display());
                }
            }
            // The store and whichever side files a clean exit leaves.
            for suffix in ["", "-wal", "-shm", "-engage"] {
                let p = PathBuf::from(format!("{}{suffix}", db.display()));
                if p.exists() {
                    assert_eq!(file_mode(&p), 0o600, "umask {mask:o}: {}", p.display());
                }
            }
        }
    }

    /// A report folder's files under their final names (not hidden) and their bytes.
    fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        files_in(dir)
            .into_iter()
            .filter_map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let bytes = std::fs::read(&p).unwrap();
                (!name.starts_with('.')).then_some((name, bytes))
            })
            .collect()
    }

    /// An interrupted run writes a report that says it is partial, with counts that add up; the
    /// resumed run's says complete. Then `engage report` over the partial folder is aborted at every
    /// write and every rename of its report phase: each file is then either the partial report's
    /// (whole) or the new one's (whole), never cut short or missing, and the next `engage report`
    /// completes it and clears what the aborted one left.
    #[test]
    fn a_report_phase_killed_anywhere_leaves_every_file_whole() {
        let sim = Sim::start(42, &["--latency-ms", "100", "--deleted", "0.01"]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(42, 6000, 40, BAD_LINES);
        let input = d.path().join("ids.txt");
        c.write(&input);
        let (db, partial_out, final_out) = (
            d.path().join("run.db"),
            d.path().join("partial"),
            d.path().join("final"),
        );
        let slow = ["--concurrency", "1"];
        let mut child = run_cmd(&sim.url, &input, &db, &partial_out)
            .args(slow)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_progress(
            &mut child,
            &db,
            StoreProgress {
                lines: u64::MAX,
                done: 0,
            },
            "partial run",
        );
        // `engage report` during the run, into the run's own folder: a partial report, and the
        // run's part files left alone (checked below through the run's own report).
        expect_code(
            engage()
                .arg("report")
                .arg("--db")
                .arg(&db)
                .arg("--out")
                .arg(&partial_out),
            exit::OK,
        );
        let during = read_json(&partial_out.join("top.json"));
        assert_eq!(during["complete"], false, "{during}");
        assert!(counts(&during)["pending"] > 0, "{during}");
        assert_adds_up(&during);
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the report written during it: too fast for this test"
        );
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet.
        assert_eq!(
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
            0
        );
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            code(o.status),
            i32::from(exit::INTERRUPTED),
            "{}",
            text(&o.stderr)
        );
        let partial = snapshot(&partial_out);
        let top: serde_json::Value = serde_json::from_slice(&partial["top.json"]).unwrap();
        assert_eq!(top["complete"], false, "{top}");
        assert!(counts(&top)["pending"] > 0, "{top}");
        assert_adds_up(&top);
        let n = counts(&top);
        let ids = |name: &str| -> Vec<u64> {
            text(&partial[name])
                .lines()
                .skip(1)
                .map(|l| l.split(',').next().unwrap().parse().unwrap())
                .collect()
        };
        let ok = ids("tweets.csv");
        assert_eq!(ok.len() as u64, n["ok"], "tweets.csv rows");
        assert!(
            ok.windows(2).all(|w| w[0] < w[1]),
            "tweets.csv IDs ascending, once"
        );
        let others = ids("outcomes.csv");
        assert_eq!(
            others.len() as u64,
            n["unique_ids"] - n["ok"],
            "outcomes.csv rows"
        );
        let md = text(&partial["top.md"]);
        assert!(md.contains("Partial report"), "{md}");
        let html = text(&partial["report.html"]);
        assert!(
            html.contains(">partial<"),
            "no visible partial badge in report.html"
        );

        expect_code(
            run_cmd(&sim.url, &input, &db, &final_out).args(slow),
            exit::OK,
        );
        let fin = snapshot(&final_out);
        let top: serde_json::Value = serde_json::from_slice(&fin["top.json"]).unwrap();
        assert_eq!(top["complete"], true, "{top}");
        assert_eq!(counts(&top)["pending"], 0, "{top}");
        assert_adds_up(&top);
        assert!(!text(&fin["report.html"]).contains(">partial<"));
        assert_eq!(
            partial.keys().collect::<Vec<_>>(),
            fin.keys().collect::<Vec<_>>()
        );

        let report = |out: &Path| {
            let mut c = engage();
            c.arg("report").arg("--db").arg(&db).arg("--out").arg(out);
            c
        };
        let mut aborts = 0;
        for point in ["report-write", "report-publish"] {
            for n in 1.. {
                assert!(n < 100, "{point}: still aborting at {n}");
                let out = d.path().join(format!("{point}-{n}"));
                std::fs::create_dir(&out).unwrap();
                for (name, bytes) in &partial {
                    std::fs::write(out.join(name), bytes).unwrap();
                }
                let o = report(&out)
                    .env("ENGAGE_FAILPOINT", format!("{point}:{n}"))
                    .output()
                    .unwrap();
                if o.status.success() {
                    // Past the last such point: the whole report.
                    assert!(n > 1, "{point} was never reached");
                    break;
                }
                assert!(
                    o.status.code().is_none()
                        && text(&o.stderr).contains(&format!("failpoint {point}:{n} reached")),
                    "{point}:{n}: {:?}\n{}",
                    o.status,
                    text(&o.stderr)
                );
                aborts += 1;
                let now = snapshot(&out);
                assert_eq!(
                    now.keys().collect::<Vec<_>>(),
                    partial.keys().collect::<Vec<_>>(),
                    "{point}:{n}: a file is missing or extra"
                );
                let published = now["top.json"] == fin["top.json"];
                for (name, bytes) in &now {
                    let old = *bytes == partial[name];
                    let new = if name == "report.html" {
                        // It carries the time it was made: whole, and no longer partial.
                        !old && bytes.ends_with(b"</html>\n") && !text(bytes).contains(">partial<")
                    } else {
                        *bytes == fin[name]
                    };
                    assert!(
                        old || new,
                        "{point}:{n}: {name} is neither the earlier report's nor the new one's \
                         ({} bytes)",
                        bytes.len()
                    );
                    // top.json is published last: once it is new, everything is.
                    assert!(
                        !published || new,
                        "{point}:{n}: top.json is new but {name} is not"
                    );
                }
                // The next report completes the folder and removes what the aborted one left.
                expect_code(&mut report(&out), exit::OK);
                let names: Vec<String> = std::fs::read_dir(&out)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                assert!(
                    names.iter().all(|n| !n.starts_with('.')),
                    "{point}:{n}: left behind: {names:?}"
                );
                let again = snapshot(&out);
                for name in REPORTS {
                    assert!(again[*name] == fin[*name], "{point}:{n}: {name}");
                }
            }
        }
        assert!(aborts >= 10, "only {aborts} aborts");
    }
}

mod secrets {
    use super::*;

    const CONSUMER_KEY: &str = "SeCrEt-consumer-9f8e7d";
    const CONSUMER_SECRET: &str = "SeCrEt-csecret-3c2b1a";
    const ACCESS_TOKEN: &str = "SeCrEt-token-6a5b4c";
    const ACCESS_TOKEN_SECRET: &str = "SeCrEt-tsecret-0d9e8f";
    const BEARER_TOKEN: &str = "SeCrEt-bearer-7e6d5c";
    // A second app's keys and bearer token, and an account whose token that app issued.
    const APP_KEY: &str = "SeCrEt-appkey-1a2b3c";
    const APP_SECRET: &str = "SeCrEt-appsecret-4d5e6f";
    const APP_BEARER: &str = "SeCrEt-appbearer-7a8b9c";
    const TWO_TOKEN: &str = "SeCrEt-twotoken-0f1e2d";
    const TWO_SECRET: &str = "SeCrEt-twosecret-3c4b5a";
    const ALL: [&str; 10] = [
        CONSUMER_KEY,
        CONSUMER_SECRET,
        ACCESS_TOKEN,
        ACCESS_TOKEN_SECRET,
        BEARER_TOKEN,
        APP_KEY,
        APP_SECRET,
        APP_BEARER,
        TWO_TOKEN,
        TWO_SECRET,
    ];

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// Fails if any secret is in `bytes`, also once ANSI colour codes are taken out.
    fn assert_clean(what: &str, bytes: &[u8]) {
        let plain: Vec<u8> = {
            let mut v = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'[') {
                    i += 2;
                    while i < bytes.len() && !bytes[i].is_ascii_alphabetic() {
                        i += 1;
                    }
                    i += 1;
                } else {
                    v.push(bytes[i]);
                    i += 1;
                }
            }
            v
        };
        for s in ALL {
            assert!(
                !contains(bytes, s) && !contains(&plain, s),
                "{what} contains the secret {s}"
            );
        }
    }

    #[test]
    fn credentials_appear_nowhere_and_the_store_is_owner_only() {
        let d = tempfile::tempdir().unwrap();
        let config = d.path().join("sim.toml");
        std::fs::write(
            &config,
            format!(
                "consumer_key = \"{CONSUMER_KEY}\"\nconsumer_secret = \"{CONSUMER_SECRET}\"\n\
                 bearer_tokens = [\"{BEARER_TOKEN}\"]\n\n[[accounts]]\nname = \"owner\"\n\
                 access_token = \"{ACCESS_TOKEN}\"\naccess_token_secret = \"{ACCESS_TOKEN_SECRET}\"\n"
            ),
        )
        .unwrap();
        let sim = Sim::start(
            31,
            &["--config", config.to_str().unwrap(), "--deleted", "0.05"],
        );
        let input = d.path().join("ids.txt");
        collection(31, 600, 5, BAD_LINES).write(&input);

        for auth in ["user", "bearer"] {
            let (db, out) = (
                d.path().join(format!("{auth}.db")),
                d.path().join(format!("{auth}-out")),
            );
            let mut cmd = engage();
            cmd.env("RUST_LOG", "trace")
                .env("ENGAGE_CONSUMER_KEY", CONSUMER_KEY)
                .env("ENGAGE_CONSUMER_SECRET", CONSUMER_SECRET)
                .env("ENGAGE_ACCESS_TOKEN", ACCESS_TOKEN)
                .env("ENGAGE_ACCESS_TOKEN_SECRET", ACCESS_TOKEN_SECRET)
                .env("ENGAGE_BEARER_TOKEN", BEARER_TOKEN)
                .arg("run")
                .args(["--auth", auth, "--base-url", &sim.url, "--backoff-ms", "5"])
                .arg("--input")
                .arg(&input)
                .arg("--db")
                .arg(&db)
                .arg("--out")
                .arg(&out);
            let o = expect_code(&mut cmd, exit::OK);
            assert!(
                text(&o.stderr).contains("TRACE"),
                "RUST_LOG=trace logs at trace level:\n{}",
                text(&o.stderr)
            );
            assert_clean(&format!("stdout of the {auth} run"), &o.stdout);
            assert_clean(&format!("stderr of the {auth} run"), &o.stderr);
            let n = counts(&read_json(&out.join("top.json")));
            assert_eq!(n["ok"] + n["unavailable"], 600, "{n:?}");

            let status = expect_code(
                engage()
                    .env("RUST_LOG", "trace")
                    .arg("status")
                    .arg("--db")
                    .arg(&db),
                exit::OK,
            );
            assert_clean("engage status stdout", &status.stdout);
            assert_clean("engage status stderr", &status.stderr);

            let files = files_in(&out);
            assert!(files.len() >= 6, "{files:?}");
            for f in &files {
                assert_clean(&f.display().to_string(), &std::fs::read(f).unwrap());
            }
            for suffix in ["", "-wal", "-shm", "-engage", "-lock"] {
                let p = PathBuf::from(format!("{}{suffix}", db.display()));
                if p.exists() {
                    assert_clean(&p.display().to_string(), &std::fs::read(&p).unwrap());
                    assert_eq!(file_mode(&p), 0o600, "{}", p.display());
                }
            }
        }
    }

    /// A run over two apps (`[[apps]]` naming only environment variables), with an owner account
    /// of each: no key, secret or token of either app is in the output, the status, the reports
    /// or the store, and the figures per app name the apps.
    #[test]
    fn the_keys_of_every_app_appear_nowhere() {
        let d = tempfile::tempdir().unwrap();
        let sim_config = d.path().join("sim.toml");
        std::fs::write(
            &sim_config,
            format!(
                "consumer_key = \"{CONSUMER_KEY}\"\nconsumer_secret = \"{CONSUMER_SECRET}\"\n\
                 bearer_tokens = [\"{BEARER_TOKEN}\"]\n\n\
                 [[apps]]\nname = \"team\"\nconsumer_key = \"{APP_KEY}\"\n\
                 consumer_secret = \"{APP_SECRET}\"\nbearer_tokens = [\"{APP_BEARER}\"]\n\n\
                 [[accounts]]\nname = \"owner\"\n\
                 access_token = \"{ACCESS_TOKEN}\"\naccess_token_secret = \"{ACCESS_TOKEN_SECRET}\"\n\n\
                 [[accounts]]\nname = \"two\"\napp = \"team\"\n\
                 access_token = \"{TWO_TOKEN}\"\naccess_token_secret = \"{TWO_SECRET}\"\n"
            ),
        )
        .unwrap();
        let sim = Sim::start(32, &["--config", sim_config.to_str().unwrap()]);
        let config = d.path().join("engage.toml");
        std::fs::write(
            &config,
            "[[apps]]\nname = \"team\"\nconsumer_key_env = \"TEAM_KEY\"\n\
             consumer_secret_env = \"TEAM_SECRET\"\nbearer_token_env = \"TEAM_BEARER\"\n\n\
             [[accounts]]\nname = \"two\"\napp = \"team\"\n\
             access_token_env = \"TWO_TOKEN\"\naccess_token_secret_env = \"TWO_SECRET\"\n\n\
             [[accounts]]\nname = \"owner\"\n\
             access_token_env = \"OWNER_TOKEN\"\naccess_token_secret_env = \"OWNER_SECRET\"\n",
        )
        .unwrap();
        // The simulator's owners: with two accounts, `owner` owns the even IDs, `two` the odd.
        let c = collection(32, 800, 0, &[]);
        let input = d.path().join("ids.csv");
        let mut csv = String::from("tweet_id,account\n");
        for (i, id) in c.unique.iter().enumerate() {
            let owner = match (i % 3, id % 2) {
                (0, _) => "",
                (_, 0) => "owner",
                _ => "two",
            };
            csv.push_str(&format!("{id},{owner}\n"));
        }
        std::fs::write(&input, csv).unwrap();
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        let mut cmd = engage();
        cmd.env("RUST_LOG", "trace")
            .env("ENGAGE_CONSUMER_KEY", CONSUMER_KEY)
            .env("ENGAGE_CONSUMER_SECRET", CONSUMER_SECRET)
            .env("ENGAGE_BEARER_TOKEN", BEARER_TOKEN)
            .env("TEAM_KEY", APP_KEY)
            .env("TEAM_SECRET", APP_SECRET)
            .env("TEAM_BEARER", APP_BEARER)
            .env("TWO_TOKEN", TWO_TOKEN)
            .env("TWO_SECRET", TWO_SECRET)
            .env("OWNER_TOKEN", ACCESS_TOKEN)
            .env("OWNER_SECRET", ACCESS_TOKEN_SECRET)
            .arg("run")
            .args(["--base-url", &sim.url, "--backoff-ms", "5", "--config"])
            .arg(&config)
            .arg("--input")
            .arg(&input)
            .arg("--db")
            .arg(&db)
            .arg("--out")
            .arg(&out);
        let o = expect_code(&mut cmd, exit::OK);
        assert_clean("stdout of the run", &o.stdout);
        assert_clean("stderr of the run", &o.stderr);
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["ok"], c.unique.len() as u64, "{n:?}");
        let said = text(&o.stderr);
        assert!(
            said.contains("app default: ") && said.contains("app team: "),
            "{said}"
        );
        let status = expect_code(engage().arg("status").arg("--db").arg(&db), exit::OK);
        assert_clean("engage status stdout", &status.stdout);
        let shown = text(&status.stdout);
        assert!(
            shown.contains("app default: ") && shown.contains("app team: "),
            "{shown}"
        );
        for f in files_in(&out) {
            assert_clean(&f.display().to_string(), &std::fs::read(&f).unwrap());
        }
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            if p.exists() {
                assert_clean(&p.display().to_string(), &std::fs::read(&p).unwrap());
            }
        }
    }
}

mod failpoints {
    use super::*;

    /// The store holds exactly the unique input IDs, each once, none pending.
    fn assert_complete(db: &Path, c: &Collection) {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut stmt = conn.prepare("SELECT id, status FROM tweets").unwrap();
        let rows: Vec<(u64, String)> = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let ids: BTreeSet<u64> = rows.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), rows.len(), "no duplicate");
        assert_eq!(ids, c.unique, "no gap, nothing extra");
        assert!(rows.iter().all(|(_, s)| s != "pending"), "every ID final");
    }

    /// `ENGAGE_FAILPOINT=before-commit:N` / `after-commit:N` aborts the process (SIGABRT, no unwinding)
    /// right before / after the writer's N-th commit. Each abort is resumed to the end and must give
    /// the reference report.
    #[test]
    fn aborting_around_the_nth_commit_resumes_to_the_same_report() {
        let sim = Sim::start(
            31,
            &[
                "--deleted",
                "0.01",
                "--protected",
                "0.002",
                "--fail-5xx",
                "0.05",
            ],
        );
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        let c = collection(31, 5_000, 50, &["1.2E+18", "junk"]);
        c.write(&input);
        let (ref_db, ref_out) = (d.path().join("ref.db"), d.path().join("ref-out"));
        expect_code(
            run_cmd(&sim.url, &input, &ref_db, &ref_out).args(["--concurrency", "1"]),
            exit::OK,
        );
        let reference = results_of(&ref_out, "top.json");
        let mut aborts = 0;
        for point in ["before-commit", "after-commit"] {
            for n in [1, 2, 3, 5, 8, 13] {
                let db = d.path().join(format!("{point}-{n}.db"));
                let out = d.path().join(format!("{point}-{n}-out"));
                let o = run_cmd(&sim.url, &input, &db, &out)
                    .args(["--concurrency", "1"])
                    .env("ENGAGE_FAILPOINT", format!("{point}:{n}"))
                    .output()
                    .unwrap();
                assert!(
                    o.status.code().is_none()
                        && text(&o.stderr).contains(&format!("failpoint {point}:{n} reached")),
                    "{point}:{n} must abort: {:?}\n{}",
                    o.status,
                    text(&o.stderr)
                );
                let before = StoreProgress::read_settled(&db);
                expect_code(
                    run_cmd(&sim.url, &input, &db, &out).args(["--concurrency", "1"]),
                    exit::OK,
                );
                assert_eq!(results_of(&out, "top.json"), reference, "{point}:{n}");
                assert_complete(&db, &c);
                if point == "after-commit" {
                    assert!(
                        before.done > 0,
                        "after-commit:{n}: the commit survived the abort"
                    );
                }
                aborts += 1;
            }
        }
        eprintln!("failpoints: {aborts} aborts, each resumed to the reference report");
    }

    /// A writer that fails mid-run (the disk fills: `commit-error` stands for SQLite's "database or
    /// disk is full") stops the whole run: no request is sent for answers that could not be kept,
    /// beyond the ones already in flight. The run exits with the environment code and a message that
    /// names the store and the cause, and the same command resumes to the reference report.
    #[test]
    fn a_failing_writer_stops_the_requests_and_the_run_resumes() {
        const K: u64 = 2;
        let sim = Sim::start(33, &["--latency-ms", "40"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        // 40 batches of 250.
        let c = collection(33, 10_000, 0, &[]);
        c.write(&input);
        let (ref_db, ref_out) = (d.path().join("ref.db"), d.path().join("ref-out"));
        expect_code(&mut run_cmd(&sim.url, &input, &ref_db, &ref_out), exit::OK);
        let reference = results_of(&ref_out, "top.json");

        // A first life killed after a few commits, so that the failing life is a resume (its
        // ingest is done: nothing but the stop can end its batcher early).
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        let o = run_cmd(&sim.url, &input, &db, &out)
            .env("ENGAGE_FAILPOINT", "after-commit:3")
            .output()
            .unwrap();
        assert!(o.status.code().is_none(), "{}", text(&o.stderr));

        let mut child = run_cmd(&sim.url, &input, &db, &out)
            .args(["--concurrency", &K.to_string()])
            .env("ENGAGE_FAILPOINT", "commit-error:4")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let at_failure = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "engage ended without reporting the failure:\n{seen}"
            );
            seen.push_str(&line);
            if line.contains("writing the store failed") {
                break sim.received();
            }
        };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        seen.push_str(&rest);
        let status = child.wait().unwrap();
        let after = sim.received() - at_failure;
        assert!(
            after <= K,
            "{after} requests after the writer failed (at most the {K} in flight)"
        );
        assert_eq!(code(status), i32::from(exit::ENVIRONMENT), "{seen}");
        let last = seen
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            last.contains(&db.display().to_string()) && last.contains("disk is full"),
            "the error names the store and the cause: {last}"
        );
        eprintln!("writer failure: {after} requests after it; {last}");

        expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::OK);
        assert_eq!(results_of(&out, "top.json"), reference);
        assert_complete(&db, &c);
    }

    /// A file-level copy of a running store (database, then WAL, then marker) resumes to the same
    /// report; a copy without its WAL is refused rather than silently resumed from older data.
    #[test]
    fn a_copy_of_the_store_taken_mid_run_resumes_to_the_same_report() {
        let sim = Sim::start(32, &["--latency-ms", "20", "--deleted", "0.01"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        let c = collection(32, 8_000, 0, &[]);
        c.write(&input);
        let (ref_db, ref_out) = (d.path().join("ref.db"), d.path().join("ref-out"));
        expect_code(
            run_cmd(&sim.url, &input, &ref_db, &ref_out).args(["--concurrency", "2"]),
            exit::OK,
        );
        let reference = results_of(&ref_out, "top.json");

        let live = d.path().join("live.db");
        let mut child = run_cmd(&sim.url, &input, &live, &d.path().join("live-out"))
            .args(["--concurrency", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = StoreProgress::default();
        while seen.done < 1_000 {
            seen = wait_for_progress(&mut child, &live, seen, "copy mid-run");
        }
        let copy = d.path().join("copy.db");
        let nowal = d.path().join("nowal.db");
        for (suffix, to) in [
            ("", &copy),
            ("-wal", &copy),
            ("-engage", &copy),
            ("", &nowal),
            ("-engage", &nowal),
        ] {
            let from = PathBuf::from(format!("{}{suffix}", live.display()));
            std::fs::copy(&from, format!("{}{suffix}", to.display())).unwrap();
        }
        assert!(child.wait().unwrap().success());

        expect_code(
            &mut run_cmd(&sim.url, &input, &copy, &d.path().join("copy-out")),
            exit::OK,
        );
        assert_eq!(
            results_of(&d.path().join("copy-out"), "top.json"),
            reference
        );
        assert_complete(&copy, &c);

        let before = std::fs::read(&nowal).unwrap();
        let o = expect_code(
            &mut run_cmd(&sim.url, &input, &nowal, &d.path().join("nowal-out")),
            exit::STORE,
        );
        assert!(
            text(&o.stderr).contains("write-ahead log"),
            "{}",
            text(&o.stderr)
        );
        assert_eq!(std::fs::read(&nowal).unwrap(), before, "left untouched");
    }
}

/// Inputs that are not regular files (a pipe, a named pipe, `/dev/stdin`, `/dev/fd/N`) and inputs
/// that could not be read whole or hold next to no Tweet ID.
mod inputs {
    use super::*;
    use std::io::Write;
    use std::os::unix::process::CommandExt;

    /// Waits for `child` at most `secs` seconds; kills it (and fails with `what`) when it is still
    /// running then.
    fn wait_or_kill(child: Child, secs: u64, what: &str) -> Output {
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(secs);
        let waiter = std::thread::spawn(move || child.wait_with_output());
        while !waiter.is_finished() {
            if Instant::now() > deadline {
                // SAFETY: kill(2) on our own child, not reaped yet (the waiter has not returned).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                let out = waiter.join().unwrap().unwrap();
                panic!(
                    "{what}: engage still running after {secs} s\nstderr:\n{}",
                    text(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        waiter.join().unwrap().expect("waiting for engage")
    }

    /// The `inputs` table of a store: (name, SHA-256) per input.
    fn stored_inputs(db: &Path) -> Vec<(String, String)> {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut st = conn
            .prepare("SELECT source, sha256 FROM inputs ORDER BY idx")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// SHA-256 of `data` as engage computes it for a regular file holding it.
    fn fingerprint_of(data: &[u8]) -> String {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("copy");
        std::fs::write(&p, data).unwrap();
        engage::ids::fingerprint(&engage::ids::InputSource::File(p)).unwrap()
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    #[test]
    fn dev_stdin_with_piped_data_reads_every_id() {
        let sim = Sim::start(41, &[]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(41, 600, 10, BAD_LINES);
        let data = c.lines.join("\n") + "\n";
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        let mut child = run_cmd(&sim.url, Path::new("/dev/stdin"), &db, &out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(data.as_bytes())
            .unwrap();
        let o = wait_or_kill(child, 60, "--input /dev/stdin");
        assert_eq!(
            code(o.status),
            i32::from(exit::OK),
            "stderr:\n{}",
            text(&o.stderr)
        );
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["unique_ids"], 600, "{n:?}");
        assert_eq!(n["input_lines"], c.lines.len() as u64, "{n:?}");
        assert_eq!(n["rejected_lines"], BAD_LINES.len() as u64, "{n:?}");
        assert_eq!(
            stored_inputs(&db),
            vec![("/dev/stdin".to_string(), fingerprint_of(data.as_bytes()))]
        );
        // The rejects name the input as the user gave it.
        let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
        assert_eq!(
            rejects
                .lines()
                .filter(|l| l.starts_with("/dev/stdin,"))
                .count(),
            BAD_LINES.len(),
            "{rejects}"
        );
    }

    #[test]
    fn a_named_pipe_written_once_is_read_whole_once_and_fingerprinted_from_its_data() {
        let sim = Sim::start(42, &[]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(42, 3000, 0, &[]);
        let data = c.lines.join("\n") + "\n";
        let fifo = d.path().join("ids.fifo");
        mkfifo(&fifo);
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        let child = run_cmd(&sim.url, &fifo, &db, &out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // One writer, once: open (waits for the reader), write everything, close.
        let writer = {
            let (fifo, data) = (fifo.clone(), data.clone());
            std::thread::spawn(move || {
                let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                f.write_all(data.as_bytes()).unwrap();
            })
        };
        let o = wait_or_kill(
            child,
            60,
            "a named pipe written once (opened a second time, waiting for another writer?)",
        );
        writer.join().unwrap();
        assert_eq!(
            code(o.status),
            i32::from(exit::OK),
            "stderr:\n{}",
            text(&o.stderr)
        );
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["unique_ids"], 3000, "{n:?}");
        assert_eq!(n["input_lines"], 3000, "{n:?}");
        assert_eq!(
            stored_inputs(&db),
            vec![(fifo.display().to_string(), fingerprint_of(data.as_bytes()))]
        );
    }

    #[test]
    fn a_run_waiting_for_a_named_pipe_writer_stops_with_exit_4_on_sigterm() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("nobody-writes.fifo");
        mkfifo(&fifo);
        // The signal handler is installed just after start; a SIGTERM before it would kill the
        // process (no exit code): wait longer and try again then.
        for wait_ms in [300, 1000, 3000] {
            let db = d.path().join(format!("run-{wait_ms}.db"));
            let child = run_cmd("http://127.0.0.1:9", &fifo, &db, &d.path().join("out"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(wait_ms));
            // SAFETY: kill(2) on our own child, not reaped yet.
            assert_eq!(
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
                0
            );
            let o = wait_or_kill(child, 10, "one SIGTERM while waiting for a pipe's writer");
            if o.status.signal() == Some(libc::SIGTERM) {
                continue;
            }
            let err = text(&o.stderr);
            assert_eq!(
                code(o.status),
                i32::from(exit::INTERRUPTED),
                "stderr:\n{err}"
            );
            assert!(err.contains("nobody-writes.fifo"), "{err}");
            return;
        }
        panic!("engage never installed its SIGTERM handler");
    }

    #[test]
    fn an_inherited_pipe_named_by_proc_self_fd_is_read_once() {
        let sim = Sim::start(43, &[]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(43, 800, 0, &[]);
        let data = c.lines.join("\n") + "\n";
        let mut fds = [0 as libc::c_int; 2];
        // Close-on-exec, so that no other child spawned meanwhile (tests run in parallel) keeps a
        // copy of the write end open, which would keep the pipe from ever reaching its end.
        // SAFETY: pipe2(2) into a two-element array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (read_end, write_end) = (fds[0], fds[1]);
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        let mut cmd = run_cmd(&sim.url, Path::new("/proc/self/fd/7"), &db, &out);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec. The read end becomes fd 7
        // without close-on-exec (dup2 clears it; the flag is cleared by hand when it already is 7);
        // the write end is closed by the exec.
        unsafe {
            cmd.pre_exec(move || {
                let ok = if read_end == 7 {
                    libc::fcntl(7, libc::F_SETFD, 0)
                } else {
                    libc::dup2(read_end, 7)
                };
                if ok < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        // SAFETY: our own descriptors; the write end is owned by the File from here on.
        let mut w = unsafe {
            libc::close(read_end);
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(write_end)
        };
        w.write_all(data.as_bytes()).unwrap();
        drop(w);
        let o = wait_or_kill(child, 60, "--input /proc/self/fd/7");
        assert_eq!(
            code(o.status),
            i32::from(exit::OK),
            "stderr:\n{}",
            text(&o.stderr)
        );
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["unique_ids"], 800, "{n:?}");
        assert_eq!(
            stored_inputs(&db),
            vec![(
                "/proc/self/fd/7".to_string(),
                fingerprint_of(data.as_bytes())
            )]
        );
    }

    /// Like `-`: a resume reads the pipe again and compares what it read with the stored fingerprint.
    #[test]
    fn a_resume_of_a_piped_input_checks_what_is_piped_again() {
        let sim = Sim::start(44, &[]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(44, 500, 0, &[]);
        let data = c.lines.join("\n") + "\n";
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        let piped = |bytes: &[u8]| {
            let mut child = run_cmd(&sim.url, Path::new("/dev/stdin"), &db, &out)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(bytes).unwrap();
            wait_or_kill(child, 60, "--input /dev/stdin")
        };
        let first = piped(data.as_bytes());
        assert_eq!(
            code(first.status),
            i32::from(exit::OK),
            "{}",
            text(&first.stderr)
        );
        assert_eq!(counts(&read_json(&out.join("top.json")))["unique_ids"], 500);
        let report = std::fs::read(out.join("top.json")).unwrap();
        let again = piped(data.as_bytes());
        assert_eq!(
            code(again.status),
            i32::from(exit::OK),
            "{}",
            text(&again.stderr)
        );
        assert_eq!(std::fs::read(out.join("top.json")).unwrap(), report);
        let other = piped(b"1790000000000000001\n");
        let err = text(&other.stderr);
        assert_eq!(code(other.status), i32::from(exit::USAGE), "{err}");
        assert!(err.contains("inputs: stored [/dev/stdin"), "{err}");
    }

    /// `data` as a gzip stream of stored (uncompressed) deflate blocks of 65,535 bytes, cut `m` bytes
    /// into the data of block `k` (0-based): the cut does not depend on a compressor. Also returns the
    /// number of complete lines before the cut.
    fn cut_gzip(data: &[u8], k: usize, m: usize) -> (Vec<u8>, u64) {
        let mut g = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
        assert!(k < chunks.len() && m < chunks[k].len());
        for (i, c) in chunks.iter().enumerate().take(k + 1) {
            g.push(u8::from(i + 1 == chunks.len()));
            let len = c.len() as u16;
            g.extend_from_slice(&len.to_le_bytes());
            g.extend_from_slice(&(!len).to_le_bytes());
            g.extend_from_slice(if i == k { &c[..m] } else { c });
        }
        let kept = k * 65_535 + m;
        let lines = data[..kept].iter().filter(|&&b| b == b'\n').count() as u64;
        (g, lines)
    }

    #[test]
    fn a_truncated_gzip_keeps_what_was_read_and_exits_3_naming_the_file() {
        let sim = Sim::start(45, &[]);
        let d = tempfile::tempdir().unwrap();
        let c = collection(45, 20_000, 0, &[]);
        let data = c.lines.join("\n") + "\n";
        let (gz, complete) = cut_gzip(data.as_bytes(), 2, 1000);
        assert!(complete > 5000 && complete < 20_000, "{complete}");
        let input = d.path().join("cut.txt.gz");
        std::fs::write(&input, gz).unwrap();
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        let reason = format!("truncated or corrupt gzip stream after line {complete}");

        let o = expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::FAILED_IDS);
        let err = text(&o.stderr);
        assert!(err.contains("cut.txt.gz") && err.contains(&reason), "{err}");
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["unique_ids"], complete, "{n:?}");
        assert_eq!(
            n["ok"] + n["unavailable"] + n["forbidden"],
            complete,
            "{n:?}"
        );
        assert_eq!(n["damaged_inputs"], 1, "{n:?}");
        let rows = csv_rows(&out.join("rejects.csv"), 4);
        assert!(
            rows.iter().any(|r| r[0] == input.display().to_string()
                && r[1] == (complete + 1).to_string()
                && r[3] == reason),
            "{rows:?}"
        );

        // The store knows: a resume and `engage status` say it again.
        let o = expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::FAILED_IDS);
        let err = text(&o.stderr);
        assert!(err.contains("cut.txt.gz") && err.contains(&reason), "{err}");
        assert!(err.contains("0 requests"), "{err}");
        let o = expect_code(engage().arg("status").arg("--db").arg(&db), exit::OK);
        let s = text(&o.stdout);
        assert!(s.contains("cut.txt.gz") && s.contains(&reason), "{s}");
    }

    /// 2 MB of random bytes with 17 IDs among them.
    fn junk(path: &Path) {
        let mut rng = StdRng::seed_from_u64(46);
        let mut bytes = vec![0u8; 2 << 20];
        rng.fill(&mut bytes[..]);
        for id in snowflakes(17, &mut rng) {
            bytes.extend_from_slice(format!("\n{id}\n").as_bytes());
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_mostly_junk_input_stops_before_fetching_unless_accepted() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("photo.bin");
        junk(&input);
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        // Nothing listens there: a run that fetched would retry and fail, not exit 2 at once.
        let o = expect_code(
            &mut run_cmd("http://127.0.0.1:9", &input, &db, &out),
            exit::USAGE,
        );
        let err = text(&o.stderr);
        assert!(err.contains("photo.bin"), "{err}");
        assert!(err.contains("not Tweet IDs"), "{err}");
        assert!(err.contains("--accept-rejects"), "{err}");
        assert_eq!(StoreProgress::read_settled(&db).done, 0);

        let sim = Sim::start(46, &[]);
        expect_code(
            run_cmd(&sim.url, &input, &db, &out).arg("--accept-rejects"),
            exit::OK,
        );
        let n = counts(&read_json(&out.join("top.json")));
        // The random bytes hold an ID-like line or two besides the 17.
        assert!((17..30).contains(&n["unique_ids"]), "{n:?}");
        assert!(n["rejected_lines"] > 5000, "{n:?}");
        assert_eq!(n["damaged_inputs"], 0, "{n:?}");
        let rejects = std::fs::read(out.join("rejects.csv")).unwrap();
        assert!(rejects.len() > 100_000, "{} bytes", rejects.len());
    }
}

/// Looking at a store never makes it unresumable, a store that really lost commits is still
/// refused, and one store has one writer.
mod store_safety {
    use super::*;
    use std::net::TcpListener;

    /// `engage run` at one request in flight, so a slow simulator keeps it running.
    fn slow_run(url: &str, input: &Path, db: &Path, out: &Path) -> Command {
        let mut c = run_cmd(url, input, db, out);
        c.args(["--concurrency", "1"]);
        c
    }

    /// Runs until at least `done` IDs are committed, then kills the run with SIGKILL.
    fn killed_run(url: &str, input: &Path, db: &Path, out: &Path, done: u64) -> StoreProgress {
        let mut child = slow_run(url, input, db, out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("engage run starts");
        let mut seen = StoreProgress::default();
        while seen.done < done {
            seen = wait_for_progress(&mut child, db, seen, "the run to kill");
        }
        child.kill().unwrap();
        let st = child.wait().unwrap();
        assert_eq!(
            st.signal(),
            Some(libc::SIGKILL),
            "the run ended by itself before it was killed: too fast for this test"
        );
        seen
    }

    fn companion(db: &Path, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}", db.display()))
    }

    /// `sqlite3 DB SQL`, the shell docs/store.md suggests; missing, the test fails (CI installs it).
    fn sqlite3(db: &Path, sql: &str) -> String {
        let o =
            Command::new("sqlite3").arg(db).arg(sql).output().expect(
                "the sqlite3 shell must be installed for this test (apt-get install sqlite3)",
            );
        assert!(
            o.status.success(),
            "sqlite3 {sql}: {:?}\n{}",
            o.status,
            text(&o.stderr)
        );
        text(&o.stdout).trim().to_string()
    }

    #[test]
    fn reading_a_killed_store_with_engage_or_sqlite3_leaves_it_resumable() {
        let sim = Sim::start(41, &["--latency-ms", "20", "--deleted", "0.01"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        let c = collection(41, 8_000, 20, &["junk"]);
        c.write(&input);
        let ref_out = d.path().join("ref-out");
        expect_code(
            run_cmd(&sim.url, &input, &d.path().join("ref.db"), &ref_out)
                .args(["--concurrency", "2"]),
            exit::OK,
        );
        let reference = results_of(&ref_out, "top.json");

        for how in ["status", "report", "sqlite3"] {
            let (db, out) = (
                d.path().join(format!("{how}.db")),
                d.path().join(format!("{how}-out")),
            );
            killed_run(&sim.url, &input, &db, &out, 1_000);
            assert!(
                companion(&db, "-wal").exists() && companion(&db, "-engage").exists(),
                "{how}: a killed run leaves its WAL and marker"
            );
            match how {
                "status" => {
                    let o = expect_code(engage().arg("status").arg("--db").arg(&db), exit::OK);
                    assert!(text(&o.stdout).contains("pending:"), "{}", text(&o.stdout));
                }
                "report" => {
                    let look = d.path().join("look");
                    expect_code(
                        engage()
                            .arg("report")
                            .arg("--db")
                            .arg(&db)
                            .arg("--out")
                            .arg(&look),
                        exit::OK,
                    );
                    assert!(look.join("top.json").exists());
                }
                _ => {
                    let n = sqlite3(&db, "select count(*) from ids");
                    assert!(n.parse::<u64>().is_ok_and(|n| n > 0), "{n:?}");
                    assert!(
                        !companion(&db, "-wal").exists(),
                        "the shell's close folded the WAL into the database and deleted it"
                    );
                }
            }
            let o = expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::OK);
            assert!(
                results_of(&out, "top.json") == reference,
                "{how}: the resumed report differs from the uninterrupted run's\n{}",
                text(&o.stderr)
            );
        }
    }

    #[test]
    fn a_killed_store_copied_without_its_wal_is_refused() {
        let sim = Sim::start(42, &["--latency-ms", "20"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(42, 8_000, 0, &[]).write(&input);
        let db = d.path().join("live.db");
        killed_run(&sim.url, &input, &db, &d.path().join("out"), 1_000);
        let done = StoreProgress::read_settled(&db).done;
        let (copy, alone) = (d.path().join("copy.db"), d.path().join("alone.db"));
        for (suffix, to) in [("", &copy), ("-engage", &copy), ("", &alone)] {
            std::fs::copy(companion(&db, suffix), companion(to, suffix)).unwrap();
        }
        // The commits were in the WAL only: the database file alone holds fewer outcomes.
        let without: i64 = Connection::open(&alone)
            .unwrap()
            .query_row("SELECT count(*) FROM outcomes", [], |r| r.get(0))
            .unwrap();
        assert!(
            (without as u64) < done,
            "{without} outcomes in the database file, {done} with its WAL"
        );
        // Looked at first (engage status, the shell), then resumed: refused, untouched.
        let before = std::fs::read(&copy).unwrap();
        let o = expect_code(engage().arg("status").arg("--db").arg(&copy), exit::STORE);
        assert!(
            text(&o.stderr).contains("write-ahead log"),
            "{}",
            text(&o.stderr)
        );
        sqlite3(&copy, "select count(*) from ids");
        let o = expect_code(
            &mut run_cmd(&sim.url, &input, &copy, &d.path().join("copy-out")),
            exit::STORE,
        );
        let err = text(&o.stderr);
        assert!(
            err.contains("write-ahead log") && err.contains(&copy.display().to_string()),
            "{err}"
        );
        assert_eq!(std::fs::read(&copy).unwrap(), before, "left untouched");
    }

    /// Waits for `child` to exit; a child still running after a minute is killed and the test fails
    /// (a second writer that is not refused goes on fetching).
    fn exits(mut child: Child, what: &str) -> Output {
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!("{what} still running after 60 s\n{}", text(&o.stderr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    #[test]
    fn a_second_writer_is_refused_at_once_and_a_killed_writer_blocks_no_resume() {
        let sim = Sim::start(43, &["--latency-ms", "200"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        let c = collection(43, 10_000, 0, &[]);
        c.write(&input);
        // The demo's store name, so that `engage demo --dir` on the same folder meets it.
        let dir = d.path().join("demo");
        std::fs::create_dir(&dir).unwrap();
        let (db, out) = (dir.join("demo.db"), d.path().join("out"));
        let mut first = slow_run(&sim.url, &input, &db, &out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let seen = wait_for_progress(&mut first, &db, StoreProgress::default(), "the first run");
        let pid = first.id();

        // Looking at the store while it is written.
        let o = expect_code(engage().arg("status").arg("--db").arg(&db), exit::OK);
        assert!(text(&o.stdout).contains("pending:"), "{}", text(&o.stdout));
        expect_code(
            engage()
                .arg("report")
                .arg("--db")
                .arg(&db)
                .arg("--out")
                .arg(d.path().join("look")),
            exit::OK,
        );

        // A second writer, pointed at a listener that counts what reaches it.
        let api = TcpListener::bind("127.0.0.1:0").unwrap();
        api.set_nonblocking(true).unwrap();
        let url = format!("http://{}", api.local_addr().unwrap());
        let second = slow_run(&url, &input, &db, &d.path().join("out2"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = exits(second, "the second writer");
        let err = text(&o.stderr);
        assert_eq!(code(o.status), i32::from(exit::USAGE), "{err}");
        assert!(
            err.contains(&format!("pid {pid}"))
                && err.contains("started 20")
                && err.contains(&db.display().to_string()),
            "{err}"
        );
        assert!(
            matches!(api.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the second writer connected to the API"
        );
        assert!(
            !d.path().join("out2").exists(),
            "the second writer wrote a report"
        );

        // `engage demo` in the folder of a store in use deletes nothing.
        let o = exits(
            engage()
                .args(["demo", "--ids", "1000", "--dir"])
                .arg(&dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            "engage demo",
        );
        assert_eq!(
            code(o.status),
            i32::from(exit::USAGE),
            "{}",
            text(&o.stderr)
        );
        assert!(text(&o.stderr).contains(&format!("pid {pid}")));
        assert!(
            !dir.join("ids.csv").exists(),
            "the refused demo wrote its input"
        );
        let now = StoreProgress::read_settled(&db);
        assert!(
            now.done >= seen.done,
            "the store in use was replaced: {seen:?} -> {now:?}"
        );

        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before the test was done: too fast for this test"
        );
        first.kill().unwrap();
        first.wait().unwrap();
        // Its lock file stays behind; the lock itself went with the process.
        assert_eq!(file_mode(&companion(&db, "-lock")), 0o600);
        expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::OK);
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["unique_ids"], c.unique.len() as u64, "{n:?}");
        assert_eq!(n["ok"] + n["unavailable"], c.unique.len() as u64, "{n:?}");
    }
}

/// Snapshots (insta, under `tests/snapshots/`) of what a person reads: each subcommand's `--help`,
/// and `engage status` of a finished run. A change to either fails here until the snapshot is
/// reviewed and accepted (`cargo insta review`, or `INSTA_UPDATE=always` and a look at the diff).
mod snapshots {
    use super::*;

    /// `engage ARGS` on a fixed terminal width, so that clap lays the help out alike everywhere.
    fn help(args: &[&str]) -> String {
        let o = expect_code(engage().args(args).env("COLUMNS", "100"), exit::OK);
        text(&o.stdout)
    }

    #[test]
    fn engage_help() {
        insta::assert_snapshot!("engage_help", help(&["--help"]));
    }

    #[test]
    fn run_help() {
        insta::assert_snapshot!("run_help", help(&["run", "--help"]));
    }

    #[test]
    fn status_help() {
        insta::assert_snapshot!("status_help", help(&["status", "--help"]));
    }

    #[test]
    fn report_help() {
        insta::assert_snapshot!("report_help", help(&["report", "--help"]));
    }

    #[test]
    fn demo_help() {
        insta::assert_snapshot!("demo_help", help(&["demo", "--help"]));
    }

    #[test]
    fn sim_help() {
        insta::assert_snapshot!("sim_help", help(&["sim", "--help"]));
    }

    /// 40 Tweet IDs from the hours before [`NOW`], three of them twice, and the bad lines: written
    /// out by arithmetic rather than drawn from a generator, so the input's bytes (and the sha256
    /// that `status` prints) stay the same whatever the `rand` version.
    fn fixed_input() -> String {
        let ids: Vec<u64> = (0..40u64)
            .map(|i| ((now_ms() - TWEPOCH_MS - (i + 1) * 5 * 3_600_000) << 22) | (i * 7919))
            .collect();
        let mut lines: Vec<String> = ids.iter().map(u64::to_string).collect();
        lines.extend(ids[..3].iter().map(u64::to_string));
        lines.extend(BAD_LINES.iter().map(|s| s.to_string()));
        lines.join("\n") + "\n"
    }

    #[test]
    fn status_of_a_finished_run() {
        let sim = Sim::start(5, &["--deleted", "0.1"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        std::fs::write(&input, fixed_input()).unwrap();
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::OK);
        let o = expect_code(engage().arg("status").arg("--db").arg(&db), exit::OK);
        let mut stdout = text(&o.stdout);
        for dir in [d.path().to_path_buf(), d.path().canonicalize().unwrap()] {
            stdout = stdout.replace(&dir.display().to_string(), "[TMP]");
        }
        insta::assert_snapshot!("status", stdout);
    }
}

/// Partial results as the API documents them, against the simulator: Tweets older than 90 days
/// (impressions and engagements not served) and older than 1800 days (video views not served)
/// mixed with recent ones, with and without the documentation's variant shapes (counts as bare
/// numbers, a metric not asked for, an extra `errors` string).
mod partial_results {
    use super::*;

    /// IDs created around `days` days before [`NOW`].
    fn aged(n: usize, days: u64, rng: &mut StdRng) -> Vec<u64> {
        let at = now_ms() - days * 24 * 3600 * 1000;
        (0..n)
            .map(|_| {
                let ms = at - rng.random_range(0..10 * 24 * 3600 * 1000);
                ((ms - TWEPOCH_MS) << 22) | rng.random_range(0..1u64 << 22)
            })
            .collect()
    }

    /// tweets.csv rows: id -> (values by column, not_served).
    type Rows = BTreeMap<u64, (Vec<Option<u64>>, String)>;

    /// tweets.csv: the header and the rows.
    fn tweets(out: &Path) -> (Vec<String>, Rows) {
        let text = std::fs::read_to_string(out.join("tweets.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap()
            .split(',')
            .map(str::to_string)
            .collect();
        assert_eq!(header.last().map(String::as_str), Some("not_served"));
        let rows = lines
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                assert_eq!(cells.len(), header.len(), "{l}");
                let values = cells[1..cells.len() - 1]
                    .iter()
                    .map(|c| (!c.is_empty()).then(|| c.parse().unwrap()))
                    .collect();
                (
                    cells[0].parse().unwrap(),
                    (values, cells[cells.len() - 1].to_string()),
                )
            })
            .collect();
        (header, rows)
    }

    #[test]
    fn values_the_api_does_not_serve_are_blank_counted_apart_and_never_ranked() {
        let d = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(12);
        let recent = snowflakes(300, &mut rng);
        let past_90 = aged(100, 900, &mut rng); // 2024: too old for impressions, engagements
        let past_1800 = aged(100, 2_600, &mut rng); // 2019: too old for video views as well
        let mut lines: Vec<String> = recent
            .iter()
            .chain(&past_90)
            .chain(&past_1800)
            .map(u64::to_string)
            .collect();
        lines.shuffle(&mut rng);
        let input = d.path().join("mixed.txt");
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let metrics = "impressions,engagements,favorites,video_views";

        let mut runs = Vec::new();
        for (name, extra) in [("plain", &[][..]), ("shapes", &["--doc-shapes", "1.0"][..])] {
            let sim = Sim::start(7, extra);
            let (db, out) = (
                d.path().join(format!("{name}.db")),
                d.path().join(format!("{name}-out")),
            );
            expect_code(
                run_cmd(&sim.url, &input, &db, &out).args(["--metrics", metrics]),
                exit::OK,
            );
            runs.push((db, out));
        }
        let (db, out) = &runs[0];
        let (header, rows) = tweets(out);
        assert_eq!(
            header[1..5],
            ["impressions", "engagements", "favorites", "video_views"]
        );
        let ok = |ids: &[u64]| ids.iter().filter(|id| rows.contains_key(id)).count() as u64;
        let (n_recent, n_90, n_1800) = (ok(&recent), ok(&past_90), ok(&past_1800));
        assert!(
            n_recent > 250 && n_90 > 80 && n_1800 > 80,
            "{n_recent} {n_90} {n_1800}"
        );
        for id in &recent {
            if let Some((v, why)) = rows.get(id) {
                assert!(
                    v.iter().all(Option::is_some) && why.is_empty(),
                    "{id}: {v:?} {why}"
                );
            }
        }
        for id in &past_90 {
            if let Some((v, why)) = rows.get(id) {
                assert_eq!((v[0], v[1]), (None, None), "{id}");
                assert!(v[2].is_some() && v[3].is_some(), "{id}: {v:?}");
                assert_eq!(why, "impressions:90-day;engagements:90-day");
            }
        }
        for id in &past_1800 {
            if let Some((v, why)) = rows.get(id) {
                assert_eq!(
                    (v[0], v[1], v[3]),
                    (None, None, None),
                    "{id}: the documented video_views 0 is not a count"
                );
                assert!(v[2].is_some(), "{id}");
                assert_eq!(
                    why,
                    "impressions:90-day;engagements:90-day;video_views:1800-day"
                );
            }
        }

        // The totals are over the Tweets served, and say how many; top.json's counts add up.
        let top = read_json(&out.join("top.json"));
        let served = |m: &str| top["served"][m].as_u64().unwrap();
        let not_served = |m: &str| top["not_served"][m].as_u64().unwrap();
        assert_eq!(served("impressions"), n_recent);
        assert_eq!(served("video_views"), n_recent + n_90);
        assert_eq!(served("favorites"), n_recent + n_90 + n_1800);
        assert_eq!(not_served("impressions"), n_90 + n_1800);
        assert_eq!(not_served("video_views"), n_1800);
        assert_eq!(
            top["not_served_by_reason"]["video_views"]["1800-day"],
            n_1800
        );
        assert_eq!(
            top["not_served_by_reason"]["engagements"]["90-day"],
            n_90 + n_1800
        );
        for (k, m) in ["impressions", "engagements", "favorites", "video_views"]
            .iter()
            .enumerate()
        {
            assert_eq!(
                served(m) + not_served(m),
                top["counts"]["ok"].as_u64().unwrap(),
                "{m}"
            );
            let sum: u64 = rows.values().filter_map(|(v, _)| v[k]).sum();
            assert_eq!(top["totals"][m].as_u64().unwrap(), sum, "{m}");
            // Never ranked: every ranked Tweet has a value in tweets.csv, and it is that value.
            for e in top["top"][m].as_array().unwrap() {
                let id: u64 = e["tweet_id"].as_str().unwrap().parse().unwrap();
                assert_eq!(rows[&id].0[k], e["value"].as_u64(), "{m} ranks {id}");
            }
        }
        // The API's message about the 90-day rule, with the IDs it came with.
        let messages = top["messages"].as_array().unwrap();
        let old = messages
            .iter()
            .find(|m| {
                m["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("Impressions & engagements for tweets older than 90 days")
            })
            .unwrap_or_else(|| panic!("{messages:?}"));
        assert_eq!(
            (old["from"].as_str(), old["ids"].as_u64()),
            (Some("api"), Some(n_90 + n_1800))
        );
        let outcomes = std::fs::read_to_string(out.join("outcomes.csv")).unwrap();
        let flagged = outcomes
            .lines()
            .filter(|l| l.contains(",ok,") && l.contains("older than 90 days"))
            .count() as u64;
        assert_eq!(
            flagged,
            n_90 + n_1800,
            "outcomes.csv names the IDs the message is about"
        );
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(
            html.contains(&format!("Not served by the API: impressions and engagements for {} Tweets older than 90 days; video_views for {n_1800} Tweets older than 1800 days.", n_90 + n_1800)),
            "the report's sentence"
        );
        // The fetch's own figures per app (the default one here) are in the page too.
        assert!(
            html.contains("id=\"apps\"") && html.contains("<td>default</td>"),
            "the apps card"
        );
        let status = expect_code(engage().arg("status").arg("--db").arg(db), exit::OK);
        let said = text(&status.stdout);
        assert!(said.contains("not served: impressions ("), "{said}");
        assert!(
            said.contains("messages that came with the answers:")
                && said.contains("Impressions & engagements"),
            "{said}"
        );

        // The documentation's other shapes change no number: tweets.csv is the same, the extra
        // message and the metric not asked for are said.
        let (_, shaped) = tweets(&runs[1].1);
        assert_eq!(shaped, rows);
        let top2 = read_json(&runs[1].1.join("top.json"));
        for key in ["totals", "served", "not_served", "top", "counts"] {
            assert_eq!(top2[key], top[key], "{key}");
        }
        let texts: Vec<(&str, &str)> = top2["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["from"].as_str().unwrap(), m["text"].as_str().unwrap()))
            .collect();
        assert!(
            texts.contains(&("api", engage_sim::faults::DOC_SHAPES_ERROR)),
            "{texts:?}"
        );
        assert!(
            texts.iter().any(|(from, t)| *from == "engage"
                && t.starts_with("the API returned retweets, which this run did not ask for")),
            "{texts:?}"
        );
    }

    /// A store written by the previous schema (2) is upgraded in place: nothing lost, and a resume
    /// goes on writing the new columns.
    #[test]
    fn a_schema_2_store_is_upgraded_and_resumed() {
        let d = tempfile::tempdir().unwrap();
        let sim = Sim::start(3, &[]);
        let c = collection(31, 400, 0, &[]);
        let input = d.path().join("ids.txt");
        c.write(&input);
        let (db, out) = (d.path().join("run.db"), d.path().join("out"));
        expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::OK);
        let reference = results_of(&out, "top.json");
        // Back to schema 2 as it was: no new columns or tables, and half the outcomes forgotten.
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(
                "DROP VIEW tweets; DROP TABLE messages; DROP TABLE id_messages;
                 DROP TABLE groups; DROP TABLE id_groups;
                 ALTER TABLE outcomes DROP COLUMN not_served; ALTER TABLE partial DROP COLUMN not_served;
                 CREATE VIEW tweets AS SELECT i.id, coalesce(o.status, 'pending') AS status FROM ids i LEFT JOIN outcomes o ON o.id = i.id;
                 DELETE FROM outcomes WHERE id % 2 = 0; DELETE FROM meta WHERE key IN ('done_below', 'report_pass');
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        expect_code(&mut run_cmd(&sim.url, &input, &db, &out), exit::OK);
        assert_eq!(results_of(&out, "top.json"), reference);
        let conn = Connection::open(&db).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, engage::store::SCHEMA_VERSION);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM tweets WHERE not_served IS NULL AND status = 'ok'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(n > 0);
    }
}

mod groups {
    use super::*;

    /// The parts of a `top.json` (or of one of its `groups`) that a run over a group's IDs alone
    /// must equal: the outcome counts, the totals, what they are over, and the top-N lists.
    fn figures(v: &serde_json::Value) -> serde_json::Value {
        let c = &v["counts"];
        let counts: serde_json::Map<String, serde_json::Value> = [
            "unique_ids",
            "ok",
            "unavailable",
            "forbidden",
            "failed",
            "pending",
        ]
        .iter()
        .map(|k| (k.to_string(), c[*k].clone()))
        .collect();
        serde_json::json!({
            "counts": counts,
            "totals": v["totals"],
            "served": v["served"],
            "not_served": v["not_served"],
            "not_served_by_reason": v["not_served_by_reason"],
            "top": v["top"],
            "engagement_rate": v["engagement_rate"],
        })
    }

    /// Each ranked engagement rate is its Tweet's engagements / impressions (tweets.csv), with at
    /// least `min` impressions; the overall rate is the ratio of the sums over Tweets with both.
    fn check_rates(out: &Path, min: u64) {
        let top = read_json(&out.join("top.json"));
        let rate = &top["engagement_rate"];
        assert_eq!(rate["min_impressions"], min);
        let text = std::fs::read_to_string(out.join("tweets.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name| header.iter().position(|h| *h == name).unwrap();
        let (e, i) = (col("engagements"), col("impressions"));
        let mut rows = BTreeMap::new();
        let (mut sum_e, mut sum_i, mut tweets) = (0u64, 0u64, 0u64);
        let mut eligible = Vec::new();
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            let (Ok(ev), Ok(iv)) = (f[e].parse::<u64>(), f[i].parse::<u64>()) else {
                continue;
            };
            let id: u64 = f[0].parse().unwrap();
            rows.insert(id, (ev, iv));
            (sum_e, sum_i, tweets) = (sum_e + ev, sum_i + iv, tweets + 1);
            if iv >= min && ev > 0 {
                eligible.push((ev * 1_000_000 / iv, id));
            }
        }
        assert_eq!(
            (rate["engagements"].as_u64(), rate["impressions"].as_u64()),
            (Some(sum_e), Some(sum_i))
        );
        assert_eq!(rate["tweets"], tweets);
        let want = sum_e as f64 / sum_i as f64;
        assert!(
            (rate["rate"].as_f64().unwrap() - want).abs() < 1e-12,
            "{rate}"
        );
        eligible.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let listed: Vec<(u64, u64)> = rate["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let id: u64 = t["tweet_id"].as_str().unwrap().parse().unwrap();
                let (ev, iv) = rows[&id];
                assert!(iv >= min, "{id}: {iv} impressions ranked");
                let v = t["value"].as_f64().unwrap();
                assert!((v - ev as f64 / iv as f64).abs() < 1e-6, "{id}: {v}");
                ((v * 1e6).round() as u64, id)
            })
            .collect();
        let n = top["top_n"].as_u64().unwrap() as usize;
        let expected: Vec<(u64, u64)> = eligible.into_iter().take(n).collect();
        assert_eq!(listed, expected);
    }

    /// The issue's "done when": three overlapping groups (from a CSV group column, one cell naming
    /// two groups, repeated rows, and a file's name) in one run; each group's figures equal a
    /// separate run over that group's IDs alone, and each ID was asked for once.
    #[test]
    fn three_overlapping_groups_equal_three_separate_runs_and_shared_ids_are_fetched_once() {
        let d = tempfile::tempdir().unwrap();
        // No protected Tweets: every ID asked for is answered (deleted ones as unavailable).
        let sim = Sim::start(41, &["--deleted", "0.05", "--protected", "0"]);
        let mut rng = StdRng::seed_from_u64(41);
        let ids = snowflakes(600, &mut rng);
        let brand: BTreeSet<u64> = ids[0..250].iter().copied().collect();
        let rival: BTreeSet<u64> = ids[200..420].iter().copied().collect();
        let spring: BTreeSet<u64> = ids[150..300]
            .iter()
            .chain(&ids[400..450])
            .copied()
            .collect();
        let union: BTreeSet<u64> = brand.iter().chain(&rival).chain(&spring).copied().collect();
        let several = union
            .iter()
            .filter(|id| {
                [&brand, &rival, &spring]
                    .iter()
                    .filter(|g| g.contains(id))
                    .count()
                    > 1
            })
            .count() as u64;

        // campaigns.csv: brand and spring, as one `brand|spring` cell for half of the IDs in
        // both and as two rows for the other half; rival.txt: named by --group-from file.
        let mut rows = vec!["tweet_id,group".to_string()];
        for (i, id) in union.iter().enumerate() {
            match (brand.contains(id), spring.contains(id)) {
                (true, true) if i % 2 == 0 => rows.push(format!("{id},brand | spring")),
                (true, true) => {
                    rows.push(format!("{id},spring"));
                    rows.push(format!("{id},brand"));
                }
                (true, false) => rows.push(format!("{id},brand")),
                (false, true) => rows.push(format!("{id},spring")),
                (false, false) => {}
            }
        }
        rows.shuffle(&mut rng);
        let header = rows.iter().position(|r| r == "tweet_id,group").unwrap();
        rows.swap(0, header);
        let inputs = d.path().join("inputs");
        std::fs::create_dir(&inputs).unwrap();
        std::fs::write(inputs.join("campaigns.csv"), rows.join("\n") + "\n").unwrap();
        let rival_lines: Vec<String> = rival.iter().map(u64::to_string).collect();
        std::fs::write(inputs.join("rival.txt"), rival_lines.join("\n") + "\n").unwrap();

        let (db, out) = (d.path().join("all.db"), d.path().join("all"));
        let (requests, answered) = (sim.received(), sim.ids_answered());
        expect_code(
            run_cmd(&sim.url, &inputs, &db, &out).args(["--top", "5", "--group-from", "file"]),
            exit::OK,
        );
        let grouped_requests = sim.received() - requests;
        assert_eq!(
            sim.ids_answered() - answered,
            union.len() as u64,
            "every ID, shared or not, asked for once"
        );
        let all = read_json(&out.join("top.json"));
        assert_adds_up(&all);
        assert_eq!(all["counts"]["unique_ids"], union.len() as u64);
        check_rates(&out, 100);
        assert_eq!(all["in_several_groups"], several);
        let groups = all["groups"].as_object().expect("top.json has groups");
        assert_eq!(
            groups.keys().collect::<Vec<_>>(),
            ["brand", "rival", "spring"]
        );
        let status =
            text(&expect_code(engage().arg("status").arg("--db").arg(&db), exit::OK).stdout);
        let listed = format!(
            "groups:    brand ({} IDs), rival ({} IDs), spring ({} IDs)",
            brand.len(),
            rival.len(),
            spring.len()
        );
        assert!(
            status.contains(&listed),
            "engage status lists the groups:\n{status}"
        );

        let mut separate_requests = 0;
        for (name, members) in [("brand", &brand), ("rival", &rival), ("spring", &spring)] {
            let file = d.path().join(format!("{name}-alone.txt"));
            let lines: Vec<String> = members.iter().map(u64::to_string).collect();
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
            let (db1, out1) = (d.path().join(format!("{name}.db")), d.path().join(name));
            let (requests, answered) = (sim.received(), sim.ids_answered());
            expect_code(
                run_cmd(&sim.url, &file, &db1, &out1).args(["--top", "5"]),
                exit::OK,
            );
            separate_requests += sim.received() - requests;
            assert_eq!(sim.ids_answered() - answered, members.len() as u64);
            let alone = read_json(&out1.join("top.json"));
            assert!(alone.get("groups").is_none(), "no groups, no key");
            assert!(alone["engagement_rate"]["tweets"].as_u64().unwrap() > 0);
            assert_eq!(figures(&groups[name]), figures(&alone), "group {name}");
            assert_eq!(groups[name]["counts"]["unique_ids"], members.len() as u64);
        }
        assert!(
            grouped_requests < separate_requests,
            "{grouped_requests} requests for the groups together, {separate_requests} apart"
        );

        // groups.csv: one row per group and metric, its totals those of top.json.
        let csv = std::fs::read_to_string(out.join("groups.csv")).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("group,metric,tweets,total,mean,median,p90,max")
        );
        let metrics = all["totals"].as_object().unwrap().len();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 3 * metrics);
        for r in &rows {
            assert_eq!(
                groups[r[0]]["totals"][r[1]],
                r[3].parse::<u64>().unwrap(),
                "{r:?}"
            );
            assert_eq!(
                groups[r[0]]["served"][r[1]],
                r[2].parse::<u64>().unwrap(),
                "{r:?}"
            );
            let max = groups[r[0]]["top"][r[1]][0]["value"].as_u64().unwrap_or(0);
            assert_eq!(r[7].parse::<u64>().unwrap_or(0), max, "{r:?}");
        }
    }

    /// Groups are part of the run's identity: a resume with another `--group` is refused naming
    /// it, and a run stopped by SIGTERM resumes (same command) to the report of an uninterrupted
    /// run, groups included.
    #[test]
    fn a_grouped_run_resumes_to_the_same_report_and_refuses_other_groups() {
        let d = tempfile::tempdir().unwrap();
        let sim = Sim::start(43, &["--deleted", "0.02", "--latency-ms", "20"]);
        let c = collection(43, 3_000, 100, BAD_LINES);
        let input = d.path().join("campaign.txt");
        c.write(&input);
        // Half of the IDs also in a CSV naming their group, the rest in --group's.
        let mut csv = String::from("tweet_id,group\n");
        for (i, id) in c.unique.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            csv.push_str(&format!(
                "{id},{}\n",
                if i % 4 == 0 { "rival" } else { "brand|rival" }
            ));
        }
        let tagged = d.path().join("tagged.csv");
        std::fs::write(&tagged, csv).unwrap();
        let slow = ["--concurrency", "1", "--group", "campaign", "--top", "7"];
        let cmd = |db: &Path, out: &Path| {
            let mut c = run_cmd(&sim.url, &input, db, out);
            c.arg("--input").arg(&tagged).args(slow);
            c
        };
        let (ref_out, db, out) = (
            d.path().join("ref-out"),
            d.path().join("run.db"),
            d.path().join("out"),
        );
        expect_code(&mut cmd(&d.path().join("ref.db"), &ref_out), exit::OK);
        let reference = read_json(&ref_out.join("top.json"));
        let groups = reference["groups"].as_object().expect("groups");
        assert_eq!(
            groups.keys().collect::<Vec<_>>(),
            ["brand", "campaign", "rival"]
        );
        assert_eq!(
            groups["campaign"]["counts"]["unique_ids"],
            c.unique.len() as u64
        );

        let mut child = cmd(&db, &out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let since = StoreProgress {
            lines: u64::MAX,
            done: 0,
        };
        wait_for_progress(&mut child, &db, since, "grouped run");
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet.
        assert_eq!(
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            code(o.status),
            i32::from(exit::INTERRUPTED),
            "{}",
            text(&o.stderr)
        );

        let mut other = run_cmd(&sim.url, &input, &db, &out);
        other.arg("--input").arg(&tagged).args([
            "--concurrency",
            "1",
            "--group",
            "brand",
            "--top",
            "7",
        ]);
        let err = text(&expect_code(&mut other, exit::USAGE).stderr);
        assert!(
            err.contains("group: stored Some(\"campaign\"), now Some(\"brand\")"),
            "{err}"
        );

        expect_code(&mut cmd(&db, &out), exit::OK);
        assert_eq!(
            results_of(&out, "top.json"),
            results_of(&ref_out, "top.json")
        );
        for f in ["groups.csv", "tweets.csv", "top.csv"] {
            assert_eq!(results_of(&out, f), results_of(&ref_out, f), "{f}");
        }
    }

    /// `--group-from folder`: the first folder under the input folder names the group of every
    /// file below it (however deep); a file directly in the input folder takes `--group`.
    #[test]
    fn group_from_folder_names_groups_by_the_first_folder_under_the_input() {
        let d = tempfile::tempdir().unwrap();
        let sim = Sim::start(44, &[]);
        let mut rng = StdRng::seed_from_u64(44);
        let ids = snowflakes(90, &mut rng);
        let root = d.path().join("tweets");
        for (dir, part) in [
            ("brand/2026", &ids[0..30]),
            ("rival", &ids[30..60]),
            ("", &ids[60..90]),
        ] {
            let folder = root.join(dir);
            std::fs::create_dir_all(&folder).unwrap();
            let lines: Vec<String> = part.iter().map(u64::to_string).collect();
            std::fs::write(folder.join("ids.txt"), lines.join("\n") + "\n").unwrap();
        }
        let out = d.path().join("out");
        expect_code(
            run_cmd(&sim.url, &root, &d.path().join("run.db"), &out).args([
                "--group-from",
                "folder",
                "--group",
                "loose",
            ]),
            exit::OK,
        );
        let top = read_json(&out.join("top.json"));
        let groups = top["groups"].as_object().expect("groups");
        assert_eq!(
            groups.keys().collect::<Vec<_>>(),
            ["brand", "loose", "rival"]
        );
        for g in ["brand", "loose", "rival"] {
            assert_eq!(groups[g]["counts"]["unique_ids"], 30, "{g}");
        }
        assert_eq!(top["in_several_groups"], 0);
    }
}

/// `engage run --history` night after night, and `engage history add|status|report` on the files
/// they leave: a killed add, a repeated add, an unfinished store.
mod history {
    use super::*;

    const NIGHTS: [&str; 3] = [NOW, "2026-11-21T12:00:00Z", "2026-11-22T12:00:00Z"];

    fn history_cmd(args: &[&str], history: &Path) -> Command {
        let mut c = engage();
        c.arg("history").args(args).arg("--history").arg(history);
        c
    }

    /// What `history report` writes that does not change with the time it is written.
    fn report_files(history: &Path, out: &Path) -> BTreeMap<String, String> {
        let o = expect_code(
            history_cmd(&["report"], history).arg("--out").arg(out),
            exit::OK,
        );
        assert!(
            text(&o.stdout).contains("movers.json"),
            "{}",
            text(&o.stdout)
        );
        ["movers.json", "movers.md", "movers.csv", "nights.csv"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read_to_string(out.join(f)).unwrap()))
            .collect()
    }

    #[test]
    fn nights_added_by_run_and_a_killed_add_leaves_the_history_before_or_after() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        let c = collection(31, 400, 0, &[]);
        c.write(&input);
        let hist = d.path().join("history.db");
        let db = |k: usize| d.path().join(format!("night{k}.db"));
        // Two nights through `engage run --history`.
        for (k, night) in NIGHTS.iter().enumerate().take(2) {
            let sim = Sim::start_at(31, night, &[]);
            let o = expect_code(
                run_cmd(&sim.url, &input, &db(k), &d.path().join(format!("out{k}")))
                    .arg("--history")
                    .arg(&hist),
                exit::OK,
            );
            assert!(text(&o.stdout).contains("added to"), "{}", text(&o.stdout));
        }
        let before = report_files(&hist, &d.path().join("before"));
        let movers: serde_json::Value = serde_json::from_str(&before["movers.json"]).unwrap();
        assert!(
            !movers["metrics"]["impressions"]
                .as_array()
                .unwrap()
                .is_empty(),
            "a day of the simulator's clock moves impressions: {movers}"
        );
        // The third night without it, then added by hand.
        let sim = Sim::start_at(31, NIGHTS[2], &[]);
        expect_code(
            &mut run_cmd(&sim.url, &input, &db(2), &d.path().join("out2")),
            exit::OK,
        );
        drop(sim);
        let add = || {
            let mut c = history_cmd(&["add"], &hist);
            c.arg("--db").arg(db(2));
            c
        };
        // How many Tweets the add changes, from an add into a copy of the history.
        let copy = d.path().join("copy.db");
        std::fs::copy(&hist, &copy).unwrap();
        let o = expect_code(
            history_cmd(&["add"], &copy).arg("--db").arg(db(2)),
            exit::OK,
        );
        let out = text(&o.stdout);
        let rows: usize = out
            .split("IDs; ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no row count in {out}"));
        assert!(rows > 10, "{out}");
        // Aborted inside the add (as kill -9 would) at several points, the commit's eve included.
        let points = [
            "history-add:1".to_string(),
            format!("history-add:{}", rows / 2),
            format!("history-add:{rows}"),
            "history-commit:1".to_string(),
        ];
        for point in &points {
            let o = add()
                .env("ENGAGE_FAILPOINT", point)
                .output()
                .expect("engage history add runs");
            assert_eq!(
                o.status.signal(),
                Some(libc::SIGABRT),
                "{point}: {}",
                text(&o.stderr)
            );
            assert_eq!(
                report_files(&hist, &d.path().join("after-abort")),
                before,
                "{point}"
            );
        }
        // A real SIGKILL at some point of the add: before or after, nothing between.
        let mut child = add().stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let _ = child.kill();
        let _ = child.wait();
        let killed = report_files(&hist, &d.path().join("killed"));
        // Added whole (if the kill came late, this finds it held).
        let o = expect_code(&mut add(), exit::OK);
        let out = text(&o.stdout);
        assert!(
            out.contains("added to") || out.contains("already in"),
            "{out}"
        );
        let after = report_files(&hist, &d.path().join("after"));
        assert!(
            killed == before || killed == after,
            "a killed add left something between"
        );
        assert_ne!(after, before);
        assert_eq!(
            after["nights.csv"]
                .lines()
                .filter(|l| l.contains(",impressions,"))
                .count(),
            3
        );
        // Adding it again changes nothing.
        let o = expect_code(&mut add(), exit::OK);
        assert!(
            text(&o.stdout).contains("already in"),
            "{}",
            text(&o.stdout)
        );
        assert_eq!(report_files(&hist, &d.path().join("again")), after);

        let o = expect_code(&mut history_cmd(&["status"], &hist), exit::OK);
        let status = text(&o.stdout);
        assert!(status.contains("runs:      3\n"), "{status}");
        assert_eq!(status.matches("/totals").count(), 3, "{status}");
        assert!(status.contains("400 IDs (400 ok)"), "{status}");
        assert!(status.contains("MB on disk"), "{status}");
    }

    #[test]
    fn demo_nights_adds_each_night_and_shows_the_movers() {
        let d = tempfile::tempdir().unwrap();
        let o = expect_code(
            engage()
                .args(["demo", "--nights", "2", "--ids", "3000", "--dir"])
                .arg(d.path()),
            exit::OK,
        );
        let out = text(&o.stdout);
        assert!(out.contains("what moved since the night before"), "{out}");
        assert!(out.contains("  impressions: "), "{out}");
        let movers = read_json(&d.path().join("history/movers.json"));
        assert_eq!(movers["snapshots"].as_array().unwrap().len(), 2, "{movers}");
        assert!(!movers["metrics"]["impressions"]
            .as_array()
            .unwrap()
            .is_empty());
        for f in ["nights.csv", "movers.md", "movers.csv", "history.html"] {
            assert!(d.path().join("history").join(f).is_file(), "{f}");
        }
    }

    #[test]
    fn an_unfinished_run_adds_nothing_and_is_refused_by_history_add() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(32, 300, 0, &[]).write(&input);
        let db = d.path().join("run.db");
        let hist = d.path().join("history.db");
        expect_code(
            run_cmd(&url, &input, &db, &d.path().join("out"))
                .args(["--outage-limit-secs", "1", "--history"])
                .arg(&hist),
            exit::INTERRUPTED,
        );
        assert!(!hist.exists(), "an interrupted run created the history");
        let o = expect_code(
            history_cmd(&["add"], &hist)
                .arg("--db")
                .arg(&db)
                .args(["--as-of", NOW]),
            exit::USAGE,
        );
        let err = text(&o.stderr);
        assert!(err.contains("has not finished"), "{err}");
        assert!(err.contains("300 of 300 IDs pending"), "{err}");
        assert!(err.contains(&db.display().to_string()), "{err}");
        // Nothing to report from a history with no run, and no history where there is none.
        expect_code(
            history_cmd(&["report"], &d.path().join("none.db"))
                .arg("--out")
                .arg(d.path()),
            exit::USAGE,
        );
        // A run store is not a history.
        let o = expect_code(&mut history_cmd(&["status"], &db), exit::STORE);
        assert!(text(&o.stderr).contains("run store"), "{}", text(&o.stderr));
    }
}

/// `deploy/kubernetes/` and the `Dockerfile`: the manifests parse and carry what the sharded run
/// needs, and the pods' script, run as the manifests give it (script, environment), shards and
/// merges a collection to the single run's report.
mod deploy {
    use super::*;
    use yaml_rust2::{Yaml, YamlLoader};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn load(name: &str) -> Yaml {
        let path = repo().join("deploy/kubernetes").join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut docs = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        assert_eq!(docs.len(), 1, "{name}: one document");
        docs.remove(0)
    }

    fn s<'a>(y: &'a Yaml, what: &str) -> &'a str {
        y.as_str()
            .unwrap_or_else(|| panic!("{what}: not a string: {y:?}"))
    }

    fn n(y: &Yaml, what: &str) -> i64 {
        y.as_i64()
            .unwrap_or_else(|| panic!("{what}: not a number: {y:?}"))
    }

    /// The pod template's one container.
    fn container(cron: &Yaml) -> &Yaml {
        let c = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_vec().map(Vec::len), Some(1), "one container");
        &c[0]
    }

    /// The container's plain `value:` variables.
    fn values(c: &Yaml) -> BTreeMap<String, String> {
        c["env"]
            .as_vec()
            .expect("env")
            .iter()
            .filter(|e| !e["value"].is_badvalue())
            .map(|e| {
                (
                    s(&e["name"], "env name").to_string(),
                    s(&e["value"], "env value").to_string(),
                )
            })
            .collect()
    }

    /// The shell script the container runs (`sh -c SCRIPT`).
    fn script(c: &Yaml) -> String {
        let cmd: Vec<&str> = c["command"]
            .as_vec()
            .expect("command")
            .iter()
            .map(|x| s(x, "command"))
            .collect();
        assert_eq!(cmd, ["/bin/sh", "-c"]);
        s(&c["args"][0], "args").to_string()
    }

    #[test]
    fn the_manifests_carry_an_indexed_job_its_secret_volume_and_image() {
        let cron = load("cronjob.yaml");
        assert_eq!(s(&cron["apiVersion"], "apiVersion"), "batch/v1");
        assert_eq!(s(&cron["kind"], "kind"), "CronJob");
        assert!(!s(&cron["spec"]["schedule"], "schedule").is_empty());
        assert_eq!(
            s(&cron["spec"]["concurrencyPolicy"], "concurrencyPolicy"),
            "Forbid"
        );
        let job = &cron["spec"]["jobTemplate"]["spec"];
        assert_eq!(s(&job["completionMode"], "completionMode"), "Indexed");
        let completions = n(&job["completions"], "completions");
        assert_eq!(n(&job["parallelism"], "parallelism"), completions);
        assert!(n(&job["backoffLimitPerIndex"], "backoffLimitPerIndex") > 0);
        // Retrying cannot help after bad usage or a damaged store: the documented exit codes.
        let rules = job["podFailurePolicy"]["rules"]
            .as_vec()
            .expect("podFailurePolicy rules");
        let fail: Vec<i64> = rules
            .iter()
            .find(|r| s(&r["action"], "action") == "FailIndex")
            .expect("a FailIndex rule")["onExitCodes"]["values"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|v| n(v, "exit code"))
            .collect();
        assert_eq!(fail, [i64::from(exit::USAGE), i64::from(exit::STORE)]);
        assert!(rules.iter().any(|r| s(&r["action"], "action") == "Ignore"
            && s(&r["onPodConditions"][0]["type"], "type") == "DisruptionTarget"));
        let pod = &job["template"]["spec"];
        assert_eq!(s(&pod["restartPolicy"], "restartPolicy"), "Never");

        let c = container(&cron);
        assert_eq!(s(&c["name"], "container name"), "engage");
        assert!(s(&c["image"], "image").contains("engage"));
        let env = values(c);
        assert_eq!(
            env["SHARDS"],
            completions.to_string(),
            "SHARDS = completions"
        );
        let sh = script(c);
        assert!(sh.contains("I=\"$JOB_COMPLETION_INDEX\""), "{sh}");
        assert!(sh.contains("engage run --shard \"$I/$SHARDS\""), "{sh}");
        assert!(sh.contains("engage merge --db $dbs"), "{sh}");

        // Credentials only from the Secret, never a value in the manifest.
        let secret = load("secret.example.yaml");
        let secret_name = s(&secret["metadata"]["name"], "secret name");
        let keys = secret["stringData"].as_hash().expect("stringData");
        for var in [
            "ENGAGE_CONSUMER_KEY",
            "ENGAGE_CONSUMER_SECRET",
            "ENGAGE_ACCESS_TOKEN",
            "ENGAGE_ACCESS_TOKEN_SECRET",
            "ENGAGE_BEARER_TOKEN",
        ] {
            let e = c["env"]
                .as_vec()
                .unwrap()
                .iter()
                .find(|e| e["name"].as_str() == Some(var))
                .unwrap_or_else(|| panic!("{var} not in the container's env"));
            assert!(
                e["value"].is_badvalue(),
                "{var} has a value in the manifest"
            );
            let r = &e["valueFrom"]["secretKeyRef"];
            assert_eq!(s(&r["name"], "secret"), secret_name);
            assert!(
                keys.contains_key(&Yaml::String(s(&r["key"], "key").into())),
                "{var}"
            );
        }
        assert!(!env.keys().any(|k| k.starts_with("ENGAGE_")));

        // The stores live on the claimed volume, mounted where DATA says.
        let pvc = load("pvc.yaml");
        assert_eq!(s(&pvc["kind"], "kind"), "PersistentVolumeClaim");
        assert_eq!(
            s(&pvc["spec"]["accessModes"][0], "accessMode"),
            "ReadWriteMany"
        );
        let mount = &c["volumeMounts"][0];
        assert_eq!(s(&mount["mountPath"], "mountPath"), env["DATA"]);
        let volume = pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        assert_eq!(
            s(&volume["persistentVolumeClaim"]["claimName"], "claimName"),
            s(&pvc["metadata"]["name"], "pvc name")
        );
        assert!(env["INPUT"].starts_with(&env["DATA"]));

        // The image the manifests run: built in one stage, run slim, as the pods' user.
        let docker = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
        let froms: Vec<&str> = docker.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert_eq!(froms.len(), 2, "{froms:?}");
        assert!(froms[0].starts_with("FROM rust:") && froms[0].ends_with(" AS build"));
        assert_eq!(froms[1], "FROM debian:bookworm-slim");
        assert!(docker.contains("ca-certificates"));
        assert!(
            docker.contains("COPY --from=build /src/target/release/engage /usr/local/bin/engage")
        );
        let uid = n(&pod["securityContext"]["runAsUser"], "runAsUser");
        assert!(
            docker.contains(&format!("USER {uid}")),
            "the image runs as {uid}"
        );
    }

    /// Runs the pods' script for index `i` with the manifest's environment, `over` replacing the
    /// cluster's own (the volume's path, the API's URL) and the demo credentials for the Secret.
    fn pod(sh: &str, env: &BTreeMap<String, String>, i: u32, over: &[(&str, String)]) -> Output {
        let bin = Path::new(env!("CARGO_BIN_EXE_engage")).parent().unwrap();
        let mut c = Command::new("/bin/sh");
        c.env_clear()
            .arg("-c")
            .arg(sh)
            .envs(env)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .env("RUN_ID", "engage-nightly-1")
            .env("RUST_LOG", "warn");
        for (k, v) in over {
            c.env(k, v);
        }
        demo_credentials(&mut c);
        c.output().expect("sh runs")
    }

    #[test]
    fn the_pods_script_runs_each_shard_and_the_last_one_merges_the_single_runs_report() {
        let cron = load("cronjob.yaml");
        let c = container(&cron);
        let (sh, env) = (script(c), values(c));
        let shards: u32 = env["SHARDS"].parse().unwrap();
        let sim = Sim::start(41, &[]);
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(data.join("input")).unwrap();
        let col = collection(41, 900, 60, BAD_LINES);
        col.write(&data.join("input/ids.txt"));
        let over = [
            ("DATA", data.display().to_string()),
            ("INPUT", data.join("input").display().to_string()),
            ("BASE_URL", sim.url.clone()),
            // The manifest's budget per second instead of per 15 minutes: the same flags, faster.
            ("WINDOW_SECS", "1".to_string()),
        ];
        for i in 0..shards {
            let o = pod(&sh, &env, i, &over);
            let out = text(&o.stdout);
            assert_eq!(code(o.status), 0, "pod {i}\n{out}\n{}", text(&o.stderr));
            if i + 1 < shards {
                assert!(
                    out.contains("the merge waits for the other shards"),
                    "pod {i}: {out}"
                );
            } else {
                assert!(out.contains("merged the night into"), "pod {i}: {out}");
            }
        }
        // The last pod again (a retry after the merge): nothing to fetch, the same merge.
        let o = pod(&sh, &env, shards - 1, &over);
        assert_eq!(code(o.status), 0, "{}", text(&o.stderr));
        let night = data.join("runs/engage-nightly-1");
        let single = d.path().join("single");
        expect_code(
            run_cmd(
                &sim.url,
                &data.join("input"),
                &d.path().join("single.db"),
                &single,
            )
            .args(["--endpoint", &env["ENDPOINT"]])
            .args(["--rate", &env["RATE"], "--window-secs", "1"]),
            exit::OK,
        );
        for f in REPORTS {
            assert_eq!(
                results_of(&night.join("report"), f),
                results_of(&single, f),
                "{f}"
            );
        }
        // And the night is in the history.
        let o = expect_code(
            engage()
                .args(["history", "status", "--history"])
                .arg(data.join("history.db")),
            exit::OK,
        );
        assert!(text(&o.stdout).contains("totals"), "{}", text(&o.stdout));
    }

    #[test]
    fn merge_and_shard_refusals_exit_2_naming_the_cause_and_status_names_the_shard() {
        let sim = Sim::start(43, &[]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(43, 300, 10, BAD_LINES).write(&input);
        let db = |i: u32| d.path().join(format!("shard-{i}.db"));
        let shard = |i: u32| {
            let mut c = run_cmd(&sim.url, &input, &db(i), &d.path().join(format!("out-{i}")));
            c.args(["--shard", &format!("{i}/2")]);
            c
        };
        let o = expect_code(
            run_cmd(&sim.url, &input, &db(9), &d.path().join("x")).args(["--shard", "2/2"]),
            exit::USAGE,
        );
        assert!(
            text(&o.stderr).contains("I must be below N"),
            "{}",
            text(&o.stderr)
        );
        // A shard is not a night of the history: refused before anything runs, and by hand.
        let o = expect_code(
            shard(0).arg("--history").arg(d.path().join("h.db")),
            exit::USAGE,
        );
        assert!(
            text(&o.stderr).contains("engage merge --history"),
            "{}",
            text(&o.stderr)
        );
        assert!(!db(0).exists());
        expect_code(&mut shard(0), exit::OK);
        let o = expect_code(
            engage()
                .args(["history", "add", "--history"])
                .arg(d.path().join("h.db"))
                .arg("--db")
                .arg(db(0)),
            exit::USAGE,
        );
        assert!(
            text(&o.stderr).contains("is shard 0/2 of a run"),
            "{}",
            text(&o.stderr)
        );
        let o = expect_code(engage().args(["status", "--db"]).arg(db(0)), exit::OK);
        assert!(
            text(&o.stdout).contains("shard:     0/2"),
            "{}",
            text(&o.stdout)
        );
        let merge = |dbs: &[PathBuf]| {
            let mut c = engage();
            c.arg("merge")
                .arg("--db")
                .args(dbs)
                .arg("--out")
                .arg(d.path().join("merged"));
            c
        };
        let o = expect_code(&mut merge(&[db(0)]), exit::USAGE);
        assert!(
            text(&o.stderr).contains("shard 1/2 of the run missing"),
            "{}",
            text(&o.stderr)
        );
        let o = expect_code(&mut merge(&[db(0), db(0)]), exit::USAGE);
        assert!(
            text(&o.stderr).contains("shard 0/2 is given twice"),
            "{}",
            text(&o.stderr)
        );
        expect_code(&mut shard(1), exit::OK);
        let o = expect_code(&mut merge(&[db(1), db(0)]), exit::OK);
        assert!(
            text(&o.stdout).contains("merged 2 shards into"),
            "{}",
            text(&o.stdout)
        );
        assert!(d.path().join("merged.db").exists() && d.path().join("merged/top.json").exists());
    }

    #[test]
    fn a_shard_killed_with_sigkill_and_run_again_gives_the_single_runs_merge() {
        let sim = Sim::start(44, &["--latency-ms", "20", "--deleted", "0.05"]);
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("ids.txt");
        collection(44, 3000, 200, BAD_LINES).write(&input);
        let db = |i: u32| d.path().join(format!("shard-{i}.db"));
        let shard = |i: u32| {
            let mut c = run_cmd(&sim.url, &input, &db(i), &d.path().join(format!("out-{i}")));
            c.args(["--shard", &format!("{i}/2"), "--concurrency", "1"]);
            c
        };
        expect_code(&mut shard(0), exit::OK);
        let mut child = shard(1)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_progress(
            &mut child,
            &db(1),
            StoreProgress {
                lines: u64::MAX,
                done: 0,
            },
            "shard 1",
        );
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
        let merge = || {
            let mut c = engage();
            c.arg("merge")
                .arg("--db")
                .args([db(0), db(1)])
                .arg("--out")
                .arg(d.path().join("merged"));
            c
        };
        let o = expect_code(&mut merge(), exit::USAGE);
        assert!(
            text(&o.stderr).contains("(shard 1/2) is not finished"),
            "{}",
            text(&o.stderr)
        );
        expect_code(&mut shard(1), exit::OK);
        expect_code(&mut merge(), exit::OK);
        let single = d.path().join("single");
        expect_code(
            run_cmd(&sim.url, &input, &d.path().join("single.db"), &single)
                .args(["--concurrency", "1"]),
            exit::OK,
        );
        for f in REPORTS {
            assert_eq!(
                results_of(&d.path().join("merged"), f),
                results_of(&single, f),
                "{f}"
            );
        }
    }
}
