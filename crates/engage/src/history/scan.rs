//! Reading the snapshots back. `cur` holds every Tweet's state at the newest snapshot; each
//! snapshot's `snap` rows turn the state at that snapshot into the state at the one before it. The
//! state at an older snapshot is `cur` with the rows of every newer snapshot applied, newest first.
//! One cursor per table or snapshot, each in Tweet order, merged by Tweet ID: the states at any
//! snapshots come out in one pass, one Tweet at a time, with no sort and no per-Tweet memory, and a
//! read touches only the snapshots newer than the oldest one it asks for.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rusqlite::{Connection, Rows, Statement};

use super::{Change, TweetState};

/// The statements of a merge: `cur`, then one per snapshot of `runs` (oldest first, with their rank
/// in the history's order of snapshots); [`Merger::new`] runs them.
pub(crate) struct Statements<'c> {
    cur: Statement<'c>,
    runs: Vec<(i64, usize, Statement<'c>)>,
}

/// Prepares the merge of `cur` with the rows of `runs` ((run id, rank), any order).
pub(crate) fn statements<'c>(
    conn: &'c Connection,
    runs: &[(i64, usize)],
) -> rusqlite::Result<Statements<'c>> {
    Ok(Statements {
        cur: conn.prepare("SELECT tweet_id, state, mask, vals FROM cur ORDER BY tweet_id")?,
        runs: runs
            .iter()
            .map(|&(r, rank)| {
                Ok((
                    r,
                    rank,
                    conn.prepare(
                        "SELECT tweet_id, state, mask, vals FROM snap WHERE run = ?1 ORDER BY tweet_id",
                    )?,
                ))
            })
            .collect::<rusqlite::Result<_>>()?,
    })
}

struct Cursor<'s> {
    rows: Rows<'s>,
    /// The snapshot's rank; `cur` has the highest.
    rank: usize,
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

/// The merge. `cuts[j]` is the rank of the snapshot whose state the `j`-th output holds: `cur`
/// with the rows of every snapshot of a higher rank applied; `None` stands for "before any
/// snapshot" (absent). The statements must cover every rank above the lowest cut.
pub(crate) struct Merger<'s> {
    cursors: Vec<Cursor<'s>>,
    /// (Tweet, newest first) of each cursor's head.
    heap: BinaryHeap<Reverse<(u64, Reverse<usize>, usize)>>,
    cuts: Vec<Option<usize>>,
}

impl<'s> Merger<'s> {
    pub fn new(
        stmts: &'s mut Statements<'_>,
        cuts: Vec<Option<usize>>,
    ) -> rusqlite::Result<Merger<'s>> {
        let mut cursors = Vec::with_capacity(stmts.runs.len() + 1);
        cursors.push(Cursor {
            rows: stmts.cur.query([])?,
            rank: usize::MAX,
            head: None,
        });
        for (run, rank, stmt) in stmts.runs.iter_mut() {
            cursors.push(Cursor {
                rows: stmt.query([*run])?,
                rank: *rank,
                head: None,
            });
        }
        let mut heap = BinaryHeap::new();
        for (i, c) in cursors.iter_mut().enumerate() {
            c.advance()?;
            if let Some(h) = &c.head {
                heap.push(Reverse((h.tweet, Reverse(c.rank), i)));
            }
        }
        Ok(Merger {
            cursors,
            heap,
            cuts,
        })
    }

    /// The lowest Tweet ID not returned yet.
    pub fn peek(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The next Tweet and its state at each cut (written into `out`, one per cut).
    pub fn next(&mut self, out: &mut [TweetState]) -> rusqlite::Result<Option<u64>> {
        let Some(tweet) = self.peek() else {
            return Ok(None);
        };
        let mut st = TweetState::ABSENT;
        // One bit per cut whose state is complete.
        let mut done = 0u32;
        // Popped newest first: `cur`, then the snapshots' rows from the newest down.
        while let Some(&Reverse((t, Reverse(rank), i))) = self.heap.peek() {
            if t != tweet {
                break;
            }
            self.heap.pop();
            // The state at every cut at or above this snapshot is complete.
            for (j, cut) in self.cuts.iter().enumerate() {
                if done & (1 << j) == 0 && cut.is_some_and(|c| c >= rank) {
                    out[j] = st;
                    done |= 1 << j;
                }
            }
            let c = &mut self.cursors[i];
            let h = c.head.as_ref().expect("a cursor in the heap has a head");
            Change::apply(&mut st, h.state, h.mask, &h.vals);
            c.advance()?;
            if let Some(h) = &c.head {
                self.heap.push(Reverse((h.tweet, Reverse(c.rank), i)));
            }
        }
        for (j, cut) in self.cuts.iter().enumerate() {
            if done & (1 << j) == 0 {
                out[j] = if cut.is_some() {
                    st
                } else {
                    TweetState::ABSENT
                };
            }
        }
        Ok(Some(tweet))
    }
}
