//! Configuration in two stages: what the user wrote (flags, a TOML file, the environment), then a
//! validated [`engage::run::RunSpec`]. Layers, lowest first: built-in defaults, the `--config` file,
//! `ENGAGE_*` environment variables, flags. Unknown keys in the file are an error naming the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use engage::fetch::RetryPolicy;
use engage::health::OutagePolicy;
use engage::ids::{Format, ReadOptions};
use engage::route::Routes;
use engage::run::RunSpec;
use engage::series::Granularity;
use engagement_api::auth::{BearerToken, Credentials, UserCredentials};
use engagement_api::client::{ClientConfig, ClientError};
use engagement_api::window::WindowError;
use engagement_api::{AuthKind, Endpoint, Metric, Window};
use serde::Deserialize;

/// The real API's host.
pub const DEFAULT_BASE_URL: &str = "https://data-api.x.com";

/// The most requests in flight. The server's per-minute budget, not the number of open requests,
/// bounds throughput long before this; the cap keeps sockets, buffered answers and the queues
/// between the stages (sized from it) bounded when a value is mistyped.
pub const MAX_CONCURRENCY: usize = 256;

/// Checks a number of requests in flight; `what` names where it came from (`--concurrency`, or
/// the config file's key).
pub fn check_concurrency(n: usize, what: &str) -> Result<usize> {
    if !(1..=MAX_CONCURRENCY).contains(&n) {
        bail!("{what} {n}: requests in flight must be between 1 and {MAX_CONCURRENCY}");
    }
    Ok(n)
}

/// Checks `--days`: a period of no days is empty.
pub fn check_days(days: u32) -> Result<()> {
    if days == 0 {
        bail!("--days 0: the period must be at least 1 day");
    }
    Ok(())
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// API base URL.
    pub base_url: Option<String>,
    /// Requests in flight.
    pub concurrency: Option<usize>,
    /// Requests per window (local pace).
    pub rate: Option<u32>,
    /// The pace's window in seconds.
    pub window_secs: Option<u64>,
    /// Attempts per batch.
    pub max_attempts: Option<u32>,
    /// Request timeout in seconds.
    pub request_timeout_secs: Option<u64>,
    /// Seconds the API may stay unreachable before the run stops as interrupted.
    pub outage_limit_secs: Option<u64>,
    /// Credentials (or the names of environment variables holding them).
    #[serde(default)]
    pub credentials: FileCredentials,
    /// Owner accounts; their tokens come from the named environment variables only.
    #[serde(default)]
    pub accounts: Vec<FileAccount>,
}

/// An owner account in the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccount {
    /// The name used in the CSV `account` column and `--account`.
    pub name: String,
    /// Environment variable holding the account's access token.
    pub access_token_env: String,
    /// Environment variable holding the account's access token secret.
    pub access_token_secret_env: String,
}

/// Credentials in the config file: each value literally, or `<name>_env` naming an environment
/// variable, which keeps secrets out of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCredentials {
    consumer_key: Option<String>,
    consumer_key_env: Option<String>,
    consumer_secret: Option<String>,
    consumer_secret_env: Option<String>,
    access_token: Option<String>,
    access_token_env: Option<String>,
    access_token_secret: Option<String>,
    access_token_secret_env: Option<String>,
    bearer_token: Option<String>,
    bearer_token_env: Option<String>,
}

impl FileConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }
}

fn pick(
    env_name: &str,
    literal: &Option<String>,
    file_env: &Option<String>,
    file: &Path,
) -> Result<Option<String>> {
    if let Ok(v) = std::env::var(env_name) {
        if !v.is_empty() {
            return Ok(Some(v));
        }
    }
    if let Some(var) = file_env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => bail!(
                "config file {}: environment variable {var} is not set",
                file.display()
            ),
        };
    }
    Ok(literal.clone())
}

/// The name of the account given by the `ENGAGE_ACCESS_TOKEN*` variables.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Credentials found in the environment and the file.
pub struct FoundCredentials {
    /// Owner accounts with their user-context credentials.
    pub accounts: Vec<(String, UserCredentials)>,
    /// The bearer token, if any.
    pub bearer: Option<BearerToken>,
}

/// Collects credentials: `ENGAGE_*` variables first, then the file.
pub fn credentials(file: &FileConfig, path: &Path) -> Result<FoundCredentials> {
    let c = &file.credentials;
    let ck = pick(
        "ENGAGE_CONSUMER_KEY",
        &c.consumer_key,
        &c.consumer_key_env,
        path,
    )?;
    let cs = pick(
        "ENGAGE_CONSUMER_SECRET",
        &c.consumer_secret,
        &c.consumer_secret_env,
        path,
    )?;
    let at = pick(
        "ENGAGE_ACCESS_TOKEN",
        &c.access_token,
        &c.access_token_env,
        path,
    )?;
    let ats = pick(
        "ENGAGE_ACCESS_TOKEN_SECRET",
        &c.access_token_secret,
        &c.access_token_secret_env,
        path,
    )?;
    let bt = pick(
        "ENGAGE_BEARER_TOKEN",
        &c.bearer_token,
        &c.bearer_token_env,
        path,
    )?;
    let mut accounts = Vec::new();
    match (&ck, &cs, at, ats) {
        (Some(_), Some(_), None, None) | (None, None, None, None) => {}
        (
            Some(consumer_key),
            Some(consumer_secret),
            Some(access_token),
            Some(access_token_secret),
        ) => {
            accounts.push((
                DEFAULT_ACCOUNT.to_string(),
                UserCredentials {
                    consumer_key: consumer_key.clone(),
                    consumer_secret: consumer_secret.clone(),
                    access_token,
                    access_token_secret,
                },
            ));
        }
        (ck, cs, at, ats) => {
            let missing: Vec<&str> = [
                ("ENGAGE_CONSUMER_KEY", ck.is_none()),
                ("ENGAGE_CONSUMER_SECRET", cs.is_none()),
                ("ENGAGE_ACCESS_TOKEN", at.is_none()),
                ("ENGAGE_ACCESS_TOKEN_SECRET", ats.is_none()),
            ]
            .into_iter()
            .filter(|(_, m)| *m)
            .map(|(n, _)| n)
            .collect();
            bail!(
                "incomplete user-context credentials: missing {}",
                missing.join(", ")
            )
        }
    }
    for a in &file.accounts {
        let (Some(consumer_key), Some(consumer_secret)) = (&ck, &cs) else {
            bail!(
                "config file {}: account `{}` needs the app's consumer key and secret (ENGAGE_CONSUMER_KEY / ENGAGE_CONSUMER_SECRET or [credentials])",
                path.display(),
                a.name
            );
        };
        if a.name.trim().is_empty() || a.name == "bearer" {
            bail!(
                "config file {}: account name `{}` is not allowed",
                path.display(),
                a.name
            );
        }
        if accounts.iter().any(|(n, _)| *n == a.name) {
            bail!(
                "config file {}: account `{}` is listed twice",
                path.display(),
                a.name
            );
        }
        let var = |v: &str| -> Result<String> {
            match std::env::var(v) {
                Ok(x) if !x.is_empty() => Ok(x),
                _ => bail!(
                    "config file {}: account `{}`: environment variable {v} is not set",
                    path.display(),
                    a.name
                ),
            }
        };
        accounts.push((
            a.name.clone(),
            UserCredentials {
                consumer_key: consumer_key.clone(),
                consumer_secret: consumer_secret.clone(),
                access_token: var(&a.access_token_env)?,
                access_token_secret: var(&a.access_token_secret_env)?,
            },
        ));
    }
    Ok(FoundCredentials {
        accounts,
        bearer: bt.map(BearerToken),
    })
}

/// What `engage run` was given (the flags).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Endpoint: totals, 28hr or historical.
    #[arg(long, default_value = "totals")]
    pub endpoint: String,
    /// Input files or folders (`-` for standard input); repeat or list several.
    #[arg(long = "input", short = 'i', required = true, num_args = 1..)]
    pub inputs: Vec<String>,
    /// The checkpoint store (SQLite). Running again with the same file resumes.
    #[arg(long)]
    pub db: PathBuf,
    /// Folder for the reports; `{date}` is replaced by today's UTC date (YYYY-MM-DD).
    #[arg(long)]
    pub out: PathBuf,
    /// API base URL [default: https://data-api.x.com].
    #[arg(long)]
    pub base_url: Option<String>,
    /// A TOML config file (see config/engage.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// N of the top-N per metric.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Metrics, comma-separated [default: every metric the endpoint and auth allow].
    #[arg(long, value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,
    /// Requests in flight, 1 to 256 [default: 8].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Local budget: at most this many requests per --window-secs (your contract's per-minute limit).
    #[arg(long)]
    pub rate: Option<u32>,
    /// The budget's window in seconds [default: 60].
    #[arg(long)]
    pub window_secs: Option<u64>,
    /// The owner account of every input ID without a CSV `account` value.
    #[arg(long)]
    pub account: Option<String>,
    /// user (OAuth 1.0a user context) or bearer [default: user when user credentials are configured].
    #[arg(long)]
    pub auth: Option<String>,
    /// Attempts per batch before its IDs end failed [default: 10].
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Input format instead of guessing from the file name: plain, csv or jsonl.
    #[arg(long)]
    pub format: Option<String>,
    /// CSV column holding the Tweet ID [default: tweet_id, else id].
    #[arg(long)]
    pub id_column: Option<String>,
    /// /historical window start (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ).
    #[arg(long)]
    pub start: Option<String>,
    /// /historical window end (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ).
    #[arg(long)]
    pub end: Option<String>,
    /// /historical: the period ending now (or at --end) that is this many days long [default: 28].
    /// Periods longer than 28 days are fetched as consecutive 28-day windows and merged.
    #[arg(long)]
    pub days: Option<u32>,
    /// Time-series jobs: keep each Tweet's series by `day` or `hour` [default: hour for 28hr, day for historical].
    #[arg(long)]
    pub series: Option<String>,
    /// Request timeout in seconds [default: 60].
    #[arg(long)]
    pub request_timeout_secs: Option<u64>,
    /// When the API cannot be reached at all, wait this many seconds for it (probing), then stop as
    /// interrupted (exit 4, resumable, nothing marked failed) [default: 1800].
    #[arg(long)]
    pub outage_limit_secs: Option<u64>,
    /// Allow plain http:// to a host that is not loopback (never do this with real credentials).
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Send the IDs that ended `failed` in an earlier run of this --db once more.
    #[arg(long)]
    pub retry_failed: bool,
    /// Read an input even when next to nothing in it is a Tweet ID (more than half of its lines, and
    /// at least 100, rejected); without it such an input stops the run before anything is fetched.
    #[arg(long)]
    pub accept_rejects: bool,
    /// First backoff delay in milliseconds [default: 250].
    #[arg(long, hide = true)]
    pub backoff_ms: Option<u64>,
}

fn parse_format(s: &str) -> Result<Format> {
    Ok(match s {
        "plain" | "txt" | "text" => Format::Plain,
        "csv" => Format::Csv,
        "jsonl" | "json" | "ndjson" => Format::Jsonl,
        other => bail!("--format {other}: expected plain, csv or jsonl"),
    })
}

/// Replaces `{date}` in a path with today's UTC date, for nightly jobs writing one folder a day.
pub fn expand_date(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    if !s.contains("{date}") {
        return p.to_path_buf();
    }
    let d = time::OffsetDateTime::now_utc().date();
    let date = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    PathBuf::from(s.replace("{date}", &date))
}

/// The flags, with their values, that set the part of the `/historical` period `e` is about.
fn period_flags(args: &RunArgs, e: &WindowError) -> String {
    let start = args.start.as_ref().map(|v| format!("--start {v}"));
    let end = args.end.as_ref().map(|v| format!("--end {v}"));
    let days = match args.days {
        Some(d) => format!("--days {d}"),
        None => "--days 28 (the default)".to_string(),
    };
    let named: Vec<String> = match e {
        WindowError::InFuture(_) => end.into_iter().collect(),
        // The start came from --start, else from --days (before --end or now).
        WindowError::TooEarly(_) => vec![start.unwrap_or(days)],
        _ => [start, end, args.days.map(|d| format!("--days {d}"))]
            .into_iter()
            .flatten()
            .collect(),
    };
    if named.is_empty() {
        "--start/--end/--days".to_string()
    } else {
        named.join(" ")
    }
}

/// Validates the flags against the file and environment into a runnable spec.
pub fn build(args: &RunArgs) -> Result<RunSpec> {
    let (file, path) = match &args.config {
        Some(p) => (FileConfig::load(p)?, p.clone()),
        None => (FileConfig::default(), PathBuf::from("(no config file)")),
    };
    let endpoint: Endpoint = args
        .endpoint
        .parse()
        .map_err(|e| anyhow::anyhow!("--endpoint: {e}"))?;
    let found = credentials(&file, &path)?;
    let auth = match args.auth.as_deref() {
        Some("user") => AuthKind::User,
        Some("bearer") => AuthKind::Bearer,
        Some(other) => bail!("--auth {other}: expected user or bearer"),
        None if !found.accounts.is_empty() => AuthKind::User,
        None => AuthKind::Bearer,
    };
    if !endpoint.allows_auth(auth) {
        bail!("/{endpoint} needs OAuth 1.0a user context: set ENGAGE_CONSUMER_KEY, ENGAGE_CONSUMER_SECRET, ENGAGE_ACCESS_TOKEN and ENGAGE_ACCESS_TOKEN_SECRET (or accounts in the config file)");
    }
    let routes = match auth {
        AuthKind::User => {
            if found.accounts.is_empty() {
                bail!("--auth user: no user-context credentials (ENGAGE_CONSUMER_KEY, ENGAGE_CONSUMER_SECRET, ENGAGE_ACCESS_TOKEN, ENGAGE_ACCESS_TOKEN_SECRET, or accounts in the config file)");
            }
            Routes {
                endpoint,
                accounts: found
                    .accounts
                    .into_iter()
                    .map(|(n, c)| (n, Credentials::User(c)))
                    .collect(),
                bearer: found.bearer.map(Credentials::Bearer),
                bearer_only: false,
            }
        }
        AuthKind::Bearer => Routes::bearer_only(
            endpoint,
            found.bearer.ok_or_else(|| {
                anyhow::anyhow!("no credentials: set ENGAGE_BEARER_TOKEN, or the four ENGAGE_CONSUMER_*/ENGAGE_ACCESS_TOKEN* variables, or a --config file")
            })?,
        ),
    };
    if let Some(a) = &args.account {
        if auth == AuthKind::User && !routes.accounts.iter().any(|(n, _)| n == a) {
            bail!(
                "--account {a}: no such account configured (configured: {})",
                routes
                    .accounts
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let allowed = endpoint.allowed_metrics(auth);
    let metrics: Vec<Metric> = match &args.metrics {
        None => allowed.clone(),
        Some(names) => {
            let mut out = Vec::new();
            for n in names.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
                let m: Metric =
                    n.parse().map_err(|_| {
                        anyhow::anyhow!(
                        "--metrics: unknown metric `{n}`; /{endpoint} with {auth} auth allows: {}",
                        allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
                    )
                    })?;
                if !allowed.contains(&m) {
                    bail!(
                        "--metrics: `{n}` is not available on /{endpoint} with {auth} auth; allowed: {}",
                        allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
                    );
                }
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            if out.is_empty() {
                bail!("--metrics: no metric given");
            }
            out
        }
    };
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let (period, period_spec) = match endpoint {
        Endpoint::Historical => {
            let now = time::OffsetDateTime::now_utc();
            let parse = |field, v: &Option<String>| -> Result<_> {
                v.as_deref()
                    .map(|s| engagement_api::window::parse_time(field, s))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--{field}: {e}"))
            };
            let (s, e) = (parse("start", &args.start)?, parse("end", &args.end)?);
            if s.is_some() && args.days.is_some() {
                bail!("--days and --start both set the start; give one");
            }
            if let Some(d) = args.days {
                check_days(d)?;
            }
            let w: Window = engagement_api::window::resolve_period(s, e, args.days, now)
                .map_err(|e| anyhow::anyhow!("{}: {e}", period_flags(args, &e)))?;
            let spec = match (&args.start, &args.end, args.days) {
                (None, None, days) => format!("days={}", days.unwrap_or(28)),
                (None, Some(e), days) => format!("days={}..{e}", days.unwrap_or(28)),
                (Some(s), e, _) => format!("{s}..{}", e.as_deref().unwrap_or("now")),
            };
            (Some(w), Some(spec))
        }
        _ => {
            if args.start.is_some() || args.end.is_some() || args.days.is_some() {
                bail!("--start/--end/--days apply to --endpoint historical only");
            }
            (None, None)
        }
    };
    let series = match (endpoint, args.series.as_deref()) {
        (Endpoint::Totals, None) => None,
        (Endpoint::Totals, Some(_)) => bail!("--series applies to --endpoint 28hr and historical"),
        (_, Some("day")) => Some(Granularity::Day),
        (_, Some("hour")) => Some(Granularity::Hour),
        (_, Some(other)) => bail!("--series {other}: expected day or hour"),
        (Endpoint::Hr28, None) => Some(Granularity::Hour),
        (_, None) => Some(Granularity::Day),
    };
    let (base_url, url_from) = match (&args.base_url, &file.base_url) {
        (Some(u), _) => (u.clone(), "--base-url".to_string()),
        (None, Some(u)) => (
            u.clone(),
            format!("config file {}: base_url", path.display()),
        ),
        (None, None) => (DEFAULT_BASE_URL.to_string(), "--base-url".to_string()),
    };
    // Checked here, before anything is created, so that the error can name the flags.
    engagement_api::client::check_base_url(&base_url, args.allow_insecure_http).map_err(
        |e| match e {
            ClientError::InsecureHttp(_) => anyhow::anyhow!(
                "{url_from} {base_url}: refusing plain http to a host that is not loopback; \
                 add --allow-insecure-http to allow it (never with real credentials)"
            ),
            other => anyhow::anyhow!("{url_from}: {other}"),
        },
    )?;
    let concurrency = match (args.concurrency, file.concurrency) {
        (Some(n), _) => check_concurrency(n, "--concurrency")?,
        (None, Some(n)) => {
            check_concurrency(n, &format!("config file {}: concurrency", path.display()))?
        }
        (None, None) => 8,
    };
    let window_secs = args.window_secs.or(file.window_secs).unwrap_or(60);
    if window_secs == 0 {
        bail!("--window-secs must be at least 1");
    }
    let rate = args.rate.or(file.rate);
    if rate == Some(0) {
        bail!("--rate must be at least 1");
    }
    let max_attempts = args.max_attempts.or(file.max_attempts).unwrap_or(10);
    if max_attempts == 0 {
        bail!("--max-attempts must be at least 1");
    }
    let timeout = args
        .request_timeout_secs
        .or(file.request_timeout_secs)
        .unwrap_or(60);
    let mut retry = RetryPolicy {
        max_attempts,
        ..RetryPolicy::default()
    };
    if let Some(ms) = args.backoff_ms {
        retry.base = Duration::from_millis(ms);
        retry.cap = retry.cap.min(Duration::from_millis(ms.saturating_mul(64)));
    }
    Ok(RunSpec {
        inputs: args.inputs.clone(),
        read: ReadOptions {
            format: args.format.as_deref().map(parse_format).transpose()?,
            id_column: args.id_column.clone(),
        },
        db: args.db.clone(),
        out: expand_date(&args.out),
        endpoint,
        metrics,
        routes,
        default_account: args.account.clone(),
        top_n: args.top,
        concurrency,
        rate: rate.map(|n| (n, Duration::from_secs(window_secs))),
        client: ClientConfig {
            base_url,
            connect_timeout: Duration::from_secs(10.min(timeout.max(1))),
            request_timeout: Duration::from_secs(timeout.max(1)),
            allow_insecure_http: args.allow_insecure_http,
        },
        retry,
        outage: OutagePolicy {
            limit: args
                .outage_limit_secs
                .or(file.outage_limit_secs)
                .map_or(engage::health::DEFAULT_OUTAGE_LIMIT, Duration::from_secs),
            ..OutagePolicy::default()
        },
        period,
        period_spec,
        series,
        retry_failed: args.retry_failed,
        accept_rejects: args.accept_rejects,
    })
}
