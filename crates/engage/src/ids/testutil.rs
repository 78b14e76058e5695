//! Helpers shared by the tests of the `ids` files: writing inputs and
//! reading them back in a compact form.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::{InputSource, Positioned, ReadOptions, Reader, Record, Reject};

pub(super) fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, data).unwrap();
    path
}

pub(super) fn gz(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub(super) fn read_all(paths: &[PathBuf], options: ReadOptions) -> Vec<Positioned> {
    let sources = paths.iter().cloned().map(InputSource::File).collect();
    Reader::new(sources, options)
        .map(|r| r.expect("unexpected error"))
        .collect()
}

pub(super) fn read_file(dir: &Path, name: &str, data: &[u8]) -> Vec<Positioned> {
    let path = write(dir, name, data);
    read_all(&[path], ReadOptions::default())
}

/// Compact view: (line, Ok(id) | Err(reason)).
pub(super) fn summary(items: &[Positioned]) -> Vec<(u64, Result<u64, String>)> {
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

pub(super) fn rejected(p: &Positioned) -> &Reject {
    match &p.record {
        Record::Reject(r) => r,
        other => panic!("expected a reject, got {other:?}"),
    }
}
