//! `history report`'s files, written whole: each under a hidden temporary name in the folder, then
//! all renamed into place, `movers.json` last (as the run's reports do with `top.json`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{History, HistoryError, Movers};
use crate::report::ReportError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HistoryError + '_ {
    move |source| {
        HistoryError::Report(ReportError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Computes the report of `history` and writes `movers.json`, `movers.md`, `movers.csv`,
/// `nights.csv` and `history.html` into `dir`; returns the files, and what they hold.
pub fn write_report(
    history: &History,
    dir: &Path,
    top: usize,
    since_days: Option<u32>,
) -> Result<(Movers, Vec<PathBuf>), HistoryError> {
    let movers = Movers::compute(history, top, since_days)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let generated = OffsetDateTime::now_utc();
    let mut json = serde_json::to_string_pretty(&movers.to_json()).expect("JSON of plain values");
    json.push('\n');
    // movers.json last: a new one means the files beside it are new too.
    let files: [(&str, String); 5] = [
        ("movers.md", markdown(&movers)),
        ("movers.csv", movers_csv(&movers)),
        ("nights.csv", nights_csv(&movers)),
        ("history.html", super::html::render(&movers, generated)),
        ("movers.json", json),
    ];
    let mut staged = Vec::new();
    for (name, body) in &files {
        let tmp = dir.join(format!(".engage-history-{}-{name}.tmp", std::process::id()));
        let mut f = crate::fsutil::create_report(&tmp).map_err(io(&tmp))?;
        f.write_all(body.as_bytes()).map_err(io(&tmp))?;
        staged.push((tmp, dir.join(name)));
    }
    let mut written = Vec::new();
    for (tmp, fin) in staged {
        std::fs::rename(&tmp, &fin).map_err(io(&fin))?;
        written.push(fin);
    }
    Ok((movers, written))
}

fn stamp(t: Option<OffsetDateTime>) -> String {
    t.map(engagement_api::timefmt::rfc3339_z)
        .unwrap_or_else(|| "none".into())
}

fn markdown(m: &Movers) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Movers\n");
    let _ = writeln!(
        s,
        "Latest snapshot {}, base {}; top {} per metric by gain (latest − base). A Tweet not in the base run counts from 0 (new).\n",
        stamp(m.latest),
        stamp(m.base),
        m.top
    );
    for (i, metric) in m.metrics.iter().enumerate() {
        let _ = writeln!(s, "## {metric}\n");
        if m.gains[i].is_empty() {
            let _ = writeln!(s, "No Tweet moved.\n");
        } else {
            let _ = writeln!(
                s,
                "| # | Tweet | base | latest | gain |\n|---:|---|---:|---:|---:|"
            );
            for (r, g) in m.gains[i].iter().enumerate() {
                let _ = writeln!(
                    s,
                    "| {} | [{}]({}) | {} | {} | {:+}{} |",
                    r + 1,
                    g.id,
                    crate::report::tweet_url(g.id),
                    g.base.map_or("new".to_string(), |b| b.to_string()),
                    g.latest,
                    g.gain,
                    if g.new { " (new)" } else { "" }
                );
            }
            s.push('\n');
        }
        let list = |v: &[u64]| {
            v.iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !m.entered[i].is_empty() {
            let _ = writeln!(s, "Entered the top {}: {}\n", m.top, list(&m.entered[i]));
        }
        if !m.left[i].is_empty() {
            let _ = writeln!(s, "Left the top {}: {}\n", m.top, list(&m.left[i]));
        }
        if !m.tally[i].is_empty() {
            let _ = writeln!(
                s,
                "Running tally (time series), top {}:\n\n| # | Tweet | tally |\n|---:|---|---:|",
                m.top
            );
            for (r, (id, v)) in m.tally[i].iter().enumerate() {
                let _ = writeln!(
                    s,
                    "| {} | [{id}]({}) | {v} |",
                    r + 1,
                    crate::report::tweet_url(*id)
                );
            }
            s.push('\n');
        }
    }
    for (name, per_metric) in &m.groups {
        let _ = writeln!(s, "## Group {name}\n");
        let mut any = false;
        for (i, metric) in m.metrics.iter().enumerate() {
            let Some(best) = per_metric[i].first() else {
                continue;
            };
            any = true;
            let _ = writeln!(
                s,
                "- {metric}: {} movers, the most [{}]({}) {:+}{}",
                per_metric[i].len(),
                best.id,
                crate::report::tweet_url(best.id),
                best.gain,
                if best.new { " (new)" } else { "" }
            );
        }
        if !any {
            let _ = writeln!(s, "No Tweet of the group moved.");
        }
        s.push('\n');
    }
    if !m.gone.is_empty() {
        let _ = writeln!(
            s,
            "## Gone\n\n{} Tweets were ok at base and are unavailable at latest: {}\n",
            m.gone.len(),
            m.gone
                .iter()
                .take(100)
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
                + if m.gone.len() > 100 {
                    ", … (all in movers.json)"
                } else {
                    ""
                }
        );
    }
    s
}

fn movers_csv(m: &Movers) -> String {
    let mut s = String::from("metric,rank,tweet_id,base,latest,gain,new\n");
    for (i, metric) in m.metrics.iter().enumerate() {
        for (r, g) in m.gains[i].iter().enumerate() {
            let _ = writeln!(
                s,
                "{metric},{},{},{},{},{},{}",
                r + 1,
                g.id,
                g.base.map(|b| b.to_string()).unwrap_or_default(),
                g.latest,
                g.gain,
                g.new
            );
        }
    }
    s
}

fn nights_csv(m: &Movers) -> String {
    let mut s = String::from("as_of,endpoint,metric,total,tweets\n");
    for n in &m.nights {
        let _ = writeln!(
            s,
            "{},{},{},{},{}",
            engagement_api::timefmt::rfc3339_z(n.as_of),
            n.endpoint,
            n.metric,
            n.total,
            n.tweets
        );
    }
    s
}
