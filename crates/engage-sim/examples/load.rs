//! A small load generator: 250-ID bearer `/totals` requests against the simulator on loopback.
//!
//! ```text
//! cargo run --release -p engage-sim --example load -- [--concurrency 16] [--secs 5] [--url URL]
//! ```
//!
//! Without `--url` it starts a simulator in-process on 127.0.0.1:0 with the demo config. Client and
//! server then share the machine's cores, so the figure is a floor for the server alone. Responses
//! are gzip-decoded and read to the end, as a real client would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use engage_sim::{metrics, SimConfig, DEMO};
use time::OffsetDateTime;

#[derive(Parser)]
struct Args {
    /// Simulator base URL; default: start one in-process.
    #[arg(long)]
    url: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Tweet IDs per request (250 is the /totals maximum).
    #[arg(long, default_value_t = 250)]
    ids: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (url, handle) = match &args.url {
        Some(u) => (u.trim_end_matches('/').to_string(), None),
        None => {
            let h = engage_sim::start(SimConfig::default(), SocketAddr::from(([127, 0, 0, 1], 0)))
                .await?;
            (h.url(), Some(h))
        }
    };
    let endpoint = format!("{url}/insights/engagement/totals");

    // Distinct bodies so consecutive requests ask for different Tweets (created over the last
    // 60 days, like a real bulk job's recent IDs).
    let now = OffsetDateTime::now_utc();
    let bodies: Vec<String> = (0..64u64)
        .map(|b| {
            let ids: Vec<String> = (0..args.ids as u64)
                .map(|i| {
                    let age = time::Duration::minutes(((b * 7919 + i * 104_729) % 86_400) as i64);
                    metrics::tweet_id_at(now - age, b * 1000 + i).to_string()
                })
                .collect();
            serde_json::json!({
                "tweet_ids": ids,
                "engagement_types": ["favorites", "retweets", "quote_tweets", "replies", "video_views"],
                "groupings": {"by_tweet": {"group_by": ["tweet.id", "engagement.type"]}},
            })
            .to_string()
        })
        .collect();
    let bodies = Arc::new(bodies);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.secs);
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (client, endpoint, bodies) = (client.clone(), endpoint.clone(), bodies.clone());
        let (ok, errors, bytes) = (ok.clone(), errors.clone(), bytes.clone());
        workers.push(tokio::spawn(async move {
            let mut n = w;
            let bearer = format!("Bearer {}", DEMO.bearer_token);
            while Instant::now() < deadline {
                let body = bodies[n % bodies.len()].clone();
                // A stride so the workers do not all send the same body.
                n += 7;
                let result = client
                    .post(&endpoint)
                    .header("authorization", &bearer)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match result {
                    Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                        Ok(b) => {
                            bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "{} IDs/request, concurrency {}, {:.1} s: {} ok, {} errors, {:.0} requests/s ({:.0} Tweet IDs/s), {:.1} KB decoded per answer",
        args.ids,
        args.concurrency,
        elapsed,
        ok,
        errors,
        ok as f64 / elapsed,
        (ok as f64 * args.ids as f64) / elapsed,
        bytes.load(Ordering::Relaxed) as f64 / ok.max(1) as f64 / 1024.0,
    );
    if let Some(h) = handle {
        h.shutdown().await;
    }
    Ok(())
}
