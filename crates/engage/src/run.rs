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
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use engagement_api::client::{Client, ClientConfig};
use engagement_api::{AuthKind, Endpoint, Metric, Window};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::fetch::{Abort, BatchEnd, FetchStats, Fetcher, Granularity, Job, RetryPolicy};
use crate::gate::{pace, Gate};
use crate::ids::{self, IdsError, InputSource, ReadOptions, Record};
use crate::report::{self, ReportError, Summary};
use crate::route::{Route, Routes};
use crate::store::{Commit, IngestCounts, IngestPos, RejectRow, Store, StoreError, INGEST_CHUNK};

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
    progress.set_phase("ingest");
    ingest(
        &mut store,
        sources,
        &spec.read,
        spec.default_account.as_deref(),
        &progress,
    )?;
    tracing::info!(elapsed = ?started.elapsed(), "ingest done");

    if spec.retry_failed {
        let n = store.retry_failed()?;
        tracing::info!(ids = n, "failed IDs made pending again");
    }
    let counts = store.status_counts()?;
    progress.total.store(counts.unique(), Ordering::Relaxed);
    progress
        .resolved
        .store(counts.unique() - counts.pending, Ordering::Relaxed);

    tracing::info!(elapsed = ?started.elapsed(), pending = counts.pending, "store opened");
    let mut interrupted = false;
    let mut abort = None;
    if counts.pending > 0 && !*shutdown.borrow() {
        progress.set_phase("fetch");
        let (store2, end) =
            fetch_all(&spec, windows, client, store, &progress, shutdown.clone()).await?;
        store = store2;
        match end {
            FetchEnd::Complete => {}
            FetchEnd::Interrupted => interrupted = true,
            FetchEnd::Abort(a) => abort = Some(a),
        }
    } else if counts.pending > 0 {
        interrupted = true;
    }

    tracing::info!(elapsed = ?started.elapsed(), "fetch done");
    progress.set_phase("report");
    // The heaps are filled from the store's `ok` rows, once, in the pass that writes tweets.csv:
    // whatever happened in earlier lives, nothing is counted twice.
    let (summary, files) = report::write_reports(
        &spec.out,
        &store,
        spec.endpoint,
        &spec.metrics,
        spec.top_n,
        spec.series,
    )?;
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

fn ingest(
    store: &mut Store,
    sources: Vec<InputSource>,
    read: &ReadOptions,
    default_account: Option<&str>,
    progress: &Progress,
) -> Result<(), RunError> {
    let (pos, done, mut counts) = store.ingest_state()?;
    if done {
        return Ok(());
    }
    let mut reader = ids::Reader::new(sources, read.clone());
    if pos != IngestPos::default() {
        reader.skip_to(pos.source, pos.line);
    }
    let mut pos = pos;
    // Each chunk's IDs are inserted in ID order: the table is a B-tree keyed by ID, and sorted inserts
    // touch each page once instead of at random (an order of magnitude faster at millions of IDs).
    // The sort is stable, so the first occurrence of a duplicate keeps its account.
    let mut chunk: Vec<(u64, Option<String>)> = Vec::with_capacity(INGEST_CHUNK);
    let mut rejects: Vec<RejectRow> = Vec::new();
    loop {
        chunk.clear();
        rejects.clear();
        let mut finished = true;
        while let Some(item) = reader.next_record() {
            let p = item?;
            counts.input_lines += 1;
            match p.record {
                Record::Id { id, account } => {
                    chunk.push((id, account.or_else(|| default_account.map(str::to_string))))
                }
                Record::Reject(r) => {
                    counts.rejected_lines += 1;
                    rejects.push(RejectRow {
                        source: r.source,
                        line: r.line,
                        content: r.content,
                        reason: r.reason,
                    });
                }
            }
            pos = IngestPos {
                source: p.source_index,
                line: p.line,
            };
            if chunk.len() + rejects.len() == INGEST_CHUNK {
                finished = false;
                break;
            }
        }
        chunk.sort_by_key(|(id, _)| *id);
        let tx = store.ingest_tx()?;
        counts.duplicate_ids += chunk.len() as u64 - tx.insert_ids(&chunk)?;
        for r in &rejects {
            tx.insert_reject(r)?;
        }
        tx.commit(pos, counts, finished)?;
        progress
            .ingested
            .store(counts.input_lines, Ordering::Relaxed);
        if finished {
            return Ok(());
        }
    }
}

enum FetchEnd {
    Complete,
    Interrupted,
    Abort(Abort),
}

async fn fetch_all(
    spec: &RunSpec,
    windows: Vec<Option<Window>>,
    client: Client,
    store: Store,
    progress: &Arc<Progress>,
    shutdown: watch::Receiver<bool>,
) -> Result<(Store, FetchEnd), RunError> {
    let concurrency = spec.concurrency.max(1);
    let batch_size = spec.endpoint.max_ids();
    // Internal stop: an abort stops the producer like a shutdown does.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_flag = Arc::new(AtomicBool::new(false));

    // Producer: keyset pages of pending IDs from a second connection (WAL lets it read while the
    // writer commits). IDs in flight are never offered again because the cursor only moves forward.
    let reader = Store::open_cursor(&spec.db)?;
    let (batch_tx, batch_rx) = mpsc::channel::<(Vec<u64>, usize, Route)>(concurrency * 2);
    let routes = Arc::new(spec.routes.clone());
    let producer_routes = routes.clone();
    let producer_stop = stop_flag.clone();
    let mut producer_shutdown = shutdown.clone();
    let producer = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        // A batch starts at one window for all its IDs, so IDs are grouped by windows done
        // (after a resume, a multi-window run has IDs at different windows).
        // and by route (one set of credentials per request).
        let mut buckets: std::collections::BTreeMap<(usize, Route), Vec<u64>> = Default::default();
        let mut after = 0u64;
        loop {
            if producer_stop.load(Ordering::Relaxed) || *producer_shutdown.borrow_and_update() {
                return Ok(());
            }
            let page = reader.pending_windows_after(after, batch_size * 16)?;
            let last_page = page.is_empty();
            if let Some((id, _, _)) = page.last() {
                after = *id;
            }
            for (id, w, account) in page {
                let route = producer_routes.route(account.as_deref());
                buckets.entry((w, route)).or_default().push(id);
            }
            let full: Vec<(usize, Route)> = buckets
                .iter()
                .filter(|(_, ids)| last_page || ids.len() >= batch_size)
                .map(|(w, _)| *w)
                .collect();
            for w in full {
                let ids = buckets.remove(&w).unwrap_or_default();
                for chunk in ids.chunks(batch_size) {
                    if chunk.len() < batch_size && !last_page {
                        buckets.entry(w).or_default().extend_from_slice(chunk);
                    } else if batch_tx.blocking_send((chunk.to_vec(), w.0, w.1)).is_err() {
                        return Ok(());
                    }
                }
            }
            if last_page {
                return Ok(());
            }
        }
    });

    // Writer: owns the store; one transaction per message (several responses when they queue up).
    let (out_tx, mut out_rx) = mpsc::channel::<Commit>(concurrency * 4);
    let metrics = spec.metrics.clone();
    let wprogress = progress.clone();
    let writer = std::thread::spawn(move || -> Result<Store, StoreError> {
        let mut store = store;
        let mut pending: Vec<Commit> = Vec::new();
        while let Some(first) = out_rx.blocking_recv() {
            pending.clear();
            pending.push(first);
            while pending.len() < 64 {
                match out_rx.try_recv() {
                    Ok(more) => pending.push(more),
                    Err(_) => break,
                }
            }
            crate::failpoint::hit("before-commit");
            let finals = store.record(&metrics, &pending)?;
            crate::failpoint::hit("after-commit");
            let others = pending
                .iter()
                .flat_map(|c| &c.outcomes)
                .filter(|o| o.status != crate::store::Status::Ok)
                .count();
            wprogress
                .resolved
                .fetch_add((finals.len() + others) as u64, Ordering::Relaxed);
        }
        Ok(store)
    });

    let pace = spec.rate.and_then(|(n, w)| pace(n, w)).map(Arc::new);
    let fetcher = Arc::new(Fetcher {
        client,
        routes: routes.clone(),
        gate: progress.gate.clone(),
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
                async move { f.fetch_batch(ids, first, route, &tx).await }
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
    Ok(store.ingest_state()?.2)
}
