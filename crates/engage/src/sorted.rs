//! Every input ID once, in ascending order, in constant memory.
//!
//! IDs are sorted in runs of at most a fixed number of records; when the inputs hold more, each run
//! goes to an anonymous temporary file beside the store and the runs are merged. Ascending IDs are
//! what the store wants: inserting them appends to its B-tree, where inserts at random places split
//! pages and cost about twice as much, and the batches cut from them are in ID order, so the
//! outcomes are appended too. See `docs/store.md`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Records per sorted run: 16 bytes each, so 16 MiB of memory at most.
pub const RUN: usize = 1 << 20;

/// No account for this ID.
const NONE: u32 = u32::MAX;

/// Collects (ID, account) records in input order.
pub struct Sorter {
    dir: PathBuf,
    run: usize,
    buf: Vec<(u64, u32)>,
    names: Vec<String>,
    index: HashMap<String, u32>,
    spilled: Vec<File>,
    read: u64,
}

impl Sorter {
    /// Sorts in runs of `run` records; spilled runs go to temporary files in `dir`.
    pub fn new(dir: &Path, run: usize) -> Sorter {
        Sorter {
            dir: dir.to_path_buf(),
            run: run.max(1),
            buf: Vec::new(),
            names: Vec::new(),
            index: HashMap::new(),
            spilled: Vec::new(),
            read: 0,
        }
    }

    /// Adds a record.
    pub fn push(&mut self, id: u64, account: Option<&str>) -> io::Result<()> {
        // Accounts are few names repeated over many IDs: each is kept once.
        let account = match account {
            None => NONE,
            Some(name) => match self.index.get(name) {
                Some(&i) => i,
                None => {
                    let i = self.names.len() as u32;
                    self.names.push(name.to_string());
                    self.index.insert(name.to_string(), i);
                    i
                }
            },
        };
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.run.min(1 << 16));
        }
        self.buf.push((id, account));
        self.read += 1;
        if self.buf.len() >= self.run {
            self.spill()?;
        }
        Ok(())
    }

    /// IDs pushed so far, duplicates included.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// Sorts the run: of equal IDs, the first pushed must come first, as it is the one kept.
    fn sort(&mut self) {
        if self.names.is_empty() {
            // No accounts: equal IDs are equal records, so any order of them will do.
            self.buf.sort_unstable_by_key(|r| r.0);
        } else {
            self.buf.sort_by_key(|r| r.0);
        }
    }

    fn spill(&mut self) -> io::Result<()> {
        self.sort();
        let mut file = tempfile::tempfile_in(&self.dir)?;
        {
            let mut w = BufWriter::with_capacity(1 << 16, &mut file);
            for (id, account) in &self.buf {
                w.write_all(&id.to_le_bytes())?;
                w.write_all(&account.to_le_bytes())?;
            }
            w.flush()?;
        }
        file.rewind()?;
        self.spilled.push(file);
        self.buf.clear();
        Ok(())
    }

    /// Ends the input: the unique IDs in ascending order.
    pub fn finish(mut self) -> io::Result<Merged> {
        let source = if self.spilled.is_empty() {
            self.sort();
            Source::Memory(std::mem::take(&mut self.buf).into_iter())
        } else {
            if !self.buf.is_empty() {
                self.spill()?;
            }
            self.buf = Vec::new();
            let mut runs: Vec<BufReader<File>> = self
                .spilled
                .drain(..)
                .map(|f| BufReader::with_capacity(1 << 16, f))
                .collect();
            let mut heap = BinaryHeap::with_capacity(runs.len());
            for (i, r) in runs.iter_mut().enumerate() {
                if let Some((id, account)) = read_record(r)? {
                    heap.push(Reverse((id, i, account)));
                }
            }
            Source::Runs { runs, heap }
        };
        Ok(Merged {
            source,
            names: self.names,
            last: None,
            unique: 0,
        })
    }
}

fn read_record(r: &mut impl Read) -> io::Result<Option<(u64, u32)>> {
    let mut b = [0u8; 12];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some((
            u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            u32::from_le_bytes(b[8..].try_into().expect("4 bytes")),
        ))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

enum Source {
    Memory(std::vec::IntoIter<(u64, u32)>),
    /// Ties go to the lower run index: the earlier input.
    Runs {
        runs: Vec<BufReader<File>>,
        heap: BinaryHeap<Reverse<(u64, usize, u32)>>,
    },
}

/// The unique IDs, ascending, each with the account of its first occurrence.
pub struct Merged {
    source: Source,
    names: Vec<String>,
    last: Option<u64>,
    unique: u64,
}

impl Merged {
    fn next_record(&mut self) -> io::Result<Option<(u64, u32)>> {
        match &mut self.source {
            Source::Memory(it) => Ok(it.next()),
            Source::Runs { runs, heap } => {
                let Some(Reverse((id, i, account))) = heap.pop() else {
                    return Ok(None);
                };
                if let Some((next, a)) = read_record(&mut runs[i])? {
                    heap.push(Reverse((next, i, a)));
                }
                Ok(Some((id, account)))
            }
        }
    }

    /// Appends up to `max` more unique IDs to `out`; false when there are none left.
    pub fn next_block(
        &mut self,
        max: usize,
        out: &mut Vec<(u64, Option<String>)>,
    ) -> io::Result<bool> {
        let start = out.len();
        while out.len() - start < max {
            let Some((id, account)) = self.next_record()? else {
                break;
            };
            if self.last == Some(id) {
                continue;
            }
            self.last = Some(id);
            self.unique += 1;
            let account = (account != NONE).then(|| self.names[account as usize].clone());
            out.push((id, account));
        }
        Ok(out.len() > start)
    }

    /// Unique IDs handed out so far.
    pub fn unique(&self) -> u64 {
        self.unique
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(mut m: Merged, block: usize) -> Vec<(u64, Option<String>)> {
        let mut out = Vec::new();
        while m.next_block(block, &mut out).unwrap() {}
        out
    }

    /// What the sorter must produce: first occurrences, ascending.
    fn model(records: &[(u64, Option<&str>)]) -> Vec<(u64, Option<String>)> {
        let mut first = std::collections::BTreeMap::new();
        for (id, a) in records {
            first.entry(*id).or_insert(a.map(str::to_string));
        }
        first.into_iter().collect()
    }

    proptest! {
        #[test]
        fn first_occurrences_ascending_in_memory_or_spilled(
            records in prop::collection::vec((0u64..300, prop::option::of(0u8..3)), 0..600),
            run in 1usize..80,
            block in 1usize..50,
        ) {
            let names = ["a", "b", "c"];
            let records: Vec<(u64, Option<&str>)> =
                records.iter().map(|(id, a)| (*id, a.map(|i| names[i as usize]))).collect();
            let dir = tempfile::tempdir().unwrap();
            for run in [run, usize::MAX] {
                let mut s = Sorter::new(dir.path(), run);
                for (id, a) in &records {
                    s.push(*id, *a).unwrap();
                }
                prop_assert_eq!(s.read(), records.len() as u64);
                let got = all(s.finish().unwrap(), block);
                prop_assert_eq!(got, model(&records));
            }
        }
    }

    #[test]
    fn spilled_runs_leave_no_files_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::new(dir.path(), 10);
        for id in (0..100u64).rev() {
            s.push(id, None).unwrap();
        }
        let m = s.finish().unwrap();
        let ids: Vec<u64> = all(m, 7).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
