//! `engage demo`: the whole pipeline on a generated collection against the built-in simulator,
//! with the simulator's fake demo credentials. Nothing leaves the machine.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use engage::fetch::RetryPolicy;
use engage::ids::ReadOptions;
use engage::run::RunSpec;
use engagement_api::auth::{Credentials, UserCredentials};
use engagement_api::client::ClientConfig;
use engagement_api::{AuthKind, Endpoint};
use rand::{Rng, SeedableRng};

use crate::exit;

/// Snowflake epoch (ms since the Unix epoch).
const TWEPOCH_MS: u64 = 1_288_834_974_657;

/// `engage demo` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many IDs to generate.
    #[arg(long, default_value_t = 100_000)]
    pub ids: usize,
    /// Folder for the input, the store and the reports [default: a new temporary folder, kept].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seed of the generated collection and of the simulator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Writes `n` realistic snowflake IDs from the last 60 days, with about 2% duplicates and a few
/// lines of the kinds spreadsheets and exports leave behind.
fn generate(path: &std::path::Path, n: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() as u64 * 1000;
    let span = 60 * 24 * 3600 * 1000u64;
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
    for i in 0..n {
        if i % 2000 == 1999 {
            writeln!(w, "{}", bad[(i / 2000) % bad.len()])?;
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
        writeln!(w, "{id}")?;
    }
    w.flush()
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> u8 {
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
    let input = dir.join("ids.txt");
    let db = dir.join("demo.db");
    let out = dir.join("out");
    for p in [&db] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    }
    if let Err(e) = generate(&input, args.ids, args.seed) {
        eprintln!("error: writing {}: {e}", input.display());
        return exit::INTERNAL;
    }

    let sim_config = engage_sim::SimConfig {
        seed: args.seed,
        deleted: 0.003,
        protected: 0.0005,
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
        "simulator listening on {}; {} IDs generated in {}",
        sim.url(),
        args.ids,
        input.display()
    );

    let endpoint = Endpoint::Totals;
    let spec = RunSpec {
        inputs: vec![input.to_string_lossy().into_owned()],
        read: ReadOptions::default(),
        db: db.clone(),
        out: out.clone(),
        endpoint,
        metrics: endpoint.allowed_metrics(AuthKind::User),
        // The simulator's documented fake demo credentials.
        credentials: Credentials::User(UserCredentials {
            consumer_key: "demo-consumer-key".into(),
            consumer_secret: "demo-consumer-secret".into(),
            access_token: "demo-access-token".into(),
            access_token_secret: "demo-access-token-secret".into(),
        }),
        top_n: 10,
        concurrency: args.concurrency,
        rate: None,
        client: ClientConfig {
            base_url: sim.url(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            allow_insecure_http: false,
        },
        retry: RetryPolicy::default(),
        period: None,
        period_spec: None,
        series: None,
    };
    let started = std::time::Instant::now();
    let code = crate::run_job(spec, true).await;
    eprintln!(
        "demo finished in {:.1} s; store {}, reports in {}",
        started.elapsed().as_secs_f64(),
        db.display(),
        out.display()
    );
    sim.shutdown().await;
    code
}
