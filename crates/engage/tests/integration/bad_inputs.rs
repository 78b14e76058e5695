//! The bad-input corpus in `fixtures/bad/`: every fixture read through [`engage::ids::Reader`] the way
//! the CLI reads it (sources from [`expand_inputs`], format guessed from the file name), with its
//! exact IDs, rejects (line and reason), blank lines and fatal errors.
//!
//! The expectations are one table, [`FIXTURES`], one row per file; `fixtures/bad/README.md` explains
//! each row and `fixtures/bad/make.py` writes the files. The 10 MB line is generated at run time so no
//! 10 MB file is committed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use engage::ids::{
    expand_inputs, reason, Counters, Format, IdsError, InputSource, Positioned, ReadOptions,
    Reader, Record, MAX_LINE_BYTES, MAX_REJECT_CHARS,
};

const A: u64 = 1_790_000_000_000_000_001;
const B: u64 = 1_790_000_000_000_000_002;
const C: u64 = 1_790_000_000_000_000_003;
const D: u64 = 1_790_000_000_000_000_004;

const NAN: &str = reason::NOT_A_NUMBER;
const UTF8: &str = reason::INVALID_UTF8;
/// A reason ending in `*` matches by prefix (for messages quoting the JSON parser).
const BAD_JSON: &str = "invalid JSON: *";

/// How the reject for a truncated or corrupt gzip stream begins.
const GZIP_BROKEN: &str = "truncated or corrupt gzip stream after line ";

/// The IDs a fixture yields, in order.
enum Ids {
    List(&'static [u64]),
    /// `count` consecutive IDs from `first` (the gzip fixtures hold long runs).
    Seq {
        first: u64,
        count: u64,
    },
}

/// What makes a whole fixture unreadable.
enum Fatal {
    None,
    /// `IdsError::MissingIdColumn` naming the file, with these header columns, and a hint containing
    /// this text (`""`: no hint).
    MissingIdColumn {
        columns: &'static [&'static str],
        hint: &'static str,
    },
}

struct Row {
    file: &'static str,
    ids: Ids,
    /// Every reject, in order: (physical line, reason).
    rejects: &'static [(u64, &'static str)],
    blank_lines: u64,
    fatal: Fatal,
}

const fn row(
    file: &'static str,
    ids: &'static [u64],
    rejects: &'static [(u64, &'static str)],
    blank_lines: u64,
) -> Row {
    Row {
        file,
        ids: Ids::List(ids),
        rejects,
        blank_lines,
        fatal: Fatal::None,
    }
}

const fn fatal(file: &'static str, columns: &'static [&'static str], hint: &'static str) -> Row {
    Row {
        file,
        ids: Ids::List(&[]),
        rejects: &[],
        blank_lines: 0,
        fatal: Fatal::MissingIdColumn { columns, hint },
    }
}

const fn gzip_cut(
    file: &'static str,
    first: u64,
    count: u64,
    rejects: &'static [(u64, &'static str)],
) -> Row {
    Row {
        file,
        ids: Ids::Seq { first, count },
        rejects,
        blank_lines: 0,
        fatal: Fatal::None,
    }
}

/// One row per file of `fixtures/bad/` (README.md and make.py aside).
#[rustfmt::skip]
const FIXTURES: &[Row] = &[
    // Encodings and bytes.
    row("binary-junk.bin", &[], &[(1, UTF8), (2, NAN), (3, NAN), (4, NAN), (5, UTF8)], 0),
    row("bom.txt", &[A, B], &[], 0),
    row("bom-mid-file.txt", &[A], &[(2, NAN)], 0),
    row("bom-header.csv", &[A], &[], 0),
    row("crlf.txt", &[A, B, C], &[], 1),
    row("utf16le.txt", &[A, B], &[], 0),
    row("utf16be.txt", &[A, B], &[], 0),
    row("nul-bytes.txt", &[D], &[(1, NAN), (2, NAN), (3, NAN), (4, NAN), (6, NAN)], 0),
    row("unicode-digits.txt", &[A], &[(1, NAN), (2, NAN), (3, NAN)], 0),
    // Numbers that are not Tweet IDs.
    row("scientific.txt", &[], &[(1, reason::SCIENTIFIC), (2, reason::SCIENTIFIC), (3, reason::SCIENTIFIC), (4, reason::SCIENTIFIC)], 0),
    row("scientific.csv", &[A], &[(2, reason::SCIENTIFIC)], 0),
    row("decimals.txt", &[], &[(1, reason::DECIMAL), (2, reason::DECIMAL), (3, reason::DECIMAL), (4, reason::DECIMAL)], 0),
    row("negatives.txt", &[], &[(1, reason::NEGATIVE), (2, reason::NEGATIVE), (3, reason::NEGATIVE), (4, reason::NEGATIVE), (5, NAN)], 0),
    row("overflow.txt", &[], &[(1, reason::OUT_OF_RANGE), (2, reason::OUT_OF_RANGE), (3, NAN)], 0),
    row("above-i64.txt", &[i64::MAX as u64], &[(2, reason::ABOVE_I64), (3, reason::ABOVE_I64)], 0),
    row("zero.txt", &[A, B], &[(1, reason::ZERO), (2, reason::ZERO), (3, reason::ZERO)], 0),
    row("thousands-separators.txt", &[], &[(1, reason::THOUSANDS), (2, reason::THOUSANDS), (3, NAN), (4, NAN), (5, NAN)], 0),
    row("plus-sign.txt", &[], &[(1, reason::PLUS_SIGN), (2, NAN), (3, NAN), (4, reason::SCIENTIFIC)], 0),
    row("duplicates.txt", &[A, A, B, A], &[], 0),
    // Layout.
    row("empty.txt", &[], &[], 0),
    row("empty.csv", &[], &[], 0),
    row("blank-lines-only.txt", &[], &[], 5),
    row("tabs-and-spaces.txt", &[A, B, C, D], &[(5, NAN), (6, NAN), (7, NAN)], 1),
    row("header-in-txt.txt", &[A, B], &[(1, NAN)], 0),
    row("urls.txt", &[A, B, C, A, B, C], &[(4, reason::NOT_A_TWEET_URL), (7, reason::NOT_A_TWEET_URL)], 0),
    // CSV. The parser hides truly blank lines; only all-empty rows such as `,` count as blank.
    row("header-only.csv", &[], &[], 0),
    row("quoted-fields.csv", &[A, B, C], &[(6, reason::EMPTY), (7, reason::THOUSANDS)], 0),
    row("semicolons.csv", &[A, B], &[], 0),
    fatal("semicolons-no-id-column.csv", &["tweet;user"], "semicolon-separated?"),
    row("mixed-separators.csv", &[A, D], &[(3, NAN), (4, NAN)], 0),
    row("ragged-rows.csv", &[A, B, C], &[(3, "missing column tweet_id")], 1),
    fatal("missing-id-column.csv", &["tweet", "user"], ""),
    fatal("no-header.csv", &["1790000000000000001"], "is the header row missing?"),
    row("both-id-columns.csv", &[A], &[], 0),
    row("lone-cr.csv", &[A, B], &[(3, NAN)], 0),
    row("excel-formula.csv", &[C], &[(2, NAN), (3, NAN)], 0),
    row("unterminated-quote.csv", &[B, C], &[(2, "unterminated quote from line 2")], 0),
    fatal("xlsx-renamed.csv", &["PK\u{3}\u{4}\u{14}\0\u{6}\0\u{8}\0\0\0!\0\u{FFFD}U0#\u{FFFD}\0\0\0L\u{2}\0\0\u{13}\0\u{8}\u{2}[Content_Types].xml \u{FFFD}\u{4}\u{2}(\u{FFFD}\0\u{2}"], ""),
    // JSON lines.
    row("numbers-beyond-2-53.jsonl", &[A, 9_007_199_254_740_993, B, i64::MAX as u64], &[(5, reason::ABOVE_I64), (6, reason::OUT_OF_RANGE)], 0),
    row("activity-streams.jsonl", &[A, B], &[(3, reason::EMPTY), (4, NAN), (5, reason::SCIENTIFIC)], 0),
    row("colon-strings.jsonl", &[], &[(1, NAN), (2, NAN), (3, NAN)], 0),
    row("float-ids.jsonl", &[], &[(1, reason::NOT_AN_INTEGER), (2, reason::NOT_AN_INTEGER), (3, reason::NOT_AN_INTEGER), (4, reason::NEGATIVE), (5, reason::NEGATIVE), (6, reason::ZERO), (7, reason::OUT_OF_RANGE)], 0),
    row("invalid-json.jsonl", &[A, B], &[(2, BAD_JSON), (3, BAD_JSON), (4, BAD_JSON), (5, reason::NOT_AN_OBJECT), (6, reason::NOT_AN_OBJECT), (7, reason::NOT_AN_OBJECT), (8, "unexpected JSON: duplicate field `id`*")], 0),
    row("no-id-field.jsonl", &[A, B], &[(1, reason::NO_ID_FIELD), (2, reason::NO_ID_FIELD), (4, reason::NO_ID_FIELD), (6, reason::NO_ID_FIELD), (7, reason::ID_WRONG_TYPE)], 0),
    row("x-api-v2.jsonl", &[A, B, D], &[(3, reason::NO_ID_FIELD), (4, reason::NO_ID_FIELD)], 0),
    row("array.json", &[], &[(1, BAD_JSON), (2, BAD_JSON), (3, reason::NOT_AN_OBJECT), (4, BAD_JSON)], 0),
    row("deep-nesting.jsonl", &[A, B], &[(2, "invalid JSON: recursion limit exceeded*")], 0),
    // gzip.
    gzip_cut("truncated.txt.gz", A, 40, &[(41, "truncated or corrupt gzip stream after line 40")]),
    gzip_cut("truncated.csv.gz", A, 10, &[(12, "truncated or corrupt gzip stream after line 11")]),
    row("corrupt.txt.gz", &[], &[(1, "truncated or corrupt gzip stream after line 0")], 0),
    row("trailing-zeros.txt.gz", &[A, B], &[(3, "truncated or corrupt gzip stream after line 2")], 0),
    row("not-really.gz", &[A, B], &[], 0),
    row("gzip-misnamed.txt", &[A, B], &[], 0),
    row("concatenated.txt.gz", &[A, B], &[], 0),
    row("empty.txt.gz", &[], &[], 0),
];

/// Files of `fixtures/bad/` that document the corpus rather than belong to it.
const NOT_FIXTURES: &[&str] = &["README.md", "make.py"];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bad")
}

/// What a reader produced, in the shape of a [`Row`].
#[derive(Debug, Default)]
struct Seen {
    ids: Vec<u64>,
    rejects: Vec<(u64, String)>,
    errors: Vec<IdsError>,
}

impl Seen {
    fn push(&mut self, item: Result<Positioned, IdsError>) {
        match item {
            Ok(p) => match p.record {
                Record::Id { id, .. } => self.ids.push(id),
                Record::Reject(r) => {
                    assert_eq!(r.line, p.line, "reject line vs position: {r:?}");
                    assert!(r.content.chars().count() <= MAX_REJECT_CHARS, "{r:?}");
                    self.rejects.push((r.line, r.reason));
                }
            },
            Err(e) => self.errors.push(e),
        }
    }
}

/// Reads inputs the way the CLI does: sources from `expand_inputs`, default options.
fn read(specs: &[PathBuf]) -> (Seen, Counters, Vec<InputSource>) {
    let sources = expand_inputs(specs).expect("expand inputs");
    let mut reader = Reader::new(sources.clone(), ReadOptions::default());
    let mut seen = Seen::default();
    for item in reader.by_ref() {
        seen.push(item);
    }
    (seen, reader.counters(), sources)
}

fn reason_matches(got: &str, want: &str) -> bool {
    match want.strip_suffix('*') {
        Some(prefix) => got.starts_with(prefix),
        None => got == want,
    }
}

impl Row {
    fn expected_ids(&self) -> Vec<u64> {
        match self.ids {
            Ids::List(ids) => ids.to_vec(),
            Ids::Seq { first, count } => (first..first + count).collect(),
        }
    }

    /// `Counters::lines` counts lines read: IDs and rejects, except the reject that stands for a broken
    /// gzip stream, which is not a line.
    fn expected_lines(&self) -> u64 {
        let broken_stream = self
            .rejects
            .iter()
            .filter(|(_, why)| why.starts_with(GZIP_BROKEN))
            .count();
        (self.expected_ids().len() + self.rejects.len() - broken_stream) as u64
    }

    fn expected_errors(&self) -> u64 {
        match self.fatal {
            Fatal::None => 0,
            Fatal::MissingIdColumn { .. } => 1,
        }
    }

    /// Checks everything a row says except blank lines, which only the counters know.
    fn check(&self, path: &Path, seen: &Seen) {
        let file = self.file;
        assert_eq!(seen.ids, self.expected_ids(), "{file}: IDs");
        let rejects_ok = seen.rejects.len() == self.rejects.len()
            && seen
                .rejects
                .iter()
                .zip(self.rejects)
                .all(|((gl, gr), (wl, wr))| gl == wl && reason_matches(gr, wr));
        assert!(
            rejects_ok,
            "{file}: rejects\n  got:  {:?}\n  want: {:?}",
            seen.rejects, self.rejects
        );
        assert_eq!(
            seen.errors.len() as u64,
            self.expected_errors(),
            "{file}: errors {:?}",
            seen.errors
        );
        if let Fatal::MissingIdColumn { columns, hint } = self.fatal {
            let err = &seen.errors[0];
            let IdsError::MissingIdColumn {
                path: err_path,
                columns: got_columns,
                hint: got_hint,
                ..
            } = err
            else {
                panic!("{file}: expected MissingIdColumn, got {err:?}");
            };
            assert_eq!(err_path, &path.display().to_string(), "{file}");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
            assert_eq!(got_columns, columns, "{file}: header columns");
            if hint.is_empty() {
                assert!(got_hint.is_empty(), "{file}: hint {got_hint:?}");
            } else {
                assert!(got_hint.contains(hint), "{file}: hint {got_hint:?}");
            }
        }
    }
}

#[test]
fn each_fixture_reads_as_expected() {
    let dir = fixtures_dir();
    for row in FIXTURES {
        let path = dir.join(row.file);
        assert!(
            path.is_file(),
            "{} is missing: run fixtures/bad/make.py",
            row.file
        );
        let (seen, counters, _) = read(std::slice::from_ref(&path));
        row.check(&path, &seen);
        assert_eq!(
            counters,
            Counters {
                lines: row.expected_lines(),
                blank_lines: row.blank_lines,
                ids: seen.ids.len() as u64,
                rejects: seen.rejects.len() as u64,
                errors: row.expected_errors(),
            },
            "{}: counters",
            row.file
        );
    }
}

#[test]
fn corpus_is_large_and_every_file_has_a_row() {
    assert!(FIXTURES.len() >= 24);
    let table: BTreeSet<&str> = FIXTURES.iter().map(|r| r.file).collect();
    assert_eq!(table.len(), FIXTURES.len(), "a file has two rows");
    let on_disk: BTreeSet<String> = fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.') && !NOT_FIXTURES.contains(&n.as_str()))
        .collect();
    let table: BTreeSet<String> = table.into_iter().map(String::from).collect();
    assert_eq!(on_disk, table, "fixtures/bad/ and FIXTURES differ");
}

/// All fixtures in one reader, as a folder input: per-file results are unchanged by what came before,
/// and the totals are the sums of the rows.
#[test]
fn whole_folder_in_one_reader() {
    let dir = fixtures_dir();
    let sources: Vec<InputSource> = expand_inputs(std::slice::from_ref(&dir))
        .unwrap()
        .into_iter()
        .filter(|s| {
            let name = s.path().unwrap().file_name().unwrap().to_str().unwrap();
            !NOT_FIXTURES.contains(&name)
        })
        .collect();
    assert_eq!(sources.len(), FIXTURES.len());
    let index_of: BTreeMap<String, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.display_name(), i))
        .collect();

    let mut reader = Reader::new(sources.clone(), ReadOptions::default());
    let mut per_source: Vec<Seen> = sources.iter().map(|_| Seen::default()).collect();
    for item in reader.by_ref() {
        let index = match &item {
            Ok(p) => p.source_index,
            Err(IdsError::MissingIdColumn { path, .. }) => index_of[path],
            Err(e) => panic!("unexpected error {e}"),
        };
        per_source[index].push(item);
    }

    let mut want = Counters::default();
    for row in FIXTURES {
        let path = dir.join(row.file);
        let index = index_of[&path.display().to_string()];
        row.check(&path, &per_source[index]);
        let ids = row.expected_ids().len() as u64;
        want.ids += ids;
        want.rejects += row.rejects.len() as u64;
        want.lines += row.expected_lines();
        want.blank_lines += row.blank_lines;
        want.errors += row.expected_errors();
    }
    assert_eq!(reader.counters(), want);
}

/// Resuming after any position of the whole corpus yields exactly the rest, so positions stay unique
/// and increasing even on junk, CR-only and UTF-16 input.
#[test]
fn whole_folder_resumes_after_every_position() {
    let sources = expand_inputs(&[fixtures_dir()]).unwrap();
    let render = |item: Result<Positioned, IdsError>| match item {
        Ok(p) => Ok(p),
        Err(e) => Err(e.to_string()),
    };
    let all: Vec<_> = Reader::new(sources.clone(), ReadOptions::default())
        .map(render)
        .collect();
    let positions: Vec<(usize, u64)> = all
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|p| (p.source_index, p.line)))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions not increasing"
    );
    for (k, item) in all.iter().enumerate() {
        let Ok(p) = item else { continue };
        let mut reader = Reader::new(sources.clone(), ReadOptions::default());
        reader.skip_to(p.source_index, p.line);
        let rest: Vec<_> = reader.map(render).collect();
        assert_eq!(
            rest,
            all[k + 1..],
            "resuming after {:?}",
            (p.source_index, p.line)
        );
    }
}

/// Any fixture forced into any format: no panic, and the counters agree with what came out.
#[test]
fn every_fixture_in_every_format_never_panics() {
    let sources = expand_inputs(&[fixtures_dir()]).unwrap();
    for format in [Format::Plain, Format::Csv, Format::Jsonl] {
        for source in &sources {
            let options = ReadOptions {
                format: Some(format),
                ..Default::default()
            };
            let mut reader = Reader::new(vec![source.clone()], options);
            let mut seen = Seen::default();
            for item in reader.by_ref() {
                seen.push(item);
            }
            let c = reader.counters();
            assert_eq!(
                (c.ids, c.rejects, c.errors),
                (
                    seen.ids.len() as u64,
                    seen.rejects.len() as u64,
                    seen.errors.len() as u64
                ),
                "{source} as {format:?}"
            );
            assert!(
                seen.errors.len() <= 1,
                "{source} as {format:?}: {:?}",
                seen.errors
            );
        }
    }
}

const TEN_MB: usize = 10 * 1024 * 1024;

/// A 10 MB line (generated here, never committed) in every format: rejected as "line too long" with a
/// short excerpt, and reading carries on with the next line.
#[test]
fn ten_megabyte_line_is_rejected_and_reading_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "1".repeat(TEN_MB);
    let long_json = format!("{{\"id\":\"{}\"}}", "7".repeat(TEN_MB));
    let gzip = |data: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    };
    let plain = format!("{A}\n{long}\n{B}\n");
    let cases: Vec<(&str, Vec<u8>, u64, &str)> = vec![
        ("long-line.txt", plain.clone().into_bytes(), 2, "111"),
        (
            "long-line-crlf.txt",
            format!("{A}\r\n{long}\r\n{B}\r\n").into_bytes(),
            2,
            "111",
        ),
        (
            "long-line.csv",
            format!("tweet_id\n{A}\n{long}\n{B}\n").into_bytes(),
            3,
            "111",
        ),
        (
            "long-line.jsonl",
            format!("{{\"id\":{A}}}\n{long_json}\n{{\"id\":{B}}}\n").into_bytes(),
            2,
            "{\"id\":\"777",
        ),
        ("long-line.txt.gz", gzip(plain.as_bytes()), 2, "111"),
    ];
    for (name, data, long_line, excerpt) in cases {
        let path = tmp.path().join(name);
        fs::write(&path, &data).unwrap();
        drop(data);
        let sources = expand_inputs(std::slice::from_ref(&path)).unwrap();
        let items: Vec<Positioned> = Reader::new(sources, ReadOptions::default())
            .map(|r| r.unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect();
        assert_eq!(items.len(), 3, "{name}: {items:?}");
        assert_eq!(
            items[0].record,
            Record::Id {
                id: A,
                account: None,
                group: None,
            },
            "{name}"
        );
        assert_eq!(
            items[2].record,
            Record::Id {
                id: B,
                account: None,
                group: None,
            },
            "{name}"
        );
        assert_eq!(items[2].line, long_line + 1, "{name}");
        let Record::Reject(r) = &items[1].record else {
            panic!("{name}: {:?}", items[1]);
        };
        assert_eq!(
            (r.line, r.reason.as_str()),
            (long_line, reason::LINE_TOO_LONG),
            "{name}"
        );
        assert!(r.content.starts_with(excerpt), "{name}");
        assert_eq!(r.content.chars().count(), MAX_REJECT_CHARS, "{name}");
    }

    // A file that is one 10 MB line with no terminator at all.
    let path = tmp.path().join("one-line.txt");
    fs::write(&path, &long).unwrap();
    let (seen, counters, _) = read(&[path]);
    assert_eq!(seen.rejects, vec![(1, reason::LINE_TOO_LONG.to_string())]);
    assert_eq!((counters.ids, counters.lines), (0, 1));
}

/// The limit is on content bytes: a line of exactly MAX_LINE_BYTES is read (and judged on its content),
/// one byte more is "line too long", and a CRLF terminator does not count.
#[test]
fn line_length_limit_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let at_limit = "9".repeat(MAX_LINE_BYTES);
    let over = "9".repeat(MAX_LINE_BYTES + 1);
    let spaces = " ".repeat(MAX_LINE_BYTES);
    let path = tmp.path().join("limit.txt");
    fs::write(&path, format!("{at_limit}\r\n{over}\r\n{spaces}\n{A}\n")).unwrap();
    let (seen, counters, _) = read(&[path]);
    assert_eq!(
        seen.rejects,
        vec![
            (1, reason::OUT_OF_RANGE.to_string()),
            (2, reason::LINE_TOO_LONG.to_string())
        ]
    );
    assert_eq!(seen.ids, vec![A]);
    assert_eq!(counters.blank_lines, 1);
}

/// The CSV `account` column survives a BOM, odd header spelling, quoting, `;` separators and a stray
/// quote.
#[test]
fn csv_accounts_survive_bad_layouts() {
    let dir = fixtures_dir();
    for (file, want) in [
        ("bom-header.csv", vec![(A, "brand")]),
        ("both-id-columns.csv", vec![(A, "brand")]),
        ("lone-cr.csv", vec![(A, "brand"), (B, "brand")]),
        ("semicolons.csv", vec![(A, "brand"), (B, "brand")]),
        ("unterminated-quote.csv", vec![(B, "brand"), (C, "brand")]),
        (
            "quoted-fields.csv",
            vec![(A, "brand"), (B, "brand"), (C, "brand")],
        ),
    ] {
        let sources = expand_inputs(&[dir.join(file)]).unwrap();
        let got: Vec<(u64, String)> = Reader::new(sources, ReadOptions::default())
            .filter_map(|r| match r.unwrap().record {
                Record::Id { id, account, .. } => Some((id, account.expect("an account"))),
                Record::Reject(_) => None,
            })
            .collect();
        let want: Vec<(u64, String)> = want.into_iter().map(|(i, a)| (i, a.into())).collect();
        assert_eq!(got, want, "{file}");
    }
}
