//! Writing report files whole: each file is written under a temporary name in the report folder,
//! flushed to disk, and renamed into place with the others by [`Staging::publish`], `top.json`
//! last; every error names the file ([`ReportError`]). The bottom layer of `report`: it depends on
//! nothing else in it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing CSV failed.
    #[error("writing {path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV error.
        #[source]
        source: csv::Error,
    },
}

impl ReportError {
    /// The documented exit code this error ends a command with: a report that cannot be written is
    /// the machine's doing (a full disk, a read-only `--out`), the store's errors map as the store's.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::Io { .. } | ReportError::Csv { .. } => crate::exit::ENVIRONMENT,
            ReportError::Store(e) => e.exit_code(),
        }
    }
}

pub(super) fn create(path: &Path) -> Result<BufWriter<File>, ReportError> {
    let f = crate::fsutil::create_report(path).map_err(io(path))?;
    Ok(BufWriter::new(f))
}

/// Flushes a file written in one go. Whole before it is renamed to its final name, so no process
/// (and no crash of engage) ever finds a final name short. It is not fsynced: like the store's last
/// commits (`synchronous=NORMAL`), the last report may be lost to a power failure, and
/// `engage report` writes it again; an fsync of a 1M-row `tweets.csv` cost a resumed run a tenth of
/// its time (`scripts/bench resume`).
fn finish(w: BufWriter<File>, path: &Path) -> Result<(), ReportError> {
    crate::failpoint::hit("report-write");
    w.into_inner().map_err(|e| io(path)(e.into_error()))?;
    Ok(())
}

/// Starts the temporary names of this process's report files, `.engage-<pid>-<file>.tmp`: hidden,
/// and named for the process so that [`sweep_stale`] can tell whose writer died.
const STAGING_PREFIX: &str = ".engage-";

/// The temporary name of report file `name` written by this process.
pub(super) fn staging_name(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{STAGING_PREFIX}{}-{name}.tmp", std::process::id()))
}

/// Removes the temporary files that report writers killed in `dir` left behind: those named for a
/// process that no longer exists. Only where `/proc` tells (Linux); elsewhere they stay, hidden.
pub(super) fn sweep_stale(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name
            .to_str()
            .filter(|n| n.ends_with(".tmp"))
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
        else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != me && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The files of one report, each written whole under a temporary name in the report folder and
/// renamed into place together by [`Staging::publish`]. Dropped unpublished (an error on the way),
/// it removes the temporary files it created.
pub(super) struct Staging {
    dir: PathBuf,
    /// (temporary name, final name, created here) in the order the report lists them.
    files: Vec<(PathBuf, PathBuf, bool)>,
}

impl Staging {
    pub(super) fn new(dir: &Path) -> Staging {
        Staging {
            dir: dir.to_path_buf(),
            files: Vec::new(),
        }
    }

    /// A new temporary file for the report file `name`.
    fn create(&mut self, name: &str) -> Result<(PathBuf, BufWriter<File>), ReportError> {
        let tmp = staging_name(&self.dir, name);
        let w = create(&tmp)?;
        self.files.push((tmp.clone(), self.dir.join(name), true));
        Ok((tmp, w))
    }

    /// A file written elsewhere (the outcome pass's), whole and durable, for the report file `name`.
    pub(super) fn adopt(&mut self, tmp: PathBuf, name: &str) {
        self.files.push((tmp, self.dir.join(name), false));
    }

    /// Renames every file into place, `top.json` last, then makes the renames durable. Returns the
    /// final names in report order.
    pub(super) fn publish(mut self) -> Result<Vec<PathBuf>, ReportError> {
        let files = std::mem::take(&mut self.files);
        let mut order: Vec<usize> = (0..files.len()).collect();
        // Stable: the others keep their order.
        order.sort_by_key(|&i| files[i].1.file_name() == Some("top.json".as_ref()));
        for (k, &i) in order.iter().enumerate() {
            let (tmp, to, _) = &files[i];
            crate::failpoint::hit("report-publish");
            if let Err(e) = std::fs::rename(tmp, to) {
                for &j in &order[k..] {
                    if files[j].2 {
                        let _ = std::fs::remove_file(&files[j].0);
                    }
                }
                return Err(io(to)(e));
            }
        }
        crate::fsutil::sync_dir(&self.dir).map_err(io(&self.dir))?;
        Ok(files.into_iter().map(|(_, to, _)| to).collect())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for (tmp, _, created) in &self.files {
            if *created {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

pub(super) fn io(path: &Path) -> impl Fn(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn csv_err(path: &Path) -> impl Fn(csv::Error) -> ReportError + '_ {
    move |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the CSV file `name` of a report: the header, then every row `rows` hands to its
/// callback. The first write error is kept and returned once the store's iteration ends.
pub(super) fn write_csv(
    staging: &mut Staging,
    name: &str,
    header: &[&str],
    rows: impl FnOnce(&mut dyn FnMut(&[&str])) -> Result<(), StoreError>,
) -> Result<(), ReportError> {
    let (path, w) = staging.create(name)?;
    let mut w = csv::Writer::from_writer(w);
    w.write_record(header).map_err(csv_err(&path))?;
    let mut failure = None;
    rows(&mut |rec: &[&str]| {
        if failure.is_none() {
            failure = w.write_record(rec).err();
        }
    })?;
    if let Some(e) = failure {
        return Err(csv_err(&path)(e));
    }
    let w = w.into_inner().map_err(|e| io(&path)(e.into_error()))?;
    finish(w, &path)
}

/// Writes the text file `name` of a report.
pub(super) fn write_text(
    staging: &mut Staging,
    name: &str,
    text: &[u8],
) -> Result<(), ReportError> {
    let (path, mut w) = staging.create(name)?;
    w.write_all(text).map_err(io(&path))?;
    finish(w, &path)
}
