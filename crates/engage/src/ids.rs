//! Streaming Tweet ID reader.
//!
//! Inputs can hold tens of millions of IDs, so everything here works one
//! line at a time in constant memory: a line is never longer than
//! [`MAX_LINE_BYTES`] in memory, and an over-long line is drained in chunks
//! and reported rather than buffered.
//!
//! The reader is pull-based ([`Reader::next_record`], or the [`Iterator`]
//! impl) and `Send`, so it can run on a plain blocking thread and feed an
//! async fetcher through a channel. Every record carries its position
//! `(source_index, line)`; [`Reader::skip_to`] restarts after a recorded
//! position so an interrupted ingestion can resume without emitting
//! anything twice.
//!
//! Bad input is never fatal: a line that is not a Tweet ID becomes a
//! [`Reject`] with a human-readable reason. Only problems that make a whole
//! source unreadable (missing file, CSV without an ID column, I/O failure)
//! are reported as [`IdsError`], after which the reader moves on to the next
//! source.
//!
//! # Bounds on CSV records
//!
//! A CSV record may span physical lines (a quoted field holding newlines),
//! so the line cap alone does not bound it: one stray `"` would otherwise
//! swallow the rest of the file into a single field held in memory. The CSV
//! feed (`CsvFeed`) keeps the bytes of the record in progress in a window
//! (the parser reports where each row ends), and when that record runs past
//! [`MAX_LINE_BYTES`] (or 32,768 lines) without ending, or reaches the end of
//! the input inside an open quote, the record becomes one reject,
//! `unterminated quote from line N`, and parsing restarts from the window at
//! line N + 1 with a fresh parser. Every byte is so parsed at most twice, the
//! window never holds much more than 2 MiB, and the rows after a stray quote
//! are read as if it were not there.
//!
//! # Encodings
//!
//! Input is UTF-8 (a BOM on line 1 is dropped). A file that starts with a
//! UTF-16 byte-order mark (Excel's "Unicode Text") is decoded to UTF-8 as it
//! streams (`TextDecoder`), after gzip if both apply, so line numbers are
//! the file's own.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest accepted line, in bytes, excluding the line terminator.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Rejected text is cut to this many characters so a reject log stays small
/// even when the input is garbage.
pub const MAX_REJECT_CHARS: usize = 200;

const IO_BUFFER_BYTES: usize = 64 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Fixed reject reasons, so callers and tests can match on them.
pub mod reason {
    /// The value exceeds `u64::MAX`.
    pub const OUT_OF_RANGE: &str = "out of range";
    /// The value fits in a `u64` but not in the store's signed 64-bit column.
    pub const ABOVE_I64: &str = "out of range: Tweet IDs are at most 9223372036854775807";
    /// The value is `0`.
    pub const ZERO: &str = "zero is not a Tweet ID";
    /// A leading `-`.
    pub const NEGATIVE: &str = "negative number";
    /// Spreadsheets turn long numbers into `1.23457E+18`, which has lost
    /// digits for good; saying so spares the user a hunt.
    pub const SCIENTIFIC: &str = "scientific notation (spreadsheet rounding lost the ID's digits)";
    /// A number with a fractional part, such as `123.0`.
    pub const DECIMAL: &str = "decimal number";
    /// Digits grouped with commas, such as `1,234,567`.
    pub const THOUSANDS: &str = "thousands separators";
    /// A leading `+` sign.
    pub const PLUS_SIGN: &str = "leading '+' sign";
    /// Anything else.
    pub const NOT_A_NUMBER: &str = "not a number";
    /// The text is not valid UTF-8.
    pub const INVALID_UTF8: &str = "invalid UTF-8";
    /// Nothing left after trimming whitespace (CSV field or JSON string).
    pub const EMPTY: &str = "empty";
    /// The line exceeds [`super::MAX_LINE_BYTES`].
    pub const LINE_TOO_LONG: &str = "line too long";
    /// A JSON `id` that is a floating-point number.
    pub const NOT_AN_INTEGER: &str = "not an integer";
    /// A JSON line holding valid JSON that is not an object.
    pub const NOT_AN_OBJECT: &str = "not a JSON object";
    /// A JSON object with none of `id_str`, `id` and X API v2's `data.id`.
    pub const NO_ID_FIELD: &str = "no id_str, id or data.id field";
    /// A URL that is not a Tweet URL (`https://x.com/<user>/status/<ID>`),
    /// such as a profile or a photo page.
    pub const NOT_A_TWEET_URL: &str = "URL but not a Tweet URL (https://x.com/<user>/status/<ID>)";
    /// How the reject for a CSV record that never closes its quote begins;
    /// ` from line N` follows, N being the line the record starts on.
    pub const UNTERMINATED_QUOTE: &str = "unterminated quote";
    /// A JSON `id`/`id_str` that is neither a number nor a string.
    pub const ID_WRONG_TYPE: &str = "id is not a number or a string";
    /// How the reject for a gzip stream that ends early or goes bad begins; ` after line N` follows,
    /// N being the last complete line. The rest of that input is not read: a run that met one ends
    /// "finished with problems".
    pub const GZIP_DAMAGED: &str = "truncated or corrupt gzip stream";
}

/// An input is "not a list of Tweet IDs" when, read to its end, more than half of its lines (or CSV
/// rows) are rejects and at least this many are: a few typos in a short list, or a header, are not
/// enough; a photo, a spreadsheet or a binary passed by mistake is (a 50 MB binary is hundreds of
/// thousands of rejected lines). See [`mostly_rejected`].
pub const JUNK_MIN_REJECTS: u64 = 100;

/// Whether an input with `lines` lines, `rejected` of them rejects, holds next to no Tweet ID
/// (see [`JUNK_MIN_REJECTS`]). A run refuses such an input before fetching unless told to accept it.
pub fn mostly_rejected(lines: u64, rejected: u64) -> bool {
    rejected >= JUNK_MIN_REJECTS && rejected > lines / 2
}

/// Errors that make a whole input (or the input list) unusable.
///
/// Every message names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum IdsError {
    /// An input path given on the command line does not exist.
    #[error("input not found: {path}")]
    NotFound {
        /// The path as given or as found while walking a folder.
        path: String,
    },
    /// The input exists but cannot be opened or listed.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path concerned.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// An I/O error while reading; the rest of that input is skipped.
    #[error("error reading {path} after line {line}: {source}")]
    Read {
        /// The path concerned (`-` for stdin).
        path: String,
        /// The last line read completely before the error.
        line: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// A gzip stream broken before a CSV header could be read; the reader turns it into a reject.
    #[error("{path}: truncated or corrupt gzip stream after line {line}")]
    CorruptGzip {
        /// The path concerned.
        path: String,
        /// The last complete line.
        line: u64,
    },
    /// A CSV input whose header has no usable ID column.
    #[error("{path}: CSV header has no {wanted} column (columns: {}){hint}", .columns.join(", "))]
    MissingIdColumn {
        /// The path concerned.
        path: String,
        /// What was looked for, e.g. `` `tweet_id` or `id` ``.
        wanted: String,
        /// The header columns that were found.
        columns: Vec<String>,
        /// Extra advice, empty or starting with `; `.
        hint: String,
    },
    /// Any other CSV parser failure (not expected with the lenient
    /// settings used, but reported rather than unwrapped).
    #[error("{path}: CSV error after line {line}: {message}")]
    Csv {
        /// The path concerned.
        path: String,
        /// The last line read completely before the error.
        line: u64,
        /// The parser's description.
        message: String,
    },
    /// Standard input cannot be fingerprinted in place: it can only be read
    /// once, so it must be spooled to a file first.
    #[error("cannot fingerprint standard input: spool it to a file first")]
    StdinFingerprint,
    /// An input of which next to nothing is a Tweet ID (see [`mostly_rejected`]), refused before
    /// anything is fetched.
    #[error(
        "{path}: {rejected} of its {lines} lines are not Tweet IDs (line {first_line}: \
         {first_reason}): is it the right file? Nothing was fetched. If it is, run again with \
         --accept-rejects (its rejects go to rejects.csv)"
    )]
    MostlyRejected {
        /// The input concerned.
        path: String,
        /// Its lines (or CSV rows) that held an ID or a reject.
        lines: u64,
        /// How many of them were rejected.
        rejected: u64,
        /// The first rejected line.
        first_line: u64,
        /// Why it was rejected.
        first_reason: String,
    },
}

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One ID per line.
    Plain,
    /// CSV with a header row naming the ID column.
    Csv,
    /// One JSON Tweet object per line.
    Jsonl,
}

impl Format {
    /// Chooses the format from a file name: `.csv` is CSV, `.jsonl`,
    /// `.ndjson` and `.json` are JSON lines, anything else is plain. A
    /// trailing `.gz` is ignored (decompression is decided by content).
    pub fn from_path(path: &Path) -> Format {
        let Some(name) = path.file_name() else {
            return Format::Plain;
        };
        let name = name.to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        match Path::new(name).extension().and_then(|e| e.to_str()) {
            Some("csv") => Format::Csv,
            Some("jsonl" | "ndjson" | "json") => Format::Jsonl,
            _ => Format::Plain,
        }
    }
}

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
    fs::metadata(path).map_err(|e| {
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
    })
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

fn open_error(path: &Path, e: io::Error) -> IdsError {
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

/// Parses one Tweet ID from text that has already been trimmed.
///
/// Strict on purpose: only ASCII digits are accepted, and the error is a
/// reason from [`reason`] explaining what the text looks like instead, so a
/// user can fix their export. IDs must be in `1..=i64::MAX` because the store
/// keeps them as SQLite `INTEGER`.
pub fn parse_id(text: &[u8]) -> Result<u64, &'static str> {
    if text.is_empty() {
        return Err(reason::EMPTY);
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &b in text {
        if !b.is_ascii_digit() {
            return Err(classify_non_digits(text));
        }
        if !overflow {
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
            {
                Some(v) => value = v,
                // Keep scanning: a later non-digit changes the reason.
                None => overflow = true,
            }
        }
    }
    if overflow {
        Err(reason::OUT_OF_RANGE)
    } else if value == 0 {
        Err(reason::ZERO)
    } else if value > i64::MAX as u64 {
        Err(reason::ABOVE_I64)
    } else {
        Ok(value)
    }
}

/// Parses one Tweet ID, or a Tweet URL holding one, from trimmed text: what
/// plain-text lines and CSV ID fields accept.
///
/// A Tweet URL is `https://x.com/<user>/status/<ID>` or the same on
/// `twitter.com`, with or without the scheme or a `www.`/`mobile.` host
/// prefix, `/i/web/status/<ID>` in place of the user, and an optional
/// trailing `/`, query string or fragment. The ID part is judged by
/// [`parse_id`]. Any other URL is [`reason::NOT_A_TWEET_URL`]: a profile or
/// a photo page (`…/status/<ID>/photo/1`) is refused rather than guessed at.
pub fn parse_id_or_url(text: &[u8]) -> Result<u64, &'static str> {
    // Fast path: an ID starts with a digit, a URL never does.
    if text.first().is_some_and(u8::is_ascii_digit) {
        return parse_id(text);
    }
    match tweet_url(text) {
        Url::Tweet(digits) => parse_id(digits),
        Url::Other => Err(reason::NOT_A_TWEET_URL),
        Url::Absent => parse_id(text),
    }
}

enum Url<'a> {
    /// A Tweet URL; the bytes after `/status/`.
    Tweet(&'a [u8]),
    /// A URL (a scheme, or an X/Twitter host) of some other page.
    Other,
    /// Not a URL at all.
    Absent,
}

fn tweet_url(text: &[u8]) -> Url<'_> {
    fn strip_prefix_ignore_case<'t>(s: &'t [u8], prefix: &[u8]) -> Option<&'t [u8]> {
        (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
            .then(|| &s[prefix.len()..])
    }
    const HOSTS: &[&[u8]] = &[
        b"x.com",
        b"www.x.com",
        b"mobile.x.com",
        b"twitter.com",
        b"www.twitter.com",
        b"mobile.twitter.com",
    ];
    let without_scheme = strip_prefix_ignore_case(text, b"https://")
        .or_else(|| strip_prefix_ignore_case(text, b"http://"));
    let rest = without_scheme.unwrap_or(text);
    let host_end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    let host = &rest[..host_end];
    if !HOSTS.iter().any(|h| host.eq_ignore_ascii_case(h)) {
        return if without_scheme.is_some() {
            Url::Other
        } else {
            Url::Absent
        };
    }
    let path = &rest[host_end..];
    let path = &path[..path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len())];
    let path = path.strip_suffix(b"/").unwrap_or(path);
    let mut segments = path.split(|&b| b == b'/');
    // The path starts with `/`, so the first segment is empty.
    if segments.next() != Some(b"") {
        return Url::Other;
    }
    let parts: Vec<&[u8]> = segments.collect();
    let is_user =
        |s: &[u8]| !s.is_empty() && s.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    match parts[..] {
        [b"i", b"web", b"status", id] if !id.is_empty() => Url::Tweet(id),
        [user, b"status", id] if is_user(user) && !id.is_empty() => Url::Tweet(id),
        _ => Url::Other,
    }
}

fn classify_non_digits(text: &[u8]) -> &'static str {
    let Ok(s) = std::str::from_utf8(text) else {
        return reason::INVALID_UTF8;
    };
    let s = s.as_bytes();
    if let Some(rest) = s.strip_prefix(b"-") {
        if is_decimal(rest) || is_scientific(rest) {
            return reason::NEGATIVE;
        }
        return reason::NOT_A_NUMBER;
    }
    let unsigned = s.strip_prefix(b"+").unwrap_or(s);
    if is_scientific(unsigned) {
        return reason::SCIENTIFIC;
    }
    if unsigned.contains(&b'.') && is_decimal(unsigned) {
        return reason::DECIMAL;
    }
    if unsigned.len() < s.len() && is_decimal(unsigned) {
        return reason::PLUS_SIGN;
    }
    if is_thousands(s) {
        return reason::THOUSANDS;
    }
    reason::NOT_A_NUMBER
}

/// `123`, `123.`, `.5`, `123.45`.
fn is_decimal(s: &[u8]) -> bool {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[][..]),
    };
    (!int.is_empty() || !frac.is_empty())
        && int.iter().all(u8::is_ascii_digit)
        && frac.iter().all(u8::is_ascii_digit)
}

/// `1E18`, `1.23457E+18`, `5e-3`.
fn is_scientific(s: &[u8]) -> bool {
    let Some(i) = s.iter().position(|&b| b == b'e' || b == b'E') else {
        return false;
    };
    let (mantissa, exp) = (&s[..i], &s[i + 1..]);
    let exp = exp
        .strip_prefix(b"+")
        .or_else(|| exp.strip_prefix(b"-"))
        .unwrap_or(exp);
    is_decimal(mantissa) && !exp.is_empty() && exp.iter().all(u8::is_ascii_digit)
}

/// `1,234,567`.
fn is_thousands(s: &[u8]) -> bool {
    let mut groups = s.split(|&b| b == b',');
    let Some(first) = groups.next() else {
        return false;
    };
    let mut rest = groups.peekable();
    rest.peek().is_some()
        && (1..=3).contains(&first.len())
        && first.iter().all(u8::is_ascii_digit)
        && rest.all(|g| g.len() == 3 && g.iter().all(u8::is_ascii_digit))
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Lossy, length-capped copy of offending text for a reject log.
fn excerpt(bytes: &[u8]) -> String {
    // 4 bytes per char at most, so this slice always covers the first
    // MAX_REJECT_CHARS characters without converting a huge line.
    let cut = &bytes[..bytes.len().min(MAX_REJECT_CHARS * 4)];
    String::from_utf8_lossy(cut)
        .chars()
        .take(MAX_REJECT_CHARS)
        .collect()
}

/// Options that apply to every source of a [`Reader`].
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Force a format instead of guessing from file names (`--format`).
    pub format: Option<Format>,
    /// CSV column holding the ID (`--id-column`); matched case-insensitively.
    /// Without it, `tweet_id` is used, else `id`.
    pub id_column: Option<String>,
}

/// A line (or CSV row) that could not be used as a Tweet ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Display name of the input (`-` for stdin).
    pub source: String,
    /// Physical line number (1-based); for CSV, the line where the row starts.
    pub line: u64,
    /// The offending text, lossily decoded and cut to [`MAX_REJECT_CHARS`].
    pub content: String,
    /// Why it was rejected; see [`reason`] for the fixed ones.
    pub reason: String,
}

/// One result of reading: an ID or a reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A valid Tweet ID.
    Id {
        /// The Tweet ID, in `1..=i64::MAX`.
        id: u64,
        /// Owning account from a CSV `account` column, if any.
        account: Option<String>,
    },
    /// Input that is not a Tweet ID.
    Reject(Reject),
}

/// A [`Record`] with the position it was read from.
///
/// Positions increase strictly in reading order, so persisting the last one
/// processed and passing it to [`Reader::skip_to`] resumes exactly after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positioned {
    /// Index into the source list given to [`Reader::new`].
    pub source_index: usize,
    /// Physical line (1-based); for CSV, the line where the row starts.
    pub line: u64,
    /// What was read there.
    pub record: Record,
}

/// Running totals of what a [`Reader`] has emitted.
///
/// Lines skipped by [`Reader::skip_to`] are not counted. For CSV, `lines`
/// counts data rows (the header is not counted and the CSV parser hides
/// blank lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Non-blank lines (or CSV rows) read.
    pub lines: u64,
    /// Blank or whitespace-only lines.
    pub blank_lines: u64,
    /// Valid IDs emitted.
    pub ids: u64,
    /// Rejects emitted.
    pub rejects: u64,
    /// Sources abandoned with an [`IdsError`].
    pub errors: u64,
}

/// Pull-based reader over a list of sources.
///
/// Sources are read in order. After an `Err` item, the source concerned has
/// been abandoned and the next call continues with the following source, so
/// the caller decides whether an error is fatal.
pub struct Reader {
    sources: Vec<InputSource>,
    options: ReadOptions,
    next_source: usize,
    active: Option<Active>,
    skip: Option<(usize, u64)>,
    out: VecDeque<Result<Positioned, IdsError>>,
    counters: Counters,
}

struct Active {
    index: usize,
    name: String,
    gzip: bool,
    kind: ActiveKind,
}

enum ActiveKind {
    Plain(LineSource),
    Jsonl(LineSource),
    Csv(Box<CsvState>),
}

struct CsvState {
    rdr: csv::Reader<CsvFeed>,
    /// Stream offset (in [`CsvFeed`] terms) where `rdr` started: the parser
    /// is rebuilt after an unterminated quote and counts from zero again.
    base: u64,
    record: csv::ByteRecord,
    id_col: usize,
    id_name: String,
    account_col: Option<usize>,
}

impl CsvState {
    /// Replaces the parser by a fresh one that starts where the feed will
    /// serve next (after an abandoned record), with the same settings.
    fn restart(&mut self) {
        let delimiter = self.rdr.get_ref().delimiter;
        let placeholder = csv_reader(CsvFeed::empty(), false);
        let feed = std::mem::replace(&mut self.rdr, placeholder).into_inner();
        self.base = feed.pos;
        self.rdr = csv_reader(feed, false);
        debug_assert_eq!(self.rdr.get_ref().delimiter, delimiter);
        // Drop the abandoned record's (up to 2 MiB) allocation.
        self.record = csv::ByteRecord::new();
    }
}

/// A parser over `feed` with the reader's settings: lenient about ragged
/// rows, the delimiter the feed was set up with.
fn csv_reader(feed: CsvFeed, has_headers: bool) -> csv::Reader<CsvFeed> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .flexible(true)
        .delimiter(feed.delimiter)
        .from_reader(feed)
}

impl Reader {
    /// Creates a reader; nothing is opened until the first record is pulled.
    pub fn new(sources: Vec<InputSource>, options: ReadOptions) -> Reader {
        Reader {
            sources,
            options,
            next_source: 0,
            active: None,
            skip: None,
            out: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Suppresses every record at or before `(source_index, line)`.
    ///
    /// Sources before `source_index` are not opened at all; lines of that
    /// source up to `line` are read but not parsed. Call it before pulling
    /// the first record.
    pub fn skip_to(&mut self, source_index: usize, line: u64) {
        self.skip = Some((source_index, line));
    }

    /// The sources being read, in order.
    pub fn sources(&self) -> &[InputSource] {
        &self.sources
    }

    /// Totals so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Pulls the next record, or `None` once every source is exhausted.
    pub fn next_record(&mut self) -> Option<Result<Positioned, IdsError>> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            match self.active.as_mut() {
                Some(active) => {
                    let done = step(active, self.skip, &mut self.out, &mut self.counters);
                    if done {
                        self.active = None;
                    }
                }
                None => {
                    let index = self.next_source;
                    if index >= self.sources.len() {
                        return None;
                    }
                    self.next_source += 1;
                    if matches!(self.skip, Some((si, _)) if index < si) {
                        continue;
                    }
                    match open_active(index, &self.sources[index], &self.options) {
                        Ok(active) => self.active = active,
                        Err(IdsError::CorruptGzip { path, line }) => {
                            let at = line + 1;
                            if is_skipped(self.skip, index, at) {
                                continue;
                            }
                            self.counters.rejects += 1;
                            return Some(Ok(Positioned {
                                source_index: index,
                                line: at,
                                record: Record::Reject(Reject {
                                    source: path,
                                    line: at,
                                    content: String::new(),
                                    reason: format!("{} after line {line}", reason::GZIP_DAMAGED),
                                }),
                            }));
                        }
                        Err(e) => {
                            self.counters.errors += 1;
                            return Some(Err(e));
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for Reader {
    type Item = Result<Positioned, IdsError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

fn is_skipped(skip: Option<(usize, u64)>, index: usize, line: u64) -> bool {
    matches!(skip, Some((si, sl)) if index < si || (index == si && line <= sl))
}

/// Opens a source, sniffing gzip from its first bytes so compressed stdin
/// and misnamed files work. `Ok(None)` means an empty CSV (nothing to read).
fn open_active(
    index: usize,
    source: &InputSource,
    options: &ReadOptions,
) -> Result<Option<Active>, IdsError> {
    let name = source.display_name();
    let mut raw: Box<dyn Read + Send> = match source {
        InputSource::Stdin => Box::new(io::stdin()),
        InputSource::File(p) | InputSource::Spooled { path: p, .. } => {
            Box::new(File::open(p).map_err(|e| open_error(p, e))?)
        }
    };
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match raw.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(IdsError::Read {
                    path: name,
                    line: 0,
                    source: e,
                })
            }
        }
    }
    let gzip = got == 2 && magic == GZIP_MAGIC;
    let rejoined = io::Cursor::new(magic[..got].to_vec()).chain(raw);
    let bytes: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(rejoined))
    } else {
        Box::new(rejoined)
    };
    let text = TextDecoder::new(bytes);
    let lines = LineSource::new(Box::new(BufReader::with_capacity(IO_BUFFER_BYTES, text)));
    let format = options.format.unwrap_or_else(|| source.format_hint());
    let kind = match format {
        Format::Plain => ActiveKind::Plain(lines),
        Format::Jsonl => ActiveKind::Jsonl(lines),
        Format::Csv => match open_csv(lines, &name, options) {
            Ok(Some(state)) => ActiveKind::Csv(Box::new(state)),
            Ok(None) => return Ok(None),
            // Damage in the compressed header is data damage like anywhere else in the file: a
            // reject, not an error that stops the run (found by fuzzing).
            Err(IdsError::Read { path, line, source }) if gzip && is_corrupt_stream(&source) => {
                return Err(IdsError::CorruptGzip { path, line })
            }
            Err(e) => return Err(e),
        },
    };
    Ok(Some(Active {
        index,
        name,
        gzip,
        kind,
    }))
}

fn open_csv(
    lines: LineSource,
    name: &str,
    options: &ReadOptions,
) -> Result<Option<CsvState>, IdsError> {
    let wanted: Vec<&str> = match &options.id_column {
        Some(c) => vec![c.trim()],
        None => vec!["tweet_id", "id"],
    };
    let mut rdr = csv_reader(CsvFeed::new(lines, b','), true);
    let mut base = 0;
    loop {
        let headers = match rdr.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                let feed = rdr.get_mut();
                let line = feed.lines.line;
                if let Some((start, _)) = feed.abandon_unterminated() {
                    return Err(IdsError::Csv {
                        path: name.to_string(),
                        line,
                        message: format!(
                            "the header row has an {} from line {start}",
                            reason::UNTERMINATED_QUOTE
                        ),
                    });
                }
                return Err(csv_error(e, name, line));
            }
        };
        if headers.is_empty() {
            return Ok(None);
        }
        let columns: Vec<String> = headers
            .iter()
            .map(|h| {
                String::from_utf8_lossy(trim(h.strip_prefix(UTF8_BOM).unwrap_or(h))).into_owned()
            })
            .collect();
        let find = |wanted: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(wanted));
        if let Some((id_col, id_name)) = wanted
            .iter()
            .find_map(|w| find(w).map(|i| (i, columns[i].clone())))
        {
            let account_col = find("account");
            let end = base + rdr.position().byte();
            rdr.get_mut().record_start = end;
            return Ok(Some(CsvState {
                rdr,
                base,
                record: csv::ByteRecord::new(),
                id_col,
                id_name,
                account_col,
            }));
        }
        // European Excel saves "CSV" with `;`: the comma parser sees one
        // column `tweet_id;account`. When splitting it at `;` names an ID
        // column, read the file again from its header with `;`.
        let semicolons =
            rdr.get_ref().delimiter == b',' && columns.len() == 1 && columns[0].contains(';');
        if semicolons && semicolon_header_has(&columns[0], &wanted) {
            let mut feed =
                std::mem::replace(&mut rdr, csv_reader(CsvFeed::empty(), false)).into_inner();
            base = feed.rewind_to_record();
            feed.delimiter = b';';
            rdr = csv_reader(feed, true);
            continue;
        }
        let hint = if semicolons {
            "; semicolon-separated? none of the `;`-separated names is an ID column either"
                .to_string()
        } else if columns
            .first()
            .is_some_and(|c| parse_id_or_url(c.as_bytes()).is_ok())
        {
            "; the first row looks like data: is the header row missing?".to_string()
        } else {
            String::new()
        };
        return Err(IdsError::MissingIdColumn {
            path: name.to_string(),
            wanted: wanted
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(" or "),
            columns,
            hint,
        });
    }
}

/// Whether a header read as one column names a wanted column once split at
/// `;` (names trimmed, quotes and case ignored).
fn semicolon_header_has(header: &str, wanted: &[&str]) -> bool {
    header
        .split(';')
        .map(|part| part.trim().trim_matches('"').trim())
        .any(|part| wanted.iter().any(|w| part.eq_ignore_ascii_case(w)))
}

fn csv_error(e: csv::Error, name: &str, line: u64) -> IdsError {
    match e.into_kind() {
        csv::ErrorKind::Io(source) => IdsError::Read {
            path: name.to_string(),
            line,
            source,
        },
        kind => IdsError::Csv {
            path: name.to_string(),
            line,
            message: format!("{kind:?}"),
        },
    }
}

/// Decompression failures look like these kinds; they mean the data ends or
/// goes bad here, not that the disk failed.
fn is_corrupt_stream(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
    )
}

/// Handles an I/O error in the middle of a source. A broken gzip stream is
/// data damage and becomes a reject so ingestion of other sources carries
/// on; anything else is an error.
fn read_failure(
    active: &Active,
    err: io::Error,
    complete_lines: u64,
    skip: Option<(usize, u64)>,
    out: &mut VecDeque<Result<Positioned, IdsError>>,
    counters: &mut Counters,
) {
    let line = complete_lines + 1;
    if active.gzip && is_corrupt_stream(&err) {
        if is_skipped(skip, active.index, line) {
            return;
        }
        counters.rejects += 1;
        out.push_back(Ok(Positioned {
            source_index: active.index,
            line,
            record: Record::Reject(Reject {
                source: active.name.clone(),
                line,
                content: String::new(),
                reason: format!("{} after line {complete_lines}", reason::GZIP_DAMAGED),
            }),
        }));
    } else {
        counters.errors += 1;
        out.push_back(Err(IdsError::Read {
            path: active.name.clone(),
            line: complete_lines,
            source: err,
        }));
    }
}

fn reject(
    active: &Active,
    line: u64,
    content: &[u8],
    reason: String,
    counters: &mut Counters,
) -> Result<Positioned, IdsError> {
    counters.rejects += 1;
    Ok(Positioned {
        source_index: active.index,
        line,
        record: Record::Reject(Reject {
            source: active.name.clone(),
            line,
            content: excerpt(content),
            reason,
        }),
    })
}

fn id_record(
    active: &Active,
    line: u64,
    id: u64,
    account: Option<String>,
    counters: &mut Counters,
) -> Result<Positioned, IdsError> {
    counters.ids += 1;
    Ok(Positioned {
        source_index: active.index,
        line,
        record: Record::Id { id, account },
    })
}

/// Advances the active source by one line or row, pushing whatever it
/// yields. Returns `true` when the source is finished.
fn step(
    active: &mut Active,
    skip: Option<(usize, u64)>,
    out: &mut VecDeque<Result<Positioned, IdsError>>,
    counters: &mut Counters,
) -> bool {
    match active.kind {
        ActiveKind::Plain(_) => step_lines(active, false, skip, out, counters),
        ActiveKind::Jsonl(_) => step_lines(active, true, skip, out, counters),
        ActiveKind::Csv(_) => step_csv(active, skip, out, counters),
    }
}

fn step_lines(
    active: &mut Active,
    jsonl: bool,
    skip: Option<(usize, u64)>,
    out: &mut VecDeque<Result<Positioned, IdsError>>,
    counters: &mut Counters,
) -> bool {
    let (ActiveKind::Plain(src) | ActiveKind::Jsonl(src)) = &mut active.kind else {
        unreachable!("step_lines on a CSV source")
    };
    let kind = match src.read_line() {
        Ok(Some(kind)) => kind,
        Ok(None) => return true,
        Err(e) => {
            let complete = src.line;
            read_failure(active, e, complete, skip, out, counters);
            return true;
        }
    };
    let line = src.line;
    if is_skipped(skip, active.index, line) {
        return false;
    }
    // Move the buffer out so `active` can be borrowed for the record; it is
    // put back below so its allocation is reused.
    let buf = std::mem::take(&mut src.buf);
    let item = match kind {
        LineKind::TooLong => {
            counters.lines += 1;
            Some(reject(
                active,
                line,
                &buf,
                reason::LINE_TOO_LONG.to_string(),
                counters,
            ))
        }
        LineKind::Line => {
            let text = trim(&buf);
            if text.is_empty() {
                counters.blank_lines += 1;
                None
            } else {
                counters.lines += 1;
                let parsed = if jsonl {
                    parse_json_line(text)
                } else {
                    parse_id_or_url(text).map_err(str::to_string)
                };
                Some(match parsed {
                    Ok(id) => id_record(active, line, id, None, counters),
                    Err(why) => reject(active, line, text, why, counters),
                })
            }
        }
    };
    if let ActiveKind::Plain(src) | ActiveKind::Jsonl(src) = &mut active.kind {
        src.buf = buf;
    }
    if let Some(item) = item {
        out.push_back(item);
    }
    false
}

/// The fields we need from a Tweet object; everything else is skipped by
/// serde without being materialised.
#[derive(Deserialize)]
struct JsonIds {
    #[serde(default)]
    id_str: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    /// X API v2 (stream and lookup output) wraps the Tweet: `{"data":{"id":"…"}}`.
    /// A `Value` rather than a struct because serde's derived struct visitor
    /// would also take an array (`"data":[…]`, a multi-Tweet lookup) as
    /// positional fields and invent an ID.
    #[serde(default)]
    data: Option<Value>,
}

fn parse_json_line(text: &[u8]) -> Result<u64, String> {
    // serde's derived struct visitor also accepts a JSON array like `[1, 2]`
    // as positional fields, which would invent an ID.
    if text.first() != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(text) {
                Ok(_) => reason::NOT_AN_OBJECT.to_string(),
                Err(e) => json_error(text, &e),
            },
        );
    }
    let ids: JsonIds = serde_json::from_slice(text).map_err(|e| json_error(text, &e))?;
    let data_id = ids.data.as_ref().and_then(|d| d.get("id"));
    let value = [ids.id_str.as_ref(), ids.id.as_ref(), data_id]
        .into_iter()
        .flatten()
        .find(|v| !v.is_null())
        .ok_or_else(|| reason::NO_ID_FIELD.to_string())?;
    json_id(value).map_err(str::to_string)
}

fn json_error(text: &[u8], e: &serde_json::Error) -> String {
    if std::str::from_utf8(text).is_err() {
        return reason::INVALID_UTF8.to_string();
    }
    let msg = e.to_string();
    // Always line 1 of a one-line document, so only the column helps.
    let msg = match msg.rfind(" at line 1 column ") {
        Some(i) => format!("{} at column {}", &msg[..i], &msg[i + 18..]),
        None => msg,
    };
    // Data errors are well-formed JSON of the wrong shape (duplicate keys).
    let prefix = if e.is_data() {
        "unexpected JSON"
    } else {
        "invalid JSON"
    };
    format!("{prefix}: {msg}")
}

fn json_id(value: &Value) -> Result<u64, &'static str> {
    match value {
        // serde_json keeps integer literals as exact u64/i64 and only uses
        // f64 for literals with a fraction or exponent, so large IDs survive.
        Value::Number(n) => {
            if let Some(v) = n.as_u64() {
                match v {
                    0 => Err(reason::ZERO),
                    v if v > i64::MAX as u64 => Err(reason::ABOVE_I64),
                    v => Ok(v),
                }
            } else if n.is_i64() || n.as_f64().is_some_and(|f| f < 0.0) {
                Err(reason::NEGATIVE)
            } else if n
                .as_f64()
                .is_some_and(|f| f >= 18_446_744_073_709_551_616.0)
            {
                // An integer literal too big for u64 also lands here as f64.
                Err(reason::OUT_OF_RANGE)
            } else {
                Err(reason::NOT_AN_INTEGER)
            }
        }
        Value::String(s) => {
            let s = s.trim();
            // Activity Streams: "tag:search.twitter.com,2005:123". Only a
            // `tag:` URI is unwrapped: any string with a colon (a time such
            // as "12:34", a URL) is not an ID.
            let digits = match s.strip_prefix("tag:") {
                Some(tag) => tag.rsplit_once(':').map_or(s, |(_, id)| id),
                None => s,
            };
            parse_id(digits.as_bytes())
        }
        _ => Err(reason::ID_WRONG_TYPE),
    }
}

/// What one call of the CSV parser came to.
enum CsvStep {
    /// A row starting on this line.
    Row(u64),
    End,
    /// A record abandoned for an unterminated quote: its first line and an
    /// excerpt of it. The parser has been restarted on the next line.
    Unterminated(u64, String),
    Failed(csv::Error),
}

fn step_csv(
    active: &mut Active,
    skip: Option<(usize, u64)>,
    out: &mut VecDeque<Result<Positioned, IdsError>>,
    counters: &mut Counters,
) -> bool {
    let ActiveKind::Csv(state) = &mut active.kind else {
        unreachable!("step_csv on a line source")
    };
    let result = state.rdr.read_byte_record(&mut state.record);
    let complete = state.rdr.get_ref().lines.line;
    let step = match result {
        Ok(true) => {
            let after_previous =
                state.base + state.record.position().map_or(0, csv::Position::byte);
            let end = state.base + state.rdr.position().byte();
            let feed = state.rdr.get_mut();
            let start = feed.line_at(after_previous);
            feed.record_start = end;
            CsvStep::Row(start)
        }
        Ok(false) => CsvStep::End,
        Err(e) => match state.rdr.get_mut().abandon_unterminated() {
            Some((line, content)) => {
                state.restart();
                CsvStep::Unterminated(line, content)
            }
            None => CsvStep::Failed(e),
        },
    };
    let mut long = std::mem::take(&mut state.rdr.get_mut().long_lines);
    // Over-long lines were blanked out of the CSV stream as the feed read
    // them, possibly ahead of the parser; emit those before this row.
    let drain_before = match step {
        CsvStep::Row(start) | CsvStep::Unterminated(start, _) => start,
        CsvStep::End | CsvStep::Failed(_) => u64::MAX,
    };
    while long.front().is_some_and(|(l, _)| *l < drain_before) {
        let (line, content) = long.pop_front().expect("checked non-empty");
        if !is_skipped(skip, active.index, line) {
            counters.lines += 1;
            let item = reject(
                active,
                line,
                content.as_bytes(),
                reason::LINE_TOO_LONG.to_string(),
                counters,
            );
            out.push_back(item);
        }
    }
    let ActiveKind::Csv(state) = &mut active.kind else {
        unreachable!()
    };
    state.rdr.get_mut().long_lines = long;
    let start = match step {
        CsvStep::Row(start) => start,
        CsvStep::End => return true,
        CsvStep::Unterminated(line, content) => {
            if !is_skipped(skip, active.index, line) {
                counters.lines += 1;
                let why = format!("{} from line {line}", reason::UNTERMINATED_QUOTE);
                let item = reject(active, line, content.as_bytes(), why, counters);
                out.push_back(item);
            }
            return false;
        }
        CsvStep::Failed(e) => {
            match csv_error(e, &active.name, complete) {
                IdsError::Read { source, .. } => {
                    read_failure(active, source, complete, skip, out, counters)
                }
                other => {
                    counters.errors += 1;
                    out.push_back(Err(other));
                }
            }
            return true;
        }
    };
    if is_skipped(skip, active.index, start) {
        return false;
    }
    let record = std::mem::take(&mut state.record);
    // Spreadsheets export empty rows as `,,,`: as blank as a blank line.
    if record.iter().all(|f| trim(f).is_empty()) {
        counters.blank_lines += 1;
        if let ActiveKind::Csv(state) = &mut active.kind {
            state.record = record;
        }
        return false;
    }
    counters.lines += 1;
    let item = match record.get(state.id_col) {
        None => {
            let row = record.iter().collect::<Vec<_>>().join(&b","[..]);
            let why = format!("missing column {}", state.id_name);
            reject(active, start, &row, why, counters)
        }
        Some(field) => {
            let text = trim(field);
            match parse_id_or_url(text) {
                Ok(id) => {
                    let account = state
                        .account_col
                        .and_then(|i| record.get(i))
                        .map(trim)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned());
                    id_record(active, start, id, account, counters)
                }
                Err(why) => reject(active, start, text, why.to_string(), counters),
            }
        }
    };
    if let ActiveKind::Csv(state) = &mut active.kind {
        state.record = record;
    }
    out.push_back(item);
    false
}

/// Passes UTF-8 (or any bytes) through unchanged, and decodes a stream that
/// starts with a UTF-16 byte-order mark (`FF FE` little-endian, `FE FF`
/// big-endian; Excel's "Unicode Text" export) to UTF-8, chunk by chunk.
///
/// The mark is sniffed on the first read rather than when the source is
/// opened, so a read error there (a corrupt gzip stream) surfaces where the
/// reader turns it into a reject. Unpaired surrogates and an odd final byte
/// become U+FFFD, which the ID parser then rejects with its line.
struct TextDecoder {
    inner: Box<dyn Read + Send>,
    mode: TextMode,
    /// Bytes to hand out before reading `inner` again: the sniffed start of
    /// a non-UTF-16 stream, or decoded UTF-8.
    pending: Vec<u8>,
    pending_pos: usize,
}

enum TextMode {
    Sniff,
    Bytes,
    Utf16 {
        big_endian: bool,
        /// The first byte of a code unit split across reads.
        odd: Option<u8>,
        /// A high surrogate waiting for its low half.
        high: Option<u16>,
        raw: Vec<u8>,
        done: bool,
    },
}

const UTF16_CHUNK_BYTES: usize = 16 * 1024;

impl TextDecoder {
    fn new(inner: Box<dyn Read + Send>) -> TextDecoder {
        TextDecoder {
            inner,
            mode: TextMode::Sniff,
            pending: Vec::new(),
            pending_pos: 0,
        }
    }

    fn sniff(&mut self) -> io::Result<()> {
        let mut head = [0u8; 2];
        let mut got = 0;
        while got < head.len() {
            match self.inner.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Keep what was read; the source is abandoned anyway.
                    self.pending.extend_from_slice(&head[..got]);
                    self.mode = TextMode::Bytes;
                    return Err(e);
                }
            }
        }
        self.mode = match head[..got] {
            [0xFF, 0xFE] => TextMode::Utf16 {
                big_endian: false,
                odd: None,
                high: None,
                raw: vec![0; UTF16_CHUNK_BYTES],
                done: false,
            },
            [0xFE, 0xFF] => TextMode::Utf16 {
                big_endian: true,
                odd: None,
                high: None,
                raw: vec![0; UTF16_CHUNK_BYTES],
                done: false,
            },
            _ => {
                self.pending.extend_from_slice(&head[..got]);
                TextMode::Bytes
            }
        };
        Ok(())
    }

    /// Reads and decodes one chunk of UTF-16 into `pending`; `false` once
    /// the input is exhausted and flushed.
    fn decode_chunk(&mut self) -> io::Result<bool> {
        let TextMode::Utf16 {
            big_endian,
            odd,
            high,
            raw,
            done,
        } = &mut self.mode
        else {
            return Ok(false);
        };
        if *done {
            return Ok(false);
        }
        self.pending.clear();
        self.pending_pos = 0;
        let n = loop {
            match self.inner.read(raw) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        let out = &mut self.pending;
        let mut push = |c: char| {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        };
        if n == 0 {
            *done = true;
            if high.take().is_some() {
                push(char::REPLACEMENT_CHARACTER);
            }
            if odd.take().is_some() {
                push(char::REPLACEMENT_CHARACTER);
            }
            return Ok(!self.pending.is_empty());
        }
        for &b in &raw[..n] {
            let Some(first) = odd.take() else {
                *odd = Some(b);
                continue;
            };
            let unit = if *big_endian {
                u16::from_be_bytes([first, b])
            } else {
                u16::from_le_bytes([first, b])
            };
            match unit {
                0xD800..=0xDBFF => {
                    if high.replace(unit).is_some() {
                        push(char::REPLACEMENT_CHARACTER);
                    }
                }
                0xDC00..=0xDFFF => match high.take() {
                    Some(h) => {
                        let c =
                            0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                        push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                    None => push(char::REPLACEMENT_CHARACTER),
                },
                _ => {
                    if high.take().is_some() {
                        push(char::REPLACEMENT_CHARACTER);
                    }
                    push(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
            }
        }
        Ok(true)
    }
}

impl Read for TextDecoder {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let pending = &self.pending[self.pending_pos..];
            if !pending.is_empty() {
                let n = pending.len().min(out.len());
                out[..n].copy_from_slice(&pending[..n]);
                self.pending_pos += n;
                return Ok(n);
            }
            match self.mode {
                TextMode::Sniff => self.sniff()?,
                TextMode::Bytes => return self.inner.read(out),
                TextMode::Utf16 { .. } => {
                    if !self.decode_chunk()? {
                        return Ok(0);
                    }
                }
            }
        }
    }
}

enum LineKind {
    /// `buf` holds the line, terminator included if there was one.
    Line,
    /// The line exceeded [`MAX_LINE_BYTES`]; `buf` holds its start.
    TooLong,
}

/// Line splitter over bytes with a hard cap on line length.
///
/// `BufRead::read_until` would grow without bound on a line with no newline;
/// this drains such a line chunk by chunk instead. Lines end at LF, CRLF or
/// a lone CR: Excel's "CSV (Macintosh)" still writes bare CRs, and the CSV
/// parser splits records on them, so counting them keeps every record on a
/// distinct line (resume positions must be unique).
struct LineSource {
    inner: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    /// Lines returned so far, i.e. the number of the line now in `buf`.
    line: u64,
    /// An error hit while looking past a line's final CR for its LF; the
    /// line itself was complete, so the error belongs to the next call.
    deferred: Option<io::Error>,
}

impl LineSource {
    fn new(inner: Box<dyn BufRead + Send>) -> LineSource {
        LineSource {
            inner,
            buf: Vec::with_capacity(256),
            line: 0,
            deferred: None,
        }
    }

    fn read_line(&mut self) -> io::Result<Option<LineKind>> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        let mut cr_at_chunk_end = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            any = true;
            // (bytes to consume, terminator length, line complete)
            let (take, terminator, done) =
                match available.iter().position(|&b| b == b'\n' || b == b'\r') {
                    Some(i) if available[i] == b'\r' => match available.get(i + 1) {
                        Some(b'\n') => (i + 2, 2, true),
                        Some(_) => (i + 1, 1, true),
                        None => {
                            cr_at_chunk_end = true;
                            (i + 1, 1, true)
                        }
                    },
                    Some(i) => (i + 1, 1, true),
                    None => (available.len(), 0, false),
                };
            if !too_long {
                let content = take - terminator;
                if self.buf.len() + content > MAX_LINE_BYTES {
                    too_long = true;
                    // Keep only what a reject excerpt needs.
                    let room = (MAX_REJECT_CHARS * 4).saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&available[..content.min(room)]);
                } else {
                    self.buf.extend_from_slice(&available[..take]);
                }
            }
            self.inner.consume(take);
            if done {
                break;
            }
        }
        if cr_at_chunk_end {
            self.absorb_lf(!too_long);
        }
        if !any {
            return Ok(None);
        }
        self.line += 1;
        if self.line == 1 && self.buf.starts_with(UTF8_BOM) {
            self.buf.drain(..UTF8_BOM.len());
        }
        Ok(Some(if too_long {
            LineKind::TooLong
        } else {
            LineKind::Line
        }))
    }

    /// After a CR that ended a chunk, takes the LF of a CRLF split across
    /// chunks so it is not counted as an extra blank line.
    fn absorb_lf(&mut self, keep: bool) {
        loop {
            match self.inner.fill_buf() {
                Ok(b) => {
                    if b.first() == Some(&b'\n') {
                        if keep {
                            self.buf.push(b'\n');
                        }
                        self.inner.consume(1);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.deferred = Some(e);
                    return;
                }
            }
        }
    }
}

/// Feeds the CSV parser line by line so the length cap and BOM handling of
/// [`LineSource`] apply to CSV too. An over-long line is replaced by an
/// empty line (which the parser ignores, keeping line numbers intact) and
/// queued for the reader to report.
///
/// It keeps the bytes of the record in progress in `window`, from the first
/// content byte of the record (the reader sets `record_start` after each
/// row) to the end of the last line read; the parser's own read-ahead is
/// served from it too. That gives the record bound (see the module docs):
/// when the parser asks for another line while its record already covers
/// more than [`MAX_RECORD_BYTES`] or [`MAX_RECORD_LINES`] lines, or reaches
/// the end of the input inside an open quote, the read fails with
/// `unterminated` set, and [`CsvFeed::abandon_unterminated`] moves the
/// serving point back to the line after the record's first one so a fresh
/// parser reads the rest again.
///
/// It also remembers where recent content lines start: `csv::Position` of a
/// record is where the previous record ended, which lags the real start
/// line after blank lines or a CRLF terminator, so the physical line is
/// recovered from these spans.
struct CsvFeed {
    lines: LineSource,
    delimiter: u8,
    /// Bytes served or about to be, from offset `window_start` on.
    window: Vec<u8>,
    window_start: u64,
    /// Stream offset of the next byte to serve; at most the window's end.
    pos: u64,
    /// Stream offset where the parser's record in progress begins (where
    /// the last row ended), kept up to date by the reader.
    record_start: u64,
    /// Lines with content (blank lines are never a record's first line).
    spans: VecDeque<LineSpan>,
    long_lines: VecDeque<(u64, String)>,
    /// The last read failed because the record in progress is unterminated.
    unterminated: bool,
}

/// Longest CSV record, counted from its first content byte: the longest
/// line with a CRLF. A longer record spans lines and has run past
/// [`MAX_LINE_BYTES`], which only an unterminated quote does in practice.
const MAX_RECORD_BYTES: u64 = MAX_LINE_BYTES as u64 + 2;

/// Most lines with content in one CSV record. Excel caps a cell at 32,767
/// characters, so no spreadsheet writes a record over more lines than this;
/// the cap keeps the per-line bookkeeping ([`LineSpan`], 32 bytes a line)
/// within 1 MiB when an open quote swallows many short lines.
const MAX_RECORD_LINES: usize = 32 * 1024;

/// Bytes before the record in progress are dropped from the window once
/// there are this many and they are at least half of it (so each byte is
/// moved at most once on average).
const WINDOW_TRIM_BYTES: usize = 64 * 1024;

struct LineSpan {
    line: u64,
    start: u64,
    /// End of the line without trailing CR/LF bytes.
    content_end: u64,
    end: u64,
}

impl CsvFeed {
    fn new(lines: LineSource, delimiter: u8) -> CsvFeed {
        CsvFeed {
            lines,
            delimiter,
            window: Vec::new(),
            window_start: 0,
            pos: 0,
            record_start: 0,
            spans: VecDeque::new(),
            long_lines: VecDeque::new(),
            unterminated: false,
        }
    }

    /// A feed of nothing, to stand in while a parser is rebuilt.
    fn empty() -> CsvFeed {
        CsvFeed::new(LineSource::new(Box::new(io::empty())), b',')
    }

    fn window_end(&self) -> u64 {
        self.window_start + self.window.len() as u64
    }

    /// The first line with content at or after stream offset `from`,
    /// forgetting lines that end before it (offsets only grow).
    fn first_content_line(&mut self, from: u64) -> Option<&LineSpan> {
        while self.spans.front().is_some_and(|s| s.end <= from) {
            self.spans.pop_front();
        }
        // The front may be a line whose CRLF straddles `from`.
        self.spans
            .iter()
            .take(2)
            .find(|s| from.max(s.start) < s.content_end)
    }

    /// Physical line of the first non-terminator byte at or after stream
    /// offset `from`.
    fn line_at(&mut self, from: u64) -> u64 {
        let fallback = self.lines.line;
        self.first_content_line(from).map_or(fallback, |s| s.line)
    }

    /// If the last read failed for an unterminated record: its first line
    /// and an excerpt of it, after which the feed serves from the start of
    /// the following line (the caller must restart the parser there).
    fn abandon_unterminated(&mut self) -> Option<(u64, String)> {
        if !std::mem::take(&mut self.unterminated) {
            return None;
        }
        let from = self.record_start;
        let span = self.first_content_line(from)?;
        let (line, start, content_end, end) = (span.line, span.start, span.content_end, span.end);
        let offset = |at: u64| (at - self.window_start) as usize;
        let content = excerpt(&self.window[offset(start)..offset(content_end)]);
        self.pos = end;
        self.record_start = end;
        Some((line, content))
    }

    /// Makes the record in progress (the header) be served again from its
    /// first content byte; returns that offset.
    fn rewind_to_record(&mut self) -> u64 {
        let from = self.record_start;
        let start = self.first_content_line(from).map_or(from, |s| s.start);
        let start = start.max(self.window_start);
        self.pos = start;
        self.record_start = start;
        start
    }

    /// Drops window bytes before `keep_from` when that is worth a move.
    fn trim(&mut self, keep_from: u64) {
        debug_assert!(keep_from >= self.window_start);
        let drop = (keep_from - self.window_start) as usize;
        if drop == self.window.len() {
            self.window.clear();
        } else if drop >= WINDOW_TRIM_BYTES && drop * 2 >= self.window.len() {
            self.window.drain(..drop);
        } else {
            return;
        }
        self.window_start = keep_from;
    }

    fn fail_unterminated(&mut self) -> io::Error {
        self.unterminated = true;
        io::Error::other(reason::UNTERMINATED_QUOTE)
    }

    /// Memory held for the record in progress and read-ahead, for tests.
    #[cfg(test)]
    fn buffered_bytes(&self) -> usize {
        self.window.capacity()
            + self.spans.capacity() * std::mem::size_of::<LineSpan>()
            + self.lines.buf.capacity()
    }
}

impl Read for CsvFeed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let end = self.window_end();
            if self.pos < end {
                let from = (self.pos - self.window_start) as usize;
                let n = ((end - self.pos) as usize).min(out.len());
                out[..n].copy_from_slice(&self.window[from..from + n]);
                self.pos += n as u64;
                return Ok(n);
            }
            // The parser has used every byte served and its record goes on.
            let from = self.record_start;
            let content_start = self.first_content_line(from).map(|s| s.start);
            self.trim(content_start.unwrap_or(end));
            if content_start.is_some_and(|c| end - c > MAX_RECORD_BYTES)
                || self.spans.len() >= MAX_RECORD_LINES
            {
                return Err(self.fail_unterminated());
            }
            match self.lines.read_line()? {
                None => {
                    let open = content_start.is_some_and(|c| {
                        let record = &self.window[(c - self.window_start) as usize..];
                        ends_in_open_quote(record, self.delimiter)
                    });
                    if open {
                        return Err(self.fail_unterminated());
                    }
                    return Ok(0);
                }
                Some(LineKind::Line) => {}
                Some(LineKind::TooLong) => {
                    let content = excerpt(&self.lines.buf);
                    self.long_lines.push_back((self.lines.line, content));
                    self.lines.buf.clear();
                    self.lines.buf.push(b'\n');
                }
            }
            let buf = &self.lines.buf;
            let content_len = buf.len()
                - buf
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b'\n' || b == b'\r')
                    .count();
            self.window.extend_from_slice(buf);
            if content_len > 0 {
                self.spans.push_back(LineSpan {
                    line: self.lines.line,
                    start: end,
                    content_end: end + content_len as u64,
                    end: self.window_end(),
                });
            }
        }
    }
}

/// Whether CSV text, read from the start of a record, ends inside a quoted
/// field: the states of the `csv` crate's parser (quote `"` opens a field
/// only at its start, `""` inside is an escaped quote, CR and LF end a
/// record outside quotes).
fn ends_in_open_quote(record: &[u8], delimiter: u8) -> bool {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Field,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    for &b in record {
        state = match state {
            State::Quoted if b == b'"' => State::QuoteInQuoted,
            State::Quoted => State::Quoted,
            State::QuoteInQuoted if b == b'"' => State::Quoted,
            _ if b == delimiter || b == b'\n' || b == b'\r' => State::FieldStart,
            State::FieldStart if b == b'"' => State::Quoted,
            _ => State::Field,
        };
    }
    state == State::Quoted
}

#[cfg(test)]
mod gzip_header_tests {
    use super::*;
    use std::io::Write;

    /// Found by fuzzing: a gzip stream cut inside a CSV header stopped the run instead of being a
    /// reject like the same damage one line later.
    #[test]
    fn a_gzip_stream_cut_in_the_csv_header_is_a_reject() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ids.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"tweet_id,account\n1790000000000000001,brand\n")
            .unwrap();
        let bytes = gz.finish().unwrap();
        std::fs::write(&p, &bytes[..14]).unwrap();
        let mut r = Reader::new(vec![InputSource::File(p)], ReadOptions::default());
        let all: Vec<_> = std::iter::from_fn(|| r.next_record()).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        match &all[0] {
            Ok(Positioned {
                line: 1,
                record: Record::Reject(rej),
                ..
            }) => {
                assert!(
                    rej.reason.starts_with("truncated or corrupt gzip stream"),
                    "{rej:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use proptest::prelude::*;
    use tempfile::TempDir;

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, data).unwrap();
        path
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn read_all(paths: &[PathBuf], options: ReadOptions) -> Vec<Positioned> {
        let sources = paths.iter().cloned().map(InputSource::File).collect();
        Reader::new(sources, options)
            .map(|r| r.expect("unexpected error"))
            .collect()
    }

    fn read_file(dir: &Path, name: &str, data: &[u8]) -> Vec<Positioned> {
        let path = write(dir, name, data);
        read_all(&[path], ReadOptions::default())
    }

    /// Compact view: (line, Ok(id) | Err(reason)).
    fn summary(items: &[Positioned]) -> Vec<(u64, Result<u64, String>)> {
        items
            .iter()
            .map(|p| {
                (
                    p.line,
                    match &p.record {
                        Record::Id { id, .. } => Ok(*id),
                        Record::Reject(r) => Err(r.reason.clone()),
                    },
                )
            })
            .collect()
    }

    fn rejected(p: &Positioned) -> &Reject {
        match &p.record {
            Record::Reject(r) => r,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    #[test]
    fn parse_id_accepts_plain_digits() {
        assert_eq!(parse_id(b"1"), Ok(1));
        assert_eq!(parse_id(b"0001790000000000000001"), Ok(1790000000000000001));
        assert_eq!(parse_id(b"9223372036854775807"), Ok(i64::MAX as u64));
    }

    #[test]
    fn parse_id_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (b"", reason::EMPTY),
            (b"0", reason::ZERO),
            (b"000", reason::ZERO),
            (b"9223372036854775808", reason::ABOVE_I64),
            (b"18446744073709551615", reason::ABOVE_I64),
            (b"18446744073709551616", reason::OUT_OF_RANGE),
            (b"99999999999999999999999999", reason::OUT_OF_RANGE),
            (b"-5", reason::NEGATIVE),
            (b"-1.5", reason::NEGATIVE),
            (b"-1E5", reason::NEGATIVE),
            (b"1.23457E+18", reason::SCIENTIFIC),
            (b"1.23457e18", reason::SCIENTIFIC),
            (b"1E18", reason::SCIENTIFIC),
            (b"+1.2E+18", reason::SCIENTIFIC),
            (b"123.0", reason::DECIMAL),
            (b"123.", reason::DECIMAL),
            (b".5", reason::DECIMAL),
            (b"+123", reason::PLUS_SIGN),
            (b"1,234,567", reason::THOUSANDS),
            (b"12,34", reason::NOT_A_NUMBER),
            (b"abc", reason::NOT_A_NUMBER),
            (b"12 34", reason::NOT_A_NUMBER),
            (b"-", reason::NOT_A_NUMBER),
            (b"-abc", reason::NOT_A_NUMBER),
            (b"+", reason::NOT_A_NUMBER),
            (b".", reason::NOT_A_NUMBER),
            (b"1e", reason::NOT_A_NUMBER),
            (b"0x1F", reason::NOT_A_NUMBER),
            (b"https://x.com/u/status/123", reason::NOT_A_NUMBER),
            ("１２３".as_bytes(), reason::NOT_A_NUMBER),
            (b"12\xff34", reason::INVALID_UTF8),
            (b"99999999999999999999999x", reason::NOT_A_NUMBER),
        ];
        for (text, why) in cases {
            assert_eq!(
                parse_id(text),
                Err(*why),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn plain_whitespace_bom_crlf_blank_lines() {
        let dir = TempDir::new().unwrap();
        let data = b"\xEF\xBB\xBF123\r\n  456\t\r\n\r\n\n   \n\t789  \n42";
        let path = write(dir.path(), "ids.txt", data);
        let mut reader = Reader::new(vec![InputSource::File(path)], ReadOptions::default());
        let items: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
        assert_eq!(
            summary(&items),
            vec![(1, Ok(123)), (2, Ok(456)), (6, Ok(789)), (7, Ok(42))]
        );
        assert_eq!(
            reader.counters(),
            Counters {
                lines: 4,
                blank_lines: 3,
                ids: 4,
                rejects: 0,
                errors: 0
            }
        );
        assert!(items
            .iter()
            .all(|p| p.source_index == 0 && matches!(p.record, Record::Id { account: None, .. })));
    }

    fn split_lines(data: &[u8], chunk: usize) -> Vec<String> {
        let inner = BufReader::with_capacity(chunk, io::Cursor::new(data.to_vec()));
        let mut src = LineSource::new(Box::new(inner));
        let mut out = Vec::new();
        while let Some(kind) = src.read_line().unwrap() {
            assert!(matches!(kind, LineKind::Line));
            out.push(String::from_utf8(src.buf.clone()).unwrap());
        }
        assert_eq!(src.line, out.len() as u64);
        out
    }

    #[test]
    fn line_terminators_at_any_chunk_boundary() {
        let data = b"a\r\nb\rc\n\r\n\r\rd\r\n\ne\r";
        let want = vec![
            "a\r\n", "b\r", "c\n", "\r\n", "\r", "\r", "d\r\n", "\n", "e\r",
        ];
        for chunk in 1..=data.len() + 1 {
            assert_eq!(split_lines(data, chunk), want, "chunk size {chunk}");
        }
        assert_eq!(split_lines(b"x", 1), vec!["x"]);
        assert!(split_lines(b"", 1).is_empty());
    }

    #[test]
    fn cr_only_files() {
        let dir = TempDir::new().unwrap();
        let items = read_file(dir.path(), "mac.txt", b"1\r2\r\r3\r");
        assert_eq!(summary(&items), vec![(1, Ok(1)), (2, Ok(2)), (4, Ok(3))]);
        let items = read_file(dir.path(), "mac.csv", b"tweet_id\r1\r\r2\r3");
        assert_eq!(summary(&items), vec![(2, Ok(1)), (4, Ok(2)), (5, Ok(3))]);
    }

    #[test]
    fn bom_only_stripped_at_file_start() {
        let dir = TempDir::new().unwrap();
        let items = read_file(dir.path(), "ids.txt", b"1\n\xEF\xBB\xBF2\n");
        assert_eq!(summary(&items)[0], (1, Ok(1)));
        assert_eq!(
            summary(&items)[1],
            (2, Err(reason::NOT_A_NUMBER.to_string()))
        );
    }

    #[test]
    fn plain_rejects_carry_source_line_and_content() {
        let dir = TempDir::new().unwrap();
        let path = write(
            dir.path(),
            "ids.txt",
            b"1.23457E+18\n  -5 \n123.0\n0\n9223372036854775808\n18446744073709551616\nfoo\n+7\n\xff\xfe\n",
        );
        let name = path.display().to_string();
        let mut reader = Reader::new(vec![InputSource::File(path)], ReadOptions::default());
        let items: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
        let reasons: Vec<_> = items.iter().map(|p| rejected(p).reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                reason::SCIENTIFIC,
                reason::NEGATIVE,
                reason::DECIMAL,
                reason::ZERO,
                reason::ABOVE_I64,
                reason::OUT_OF_RANGE,
                reason::NOT_A_NUMBER,
                reason::PLUS_SIGN,
                reason::INVALID_UTF8,
            ]
        );
        let second = rejected(&items[1]);
        assert_eq!(
            second,
            &Reject {
                source: name,
                line: 2,
                content: "-5".into(),
                reason: reason::NEGATIVE.into()
            }
        );
        assert_eq!(rejected(&items[8]).content, "\u{FFFD}\u{FFFD}");
        assert_eq!(reader.counters().rejects, 9);
        assert_eq!(reader.counters().ids, 0);
    }

    #[test]
    fn reject_content_is_truncated() {
        let dir = TempDir::new().unwrap();
        let line = "é".repeat(1000);
        let items = read_file(dir.path(), "ids.txt", line.as_bytes());
        let r = rejected(&items[0]);
        assert_eq!(r.content.chars().count(), MAX_REJECT_CHARS);
        assert!(r.content.chars().all(|c| c == 'é'));
    }

    #[test]
    fn overlong_lines_are_rejected_and_reading_continues() {
        let dir = TempDir::new().unwrap();
        let mut data = b"1\n".to_vec();
        data.extend(std::iter::repeat_n(b'7', 2 * 1024 * 1024));
        data.extend_from_slice(b"\n2\n");
        // Exactly at the cap is fine.
        let mut at_cap = vec![b' '; MAX_LINE_BYTES - 1];
        at_cap.push(b'3');
        data.extend_from_slice(&at_cap);
        data.extend_from_slice(b"\n");
        // Over-long last line without a terminator.
        data.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
        let items = read_file(dir.path(), "ids.txt", &data);
        assert_eq!(
            summary(&items),
            vec![
                (1, Ok(1)),
                (2, Err(reason::LINE_TOO_LONG.into())),
                (3, Ok(2)),
                (4, Ok(3)),
                (5, Err(reason::LINE_TOO_LONG.into())),
            ]
        );
        assert_eq!(rejected(&items[1]).content, "7".repeat(MAX_REJECT_CHARS));
    }

    #[test]
    fn overlong_lines_in_csv_and_jsonl() {
        let dir = TempDir::new().unwrap();
        let big = "9".repeat(2 * 1024 * 1024);
        let csv = format!("tweet_id\n1\n{big}\n2\n");
        let items = read_file(dir.path(), "a.csv", csv.as_bytes());
        assert_eq!(
            summary(&items),
            vec![
                (2, Ok(1)),
                (3, Err(reason::LINE_TOO_LONG.into())),
                (4, Ok(2))
            ]
        );
        let jsonl = format!("{{\"id\":1}}\n{{\"text\":\"{big}\"}}\n{{\"id\":2}}\n");
        let items = read_file(dir.path(), "a.jsonl", jsonl.as_bytes());
        assert_eq!(
            summary(&items),
            vec![
                (1, Ok(1)),
                (2, Err(reason::LINE_TOO_LONG.into())),
                (3, Ok(2))
            ]
        );
    }

    #[test]
    fn gzip_by_extension_and_by_magic() {
        let dir = TempDir::new().unwrap();
        let a = write(dir.path(), "a.txt.gz", &gz(b"1\n2\n"));
        let b = write(dir.path(), "b.csv.gz", &gz(b"id\n3\n"));
        let c = write(dir.path(), "c.dat", &gz(b"4\n"));
        let d = write(dir.path(), "d.jsonl.gz", &gz(b"{\"id_str\":\"5\"}\n"));
        // Concatenated gzip members (as from `cat a.gz b.gz`).
        let mut multi = gz(b"6\n");
        multi.extend(gz(b"7\n"));
        let e = write(dir.path(), "e.gz", &multi);
        let items = read_all(&[a, b, c, d, e], ReadOptions::default());
        let ids: Vec<_> = items
            .iter()
            .map(|p| match p.record {
                Record::Id { id, .. } => (p.source_index, p.line, id),
                _ => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            vec![
                (0, 1, 1),
                (0, 2, 2),
                (1, 2, 3),
                (2, 1, 4),
                (3, 1, 5),
                (4, 1, 6),
                (4, 2, 7)
            ]
        );
    }

    #[test]
    fn truncated_gzip_is_a_reject_not_a_panic() {
        let dir = TempDir::new().unwrap();
        let text: String = (1..=20_000).map(|i| format!("{i}\n")).collect();
        let full = gz(text.as_bytes());
        let broken = write(dir.path(), "broken.txt.gz", &full[..full.len() / 2]);
        let after = write(dir.path(), "after.txt", b"99\n");
        let mut reader = Reader::new(
            vec![InputSource::File(broken), InputSource::File(after)],
            ReadOptions::default(),
        );
        let items: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
        let last_of_first = items.iter().rev().find(|p| p.source_index == 0).unwrap();
        let r = rejected(last_of_first);
        let good = items.len() - 2;
        assert!(good > 0 && good < 20_000, "read {good} ids");
        assert_eq!(
            r.reason,
            format!("truncated or corrupt gzip stream after line {good}")
        );
        assert_eq!(last_of_first.line, good as u64 + 1);
        let last = items.last().unwrap();
        assert_eq!(
            (last.source_index, &last.record),
            (
                1,
                &Record::Id {
                    id: 99,
                    account: None
                }
            )
        );
        assert_eq!(reader.counters().rejects, 1);
        assert_eq!(reader.counters().errors, 0);
    }

    #[test]
    fn corrupt_gzip_csv_is_a_reject() {
        let dir = TempDir::new().unwrap();
        let text: String = std::iter::once("tweet_id\n".to_string())
            .chain((1..=20_000).map(|i| format!("{i}\n")))
            .collect();
        let full = gz(text.as_bytes());
        let path = write(dir.path(), "broken.csv.gz", &full[..full.len() - 10]);
        let items = read_all(&[path], ReadOptions::default());
        let r = rejected(items.last().unwrap());
        assert!(
            r.reason
                .starts_with("truncated or corrupt gzip stream after line "),
            "{r:?}"
        );
        assert!(items.len() > 1000);
    }

    #[test]
    fn csv_columns() {
        let dir = TempDir::new().unwrap();
        // tweet_id preferred over id; case-insensitive and trimmed header.
        let items = read_file(dir.path(), "a.csv", b"id, Tweet_ID ,x\n1,2,3\n");
        assert_eq!(summary(&items), vec![(2, Ok(2))]);
        // Falls back to id, BOM in header stripped.
        let items = read_file(dir.path(), "b.csv", b"\xEF\xBB\xBFID,x\n5,y\r\n6,z\r\n");
        assert_eq!(summary(&items), vec![(2, Ok(5)), (3, Ok(6))]);
        // Custom column overrides both.
        let path = write(dir.path(), "c.csv", b"id,status\n1,77\n");
        let items = read_all(
            &[path],
            ReadOptions {
                id_column: Some("STATUS".into()),
                ..Default::default()
            },
        );
        assert_eq!(summary(&items), vec![(2, Ok(77))]);
    }

    #[test]
    fn csv_account_quoted_fields_and_row_rejects() {
        let dir = TempDir::new().unwrap();
        let data = b"note,tweet_id,account\n\
            \"hello, world\",\"123\", alice \n\
            \"multi\nline\",456,\n\
            x,\"1.23457E+18\",bob\n\
            short\n\
            \n\
            y, 789 ,\"\"\n\
            z,,carol\n\
            , ,\n\
            \r\n\
            w,10\r\n";
        let items = read_file(dir.path(), "a.csv", data);
        let got: Vec<_> = items
            .iter()
            .map(|p| match &p.record {
                Record::Id { id, account } => (p.line, Ok((*id, account.clone()))),
                Record::Reject(r) => (p.line, Err((r.reason.clone(), r.content.clone()))),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (2, Ok((123, Some("alice".to_string())))),
                (3, Ok((456, None))),
                (
                    5,
                    Err((reason::SCIENTIFIC.to_string(), "1.23457E+18".to_string()))
                ),
                (
                    6,
                    Err(("missing column tweet_id".to_string(), "short".to_string()))
                ),
                (8, Ok((789, None))),
                (9, Err((reason::EMPTY.to_string(), String::new()))),
                (12, Ok((10, None))),
            ]
        );
    }

    #[test]
    fn csv_line_numbers_are_physical() {
        let dir = TempDir::new().unwrap();
        let data =
            b"\r\n\nid,account\r\n\r\n\r\n1,a\r\n\"2\r\n\r\n\",\"b\nc\"\r\n\n  \n3,d\n,,\n\n4";
        let path = write(dir.path(), "l.csv", data);
        let mut reader = Reader::new(vec![InputSource::File(path)], ReadOptions::default());
        let items: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
        assert_eq!(
            summary(&items),
            vec![(6, Ok(1)), (7, Ok(2)), (13, Ok(3)), (16, Ok(4))]
        );
        assert_eq!(
            items[1].record,
            Record::Id {
                id: 2,
                account: Some("b\nc".into())
            }
        );
        let c = reader.counters();
        assert_eq!((c.lines, c.blank_lines, c.ids, c.rejects), (4, 2, 4, 0));
    }

    #[test]
    fn csv_without_id_column_is_an_error_naming_file_and_columns() {
        let dir = TempDir::new().unwrap();
        let bad = write(dir.path(), "bad.csv", b"user,text\na,b\n");
        let good = write(dir.path(), "good.txt", b"5\n");
        let mut reader = Reader::new(
            vec![InputSource::File(bad.clone()), InputSource::File(good)],
            ReadOptions::default(),
        );
        let err = reader.next_record().unwrap().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
        assert!(msg.contains("`tweet_id` or `id`"), "{msg}");
        assert!(msg.contains("columns: user, text"), "{msg}");
        assert!(matches!(err, IdsError::MissingIdColumn { .. }));
        // The next source is still read.
        let next = reader.next_record().unwrap().unwrap();
        assert_eq!(
            next.record,
            Record::Id {
                id: 5,
                account: None
            }
        );
        assert!(reader.next_record().is_none());
        assert_eq!(reader.counters().errors, 1);

        let headerless = write(dir.path(), "h.csv", b"123\n456\n");
        let err = Reader::new(vec![InputSource::File(headerless)], ReadOptions::default())
            .next()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("header row missing"), "{err}");

        let custom = write(dir.path(), "c.csv", b"id\n1\n");
        let err = Reader::new(
            vec![InputSource::File(custom)],
            ReadOptions {
                id_column: Some("status_id".into()),
                ..Default::default()
            },
        )
        .next()
        .unwrap()
        .unwrap_err();
        assert!(err.to_string().contains("no `status_id` column"), "{err}");
    }

    #[test]
    fn empty_inputs_yield_nothing() {
        let dir = TempDir::new().unwrap();
        assert!(read_file(dir.path(), "e.csv", b"").is_empty());
        assert!(read_file(dir.path(), "e.txt", b"").is_empty());
        assert!(read_file(dir.path(), "e.jsonl", b"\n\n").is_empty());
        assert!(read_file(dir.path(), "h.csv", b"tweet_id\n").is_empty());
    }

    #[test]
    fn jsonl_ids() {
        let dir = TempDir::new().unwrap();
        let data = br#"{"id_str":"1790000000000000001","id":1790000000000000000,"text":"x"}
{"id":1790000000000000001,"user":{"id":5}}

{"id":"tag:search.twitter.com,2005:1790000000000000003"}
{"id":"1790000000000000004"}
{"id":1.2e18}
{"id":-5}
{"id":0}
{"id":9223372036854775808}
{"id":99999999999999999999}
{"text":"no id"}
{"id":null,"id_str":null}
{"id":true}
{"id_str":"12a"}
{"id": 17
[1,2]
  {"id": 8}  
{"id": 1, "id": 2}
"123"
"#;
        let items = read_file(dir.path(), "t.jsonl", data);
        let s = summary(&items);
        assert_eq!(s[0], (1, Ok(1790000000000000001)));
        assert_eq!(s[1], (2, Ok(1790000000000000001)));
        assert_eq!(s[2], (4, Ok(1790000000000000003)));
        assert_eq!(s[3], (5, Ok(1790000000000000004)));
        assert_eq!(s[4], (6, Err(reason::NOT_AN_INTEGER.into())));
        assert_eq!(s[5], (7, Err(reason::NEGATIVE.into())));
        assert_eq!(s[6], (8, Err(reason::ZERO.into())));
        assert_eq!(s[7], (9, Err(reason::ABOVE_I64.into())));
        assert_eq!(s[8], (10, Err(reason::OUT_OF_RANGE.into())));
        assert_eq!(s[9], (11, Err(reason::NO_ID_FIELD.into())));
        assert_eq!(s[10], (12, Err(reason::NO_ID_FIELD.into())));
        assert_eq!(s[11], (13, Err(reason::ID_WRONG_TYPE.into())));
        assert_eq!(s[12], (14, Err(reason::NOT_A_NUMBER.into())));
        let Err(invalid) = &s[13].1 else { panic!() };
        assert!(invalid.starts_with("invalid JSON: "), "{invalid}");
        assert!(!invalid.contains("line 1"), "{invalid}");
        assert_eq!(s[14], (16, Err(reason::NOT_AN_OBJECT.into())));
        assert_eq!(s[15], (17, Ok(8)));
        let Err(duplicate) = &s[16].1 else { panic!() };
        assert!(
            duplicate.starts_with("unexpected JSON: duplicate field"),
            "{duplicate}"
        );
        assert_eq!(s[17], (19, Err(reason::NOT_AN_OBJECT.into())));
        assert_eq!(s.len(), 18);
    }

    #[test]
    fn json_number_edge_cases() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            (r#"{"id":-1.5}"#, Err(reason::NEGATIVE)),
            (r#"{"id":1.0}"#, Err(reason::NOT_AN_INTEGER)),
            (r#"{"id":1e30}"#, Err(reason::OUT_OF_RANGE)),
            (r#"{"id":9223372036854775807}"#, Ok(i64::MAX as u64)),
            (r#"{"id_str":" 42 "}"#, Ok(42)),
            (r#"{"id_str":"","id":5}"#, Err(reason::EMPTY)),
            (r#"{"id_str":"1.23457E+18"}"#, Err(reason::SCIENTIFIC)),
            (
                r#"{"id":"tag:search.twitter.com,2005:"}"#,
                Err(reason::EMPTY),
            ),
            (r#"{"id":{"n":1}}"#, Err(reason::ID_WRONG_TYPE)),
        ];
        for (line, want) in cases {
            let got = parse_json_line(line.as_bytes());
            assert_eq!(got, want.map_err(str::to_string), "{line}");
        }
        let bad = parse_json_line(b"[1").unwrap_err();
        assert!(bad.starts_with("invalid JSON: "), "{bad}");
    }

    #[test]
    fn activity_streams_ids_only_from_tag_uris() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            (r#"{"id":"tag:search.twitter.com,2005:42"}"#, Ok(42)),
            (r#"{"id":" tag:twitter.com,2013:42 "}"#, Ok(42)),
            (r#"{"id_str":"12:34"}"#, Err(reason::NOT_A_NUMBER)),
            (r#"{"id":"2024-05-01T10:30"}"#, Err(reason::NOT_A_NUMBER)),
            (
                r#"{"id":"https://x.com/u/status/42"}"#,
                Err(reason::NOT_A_NUMBER),
            ),
            (r#"{"id":"urn:tweet:42"}"#, Err(reason::NOT_A_NUMBER)),
            // A tag URI without its `:specific` part is not unwrapped.
            (r#"{"id":"tag:42"}"#, Err(reason::NOT_A_NUMBER)),
            (r#"{"id":"TAG:x,2005:42"}"#, Err(reason::NOT_A_NUMBER)),
        ];
        for (line, want) in cases {
            let got = parse_json_line(line.as_bytes());
            assert_eq!(got, want.map_err(str::to_string), "{line}");
        }
    }

    #[test]
    fn jsonl_x_api_v2_data_id() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            (
                r#"{"data":{"id":"1790000000000000001","text":"hi"}}"#,
                Ok(1790000000000000001),
            ),
            (
                r#"{"data":{"id":17,"edit_history_tweet_ids":["17"]},"includes":{"users":[{"id":"5"}]}}"#,
                Ok(17),
            ),
            // Top-level id_str, then id, win over data.id.
            (r#"{"data":{"id":"1"},"id":2}"#, Ok(2)),
            (r#"{"id_str":"3","data":{"id":"1"}}"#, Ok(3)),
            (r#"{"id":null,"data":{"id":"4"}}"#, Ok(4)),
            (r#"{"data":{"id":"1.79E+18"}}"#, Err(reason::SCIENTIFIC)),
            (r#"{"data":{"id":true}}"#, Err(reason::ID_WRONG_TYPE)),
            (r#"{"data":{"id":null}}"#, Err(reason::NO_ID_FIELD)),
            (r#"{"data":{"text":"no id"}}"#, Err(reason::NO_ID_FIELD)),
            // A multi-Tweet lookup is an array: not guessed at.
            (
                r#"{"data":[{"id":"1"},{"id":"2"}]}"#,
                Err(reason::NO_ID_FIELD),
            ),
            (r#"{"data":"5"}"#, Err(reason::NO_ID_FIELD)),
            (r#"{"errors":[{"value":"5"}]}"#, Err(reason::NO_ID_FIELD)),
        ];
        for (line, want) in cases {
            let got = parse_json_line(line.as_bytes());
            assert_eq!(got, want.map_err(str::to_string), "{line}");
        }
        let dup = parse_json_line(br#"{"data":{"id":"1"},"data":{"id":"2"}}"#).unwrap_err();
        assert!(
            dup.starts_with("unexpected JSON: duplicate field `data`"),
            "{dup}"
        );
    }

    #[test]
    fn tweet_urls_yield_their_id() {
        let ok: &[&str] = &[
            "https://x.com/someone/status/42",
            "https://twitter.com/some_one/status/42?s=20&t=abc",
            "http://mobile.twitter.com/Someone123/status/42/",
            "https://www.x.com/someone/status/42#m",
            "HTTPS://X.COM/someone/status/42",
            "x.com/someone/status/42",
            "twitter.com/someone/status/42/?s=20",
            "https://x.com/i/web/status/42",
            "mobile.x.com/i/web/status/42",
        ];
        for url in ok {
            assert_eq!(parse_id_or_url(url.as_bytes()), Ok(42), "{url}");
        }
        let bad: &[(&str, &str)] = &[
            (
                "https://x.com/someone/status/42/photo/1",
                reason::NOT_A_TWEET_URL,
            ),
            ("https://x.com/someone", reason::NOT_A_TWEET_URL),
            ("https://x.com/someone/likes", reason::NOT_A_TWEET_URL),
            ("https://x.com/status/42", reason::NOT_A_TWEET_URL),
            ("https://x.com//status/42", reason::NOT_A_TWEET_URL),
            ("https://x.com/some.one/status/42", reason::NOT_A_TWEET_URL),
            ("https://x.com/someone/status/", reason::NOT_A_TWEET_URL),
            ("https://x.com", reason::NOT_A_TWEET_URL),
            (
                "https://example.com/someone/status/42",
                reason::NOT_A_TWEET_URL,
            ),
            (
                "https://x.com.evil.example/u/status/42",
                reason::NOT_A_TWEET_URL,
            ),
            ("example.com/someone/status/42", reason::NOT_A_NUMBER),
            ("x.com/someone/status/42 extra", reason::NOT_A_NUMBER),
            // The ID part is judged like any ID.
            ("https://x.com/someone/status/0", reason::ZERO),
            ("https://x.com/someone/status/1.79E+18", reason::SCIENTIFIC),
            ("https://x.com/someone/status/abc", reason::NOT_A_NUMBER),
            (
                "https://x.com/someone/status/9223372036854775808",
                reason::ABOVE_I64,
            ),
            ("status/42", reason::NOT_A_NUMBER),
        ];
        for (text, why) in bad {
            assert_eq!(parse_id_or_url(text.as_bytes()), Err(*why), "{text}");
        }
        // Plain IDs are unchanged, and `parse_id` itself stays strict.
        assert_eq!(parse_id_or_url(b"0042"), Ok(42));
        assert_eq!(parse_id_or_url(b"1.23457E+18"), Err(reason::SCIENTIFIC));
        assert_eq!(
            parse_id(b"https://x.com/u/status/42"),
            Err(reason::NOT_A_NUMBER)
        );
    }

    #[test]
    fn tweet_urls_in_plain_csv_but_not_json() {
        let dir = TempDir::new().unwrap();
        let items = read_file(
            dir.path(),
            "u.txt",
            b"https://x.com/a/status/1\n  twitter.com/b/status/2?s=20  \nhttps://x.com/a\n",
        );
        assert_eq!(
            summary(&items),
            vec![
                (1, Ok(1)),
                (2, Ok(2)),
                (3, Err(reason::NOT_A_TWEET_URL.into()))
            ]
        );
        let items = read_file(
            dir.path(),
            "u.csv",
            b"tweet_id,account\n\"https://x.com/a/status/3?s=20\",a\nhttps://x.com/i/web/status/4,b\n",
        );
        assert_eq!(summary(&items), vec![(2, Ok(3)), (3, Ok(4))]);
        assert_eq!(
            items[0].record,
            Record::Id {
                id: 3,
                account: Some("a".into())
            }
        );
        let items = read_file(
            dir.path(),
            "u.jsonl",
            b"{\"id\":\"https://x.com/a/status/5\"}\n",
        );
        assert_eq!(summary(&items), vec![(1, Err(reason::NOT_A_NUMBER.into()))]);
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for unit in text.encode_utf16() {
            out.extend(if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        out
    }

    /// Hands out at most one byte per read, so every code unit and
    /// surrogate pair is split across reads.
    struct Trickle(io::Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(1);
            self.0.read(&mut out[..n])
        }
    }

    fn decode(bytes: Vec<u8>, trickle: bool) -> Vec<u8> {
        let inner: Box<dyn Read + Send> = if trickle {
            Box::new(Trickle(io::Cursor::new(bytes)))
        } else {
            Box::new(io::Cursor::new(bytes))
        };
        let mut out = Vec::new();
        TextDecoder::new(inner).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn utf16_is_decoded_to_utf8_as_it_streams() {
        let text = "1790000000000000001\r\ncafé 😀 \u{FFFF}\r\n42";
        for big_endian in [false, true] {
            for trickle in [false, true] {
                let got = decode(utf16(text, big_endian), trickle);
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    text,
                    "{big_endian} {trickle}"
                );
            }
        }
        // Longer than one decode chunk.
        let long: String = (1..=5000).map(|i| format!("{i}\n")).collect();
        assert_eq!(decode(utf16(&long, false), false), long.as_bytes());
        // Broken UTF-16: lone surrogates and an odd final byte become U+FFFD.
        let mut broken = vec![0xFF, 0xFE];
        for unit in [0x31u16, 0xD83D, 0x0A, 0xDE00, 0x32, 0xD83D] {
            broken.extend(unit.to_le_bytes());
        }
        broken.push(0x33);
        let want = "1\u{FFFD}\n\u{FFFD}2\u{FFFD}\u{FFFD}";
        for trickle in [false, true] {
            assert_eq!(
                String::from_utf8(decode(broken.clone(), trickle)).unwrap(),
                want
            );
        }
        // Anything else passes through untouched, however short.
        for raw in [
            &b""[..],
            b"\xFF",
            b"\xFE",
            b"\xFF\xFF1",
            b"\xEF\xBB\xBF1\n",
            b"\xFE\xFE",
        ] {
            assert_eq!(decode(raw.to_vec(), false), raw);
            assert_eq!(decode(raw.to_vec(), true), raw);
        }
        // The BOM alone is an empty file.
        assert!(decode(vec![0xFF, 0xFE], false).is_empty());
    }

    #[test]
    fn utf16_files_read_with_their_own_line_numbers() {
        let dir = TempDir::new().unwrap();
        let plain = utf16("1790000000000000001\r\n\r\nnope\r\n42\r\n", false);
        let items = read_file(dir.path(), "le.txt", &plain);
        assert_eq!(
            summary(&items),
            vec![
                (1, Ok(1790000000000000001)),
                (3, Err(reason::NOT_A_NUMBER.into())),
                (4, Ok(42))
            ]
        );
        assert_eq!(rejected(&items[1]).content, "nope");
        // gzip of UTF-16, and UTF-16 CSV with an account that needs a surrogate pair.
        let items = read_file(dir.path(), "be.txt.gz", &gz(&utf16("7\n8\n", true)));
        assert_eq!(summary(&items), vec![(1, Ok(7)), (2, Ok(8))]);
        let items = read_file(
            dir.path(),
            "c.csv",
            &utf16("tweet_id,account\r\n9,brand😀\r\n", false),
        );
        assert_eq!(
            items[0].record,
            Record::Id {
                id: 9,
                account: Some("brand😀".into())
            }
        );
        let items = read_file(dir.path(), "j.jsonl", &utf16("{\"id\":\"10\"}\n", true));
        assert_eq!(summary(&items), vec![(1, Ok(10))]);
    }

    #[test]
    fn semicolon_csv_is_read_when_the_header_names_an_id_column() {
        let dir = TempDir::new().unwrap();
        let data = b"\xEF\xBB\xBF\r\ntweet_id;account\r\n1;a\r\n\"2\";\"b;c\"\r\n3,x;d\r\n";
        let items = read_file(dir.path(), "s.csv", data);
        let got: Vec<_> = items
            .iter()
            .map(|p| match &p.record {
                Record::Id { id, account } => (p.line, Ok((*id, account.clone()))),
                Record::Reject(r) => (p.line, Err(r.reason.clone())),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (3, Ok((1, Some("a".into())))),
                (4, Ok((2, Some("b;c".into())))),
                (5, Err(reason::NOT_A_NUMBER.into())),
            ]
        );
        // Quoted names, the `id` fallback and --id-column are found the same way.
        let items = read_file(dir.path(), "q.csv", b"\"user\";\"ID\"\nu;4\n");
        assert_eq!(summary(&items), vec![(2, Ok(4))]);
        let path = write(dir.path(), "c.csv", b"x;Status\n1;5\n");
        let options = ReadOptions {
            id_column: Some("status".into()),
            ..Default::default()
        };
        assert_eq!(summary(&read_all(&[path], options)), vec![(2, Ok(5))]);
        // A comma header is never split at `;`.
        let items = read_file(dir.path(), "m.csv", b"tweet_id,account\n6;a\n7,b\n");
        assert_eq!(
            summary(&items),
            vec![(2, Err(reason::NOT_A_NUMBER.into())), (3, Ok(7))]
        );
    }

    #[test]
    fn semicolon_csv_without_id_column_hints_at_it() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "s.csv", b"tweet;user\n1;a\n");
        let err = Reader::new(vec![InputSource::File(path)], ReadOptions::default())
            .next()
            .unwrap()
            .unwrap_err();
        let IdsError::MissingIdColumn { columns, hint, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(columns, &["tweet;user"]);
        assert!(hint.contains("semicolon-separated?"), "{err}");
    }

    /// What a CSV reader holds for the record in progress: the feed's window,
    /// spans and line buffer, and the parser's record.
    fn csv_buffered_bytes(reader: &Reader) -> usize {
        match reader.active.as_ref().map(|a| &a.kind) {
            Some(ActiveKind::Csv(state)) => {
                state.rdr.get_ref().buffered_bytes() + state.record.as_slice().len()
            }
            _ => 0,
        }
    }

    /// Reads one CSV file, also returning the most [`csv_buffered_bytes`]
    /// seen between records.
    fn read_csv_measuring(
        dir: &Path,
        name: &str,
        data: &[u8],
    ) -> (Vec<Positioned>, Counters, usize) {
        let path = write(dir, name, data);
        let mut reader = Reader::new(vec![InputSource::File(path)], ReadOptions::default());
        let mut peak = 0;
        let mut items = Vec::new();
        while let Some(item) = reader.next_record() {
            peak = peak.max(csv_buffered_bytes(&reader));
            items.push(item.unwrap());
        }
        (items, reader.counters(), peak)
    }

    #[test]
    fn csv_stray_quote_before_200k_rows_loses_one_row_in_bounded_memory() {
        let dir = TempDir::new().unwrap();
        let first = 1_700_000_000_000_000_000u64;
        let mut data = b"tweet_id,account\n\"1790000000000000001,brand\n".to_vec();
        for i in 0..200_000u64 {
            data.extend_from_slice(format!("{},brand\n", first + i).as_bytes());
        }
        assert!(data.len() > 4 * MAX_LINE_BYTES);
        let (items, c, peak) = read_csv_measuring(dir.path(), "q.csv", &data);
        let r = rejected(&items[0]);
        assert_eq!(
            (items[0].line, r.reason.as_str(), r.content.as_str()),
            (
                2,
                "unterminated quote from line 2",
                "\"1790000000000000001,brand"
            )
        );
        assert_eq!(items.len(), 200_001);
        for (i, p) in items[1..].iter().enumerate() {
            let want = Record::Id {
                id: first + i as u64,
                account: Some("brand".into()),
            };
            assert_eq!((p.line, &p.record), (i as u64 + 3, &want));
        }
        assert_eq!(
            (c.lines, c.ids, c.rejects, c.errors),
            (200_001, 200_000, 1, 0)
        );
        // The abandoned record was cut at 32,768 lines (850 kB; about 2 MiB
        // with the bookkeeping of its lines); the file is 5 MiB.
        assert!(
            peak > MAX_LINE_BYTES / 2,
            "peak {peak}: the quote was never followed"
        );
        assert!(peak < 3 * MAX_LINE_BYTES, "peak {peak}");
    }

    #[test]
    fn csv_unterminated_quote_at_end_of_input() {
        let dir = TempDir::new().unwrap();
        let why = |line: u64| Err(format!("unterminated quote from line {line}"));
        // Within the limit, the open quote is found at the end of the input.
        let items = read_file(
            dir.path(),
            "a.csv",
            b"tweet_id,account\n\"1,brand\n2,brand\n3,brand\n",
        );
        assert_eq!(summary(&items), vec![(2, why(2)), (3, Ok(2)), (4, Ok(3))]);
        // CRLF, blank lines, a later stray quote, a last line without terminator.
        let items = read_file(
            dir.path(),
            "b.csv",
            b"tweet_id\r\n\r\n4\r\n\r\n\"5\r\n\r\n6\r\n7x",
        );
        assert_eq!(
            summary(&items),
            vec![
                (3, Ok(4)),
                (5, why(5)),
                (7, Ok(6)),
                (8, Err(reason::NOT_A_NUMBER.into())),
            ]
        );
        let items = read_file(dir.path(), "e.csv", b"tweet_id\n1\n\"8");
        assert_eq!(summary(&items), vec![(2, Ok(1)), (3, why(3))]);
        // Semicolon files scan for quotes with their own delimiter.
        let items = read_file(dir.path(), "c.csv", b"tweet_id;account\n9;\"a\n10;b\n");
        assert_eq!(summary(&items), vec![(2, why(2)), (3, Ok(10))]);
        // Closed quotes, escaped quotes and a quote inside a field are fine.
        let items = read_file(
            dir.path(),
            "d.csv",
            b"tweet_id,text\n11,\"a \"\"q\"\"\nb\"\n12,x\"y\n13,\"\"\n14,\"\"\"\"",
        );
        assert_eq!(
            summary(&items),
            vec![(2, Ok(11)), (4, Ok(12)), (5, Ok(13)), (6, Ok(14))]
        );
    }

    #[test]
    fn csv_multiline_quoted_field_under_the_limit_is_one_row() {
        let dir = TempDir::new().unwrap();
        let text_line = "x".repeat(99);
        let text: Vec<&str> = std::iter::repeat_n(text_line.as_str(), 6000).collect();
        let text = text.join("\n");
        assert!(text.len() > MAX_LINE_BYTES / 2 && text.len() < MAX_LINE_BYTES);
        let data = format!("tweet_id,text,account\n1,\"{text}\",a\n\n2,\"\n\n\n\",b\n3,c,d\n");
        let items = read_file(dir.path(), "m.csv", data.as_bytes());
        assert_eq!(
            summary(&items),
            vec![(2, Ok(1)), (6003, Ok(2)), (6007, Ok(3))]
        );
        // One byte-line over the limit: the record is abandoned and its
        // lines read as rows.
        let text = "7\n".repeat(MAX_LINE_BYTES / 2 + 1);
        let data = format!("tweet_id,text\n1,\"{text}\"\n");
        let (items, _, peak) = read_csv_measuring(dir.path(), "n.csv", data.as_bytes());
        // 32,768 lines of 2 bytes: the line cap keeps their bookkeeping small.
        assert!(peak < 2 * MAX_LINE_BYTES, "peak {peak}");
        let s = summary(&items);
        assert_eq!(s[0], (2, Err("unterminated quote from line 2".into())));
        assert_eq!(s[1], (3, Ok(7)));
        assert_eq!(s.len(), MAX_LINE_BYTES / 2 + 2, "{:?}", &s[s.len() - 2..]);
        assert_eq!(
            s.last().unwrap().1,
            Err("unterminated quote from line 524291".into())
        );
        // Few long lines: the byte cap, not the line cap, ends the record.
        let long = "7".repeat(100_000);
        let data = format!("tweet_id\n\"1\n{}2\n", format!("{long}\n").repeat(12));
        let items = read_file(dir.path(), "o.csv", data.as_bytes());
        let s = summary(&items);
        assert_eq!(s[0], (2, Err("unterminated quote from line 2".into())));
        assert_eq!(s.len(), 14);
        assert!(s[1..13]
            .iter()
            .enumerate()
            .all(|(i, r)| r == &(i as u64 + 3, Err(reason::OUT_OF_RANGE.into()))));
        assert_eq!(s[13], (15, Ok(2)));
    }

    #[test]
    fn csv_blank_lines_do_not_count_toward_the_record_limit() {
        let dir = TempDir::new().unwrap();
        let blank = "\r\n".repeat(MAX_LINE_BYTES);
        let data = format!("tweet_id\n1\n{blank}2\n");
        let (items, _, peak) = read_csv_measuring(dir.path(), "b.csv", data.as_bytes());
        let n = MAX_LINE_BYTES as u64;
        assert_eq!(summary(&items), vec![(2, Ok(1)), (n + 3, Ok(2))]);
        assert!(peak < MAX_LINE_BYTES / 4, "peak {peak}");
    }

    #[test]
    fn csv_unterminated_quote_with_an_overlong_line_inside() {
        let dir = TempDir::new().unwrap();
        let long = "9".repeat(MAX_LINE_BYTES + 10);
        let mut data = format!("tweet_id\n\"1\n{long}\n");
        for i in 0..100_000 {
            data.push_str(&format!("{}\n", 10 + i));
        }
        let items = read_file(dir.path(), "l.csv", data.as_bytes());
        let s = summary(&items);
        assert_eq!(s[0], (2, Err("unterminated quote from line 2".into())));
        assert_eq!(s[1], (3, Err(reason::LINE_TOO_LONG.into())));
        assert_eq!(s[2], (4, Ok(10)));
        assert_eq!(s.len(), 100_002);
        assert_eq!(s.last().unwrap(), &(100_003, Ok(100_009)));
    }

    #[test]
    fn csv_unterminated_quote_resumes_exactly() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "r.csv", b"tweet_id\n1\n\"2\n3\nbad\n\n5\n");
        let all = read_all(std::slice::from_ref(&path), ReadOptions::default());
        assert_eq!(
            summary(&all),
            vec![
                (2, Ok(1)),
                (3, Err("unterminated quote from line 3".into())),
                (4, Ok(3)),
                (5, Err(reason::NOT_A_NUMBER.into())),
                (7, Ok(5)),
            ]
        );
        for (k, p) in all.iter().enumerate() {
            let mut reader = Reader::new(
                vec![InputSource::File(path.clone())],
                ReadOptions::default(),
            );
            reader.skip_to(0, p.line);
            let rest: Vec<_> = reader.map(Result::unwrap).collect();
            assert_eq!(rest, all[k + 1..], "after line {}", p.line);
        }
    }

    #[test]
    fn csv_header_with_unterminated_quote_is_an_error() {
        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "h.csv", b"\n\"tweet_id,account\n1,a\n");
        let err = Reader::new(
            vec![InputSource::File(path.clone())],
            ReadOptions::default(),
        )
        .next()
        .unwrap()
        .unwrap_err();
        assert!(matches!(err, IdsError::Csv { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("header row has an unterminated quote from line 2"),
            "{msg}"
        );
    }

    #[test]
    fn jsonl_invalid_utf8_and_bom() {
        let dir = TempDir::new().unwrap();
        let items = read_file(
            dir.path(),
            "t.ndjson",
            b"\xEF\xBB\xBF{\"id\":3}\n{\"id\":\"\xff\"}\n",
        );
        assert_eq!(
            summary(&items),
            vec![(1, Ok(3)), (2, Err(reason::INVALID_UTF8.into()))]
        );
    }

    #[test]
    fn format_override_and_detection() {
        assert_eq!(Format::from_path(Path::new("a.CSV")), Format::Csv);
        assert_eq!(Format::from_path(Path::new("a.csv.gz")), Format::Csv);
        assert_eq!(Format::from_path(Path::new("a.json")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("a.ndjson.GZ")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("a.jsonl")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("a.txt")), Format::Plain);
        assert_eq!(Format::from_path(Path::new("a")), Format::Plain);
        assert_eq!(Format::from_path(Path::new("a.gz")), Format::Plain);
        assert_eq!(Format::from_path(Path::new("dir.csv/ids")), Format::Plain);
        assert_eq!(InputSource::Stdin.format_hint(), Format::Plain);

        let dir = TempDir::new().unwrap();
        let path = write(dir.path(), "looks.txt", b"tweet_id\n11\n");
        let items = read_all(
            &[path],
            ReadOptions {
                format: Some(Format::Csv),
                ..Default::default()
            },
        );
        assert_eq!(summary(&items), vec![(2, Ok(11))]);
    }

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
    fn missing_file_at_read_time_is_an_error_then_continues() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("gone.txt");
        let ok = write(dir.path(), "ok.txt", b"3\n");
        let mut reader = Reader::new(
            vec![InputSource::File(missing.clone()), InputSource::File(ok)],
            ReadOptions::default(),
        );
        let err = reader.next_record().unwrap().unwrap_err();
        assert!(err.to_string().contains(&missing.display().to_string()));
        assert_eq!(reader.next_record().unwrap().unwrap().line, 1);
        assert!(reader.next_record().is_none());
    }

    fn mixed_sources(dir: &Path) -> Vec<InputSource> {
        let a = write(dir, "a.txt", b"1\n\nbad\n2\n3\n");
        let b = write(
            dir,
            "b.csv",
            b"tweet_id,account\n4,x\n\"5\n\",y\nshort\n\n6,z\n",
        );
        let c = write(dir, "c.jsonl.gz", &gz(b"{\"id\":7}\n\n{\"id\":8}\nnope\n"));
        let d = write(dir, "d.txt", b"");
        let e = write(dir, "e.txt", b"9\n10");
        [a, b, c, d, e].into_iter().map(InputSource::File).collect()
    }

    #[test]
    fn skip_to_yields_exactly_the_suffix() {
        let dir = TempDir::new().unwrap();
        let sources = mixed_sources(dir.path());
        let all: Vec<Positioned> = Reader::new(sources.clone(), ReadOptions::default())
            .map(Result::unwrap)
            .collect();
        assert_eq!(all.len(), 13);
        // Positions strictly increase.
        for w in all.windows(2) {
            assert!((w[0].source_index, w[0].line) < (w[1].source_index, w[1].line));
        }
        for (k, p) in all.iter().enumerate() {
            let mut reader = Reader::new(sources.clone(), ReadOptions::default());
            reader.skip_to(p.source_index, p.line);
            let rest: Vec<Positioned> = reader.by_ref().map(Result::unwrap).collect();
            assert_eq!(
                rest,
                all[k + 1..],
                "resuming after {:?}",
                (p.source_index, p.line)
            );
            assert_eq!(
                reader.counters().ids + reader.counters().rejects,
                rest.len() as u64
            );
        }
        // Positions between records and past the end.
        let mut reader = Reader::new(sources.clone(), ReadOptions::default());
        reader.skip_to(0, 2);
        assert_eq!(reader.map(Result::unwrap).collect::<Vec<_>>(), all[1..]);
        let mut reader = Reader::new(sources, ReadOptions::default());
        reader.skip_to(99, 0);
        assert!(reader.next_record().is_none());
    }

    #[test]
    fn skip_to_does_not_open_earlier_sources() {
        let dir = TempDir::new().unwrap();
        let ok = write(dir.path(), "ok.txt", b"1\n2\n");
        let sources = vec![
            InputSource::File(dir.path().join("gone.txt")),
            InputSource::File(ok),
        ];
        let mut reader = Reader::new(sources, ReadOptions::default());
        reader.skip_to(1, 1);
        let rest: Vec<_> = reader.map(Result::unwrap).collect();
        assert_eq!(summary(&rest), vec![(2, Ok(2))]);
    }

    #[test]
    fn skip_to_covers_truncated_gzip_reject() {
        let dir = TempDir::new().unwrap();
        let text: String = (1..=5000).map(|i| format!("{i}\n")).collect();
        let full = gz(text.as_bytes());
        let path = write(dir.path(), "t.gz", &full[..full.len() - 12]);
        let all = read_all(std::slice::from_ref(&path), ReadOptions::default());
        let last = all.last().unwrap();
        let mut reader = Reader::new(
            vec![InputSource::File(path.clone())],
            ReadOptions::default(),
        );
        reader.skip_to(0, last.line - 1);
        assert_eq!(
            reader.map(Result::unwrap).collect::<Vec<_>>(),
            vec![last.clone()]
        );
        let mut reader = Reader::new(vec![InputSource::File(path)], ReadOptions::default());
        reader.skip_to(0, last.line);
        assert!(reader.next_record().is_none());
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

    #[test]
    fn mostly_rejected_needs_a_majority_and_a_minimum() {
        let min = JUNK_MIN_REJECTS;
        assert!(!mostly_rejected(min - 1, min - 1), "below the minimum");
        assert!(mostly_rejected(min, min));
        assert!(mostly_rejected(2 * min - 1, min), "more than half");
        assert!(!mostly_rejected(2 * min, min), "exactly half");
        assert!(mostly_rejected(385_828, 385_811));
        assert!(!mostly_rejected(4_000_000, 1_000_000));
        assert!(!mostly_rejected(0, 0));
    }

    #[test]
    fn reader_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Reader>();
        assert_send::<IdsError>();
    }

    #[test]
    #[ignore = "timing check; run with --release -- --ignored"]
    fn ten_million_lines_quickly() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("big.txt");
        let mut w = io::BufWriter::new(File::create(&path).unwrap());
        for i in 0..10_000_000u64 {
            writeln!(w, "{}", 1_700_000_000_000_000_000 + i).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let start = std::time::Instant::now();
        let mut reader = Reader::new(vec![InputSource::File(path)], ReadOptions::default());
        let mut sum = 0u64;
        for item in reader.by_ref() {
            if let Record::Id { id, .. } = item.unwrap().record {
                sum = sum.wrapping_add(id);
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(reader.counters().ids, 10_000_000);
        eprintln!("10M lines in {elapsed:?} (checksum {sum})");
        assert!(elapsed.as_secs() < 10);
    }

    fn whitespace() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec![" ", "\t", "\r"]), 0..3)
            .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn plain_reader_roundtrips_ids(
            lines in prop::collection::vec((1u64..=i64::MAX as u64, whitespace(), whitespace()), 0..50),
            blank_every in 2usize..6,
        ) {
            let dir = TempDir::new().unwrap();
            let mut text = String::new();
            for (i, (id, before, after)) in lines.iter().enumerate() {
                if i % blank_every == 0 {
                    text.push_str(before);
                    text.push('\n');
                }
                text.push_str(&format!("{before}{id}{after}\n"));
            }
            let path = write(dir.path(), "p.txt", text.as_bytes());
            let got: Vec<u64> = read_all(&[path], ReadOptions::default())
                .into_iter()
                .map(|p| match p.record {
                    Record::Id { id, .. } => id,
                    Record::Reject(r) => panic!("{r:?}"),
                })
                .collect();
            let want: Vec<u64> = lines.iter().map(|l| l.0).collect();
            prop_assert_eq!(got, want);
        }
    }
}
