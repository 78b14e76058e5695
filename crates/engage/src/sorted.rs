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

/// The index of `name` in `names`, added when new.
fn intern(names: &mut Vec<String>, index: &mut HashMap<String, u32>, name: &str) -> u32 {
    match index.get(name) {
        Some(&i) => i,
        None => {
            let i = names.len() as u32;
            names.push(name.to_string());
            index.insert(name.to_string(), i);
            i
        }
    }
}

/// Collects (ID, account, group) records in input order.
pub struct Sorter {
    dir: PathBuf,
    run: usize,
    buf: Vec<(u64, u32, u32)>,
    names: Vec<String>,
    index: HashMap<String, u32>,
    group_names: Vec<String>,
    group_index: HashMap<String, u32>,
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
            group_names: Vec::new(),
            group_index: HashMap::new(),
            spilled: Vec::new(),
            read: 0,
        }
    }

    /// Adds a record: one occurrence of `id`, in each of `groups` (none: in no group).
    pub fn push(&mut self, id: u64, account: Option<&str>, groups: &[&str]) -> io::Result<()> {
        // Accounts and groups are few names repeated over many IDs: each is kept once.
        let account = match account {
            None => NONE,
            Some(name) => intern(&mut self.names, &mut self.index, name),
        };
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.run.min(1 << 16));
        }
        self.read += 1;
        if groups.is_empty() {
            self.buf.push((id, account, NONE));
        }
        // One record per group: an ID's groups are the union over its occurrences, gathered when
        // the runs are merged (a record is 16 bytes with or without its group).
        for g in groups {
            let g = intern(&mut self.group_names, &mut self.group_index, g);
            self.buf.push((id, account, g));
        }
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
            // No accounts: equal IDs differ at most in their group, and an ID's groups are a set,
            // so any order of them will do.
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
            for (id, account, group) in &self.buf {
                w.write_all(&id.to_le_bytes())?;
                w.write_all(&account.to_le_bytes())?;
                w.write_all(&group.to_le_bytes())?;
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
                if let Some((id, account, group)) = read_record(r)? {
                    heap.push(Reverse((id, i, account, group)));
                }
            }
            Source::Runs { runs, heap }
        };
        Ok(Merged {
            source,
            names: self.names,
            group_names: self.group_names,
            group_sizes: Vec::new(),
            shared: 0,
            last: None,
            last_groups: Vec::new(),
            unique: 0,
        })
    }
}

fn read_record(r: &mut impl Read) -> io::Result<Option<(u64, u32, u32)>> {
    let mut b = [0u8; 16];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some((
            u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            u32::from_le_bytes(b[12..].try_into().expect("4 bytes")),
        ))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

enum Source {
    Memory(std::vec::IntoIter<(u64, u32, u32)>),
    /// Ties go to the lower run index: the earlier input.
    Runs {
        runs: Vec<BufReader<File>>,
        heap: BinaryHeap<Reverse<(u64, usize, u32, u32)>>,
    },
}

/// The unique IDs, ascending, each with the account of its first occurrence and the union of its
/// occurrences' groups.
pub struct Merged {
    source: Source,
    names: Vec<String>,
    group_names: Vec<String>,
    /// Per group (by index into `group_names`), the unique IDs in it handed out so far.
    group_sizes: Vec<u64>,
    /// Unique IDs handed out so far that are in two groups or more.
    shared: u64,
    last: Option<u64>,
    /// The groups of `last` handed out so far.
    last_groups: Vec<u32>,
    unique: u64,
}

impl Merged {
    fn next_record(&mut self) -> io::Result<Option<(u64, u32, u32)>> {
        match &mut self.source {
            Source::Memory(it) => Ok(it.next()),
            Source::Runs { runs, heap } => {
                let Some(Reverse((id, i, account, group))) = heap.pop() else {
                    return Ok(None);
                };
                if let Some((next, a, g)) = read_record(&mut runs[i])? {
                    heap.push(Reverse((next, i, a, g)));
                }
                Ok(Some((id, account, group)))
            }
        }
    }

    /// Appends up to `max` more unique IDs to `out`, and their memberships `(id, group index)` to
    /// `groups` (see [`Merged::group_names`]); false when there are none left. An ID's memberships
    /// may come with the next block.
    pub fn next_block(
        &mut self,
        max: usize,
        out: &mut Vec<(u64, Option<String>)>,
        groups: &mut Vec<(u64, u32)>,
    ) -> io::Result<bool> {
        let (start, groups_start) = (out.len(), groups.len());
        while out.len() - start < max {
            let Some((id, account, group)) = self.next_record()? else {
                break;
            };
            if self.last != Some(id) {
                self.last = Some(id);
                self.last_groups.clear();
                self.unique += 1;
                let account = (account != NONE).then(|| self.names[account as usize].clone());
                out.push((id, account));
            }
            if group != NONE && !self.last_groups.contains(&group) {
                self.last_groups.push(group);
                if self.group_sizes.len() <= group as usize {
                    self.group_sizes.resize(group as usize + 1, 0);
                }
                self.group_sizes[group as usize] += 1;
                if self.last_groups.len() == 2 {
                    self.shared += 1;
                }
                groups.push((id, group));
            }
        }
        Ok(out.len() > start || groups.len() > groups_start)
    }

    /// Unique IDs handed out so far.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// The group names, by the index [`Merged::next_block`] gives.
    pub fn group_names(&self) -> &[String] {
        &self.group_names
    }

    /// Once every block is out: each group's unique IDs (by index), and how many IDs are in two
    /// groups or more.
    pub fn group_counts(&self) -> (Vec<u64>, u64) {
        let mut sizes = self.group_sizes.clone();
        sizes.resize(self.group_names.len(), 0);
        (sizes, self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(mut m: Merged, block: usize) -> Vec<(u64, Option<String>)> {
        let (mut out, mut groups) = (Vec::new(), Vec::new());
        while m.next_block(block, &mut out, &mut groups).unwrap() {}
        assert!(groups.is_empty());
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
                    s.push(*id, *a, &[]).unwrap();
                }
                prop_assert_eq!(s.read(), records.len() as u64);
                let got = all(s.finish().unwrap(), block);
                prop_assert_eq!(got, model(&records));
            }
        }
    }

    proptest! {
        /// Each ID's groups are the union over its occurrences, whether the runs were spilled or
        /// not, and the counts per group and of shared IDs agree with them.
        #[test]
        fn groups_are_the_union_of_the_occurrences(
            records in prop::collection::vec((0u64..200, prop::collection::vec(0u8..4, 0..3)), 0..400),
            run in 1usize..60,
            block in 1usize..40,
        ) {
            let names = ["brand", "rival", "spring", "fall"];
            let mut model: std::collections::BTreeMap<u64, std::collections::BTreeSet<&str>> =
                Default::default();
            for (id, gs) in &records {
                model.entry(*id).or_default().extend(gs.iter().map(|g| names[*g as usize]));
            }
            let dir = tempfile::tempdir().unwrap();
            for run in [run, usize::MAX] {
                let mut s = Sorter::new(dir.path(), run);
                for (id, gs) in &records {
                    let gs: Vec<&str> = gs.iter().map(|g| names[*g as usize]).collect();
                    s.push(*id, None, &gs).unwrap();
                }
                prop_assert_eq!(s.read(), records.len() as u64);
                let m = s.finish().unwrap();
                let group_names = m.group_names().to_vec();
                let mut counted = m;
                let (mut out, mut groups) = (Vec::new(), Vec::new());
                while counted.next_block(block, &mut out, &mut groups).unwrap() {}
                let (sizes, shared) = counted.group_counts();
                let ids: Vec<u64> = out.iter().map(|(id, _)| *id).collect();
                prop_assert_eq!(ids, model.keys().copied().collect::<Vec<_>>());
                let mut got: std::collections::BTreeMap<u64, std::collections::BTreeSet<&str>> =
                    Default::default();
                for (id, g) in &groups {
                    prop_assert!(got.entry(*id).or_default().insert(group_names[*g as usize].as_str()), "twice");
                }
                let want: std::collections::BTreeMap<_, _> =
                    model.iter().filter(|(_, g)| !g.is_empty()).map(|(k, v)| (*k, v.clone())).collect();
                prop_assert_eq!(&got, &want);
                for (i, name) in group_names.iter().enumerate() {
                    let n = want.values().filter(|g| g.contains(name.as_str())).count() as u64;
                    prop_assert_eq!(sizes[i], n, "{}", name);
                }
                prop_assert_eq!(shared, want.values().filter(|g| g.len() > 1).count() as u64);
            }
        }
    }

    #[test]
    fn spilled_runs_leave_no_files_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::new(dir.path(), 10);
        for id in (0..100u64).rev() {
            s.push(id, None, &[]).unwrap();
        }
        let m = s.finish().unwrap();
        let ids: Vec<u64> = all(m, 7).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
