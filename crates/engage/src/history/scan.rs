//! Reading the snapshots back: one cursor per snapshot (each in Tweet order) merged by Tweet ID, so
//! that the state of every Tweet at any snapshot comes out in one pass, one Tweet at a time, with
//! no sort and no per-Tweet memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rusqlite::{Connection, Rows, Statement};

use super::{Change, TweetState};

/// One prepared cursor per snapshot, oldest first; [`Merger::new`] runs them.
pub(crate) fn statements<'c>(
    conn: &'c Connection,
    runs: &[i64],
) -> rusqlite::Result<Vec<(i64, Statement<'c>)>> {
    runs.iter()
        .map(|&r| {
            Ok((
                r,
                conn.prepare(
                    "SELECT tweet_id, state, mask, vals FROM snap WHERE run = ?1 ORDER BY tweet_id",
                )?,
            ))
        })
        .collect()
}

struct Cursor<'s> {
    rows: Rows<'s>,
    head: Option<Head>,
}

#[derive(Default)]
struct Head {
    tweet: u64,
    state: Option<u8>,
    mask: u32,
    vals: Vec<u8>,
}

impl Cursor<'_> {
    fn advance(&mut self) -> rusqlite::Result<()> {
        match self.rows.next()? {
            Some(r) => {
                let mut h = self.head.take().unwrap_or_default();
                h.tweet = r.get::<_, i64>(0)? as u64;
                h.state = r.get::<_, Option<i64>>(1)?.map(|s| s as u8);
                h.mask = r.get::<_, i64>(2)? as u32;
                h.vals.clear();
                if let rusqlite::types::ValueRef::Blob(b) = r.get_ref(3)? {
                    h.vals.extend_from_slice(b);
                }
                self.head = Some(h);
            }
            None => self.head = None,
        }
        Ok(())
    }
}

/// The merge of the snapshots' cursors. `cuts[j]` is the rank (index in the statements' order) up
/// to which the `j`-th state of each Tweet is folded; `None` stands for "before any snapshot"
/// (every Tweet absent).
pub(crate) struct Merger<'s> {
    cursors: Vec<Cursor<'s>>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    cuts: Vec<Option<usize>>,
}

impl<'s> Merger<'s> {
    pub fn new(
        stmts: &'s mut [(i64, Statement<'_>)],
        cuts: Vec<Option<usize>>,
    ) -> rusqlite::Result<Merger<'s>> {
        let mut cursors = Vec::with_capacity(stmts.len());
        let mut heap = BinaryHeap::new();
        for (rank, (run, stmt)) in stmts.iter_mut().enumerate() {
            let mut c = Cursor {
                rows: stmt.query([*run])?,
                head: None,
            };
            c.advance()?;
            if let Some(h) = &c.head {
                heap.push(Reverse((h.tweet, rank)));
            }
            cursors.push(c);
        }
        Ok(Merger {
            cursors,
            heap,
            cuts,
        })
    }

    /// The lowest Tweet ID not returned yet.
    pub fn peek(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// The next Tweet and its state at each cut (written into `out`, one per cut).
    pub fn next(&mut self, out: &mut [TweetState]) -> rusqlite::Result<Option<u64>> {
        let Some(tweet) = self.peek() else {
            return Ok(None);
        };
        out.fill(TweetState::ABSENT);
        // Popped in (Tweet, rank) order: this Tweet's rows, oldest snapshot first.
        while let Some(&Reverse((t, rank))) = self.heap.peek() {
            if t != tweet {
                break;
            }
            self.heap.pop();
            let c = &mut self.cursors[rank];
            let h = c.head.as_ref().expect("a cursor in the heap has a head");
            for (j, cut) in self.cuts.iter().enumerate() {
                if cut.is_some_and(|cut| rank <= cut) {
                    Change::apply(&mut out[j], h.state, h.mask, &h.vals);
                }
            }
            c.advance()?;
            if let Some(h) = &c.head {
                self.heap.push(Reverse((h.tweet, rank)));
            }
        }
        Ok(Some(tweet))
    }
}
