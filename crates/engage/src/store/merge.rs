//! The tables of finished shard stores, combined into one store as a whole run would have written
//! it (`engage merge`, see `crate::merge` for the checks that come first and docs/sharding.md).
//!
//! Every table has one rule, and [`TABLES`] lists them; a table of the schema without a rule is an
//! error (`every_table_of_the_schema_has_a_rule` fails first), so a schema change cannot leave the
//! merge silently short:
//! - tables keyed by Tweet ID (`ids`, `outcomes`, `partial`, `series`, and the links of an ID to a
//!   message or a group) hold disjoint IDs in each shard: they are read in ID order from every shard at once
//!   and written in ID order (a k-way merge), so the merged store's pages are filled in order, as
//!   a single run's, and memory holds one row per shard;
//! - dictionaries (`messages`, `groups`) are keyed by their text's shape: their numbers are given again,
//!   their counts added up, and the links renumbered;
//! - `hourly_totals` are added up, `accounts_used` united;
//! - what every shard reads alike (`inputs`, `rejects`) is taken from the first, and every other
//!   shard must hold the same rows;
//! - `meta` is written by the caller.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use super::{Store, StoreError};

/// How one table is combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Keyed by Tweet ID (the first column): disjoint across shards, merged in ID order.
    ById,
    /// The same in every shard: taken once, compared with every shard's.
    Same,
    /// Written by the caller.
    Meta,
    /// Summed on its key (every column but the last), the last column added up.
    Sum,
    /// United (the whole row is its key).
    Union,
    /// A dictionary ([`Dict`]).
    Dict,
}

/// Every table of the schema and how it is combined.
const TABLES: &[(&str, Rule)] = &[
    ("meta", Rule::Meta),
    ("inputs", Rule::Same),
    ("rejects", Rule::Same),
    ("messages", Rule::Dict),
    ("groups", Rule::Dict),
    ("ids", Rule::ById),
    ("outcomes", Rule::ById),
    ("partial", Rule::ById),
    ("series", Rule::ById),
    ("id_messages", Rule::ById),
    ("id_groups", Rule::ById),
    ("hourly_totals", Rule::Sum),
    ("accounts_used", Rule::Union),
];

/// A dictionary table: rows numbered by an integer key, unique by a name, with counters; the
/// tables that refer to its rows by number (keyed by Tweet ID, the number their last column).
struct Dict {
    table: &'static str,
    key: &'static str,
    name: &'static str,
    /// Columns kept from the first shard that has the name.
    first: &'static [&'static str],
    /// Columns added up.
    sum: &'static [&'static str],
    /// Flags or-ed, also set when the first of `first` differs.
    or: &'static [&'static str],
    /// (table, column) that hold the number.
    links: &'static [(&'static str, &'static str)],
}

const DICTS: &[Dict] = &[
    Dict {
        table: "messages",
        key: "mid",
        name: "shape",
        first: &["text", "source"],
        sum: &["responses"],
        or: &["varies"],
        links: &[("id_messages", "mid")],
    },
    Dict {
        // A group's `ids` is its unique IDs: the shards' IDs are disjoint, so they add up.
        table: "groups",
        key: "gid",
        name: "name",
        first: &[],
        sum: &["ids"],
        or: &[],
        links: &[("id_groups", "gid")],
    },
];

/// A shard store disagreed with the first one on what every shard reads alike.
#[derive(Debug)]
pub struct Disagreement {
    /// The store.
    pub db: std::path::PathBuf,
    /// The table.
    pub table: &'static str,
    /// The first row that differs, shown.
    pub row: String,
}

impl Store {
    /// The names of the tables in the store (views aside), sorted.
    pub fn table_names(&self) -> Result<Vec<String>, StoreError> {
        let err = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .map_err(err)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(err)?;
        rows.map(|r| r.map_err(err)).collect()
    }

    /// Fills this fresh store's tables (all but `meta`) from the finished `shards`. Returns a
    /// disagreement on a table every shard should hold alike, having written nothing of it.
    pub fn merge_tables(&mut self, shards: &[Store]) -> Result<Option<Disagreement>, StoreError> {
        for name in self.table_names()? {
            if !TABLES.iter().any(|(t, _)| *t == name) {
                // A table this engage's merge was not written for: a bug, not a user's error.
                return Ok(Some(Disagreement {
                    db: self.path.clone(),
                    table: "sqlite_master",
                    row: format!("engage merge has no rule for table `{name}` (a bug)"),
                }));
            }
        }
        for &(table, rule) in TABLES {
            if rule == Rule::Same {
                if let Some(d) = self.check_same(shards, table)? {
                    return Ok(Some(d));
                }
            }
        }
        let mut renumber: HashMap<(&str, &str), Vec<HashMap<i64, i64>>> = HashMap::new();
        for &(table, rule) in TABLES {
            let e = |e| self.err(e);
            let tx = self.conn.unchecked_transaction().map_err(e)?;
            match rule {
                Rule::Meta => {}
                Rule::Same => copy_rows(&shards[0], &tx, table)?,
                Rule::Dict => {
                    let dict = DICTS.iter().find(|d| d.table == table).expect("dict");
                    let maps = merge_dict(shards, &tx, dict).map_err(e)?;
                    for link in dict.links {
                        renumber.insert(*link, maps.clone());
                    }
                }
                Rule::ById => {
                    let links = renumber.iter().find(|((t, _), _)| *t == table);
                    merge_by_id(shards, &tx, table, links.map(|((_, c), m)| (*c, m)))?
                }
                Rule::Sum | Rule::Union => {
                    for s in shards {
                        add_rows(s, &tx, table, rule)?;
                    }
                }
            }
            tx.commit().map_err(e)?;
        }
        Ok(None)
    }

    /// The first row of `table` in which a shard differs from the first shard.
    fn check_same(
        &self,
        shards: &[Store],
        table: &'static str,
    ) -> Result<Option<Disagreement>, StoreError> {
        let first = &shards[0];
        for s in &shards[1..] {
            let mut a = first
                .conn
                .prepare(&select_all(first, table)?)
                .map_err(|e| first.err(e))?;
            let mut b = s
                .conn
                .prepare(&select_all(s, table)?)
                .map_err(|e| s.err(e))?;
            let n = a.column_count();
            let mut ra = a.query([]).map_err(|e| first.err(e))?;
            let mut rb = b.query([]).map_err(|e| s.err(e))?;
            loop {
                let x = ra
                    .next()
                    .map_err(|e| first.err(e))?
                    .map(|r| row_values(r, n))
                    .transpose()
                    .map_err(|e| first.err(e))?;
                let y = rb
                    .next()
                    .map_err(|e| s.err(e))?
                    .map(|r| row_values(r, n))
                    .transpose()
                    .map_err(|e| s.err(e))?;
                if x == y {
                    if x.is_none() {
                        break;
                    }
                    continue;
                }
                let shown = y.or(x).map(|v| show(&v)).unwrap_or_default();
                return Ok(Some(Disagreement {
                    db: s.path.clone(),
                    table,
                    row: shown,
                }));
            }
        }
        Ok(None)
    }
}

/// `SELECT * FROM table ORDER BY <its primary key>`.
fn select_all(s: &Store, table: &str) -> Result<String, StoreError> {
    let mut stmt = s
        .conn
        .prepare(&format!(
            "SELECT name, pk FROM pragma_table_info('{table}')"
        ))
        .map_err(|e| s.err(e))?;
    let mut key: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, String>(0)?)))
        .map_err(|e| s.err(e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| s.err(e))?
        .into_iter()
        .filter(|(pk, _)| *pk > 0)
        .collect();
    key.sort();
    let order: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
    Ok(if order.is_empty() {
        format!("SELECT * FROM {table}")
    } else {
        format!("SELECT * FROM {table} ORDER BY {}", order.join(", "))
    })
}

fn row_values(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Vec<Value>> {
    (0..n).map(|i| r.get::<_, Value>(i)).collect()
}

fn show(v: &[Value]) -> String {
    v.iter()
        .map(|x| match x {
            Value::Null => "NULL".to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(t) => t.clone(),
            Value::Blob(b) => format!("<{} bytes>", b.len()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An insert of the columns a shard's statement reads, by name (a store upgraded from an older
/// schema may hold them in another order).
fn insert_sql(table: &str, stmt: &rusqlite::Statement<'_>) -> String {
    let names = stmt.column_names().collect::<Vec<_>>().join(", ");
    let marks = vec!["?"; stmt.column_count()].join(", ");
    format!("INSERT INTO {table} ({names}) VALUES ({marks})")
}

/// Every row of `table` in `from`, into the same table on `to`.
fn copy_rows(from: &Store, to: &Connection, table: &str) -> Result<(), StoreError> {
    let e = |e| from.err(e);
    let mut stmt = from.conn.prepare(&select_all(from, table)?).map_err(e)?;
    let n = stmt.column_count();
    let mut ins = to.prepare(&insert_sql(table, &stmt)).map_err(e)?;
    let mut rows = stmt.query([]).map_err(e)?;
    while let Some(r) = rows.next().map_err(e)? {
        ins.execute(params_from_iter(row_values(r, n).map_err(e)?))
            .map_err(e)?;
    }
    Ok(())
}

/// Adds `from`'s rows of a [`Rule::Sum`] or [`Rule::Union`] table to `to`'s.
fn add_rows(from: &Store, to: &Connection, table: &str, rule: Rule) -> Result<(), StoreError> {
    let e = |e| from.err(e);
    let mut stmt = from.conn.prepare(&select_all(from, table)?).map_err(e)?;
    let n = stmt.column_count();
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let sql = match rule {
        Rule::Sum => format!(
            "{} ON CONFLICT ({}) DO UPDATE SET {last} = {last} + excluded.{last}",
            insert_sql(table, &stmt),
            names[..n - 1].join(", "),
            last = names[n - 1]
        ),
        _ => insert_sql(table, &stmt).replacen("INSERT", "INSERT OR IGNORE", 1),
    };
    let mut ins = to.prepare(&sql).map_err(e)?;
    let mut rows = stmt.query([]).map_err(e)?;
    while let Some(r) = rows.next().map_err(e)? {
        ins.execute(params_from_iter(row_values(r, n).map_err(e)?))
            .map_err(e)?;
    }
    Ok(())
}

/// Combines a dictionary table; returns, per shard, its numbers' new numbers.
fn merge_dict(
    shards: &[Store],
    to: &Connection,
    d: &Dict,
) -> rusqlite::Result<Vec<HashMap<i64, i64>>> {
    let cols: Vec<&str> = [d.key, d.name]
        .into_iter()
        .chain(d.first.iter().copied())
        .chain(d.sum.iter().copied())
        .chain(d.or.iter().copied())
        .collect();
    let select = format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        d.table,
        d.key
    );
    // A name kept under another first column (a message's text with other numbers) varies.
    let differs = d
        .first
        .first()
        .map_or(String::new(), |c| format!(" OR {c} <> excluded.{c}"));
    let updates: Vec<String> = d
        .sum
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .chain(
            d.or.iter()
                .map(|c| format!("{c} = {c} OR excluded.{c}{differs}")),
        )
        .collect();
    let insert = format!(
        "INSERT INTO {t} ({c}) VALUES ({m}) ON CONFLICT ({name}) DO UPDATE SET {u} RETURNING {key}",
        t = d.table,
        c = cols[1..].join(", "),
        m = vec!["?"; cols.len() - 1].join(", "),
        name = d.name,
        u = if updates.is_empty() {
            format!("{n} = {n}", n = d.name)
        } else {
            updates.join(", ")
        },
        key = d.key
    );
    let mut maps = Vec::with_capacity(shards.len());
    for s in shards {
        let mut map = HashMap::new();
        let mut stmt = s.conn.prepare(&select)?;
        let mut rows = stmt.query([])?;
        let mut ins = to.prepare(&insert)?;
        while let Some(r) = rows.next()? {
            let v = row_values(r, cols.len())?;
            let old = match v[0] {
                Value::Integer(k) => k,
                _ => continue,
            };
            let new: i64 = ins.query_row(params_from_iter(&v[1..]), |r| r.get(0))?;
            map.insert(old, new);
        }
        maps.push(map);
    }
    Ok(maps)
}

/// A table keyed by Tweet ID, read from every shard at once in ID order and written in ID order.
/// `renumber`: the column that refers to a dictionary's row, and each shard's new numbers.
fn merge_by_id(
    shards: &[Store],
    to: &Connection,
    table: &str,
    renumber: Option<(&str, &Vec<HashMap<i64, i64>>)>,
) -> Result<(), StoreError> {
    let mut stmts = Vec::with_capacity(shards.len());
    for s in shards {
        stmts.push(
            s.conn
                .prepare(&select_all(s, table)?)
                .map_err(|e| s.err(e))?,
        );
    }
    let n = stmts.first().map_or(0, |s| s.column_count());
    let col = renumber.and_then(|(c, _)| {
        stmts
            .first()
            .and_then(|s| s.column_names().position(|n| n == c))
    });
    let mut ins = to
        .prepare(&insert_sql(table, &stmts[0]))
        .map_err(|e| shards[0].err(e))?;
    let mut cursors = Vec::with_capacity(shards.len());
    for (s, stmt) in shards.iter().zip(stmts.iter_mut()) {
        cursors.push(stmt.query([]).map_err(|e| s.err(e))?);
    }
    // The head row of each shard; the next written is the one of the lowest ID.
    let mut heads: Vec<Option<Vec<Value>>> = Vec::with_capacity(shards.len());
    for (s, c) in shards.iter().zip(cursors.iter_mut()) {
        heads.push(next_row(s, c, n)?);
    }
    let id = |v: &Vec<Value>| match v[0] {
        Value::Integer(i) => i,
        _ => i64::MIN,
    };
    while let Some(k) = (0..heads.len())
        .filter(|&k| heads[k].is_some())
        .min_by_key(|&k| heads[k].as_ref().map(id))
    {
        let mut row = heads[k].take().expect("head");
        if let (Some(c), Some((_, maps))) = (col, renumber) {
            if let Value::Integer(old) = row[c] {
                row[c] = Value::Integer(*maps[k].get(&old).unwrap_or(&old));
            }
        }
        ins.execute(params_from_iter(row))
            .map_err(|e| shards[k].err(e))?;
        heads[k] = next_row(&shards[k], &mut cursors[k], n)?;
    }
    Ok(())
}

fn next_row(
    s: &Store,
    rows: &mut rusqlite::Rows<'_>,
    n: usize,
) -> Result<Option<Vec<Value>>, StoreError> {
    match rows.next().map_err(|e| s.err(e))? {
        Some(r) => Ok(Some(row_values(r, n).map_err(|e| s.err(e))?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tmp;
    use super::*;

    #[test]
    fn every_table_of_the_schema_has_a_rule() {
        let (_d, p) = tmp();
        let s = Store::open(&p).unwrap();
        for name in s.table_names().unwrap() {
            assert!(
                TABLES.iter().any(|(t, _)| *t == name),
                "table `{name}` has no merge rule: say in store/merge.rs how shards combine it"
            );
        }
        for d in DICTS {
            assert!(TABLES.contains(&(d.table, Rule::Dict)));
        }
    }
}
