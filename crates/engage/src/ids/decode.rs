//! Text encodings: input is UTF-8 (or any bytes, passed through), and a
//! stream that starts with a UTF-16 byte-order mark is decoded to UTF-8 as it
//! streams, after gzip if both apply, so line numbers are the file's own.

use std::io::{self, Read};

/// Passes UTF-8 (or any bytes) through unchanged, and decodes a stream that
/// starts with a UTF-16 byte-order mark (`FF FE` little-endian, `FE FF`
/// big-endian; Excel's "Unicode Text" export) to UTF-8, chunk by chunk.
///
/// The mark is sniffed on the first read rather than when the source is
/// opened, so a read error there (a corrupt gzip stream) surfaces where the
/// reader turns it into a reject. Unpaired surrogates and an odd final byte
/// become U+FFFD, which the ID parser then rejects with its line.
pub(super) struct TextDecoder {
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
    pub(super) fn new(inner: Box<dyn Read + Send>) -> TextDecoder {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testutil::*;
    use crate::ids::{reason, Record};
    use tempfile::TempDir;

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
                account: Some("brand😀".into()),
                group: None,
            }
        );
        let items = read_file(dir.path(), "j.jsonl", &utf16("{\"id\":\"10\"}\n", true));
        assert_eq!(summary(&items), vec![(1, Ok(10))]);
    }
}
