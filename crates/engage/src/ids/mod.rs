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
//!
//! # Map
//!
//! One file per job; a line travels through them in this order:
//!
//! - `sources.rs`: the command line's inputs become [`InputSource`]s
//!   ([`expand_inputs`] walks folders in a fixed order); stdin and read-once
//!   inputs are copied to a file first ([`spool_stdin`], [`spool_input`]) so
//!   that they can be fingerprinted ([`fingerprint`]) and read.
//! - `reader.rs`: the [`Reader`] opens one source at a time, picks its format
//!   ([`Format`]), and pulls it one line or row at a time through the
//!   format's `Source`; a `Sink` labels each result with its position, skips
//!   it when it is at or before the resume point ([`Reader::skip_to`]) and
//!   counts it ([`Counters`]).
//! - `gzip.rs`: whether a source is gzip is decided by its first bytes; a
//!   stream that ends early or goes bad becomes a reject.
//! - `decode.rs`: a UTF-16 source is decoded to UTF-8 as it streams.
//! - `lines.rs`: the bytes are split into lines with a hard length cap
//!   (`LineSource`); a plain-text line is one ID or Tweet URL.
//! - `jsonl.rs`: a JSON line's `id_str`, `id` or `data.id`.
//! - `csv.rs`: the CSV header (ID, account and group columns, `;` files) and one
//!   row at a time; `csv_window.rs`: the window that feeds the CSV parser
//!   and bounds a record (see "Bounds on CSV records" above).
//! - `id.rs`: the text of one line or field becomes a Tweet ID
//!   ([`parse_id`], [`parse_id_or_url`]) or a [`reason`] it is not one.
//!
//! This file holds what they share: the limits, the reasons, the error type
//! and the records.

use std::io;
use std::path::Path;

mod csv;
mod csv_window;
mod decode;
mod gzip;
mod id;
mod jsonl;
mod lines;
mod reader;
mod sources;
#[cfg(test)]
mod testutil;

pub use id::{parse_id, parse_id_or_url};
pub use reader::Reader;
pub use sources::{
    expand_inputs, fingerprint, is_read_once, spool_input, spool_stdin, spool_tmp, InputSource,
};

/// Longest accepted line, in bytes, excluding the line terminator.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Rejected text is cut to this many characters so a reject log stays small
/// even when the input is garbage.
pub const MAX_REJECT_CHARS: usize = 200;

const IO_BUFFER_BYTES: usize = 64 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

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
    /// The name a run's identity stores (`plain`, `csv`, `jsonl`). Stored names never change: a
    /// store written by an earlier engage must compare equal on its resume.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

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
    /// CSV column holding the ID's groups (`--group-column`); matched case-insensitively. Without
    /// it, a column named `group` is used when there is one.
    pub group_column: Option<String>,
}

/// Separates several group names in one CSV cell (`brand|spring-sale`): a character group names
/// (campaigns, hashtags, handles) do not hold, and neither CSV dialect uses.
pub const GROUP_SEPARATOR: char = '|';

/// The group names a CSV cell holds: split at [`GROUP_SEPARATOR`], trimmed, blanks left out.
pub fn split_groups(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(GROUP_SEPARATOR)
        .map(str::trim)
        .filter(|g| !g.is_empty())
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
        /// The CSV group cell as written (`group`, or `--group-column`), if any and not blank: one
        /// group name or several separated by [`GROUP_SEPARATOR`] (see [`split_groups`]).
        group: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    /// Stores before `as_str` held the lower-cased `Debug` name: the same strings, so they resume.
    #[test]
    fn format_names_are_the_ones_stores_hold() {
        for (f, name) in [
            (Format::Plain, "plain"),
            (Format::Csv, "csv"),
            (Format::Jsonl, "jsonl"),
        ] {
            assert_eq!(f.as_str(), name);
            assert_eq!(format!("{f:?}").to_lowercase(), name);
        }
    }
    use tempfile::TempDir;

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
    fn reject_content_is_truncated() {
        let dir = TempDir::new().unwrap();
        let line = "é".repeat(1000);
        let items = read_file(dir.path(), "ids.txt", line.as_bytes());
        let r = rejected(&items[0]);
        assert_eq!(r.content.chars().count(), MAX_REJECT_CHARS);
        assert!(r.content.chars().all(|c| c == 'é'));
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
}
