//! File modes and durability.
//!
//! The store, its side files (`-wal`, `-shm`, the marker) and the copies of piped inputs are owner-only (`0600`) whatever the
//! umask: they hold every Tweet ID of the run and the owner account names. Reports are created like
//! any file a command writes, `0666` less the umask, so the operator decides who reads them (a shell's
//! `umask`, systemd's `UMask=`); `umask 077` makes them owner-only too.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates (or truncates) a file readable and writable by its owner only: the copies of piped
/// inputs kept beside the store, which hold every Tweet ID of the run like the store does.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Creates a report file with the umask's mode. A file already at `path` (left by a killed life) is
/// replaced rather than truncated, so that it does not keep the mode it was created with.
pub fn create_report(path: &Path) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Makes the renames into `dir` durable (a rename is an update of the folder, which has its own
/// fsync); a no-op where folders cannot be opened as files.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Restricts an existing file and its SQLite companions (`-wal`, `-shm`) to its owner; best effort.
pub fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [
            path.to_path_buf(),
            std::path::PathBuf::from(format!("{}-wal", path.display())),
            std::path::PathBuf::from(format!("{}-shm", path.display())),
        ] {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}
