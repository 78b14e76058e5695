//! `engage`: nightly top-N reports over the X Enterprise Engagement API.
//!
//! The binary parses flags, builds a validated configuration, calls the `engage` library and maps the
//! result to a documented exit code. Everything else lives in the library crates.

mod config;
mod defaults;
mod demo;
mod failures;
mod history;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use engage::run::{self, Progress, RunError};
use tokio_util::sync::CancellationToken;

/// The documented exit codes live in the library, beside the errors that map to them.
pub use engage::exit;

#[derive(Parser)]
#[command(
    name = "engage",
    version,
    about = "Top-N engagement reports over the X Enterprise Engagement API, resumable and rate-limited"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run (or resume) a job: read IDs, fetch metrics, write reports.
    Run(config::RunArgs),
    /// Show a store's progress and settings.
    Status {
        /// The checkpoint store.
        #[arg(long)]
        db: PathBuf,
    },
    /// Regenerate every report from a store.
    Report {
        /// The checkpoint store.
        #[arg(long)]
        db: PathBuf,
        /// Folder for the reports.
        #[arg(long)]
        out: PathBuf,
    },
    /// The whole pipeline on 100,000 generated IDs against the built-in simulator.
    Demo(demo::DemoArgs),
    /// Start the Engagement API simulator.
    Sim(engage_sim::cli::SimArgs),
    /// Keep finished runs night after night and report what moved (docs/history.md).
    History(history::HistoryArgs),
    /// Combine the finished shard stores of a run (`run --shard I/N`) into the single run's store
    /// and reports (docs/sharding.md).
    Merge(MergeArgs),
}

#[derive(clap::Args)]
struct MergeArgs {
    /// The shard stores, every shard 0..N-1 once.
    #[arg(long, required = true, num_args = 1..)]
    db: Vec<PathBuf>,
    /// Folder for the reports.
    #[arg(long)]
    out: PathBuf,
    /// The merged store, replaced if it exists [default: merged.db beside the first --db].
    #[arg(long, value_name = "FILE")]
    merged_db: Option<PathBuf>,
    /// Add the merged run to this history store (created if there is none).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: in a log file they are escape-code noise.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    // The help of flags with a built-in default shows it, read from the defaults file.
    let matches = defaults::document(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let code = rt.block_on(async move {
        match cli.command {
            Command::Run(args) => match config::build(&args)
                .and_then(|spec| Ok((spec, config::history_path(&args)?)))
            {
                Ok((spec, history)) => run_job(spec, history.as_deref()).await,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    exit::USAGE
                }
            },
            Command::Status { db } => report_cmd(db, None),
            Command::Report { db, out } => report_cmd(db, Some(config::expand_date(&out))),
            Command::Demo(args) => demo::run(args).await,
            Command::History(args) => history::run(args),
            Command::Merge(args) => merge_cmd(args),
            Command::Sim(args) => match engage_sim::cli::run(args).await {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    exit::USAGE
                }
            },
        }
    });
    ExitCode::from(code)
}

/// Installs Ctrl-C / SIGTERM handling: the first signal cancels the run's token (in-flight batches
/// finish and commit), the second exits at once (the store stays consistent either way).
fn shutdown_signal() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    // Both handlers are installed before the run starts, so a signal is never missed or ignored.
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        for count in 1.. {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if count == 1 {
                eprintln!("\nstopping: letting requests in flight finish (press Ctrl-C again to quit at once)");
                cancel.cancel();
            } else {
                std::process::exit(exit::INTERRUPTED as i32);
            }
        }
    });
    Ok(token)
}

/// Runs a job with progress display; then prints a short overview and the report files on stdout
/// (the tables are in the files: with a large `--top` they would flood the terminal). A finished
/// run (exit 0 or 3) is then added to `history`, if given; a failure to add is the command's exit
/// code.
pub async fn run_job(spec: engage::run::RunSpec, history: Option<&std::path::Path>) -> u8 {
    let db = spec.db.clone();
    let code = run_only(spec).await;
    match history {
        Some(h) if code == exit::OK || code == exit::FAILED_IDS => {
            match history::add(h, &[db], None) {
                Ok(()) => code,
                Err(e) => {
                    eprintln!("error: the run finished, but adding it to the history failed: {e}");
                    e.exit_code()
                }
            }
        }
        _ => code,
    }
}

async fn run_only(spec: engage::run::RunSpec) -> u8 {
    let progress = Arc::new(Progress::default());
    let cancel = match shutdown_signal() {
        Ok(token) => token,
        Err(e) => {
            eprintln!("error: cannot install the Ctrl-C/SIGTERM handler: {e}");
            return exit::INTERNAL;
        }
    };
    let display = progress::Display::start(progress.clone());
    let db = spec.db.clone();
    let result = run::run(spec, progress.clone(), cancel).await;
    display.finish();
    match result {
        Ok(outcome) => {
            println!("{}", outcome.summary.overview());
            println!("reports:");
            for f in &outcome.files {
                println!("  {}", f.display());
            }
            let c = &outcome.summary.status;
            eprintln!(
                "{} requests, {} retries, {} answered 429 in this run",
                outcome.requests, outcome.retries, outcome.rate_limited
            );
            // Per app over every life of the run: the same lines as `engage status`.
            for app in &outcome.apps {
                eprintln!("app {}", app.line());
            }
            if let Some(dir) = outcome.files.first().and_then(|f| f.parent()) {
                eprintln!("reports in {}", dir.display());
            }
            let damaged = &outcome.summary.damaged_inputs;
            if outcome.interrupted {
                if let Some(why) = progress.health.gave_up() {
                    eprintln!("error: {why}");
                }
                eprintln!(
                    "interrupted with {} IDs pending: run the same command again to resume",
                    c.pending
                );
                exit::INTERRUPTED
            } else if c.failed > 0 || !damaged.is_empty() {
                if c.failed > 0 {
                    // The kinds as the store records them; without the store, the count alone.
                    match failures::Failures::from_store(&db) {
                        Ok(f) => eprintln!("{}", f.line()),
                        Err(e) => eprintln!(
                            "{} IDs failed (see outcomes.csv; their kinds could not be read: {e})",
                            c.failed
                        ),
                    }
                }
                for d in damaged {
                    eprintln!("{}", damaged_line(d));
                }
                exit::FAILED_IDS
            } else {
                exit::OK
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            let code = e.exit_code();
            if code == exit::ENVIRONMENT {
                eprintln!("nothing committed is lost: fix the cause and run the same command again to resume");
            }
            code
        }
    }
}

/// `engage merge`: the shards into one store, its reports, and the history if asked.
fn merge_cmd(args: MergeArgs) -> u8 {
    let merged = args.merged_db.clone().unwrap_or_else(|| {
        args.db[0]
            .parent()
            .unwrap_or(std::path::Path::new(""))
            .join("merged.db")
    });
    let out = config::expand_date(&args.out);
    match engage::merge::merge(&args.db, &merged, &out) {
        Ok(m) => {
            println!("{}", m.summary.overview());
            println!("merged {} shards into {}", m.shards, m.db.display());
            println!("reports:");
            for f in &m.files {
                println!("  {}", f.display());
            }
            let c = &m.summary.status;
            let code = if c.failed > 0 || !m.summary.damaged_inputs.is_empty() {
                for d in &m.summary.damaged_inputs {
                    eprintln!("{}", damaged_line(d));
                }
                if c.failed > 0 {
                    eprintln!("{} IDs failed (listed in outcomes.csv)", c.failed);
                }
                exit::FAILED_IDS
            } else {
                exit::OK
            };
            match &args.history {
                Some(h) => match history::add(h, std::slice::from_ref(&m.db), None) {
                    Ok(()) => code,
                    Err(e) => {
                        eprintln!("error: merged, but adding the run to the history failed: {e}");
                        e.exit_code()
                    }
                },
                None => code,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// What is said of an input not read to its end (its reject row names it and the last line read).
fn damaged_line(d: &engage::store::RejectRow) -> String {
    format!(
        "input {} not read to its end: {}; the IDs read before it are kept (the reject is in rejects.csv)",
        d.source, d.reason
    )
}

fn report_cmd(db: PathBuf, out: Option<PathBuf>) -> u8 {
    let result = (|| -> Result<(), RunError> {
        let run = run::open_run(&db)?;
        match out {
            Some(dir) => {
                let (summary, files) = run.write_reports(&dir)?;
                for f in files {
                    println!("{}", f.display());
                }
                for d in &summary.damaged_inputs {
                    eprintln!("{}", damaged_line(d));
                }
            }
            None => {
                let (identity, summary) = (&run.identity, run.summary()?);
                let c = &summary.status;
                println!("store:     {}", db.display());
                println!("endpoint:  {}", identity.endpoint);
                println!("auth:      {}", identity.auth);
                println!("metrics:   {}", identity.metrics.join(", "));
                println!("top N:     {}", identity.top_n);
                if let Some(w) = &identity.window {
                    println!("window:    {w}");
                }
                if let Some(g) = &identity.series {
                    println!("series:    by {g}");
                }
                if let Some(shard) = &identity.shard {
                    println!("shard:     {shard} (join the shards with `engage merge`)");
                }
                if !identity.accounts.is_empty() {
                    println!("accounts:  {}", identity.accounts.join(", "));
                }
                if !summary.accounts_used.is_empty() {
                    println!(
                        "owner accounts used: {} ({})",
                        summary.accounts_used.len(),
                        summary.accounts_used.join(", ")
                    );
                }
                for (name, sha) in &identity.inputs {
                    println!("input:     {name} (sha256 {})", &sha[..16.min(sha.len())]);
                }
                for d in &summary.damaged_inputs {
                    println!("damaged:   {}", damaged_line(d));
                }
                println!(
                    "lines:     {} ({} rejected, {} duplicate IDs)",
                    summary.ingest.input_lines,
                    summary.ingest.rejected_lines,
                    summary.ingest.duplicate_ids
                );
                println!("unique:    {}", c.unique());
                println!("ok:        {}", c.ok);
                println!("unavailable: {}", c.unavailable);
                println!("forbidden: {}", c.forbidden);
                println!("failed:    {}", c.failed);
                println!("pending:   {}", c.pending);
                println!(
                    "complete:  {}",
                    if summary.complete() { "yes" } else { "no" }
                );
                for app in engage::apps::load(&run.store)? {
                    println!("app {}", app.line());
                }
                let groups = run.store.groups()?;
                if !groups.is_empty() {
                    let listed: Vec<String> = groups
                        .iter()
                        .map(|g| format!("{} ({} IDs)", g.name, g.ids))
                        .collect();
                    println!("groups:    {}", listed.join(", "));
                }
                let not_served: Vec<String> = summary
                    .metrics
                    .iter()
                    .zip(&summary.withheld)
                    .filter(|(_, w)| w.iter().any(|n| *n > 0))
                    .map(|(m, w)| {
                        let why: Vec<String> = engage::report::WITHHELD_REASONS
                            .iter()
                            .zip(w)
                            .filter(|(_, n)| **n > 0)
                            .map(|(r, n)| format!("{n} {r}"))
                            .collect();
                        format!("{m} ({})", why.join(", "))
                    })
                    .collect();
                if !not_served.is_empty() {
                    println!("not served: {}", not_served.join("; "));
                }
                if !summary.messages.is_empty() {
                    println!("messages that came with the answers:");
                    println!("  {:>9}  {:>9}  {:<6}  message", "responses", "IDs", "from");
                    for m in &summary.messages {
                        // The server's words, without anything that could drive the terminal.
                        let text: String = m
                            .shown()
                            .chars()
                            .map(|c| if c.is_control() { ' ' } else { c })
                            .collect();
                        println!(
                            "  {:>9}  {:>9}  {:<6}  {text}",
                            m.responses,
                            m.ids,
                            m.source.as_str()
                        );
                    }
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
