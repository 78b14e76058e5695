//! The main job, as a pipeline of stages, each in its own file and each owning its loop:
//!
//! ```text
//! identity::prepare   inputs fingerprinted, the store opened, the identity checked or recorded
//!   ingest     (thread)   ─ rejects, then unique IDs ascending, then counters ─▶ writer
//!   batcher    (blocking) ─ pending IDs from the store, in batches           ─▶ fetching
//!   fetching   (async)    ─ K batches in flight, one Settled per response    ─▶ writer
//!   writer     (thread)   ─ the one store connection: a transaction per answer or block, the
//!                           resume watermark ─▶ report pass (committed watermark), batcher (ingest)
//!   report_pass (thread)  ─ scans the final outcomes below the watermark while the fetch goes on
//! reports: the rest of the scan, then every file
//! ```
//!
//! One stop signal: a [`CancellationToken`] that every stage holds. The caller's token (Ctrl-C,
//! SIGTERM) cancels it, and so does any stage that fails: the batcher stops handing out batches, no
//! new request starts, the requests in flight finish and are committed, and each stage returns. A
//! stage's failure is then the run's error; a stop without one is an interruption (resumable).
//!
//! Resume rules: the identity must match; the ingest reads the inputs again unless it finished (the
//! store ignores what it already holds); the batcher starts at the recorded watermark and fetches
//! only pending IDs; the report is rebuilt from the store's outcomes, so nothing is counted twice.

mod batcher;
mod fetching;
mod identity;
mod ingest;
mod report_pass;
mod watermark;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use engagement_api::client::{Client, ClientConfig, ClientError};
use engagement_api::{Endpoint, Metric, Window};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use identity::{format_period, Identity};

use crate::apps::{AppFigures, AppSpec, Lane};
use crate::concurrency::Concurrency;
use crate::fetch::{Abort, FetchStats, Fetcher, Job, RetryPolicy};
use crate::gate::Gate;
use crate::health::{Health, OutagePolicy};
use crate::ids::{IdsError, ReadOptions};
use crate::lock::{LockError, WriterLock};
use crate::report::{self, ReportError, Summary};
use crate::route::Routes;
use crate::series::Granularity;
use crate::store::{MetaKey, Store, StoreError};
use batcher::{Batcher, IngestSignal};
use fetching::FetchEnd;
use watermark::Watermark;
use writer::Writer;

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
    /// The group of every input ID that has none from its CSV group cell or `--group-from`
    /// (`--group`).
    pub default_group: Option<String>,
    /// Group names from the inputs' file or folder names (`--group-from`).
    pub group_from: Option<crate::groups::GroupFrom>,
    /// The fewest impressions a Tweet's engagement rate needs to be ranked (`--min-impressions`);
    /// `None` keeps the store's (or the default). A report setting, not part of the identity.
    pub min_impressions: Option<u64>,
    /// N of the top-N.
    pub top_n: usize,
    /// Requests in flight: fixed at N, or `None` for the adaptive limit (up to
    /// [`crate::concurrency::MAX_CONCURRENCY`]).
    pub concurrency: Option<usize>,
    /// The apps, each with its budget when known (one app without `[[apps]]`); `routes` refers to
    /// them by index.
    pub apps: Vec<AppSpec>,
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
    /// Read an input even when next to nothing in it is a Tweet ID (`--accept-rejects`; see
    /// [`crate::ids::mostly_rejected`]); without it such an input stops the run before anything is
    /// fetched.
    pub accept_rejects: bool,
    /// `--shard I/N`: keep only the input IDs of shard I (see [`crate::shard`]); every input is
    /// still read whole, so the rejects are every shard's.
    pub shard: Option<crate::shard::Shard>,
}

/// Why a command on a run failed. Each variant maps to one documented exit code ([`Self::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Inputs could not be read.
    #[error(transparent)]
    Input(#[from] IdsError),
    /// The store is unusable (its own error says how, and with which exit code).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process writes to the store.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The store belongs to another run.
    #[error("{db} holds a different run; resume it with the same settings or use another --db:\n  {}", .differences.join("\n  "))]
    IdentityMismatch {
        /// The store.
        db: PathBuf,
        /// What differs.
        differences: Vec<String>,
    },
    /// `engage status` or `engage report` on a path where there is no store.
    #[error("{db}: no such store (check --db)")]
    NoStore {
        /// The path given.
        db: PathBuf,
    },
    /// An engage store in which no run was recorded yet.
    #[error("{db}: no run recorded in this store yet (run `engage run --db {db}` first)")]
    NoRun {
        /// The store.
        db: PathBuf,
    },
    /// A value the store holds cannot be read back.
    #[error("store {db}: unreadable {what}; the store is damaged or from an incompatible engage")]
    Unreadable {
        /// The store.
        db: PathBuf,
        /// What could not be read.
        what: String,
    },
    /// The HTTP client could not be built (e.g. plain HTTP to a remote host).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A problem every request would hit.
    #[error(transparent)]
    Abort(#[from] Abort),
    /// Writing reports failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Sorting the inputs through temporary files failed.
    #[error("sorting the input IDs (temporary files in {dir}): {source}")]
    Spill {
        /// The folder of the temporary files.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Standard input could not be read or spooled beside the store.
    #[error("reading standard input: {source}")]
    Stdin {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stopped by a shutdown request while waiting for an input that is read once (a pipe with no
    /// writer yet, or one that has not finished writing): nothing was recorded.
    #[error("interrupted while waiting for {input} to be written: nothing was read or fetched; run the same command again")]
    InterruptedWaiting {
        /// The input as given.
        input: String,
    },
    /// A thread could not be started.
    #[error("starting a thread to {what}: {source}")]
    Thread {
        /// What the thread was for.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The folder a path needs does not exist.
    #[error("{flag} {path}: the folder {} does not exist; create it or choose another path", .path.parent().map_or(String::new(), |p| p.display().to_string()))]
    NoFolder {
        /// The flag the path came from.
        flag: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A stage ended without a result (a bug).
    #[error("internal error: the {stage} stage panicked")]
    Panicked {
        /// Which stage.
        stage: &'static str,
    },
}

impl RunError {
    /// The documented exit code this error ends a command with (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            RunError::Store(e) => e.exit_code(),
            RunError::Report(e) => e.exit_code(),
            RunError::Input(_)
            | RunError::Locked(_)
            | RunError::IdentityMismatch { .. }
            | RunError::NoStore { .. }
            | RunError::NoRun { .. }
            | RunError::Client(_)
            | RunError::Abort(_) => exit::USAGE,
            RunError::Unreadable { .. } => exit::STORE,
            RunError::Spill { .. } | RunError::Stdin { .. } | RunError::NoFolder { .. } => {
                exit::ENVIRONMENT
            }
            RunError::InterruptedWaiting { .. } => exit::INTERRUPTED,
            RunError::Thread { .. } => exit::ENVIRONMENT,
            RunError::Panicked { .. } => exit::INTERNAL,
        }
    }
}

/// Live figures for the progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Current phase: "fingerprint", "fetch", "report".
    pub phase: Mutex<&'static str>,
    /// Lines ingested so far.
    pub ingested: AtomicU64,
    /// Unique IDs in the run.
    pub total: AtomicU64,
    /// IDs with an outcome.
    pub resolved: AtomicU64,
    /// Fetch counters.
    pub fetch: Arc<FetchStats>,
    /// The run's gates (one per app), once the run has made them: shown as "waiting for rate limit
    /// until ..." when every one is closed.
    gates: OnceLock<Vec<Arc<Gate>>>,
    /// The in-flight limit, once the run has made it.
    limit: OnceLock<Arc<Concurrency>>,
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

    /// Starts the counters from what the store holds; returns how many IDs are pending.
    fn start_from(&self, store: &Store) -> Result<u64, StoreError> {
        let (unique, pending) = store.unique_and_pending()?;
        if let (true, counts) = store.ingest_state()? {
            // Read by an earlier life: shown as read, not as 0.
            self.ingested.store(counts.input_lines, Ordering::Relaxed);
        }
        self.total.store(unique, Ordering::Relaxed);
        self.resolved.store(unique - pending, Ordering::Relaxed);
        Ok(pending)
    }

    /// When every app's gate is closed, until the first opens.
    pub fn waiting_until(&self) -> Option<SystemTime> {
        let now = SystemTime::now();
        let mut first = None::<SystemTime>;
        for g in self.gates.get()? {
            let t = g.closed_until(now)?;
            first = Some(first.map_or(t, |f| f.min(t)));
        }
        first
    }

    /// The in-flight limit now, and whether it adapts (for the progress line).
    pub fn concurrency(&self) -> Option<(usize, bool)> {
        let c = self.limit.get()?;
        Some((c.limit(), c.is_adaptive()))
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
    /// Per app, over every life of the run (as `engage status` shows them).
    pub apps: Vec<AppFigures>,
}

/// Runs (or resumes) the job to the end, or until `cancel` is cancelled (Ctrl-C, SIGTERM).
pub async fn run(
    spec: RunSpec,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let client = Client::new(spec.client.clone())?;
    progress.health.configure(spec.outage, client.base_url());
    // Before anything reads the inputs or touches the store: a second writer stops here. Held to the
    // end of the run, after the store is closed (declared first, dropped last).
    identity::check_folder(&spec.db)?;
    let _lock = WriterLock::acquire(&spec.db)?;

    progress.set_phase("fingerprint");
    let identity::Prepared {
        mut store,
        windows,
        ingest,
    } = identity::prepare(&spec, &cancel).await?;
    if spec.retry_failed {
        let n = store.retry_failed()?;
        tracing::info!(ids = n, "failed IDs made pending again");
    }
    // Phase marks with the time since the start, at info level: scripts/bench reads them.
    tracing::info!(elapsed = ?started.elapsed(), overlapped = ingest.is_some(), "ingest done");
    let pending = progress.start_from(&store)?;
    tracing::info!(elapsed = ?started.elapsed(), pending, "store opened");

    // Stages cancel a child token, so a failing stage stops the run without looking like Ctrl-C.
    let stop = cancel.child_token();
    let (mut ended, mut pass) = (FetchEnd::Complete, None);
    let ingest_done = ingest.is_none();
    let mut life = Vec::new();
    if (pending > 0 || !ingest_done) && !stop.is_cancelled() {
        progress.set_phase("fetch");
        let (s, p, e, l) =
            pipeline(&spec, store, ingest, windows, client, &progress, &stop).await?;
        (store, pass, ended, life) = (s, Some(p), e, l);
    }
    let apps = crate::apps::record(&store, &life)?;
    // With the limit on requests in flight where it ended (adaptive: where it settled).
    let limit = progress.concurrency().map_or(0, |(n, _)| n);
    tracing::info!(elapsed = ?started.elapsed(), limit, "fetch done");
    // Stopped, or before the end of the inputs (with nothing pending, possibly): not a finished run.
    let interrupted = matches!(ended, FetchEnd::Stopped)
        || cancel.is_cancelled()
        || (!ingest_done && !store.ingest_state()?.0);
    if pass.is_some() && !interrupted && matches!(ended, FetchEnd::Complete) {
        // What a history takes as the time this run's values are "as of": when the life that
        // finished the fetch ended it. A life that fetched nothing keeps the earlier stamp.
        // To the nanosecond: it also tells apart two runs of the same collection (a history's key).
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        store.set_meta(MetaKey::FetchedAt, &now)?;
    }

    progress.set_phase("report");
    let (summary, files) = write_reports(&spec, &store, pass)?;
    tracing::info!(elapsed = ?started.elapsed(), "reports written");
    if let FetchEnd::Abort(a) = ended {
        return Err(a.into());
    }
    let interrupted = interrupted || summary.status.pending > 0;
    Ok(RunOutcome {
        summary,
        files,
        interrupted,
        requests: progress.fetch.requests.load(Ordering::Relaxed),
        retries: progress.fetch.retries.load(Ordering::Relaxed),
        rate_limited: progress.fetch.rate_limited.load(Ordering::Relaxed),
        apps,
    })
}

/// Every report, from the pass the run kept beside the fetch (or from a new one), then the saved
/// pass is forgotten: its files are renamed into the report.
fn write_reports(
    spec: &RunSpec,
    store: &Store,
    pass: Option<report::Scan>,
) -> Result<(Summary, Vec<PathBuf>), RunError> {
    let written = match pass {
        Some(pass) => {
            report::finish_reports(pass, store, spec.endpoint, spec.series, report::SPLIT_AT)?
        }
        None => report::write_reports(
            &spec.out,
            store,
            spec.endpoint,
            &spec.metrics,
            spec.top_n,
            spec.series,
        )?,
    };
    store.delete_meta(MetaKey::ReportPass)?;
    Ok(written)
}

/// The stages wired together: ingest (when the inputs are not all in the store), batcher, fetch,
/// writer and report pass, with bounded channels between them. Returns the store, the report pass,
/// how the fetch ended and each app's figures; a stage's error is the run's.
async fn pipeline(
    spec: &RunSpec,
    store: Store,
    ingest: Option<ingest::IngestPlan>,
    windows: Vec<Option<Window>>,
    client: Client,
    progress: &Arc<Progress>,
    stop: &CancellationToken,
) -> Result<(Store, report::Scan, FetchEnd, Vec<AppFigures>), RunError> {
    let limit = match spec.concurrency {
        Some(n) => Concurrency::fixed(n),
        None => Concurrency::adaptive(crate::concurrency::MAX_CONCURRENCY),
    };
    let _ = progress.limit.set(limit.clone());
    // The queues between the stages hold what the most batches in flight can use.
    let concurrency = limit.max();
    let start = store.done_below()?;
    let pass = report_pass::begin(&store, &spec.out, &spec.metrics, spec.top_n)?;
    let (committed_tx, committed_rx) = watch::channel(start);
    let (settled_tx, settled_rx) = mpsc::channel(concurrency * 4);
    let (ingest_tx, ingest_rx) = mpsc::channel(4);
    let (batch_tx, batch_rx) = mpsc::channel(concurrency * 2);
    let watermark = Arc::new(Mutex::new(Watermark::new(start.max(1))));
    let signal = Arc::new(if ingest.is_some() {
        IngestSignal::default()
    } else {
        IngestSignal::done()
    });
    let batcher = Batcher {
        cursor: Store::open_cursor(&spec.db)?,
        batch_size: spec.endpoint.max_ids(),
        routes: Arc::new(spec.routes.clone()),
        ingest: signal.clone(),
        // A fresh store's ingest only adds IDs above those it has added: the cursor can follow it.
        follow: store.unique_count()? == 0,
        watermark: watermark.clone(),
        start,
    };
    let writer = Writer {
        store,
        metrics: spec.metrics.clone(),
        watermark,
        ingest: signal,
        committed: committed_tx,
        progress: progress.clone(),
        group_ids: Vec::new(),
    };
    let apps = if spec.apps.is_empty() {
        AppSpec::single(None)
    } else {
        spec.apps.clone()
    };
    let lanes: Vec<Lane> = apps.into_iter().map(Lane::new).collect();
    let _ = progress
        .gates
        .set(lanes.iter().map(|l| l.gate.clone()).collect());
    let fetcher = Arc::new(Fetcher {
        client,
        routes: batcher.routes.clone(),
        lanes,
        concurrency: limit,
        next_lane: Default::default(),
        health: progress.health.clone(),
        retry: spec.retry,
        job: Job {
            endpoint: spec.endpoint,
            metrics: spec.metrics.clone(),
            windows,
            series: spec.series,
        },
        stats: progress.fetch.clone(),
        clock: crate::gate::WallClock::new(),
        stop: stop.clone(),
    });

    let reporting = report_pass::spawn(pass, spec.db.clone(), committed_rx, stop.clone());
    let reading = match ingest {
        Some(plan) => Some(ingest::spawn(
            plan,
            ingest_tx,
            progress.clone(),
            stop.clone(),
        )),
        // The writer ends when both its inputs are closed.
        None => {
            drop(ingest_tx);
            None
        }
    };
    let rt = tokio::runtime::Handle::current();
    let writing = {
        let stop = stop.clone();
        std::thread::spawn(move || writer.run(settled_rx, ingest_rx, stop, rt))
    };
    let batching = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let r = batcher.run(batch_tx, stop.clone());
            if r.is_err() {
                stop.cancel();
            }
            r
        })
    };
    let ended = fetching::run(fetcher.clone(), batch_rx, settled_tx, stop.clone()).await;
    let figures = fetcher.lanes.iter().map(Lane::figures).collect();

    // Every sender of the writer's inputs is gone once the fetch and the ingest have ended; the
    // writer then returns, which ends the report pass.
    let read = join("ingest", reading).await;
    let batched = batching
        .await
        .map_err(|_| RunError::Panicked { stage: "batcher" });
    let store = join("writer", Some(writing)).await;
    let pass = join("report pass", Some(reporting)).await;
    // The first failure in pipeline order is the cause; the others follow from the stop.
    let store = store?.expect("writer joined");
    read?;
    batched??;
    let pass = pass?.expect("report pass joined");
    Ok((store, pass, ended, figures))
}

/// Waits for a stage's thread without blocking the runtime.
async fn join<T: Send + 'static, E: Into<RunError> + Send + 'static>(
    stage: &'static str,
    handle: Option<std::thread::JoinHandle<Result<T, E>>>,
) -> Result<Option<T>, RunError> {
    let Some(h) = handle else { return Ok(None) };
    match tokio::task::spawn_blocking(move || h.join()).await {
        Ok(Ok(r)) => r.map(Some).map_err(Into::into),
        _ => Err(RunError::Panicked { stage }),
    }
}

/// Test hooks, like `ENGAGE_FAILPOINT`: `ENGAGE_SORT_RUN` (records per sorted run, so that small
/// inputs spill) and `ENGAGE_REPORT_SAVE_MS` (how often the report pass is saved). Unset, the
/// defaults; neither changes a result, only how often the paths that produce it are taken.
fn tuning(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
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
    // Read-only use: no WAL marker of its own, so a status during a run cannot clear the run's marker.
    open_run_with(db, Store::open_reader)
}

/// Opens the run recorded in a store through `open` (a reader, or a cursor that skips the whole
/// check, as `history add` does every night).
pub fn open_run_with(
    db: &Path,
    open: impl FnOnce(&Path) -> Result<Store, StoreError>,
) -> Result<OpenRun, RunError> {
    if !db.exists() {
        return Err(RunError::NoStore { db: db.into() });
    }
    let store = open(db)?;
    let unreadable = |what: String| RunError::Unreadable {
        db: db.into(),
        what,
    };
    let raw = store
        .meta(MetaKey::Identity)?
        .ok_or_else(|| RunError::NoRun { db: db.into() })?;
    let identity: Identity =
        serde_json::from_str(&raw).map_err(|e| unreadable(format!("run identity: {e}")))?;
    let endpoint: Endpoint = identity
        .endpoint
        .parse()
        .map_err(|e| unreadable(format!("endpoint: {e}")))?;
    let metrics: Vec<Metric> = identity
        .metrics
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(format!("metrics: {e}")))?;
    Ok(OpenRun {
        store,
        identity,
        endpoint,
        metrics,
    })
}
