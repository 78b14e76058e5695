//! Configuration in two stages: what the user wrote (flags, a TOML file, the environment), then a
//! validated [`engage::run::RunSpec`]. Layers, lowest first: the built-in defaults
//! ([`crate::defaults`], a file with the same keys), the `--config` file, `ENGAGE_*` environment
//! variables, flags. Unknown keys in the file are an error naming the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use engage::apps::{AppSpec, DEFAULT_APP};
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

use crate::defaults;

/// `--endpoint` (and the file's `endpoint`): the API's names of the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EndpointArg {
    // (No doc comments on the values: clap would list them one a line instead of inline.)
    Totals,
    #[value(name = "28hr")]
    #[serde(rename = "28hr")]
    Hr28,
    Historical,
}

impl From<EndpointArg> for Endpoint {
    fn from(e: EndpointArg) -> Endpoint {
        match e {
            EndpointArg::Totals => Endpoint::Totals,
            EndpointArg::Hr28 => Endpoint::Hr28,
            EndpointArg::Historical => Endpoint::Historical,
        }
    }
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthArg {
    User,
    Bearer,
}

impl From<AuthArg> for AuthKind {
    fn from(a: AuthArg) -> AuthKind {
        match a {
            AuthArg::User => AuthKind::User,
            AuthArg::Bearer => AuthKind::Bearer,
        }
    }
}

/// `--format`, with the other names these formats go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    #[value(alias = "txt", alias = "text")]
    Plain,
    Csv,
    #[value(alias = "json", alias = "ndjson")]
    Jsonl,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Plain => Format::Plain,
            FormatArg::Csv => Format::Csv,
            FormatArg::Jsonl => Format::Jsonl,
        }
    }
}

/// `--group-from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupFromArg {
    // Plain comments: a documented value would switch `--help` to its long layout.
    // The input file's name without its extensions.
    File,
    // The first folder under an input folder.
    Folder,
}

impl From<GroupFromArg> for engage::groups::GroupFrom {
    fn from(g: GroupFromArg) -> engage::groups::GroupFrom {
        match g {
            GroupFromArg::File => engage::groups::GroupFrom::File,
            GroupFromArg::Folder => engage::groups::GroupFrom::Folder,
        }
    }
}

/// `--series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeriesArg {
    Day,
    Hour,
}

impl From<SeriesArg> for Granularity {
    fn from(g: SeriesArg) -> Granularity {
        match g {
            SeriesArg::Day => Granularity::Day,
            SeriesArg::Hour => Granularity::Hour,
        }
    }
}

/// The most requests in flight, fixed or adaptive (see [`engage::concurrency`]).
pub const MAX_CONCURRENCY: usize = engage::concurrency::MAX_CONCURRENCY;

/// Checks a number of requests in flight; `what` names where it came from (`--concurrency`, or
/// the config file's key).
pub fn check_concurrency(n: usize, what: &str) -> Result<usize> {
    if !(1..=MAX_CONCURRENCY).contains(&n) {
        bail!("{what} {n}: requests in flight must be between 1 and {MAX_CONCURRENCY}");
    }
    Ok(n)
}

/// Checks a period's length in days (`what` names where it came from): a period of no days is
/// empty.
pub fn check_days(days: u32, what: &str) -> Result<()> {
    if days == 0 {
        bail!("{what} 0: the period must be at least 1 day");
    }
    Ok(())
}

/// The `--config` file, and the built-in defaults file ([`crate::defaults`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The endpoint.
    pub endpoint: Option<EndpointArg>,
    /// API base URL.
    pub base_url: Option<String>,
    /// N of the top-N per metric.
    pub top: Option<usize>,
    /// Requests in flight; left out, the limit adapts.
    pub concurrency: Option<usize>,
    /// Requests per window (local pace), for each app without a `rate` of its own.
    pub rate: Option<u32>,
    /// The pace's window in seconds.
    pub window_secs: Option<u64>,
    /// Attempts per batch.
    pub max_attempts: Option<u32>,
    /// Request timeout in seconds.
    pub request_timeout_secs: Option<u64>,
    /// Seconds the API may stay unreachable before the run stops as interrupted.
    pub outage_limit_secs: Option<u64>,
    /// `/historical`: the period's length in days (the other endpoints ignore it).
    pub days: Option<u32>,
    /// The history store a finished run is added to (`--history`).
    pub history: Option<PathBuf>,
    /// Credentials (or the names of environment variables holding them).
    #[serde(default)]
    pub credentials: FileCredentials,
    /// Apps beside the one of `[credentials]`/`ENGAGE_*`, each with its own budget; their keys
    /// and tokens come from the named environment variables only.
    #[serde(default)]
    pub apps: Vec<FileApp>,
    /// Owner accounts; their tokens come from the named environment variables only.
    #[serde(default)]
    pub accounts: Vec<FileAccount>,
}

/// An app in the config file: only the names of the environment variables that hold its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileApp {
    /// The name accounts refer to, shown in the report and `engage status`.
    pub name: String,
    /// Environment variable holding the app's consumer key (with the secret: user context).
    pub consumer_key_env: Option<String>,
    /// Environment variable holding the app's consumer secret.
    pub consumer_secret_env: Option<String>,
    /// Environment variable holding the app's bearer token (public metrics on /totals).
    pub bearer_token_env: Option<String>,
    /// The app's budget: requests per `window_secs` (its contract's rate).
    pub rate: Option<u32>,
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
    /// The app (`[[apps]]` name) whose keys sign for this account [default: the app of
    /// `[credentials]`/`ENGAGE_*`].
    pub app: Option<String>,
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

impl FileCredentials {
    /// Whether any credential is given.
    pub fn is_set(&self) -> bool {
        [
            &self.consumer_key,
            &self.consumer_key_env,
            &self.consumer_secret,
            &self.consumer_secret_env,
            &self.access_token,
            &self.access_token_env,
            &self.access_token_secret,
            &self.access_token_secret_env,
            &self.bearer_token,
            &self.bearer_token_env,
        ]
        .iter()
        .any(|v| v.is_some())
    }
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
    /// The apps: name and own rate (index = the app's number below).
    pub apps: Vec<(String, Option<u32>)>,
    /// Owner accounts with their user-context credentials and their app.
    pub accounts: Vec<(String, UserCredentials, usize)>,
    /// The bearer tokens, each with its app.
    pub bearers: Vec<(usize, BearerToken)>,
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
    let mut apps: Vec<(String, Option<u32>)> = Vec::new();
    // Consumer key and secret per app, by index.
    let mut keys: Vec<Option<(String, String)>> = Vec::new();
    let mut bearers = Vec::new();
    if ck.is_some() || cs.is_some() || bt.is_some() {
        apps.push((DEFAULT_APP.to_string(), None));
        keys.push(ck.clone().zip(cs.clone()));
        if let Some(t) = bt {
            bearers.push((0, BearerToken(t)));
        }
    }
    let default_app = apps.iter().position(|(n, _)| n == DEFAULT_APP);
    for app in &file.apps {
        let where_ = format!("config file {}: app `{}`", path.display(), app.name);
        if app.name.trim().is_empty() || app.name == DEFAULT_APP {
            bail!(
                "config file {}: app name `{}` is not allowed",
                path.display(),
                app.name
            );
        }
        if apps.iter().any(|(n, _)| *n == app.name) {
            bail!("{where_} is listed twice");
        }
        if app.rate == Some(0) {
            bail!("{where_}: rate must be at least 1");
        }
        let var = |v: &str| -> Result<String> {
            match std::env::var(v) {
                Ok(x) if !x.is_empty() => Ok(x),
                _ => bail!("{where_}: environment variable {v} is not set"),
            }
        };
        let pair = match (&app.consumer_key_env, &app.consumer_secret_env) {
            (Some(k), Some(s)) => Some((var(k)?, var(s)?)),
            (None, None) => None,
            _ => bail!("{where_}: consumer_key_env and consumer_secret_env go together"),
        };
        if pair.is_none() && app.bearer_token_env.is_none() {
            bail!("{where_}: needs consumer_key_env and consumer_secret_env, or bearer_token_env");
        }
        let i = apps.len();
        if let Some(v) = &app.bearer_token_env {
            bearers.push((i, BearerToken(var(v)?)));
        }
        apps.push((app.name.clone(), app.rate));
        keys.push(pair);
    }
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
                default_app.unwrap_or(0),
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
        let app = match &a.app {
            None => default_app,
            Some(name) => Some(apps.iter().position(|(n, _)| n == name).ok_or_else(|| {
                anyhow::anyhow!(
                    "config file {}: account `{}`: no app `{name}` (apps: {})",
                    path.display(),
                    a.name,
                    apps.iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?),
        };
        let Some((app, Some((consumer_key, consumer_secret)))) = app.map(|i| (i, keys[i].clone()))
        else {
            match &a.app {
                None => bail!(
                    "config file {}: account `{}` needs the app's consumer key and secret (ENGAGE_CONSUMER_KEY / ENGAGE_CONSUMER_SECRET or [credentials])",
                    path.display(),
                    a.name
                ),
                Some(name) => bail!(
                    "config file {}: account `{}`: app `{name}` has no consumer_key_env/consumer_secret_env",
                    path.display(),
                    a.name
                ),
            }
        };
        if a.name.trim().is_empty() || a.name == "bearer" {
            bail!(
                "config file {}: account name `{}` is not allowed",
                path.display(),
                a.name
            );
        }
        if accounts.iter().any(|(n, _, _)| *n == a.name) {
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
                consumer_key,
                consumer_secret,
                access_token: var(&a.access_token_env)?,
                access_token_secret: var(&a.access_token_secret_env)?,
            },
            app,
        ));
    }
    Ok(FoundCredentials {
        apps,
        accounts,
        bearers,
    })
}

/// What `engage run` was given (the flags).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// API endpoint.
    #[arg(long, value_enum)]
    pub endpoint: Option<EndpointArg>,
    /// Input files or folders (`-` for standard input); repeat or list several.
    #[arg(long = "input", short = 'i', required = true, num_args = 1..)]
    pub inputs: Vec<String>,
    /// The checkpoint store (SQLite). Running again with the same file resumes.
    #[arg(long)]
    pub db: PathBuf,
    /// Folder for the reports; `{date}` is replaced by today's UTC date (YYYY-MM-DD).
    #[arg(long)]
    pub out: PathBuf,
    /// API base URL.
    #[arg(long)]
    pub base_url: Option<String>,
    /// A TOML config file (see config/engage.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// N of the top-N per metric.
    #[arg(long)]
    pub top: Option<usize>,
    /// Metrics, comma-separated [default: every metric the endpoint and auth allow].
    #[arg(long, value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,
    /// Requests in flight, 1 to 256 [default: adaptive, up to 256: grows while answers come back as
    /// fast, halves on 429s, 5xx, timeouts or rising latency].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Local budget: at most this many requests per --window-secs (your contract's per-minute
    /// limit), per app ([[apps]] may set their own).
    #[arg(long)]
    pub rate: Option<u32>,
    /// The budget's window in seconds.
    #[arg(long)]
    pub window_secs: Option<u64>,
    /// The owner account of every input ID without a CSV `account` value.
    #[arg(long)]
    pub account: Option<String>,
    /// OAuth 1.0a user context or app-only bearer token [default: user when user credentials are
    /// configured].
    #[arg(long, value_enum)]
    pub auth: Option<AuthArg>,
    /// Attempts per batch before its IDs end failed.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Input format instead of guessing from the file name.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// CSV column holding the Tweet ID [default: tweet_id, else id].
    #[arg(long)]
    pub id_column: Option<String>,
    /// CSV column holding each ID's groups, several separated by `|` [default: group, when there is
    /// one].
    #[arg(long)]
    pub group_column: Option<String>,
    /// The group of every input ID that has none from its CSV group cell or --group-from.
    #[arg(long)]
    pub group: Option<String>,
    /// Group each input's IDs by its file name (without extensions) or by the first folder under
    /// the input folder given.
    #[arg(long, value_enum)]
    pub group_from: Option<GroupFromArg>,
    /// Rank a Tweet's engagement rate (engagements / impressions) only with at least this many
    /// impressions [default: 100, or what the last run of this --db set].
    #[arg(long)]
    pub min_impressions: Option<u64>,
    /// /historical window start (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ).
    #[arg(long)]
    pub start: Option<String>,
    /// /historical window end (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ).
    #[arg(long)]
    pub end: Option<String>,
    /// /historical: the period ending now (or at --end) that is this many days long; periods longer
    /// than 28 days are fetched as consecutive 28-day windows and merged.
    #[arg(long)]
    pub days: Option<u32>,
    /// Time-series jobs: keep each Tweet's series by day or hour [default: hour for 28hr, day for
    /// historical].
    #[arg(long, value_enum)]
    pub series: Option<SeriesArg>,
    /// Request timeout in seconds.
    #[arg(long)]
    pub request_timeout_secs: Option<u64>,
    /// When the API cannot be reached at all, wait this many seconds for it (probing), then stop as
    /// interrupted (exit 4, resumable, nothing marked failed).
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
    /// Keep only the input IDs of shard I of N (0 <= I < N), for runs split over several processes
    /// or pods and joined with `engage merge` (docs/sharding.md).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<engage::shard::Shard>,
    /// When the run has finished (exit 0 or 3), add it to this history store (created if there is
    /// none; see `engage history`).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// First backoff delay in milliseconds [default: 250].
    #[arg(long, hide = true)]
    pub backoff_ms: Option<u64>,
}

/// Replaces `{date}` in a path with today's UTC date, for nightly jobs writing one folder a day.
pub fn expand_date(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    if !s.contains("{date}") {
        return p.to_path_buf();
    }
    let date = engagement_api::timefmt::date(time::OffsetDateTime::now_utc().date());
    PathBuf::from(s.replace("{date}", &date))
}

/// A setting from the highest layer that sets it (flag, config file, built-in default), with the
/// name of where it came from for messages: the flag, or the file and key.
fn layer<T>(
    flag: Option<T>,
    flag_name: &str,
    file: Option<T>,
    key: &str,
    path: &Path,
    default: T,
) -> Layered<T> {
    match (flag, file) {
        (Some(value), _) => Layered {
            value,
            from: flag_name.to_string(),
            given: true,
        },
        (None, Some(value)) => Layered {
            value,
            from: format!("config file {}: {key}", path.display()),
            given: true,
        },
        (None, None) => Layered {
            value: default,
            from: flag_name.to_string(),
            given: false,
        },
    }
}

/// A value and where it came from.
struct Layered<T> {
    value: T,
    /// `--flag`, or `config file PATH: key`.
    from: String,
    /// Set by a flag or the file, not the built-in default.
    given: bool,
}

impl<T: Copy + PartialEq + From<u8>> Layered<T> {
    /// The value, refused when it is 0, naming the flag or the file and key it came from.
    fn at_least_one(&self) -> Result<T> {
        if self.value == T::from(0) {
            bail!("{} must be at least 1", self.from);
        }
        Ok(self.value)
    }
}

/// The flags (or config file keys), with their values, that set the part of the `/historical`
/// period `e` is about.
fn period_flags(args: &RunArgs, e: &WindowError, days: &Layered<u32>) -> String {
    let start = args.start.as_ref().map(|v| format!("--start {v}"));
    let end = args.end.as_ref().map(|v| format!("--end {v}"));
    let days_named = if days.given {
        format!("{} {}", days.from, days.value)
    } else {
        format!("{} {} (the default)", days.from, days.value)
    };
    let named: Vec<String> = match e {
        WindowError::InFuture(_) => end.into_iter().collect(),
        // The start came from --start, else from the days (before --end or now).
        WindowError::TooEarly(_) => vec![start.unwrap_or(days_named)],
        _ => [start, end, days.given.then_some(days_named)]
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

/// The history a finished run is added to: `--history`, else the config file's `history`.
pub fn history_path(args: &RunArgs) -> Result<Option<PathBuf>> {
    let history = match (&args.history, &args.config) {
        (Some(h), _) => Some(h.clone()),
        (None, Some(p)) => FileConfig::load(p)?.history,
        (None, None) => None,
    };
    if let (Some(h), Some(shard)) = (&history, args.shard) {
        // A shard is a part of the night: the history takes the merged run.
        anyhow::bail!(
            "--shard {shard} with the history {}: a shard holds part of a run; give the history to `engage merge --history` instead",
            h.display()
        );
    }
    Ok(history)
}

/// Validates the flags against the file and environment into a runnable spec.
pub fn build(args: &RunArgs) -> Result<RunSpec> {
    let (file, path) = match &args.config {
        Some(p) => (FileConfig::load(p)?, p.clone()),
        None => (FileConfig::default(), PathBuf::from("(no config file)")),
    };
    let d = defaults::get();
    let endpoint: Endpoint = args.endpoint.or(file.endpoint).unwrap_or(d.endpoint).into();
    let found = credentials(&file, &path)?;
    let auth = match args.auth {
        Some(a) => a.into(),
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
                account_apps: found.accounts.iter().map(|(_, _, a)| *a).collect(),
                accounts: found
                    .accounts
                    .into_iter()
                    .map(|(n, c, _)| (n, Credentials::User(c)))
                    .collect(),
                bearers: found
                    .bearers
                    .into_iter()
                    .map(|(a, t)| (a, Credentials::Bearer(t)))
                    .collect(),
                bearer_only: false,
            }
        }
        AuthKind::Bearer => {
            if found.bearers.is_empty() {
                bail!("no credentials: set ENGAGE_BEARER_TOKEN, or the four ENGAGE_CONSUMER_*/ENGAGE_ACCESS_TOKEN* variables, or a --config file");
            }
            Routes {
                endpoint,
                accounts: Vec::new(),
                account_apps: Vec::new(),
                bearers: found
                    .bearers
                    .into_iter()
                    .map(|(a, t)| (a, Credentials::Bearer(t)))
                    .collect(),
                bearer_only: true,
            }
        }
    };
    if args.min_impressions == Some(0) {
        bail!("--min-impressions 0: a rate needs at least 1 impression");
    }
    if let Some(g) = &args.group {
        if g.trim().is_empty() || g.contains(engage::ids::GROUP_SEPARATOR) || g.trim() != g {
            bail!(
                "--group {g:?}: a group name is not blank, has no surrounding spaces and no `{}` (it separates groups in a CSV cell)",
                engage::ids::GROUP_SEPARATOR
            );
        }
    }
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
    let top = layer(args.top, "--top", file.top, "top", &path, d.top).at_least_one()?;
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
            let days = layer(args.days, "--days", file.days, "days", &path, d.days);
            if s.is_none() {
                check_days(days.value, &days.from)?;
            }
            let w: Window = engagement_api::window::resolve_period(s, e, Some(days.value), now)
                .map_err(|e| anyhow::anyhow!("{}: {e}", period_flags(args, &e, &days)))?;
            let spec = match (&args.start, &args.end) {
                (None, None) => format!("days={}", days.value),
                (None, Some(e)) => format!("days={}..{e}", days.value),
                (Some(s), e) => format!("{s}..{}", e.as_deref().unwrap_or("now")),
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
    let series = match (endpoint, args.series) {
        (Endpoint::Totals, None) => None,
        (Endpoint::Totals, Some(_)) => bail!("--series applies to --endpoint 28hr and historical"),
        (_, Some(g)) => Some(g.into()),
        (Endpoint::Hr28, None) => Some(Granularity::Hour),
        (_, None) => Some(Granularity::Day),
    };
    let (base_url, url_from) = match (&args.base_url, &file.base_url) {
        (Some(u), _) => (u.clone(), "--base-url".to_string()),
        (None, Some(u)) => (
            u.clone(),
            format!("config file {}: base_url", path.display()),
        ),
        (None, None) => (d.base_url.clone(), "--base-url".to_string()),
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
        (Some(n), _) => Some(check_concurrency(n, "--concurrency")?),
        (None, Some(n)) => Some(check_concurrency(
            n,
            &format!("config file {}: concurrency", path.display()),
        )?),
        (None, None) => None,
    };
    let window_secs = layer(
        args.window_secs,
        "--window-secs",
        file.window_secs,
        "window_secs",
        &path,
        d.window_secs,
    )
    .at_least_one()?;
    let rate = args.rate.or(file.rate);
    if rate == Some(0) {
        bail!("--rate must be at least 1");
    }
    let max_attempts = layer(
        args.max_attempts,
        "--max-attempts",
        file.max_attempts,
        "max_attempts",
        &path,
        d.max_attempts,
    )
    .at_least_one()?;
    let timeout = args
        .request_timeout_secs
        .or(file.request_timeout_secs)
        .unwrap_or(d.request_timeout_secs);
    let outage_limit = args
        .outage_limit_secs
        .or(file.outage_limit_secs)
        .unwrap_or(d.outage_limit_secs);
    let mut retry = RetryPolicy {
        max_attempts,
        // The backoff's shape is the library's, not a setting.
        ..RetryPolicy::default()
    };
    if let Some(ms) = args.backoff_ms {
        retry.base = Duration::from_millis(ms);
        retry.cap = retry.cap.min(Duration::from_millis(ms.saturating_mul(64)));
    }
    Ok(RunSpec {
        inputs: args.inputs.clone(),
        read: ReadOptions {
            format: args.format.map(Format::from),
            id_column: args.id_column.clone(),
            group_column: args.group_column.clone(),
        },
        db: args.db.clone(),
        out: expand_date(&args.out),
        endpoint,
        metrics,
        routes,
        default_account: args.account.clone(),
        default_group: args.group.clone(),
        group_from: args.group_from.map(Into::into),
        min_impressions: args.min_impressions,
        top_n: top,
        concurrency,
        apps: found
            .apps
            .into_iter()
            .map(|(name, own)| AppSpec {
                name,
                rate: own.or(rate).map(|n| (n, Duration::from_secs(window_secs))),
            })
            .collect(),
        client: client_config(base_url, timeout, args.allow_insecure_http),
        retry,
        outage: OutagePolicy {
            limit: Duration::from_secs(outage_limit),
            // When and how the breaker probes is the library's, not a setting.
            ..OutagePolicy::default()
        },
        period,
        period_spec,
        series,
        retry_failed: args.retry_failed,
        accept_rejects: args.accept_rejects,
        shard: args.shard,
    })
}

/// The client's settings for a request timeout of `timeout_secs`: the connection gets the library's
/// connect timeout, or all of the request's when that is shorter.
pub fn client_config(
    base_url: String,
    timeout_secs: u64,
    allow_insecure_http: bool,
) -> ClientConfig {
    let request_timeout = Duration::from_secs(timeout_secs.max(1));
    ClientConfig {
        base_url,
        connect_timeout: ClientConfig::default().connect_timeout.min(request_timeout),
        request_timeout,
        allow_insecure_http,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, ValueEnum};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        let base = ["run", "--input", "ids.txt", "--db", "x.db", "--out", "out"];
        Cli::try_parse_from(base.iter().chain(extra)).unwrap().run
    }

    #[test]
    fn the_history_comes_from_the_flag_else_the_config_file() {
        assert_eq!(history_path(&args(&[])).unwrap(), None);
        let (_d, path) = file("history = \"nightly-history.db\"");
        assert_eq!(
            history_path(&args(&["--config", &path])).unwrap(),
            Some(PathBuf::from("nightly-history.db"))
        );
        assert_eq!(
            history_path(&args(&["--config", &path, "--history", "other.db"])).unwrap(),
            Some(PathBuf::from("other.db"))
        );
    }

    /// A config file in a temporary folder, with literal demo credentials so that every endpoint
    /// can be built.
    fn file(body: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engage.toml");
        std::fs::write(
            &path,
            format!(
                "{body}\n[credentials]\nconsumer_key = \"k\"\nconsumer_secret = \"s\"\n\
                 access_token = \"t\"\naccess_token_secret = \"u\"\n"
            ),
        )
        .unwrap();
        let path = path.to_string_lossy().into_owned();
        (dir, path)
    }

    fn error(extra: &[&str]) -> String {
        match build(&args(extra)) {
            Ok(_) => panic!("{extra:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_flag_values_are_the_names_the_api_and_the_store_use() {
        let name = |v: &dyn Fn() -> Option<clap::builder::PossibleValue>| {
            v().unwrap().get_name().to_string()
        };
        for e in EndpointArg::value_variants() {
            assert_eq!(name(&|| e.to_possible_value()), Endpoint::from(*e).as_str());
            let f: FileConfig =
                toml::from_str(&format!("endpoint = \"{}\"", Endpoint::from(*e).as_str())).unwrap();
            assert_eq!(f.endpoint, Some(*e));
        }
        for a in AuthArg::value_variants() {
            assert_eq!(
                name(&|| a.to_possible_value()),
                AuthKind::from(*a).to_string()
            );
        }
        for g in SeriesArg::value_variants() {
            assert_eq!(
                name(&|| g.to_possible_value()),
                Granularity::from(*g).as_str()
            );
        }
        for (given, format) in [
            ("txt", Format::Plain),
            ("text", Format::Plain),
            ("csv", Format::Csv),
            ("ndjson", Format::Jsonl),
            ("json", Format::Jsonl),
        ] {
            assert_eq!(
                args(&["--format", given]).format.map(Format::from),
                Some(format)
            );
        }
        let err = toml::from_str::<FileConfig>("endpoint = \"hourly\"").unwrap_err();
        assert!(err.to_string().contains("28hr"), "{err}");
    }

    #[test]
    fn without_flags_or_file_the_built_in_defaults_apply() {
        let (_dir, path) = file("");
        let spec = build(&args(&["--config", &path])).unwrap();
        let d = defaults::get();
        assert_eq!(spec.endpoint, Endpoint::from(d.endpoint));
        assert_eq!(spec.client.base_url, d.base_url);
        assert_eq!(spec.top_n, d.top);
        assert_eq!(spec.concurrency, None, "adaptive unless given");
        assert_eq!(spec.retry.max_attempts, d.max_attempts);
        assert_eq!(
            spec.client.request_timeout,
            Duration::from_secs(d.request_timeout_secs)
        );
        assert_eq!(spec.client.connect_timeout, Duration::from_secs(10));
        assert_eq!(spec.outage.limit, Duration::from_secs(d.outage_limit_secs));
        assert_eq!(spec.apps, AppSpec::single(None));
        let spec = build(&args(&[
            "--config",
            &path,
            "--endpoint",
            "historical",
            "--rate",
            "5",
        ]))
        .unwrap();
        assert_eq!(spec.period_spec.as_deref(), Some("days=28"));
        assert_eq!(
            spec.apps,
            AppSpec::single(Some((5, Duration::from_secs(d.window_secs))))
        );
    }

    #[test]
    fn the_file_overrides_the_defaults_and_flags_override_the_file() {
        let (_dir, path) = file(
            "endpoint = \"historical\"\ntop = 3\ndays = 60\nconcurrency = 2\n\
             request_timeout_secs = 5\n",
        );
        let spec = build(&args(&["--config", &path])).unwrap();
        assert_eq!(spec.endpoint, Endpoint::Historical);
        assert_eq!(spec.top_n, 3);
        assert_eq!(spec.concurrency, Some(2));
        assert_eq!(spec.period_spec.as_deref(), Some("days=60"));
        assert_eq!(spec.client.request_timeout, Duration::from_secs(5));
        assert_eq!(spec.client.connect_timeout, Duration::from_secs(5));
        let spec = build(&args(&[
            "--config",
            &path,
            "--top",
            "7",
            "--days",
            "30",
            "--concurrency",
            "4",
        ]))
        .unwrap();
        assert_eq!((spec.top_n, spec.concurrency), (7, Some(4)));
        assert_eq!(spec.period_spec.as_deref(), Some("days=30"));
        // The file's days is the start only when --start does not give one.
        let spec = build(&args(&["--config", &path, "--start", "2024-03-01"])).unwrap();
        assert_eq!(spec.period_spec.as_deref(), Some("2024-03-01..now"));
        // Another endpoint ignores the file's days; only the flag is refused there.
        let spec = build(&args(&["--config", &path, "--endpoint", "totals"])).unwrap();
        assert_eq!(spec.period, None);
    }

    /// `[[apps]]` name environment variables only; accounts name their app; each app's rate is its
    /// own or `--rate`; mistakes name the file, the app and the variable.
    #[test]
    fn apps_from_the_file_route_accounts_and_bearer_tokens() {
        // Names only this test uses, so that tests running at the same time do not see them.
        std::env::set_var("I16_TEST_KEY", "kb");
        std::env::set_var("I16_TEST_SECRET", "sb");
        std::env::set_var("I16_TEST_BEARER", "tb");
        std::env::set_var("I16_TEST_TOKEN", "t2");
        std::env::set_var("I16_TEST_TOKEN_SECRET", "s2");
        let apps = "[[apps]]\nname = \"b\"\nconsumer_key_env = \"I16_TEST_KEY\"\n\
                    consumer_secret_env = \"I16_TEST_SECRET\"\nbearer_token_env = \"I16_TEST_BEARER\"\n\
                    rate = 30\n\n[[apps]]\nname = \"c\"\nbearer_token_env = \"I16_TEST_BEARER\"\n";
        let account = "[[accounts]]\nname = \"two\"\napp = \"b\"\n\
                       access_token_env = \"I16_TEST_TOKEN\"\naccess_token_secret_env = \"I16_TEST_TOKEN_SECRET\"\n";
        let (_dir, path) = file(&format!("{apps}\n{account}"));
        let spec = build(&args(&[
            "--config",
            &path,
            "--rate",
            "5",
            "--window-secs",
            "1",
        ]))
        .unwrap();
        let names: Vec<(&str, Option<(u32, Duration)>)> = spec
            .apps
            .iter()
            .map(|a| (a.name.as_str(), a.rate))
            .collect();
        let sec = Duration::from_secs(1);
        assert_eq!(
            names,
            [
                ("default", Some((5, sec))),
                ("b", Some((30, sec))),
                ("c", Some((5, sec)))
            ]
        );
        let accounts: Vec<&str> = spec
            .routes
            .accounts
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(accounts, ["default", "two"]);
        assert_eq!(spec.routes.account_apps, [0, 1]);
        match &spec.routes.accounts[1].1 {
            Credentials::User(u) => assert_eq!(
                (u.consumer_key.as_str(), u.access_token.as_str()),
                ("kb", "t2")
            ),
            _ => panic!("user context"),
        }
        let bearer_apps: Vec<usize> = spec.routes.bearers.iter().map(|(a, _)| *a).collect();
        assert_eq!(bearer_apps, [1, 2]);

        // An app with only a bearer token cannot sign for an account.
        let (_dir, path) = file(&format!("{apps}\n{}", account.replace("\"b\"", "\"c\"")));
        let err = error(&["--config", &path]);
        assert!(err.contains("app `c` has no consumer_key_env"), "{err}");
        let (_dir, path) = file(&format!("{apps}\n{}", account.replace("\"b\"", "\"x\"")));
        let err = error(&["--config", &path]);
        assert!(err.contains(&path) && err.contains("no app `x`"), "{err}");
        let (_dir, path) = file(&apps.replace("I16_TEST_SECRET", "I16_TEST_UNSET"));
        let err = error(&["--config", &path]);
        assert!(
            err.contains(&path) && err.contains("app `b`") && err.contains("I16_TEST_UNSET"),
            "{err}"
        );
        let (_dir, path) = file(&apps.replace("name = \"c\"", "name = \"b\""));
        assert!(error(&["--config", &path]).contains("listed twice"));
        let (_dir, path) = file(&apps.replace("rate = 30", "rate = 0"));
        assert!(error(&["--config", &path]).contains("rate must be at least 1"));
    }

    #[test]
    fn bad_values_name_the_flag_or_the_file_and_key() {
        let (_dir, path) = file("top = 0\ndays = 0\nendpoint = \"historical\"\n");
        let err = error(&["--config", &path]);
        assert_eq!(err, format!("config file {path}: top must be at least 1"));
        let err = error(&["--config", &path, "--top", "2"]);
        assert_eq!(
            err,
            format!("config file {path}: days 0: the period must be at least 1 day")
        );
        let err = error(&["--config", &path, "--top", "0"]);
        assert_eq!(err, "--top must be at least 1");
        let (_dir, path) = file("concurency = 3\n");
        let err = error(&["--config", &path]);
        assert!(err.contains(&path) && err.contains("concurency"), "{err}");
    }
}
