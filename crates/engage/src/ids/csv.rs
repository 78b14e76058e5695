//! CSV: the header ([`open_csv`]: the ID, account and group columns, `;`-separated
//! files from European Excel), then one row at a time ([`CsvState`]'s
//! [`Source::step`]). The parser reads through [`CsvFeed`], which bounds a
//! record (see `csv_window.rs`).

use super::csv_window::CsvFeed;
use super::id::parse_id_or_url;
use super::lines::LineSource;
use super::reader::{Sink, Source};
use super::{reason, trim, IdsError, ReadOptions, UTF8_BOM};

/// A CSV source after its header: the parser and the columns it names.
pub(super) struct CsvState {
    rdr: csv::Reader<CsvFeed>,
    /// Stream offset (in [`CsvFeed`] terms) where `rdr` started: the parser
    /// is rebuilt after an unterminated quote and counts from zero again.
    base: u64,
    record: csv::ByteRecord,
    id_col: usize,
    id_name: String,
    account_col: Option<usize>,
    group_col: Option<usize>,
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

    /// What the source holds for the record in progress: the feed's window,
    /// spans and line buffer, and the parser's record.
    #[cfg(test)]
    pub(super) fn buffered_bytes(&self) -> usize {
        self.rdr.get_ref().buffered_bytes() + self.record.as_slice().len()
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

/// Reads the header of a CSV source and finds its ID column. `Ok(None)`
/// means an empty input (nothing to read).
pub(super) fn open_csv(
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
            let group_col = match &options.group_column {
                Some(g) => Some(find(g.trim()).ok_or_else(|| IdsError::MissingIdColumn {
                    path: name.to_string(),
                    wanted: format!("`{}` (--group-column)", g.trim()),
                    columns: columns.clone(),
                    hint: String::new(),
                })?),
                None => find("group"),
            };
            let end = base + rdr.position().byte();
            rdr.get_mut().record_start = end;
            return Ok(Some(CsvState {
                rdr,
                base,
                record: csv::ByteRecord::new(),
                id_col,
                id_name,
                account_col,
                group_col,
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

impl Source for CsvState {
    fn step(&mut self, sink: &mut Sink<'_>) -> bool {
        let result = self.rdr.read_byte_record(&mut self.record);
        let complete = self.rdr.get_ref().lines.line;
        let step = match result {
            Ok(true) => {
                let after_previous =
                    self.base + self.record.position().map_or(0, csv::Position::byte);
                let end = self.base + self.rdr.position().byte();
                let feed = self.rdr.get_mut();
                let start = feed.line_at(after_previous);
                feed.record_start = end;
                CsvStep::Row(start)
            }
            Ok(false) => CsvStep::End,
            Err(e) => match self.rdr.get_mut().abandon_unterminated() {
                Some((line, content)) => {
                    self.restart();
                    CsvStep::Unterminated(line, content)
                }
                None => CsvStep::Failed(e),
            },
        };
        // Over-long lines were blanked out of the CSV stream as the feed read
        // them, possibly ahead of the parser; emit those before this row.
        let drain_before = match step {
            CsvStep::Row(start) | CsvStep::Unterminated(start, _) => start,
            CsvStep::End | CsvStep::Failed(_) => u64::MAX,
        };
        let long = &mut self.rdr.get_mut().long_lines;
        while long.front().is_some_and(|(l, _)| *l < drain_before) {
            let (line, content) = long.pop_front().expect("checked non-empty");
            if !sink.skipped(line) {
                sink.counters.lines += 1;
                sink.reject(line, content.as_bytes(), reason::LINE_TOO_LONG.to_string());
            }
        }
        let start = match step {
            CsvStep::Row(start) => start,
            CsvStep::End => return true,
            CsvStep::Unterminated(line, content) => {
                if !sink.skipped(line) {
                    sink.counters.lines += 1;
                    let why = format!("{} from line {line}", reason::UNTERMINATED_QUOTE);
                    sink.reject(line, content.as_bytes(), why);
                }
                return false;
            }
            CsvStep::Failed(e) => {
                match csv_error(e, sink.name(), complete) {
                    IdsError::Read { source, .. } => sink.read_failure(source, complete),
                    other => sink.error(other),
                }
                return true;
            }
        };
        if sink.skipped(start) {
            return false;
        }
        let record = &self.record;
        // Spreadsheets export empty rows as `,,,`: as blank as a blank line.
        if record.iter().all(|f| trim(f).is_empty()) {
            sink.counters.blank_lines += 1;
            return false;
        }
        sink.counters.lines += 1;
        match record.get(self.id_col) {
            None => {
                let row = record.iter().collect::<Vec<_>>().join(&b","[..]);
                let why = format!("missing column {}", self.id_name);
                sink.reject(start, &row, why);
            }
            Some(field) => {
                let text = trim(field);
                match parse_id_or_url(text) {
                    Ok(id) => {
                        let account = self
                            .account_col
                            .and_then(|i| record.get(i))
                            .map(trim)
                            .filter(|a| !a.is_empty())
                            .map(|a| String::from_utf8_lossy(a).into_owned());
                        let group = self
                            .group_col
                            .and_then(|i| record.get(i))
                            .map(trim)
                            .filter(|g| !g.is_empty())
                            .map(|g| String::from_utf8_lossy(g).into_owned());
                        sink.id(start, id, account, group);
                    }
                    Err(why) => sink.reject(start, text, why.to_string()),
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testutil::*;
    use crate::ids::{InputSource, Reader, Record};
    use tempfile::TempDir;

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
    fn csv_group_column_default_named_and_missing() {
        let dir = TempDir::new().unwrap();
        let group_of = |items: &[crate::ids::Positioned]| -> Vec<(u64, Option<String>)> {
            items
                .iter()
                .map(|p| match &p.record {
                    Record::Id { id, group, .. } => (*id, group.clone()),
                    Record::Reject(r) => panic!("{r:?}"),
                })
                .collect()
        };
        // `group` by default, case-insensitive; a blank cell is no group; the cell is kept whole
        // (split at `|` by the ingest).
        let items = read_file(
            dir.path(),
            "a.csv",
            b"tweet_id,Group\n1, brand \n2,\n3,\"brand|spring\"\n4\n",
        );
        assert_eq!(
            group_of(&items),
            vec![
                (1, Some("brand".into())),
                (2, None),
                (3, Some("brand|spring".into())),
                (4, None)
            ]
        );
        // --group-column names another; `group` is then an ordinary column.
        let path = write(
            dir.path(),
            "b.csv",
            b"tweet_id,group,campaign\n5,x,spring\n",
        );
        let options = ReadOptions {
            group_column: Some("Campaign".into()),
            ..Default::default()
        };
        let items = read_all(std::slice::from_ref(&path), options.clone());
        assert_eq!(group_of(&items), vec![(5, Some("spring".into()))]);
        // A named column the header lacks stops that input, naming the file and the flag.
        let path = write(dir.path(), "c.csv", b"tweet_id,group\n6,x\n");
        let mut r = Reader::new(vec![InputSource::File(path)], options);
        let err = r.next_record().unwrap().unwrap_err().to_string();
        assert!(
            err.contains("c.csv") && err.contains("--group-column"),
            "{err}"
        );
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
                Record::Id { id, account, .. } => (p.line, Ok((*id, account.clone()))),
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
                account: Some("b\nc".into()),
                group: None,
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
                account: None,
                group: None,
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
    fn semicolon_csv_is_read_when_the_header_names_an_id_column() {
        let dir = TempDir::new().unwrap();
        let data = b"\xEF\xBB\xBF\r\ntweet_id;account\r\n1;a\r\n\"2\";\"b;c\"\r\n3,x;d\r\n";
        let items = read_file(dir.path(), "s.csv", data);
        let got: Vec<_> = items
            .iter()
            .map(|p| match &p.record {
                Record::Id { id, account, .. } => (p.line, Ok((*id, account.clone()))),
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
}
