//! The [`Reader`]: opens one source at a time and pulls it one line or row
//! at a time through its format's [`Source`], which hands each result to a
//! [`Sink`] that positions, skips and counts it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};

use super::csv::{open_csv, CsvState};
use super::decode::TextDecoder;
use super::gzip::{self, is_corrupt_stream};
use super::jsonl::JsonLines;
use super::lines::{LineSource, PlainLines};
use super::sources::open_error;
use super::{
    excerpt, Counters, Format, IdsError, InputSource, Positioned, ReadOptions, Record, Reject,
    IO_BUFFER_BYTES,
};

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

/// The source being read.
struct Active {
    index: usize,
    name: String,
    gzip: bool,
    source: Opened,
}

/// An opened source of one format, read one line (or CSV row) at a time.
pub(super) trait Source {
    /// Reads the next line or row and hands what it yields to `sink`: an ID,
    /// a reject, an error, or nothing for a blank line. Returns `true` when
    /// the source is finished (at its end, or abandoned after an error).
    fn step(&mut self, sink: &mut Sink<'_>) -> bool;
}

/// The opened source, by format: an enum rather than a `Box<dyn Source>` so
/// that the call made for every line is static and can be inlined.
enum Opened {
    Plain(PlainLines),
    Jsonl(JsonLines),
    Csv(Box<CsvState>),
}

impl Source for Opened {
    fn step(&mut self, sink: &mut Sink<'_>) -> bool {
        match self {
            Opened::Plain(s) => s.step(sink),
            Opened::Jsonl(s) => s.step(sink),
            Opened::Csv(s) => s.step(sink),
        }
    }
}

/// Where a [`Source`] puts what it reads: the reader's queue and totals, the
/// source's index and name that label each record, and the resume position
/// at or before which nothing is emitted.
pub(super) struct Sink<'a> {
    index: usize,
    name: &'a str,
    gzip: bool,
    skip: Option<(usize, u64)>,
    out: &'a mut VecDeque<Result<Positioned, IdsError>>,
    /// The reader's totals; sources count lines and blank lines themselves.
    pub(super) counters: &'a mut Counters,
}

impl Sink<'_> {
    /// The source's name, for errors.
    pub(super) fn name(&self) -> &str {
        self.name
    }

    /// Whether `line` of this source is at or before the resume position.
    pub(super) fn skipped(&self, line: u64) -> bool {
        is_skipped(self.skip, self.index, line)
    }

    /// Emits a reject: `content` is cut to an excerpt.
    pub(super) fn reject(&mut self, line: u64, content: &[u8], reason: String) {
        self.counters.rejects += 1;
        self.out.push_back(Ok(Positioned {
            source_index: self.index,
            line,
            record: Record::Reject(Reject {
                source: self.name.to_string(),
                line,
                content: excerpt(content),
                reason,
            }),
        }));
    }

    /// Emits an ID.
    pub(super) fn id(
        &mut self,
        line: u64,
        id: u64,
        account: Option<String>,
        group: Option<String>,
    ) {
        self.counters.ids += 1;
        self.out.push_back(Ok(Positioned {
            source_index: self.index,
            line,
            record: Record::Id { id, account, group },
        }));
    }

    /// Emits an error that abandons the source.
    pub(super) fn error(&mut self, e: IdsError) {
        self.counters.errors += 1;
        self.out.push_back(Err(e));
    }

    /// Handles an I/O error in the middle of a source. A broken gzip stream
    /// is data damage and becomes a reject so ingestion of other sources
    /// carries on; anything else is an error.
    pub(super) fn read_failure(&mut self, err: io::Error, complete_lines: u64) {
        let line = complete_lines + 1;
        if self.gzip && is_corrupt_stream(&err) {
            if self.skipped(line) {
                return;
            }
            self.counters.rejects += 1;
            self.out.push_back(Ok(Positioned {
                source_index: self.index,
                line,
                record: Record::Reject(gzip::damaged(self.name.to_string(), complete_lines)),
            }));
        } else {
            self.error(IdsError::Read {
                path: self.name.to_string(),
                line: complete_lines,
                source: err,
            });
        }
    }
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
                    let mut sink = Sink {
                        index: active.index,
                        name: &active.name,
                        gzip: active.gzip,
                        skip: self.skip,
                        out: &mut self.out,
                        counters: &mut self.counters,
                    };
                    let done = active.source.step(&mut sink);
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
                                record: Record::Reject(gzip::damaged(path, line)),
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

    /// The CSV source being read, if that is what is being read.
    #[cfg(test)]
    pub(super) fn active_csv(&self) -> Option<&CsvState> {
        match self.active.as_ref().map(|a| &a.source) {
            Some(Opened::Csv(state)) => Some(state),
            _ => None,
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
    let raw: Box<dyn Read + Send> = match source {
        InputSource::Stdin => Box::new(io::stdin()),
        InputSource::File(p) | InputSource::Spooled { path: p, .. } => {
            Box::new(File::open(p).map_err(|e| open_error(p, e))?)
        }
    };
    let (bytes, gzip) = match gzip::sniff(raw) {
        Ok(sniffed) => sniffed,
        Err(e) => {
            return Err(IdsError::Read {
                path: name,
                line: 0,
                source: e,
            })
        }
    };
    let text = TextDecoder::new(bytes);
    let lines = LineSource::new(Box::new(BufReader::with_capacity(IO_BUFFER_BYTES, text)));
    let format = options.format.unwrap_or_else(|| source.format_hint());
    let source = match format {
        Format::Plain => Opened::Plain(PlainLines(lines)),
        Format::Jsonl => Opened::Jsonl(JsonLines(lines)),
        Format::Csv => match open_csv(lines, &name, options) {
            Ok(Some(state)) => Opened::Csv(Box::new(state)),
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
        source,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testutil::*;
    use std::path::Path;
    use tempfile::TempDir;

    #[test]
    fn empty_inputs_yield_nothing() {
        let dir = TempDir::new().unwrap();
        assert!(read_file(dir.path(), "e.csv", b"").is_empty());
        assert!(read_file(dir.path(), "e.txt", b"").is_empty());
        assert!(read_file(dir.path(), "e.jsonl", b"\n\n").is_empty());
        assert!(read_file(dir.path(), "h.csv", b"tweet_id\n").is_empty());
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
    fn reader_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Reader>();
        assert_send::<IdsError>();
    }
}
