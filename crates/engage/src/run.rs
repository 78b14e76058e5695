//! The main job, as a chain of stages:
//!
//! ```text
//! inputs ─fingerprint─▶ identity check ─ingest─▶ store (pending IDs, deduplicated)
//!   store ─pages of pending IDs─▶ batches ─K concurrent─▶ fetcher (pace + gate + retries)
//!   fetcher ─outcomes per response─▶ writer thread (one transaction each, top-N heaps) ─▶ reports
//! ```
//!
//! Resume rules: the identity must match; ingest continues after the recorded position; the heaps are
//! rebuilt from the `ok` rows, so nothing is ever counted twice; only `pending` IDs are fetched.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use engagement_api::client::{Client, ClientConfig};
use engagement_api::{AuthKind, Endpoint, Metric, Window};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::fetch::{Abort, BatchEnd, FetchStats, Fetcher, Granularity, Job, RetryPolicy};
use crate::gate::{pace, Gate};
use crate::health::{Health, OutagePolicy};
use crate::ids::{self, IdsError, InputSource, ReadOptions, Record};
use crate::report::{self, ReportError, Summary};
use crate::route::{Route, Routes};
use crate::sorted::{self, Sorter};
use crate::store::{Commit, IngestCounts, RejectRow, Store, StoreError, WriterMsg, INGEST_BLOCK};

/// Everything a run needs, validated.
pub struct RunSpec {
    /// Input paths (`-` for stdin).
    pub inputs: Vec<String>,
    /// Format and CSV column options.
    pub read: ReadOptions,
    /// The store.
    pub db: PathBuf,
    /// Where reports go.
    pub out: PathBuf,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The metrics.
    pub metrics: Vec<Metric>,
    /// Which credentials serve which IDs.
    pub routes: Routes,
    /// Owner of every input ID that has none in its CSV `account` column (`--account`).
    pub default_account: Option<String>,
    /// N of the top-N.
    pub top_n: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Local budget: N requests per window.
    pub rate: Option<(u32, Duration)>,
    /// HTTP settings.
    pub client: ClientConfig,
    /// Retry settings.
    pub retry: RetryPolicy,
    /// When the API counts as unreachable, how it is probed, and how long an outage may last.
    pub outage: OutagePolicy,
    /// `/historical` period, any length: fetched as consecutive windows of at most 28 days.
    pub period: Option<Window>,
    /// How the period was asked for (e.g. `days=90`). It is part of the identity, and a relative period
    /// is resolved once: a resume keeps the stored period.
    pub period_spec: Option<String>,
    /// Time-series jobs: the granularity of the per-Tweet series.
    pub series: Option<Granularity>,
    /// Send the IDs that ended `failed` in an earlier life once more.
    pub retry_failed: bool,
}

/// What identifies a run; a resume must match it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Endpoint name.
    pub endpoint: String,
    /// Metric names.
    pub metrics: Vec<String>,
    /// `user` or `bearer`.
    pub auth: String,
    /// Names of the configured owner accounts.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// `--account`, the owner of IDs without one.
    #[serde(default)]
    pub account: Option<String>,
    /// N.
    pub top_n: usize,
    /// The period as asked for, if any.
    pub window: Option<String>,
    /// Series granularity of time-series jobs.
    #[serde(default)]
    pub series: Option<String>,
    /// Forced format, if any.
    pub format: Option<String>,
    /// CSV ID column, if any.
    pub id_column: Option<String>,
    /// (input display name, SHA-256 of its bytes).
    pub inputs: Vec<(String, String)>,
}

impl Identity {
    /// What differs from `other` (the stored one), one phrase each.
    pub fn differences(&self, stored: &Identity) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |what: &str, now: String, then: String| {
            if now != then {
                d.push(format!("{what}: stored {then}, now {now}"));
            }
        };
        cmp("endpoint", self.endpoint.clone(), stored.endpoint.clone());
        cmp("metrics", self.metrics.join(","), stored.metrics.join(","));
        cmp("auth", self.auth.clone(), stored.auth.clone());
        cmp(
            "accounts",
            self.accounts.join(","),
            stored.accounts.join(","),
        );
        cmp(
            "account",
            format!("{:?}", self.account),
            format!("{:?}", stored.account),
        );
        cmp("top N", self.top_n.to_string(), stored.top_n.to_string());
        cmp(
            "window",
            format!("{:?}", self.window),
            format!("{:?}", stored.window),
        );
        cmp(
            "series",
            format!("{:?}", self.series),
            format!("{:?}", stored.series),
        );
        cmp(
            "format",
            format!("{:?}", self.format),
            format!("{:?}", stored.format),
        );
        cmp(
            "id column",
            format!("{:?}", self.id_column),
            format!("{:?}", stored.id_column),
        );
        if self.inputs != stored.inputs {
            let show = |v: &[(String, String)]| {
                v.iter()
                    .map(|(n, h)| format!("{n} ({})", &h[..12.min(h.len())]))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            d.push(format!(
                "inputs: stored [{}], now [{}]",
                show(&stored.inputs),
                show(&self.inputs)
            ));
        }
        d
    }
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Inputs could not be read.
    #[error(transparent)]
    Input(#[from] IdsError),
    /// The store is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store belongs to another run.
    #[error("{db} holds a different run; resume it with the same settings or use another --db:\n  {}", .differences.join("\n  "))]
    IdentityMismatch {
        /// The store.
        db: PathBuf,
        /// What differs.
        differences: Vec<String>,
    },
    /// The HTTP client could not be built (e.g. insecure URL).
    #[error("{0}")]
    Client(String),
    /// A problem every request would hit.
    #[error(transparent)]
    Abort(#[from] Abort),
    /// Writing reports failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Anything else (I/O).
    #[error("{0}")]
    Other(String),
}

/// Live figures for the progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Current phase: "fingerprint", "ingest", "fetch", "report".
    pub phase: Mutex<&'static str>,
    /// Lines ingested so far.
    pub ingested: AtomicU64,
    /// Unique IDs in the run.
    pub total: AtomicU64,
    /// IDs with an outcome.
    pub resolved: AtomicU64,
    /// Fetch counters.
    pub fetch: Arc<FetchStats>,
    /// The gate, to show "waiting for rate limit until ...".
    pub gate: Arc<Gate>,
    /// The breaker, to show "API unreachable since ..." and why a run gave up.
    pub health: Arc<Health>,
}

impl Progress {
    fn set_phase(&self, p: &'static str) {
        *self.phase.lock().expect("progress lock") = p;
    }

    /// The current phase.
    pub fn phase(&self) -> &'static str {
        *self.phase.lock().expect("progress lock")
    }

    /// When the gate is closed, until when.
    pub fn waiting_until(&self) -> Option<SystemTime> {
        self.gate.closed_until(SystemTime::now())
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report's figures.
    pub summary: Summary,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Stopped by a shutdown request before every ID had an outcome.
    pub interrupted: bool,
    /// Requests sent in this life.
    pub requests: u64,
    /// Retries in this life.
    pub retries: u64,
    /// 429s in this life.
    pub rate_limited: u64,
}

/// Resolves inputs, spooling stdin next to the store so a resume can check and re-read it.
fn resolve_inputs(spec: &RunSpec) -> Result<Vec<InputSource>, RunError> {
    let mut specs = Vec::new();
    for s in &spec.inputs {
        if s == "-" {
            let dir = spec
                .db
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let p = ids::spool_stdin(dir)
                .map_err(|e| RunError::Other(format!("reading standard input: {e}")))?;
            specs.push(p.to_string_lossy().into_owned());
        } else {
            specs.push(s.clone());
        }
    }
    Ok(ids::expand_inputs(&specs)?)
}

/// Runs (or resumes) the job to the end, or until `shutdown` becomes true.
pub async fn run(
    spec: RunSpec,
    progress: Arc<Progress>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunOutcome, RunError> {
    let client = Client::new(spec.client.clone()).map_err(|e| RunError::Client(e.to_string()))?;
    progress.health.configure(spec.outage, client.base_url());

    let started = std::time::Instant::now();
    progress.set_phase("fingerprint");
    let sources = resolve_inputs(&spec)?;
    let mut fingerprints = Vec::with_capacity(sources.len());
    for s in &sources {
        fingerprints.push((s.display_name(), ids::fingerprint(s)?));
    }
    let identity = Identity {
        endpoint: spec.endpoint.as_str().into(),
        metrics: spec
            .metrics
            .iter()
            .map(|m| m.as_str().to_string())
            .collect(),
        auth: spec.routes.kind().to_string(),
        accounts: spec
            .routes
            .accounts
            .iter()
            .map(|(n, _)| n.clone())
            .collect(),
        account: spec.default_account.clone(),
        top_n: spec.top_n,
        window: spec.period_spec.clone(),
        series: spec.series.map(|g| g.as_str().to_string()),
        format: spec.read.format.map(|f| format!("{f:?}").to_lowercase()),
        id_column: spec.read.id_column.clone(),
        inputs: fingerprints,
    };

    let mut store = Store::open(&spec.db)?;
    crate::fsutil::restrict(&spec.db);
    match store.meta("identity")? {
        Some(stored) => {
            let stored: Identity = serde_json::from_str(&stored).map_err(|e| {
                RunError::Other(format!(
                    "{}: unreadable run identity: {e}",
                    spec.db.display()
                ))
            })?;
            let differences = identity.differences(&stored);
            if !differences.is_empty() {
                return Err(RunError::IdentityMismatch {
                    db: spec.db.clone(),
                    differences,
                });
            }
        }
        None => {
            store.set_inputs(&identity.inputs)?;
            store.set_meta(
                "identity",
                &serde_json::to_string(&identity).expect("serializes"),
            )?;
        }
    }

    tracing::info!(elapsed = ?started.elapsed(), "inputs fingerprinted, identity checked");
    // The period is resolved once; a resume uses the stored one.
    let period = match store.meta("period")? {
        Some(p) => Some(parse_period(&p).ok_or_else(|| {
            RunError::Other(format!(
                "{}: unreadable stored period `{p}`",
                spec.db.display()
            ))
        })?),
        None => {
            if let Some(w) = spec.period {
                store.set_meta("period", &format_period(&w))?;
            }
            spec.period
        }
    };
    let windows: Vec<Option<Window>> = match (spec.endpoint, period) {
        (Endpoint::Historical, Some(p)) => engagement_api::window::split(p.start, p.end)
            .into_iter()
            .map(Some)
            .collect(),
        _ => vec![None],
    };
    // The inputs are read and sorted on their own thread, which hands the writer blocks of unique IDs
    // in ascending order (see `sorted`). On a fresh store, fetching starts with the first block: the
    // batch producer's keyset cursor follows the ingest, which only ever adds IDs above the ones it
    // has added. A store with IDs from an earlier life and an unfinished ingest finishes the ingest
    // first, since its IDs need not be a prefix of that order.
    let mut ingest = None;
    if !store.ingest_state()?.0 {
        let plan = IngestPlan {
            sources,
            read: spec.read.clone(),
            default_account: spec.default_account.clone(),
            spill_dir: spec
                .db
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        };
        if store.unique_count()? == 0 {
            ingest = Some(plan);
        } else {
            progress.set_phase("ingest");
            ingest_now(&mut store, plan, &progress, shutdown.clone())?;
        }
    }
    tracing::info!(elapsed = ?started.elapsed(), overlapped = ingest.is_some(), "ingest done");

    if spec.retry_failed {
        let n = store.retry_failed()?;
        tracing::info!(ids = n, "failed IDs made pending again");
    }
    let (unique, pending) = store.unique_and_pending()?;
    progress.total.store(unique, Ordering::Relaxed);
    progress.resolved.store(unique - pending, Ordering::Relaxed);

    tracing::info!(elapsed = ?started.elapsed(), pending, "store opened");
    let mut interrupted = false;
    let mut abort = None;
    let mut report_pass = None;
    if (pending > 0 || ingest.is_some()) && !*shutdown.borrow() {
        progress.set_phase("fetch");
        // The report's pass over the outcomes runs beside the fetch, over the IDs below the resume
        // watermark (final, so no later commit changes them); only the rest is left for the end.
        let watermark = Arc::new(AtomicU64::new(store.done_below()?));
        let fetching = Arc::new(AtomicBool::new(true));
        // A pass an earlier life saved goes on where it stopped.
        let saved = store
            .meta(REPORT_PASS)?
            .and_then(|raw| serde_json::from_str::<report::ScanCheckpoint>(&raw).ok())
            .and_then(|c| report::Scan::resume(&spec.out, &spec.metrics, spec.top_n, &c));
        let started = match saved {
            Some(scan) => {
                tracing::info!(from = scan.upto(), "report pass resumed");
                scan
            }
            None => {
                // Forgotten before its files are started again.
                store.delete_meta(REPORT_PASS)?;
                report::Scan::start(&spec.out, &spec.metrics, spec.top_n)?
            }
        };
        let reporter = {
            let (db, watermark, fetching) = (spec.db.clone(), watermark.clone(), fetching.clone());
            std::thread::spawn(move || -> Result<report::Scan, RunError> {
                let store = Store::open_cursor(&db)?;
                let mut pass = started;
                let mut saved_at = (pass.upto(), std::time::Instant::now());
                let every = Duration::from_millis(tuning("ENGAGE_REPORT_SAVE_MS").unwrap_or(500));
                loop {
                    let last = !fetching.load(Ordering::Acquire);
                    pass.advance(&store, Some(watermark.load(Ordering::Acquire)))?;
                    if last {
                        return Ok(pass);
                    }
                    // Saved now and then (a write beside the run's writer, so not often).
                    if pass.upto() > saved_at.0 && saved_at.1.elapsed() >= every {
                        let c = pass.checkpoint()?;
                        store.set_meta(
                            REPORT_PASS,
                            &serde_json::to_string(&c).expect("serializes"),
                        )?;
                        saved_at = (pass.upto(), std::time::Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let plan = FetchPlan {
            windows,
            ingest,
            watermark,
        };
        let fetched = fetch_all(&spec, plan, client, store, &progress, shutdown.clone()).await;
        fetching.store(false, Ordering::Release);
        let pass = tokio::task::spawn_blocking(move || reporter.join())
            .await
            .map_err(|e| RunError::Other(format!("report join: {e}")))?
            .map_err(|_| RunError::Other("the report thread panicked".into()))?;
        let (store2, end) = fetched?;
        report_pass = Some(pass?);
        store = store2;
        match end {
            FetchEnd::Complete => {}
            FetchEnd::Interrupted => interrupted = true,
            FetchEnd::Abort(a) => abort = Some(a),
        }
    } else if pending > 0 || ingest.is_some() {
        interrupted = true;
    }
    // Stopped before the end of the inputs (with nothing pending, possibly): not a finished run.
    interrupted |= !store.ingest_state()?.0;

    tracing::info!(elapsed = ?started.elapsed(), "fetch done");
    progress.set_phase("report");
    // The heaps are filled from the store's `ok` rows, once, in the pass that writes tweets.csv:
    // whatever happened in earlier lives, nothing is counted twice.
    let (summary, files) = match report_pass {
        Some(pass) => {
            report::finish_reports(pass, &store, spec.endpoint, spec.series, report::SPLIT_AT)?
        }
        None => report::write_reports(
            &spec.out,
            &store,
            spec.endpoint,
            &spec.metrics,
            spec.top_n,
            spec.series,
        )?,
    };
    // Its files are renamed into the report: nothing left to go on with.
    store.delete_meta(REPORT_PASS)?;
    let pending_left = summary.status.pending > 0;
    tracing::info!(elapsed = ?started.elapsed(), "reports written");
    if let Some(a) = abort {
        return Err(a.into());
    }
    Ok(RunOutcome {
        summary,
        files,
        interrupted: interrupted || pending_left,
        requests: progress.fetch.requests.load(Ordering::Relaxed),
        retries: progress.fetch.retries.load(Ordering::Relaxed),
        rate_limited: progress.fetch.rate_limited.load(Ordering::Relaxed),
    })
}

/// Test hooks, like `ENGAGE_FAILPOINT`: `ENGAGE_SORT_RUN` (records per sorted run, so that small
/// inputs spill) and `ENGAGE_REPORT_SAVE_MS` (how often the report pass is saved). Unset, the
/// defaults; neither changes a result, only how often the paths that produce it are taken.
fn tuning(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// The `meta` key of the saved report pass.
const REPORT_PASS: &str = "report_pass";

/// What reading the inputs needs.
struct IngestPlan {
    sources: Vec<InputSource>,
    read: ReadOptions,
    default_account: Option<String>,
    /// Where sorted runs are spilled (beside the store: the inputs can be larger than memory).
    spill_dir: PathBuf,
}

/// Reads every input: the rejected lines as they come, then the unique IDs in ascending order, then
/// the line counters, each handed to `send`. Stops early, without error, when `send` says the writer
/// is gone or `stop` turns true: the ingest is then left unfinished, for the next life.
fn read_inputs(
    plan: IngestPlan,
    progress: &Progress,
    stop: &dyn Fn() -> bool,
    mut send: impl FnMut(WriterMsg) -> bool,
) -> Result<(), RunError> {
    let dir = plan.spill_dir.clone();
    let spill = |e: std::io::Error| {
        RunError::Other(format!(
            "sorting the input IDs (temporary files in {}): {e}",
            dir.display()
        ))
    };
    let mut reader = ids::Reader::new(plan.sources, plan.read);
    let run = tuning("ENGAGE_SORT_RUN").map_or(sorted::RUN, |n| n as usize);
    let mut sorter = Sorter::new(&plan.spill_dir, run);
    let mut counts = IngestCounts::default();
    let mut rejects: Vec<RejectRow> = Vec::new();
    while let Some(item) = reader.next_record() {
        let p = item?;
        counts.input_lines += 1;
        match p.record {
            Record::Id { id, account } => sorter
                .push(id, account.as_deref().or(plan.default_account.as_deref()))
                .map_err(spill)?,
            Record::Reject(r) => {
                counts.rejected_lines += 1;
                rejects.push(RejectRow {
                    source_idx: p.source_index,
                    source: r.source,
                    line: r.line,
                    content: r.content,
                    reason: r.reason,
                });
                if rejects.len() == INGEST_BLOCK
                    && !send(WriterMsg::Rejects(std::mem::take(&mut rejects)))
                {
                    return Ok(());
                }
            }
        }
        if counts.input_lines % 65_536 == 0 {
            progress
                .ingested
                .store(counts.input_lines, Ordering::Relaxed);
            if stop() {
                return Ok(());
            }
        }
    }
    progress
        .ingested
        .store(counts.input_lines, Ordering::Relaxed);
    if !rejects.is_empty() && !send(WriterMsg::Rejects(rejects)) {
        return Ok(());
    }
    let read = sorter.read();
    let mut merged = sorter.finish().map_err(spill)?;
    loop {
        let mut block = Vec::with_capacity(INGEST_BLOCK);
        if !merged.next_block(INGEST_BLOCK, &mut block).map_err(spill)? {
            break;
        }
        if stop() || !send(WriterMsg::Ids(block)) {
            return Ok(());
        }
    }
    counts.duplicate_ids = read - merged.unique();
    send(WriterMsg::IngestDone(counts));
    Ok(())
}

/// Writes one ingest message in its own transaction; returns how many IDs were new to the store.
fn write_ingest(store: &mut Store, msg: WriterMsg) -> Result<u64, StoreError> {
    let tx = store.ingest_tx()?;
    let mut new = 0;
    let mut finished = None;
    match msg {
        WriterMsg::Ids(ids) => new = tx.insert_ids(&ids)?,
        WriterMsg::Rejects(rejects) => {
            for r in &rejects {
                tx.insert_reject(r)?;
            }
        }
        WriterMsg::IngestDone(counts) => finished = Some(counts),
        WriterMsg::Commit(_) => unreachable!("commits go to Store::record"),
    }
    tx.commit(finished)?;
    Ok(new)
}

/// Ingests everything before fetching (a store with IDs from an earlier life).
fn ingest_now(
    store: &mut Store,
    plan: IngestPlan,
    progress: &Progress,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<WriterMsg>(4);
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            read_inputs(plan, progress, &|| *shutdown.borrow(), |m| {
                tx.send(m).is_ok()
            })
        });
        let mut written = Ok(());
        for msg in rx.iter() {
            if let Err(e) = write_ingest(store, msg) {
                written = Err(e);
                break;
            }
        }
        drop(rx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(RunError::Other("the input reader panicked".into())));
        written?;
        read
    })
}

/// What the resume watermark is computed from: every ID below [`Watermark::low`] has its final
/// outcome. Batches are cut from IDs read in ascending order, so the lowest unsettled ID is the
/// lowest first ID of a batch not settled yet, or of what the producer holds back.
struct Watermark {
    /// Batches handed out and not settled: first (lowest) ID -> IDs still without a final outcome.
    open: std::collections::BTreeMap<u64, usize>,
    /// The lowest ID read and not handed out yet, or where the producer reads next.
    unsent: u64,
}

impl Watermark {
    fn low(&self) -> u64 {
        self.open
            .keys()
            .next()
            .map_or(self.unsent, |&k| k.min(self.unsent))
    }
}

/// How far a concurrent ingest has got.
#[derive(Debug, Default, Clone, Copy)]
struct IngestState {
    /// Blocks of IDs committed.
    blocks: u64,
    /// The ingest is complete.
    done: bool,
    /// The ingest stopped for good (reader error, writer gone): nothing more will come.
    abandoned: bool,
}

/// Tells the batch producer how far a concurrent ingest has got.
#[derive(Default)]
struct IngestSignal {
    state: Mutex<IngestState>,
    changed: Condvar,
}

impl IngestSignal {
    fn update(&self, f: impl FnOnce(&mut IngestState)) {
        f(&mut self.state.lock().expect("signal lock"));
        self.changed.notify_all();
    }

    fn get(&self) -> IngestState {
        *self.state.lock().expect("signal lock")
    }

    /// Waits (at most `timeout`) for anything after `seen` blocks.
    fn wait_past(&self, seen: u64, timeout: Duration) {
        let state = self.state.lock().expect("signal lock");
        let _ = self.changed.wait_timeout_while(state, timeout, |s| {
            s.blocks == seen && !s.done && !s.abandoned
        });
    }
}

enum FetchEnd {
    Complete,
    Interrupted,
    Abort(Abort),
}

/// What a fetch works through.
struct FetchPlan {
    /// The run's windows (one `None` for single-window jobs).
    windows: Vec<Option<Window>>,
    /// The inputs to read meanwhile, on a fresh store.
    ingest: Option<IngestPlan>,
    /// Set to each resume watermark once committed.
    watermark: Arc<AtomicU64>,
}

async fn fetch_all(
    spec: &RunSpec,
    plan: FetchPlan,
    client: Client,
    store: Store,
    progress: &Arc<Progress>,
    shutdown: watch::Receiver<bool>,
) -> Result<(Store, FetchEnd), RunError> {
    let FetchPlan {
        windows,
        ingest,
        watermark: committed_watermark,
    } = plan;
    let concurrency = spec.concurrency.max(1);
    let batch_size = spec.endpoint.max_ids();
    // Internal stop: an abort stops the producer like a shutdown does.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_flag = Arc::new(AtomicBool::new(false));

    // Producer: keyset pages of pending IDs from a second connection (WAL lets it read while the
    // writer commits). IDs in flight are never offered again because the cursor only moves forward;
    // during a concurrent ingest it waits at the end of what is committed until the ingest is done.
    let reader = Store::open_cursor(&spec.db)?;
    let signal = ingest.as_ref().map(|_| Arc::new(IngestSignal::default()));
    // Everything below the recorded watermark is final: a resume starts there.
    let start = committed_watermark.load(Ordering::Acquire);
    let watermark = Arc::new(Mutex::new(Watermark {
        open: Default::default(),
        unsent: start.max(1),
    }));
    let producer_watermark = watermark.clone();
    let (batch_tx, batch_rx) = mpsc::channel::<(Vec<u64>, usize, Route)>(concurrency * 2);
    let routes = Arc::new(spec.routes.clone());
    let producer_routes = routes.clone();
    let producer_stop = stop_flag.clone();
    let mut producer_shutdown = shutdown.clone();
    let producer_signal = signal.clone();
    let producer = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        // A batch starts at one window for all its IDs, so IDs are grouped by windows done
        // (after a resume, a multi-window run has IDs at different windows).
        // and by route (one set of credentials per request).
        let mut buckets: std::collections::BTreeMap<(usize, Route), Vec<u64>> = Default::default();
        let mut after = start.saturating_sub(1);
        loop {
            if producer_stop.load(Ordering::Relaxed) || *producer_shutdown.borrow_and_update() {
                return Ok(());
            }
            // Read before the page: if the ingest was done then, the page sees all of it.
            let ingest = producer_signal.as_ref().map_or(
                IngestState {
                    done: true,
                    ..IngestState::default()
                },
                |s| s.get(),
            );
            if ingest.abandoned {
                return Ok(());
            }
            let page = reader.pending_windows_after(after, batch_size * 16)?;
            if page.is_empty() && !ingest.done {
                if let Some(s) = &producer_signal {
                    s.wait_past(ingest.blocks, Duration::from_millis(50));
                }
                continue;
            }
            let last_page = page.is_empty();
            if let Some((id, _, _)) = page.last() {
                after = *id;
            }
            for (id, w, account) in page {
                let route = producer_routes.route(account.as_deref());
                buckets.entry((w, route)).or_default().push(id);
            }
            // Buckets hold ascending IDs: the lowest not handed out is a bucket's first. Set before
            // the sends (which wait for the fetchers) and again after them.
            let unsent = |buckets: &std::collections::BTreeMap<(usize, Route), Vec<u64>>| {
                buckets
                    .values()
                    .filter_map(|ids| ids.first().copied())
                    .min()
                    .unwrap_or(after.saturating_add(1))
            };
            producer_watermark.lock().expect("watermark lock").unsent = unsent(&buckets);
            let full: Vec<(usize, Route)> = buckets
                .iter()
                .filter(|(_, ids)| last_page || ids.len() >= batch_size)
                .map(|(w, _)| *w)
                .collect();
            for w in full {
                let ids = buckets.remove(&w).unwrap_or_default();
                let chunks: Vec<&[u64]> = ids.chunks(batch_size).collect();
                for (k, chunk) in chunks.iter().enumerate() {
                    if chunk.len() < batch_size && !last_page {
                        buckets.entry(w).or_default().extend_from_slice(chunk);
                        continue;
                    }
                    {
                        // Handed out from here on; held back: the rest of this bucket and the others.
                        let mut wm = producer_watermark.lock().expect("watermark lock");
                        wm.open.insert(chunk[0], chunk.len());
                        wm.unsent = chunks
                            .get(k + 1)
                            .map_or(u64::MAX, |c| c[0])
                            .min(unsent(&buckets));
                    }
                    if batch_tx.blocking_send((chunk.to_vec(), w.0, w.1)).is_err() {
                        return Ok(());
                    }
                }
            }
            producer_watermark.lock().expect("watermark lock").unsent = unsent(&buckets);
            if last_page {
                return Ok(());
            }
        }
    });

    // Writer: owns the store; one transaction per response (several when they queue up), and, on a
    // fresh store, the ingest's blocks in between (SQLite has one writer at a time).
    let (out_tx, mut out_rx) = mpsc::channel::<WriterMsg>(concurrency * 4);
    let metrics = spec.metrics.clone();
    let wprogress = progress.clone();
    let writer_signal = signal.clone();
    let writer_watermark = watermark.clone();
    let writer = std::thread::spawn(move || -> Result<Store, StoreError> {
        // However the writer ends, a producer waiting on the ingest must not wait forever.
        struct Abandon(Option<Arc<IngestSignal>>);
        impl Drop for Abandon {
            fn drop(&mut self) {
                if let Some(s) = &self.0 {
                    s.update(|s| s.abandoned = true);
                }
            }
        }
        let _abandon = Abandon(writer_signal.clone());
        let mut store = store;
        let mut commits: Vec<Commit> = Vec::new();
        let record = |store: &mut Store, commits: &mut Vec<Commit>| -> Result<(), StoreError> {
            if commits.is_empty() {
                return Ok(());
            }
            let done_below = {
                let mut w = writer_watermark.lock().expect("watermark lock");
                for c in commits.iter() {
                    let last = c.window + 1 >= c.windows.max(1);
                    let settled = c
                        .outcomes
                        .iter()
                        .filter(|o| last || o.status != crate::store::Status::Ok)
                        .count();
                    if let Some(left) = w.open.get_mut(&c.origin) {
                        *left = left.saturating_sub(settled);
                        if *left == 0 {
                            w.open.remove(&c.origin);
                        }
                    }
                }
                w.low()
            };
            crate::failpoint::hit("before-commit");
            let finals = store.record(&metrics, commits, Some(done_below))?;
            committed_watermark.fetch_max(done_below, Ordering::Release);
            crate::failpoint::hit("after-commit");
            let others = commits
                .iter()
                .flat_map(|c| &c.outcomes)
                .filter(|o| o.status != crate::store::Status::Ok)
                .count();
            wprogress
                .resolved
                .fetch_add(finals + others as u64, Ordering::Relaxed);
            commits.clear();
            Ok(())
        };
        while let Some(first) = out_rx.blocking_recv() {
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(msg) = next.take() {
                taken += 1;
                match msg {
                    WriterMsg::Commit(c) => commits.push(c),
                    other => {
                        // Responses first, then the ingest block, each its own transaction.
                        record(&mut store, &mut commits)?;
                        let done = matches!(other, WriterMsg::IngestDone(_));
                        let is_ids = matches!(other, WriterMsg::Ids(_));
                        let new = write_ingest(&mut store, other)?;
                        wprogress.total.fetch_add(new, Ordering::Relaxed);
                        if let Some(s) = &writer_signal {
                            s.update(|s| {
                                s.blocks += u64::from(is_ids);
                                s.done |= done;
                            });
                        }
                    }
                }
                if taken < 64 {
                    next = out_rx.try_recv().ok();
                }
            }
            record(&mut store, &mut commits)?;
        }
        Ok(store)
    });

    // The input reader, on a fresh store: its blocks queue with the responses.
    let input_reader = ingest.map(|plan| {
        let tx = out_tx.clone();
        let rprogress = progress.clone();
        let stop = stop_flag.clone();
        let stop_tx = stop_tx.clone();
        let shutdown = shutdown.clone();
        let signal = signal.clone();
        std::thread::spawn(move || {
            let stopped = || stop.load(Ordering::Relaxed) || *shutdown.borrow();
            let r = read_inputs(plan, &rprogress, &stopped, |m| tx.blocking_send(m).is_ok());
            if r.is_err() {
                // Unreadable input: nothing more will be ingested; stop fetching.
                stop.store(true, Ordering::Relaxed);
                let _ = stop_tx.send(true);
                if let Some(s) = &signal {
                    s.update(|s| s.abandoned = true);
                }
            }
            r
        })
    });

    let pace = spec.rate.and_then(|(n, w)| pace(n, w)).map(Arc::new);
    let fetcher = Arc::new(Fetcher {
        client,
        routes: routes.clone(),
        gate: progress.gate.clone(),
        health: progress.health.clone(),
        pace,
        retry: spec.retry,
        job: Job {
            endpoint: spec.endpoint,
            metrics: spec.metrics.clone(),
            windows,
            series: spec.series,
        },
        stats: progress.fetch.clone(),
        shutdown: merge_shutdown(shutdown.clone(), stop_rx),
    });

    let mut end = FetchEnd::Complete;
    {
        let batches = futures::stream::unfold(batch_rx, |mut rx| async move {
            rx.recv().await.map(|b| (b, rx))
        });
        let ends = batches
            .map(|(ids, first, route)| {
                let f = fetcher.clone();
                let tx = out_tx.clone();
                // Spawned, so that answers are decoded and parsed on every worker thread rather
                // than all on the thread that drives this loop.
                let task = tokio::spawn(async move { f.fetch_batch(ids, first, route, &tx).await });
                async move {
                    task.await.unwrap_or_else(|e| {
                        BatchEnd::Abort(Abort {
                            what: format!("internal error: a fetch task failed: {e}"),
                        })
                    })
                }
            })
            .buffer_unordered(concurrency);
        let mut ends = std::pin::pin!(ends);
        while let Some(e) = ends.next().await {
            match e {
                BatchEnd::Done => {}
                BatchEnd::Interrupted => {
                    if matches!(end, FetchEnd::Complete) {
                        end = FetchEnd::Interrupted;
                    }
                }
                // Unreachable for longer than the limit: stop as a shutdown does, IDs left pending.
                BatchEnd::Outage(_) => {
                    if matches!(end, FetchEnd::Complete) {
                        end = FetchEnd::Interrupted;
                    }
                    stop_flag.store(true, Ordering::Relaxed);
                    let _ = stop_tx.send(true);
                }
                BatchEnd::Abort(a) => {
                    tracing::error!("{a}");
                    if !matches!(end, FetchEnd::Abort(_)) {
                        end = FetchEnd::Abort(a);
                    }
                    stop_flag.store(true, Ordering::Relaxed);
                    let _ = stop_tx.send(true);
                }
            }
        }
    }
    drop(out_tx);
    drop(fetcher);
    let read = match input_reader {
        Some(h) => tokio::task::spawn_blocking(move || h.join())
            .await
            .map_err(|e| RunError::Other(format!("input reader join: {e}")))?
            .unwrap_or_else(|_| Err(RunError::Other("the input reader panicked".into()))),
        None => Ok(()),
    };
    if *shutdown.borrow() && matches!(end, FetchEnd::Complete) {
        end = FetchEnd::Interrupted;
    }
    producer
        .await
        .map_err(|e| RunError::Other(format!("batch reader panicked: {e}")))??;
    let store = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| RunError::Other(format!("writer join: {e}")))?
        .map_err(|_| RunError::Other("the store writer panicked".into()))??;
    read?;
    Ok((store, end))
}

/// One receiver that turns true when either the user's shutdown or the internal stop does.
fn merge_shutdown(
    mut a: watch::Receiver<bool>,
    mut b: watch::Receiver<bool>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(*a.borrow() || *b.borrow());
    tokio::spawn(async move {
        tokio::select! {
            _ = a.wait_for(|v| *v) => {}
            _ = b.wait_for(|v| *v) => {}
            _ = tx.closed() => return,
        }
        let _ = tx.send(true);
    });
    rx
}

/// `start/end` in the API's time format.
pub fn format_period(w: &Window) -> String {
    format!(
        "{}/{}",
        engagement_api::window::format_time(w.start),
        engagement_api::window::format_time(w.end)
    )
}

fn parse_period(s: &str) -> Option<Window> {
    let (a, b) = s.split_once('/')?;
    Some(Window {
        start: engagement_api::window::parse_time("start", a).ok()?,
        end: engagement_api::window::parse_time("end", b).ok()?,
    })
}

/// The default metrics of an endpoint for an authentication kind: everything allowed.
pub fn default_metrics(endpoint: Endpoint, auth: AuthKind) -> Vec<Metric> {
    endpoint.allowed_metrics(auth)
}

/// A recorded run, opened for `engage status` and `engage report`.
pub struct OpenRun {
    /// The store, read-only use.
    pub store: Store,
    /// The run's identity.
    pub identity: Identity,
    /// Its endpoint.
    pub endpoint: Endpoint,
    /// Its metrics.
    pub metrics: Vec<Metric>,
}

impl OpenRun {
    /// The series granularity of a time-series run.
    pub fn series(&self) -> Option<Granularity> {
        match self.identity.series.as_deref() {
            Some("day") => Some(Granularity::Day),
            Some("hour") => Some(Granularity::Hour),
            _ => None,
        }
    }

    /// The report's figures (one pass over the `ok` rows).
    pub fn summary(&self) -> Result<Summary, StoreError> {
        Summary::from_store(
            &self.store,
            self.endpoint,
            &self.metrics,
            self.identity.top_n,
        )
    }

    /// Writes every report into `dir`.
    pub fn write_reports(&self, dir: &Path) -> Result<(Summary, Vec<PathBuf>), ReportError> {
        report::write_reports(
            dir,
            &self.store,
            self.endpoint,
            &self.metrics,
            self.identity.top_n,
            self.series(),
        )
    }
}

/// Opens the run recorded in a store.
pub fn open_run(db: &Path) -> Result<OpenRun, RunError> {
    if !db.exists() {
        return Err(RunError::Other(format!("{}: no such store", db.display())));
    }
    // Read-only use: no WAL marker of its own, so a status during a run cannot clear the run's marker.
    let store = Store::open_reader(db)?;
    let raw = store.meta("identity")?.ok_or_else(|| {
        RunError::Other(format!(
            "{}: no run recorded in this store yet",
            db.display()
        ))
    })?;
    let identity: Identity = serde_json::from_str(&raw)
        .map_err(|e| RunError::Other(format!("{}: unreadable run identity: {e}", db.display())))?;
    let endpoint: Endpoint = identity
        .endpoint
        .parse()
        .map_err(|e| RunError::Other(format!("{e}")))?;
    let metrics: Vec<Metric> = identity
        .metrics
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| RunError::Other(format!("{}: {e}", db.display())))?;
    Ok(OpenRun {
        store,
        identity,
        endpoint,
        metrics,
    })
}

/// Counters of a finished ingest, for tests and status.
pub fn ingest_counts(store: &Store) -> Result<IngestCounts, StoreError> {
    Ok(store.ingest_state()?.1)
}
