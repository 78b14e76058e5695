//! The prepare step: the run's identity (inputs' fingerprints and every setting that shapes the
//! result), checked against the store's on a resume, recorded on a fresh store; and the period of a
//! `/historical` run, resolved once.

use std::path::{Path, PathBuf};

use engagement_api::{Endpoint, Window};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::ingest::IngestPlan;
use super::{RunError, RunSpec};
use crate::ids::{self, InputSource};
use crate::store::{MetaKey, Store};

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
    /// CSV group column (`--group-column`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_column: Option<String>,
    /// `--group`, the group of IDs without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `--group-from` (`file` or `folder`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_from: Option<String>,
    /// (input display name, SHA-256 of its bytes).
    pub inputs: Vec<(String, String)>,
    /// `I/N` of a shard store (`--shard`); absent for a whole run, whose identity (and so a history's
    /// key) is then what it was before shards existed. A merged store has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

impl Identity {
    /// The identity of the run `spec` describes, over inputs with these fingerprints.
    pub fn of(spec: &RunSpec, inputs: Vec<(String, String)>) -> Identity {
        Identity {
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
            format: spec.read.format.map(|f| f.as_str().to_string()),
            id_column: spec.read.id_column.clone(),
            group_column: spec.read.group_column.clone(),
            group: spec.default_group.clone(),
            group_from: spec.group_from.map(|g| g.as_str().to_string()),
            inputs,
            shard: spec.shard.map(|s| s.to_string()),
        }
    }

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
        cmp(
            "group column",
            format!("{:?}", self.group_column),
            format!("{:?}", stored.group_column),
        );
        cmp(
            "group",
            format!("{:?}", self.group),
            format!("{:?}", stored.group),
        );
        cmp(
            "group from",
            format!("{:?}", self.group_from),
            format!("{:?}", stored.group_from),
        );
        cmp(
            "shard",
            self.shard
                .clone()
                .unwrap_or_else(|| "none (the whole run)".into()),
            stored
                .shard
                .clone()
                .unwrap_or_else(|| "none (the whole run)".into()),
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

/// A store ready for the run: identity checked, period resolved.
pub struct Prepared {
    /// The store, opened for writing.
    pub store: Store,
    /// The run's windows (one `None` for single-window jobs).
    pub windows: Vec<Option<Window>>,
    /// The inputs to read, when the store's ingest is not finished.
    pub ingest: Option<IngestPlan>,
}

/// Fingerprints the inputs, opens the store and checks (or records) the identity and the period.
pub async fn prepare(spec: &RunSpec, cancel: &CancellationToken) -> Result<Prepared, RunError> {
    let started = std::time::Instant::now();
    let (sources, source_groups) = resolve_inputs(spec, cancel).await?;
    let mut fingerprints = Vec::with_capacity(sources.len());
    for s in &sources {
        fingerprints.push((s.display_name(), ids::fingerprint(s)?));
    }
    let identity = Identity::of(spec, fingerprints);

    let mut store = Store::open(&spec.db)?;
    crate::fsutil::restrict(&spec.db);
    match store.meta(MetaKey::Identity)? {
        Some(stored) => {
            let stored: Identity =
                serde_json::from_str(&stored).map_err(|e| RunError::Unreadable {
                    db: spec.db.clone(),
                    what: format!("run identity: {e}"),
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
                MetaKey::Identity,
                &serde_json::to_string(&identity).expect("serializes"),
            )?;
        }
    }
    if let Some(n) = spec.min_impressions {
        store.set_meta(MetaKey::MinImpressions, &n.to_string())?;
    }
    tracing::info!(elapsed = ?started.elapsed(), "inputs fingerprinted, identity checked");

    // The period is resolved once; a resume uses the stored one.
    let period = match store.meta(MetaKey::Period)? {
        Some(p) => Some(parse_period(&p).ok_or_else(|| RunError::Unreadable {
            db: spec.db.clone(),
            what: format!("stored period `{p}`"),
        })?),
        None => {
            if let Some(w) = spec.period {
                store.set_meta(MetaKey::Period, &format_period(&w))?;
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
    let ingest = if store.ingest_state()?.0 {
        None
    } else {
        Some(IngestPlan {
            sources,
            read: spec.read.clone(),
            accept_rejects: spec.accept_rejects,
            default_account: spec.default_account.clone(),
            source_groups,
            default_group: spec.default_group.clone(),
            shard: spec.shard,
            spill_dir: spill_dir(&spec.db).to_path_buf(),
        })
    };
    Ok(Prepared {
        store,
        windows,
        ingest,
    })
}

/// Refuses a `--db` whose folder does not exist (before the lock file or the store is made there).
pub fn check_folder(db: &Path) -> Result<(), RunError> {
    if spill_dir(db).is_dir() {
        Ok(())
    } else {
        Err(RunError::NoFolder {
            flag: "--db",
            path: db.to_path_buf(),
        })
    }
}

/// The folder beside the store, for spooled standard input and sorted runs.
fn spill_dir(db: &Path) -> &Path {
    db.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Resolves inputs. Standard input and every input that can be read only once (a named pipe,
/// `/dev/stdin`, `<(…)`'s `/dev/fd/N`, a character device: see [`ids::is_read_once`]) are copied next
/// to the store, each read exactly once, and the copy is what is fingerprinted and read; a resume
/// reads the input again the same way and compares what it read with the stored fingerprint. `-`
/// is named by its copy (`stdin-<hash>`, as stores from earlier versions have it), the others by
/// the path given. With `--group-from`, each source comes with the group name it gives its IDs.
///
/// The open of a pipe waits for a writer and its reads for data, however long: each copy runs on a
/// thread of its own so that a shutdown request ends the wait ([`RunError::InterruptedWaiting`]).
async fn resolve_inputs(
    spec: &RunSpec,
    cancel: &CancellationToken,
) -> Result<(Vec<InputSource>, Vec<Option<String>>), RunError> {
    let dir = spill_dir(&spec.db).to_path_buf();
    let mut sources = Vec::new();
    let mut labels = Vec::new();
    for s in &spec.inputs {
        let path = PathBuf::from(s);
        if s == "-" {
            let d = dir.clone();
            let copy = spool_waiting("standard input", &dir, "stdin", cancel, move || {
                ids::spool_stdin(&d)
            })
            .await?
            .map_err(|e| RunError::Stdin { source: e })?;
            sources.extend(ids::expand_inputs(&[copy])?);
        } else if ids::is_read_once(&path) {
            let d = dir.clone();
            let source = spool_waiting(s, &dir, "input", cancel, move || {
                ids::spool_input(&path, &d)
            })
            .await??;
            sources.push(source);
        } else {
            sources.extend(ids::expand_inputs(std::slice::from_ref(&path))?);
        }
        let given = Path::new(s);
        labels.extend(
            sources[labels.len()..]
                .iter()
                .map(|source| spec.group_from.and_then(|g| g.label(given, source))),
        );
    }
    Ok((sources, labels))
}

/// Runs `copy` (which spools input `name` into `dir`) on a thread of its own and waits for it or
/// for a shutdown request, whichever comes first. On shutdown the thread is left waiting (the
/// process is about to exit) and its temporary file is removed.
async fn spool_waiting<T: Send + 'static>(
    name: &str,
    dir: &Path,
    prefix: &str,
    cancel: &CancellationToken,
    copy: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RunError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("engage-spool".into())
        .spawn(move || {
            let _ = tx.send(copy());
        })
        .map_err(|e| RunError::Thread {
            what: format!("read {name}"),
            source: e,
        })?;
    tokio::select! {
        copied = rx => copied.map_err(|_| RunError::Panicked { stage: "input copy" }),
        _ = cancel.cancelled() => {
            let _ = std::fs::remove_file(ids::spool_tmp(dir, prefix));
            Err(RunError::InterruptedWaiting { input: name.to_string() })
        }
    }
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
