//! The inputs to read: [`InputSource`], the command line's specs expanded into
//! them ([`expand_inputs`]), their fingerprints for resume ([`fingerprint`]),
//! and the copies of inputs that can be read only once ([`spool_stdin`],
//! [`spool_input`]).

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Format, IdsError, IO_BUFFER_BYTES};

/// One input to read: a file or standard input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InputSource {
    /// Standard input (given as `-`).
    Stdin,
    /// A regular file.
    File(PathBuf),
    /// An input that can be read only once (a named pipe, `/dev/stdin`, `/dev/fd/N` from `<(…)`, a
    /// character device), copied by [`spool_input`]: `path` is the copy, which is fingerprinted and
    /// read; `name` is the input as given, which rejects and errors show and the format is guessed
    /// from.
    Spooled {
        /// The input as given on the command line.
        name: String,
        /// Its copy.
        path: PathBuf,
    },
}

impl InputSource {
    /// The name used in rejects and errors: the path (as given, for a spooled input), or `-` for
    /// stdin.
    pub fn display_name(&self) -> String {
        self.to_string()
    }

    /// The file that is read, if this is not stdin.
    pub fn path(&self) -> Option<&Path> {
        match self {
            InputSource::Stdin => None,
            InputSource::File(p) | InputSource::Spooled { path: p, .. } => Some(p),
        }
    }

    /// The format implied by the file name (stdin is plain).
    pub fn format_hint(&self) -> Format {
        match self {
            InputSource::Stdin => Format::Plain,
            InputSource::File(p) => Format::from_path(p),
            InputSource::Spooled { name, .. } => Format::from_path(Path::new(name)),
        }
    }
}

impl fmt::Display for InputSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputSource::Stdin => f.write_str("-"),
            InputSource::File(p) => write!(f, "{}", p.display()),
            InputSource::Spooled { name, .. } => f.write_str(name),
        }
    }
}

/// Resolves command-line input specs into the list of sources to read.
///
/// `-` is stdin; a folder is walked recursively and contributes its files in
/// byte-wise path order, skipping hidden entries (names starting with `.`,
/// folders included) so editor and VCS litter is not read as IDs. Files
/// named explicitly are kept even when hidden. The order is deterministic
/// because resume positions are indices into this list.
pub fn expand_inputs<S: AsRef<Path>>(specs: &[S]) -> Result<Vec<InputSource>, IdsError> {
    let mut out = Vec::new();
    for spec in specs {
        let path = spec.as_ref();
        if path.as_os_str() == "-" {
            out.push(InputSource::Stdin);
            continue;
        }
        let meta = metadata(path)?;
        if meta.is_dir() {
            let mut files = Vec::new();
            let mut visited = HashSet::new();
            walk(path, &mut files, &mut visited)?;
            files.sort_by(|a, b| {
                a.as_os_str()
                    .as_encoded_bytes()
                    .cmp(b.as_os_str().as_encoded_bytes())
            });
            out.extend(files.into_iter().map(InputSource::File));
        } else {
            // Not only regular files: named pipes and /dev/fd/N from process
            // substitution are legitimate explicit inputs.
            out.push(InputSource::File(path.to_path_buf()));
        }
    }
    Ok(out)
}

fn metadata(path: &Path) -> Result<fs::Metadata, IdsError> {
    fs::metadata(path).map_err(|e| open_error(path, e))
}

fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
) -> Result<(), IdsError> {
    let open_err = |source| IdsError::Open {
        path: dir.display().to_string(),
        source,
    };
    // Symlinked folders are followed, so guard against cycles.
    let canonical = fs::canonicalize(dir).map_err(open_err)?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    for entry in fs::read_dir(dir).map_err(open_err)? {
        let entry = entry.map_err(open_err)?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let meta = metadata(&path)?;
        if meta.is_dir() {
            walk(&path, out, visited)?;
        } else if meta.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// SHA-256 (lowercase hex) of a file's raw bytes, read in 64 KiB chunks.
///
/// Used to recognise an input on resume. Standard input has no stable
/// content to hash; spool it with [`spool_stdin`] first.
pub fn fingerprint(source: &InputSource) -> Result<String, IdsError> {
    let Some(path) = source.path() else {
        return Err(IdsError::StdinFingerprint);
    };
    let mut file = File::open(path).map_err(|e| open_error(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; IO_BUFFER_BYTES];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(IdsError::Read {
                    path: path.display().to_string(),
                    line: 0,
                    source: e,
                })
            }
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

pub(super) fn open_error(path: &Path, e: io::Error) -> IdsError {
    if e.kind() == io::ErrorKind::NotFound {
        IdsError::NotFound {
            path: path.display().to_string(),
        }
    } else {
        IdsError::Open {
            path: path.display().to_string(),
            source: e,
        }
    }
}

/// Copies standard input into folder `dir` and returns the new file's path.
///
/// The file is named `stdin-<first 16 hex digits of its SHA-256>` so piping
/// the same data again on resume lands on the same name. It has no
/// extension, so it reads as plain text unless a format is forced; gzip is
/// still detected from its content.
pub fn spool_stdin(dir: &Path) -> io::Result<PathBuf> {
    spool(io::stdin().lock(), dir, "stdin")
}

/// Whether `path` can be read only once: it exists and is neither a regular file nor a folder (a
/// named pipe, `/dev/stdin` or `/dev/fd/N` of a pipe, a character device). Opening such an input
/// twice (once to fingerprint it, once to read it) would find the data gone the second time, or
/// wait for a second writer, so it is copied once with [`spool_input`].
pub fn is_read_once(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| {
        let t = m.file_type();
        !t.is_file() && !t.is_dir()
    })
}

/// Copies a read-once input (see [`is_read_once`]) into folder `dir`, opening it once and reading it
/// to its end, and returns [`InputSource::Spooled`] with the copy. The copy is named
/// `input-<first 16 hex digits of its SHA-256>`, so the same data lands on the same name.
///
/// The open of a named pipe waits for a writer and each read for data: a caller that must stay
/// responsive runs this on a thread of its own (and removes [`spool_tmp`] if it gives up).
pub fn spool_input(path: &Path, dir: &Path) -> Result<InputSource, IdsError> {
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    let copy = spool(file, dir, "input").map_err(|e| IdsError::Read {
        path: path.display().to_string(),
        line: 0,
        source: io::Error::new(e.kind(), format!("copying it into {}: {e}", dir.display())),
    })?;
    Ok(InputSource::Spooled {
        name: path.display().to_string(),
        path: copy,
    })
}

/// The temporary file [`spool_input`] (`prefix` `input`) or [`spool_stdin`] (`stdin`) of this
/// process writes in `dir` before renaming it (inputs are spooled one at a time).
pub fn spool_tmp(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!(".{prefix}-spool-{}.tmp", std::process::id()))
}

fn spool(mut input: impl Read, dir: &Path, prefix: &str) -> io::Result<PathBuf> {
    let tmp = spool_tmp(dir, prefix);
    // Owner-only, like the store: the copy lists a customer's Tweets.
    let mut file =
        io::BufWriter::with_capacity(IO_BUFFER_BYTES, crate::fsutil::create_private(&tmp)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; IO_BUFFER_BYTES];
    let result = (|| {
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let digest = hex(&hasher.finalize());
    let dest = dir.join(format!("{prefix}-{}", &digest[..16]));
    fs::rename(&tmp, &dest)?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testutil::*;
    use crate::ids::{Positioned, ReadOptions, Reader};
    use tempfile::TempDir;

    #[test]
    fn expand_inputs_walks_folders_in_byte_order() {
        let dir = TempDir::new().unwrap();
        let root = dir.path();
        for name in [
            "in/b.txt",
            "in/a/z.txt",
            "in/a/B.txt",
            "in/a-x.txt",
            "in/.hidden.txt",
            "in/.git/config",
            "in/c/d/e.csv",
            "single.txt",
        ] {
            write(root, name, b"1\n");
        }
        fs::create_dir_all(root.join("in/empty")).unwrap();
        let got =
            expand_inputs(&[root.join("in"), PathBuf::from("-"), root.join("single.txt")]).unwrap();
        let rel: Vec<String> = got
            .iter()
            .map(|s| match s {
                InputSource::Stdin => "-".to_string(),
                InputSource::File(p) => p.strip_prefix(root).unwrap().display().to_string(),
                InputSource::Spooled { .. } => unreachable!("expand_inputs copies nothing"),
            })
            .collect();
        assert_eq!(
            rel,
            vec![
                "in/a-x.txt",
                "in/a/B.txt",
                "in/a/z.txt",
                "in/b.txt",
                "in/c/d/e.csv",
                "-",
                "single.txt"
            ]
        );
        // Hidden files given explicitly are read.
        let hidden = expand_inputs(&[root.join("in/.hidden.txt")]).unwrap();
        assert_eq!(hidden.len(), 1);
    }

    #[test]
    fn expand_inputs_missing_path_names_it() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("nope.txt");
        let err = expand_inputs(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(err, IdsError::NotFound { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));
    }

    #[test]
    fn fingerprint_is_sha256_of_raw_bytes() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "abc.txt", b"abc");
        assert_eq!(
            fingerprint(&InputSource::File(path)).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let big = vec![b'x'; 3 * IO_BUFFER_BYTES + 17];
        let path = write(dir.path(), "big.txt", &big);
        assert_eq!(
            fingerprint(&InputSource::File(path)).unwrap(),
            hex(&Sha256::digest(&big))
        );
        assert!(matches!(
            fingerprint(&InputSource::Stdin),
            Err(IdsError::StdinFingerprint)
        ));
        let missing = dir.path().join("missing");
        let err = fingerprint(&InputSource::File(missing.clone())).unwrap_err();
        assert!(err.to_string().contains(&missing.display().to_string()));
    }

    #[test]
    fn spool_names_file_by_content() {
        let dir = TempDir::new().unwrap();
        let a = spool(&b"1\n2\n"[..], dir.path(), "stdin").unwrap();
        let b = spool(&b"1\n2\n"[..], dir.path(), "stdin").unwrap();
        assert_eq!(a, b);
        assert_eq!(fs::read(&a).unwrap(), b"1\n2\n");
        let digest = fingerprint(&InputSource::File(a.clone())).unwrap();
        assert_eq!(
            a.file_name().unwrap().to_str().unwrap(),
            format!("stdin-{}", &digest[..16])
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn spool_input_reads_once_and_keeps_the_given_name() {
        let dir = TempDir::new().unwrap();
        let given = write(
            dir.path(),
            "given.csv",
            b"tweet_id\n1790000000000000001\nx\n",
        );
        let spools = dir.path().join("spools");
        fs::create_dir(&spools).unwrap();
        let source = spool_input(&given, &spools).unwrap();
        let InputSource::Spooled { name, path } = &source else {
            panic!("{source:?}")
        };
        assert_eq!(name, &given.display().to_string());
        assert_eq!(fs::read(path).unwrap(), fs::read(&given).unwrap());
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "owner-only, like the store");
        }
        let digest = fingerprint(&source).unwrap();
        assert_eq!(
            digest,
            fingerprint(&InputSource::File(given.clone())).unwrap()
        );
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            format!("input-{}", &digest[..16])
        );
        // Read from the copy, as CSV (the given name's format), named as given.
        let items: Vec<Positioned> = Reader::new(vec![source.clone()], ReadOptions::default())
            .map(Result::unwrap)
            .collect();
        assert_eq!(items.len(), 2);
        assert_eq!(rejected(&items[1]).source, given.display().to_string());
        assert_eq!(
            fs::read_dir(&spools).unwrap().count(),
            1,
            "no temporary file left"
        );
        let missing = dir.path().join("missing.fifo");
        let err = spool_input(&missing, &spools).unwrap_err();
        assert!(err.to_string().contains("missing.fifo"), "{err}");
    }

    #[test]
    fn read_once_means_neither_a_regular_file_nor_a_folder() {
        let dir = TempDir::new().unwrap();
        assert!(!is_read_once(&write(dir.path(), "f.txt", b"1\n")));
        assert!(!is_read_once(dir.path()));
        assert!(!is_read_once(&dir.path().join("missing")));
        assert!(is_read_once(Path::new("/dev/null")));
    }
}
