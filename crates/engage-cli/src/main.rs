//! `engage`: nightly top-N reports over the X Enterprise Engagement API.
//!
//! The binary parses flags, builds a validated configuration, calls the `engage` library and maps the
//! result to a documented exit code. Everything else lives in the library crates.

mod config;
mod demo;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use engage::run::{self, Progress, RunError};
use tokio::sync::watch;

/// Exit codes (documented in the README).
pub mod exit {
    /// Every ID has an outcome and none failed.
    pub const OK: u8 = 0;
    /// An unexpected internal error.
    pub const INTERNAL: u8 = 1;
    /// Bad usage, configuration or input; or the API refused every request alike (e.g. 401).
    pub const USAGE: u8 = 2;
    /// Finished, but some IDs ended `failed` after all retries.
    pub const FAILED_IDS: u8 = 3;
    /// Interrupted (Ctrl-C, SIGTERM, or the API unreachable for longer than the outage limit); run the
    /// same command again to resume.
    pub const INTERRUPTED: u8 = 4;
    /// The store file is damaged, foreign or from a newer engage; it was left untouched.
    pub const STORE: u8 = 5;
}

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
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            Command::Run(args) => match config::build(&args) {
                Ok(spec) => run_job(spec, true).await,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    exit::USAGE
                }
            },
            Command::Status { db } => report_cmd(db, None),
            Command::Report { db, out } => report_cmd(db, Some(config::expand_date(&out))),
            Command::Demo(args) => demo::run(args).await,
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

/// Installs Ctrl-C / SIGTERM handling: the first signal asks for a clean stop (in-flight batches finish
/// and commit), the second exits at once (the store stays consistent either way).
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            wait_signal().await;
            count += 1;
            if count == 1 {
                eprintln!("\nstopping: letting requests in flight finish (press Ctrl-C again to quit at once)");
                let _ = tx.send(true);
            } else {
                std::process::exit(exit::INTERRUPTED as i32);
            }
        }
    });
    rx
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn error_code(e: &RunError) -> u8 {
    match e {
        RunError::Store(engage::store::StoreError::NotAStore { .. })
        | RunError::Store(engage::store::StoreError::MissingWal { .. })
        | RunError::Store(engage::store::StoreError::NewerSchema { .. }) => exit::STORE,
        RunError::Store(engage::store::StoreError::Busy { .. }) => exit::USAGE,
        // Damage found while reading a page is as much "the store is damaged" as a failed check.
        RunError::Store(engage::store::StoreError::Sqlite { source, .. })
            if matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ) =>
        {
            exit::STORE
        }
        RunError::Store(_) | RunError::Report(_) | RunError::Other(_) => exit::INTERNAL,
        RunError::Input(_)
        | RunError::IdentityMismatch { .. }
        | RunError::Client(_)
        | RunError::Abort(_) => exit::USAGE,
    }
}

/// Runs a job with progress display; prints the top tables when `print_tables`.
pub async fn run_job(spec: engage::run::RunSpec, print_tables: bool) -> u8 {
    let progress = Arc::new(Progress::default());
    let shutdown = shutdown_signal();
    let display = progress::Display::start(progress.clone());
    let result = run::run(spec, progress.clone(), shutdown).await;
    display.finish();
    match result {
        Ok(outcome) => {
            if print_tables {
                println!("{}", outcome.summary.to_markdown());
            }
            let c = &outcome.summary.status;
            eprintln!(
                "{} requests, {} retries, {} answered 429 in this run",
                outcome.requests, outcome.retries, outcome.rate_limited
            );
            if let Some(dir) = outcome.files.first().and_then(|f| f.parent()) {
                eprintln!("reports in {}", dir.display());
            }
            if outcome.interrupted {
                if let Some(why) = progress.health.gave_up() {
                    eprintln!("error: {why}");
                }
                eprintln!(
                    "interrupted with {} IDs pending: run the same command again to resume",
                    c.pending
                );
                exit::INTERRUPTED
            } else if c.failed > 0 {
                eprintln!(
                    "{} IDs failed after all retries (see outcomes.csv)",
                    c.failed
                );
                exit::FAILED_IDS
            } else {
                exit::OK
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            error_code(&e)
        }
    }
}

fn report_cmd(db: PathBuf, out: Option<PathBuf>) -> u8 {
    let result = (|| -> Result<(), RunError> {
        let run = run::open_run(&db)?;
        match out {
            Some(dir) => {
                let (_, files) = run.write_reports(&dir)?;
                for f in files {
                    println!("{}", f.display());
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
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            error_code(&e)
        }
    }
}
