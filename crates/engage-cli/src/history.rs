//! `engage history add|status|report`: the history store of finished runs (docs/history.md).

use std::path::{Path, PathBuf};

use engage::history::{self, AsOf, History, HistoryError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::exit;

/// `engage history` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    #[command(subcommand)]
    command: HistoryCommand,
}

#[derive(Debug, clap::Subcommand)]
enum HistoryCommand {
    /// Add finished run stores to the history (created if there is none), in any order of their
    /// dates; a run already held is skipped.
    Add {
        /// The history store (SQLite).
        #[arg(long)]
        history: PathBuf,
        /// Finished run stores (every ID with an outcome).
        #[arg(long, required = true, num_args = 1..)]
        db: Vec<PathBuf>,
        /// The time the run's values are as of (RFC 3339), instead of the time the store records
        /// (when its fetch ended); needed for a store finished by an engage without the history.
        #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
        as_of: Option<OffsetDateTime>,
    },
    /// The runs held (endpoint, as-of time, IDs) and the size on disk.
    Status {
        /// The history store.
        #[arg(long)]
        history: PathBuf,
    },
    /// Write movers.json, movers.md, movers.csv, nights.csv and history.html.
    Report {
        /// The history store.
        #[arg(long)]
        history: PathBuf,
        /// Folder for the files; `{date}` is replaced by today's UTC date.
        #[arg(long)]
        out: PathBuf,
        /// N of the top-N per metric.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Count gains from the newest snapshot at least this many days older than the latest
        /// [default: the snapshot before the latest].
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        since: Option<u32>,
    },
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time such as 2026-11-20T02:00:00Z: {e}"))
}

/// Runs an `engage history` command; returns the exit code.
pub fn run(args: HistoryArgs) -> u8 {
    let result = match args.command {
        HistoryCommand::Add { history, db, as_of } => add(&history, &db, as_of),
        HistoryCommand::Status { history } => status(&history),
        HistoryCommand::Report {
            history,
            out,
            top,
            since,
        } => report(&history, &crate::config::expand_date(&out), top, since),
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Adds finished run stores; a line per store on stdout.
pub fn add(
    history: &Path,
    dbs: &[PathBuf],
    as_of: Option<OffsetDateTime>,
) -> Result<(), HistoryError> {
    let as_of = as_of.map_or(AsOf::Recorded, AsOf::At);
    for db in dbs {
        let a = history::add(history, db, as_of)?;
        let when = engagement_api::timefmt::rfc3339_z(a.as_of);
        if a.already {
            println!(
                "{}: already in {} (/{} as of {when}); nothing changed",
                db.display(),
                history.display(),
                a.endpoint
            );
        } else {
            println!(
                "{}: added to {} (/{} as of {when}, {} IDs; {} Tweets and {} values changed, {} rows stored{})",
                db.display(),
                history.display(),
                a.endpoint,
                a.ids,
                a.changed,
                a.values,
                a.rows,
                if a.buckets > 0 {
                    format!(", {} buckets", a.buckets)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}

fn status(path: &Path) -> Result<(), HistoryError> {
    let h = History::open(path, false)?;
    let runs = h.runs()?;
    println!("history:   {}", path.display());
    println!("runs:      {}", runs.len());
    println!(
        "size:      {:.1} MB on disk",
        h.size_on_disk() as f64 / (1024.0 * 1024.0)
    );
    for r in &runs {
        let when = OffsetDateTime::from_unix_timestamp(r.as_of)
            .map(engagement_api::timefmt::rfc3339_z)
            .unwrap_or_else(|_| r.as_of.to_string());
        println!(
            "  {when}  /{:<10} {:>10} IDs ({} ok)  {}",
            r.endpoint, r.ids, r.ok, r.source
        );
    }
    Ok(())
}

fn report(path: &Path, out: &Path, top: usize, since: Option<u32>) -> Result<(), HistoryError> {
    let h = History::open(path, false)?;
    let (movers, files) = history::write_report(&h, out, top, since)?;
    let t = |x: Option<OffsetDateTime>| {
        x.map(engagement_api::timefmt::rfc3339_z)
            .unwrap_or_else(|| "none".into())
    };
    println!("latest {}, base {}", t(movers.latest), t(movers.base));
    for (i, m) in movers.metrics.iter().enumerate() {
        if let Some(g) = movers.gains[i].first() {
            println!(
                "  {m}: top mover {} {:+}{}",
                g.id,
                g.gain,
                if g.new { " (new)" } else { "" }
            );
        }
    }
    if !movers.gone.is_empty() {
        println!("  gone: {} Tweets", movers.gone.len());
    }
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}
