//! Gzip: whether a source is compressed is decided by its first bytes, not
//! its name, so compressed stdin and misnamed files work; and a stream that
//! ends early or goes bad is data damage, a reject, not an error that stops
//! the run.

use std::io::{self, Read};

use flate2::read::MultiGzDecoder;

use super::{reason, Reject};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the first two bytes of `raw` and returns the whole stream again,
/// decompressed if those bytes are the gzip magic, and whether it was gzip.
pub(super) fn sniff(mut raw: Box<dyn Read + Send>) -> io::Result<(Box<dyn Read + Send>, bool)> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match raw.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let gzip = got == 2 && magic == GZIP_MAGIC;
    let rejoined = io::Cursor::new(magic[..got].to_vec()).chain(raw);
    let bytes: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(rejoined))
    } else {
        Box::new(rejoined)
    };
    Ok((bytes, gzip))
}

/// Decompression failures look like these kinds; they mean the data ends or
/// goes bad here, not that the disk failed.
pub(super) fn is_corrupt_stream(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
    )
}

/// The reject for a gzip stream of input `source` that ends early or goes
/// bad after `complete_lines` complete lines: it stands on the next line,
/// with no content.
pub(super) fn damaged(source: String, complete_lines: u64) -> Reject {
    Reject {
        source,
        line: complete_lines + 1,
        content: String::new(),
        reason: format!("{} after line {complete_lines}", reason::GZIP_DAMAGED),
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::testutil::*;
    use crate::ids::{InputSource, Positioned, ReadOptions, Reader, Record};
    use std::io::Write;
    use tempfile::TempDir;

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
                    account: None,
                    group: None,
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
}
