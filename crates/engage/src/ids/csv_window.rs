//! The CSV record window ([`CsvFeed`]): what the CSV parser reads through, so
//! that the line cap applies to CSV too and a record that never closes its
//! quote is cut at [`MAX_LINE_BYTES`] (or [`MAX_RECORD_LINES`] lines) and
//! read again from its second line (see "Bounds on CSV records" in the `ids`
//! module docs).

use std::collections::VecDeque;
use std::io::{self, Read};

use super::lines::{LineKind, LineSource};
use super::{excerpt, reason, MAX_LINE_BYTES};

/// Feeds the CSV parser line by line so the length cap and BOM handling of
/// [`LineSource`] apply to CSV too. An over-long line is replaced by an
/// empty line (which the parser ignores, keeping line numbers intact) and
/// queued for the reader to report.
///
/// It keeps the bytes of the record in progress in `window`, from the first
/// content byte of the record (`CsvState` sets `record_start` after each
/// row) to the end of the last line read; the parser's own read-ahead is
/// served from it too. That gives the record bound (see the `ids` module
/// docs):
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
pub(super) struct CsvFeed {
    pub(super) lines: LineSource,
    pub(super) delimiter: u8,
    /// Bytes served or about to be, from offset `window_start` on.
    window: Vec<u8>,
    window_start: u64,
    /// Stream offset of the next byte to serve; at most the window's end.
    pub(super) pos: u64,
    /// Stream offset where the parser's record in progress begins (where
    /// the last row ended), kept up to date by `CsvState`.
    pub(super) record_start: u64,
    /// Lines with content (blank lines are never a record's first line).
    spans: VecDeque<LineSpan>,
    /// Over-long lines blanked out of the stream, for `CsvState` to report.
    pub(super) long_lines: VecDeque<(u64, String)>,
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
    pub(super) fn new(lines: LineSource, delimiter: u8) -> CsvFeed {
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
    pub(super) fn empty() -> CsvFeed {
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
    pub(super) fn line_at(&mut self, from: u64) -> u64 {
        let fallback = self.lines.line;
        self.first_content_line(from).map_or(fallback, |s| s.line)
    }

    /// If the last read failed for an unterminated record: its first line
    /// and an excerpt of it, after which the feed serves from the start of
    /// the following line (the caller must restart the parser there).
    pub(super) fn abandon_unterminated(&mut self) -> Option<(u64, String)> {
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
    pub(super) fn rewind_to_record(&mut self) -> u64 {
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
    pub(super) fn buffered_bytes(&self) -> usize {
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
mod tests {
    use super::*;
    use crate::ids::csv::CsvState;
    use crate::ids::testutil::*;
    use crate::ids::{Counters, InputSource, Positioned, ReadOptions, Reader, Record};
    use std::path::Path;
    use tempfile::TempDir;

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

    /// What a CSV reader holds for the record in progress (see
    /// [`CsvState::buffered_bytes`]).
    fn csv_buffered_bytes(reader: &Reader) -> usize {
        reader.active_csv().map_or(0, CsvState::buffered_bytes)
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
                group: None,
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
}
