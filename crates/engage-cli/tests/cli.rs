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
    c.env("ENGAGE_CONSUMER_KEY", "demo-consumer-key")
        .env("ENGAGE_CONSUMER_SECRET", "demo-consumer-secret")
        .env("ENGAGE_ACCESS_TOKEN", "demo-access-token")
        .env("ENGAGE_ACCESS_TOKEN_SECRET", "demo-access-token-secret")
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
        let mut child = engage()
            .args(["sim", "--addr", "127.0.0.1:0", "--now", NOW, "--seed"])
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
fn expect_code(cmd: &mut Command, want: i32) -> Output {
    let out = cmd.output().expect("engage runs");
    assert_eq!(
        code(out.status),
        want,
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

fn counts(top: &serde_json::Value) -> BTreeMap<String, u64> {
    top["counts"]
        .as_object()
        .expect("top.json has counts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect()
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
            0,
        );
        let n = counts(&read_json(&out.join("top.json")));
        assert_eq!(n["unique_ids"], 700);
        assert_eq!(n["duplicate_ids"], 20);
        assert_eq!(n["rejected_lines"], BAD_LINES.len() as u64);
        assert_eq!(n["failed"], 0);
        assert!(n["unavailable"] > 0, "{n:?}");
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
            2,
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
            2,
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
            2,
        );
        let err = text(&out.stderr);
        assert!(err.contains("example.com"), "{err}");
        assert!(
            err.contains("insecure") || err.contains("refusing plain http"),
            "{err}"
        );
        assert!(
            !d.path().join("run.db").exists(),
            "no store for a refused run"
        );
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
            3,
        );
        assert!(
            text(&o.stderr).contains("outcomes.csv"),
            "{}",
            text(&o.stderr)
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
            0,
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
        assert_eq!(code(o.status), 4, "stderr:\n{err}");
        assert!(err.contains("resume"), "{err}");
        let after = StoreProgress::read_settled(&db);
        assert!(
            after.done >= seen.done && after.done < c.unique.len() as u64,
            "stopped early with its progress kept: {after:?}, seen {seen:?}"
        );

        expect_code(run_cmd(&sim.url, &input, &db, &out).args(slow), 0);
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
            4,
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
        let status = text(&expect_code(engage().arg("status").arg("--db").arg(&db), 0).stdout);
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
            5,
        );
        let err = text(&o.stderr);
        assert!(err.contains(&db.display().to_string()), "{err}");
        let o = expect_code(engage().arg("status").arg("--db").arg(db), 5);
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
            0,
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
        expect_code(&mut run_cmd(&sim.url, &input, &db, &out), 0);
        let n = counts(&read_json(&out.join("top.json")));

        let o = expect_code(engage().arg("status").arg("--db").arg(&db), 0);
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
            0,
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
        let final_run = expect_code(&mut crash_cmd(&sim.url, &input, &db, &out), 0);
        let reference = reference.join().expect("reference thread");
        assert_eq!(
            code(reference.status),
            0,
            "reference run:\n{}",
            text(&reference.stderr)
        );

        // The report is exactly the uninterrupted run's.
        assert!(
            std::fs::read(out.join("top.json")).unwrap()
                == std::fs::read(dir.join("ref-out").join("top.json")).unwrap(),
            "top.json after {KILLS} kills differs from the uninterrupted run's"
        );
        for name in REPORTS {
            assert!(
                std::fs::read(dir.join("ref-out").join(name)).unwrap()
                    == std::fs::read(out.join(name)).unwrap(),
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

mod secrets {
    use super::*;

    const CONSUMER_KEY: &str = "SeCrEt-consumer-9f8e7d";
    const CONSUMER_SECRET: &str = "SeCrEt-csecret-3c2b1a";
    const ACCESS_TOKEN: &str = "SeCrEt-token-6a5b4c";
    const ACCESS_TOKEN_SECRET: &str = "SeCrEt-tsecret-0d9e8f";
    const BEARER_TOKEN: &str = "SeCrEt-bearer-7e6d5c";
    const ALL: [&str; 5] = [
        CONSUMER_KEY,
        CONSUMER_SECRET,
        ACCESS_TOKEN,
        ACCESS_TOKEN_SECRET,
        BEARER_TOKEN,
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
    fn credentials_appear_nowhere_and_files_are_owner_only() {
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
            let o = expect_code(&mut cmd, 0);
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
                0,
            );
            assert_clean("engage status stdout", &status.stdout);
            assert_clean("engage status stderr", &status.stderr);

            let files = files_in(&out);
            assert!(files.len() >= 6, "{files:?}");
            for f in &files {
                assert_clean(&f.display().to_string(), &std::fs::read(f).unwrap());
                assert_eq!(file_mode(f), 0o600, "{}", f.display());
            }
            for suffix in ["", "-wal", "-shm"] {
                let p = PathBuf::from(format!("{}{suffix}", db.display()));
                if p.exists() {
                    assert_clean(&p.display().to_string(), &std::fs::read(&p).unwrap());
                    assert_eq!(file_mode(&p), 0o600, "{}", p.display());
                }
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
            0,
        );
        let reference = read_json(&ref_out.join("top.json"));
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
                    0,
                );
                assert_eq!(read_json(&out.join("top.json")), reference, "{point}:{n}");
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
            0,
        );
        let reference = read_json(&ref_out.join("top.json"));

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
            0,
        );
        assert_eq!(read_json(&d.path().join("copy-out/top.json")), reference);
        assert_complete(&copy, &c);

        let before = std::fs::read(&nowal).unwrap();
        let o = expect_code(
            &mut run_cmd(&sim.url, &input, &nowal, &d.path().join("nowal-out")),
            5,
        );
        assert!(
            text(&o.stderr).contains("write-ahead log"),
            "{}",
            text(&o.stderr)
        );
        assert_eq!(std::fs::read(&nowal).unwrap(), before, "left untouched");
    }
}
