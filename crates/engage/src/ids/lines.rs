//! Lines: the decoded bytes of a source split into lines with a hard cap on
//! their length ([`LineSource`], which the CSV feed reads too), and the
//! stepping of a line-per-record source ([`step_lines`]), of which a plain
//! text file ([`PlainLines`], one ID or Tweet URL a line) is the first.

use std::io::{self, BufRead};

use super::id::parse_id_or_url;
use super::reader::{Sink, Source};
use super::{reason, trim, MAX_LINE_BYTES, MAX_REJECT_CHARS, UTF8_BOM};

pub(super) enum LineKind {
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
pub(super) struct LineSource {
    inner: Box<dyn BufRead + Send>,
    pub(super) buf: Vec<u8>,
    /// Lines returned so far, i.e. the number of the line now in `buf`.
    pub(super) line: u64,
    /// An error hit while looking past a line's final CR for its LF; the
    /// line itself was complete, so the error belongs to the next call.
    deferred: Option<io::Error>,
}

impl LineSource {
    pub(super) fn new(inner: Box<dyn BufRead + Send>) -> LineSource {
        LineSource {
            inner,
            buf: Vec::with_capacity(256),
            line: 0,
            deferred: None,
        }
    }

    pub(super) fn read_line(&mut self) -> io::Result<Option<LineKind>> {
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

/// A plain text source: one Tweet ID or Tweet URL a line.
pub(super) struct PlainLines(pub(super) LineSource);

impl Source for PlainLines {
    fn step(&mut self, sink: &mut Sink<'_>) -> bool {
        step_lines(&mut self.0, sink, |text| {
            parse_id_or_url(text).map_err(str::to_string)
        })
    }
}

/// Advances a line-per-record source by one line, handing `sink` what it
/// yields: an ID or reject from `parse` (given the trimmed, non-blank line),
/// a reject for an over-long line, nothing for a blank one. Returns `true`
/// when the source is finished.
///
/// Generic over `parse` rather than taking a function pointer, so each
/// format gets its own copy with the parser called directly: this runs once
/// a line.
pub(super) fn step_lines(
    src: &mut LineSource,
    sink: &mut Sink<'_>,
    parse: impl Fn(&[u8]) -> Result<u64, String>,
) -> bool {
    let kind = match src.read_line() {
        Ok(Some(kind)) => kind,
        Ok(None) => return true,
        Err(e) => {
            let complete = src.line;
            sink.read_failure(e, complete);
            return true;
        }
    };
    let line = src.line;
    if sink.skipped(line) {
        return false;
    }
    match kind {
        LineKind::TooLong => {
            sink.counters.lines += 1;
            sink.reject(line, &src.buf, reason::LINE_TOO_LONG.to_string());
        }
        LineKind::Line => {
            let text = trim(&src.buf);
            if text.is_empty() {
                sink.counters.blank_lines += 1;
            } else {
                sink.counters.lines += 1;
                match parse(text) {
                    Ok(id) => sink.id(line, id, None, None),
                    Err(why) => sink.reject(line, text, why),
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testutil::*;
    use crate::ids::{Counters, InputSource, ReadOptions, Reader, Record, Reject};
    use proptest::prelude::*;
    use std::io::BufReader;
    use tempfile::TempDir;

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
