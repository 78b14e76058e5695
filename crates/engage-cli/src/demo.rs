//! `engage demo`: the whole pipeline on a generated collection against the built-in simulator,
//! with the simulator's fake demo credentials. Nothing leaves the machine.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use engage::fetch::RetryPolicy;
use engage::ids::ReadOptions;
use engage::route::Routes;
use engage::run::RunSpec;
use engage::series::Granularity;
use engage_sim::DEMO;
use engagement_api::auth::UserCredentials;
use engagement_api::client::ClientConfig;
use engagement_api::{AuthKind, Endpoint};
use rand::{Rng, SeedableRng};

use crate::config::EndpointArg;
use crate::exit;

/// Snowflake epoch (ms since the Unix epoch).
const TWEPOCH_MS: u64 = 1_288_834_974_657;

/// `engage demo` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// API endpoint.
    #[arg(long, value_enum)]
    pub endpoint: Option<EndpointArg>,
    /// /historical: the period, in days up to now (longer than 28 is split into windows and merged).
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// How many IDs to generate [default: 100,000 for totals, 5,000 for the time series].
    #[arg(long)]
    pub ids: Option<usize>,
    /// Folder for the input, the store and the reports [default: a new temporary folder, kept].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Requests in flight, 1 to 256 [default: adaptive, up to 256].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Seed of the generated collection and of the simulator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Run this many nights, the simulator's clock 24 hours apart (the last one now), each one
    /// added to a history (`history.db`), and report what moved (`history/`): movers, nights,
    /// history.html. Each night reads the IDs posted by then.
    #[arg(long, default_value_t = 1)]
    pub nights: u32,
}

/// The demo's groups: the brand's own Tweets, a competitor's, and two campaigns that share Tweets
/// with the brand (a cell names several groups with `|`).
fn group_cell(rng: &mut impl Rng) -> &'static str {
    match rng.random_range(0..100) {
        0..30 => "brand",
        30..40 => "brand|spring-sale",
        40..45 => "brand|fall-launch",
        45..75 => "competitor",
        75..90 => "spring-sale",
        _ => "fall-launch",
    }
}

/// Writes `n` realistic snowflake IDs from the last `days` days as a CSV with a `group` column (see
/// [`group_cell`]), with about 2% duplicates and a few lines of the kinds spreadsheets and exports
/// leave behind.
fn generate(path: &std::path::Path, n: usize, days: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() as u64 * 1000;
    let span = days * 24 * 3600 * 1000;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut recent: Vec<u64> = Vec::with_capacity(1024);
    let bad = [
        "1.23457E+18",
        "not-an-id",
        "-1790000000000000001",
        "1790000000000000001.0",
        "99999999999999999999999",
        "https://x.com/someone/status/12",
    ];
    writeln!(w, "tweet_id,group")?;
    for i in 0..n {
        if i % 2000 == 1999 {
            writeln!(
                w,
                "{},{}",
                bad[(i / 2000) % bad.len()],
                group_cell(&mut rng)
            )?;
        }
        let id = if !recent.is_empty() && rng.random_bool(0.02) {
            recent[rng.random_range(0..recent.len())]
        } else {
            let ms = now_ms - rng.random_range(0..span) - TWEPOCH_MS;
            let id = (ms << 22) | rng.random_range(0..(1u64 << 22));
            if recent.len() < 1024 {
                recent.push(id);
            } else {
                let k = rng.random_range(0..recent.len());
                recent[k] = id;
            }
            id
        };
        writeln!(w, "{id},{}", group_cell(&mut rng))?;
    }
    w.flush()
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> u8 {
    // What the demo shares with `engage run` defaults as `engage run` does.
    let defaults = crate::defaults::get();
    let endpoint: Endpoint = args.endpoint.unwrap_or(defaults.endpoint).into();
    // Validated as `engage run` validates them, before anything is created.
    let checked = args
        .concurrency
        .map(|n| crate::config::check_concurrency(n, "--concurrency"))
        .transpose()
        .and_then(|concurrency| match endpoint {
            Endpoint::Historical => {
                crate::config::check_days(args.days, "--days").map(|()| concurrency)
            }
            _ => Ok(concurrency),
        });
    let concurrency = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::USAGE;
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let (ids, id_days, period, series) = match endpoint {
        Endpoint::Totals => (args.ids.unwrap_or(100_000), 60, None, None),
        // Tweets of the last three days, so that the 28 hours hold most of their engagement.
        Endpoint::Hr28 => (args.ids.unwrap_or(5_000), 3, None, Some(Granularity::Hour)),
        Endpoint::Historical => {
            match engagement_api::window::resolve_period(None, None, Some(args.days), now) {
                Ok(p) => (
                    args.ids.unwrap_or(5_000),
                    u64::from(args.days),
                    Some(p),
                    Some(Granularity::Day),
                ),
                Err(e) => {
                    eprintln!("error: --days {}: {e}", args.days);
                    return exit::USAGE;
                }
            }
        }
    };
    let dir = match &args.dir {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                eprintln!("error: creating {}: {e}", d.display());
                return exit::USAGE;
            }
            d.clone()
        }
        None => match tempfile::Builder::new().prefix("engage-demo-").tempdir() {
            Ok(t) => t.keep(),
            Err(e) => {
                eprintln!("error: creating a temporary folder: {e}");
                return exit::INTERNAL;
            }
        },
    };
    let input = dir.join("ids.csv");
    let first_db = if args.nights <= 1 {
        dir.join("demo.db")
    } else {
        dir.join("night1.db")
    };
    // Taken before anything in the folder is written or deleted, so that a demo never touches the
    // folder of a store in use; the (first) run below shares it.
    let mut lock = match engage::lock::WriterLock::acquire(&first_db) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    if let Err(e) = generate(&input, ids, id_days, args.seed) {
        eprintln!("error: writing {}: {e}", input.display());
        return exit::INTERNAL;
    }
    if args.nights <= 1 {
        let run = Night {
            input,
            db: first_db,
            out: dir.join("out"),
            now: None,
        };
        return night(
            &args,
            &run,
            lock,
            endpoint,
            concurrency,
            period,
            series,
            ids,
        )
        .await;
    }
    // Night after night: the simulator's clock a day apart, each night reading the IDs posted by
    // then, and each finished night added to the history.
    let history = dir.join("history.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", history.display()));
    }
    let mut code = exit::OK;
    for k in 0..args.nights {
        let when = now - time::Duration::days(i64::from(args.nights - 1 - k));
        let run = Night {
            input: dir.join(format!("ids-night{}.csv", k + 1)),
            db: dir.join(format!("night{}.db", k + 1)),
            out: dir.join(format!("out-night{}", k + 1)),
            now: Some(when),
        };
        if let Err(e) = posted_by(&input, &run.input, when) {
            eprintln!("error: writing {}: {e}", run.input.display());
            return exit::INTERNAL;
        }
        eprintln!(
            "night {} of {}: the simulator's clock at {}",
            k + 1,
            args.nights,
            engagement_api::timefmt::rfc3339_z(when)
        );
        // A /historical period ends at the night's own "now".
        let period = period.and_then(|_| {
            engagement_api::window::resolve_period(None, None, Some(args.days), when).ok()
        });
        code = night(
            &args,
            &run,
            lock.take(),
            endpoint,
            concurrency,
            period,
            series,
            ids,
        )
        .await;
        if code != exit::OK && code != exit::FAILED_IDS {
            return code;
        }
        if let Err(e) = crate::history::add(&history, std::slice::from_ref(&run.db), Some(when)) {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    }
    let report = dir.join("history");
    match engage::history::History::open(&history, false)
        .and_then(|h| engage::history::write_report(&h, &report, defaults.top, None))
    {
        Ok((movers, files)) => {
            println!(
                "\nwhat moved since the night before ({}):",
                history.display()
            );
            for (i, m) in movers.metrics.iter().enumerate() {
                let line: Vec<String> = movers.gains[i]
                    .iter()
                    .take(3)
                    .map(|g| format!("{} {:+}{}", g.id, g.gain, if g.new { " (new)" } else { "" }))
                    .collect();
                if !line.is_empty() {
                    println!("  {m}: {}", line.join(", "));
                }
            }
            if !movers.gone.is_empty() {
                println!("  gone: {} Tweets", movers.gone.len());
            }
            for f in files {
                println!("  {}", f.display());
            }
            code
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// One night of the demo: its input, store, reports, and the simulator's clock (`None`: the real one).
struct Night {
    input: PathBuf,
    db: PathBuf,
    out: PathBuf,
    now: Option<time::OffsetDateTime>,
}

/// Copies the IDs of `all` posted by `when` (snowflake time) into `to`, bad lines kept.
fn posted_by(
    all: &std::path::Path,
    to: &std::path::Path,
    when: time::OffsetDateTime,
) -> std::io::Result<()> {
    let limit = (when.unix_timestamp() as u64 * 1000).saturating_sub(TWEPOCH_MS);
    let text = std::fs::read_to_string(all)?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(to)?);
    for line in text.lines() {
        // The ID is the CSV's first cell.
        match line.split(',').next().unwrap_or("").parse::<u64>() {
            Ok(id) if (id >> 22) > limit => {}
            _ => writeln!(w, "{line}")?,
        }
    }
    w.flush()
}

/// Runs one night of the demo against its own simulator, with the lock of its store if the caller
/// took it.
#[allow(clippy::too_many_arguments)]
async fn night(
    args: &DemoArgs,
    night: &Night,
    lock: Option<engage::lock::WriterLock>,
    endpoint: Endpoint,
    concurrency: Option<usize>,
    period: Option<engagement_api::Window>,
    series: Option<Granularity>,
    ids: usize,
) -> u8 {
    let defaults = crate::defaults::get();
    let (input, db, out) = (night.input.clone(), night.db.clone(), night.out.clone());
    // Taken before the folder's last store is deleted, so that a demo never deletes a store in use;
    // the run below shares it.
    let _lock = match lock.map_or_else(|| engage::lock::WriterLock::acquire(&db), Ok) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    for p in [&db] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    }

    let sim_config = engage_sim::SimConfig {
        seed: args.seed,
        deleted: 0.003,
        protected: 0.0005,
        now: night.now,
        ..engage_sim::SimConfig::default()
    };
    let sim = match engage_sim::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0))).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: starting the simulator: {e}");
            return exit::INTERNAL;
        }
    };
    eprintln!(
        "simulator listening on {}; {} in {}",
        sim.url(),
        if night.now.is_some() {
            format!("the IDs of {ids} generated that were posted by then")
        } else {
            format!("{ids} IDs generated")
        },
        input.display()
    );

    let spec = RunSpec {
        inputs: vec![input.to_string_lossy().into_owned()],
        read: ReadOptions::default(),
        db: db.clone(),
        out: out.clone(),
        endpoint,
        metrics: endpoint.allowed_metrics(AuthKind::User),
        // The simulator's documented fake demo credentials.
        routes: Routes::single_user(
            endpoint,
            DEMO.account,
            UserCredentials {
                consumer_key: DEMO.consumer_key.into(),
                consumer_secret: DEMO.consumer_secret.into(),
                access_token: DEMO.access_token.into(),
                access_token_secret: DEMO.access_token_secret.into(),
            },
        ),
        default_account: None,
        default_group: None,
        group_from: None,
        min_impressions: None,
        top_n: defaults.top,
        concurrency,
        apps: engage::apps::AppSpec::single(None),
        client: ClientConfig {
            base_url: sim.url(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            allow_insecure_http: false,
        },
        retry: RetryPolicy {
            max_attempts: defaults.max_attempts,
            ..RetryPolicy::default()
        },
        outage: engage::health::OutagePolicy {
            limit: Duration::from_secs(defaults.outage_limit_secs),
            ..engage::health::OutagePolicy::default()
        },
        period,
        period_spec: period.map(|_| format!("days={}", args.days)),
        series,
        retry_failed: false,
        accept_rejects: false,
        shard: None,
    };
    let started = std::time::Instant::now();
    let code = crate::run_job(spec, None).await;
    eprintln!(
        "demo finished in {:.1} s; store {}, reports in {}",
        started.elapsed().as_secs_f64(),
        db.display(),
        out.display()
    );
    sim.shutdown().await;
    code
}
