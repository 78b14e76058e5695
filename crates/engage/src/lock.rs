//! One writer per store: an OS advisory lock on `<db>-lock`.
//!
//! Design note: `engage run` (and `engage demo`) take the lock before anything else touches the
//! store or the inputs, so a second writer on the same `--db` stops at once, before it fingerprints
//! its inputs or sends a request. The lock is `flock`-style ([`std::fs::File::try_lock`]): the OS
//! drops it when the process ends, however it ends (`kill -9` included), so a lock file left behind
//! never blocks a resume, and nothing has to decide whether a recorded PID is still alive. The
//! holder writes its PID, host and start time into the file, only to tell the refused process who
//! is in the way. The file is never deleted: removing it while another process has it open would
//! let a third lock a new file of the same name beside a running writer. Readers (`engage status`,
//! `engage report`) take no lock; SQLite's WAL lets them read while the writer commits.
//!
//! Within one process the lock is shared: `engage demo` holds it while it prepares its folder and
//! the run it starts takes it again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("store {db} is in use by another engage ({holder}); wait for it to finish, or point --db at another file (lock file {lock})")]
    InUse {
        /// The store.
        db: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Who holds it, as it wrote itself into the lock file.
        holder: String,
    },
    /// The lock file cannot be opened or written.
    #[error("lock file {lock}: {source}")]
    Io {
        /// The lock file.
        lock: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The lock file beside a store.
pub fn lock_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-lock", db.display()))
}

/// The writer's lock on a store, held until the last clone is dropped.
#[derive(Debug, Clone)]
pub struct WriterLock {
    _held: Arc<Held>,
}

/// An open, locked lock file (closing it releases the lock).
#[derive(Debug)]
struct Held {
    _file: File,
}

/// The locks this process holds, by lock file path, so that a second take in the same process
/// shares the first instead of being refused by it.
static HELD: Mutex<Vec<(PathBuf, Weak<Held>)>> = Mutex::new(Vec::new());

impl WriterLock {
    /// Takes the lock of the store `db`, or says who holds it. Never waits.
    pub fn acquire(db: &Path) -> Result<WriterLock, LockError> {
        let lock = lock_path(db);
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|(_, w)| w.strong_count() > 0);
        if let Some(h) = held
            .iter()
            .find(|(p, _)| *p == lock)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(WriterLock { _held: h });
        }
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        let mut o = OpenOptions::new();
        // Not truncated on open: the holder's details are in it until the lock is ours.
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut file = o.open(&lock).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::InUse {
                    db: db.to_path_buf(),
                    lock,
                    holder: describe(&text),
                });
            }
            Err(std::fs::TryLockError::Error(e)) if unsupported(&e) => {
                // A file system without locks: run as before, unprotected, rather than not at all.
                tracing::warn!(lock = %lock.display(), error = %e, "cannot lock the store; make sure no other engage uses it");
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let started = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| "unknown".into());
        let about = format!(
            "engage writer of {}\npid {}\nhost {}\nstarted {started}\n",
            db.display(),
            std::process::id(),
            hostname()
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(about.as_bytes()))
            .map_err(io)?;
        let h = Arc::new(Held { _file: file });
        held.push((lock, Arc::downgrade(&h)));
        Ok(WriterLock { _held: h })
    }
}

/// "pid 123 on host h, started T" from what the holder wrote (it may not have written it yet).
fn describe(text: &str) -> String {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    match (field("pid"), field("host"), field("started")) {
        (Some(pid), Some(host), Some(started)) => {
            format!("pid {pid} on host {host}, started {started}")
        }
        _ => "a process that has just started".into(),
    }
}

/// Errors that mean "this file system does not lock", not "someone holds it".
fn unsupported(e: &std::io::Error) -> bool {
    // ENOLCK on Linux: no locks available (some network file systems).
    e.kind() == std::io::ErrorKind::Unsupported
        || (cfg!(target_os = "linux") && e.raw_os_error() == Some(37))
}

/// This machine's name, for the message of a process refused on another one (a shared folder).
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_shared_in_the_process_and_released_with_the_last_holder() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("run.db");
        let a = WriterLock::acquire(&db).unwrap();
        let b = WriterLock::acquire(&db).expect("the same process shares its lock");
        // Another open file description, as another process would have: refused, and told who.
        let other = File::options()
            .read(true)
            .write(true)
            .open(lock_path(&db))
            .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        let text = std::fs::read_to_string(lock_path(&db)).unwrap();
        let who = describe(&text);
        assert!(
            who.starts_with(&format!("pid {} on host ", std::process::id()))
                && who.contains(", started 20"),
            "{who}"
        );
        drop(a);
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(b);
        other.try_lock().expect("released with the last holder");
    }

    #[test]
    fn a_holder_that_has_not_written_yet_is_described_as_such() {
        assert_eq!(describe(""), "a process that has just started");
        assert_eq!(
            describe("engage writer of x\npid 7\nhost h\nstarted 2026-01-02T03:04:05Z\n"),
            "pid 7 on host h, started 2026-01-02T03:04:05Z"
        );
    }
}
