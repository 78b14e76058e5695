//! The final stderr line about failed IDs: how many, and how they failed, as the store records it.
//!
//! A run's failures are of few kinds: a batch that ran out of attempts (`failed after N attempts:
//! <last error>`) or an ID absent from a successful response. Each kind is counted apart, so one ID
//! missing from a 200 is not reported as a batch that failed after all retries.

use std::path::Path;

use engage::outcome::Status;

/// Kinds named one by one; the rest are counted together, so the line stays short.
const MAX_KINDS: usize = 3;

/// The most characters of an error text shown for a kind.
const MAX_DETAIL: usize = 50;

/// Failed IDs grouped by kind, in first-seen order.
#[derive(Debug, Default)]
pub struct Failures {
    /// (kind, count, the first error text of the kind).
    kinds: Vec<(String, u64, Option<String>)>,
}

impl Failures {
    /// Reads the failed outcomes of the store at `db`.
    pub fn from_store(db: &Path) -> Result<Failures, engage::run::RunError> {
        let run = engage::run::open_run(db)?;
        let mut f = Failures::default();
        run.store.for_each_not_ok(|_, status, note| {
            if status == Status::Failed {
                f.add(note);
            }
        })?;
        Ok(f)
    }

    /// Counts one failed ID with its note.
    pub fn add(&mut self, note: Option<&str>) {
        let (kind, detail) = kind_of(note.unwrap_or("no reason recorded"));
        match self.kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => k.1 += 1,
            None => self.kinds.push((kind, 1, detail)),
        }
    }

    /// `"3 IDs failed: 2 after 10 attempts (server error (HTTP 503)), 1 absent from a successful
    /// response (see outcomes.csv)"`: the most frequent kinds first.
    pub fn line(&self) -> String {
        let total: u64 = self.kinds.iter().map(|k| k.1).sum();
        let mut kinds: Vec<&(String, u64, Option<String>)> = self.kinds.iter().collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
        let mut parts: Vec<String> = kinds
            .iter()
            .take(MAX_KINDS)
            .map(|(kind, n, detail)| match detail {
                Some(d) => format!("{n} {kind} ({d})"),
                None => format!("{n} {kind}"),
            })
            .collect();
        let rest: u64 = kinds.iter().skip(MAX_KINDS).map(|k| k.1).sum();
        if rest > 0 {
            parts.push(format!("{rest} for other reasons"));
        }
        let ids = if total == 1 { "ID" } else { "IDs" };
        format!(
            "{total} {ids} failed: {} (see outcomes.csv)",
            parts.join(", ")
        )
    }
}

/// A note's kind and, for exhausted retries, its error text (cut short).
fn kind_of(note: &str) -> (String, Option<String>) {
    // The fetcher writes `failed after N attempts: <error>`.
    if let Some((after, err)) = note
        .strip_prefix("failed ")
        .and_then(|rest| rest.split_once(": "))
    {
        if after.starts_with("after ") {
            return (after.to_string(), Some(cut(err)));
        }
    }
    (cut(note), None)
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_DETAIL {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_DETAIL).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_counted_as_it_was() {
        let mut f = Failures::default();
        f.add(Some("absent from a successful response"));
        assert_eq!(
            f.line(),
            "1 ID failed: 1 absent from a successful response (see outcomes.csv)"
        );
        f.add(Some(
            "failed after 10 attempts: server error (HTTP 503): upstream trouble",
        ));
        f.add(Some("failed after 10 attempts: timed out"));
        assert_eq!(
            f.line(),
            "3 IDs failed: 2 after 10 attempts (server error (HTTP 503): upstream trouble), \
             1 absent from a successful response (see outcomes.csv)"
        );
    }

    #[test]
    fn many_kinds_stay_one_short_line() {
        let mut f = Failures::default();
        for k in 0..6 {
            f.add(Some(&format!(
                "failed after {k} attempts: {}",
                "x".repeat(200)
            )));
        }
        f.add(None);
        let line = f.line();
        assert!(
            line.starts_with("7 IDs failed: 1 after 0 attempts (xxx"),
            "{line}"
        );
        assert!(line.contains("4 for other reasons"), "{line}");
        assert!(line.chars().count() < 300, "{line}");
    }
}
