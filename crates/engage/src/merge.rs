//! `engage merge`: the finished shard stores of one run (`engage run --shard I/N`) combined into
//! one store, the one a single run over the same inputs would have written, and every report
//! written from it by the report writer every run uses. See docs/sharding.md.
//!
//! The checks come first and refuse, naming the store: a store that is not a shard, shards of
//! different runs (inputs, endpoint, period, metrics, N...), a shard given twice, a shard missing,
//! a shard not finished, shards that did not read the inputs alike. Then the tables are combined
//! ([`Store::merge_tables`]) into a new file beside the merged store's path, which replaces it only
//! once whole: a merge killed at any point leaves the previous merged store, and running it again
//! builds the same store.

use std::path::{Path, PathBuf};

use crate::apps;
use crate::lock::{LockError, WriterLock};
use crate::report::{ReportError, Summary};
use crate::run::{open_run, Identity, OpenRun, RunError};
use crate::shard::Shard;
use crate::store::{marker_path, wal_path, MetaKey, Store, StoreError};

/// Why a merge failed. Each variant maps to one documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The stores given are not the finished shards of one run: said in words (exit 2).
    #[error("{0}")]
    Refused(String),
    /// A store could not be opened or read as a run.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A store (a shard's or the merged one) is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process writes the merged store.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// Writing the reports failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The merged store could not be put in place.
    #[error("merged store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A bug: the store holds something the merge has no rule for.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MergeError {
    /// The documented exit code (README, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            MergeError::Refused(_) | MergeError::Locked(_) => exit::USAGE,
            MergeError::Run(e) => e.exit_code(),
            MergeError::Store(e) => e.exit_code(),
            MergeError::Report(e) => e.exit_code(),
            MergeError::Io { .. } => exit::ENVIRONMENT,
            MergeError::Internal(_) => exit::INTERNAL,
        }
    }
}

/// What a merge did.
#[derive(Debug)]
pub struct Merged {
    /// The merged store.
    pub db: PathBuf,
    /// N.
    pub shards: u32,
    /// The report's figures.
    pub summary: Summary,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// One shard store, opened and checked.
struct ShardStore {
    db: PathBuf,
    run: OpenRun,
    shard: Shard,
}

/// Merges the shard stores `dbs` into the store `merged` (replaced if it exists) and writes every
/// report into `out`.
pub fn merge(dbs: &[PathBuf], merged: &Path, out: &Path) -> Result<Merged, MergeError> {
    let shards = check(dbs)?;
    let count = shards[0].shard.count;
    if let Some(s) = shards.iter().find(|s| same_file(&s.db, merged)) {
        return Err(MergeError::Refused(format!(
            "--merged-db {} is shard {}'s store; name another file for the merged store",
            merged.display(),
            s.shard
        )));
    }
    let folder = merged
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return Err(RunError::NoFolder {
            flag: "--merged-db",
            path: merged.to_path_buf(),
        }
        .into());
    }
    // One merge (or run) at a time on the merged store.
    let _lock = WriterLock::acquire(merged)?;
    let name = merged
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "merged.db".into());
    let building = folder.join(format!(".{name}.merging"));
    remove_store_files(&building)?;
    {
        let mut store = Store::open(&building)?;
        crate::fsutil::restrict(&building);
        let readers: Vec<Store> = shards
            .iter()
            .map(|s| Store::open_cursor(&s.db))
            .collect::<Result<_, _>>()?;
        if let Some(d) = store.merge_tables(&readers)? {
            drop(store);
            let _ = remove_store_files(&building);
            if d.table == "sqlite_master" {
                return Err(MergeError::Internal(d.row));
            }
            return Err(MergeError::Refused(format!(
                "{} did not read the inputs as {} did: its {} differ (first differing row: {}); \
                 were the shards run by different engage versions? Run every shard with one version",
                d.db.display(),
                shards[0].db.display(),
                d.table,
                d.row
            )));
        }
        write_meta(&store, &shards)?;
    }
    // The new store is whole and closed (its WAL folded in): it replaces the old one.
    remove_store_files(merged)?;
    std::fs::rename(&building, merged).map_err(|e| MergeError::Io {
        path: merged.to_path_buf(),
        source: e,
    })?;
    let run = open_run(merged)?;
    let (summary, files) = run.write_reports(out)?;
    Ok(Merged {
        db: merged.to_path_buf(),
        shards: count,
        summary,
        files,
    })
}

/// Opens every store and checks that they are the N finished shards of one run, each once.
fn check(dbs: &[PathBuf]) -> Result<Vec<ShardStore>, MergeError> {
    if dbs.is_empty() {
        return Err(MergeError::Refused(
            "no shard stores given (--db SHARD.db...)".into(),
        ));
    }
    let mut shards: Vec<ShardStore> = Vec::with_capacity(dbs.len());
    for db in dbs {
        let run = open_run(db)?;
        let raw = run.identity.shard.clone().ok_or_else(|| {
            MergeError::Refused(format!(
                "{} is not a shard store (it was not run with --shard I/N): there is nothing to merge",
                db.display()
            ))
        })?;
        let shard: Shard = raw.parse().map_err(|e: String| {
            MergeError::Run(RunError::Unreadable {
                db: db.clone(),
                what: e,
            })
        })?;
        if let Some(first) = shards.first() {
            let mut stored = first.run.identity.clone();
            stored.shard = None;
            let mut this = run.identity.clone();
            this.shard = None;
            let mut differences = this.differences(&stored);
            let (p0, p1) = (
                first.run.store.meta(MetaKey::Period)?,
                run.store.meta(MetaKey::Period)?,
            );
            if p0 != p1 {
                differences.push(format!(
                    "period: {} has {}, this one {}",
                    first.db.display(),
                    p0.unwrap_or_default(),
                    p1.unwrap_or_default()
                ));
            }
            if shard.count != first.shard.count {
                differences.push(format!(
                    "number of shards: {} is one of {}, this one of {}",
                    first.db.display(),
                    first.shard.count,
                    shard.count
                ));
            }
            if !differences.is_empty() {
                return Err(MergeError::Refused(format!(
                    "{} (shard {shard}) is a shard of another run than {}:\n  {}",
                    db.display(),
                    first.db.display(),
                    differences.join("\n  ")
                )));
            }
        }
        if let Some(twice) = shards.iter().find(|s| s.shard == shard) {
            return Err(MergeError::Refused(format!(
                "shard {shard} is given twice: {} and {}",
                twice.db.display(),
                db.display()
            )));
        }
        if let Some(why) = run.store.unfinished()? {
            return Err(MergeError::Refused(format!(
                "{} (shard {shard}) is not finished: {why}; run that shard again (the same command resumes it), then merge",
                db.display()
            )));
        }
        shards.push(ShardStore {
            db: db.clone(),
            run,
            shard,
        });
    }
    let count = shards[0].shard.count;
    let missing: Vec<String> = (0..count)
        .filter(|i| !shards.iter().any(|s| s.shard.index == *i))
        .map(|i| Shard { index: i, count }.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Refused(format!(
            "shard{} {} of the run missing: {} given, {count} needed (each shard's store once)",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            shards.len()
        )));
    }
    shards.sort_by_key(|s| s.shard.index);
    Ok(shards)
}

/// The merged store's `meta`: the run's identity without the shard (so the store is the one a
/// single run writes, and a history holds it under the single run's key), the period, the line
/// counters added up so they equal a single run's, the latest fetch time, each app's figures.
fn write_meta(store: &Store, shards: &[ShardStore]) -> Result<(), MergeError> {
    let mut identity: Identity = shards[0].run.identity.clone();
    identity.shard = None;
    if let Some(p) = shards[0].run.store.meta(MetaKey::Period)? {
        store.set_meta(MetaKey::Period, &p)?;
    }
    // Each shard counts the lines of its own IDs and their duplicates, and every shard all the
    // rejected lines (which the merge checked are the same rows in each).
    let (mut input_lines, mut duplicates) = (0u64, 0u64);
    let mut rejected = None;
    let mut fetched_at: Option<String> = None;
    let mut figures = Vec::new();
    for s in shards {
        let (_, c) = s.run.store.ingest_state()?;
        input_lines += c.input_lines - c.rejected_lines;
        duplicates += c.duplicate_ids;
        match rejected {
            None => rejected = Some(c.rejected_lines),
            Some(r) if r != c.rejected_lines => {
                return Err(MergeError::Refused(format!(
                    "{} counts {} rejected lines, {} counts {r}: the shards did not read the inputs alike",
                    s.db.display(),
                    c.rejected_lines,
                    shards[0].db.display()
                )))
            }
            Some(_) => {}
        }
        // RFC 3339 UTC times of one format compare as text.
        if let Some(t) = s.run.store.meta(MetaKey::FetchedAt)? {
            if fetched_at.as_ref().is_none_or(|f| t > *f) {
                fetched_at = Some(t);
            }
        }
        figures.extend(apps::load(&s.run.store)?);
    }
    let rejected = rejected.unwrap_or(0);
    // IDs in several groups: each ID's groups are all in its one shard.
    let mut shared = None::<u64>;
    for s in shards {
        if let Some(n) = s.run.store.meta(MetaKey::SharedIds)? {
            *shared.get_or_insert(0) += n.parse::<u64>().unwrap_or(0);
        }
    }
    if let Some(n) = shared {
        store.set_meta(MetaKey::SharedIds, &n.to_string())?;
    }
    // A report setting every shard was given alike (the pods share one command line).
    if let Some(n) = shards[0].run.store.meta(MetaKey::MinImpressions)? {
        store.set_meta(MetaKey::MinImpressions, &n)?;
    }
    for (k, v) in [
        (MetaKey::InputLines, input_lines + rejected),
        (MetaKey::RejectedLines, rejected),
        (MetaKey::DuplicateIds, duplicates),
        (MetaKey::IngestDone, 1),
    ] {
        store.set_meta(k, &v.to_string())?;
    }
    if let Some(t) = fetched_at {
        store.set_meta(MetaKey::FetchedAt, &t)?;
    }
    apps::record(store, &figures)?;
    // Last: a store with an identity is a recorded run.
    store.set_meta(
        MetaKey::Identity,
        &serde_json::to_string(&identity).expect("serializes"),
    )?;
    Ok(())
}

/// Removes a store and its side files (WAL, shared memory, marker), those that exist.
fn remove_store_files(db: &Path) -> Result<(), MergeError> {
    let shm = PathBuf::from(format!("{}-shm", db.display()));
    for p in [db.to_path_buf(), wal_path(db), shm, marker_path(db)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(MergeError::Io { path: p, source: e }),
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
