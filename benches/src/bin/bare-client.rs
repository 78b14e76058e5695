//! `bare-client`: the floor that engage's end-to-end throughput is measured against.
//!
//! It sends the requests engage would send for an ID file on `/totals` and nothing else: it reads the
//! file (one ID a line), cuts it into batches of 250, and POSTs each batch with the same HTTP stack
//! (reqwest with gzip), a fresh OAuth 1.0a user-context signature per request
//! ([`Credentials::authorization`]) and the same number of requests in flight. Bodies are read (so
//! the transfer and the gzip decoding happen, as in engage) and dropped: no parsing, no store, no
//! retries, no report. `engage`'s wall time over this one's, measured in the same run, is the
//! pipeline's overhead.
//!
//! ```text
//! bare-client --base-url http://127.0.0.1:PORT --input ids.txt [--concurrency 8] [--batch 250]
//! ```
//!
//! Credentials come from `ENGAGE_CONSUMER_KEY`, `ENGAGE_CONSUMER_SECRET`, `ENGAGE_ACCESS_TOKEN` and
//! `ENGAGE_ACCESS_TOKEN_SECRET`, as for engage. Prints one line,
//! `N requests, N answered 200, N other, N IDs in S s (N IDs/s)`, and exits 1 if any answer was not
//! a 200.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use engagement_api::auth::{Credentials, UserCredentials};
use engagement_api::{AuthKind, Endpoint, GroupBy};
use futures::StreamExt;

/// The flags.
struct Args {
    base_url: String,
    input: String,
    concurrency: usize,
    batch: usize,
}

fn parse_args() -> Result<Args> {
    let mut base_url = None;
    let mut input = None;
    let mut concurrency = 8;
    let mut batch = Endpoint::Totals.max_ids();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--base-url" => base_url = Some(value()?),
            "--input" => input = Some(value()?),
            "--concurrency" => concurrency = value()?.parse().context("--concurrency")?,
            "--batch" => batch = value()?.parse().context("--batch")?,
            "-h" | "--help" => {
                println!(
                    "usage: bare-client --base-url URL --input FILE [--concurrency K] [--batch N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (see --help)"),
        }
    }
    let (Some(base_url), Some(input)) = (base_url, input) else {
        bail!("--base-url and --input are required (see --help)");
    };
    if concurrency == 0 || batch == 0 || batch > Endpoint::Totals.max_ids() {
        bail!(
            "--concurrency must be at least 1 and --batch within 1..={}",
            Endpoint::Totals.max_ids()
        );
    }
    Ok(Args {
        base_url,
        input,
        concurrency,
        batch,
    })
}

fn credentials() -> Result<Credentials> {
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    Ok(Credentials::User(UserCredentials {
        consumer_key: var("ENGAGE_CONSUMER_KEY")?,
        consumer_secret: var("ENGAGE_CONSUMER_SECRET")?,
        access_token: var("ENGAGE_ACCESS_TOKEN")?,
        access_token_secret: var("ENGAGE_ACCESS_TOKEN_SECRET")?,
    }))
}

/// The part of the body after the IDs: every metric engage asks for by default with user context,
/// grouped by Tweet and metric, as engage's `by_tweet` grouping.
fn body_tail() -> String {
    let metrics: Vec<String> = Endpoint::Totals
        .allowed_metrics(AuthKind::User)
        .iter()
        .map(|m| format!("\"{}\"", m.as_str()))
        .collect();
    format!(
        "],\"engagement_types\":[{}],\"groupings\":{{\"by_tweet\":{{\"group_by\":[\"{}\",\"{}\"]}}}}}}",
        metrics.join(","),
        GroupBy::TweetId.as_str(),
        GroupBy::EngagementType.as_str()
    )
}

/// `{"tweet_ids":["1","2",...], ...tail}`: IDs as strings, as engage sends them.
fn body(ids: &[u64], tail: &str) -> Vec<u8> {
    let mut out = String::with_capacity(16 + ids.len() * 22 + tail.len());
    out.push_str("{\"tweet_ids\":[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(&id.to_string());
        out.push('"');
    }
    out.push_str(tail);
    out.into_bytes()
}

async fn send(
    http: &reqwest::Client,
    url: &str,
    creds: &Credentials,
    body: Vec<u8>,
) -> std::result::Result<u16, reqwest::Error> {
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::AUTHORIZATION,
            creds.authorization("POST", url),
        )
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    // Read (and gunzip) the whole body like engage does, then drop it.
    drop(resp.bytes().await?);
    Ok(status)
}

async fn run(args: Args) -> Result<bool> {
    let started = Instant::now();
    let creds = credentials()?;
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read {}", args.input))?;
    let ids: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    drop(text);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;
    let url = format!(
        "{}{}",
        args.base_url.trim_end_matches('/'),
        Endpoint::Totals.path()
    );
    let tail = body_tail();
    let ends = futures::stream::iter(ids.chunks(args.batch))
        .map(|chunk| {
            let (http, url, creds) = (&http, &url, &creds);
            let body = body(chunk, &tail);
            async move {
                send(http, url, creds, body)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(args.concurrency);
    let mut ends = std::pin::pin!(ends);
    let (mut requests, mut ok, mut other) = (0u64, 0u64, 0u64);
    let mut first_problem: Option<String> = None;
    while let Some(end) = ends.next().await {
        requests += 1;
        match end {
            Ok(200) => ok += 1,
            Ok(status) => {
                other += 1;
                first_problem.get_or_insert_with(|| format!("HTTP {status}"));
            }
            Err(e) => {
                other += 1;
                first_problem.get_or_insert(e);
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{requests} requests, {ok} answered 200, {other} other, {} IDs in {wall:.3} s ({:.0} IDs/s)",
        ids.len(),
        ids.len() as f64 / wall
    );
    if let Some(p) = first_problem {
        eprintln!("first problem: {p}");
    }
    Ok(other == 0)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
