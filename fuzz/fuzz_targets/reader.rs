//! The streaming ID reader (`engage::ids::Reader`) on arbitrary file contents.
//!
//! The reader only reads files (or stdin), so each input is written to one fixed file per process
//! in `/dev/shm` (RAM, no disk wear) and read back with each format forced: as it is, gzip-compressed
//! (stored blocks of a size chosen from the input) and that gzip cut short.
//!
//! Asserts, for Plain, CSV and JSON lines:
//! - no panic, and no `Err` but a CSV header without an ID column or with an unterminated quote (a
//!   regular file in RAM never fails to read; a broken gzip stream is a reject);
//! - every `Record::Id` is in `1..=i64::MAX`; positions strictly increase; every line is at least 1;
//! - the counters agree with what was emitted; reject text is cut to `MAX_REJECT_CHARS`;
//! - plain text equals a simple model: UTF-16 decoded by the standard library, split at LF, CRLF or
//!   a lone CR, a BOM dropped on line 1, trimmed, blanks skipped, `parse_id_or_url` on the rest;
//! - JSON lines emit exactly one record on the same lines as plain text;
//! - gzip is transparent: `gzip(data)` reads to the same records as `data` (unless `data` itself starts
//!   with the gzip magic); a truncated `gzip(data)` reads to a prefix of them plus at most one
//!   "truncated or corrupt gzip stream" reject;
//! - resume: `skip_to(p)` after a record `p` yields exactly the records after it.
//!
//! An input containing the marker `@@LONG@@` has it replaced by a line just over `MAX_LINE_BYTES`,
//! so the over-long-line paths run without libFuzzer having to grow inputs to 1 MiB (plain text and
//! CSV only, as it is: the other variants would add nothing but time).
#![no_main]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use engage::ids::{self, Format, InputSource, Positioned, ReadOptions, Reader, Record};
use libfuzzer_sys::fuzz_target;

static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = PathBuf::from("/dev/shm");
    let dir = if dir.is_dir() {
        dir
    } else {
        std::env::temp_dir()
    };
    // libFuzzer exits without running destructors, so each process removes the files of processes
    // that are gone instead (`/proc/<pid>` no longer exists).
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    dir.join(format!("{PREFIX}{}", std::process::id()))
});

const PREFIX: &str = "engage-fuzz-reader-";

const LONG_MARKER: &[u8] = b"@@LONG@@";
const REASON_TRUNCATED: &str = "truncated or corrupt gzip stream";

fuzz_target!(|data: &[u8]| {
    let expanded;
    let long = find(data, LONG_MARKER);
    let data = match long {
        Some(i) => {
            let mut v = Vec::with_capacity(data.len() + ids::MAX_LINE_BYTES + 16);
            v.extend_from_slice(&data[..i]);
            v.resize(v.len() + ids::MAX_LINE_BYTES + 1, b'7');
            v.extend_from_slice(&data[i + LONG_MARKER.len()..]);
            expanded = v;
            &expanded[..]
        }
        None => data,
    };
    let hash = data.iter().fold(data.len(), |h, &b| {
        h.wrapping_mul(31).wrapping_add(b as usize)
    });
    // Stored deflate blocks of a size chosen from the input: cheap, and a cut lands in the data.
    let gz = gzip_stored(data, 1 + hash % 200);
    // A cut inside the compressed stream, chosen from the input so a crash replays.
    let cut = if gz.len() > 1 {
        1 + hash / 7 % (gz.len() - 1)
    } else {
        0
    };
    // Input that is gzip already is decompressed by the reader, so the models do not apply.
    let is_gzip = data.starts_with(&[0x1f, 0x8b]);
    const FORMATS: [Format; 3] = [Format::Plain, Format::Csv, Format::Jsonl];

    write(data);
    // A megabyte line costs ~10 ms a read here, so an over-long input only goes through what
    // differs: plain text against the model, and CSV (whose over-long lines are queued apart from
    // the rows) with a resume. JSON lines share the plain line splitter; gzip adds nothing.
    if long.is_some() {
        let plain = read(Format::Plain);
        check_invariants(&plain);
        if !is_gzip {
            assert_eq!(summary(&plain), plain_model(data), "plain text vs model");
        }
        let csv = read(Format::Csv);
        check_invariants(&csv);
        check_resume(data, Format::Csv, &csv);
        return;
    }
    let raw = FORMATS.map(|format| {
        let records = read(format);
        check_invariants(&records);
        check_resume(data, format, &records);
        records
    });
    if !is_gzip {
        assert_eq!(summary(&raw[0]), plain_model(data), "plain text vs model");
    }
    let lines = |r: &[Positioned]| r.iter().map(|p| p.line).collect::<Vec<_>>();
    assert_eq!(
        lines(&raw[2]),
        lines(&raw[0]),
        "JSON lines vs plain text lines"
    );

    write(&gz);
    for (format, raw) in FORMATS.iter().zip(&raw) {
        let whole = read(*format);
        check_invariants(&whole);
        if !is_gzip {
            assert_eq!(&whole, raw, "gzip(data) vs data, {format:?}");
        }
    }

    write(&gz[..cut]);
    for (format, raw) in FORMATS.iter().zip(&raw) {
        let truncated = read(*format);
        check_invariants(&truncated);
        // A cut before the second byte leaves no gzip magic: that is plain text, not a stream.
        if !is_gzip && cut >= 2 {
            let head = match truncated.split_last() {
                Some((last, head)) if is_truncation_reject(last) => head,
                _ => &truncated[..],
            };
            assert!(
                raw.starts_with(head),
                "truncated gzip is not a prefix, {format:?}: {truncated:?} vs {raw:?}"
            );
            // Only the stream's end may be reported, and only once.
            assert!(head.iter().all(|p| !is_truncation_reject(p)));
        }
    }
});

fn write(bytes: &[u8]) {
    let mut f = std::fs::File::create(&*PATH).expect("create the fuzz input file");
    f.write_all(bytes).expect("write the fuzz input file");
}

/// Reads the file last written.
fn read(format: Format) -> Vec<Positioned> {
    let mut reader = Reader::new(
        vec![InputSource::File(PATH.clone())],
        ReadOptions {
            format: Some(format),
            id_column: None,
        },
    );
    let mut out = Vec::new();
    let mut errors = 0;
    for item in reader.by_ref() {
        match item {
            Ok(p) => out.push(p),
            // A CSV without an ID column is a whole-file error, which is fine; anything else on a
            // regular file in RAM is not expected.
            Err(ids::IdsError::MissingIdColumn { .. }) if format == Format::Csv => errors += 1,
            Err(ids::IdsError::Csv { .. }) if format == Format::Csv => errors += 1,
            Err(e) => panic!("unexpected reader error ({format:?}): {e}"),
        }
    }
    let c = reader.counters();
    let ids_out = out
        .iter()
        .filter(|p| matches!(p.record, Record::Id { .. }))
        .count() as u64;
    assert_eq!(c.ids, ids_out, "counters.ids");
    assert_eq!(c.rejects, out.len() as u64 - ids_out, "counters.rejects");
    assert_eq!(c.errors, errors, "counters.errors");
    out
}

fn check_invariants(records: &[Positioned]) {
    for p in records {
        assert_eq!(p.source_index, 0);
        assert!(p.line >= 1, "line 0: {p:?}");
        match &p.record {
            Record::Id { id, .. } => {
                assert!(*id >= 1 && *id <= i64::MAX as u64, "ID out of range: {p:?}")
            }
            Record::Reject(r) => {
                assert_eq!(r.line, p.line, "reject line vs position");
                assert!(r.content.chars().count() <= ids::MAX_REJECT_CHARS);
                assert!(!r.reason.is_empty());
            }
        }
    }
    for w in records.windows(2) {
        assert!(
            (w[0].source_index, w[0].line) < (w[1].source_index, w[1].line),
            "positions do not strictly increase: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

/// Resuming after one record (chosen from the data) yields exactly the rest.
fn check_resume(data: &[u8], format: Format, all: &[Positioned]) {
    if all.is_empty() {
        return;
    }
    let k = data.len() % all.len();
    let after = &all[k];
    let mut reader = Reader::new(
        vec![InputSource::File(PATH.clone())],
        ReadOptions {
            format: Some(format),
            id_column: None,
        },
    );
    reader.skip_to(after.source_index, after.line);
    let rest: Vec<Positioned> = reader.filter_map(Result::ok).collect();
    assert_eq!(rest, all[k + 1..], "resume after {after:?} ({format:?})");
}

fn is_truncation_reject(p: &Positioned) -> bool {
    matches!(&p.record, Record::Reject(r) if r.reason.starts_with(REASON_TRUNCATED))
}

type Summary = Vec<(u64, Result<u64, String>)>;

fn summary(records: &[Positioned]) -> Summary {
    records
        .iter()
        .map(|p| {
            let r = match &p.record {
                Record::Id { id, .. } => Ok(*id),
                Record::Reject(r) => Err(r.reason.clone()),
            };
            (p.line, r)
        })
        .collect()
}

/// What the plain reader should emit, written the obvious way: UTF-16 (by its BOM) decoded with
/// the standard library, replacing unpaired surrogates and a final odd byte; lines split at LF, CRLF
/// or a lone CR; a UTF-8 BOM dropped from line 1; trimmed; blank lines skipped; the rest read by
/// `parse_id_or_url`.
fn plain_model(data: &[u8]) -> Summary {
    let decoded;
    let data = match data {
        [0xFF, 0xFE, rest @ ..] | [0xFE, 0xFF, rest @ ..] => {
            let big_endian = data[0] == 0xFE;
            let units = rest.chunks_exact(2).map(|p| {
                if big_endian {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    u16::from_le_bytes([p[0], p[1]])
                }
            });
            let mut text: String = char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            if rest.len() % 2 == 1 {
                text.push(char::REPLACEMENT_CHARACTER);
            }
            decoded = text.into_bytes();
            &decoded[..]
        }
        _ => data,
    };
    let mut out = Vec::new();
    let mut line_no = 0u64;
    let mut rest = data;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => {
                (&rest[..i], &rest[i + 2..])
            }
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        line_no += 1;
        // The cap counts a BOM too: it is removed after the line is read.
        if line.len() > ids::MAX_LINE_BYTES {
            out.push((line_no, Err(ids::reason::LINE_TOO_LONG.to_string())));
            continue;
        }
        let line = if line_no == 1 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        out.push((line_no, ids::parse_id_or_url(text).map_err(str::to_string)));
    }
    out
}

/// gzip (RFC 1952) of `data` in stored deflate blocks of `block` bytes (RFC 1951 §3.2.4).
fn gzip_stored(data: &[u8], block: usize) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut chunks = data.chunks(block.clamp(1, 65535)).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let len = chunk.len() as u16;
        out.push(u8::from(chunks.peek().is_none()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
