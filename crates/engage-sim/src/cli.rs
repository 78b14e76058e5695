//! `engage sim`: the command-line face of the simulator.
//!
//! Flags override the config file, which overrides the built-in demo defaults. The first line on
//! stdout is `listening on http://ADDR`, flushed at once, so scripts and tests can wait for it and
//! read the port when `--addr 127.0.0.1:0` picked one.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use time::OffsetDateTime;

use crate::config::{parse_now, Account, App, HourWithoutDay, SimConfig, SimError};

/// Flags of `engage sim`. Every config key has a flag; a flag that is given wins over the file.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on. Must be loopback unless --public is given.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub addr: SocketAddr,
    /// Allow a non-loopback --addr. The simulator speaks plain HTTP with demo credentials, so only
    /// do this on a network you trust.
    #[arg(long)]
    pub public: bool,
    /// TOML config file (see config/sim.toml); flags override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seed of every random choice (metric values, deleted/protected IDs, faults).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Pin "now" for reproducible answers, e.g. 2026-11-20T00:00:00Z (default: the real clock).
    #[arg(long, value_parser = parse_now, value_name = "RFC3339")]
    pub now: Option<OffsetDateTime>,
    /// The App's consumer key.
    #[arg(long)]
    pub consumer_key: Option<String>,
    /// The App's consumer secret.
    #[arg(long)]
    pub consumer_secret: Option<String>,
    /// A user account; repeat for several (replaces the file's list). With n accounts, the i-th
    /// (from 0) owns the Tweet IDs with id % n == i. `APP/NAME:...`: the token is that --app's.
    #[arg(long = "account", value_name = "[APP/]NAME:TOKEN:SECRET", value_parser = parse_account)]
    pub accounts: Vec<Account>,
    /// Another app, with its own keys, bearer token and rate limit per window (RATE left out or
    /// empty: not limited); repeat for several (replaces the file's list).
    #[arg(long = "app", value_name = "NAME:KEY:SECRET[:BEARER[:RATE]]", value_parser = parse_app)]
    pub apps: Vec<App>,
    /// An app-only bearer token; repeat for several (replaces the file's list).
    #[arg(long = "bearer-token", value_name = "TOKEN")]
    pub bearer_tokens: Vec<String>,
    /// Requests allowed per window; enables the x-per-minute-* headers and 429s.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Length of the rate-limit window in seconds (aligned to the Unix epoch).
    #[arg(long, value_name = "S")]
    pub window_secs: Option<u64>,
    /// Answer 406 when Accept-Encoding lacks gzip (the default).
    #[arg(long, overrides_with = "no_require_gzip")]
    pub require_gzip: bool,
    /// Serve requests without Accept-Encoding: gzip (plain JSON) instead of answering 406.
    #[arg(long, overrides_with = "require_gzip")]
    pub no_require_gzip: bool,
    /// Share of Tweet IDs that are deleted (0.0 to 1.0).
    #[arg(long, value_name = "P")]
    pub deleted: Option<f64>,
    /// Share of Tweet IDs that are protected (0.0 to 1.0).
    #[arg(long, value_name = "P")]
    pub protected: Option<f64>,
    /// Probability of an injected 500/502/503.
    #[arg(long, value_name = "P")]
    pub fail_5xx: Option<f64>,
    /// Probability of an injected 429.
    #[arg(long, value_name = "P")]
    pub fail_429: Option<f64>,
    /// Probability that a request never gets an answer.
    #[arg(long, value_name = "P")]
    pub hang: Option<f64>,
    /// Probability that the connection drops in the middle of the body.
    #[arg(long, value_name = "P")]
    pub reset: Option<f64>,
    /// Probability of a truncated JSON body.
    #[arg(long, value_name = "P")]
    pub malformed: Option<f64>,
    /// Probability of an uncompressed body although gzip was asked.
    #[arg(long, value_name = "P")]
    pub no_gzip: Option<f64>,
    /// Probability that a 200 body takes the documentation's variant shapes (bare-number counts,
    /// an unrequested metric, an extra errors string).
    #[arg(long, value_name = "P")]
    pub doc_shapes: Option<f64>,
    /// Delay every answer by this many milliseconds (plus up to 20 % jitter).
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<u64>,
    /// Nesting of engagement.hour without engagement.day.
    #[arg(long, value_enum)]
    pub hour_without_day: Option<HourWithoutDay>,
}

fn parse_account(s: &str) -> Result<Account, String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(token), Some(secret))
            if !name.is_empty() && !token.is_empty() && !secret.is_empty() =>
        {
            // `APP/NAME`: the account belongs to that app.
            let (app, name) = match name.split_once('/') {
                Some((app, name)) if !app.is_empty() && !name.is_empty() => {
                    (Some(app.to_string()), name)
                }
                Some(_) => {
                    return Err("expected [APP/]NAME:ACCESS_TOKEN:ACCESS_TOKEN_SECRET".into())
                }
                None => (None, name),
            };
            Ok(Account {
                name: name.into(),
                access_token: token.into(),
                access_token_secret: secret.into(),
                app,
            })
        }
        _ => Err("expected NAME:ACCESS_TOKEN:ACCESS_TOKEN_SECRET".into()),
    }
}

fn parse_app(s: &str) -> Result<App, String> {
    const FORM: &str = "expected NAME:CONSUMER_KEY:CONSUMER_SECRET[:BEARER_TOKEN[:RATE]]";
    let parts: Vec<&str> = s.split(':').collect();
    let (name, key, secret) = match parts[..] {
        [n, k, s, ..] if !n.is_empty() && !k.is_empty() && !s.is_empty() => (n, k, s),
        _ => return Err(FORM.into()),
    };
    if parts.len() > 5 {
        return Err(FORM.into());
    }
    let bearer = parts.get(3).filter(|b| !b.is_empty());
    let rate_limit = match parts.get(4).filter(|r| !r.is_empty()) {
        Some(r) => Some(
            r.parse()
                .map_err(|_| format!("{FORM}: RATE `{r}` is not a number"))?,
        ),
        None => None,
    };
    Ok(App {
        name: name.into(),
        consumer_key: key.into(),
        consumer_secret: secret.into(),
        bearer_tokens: bearer.map(|b| b.to_string()).into_iter().collect(),
        rate_limit,
    })
}

impl SimArgs {
    /// The effective config: defaults, then the file, then the flags; validated.
    pub fn to_config(&self) -> Result<SimConfig, SimError> {
        let mut c = match &self.config {
            Some(path) => SimConfig::from_toml_file(path)?,
            None => SimConfig::default(),
        };
        fn set<T: Clone>(slot: &mut T, flag: &Option<T>) {
            if let Some(v) = flag {
                *slot = v.clone();
            }
        }
        set(&mut c.seed, &self.seed);
        if self.now.is_some() {
            c.now = self.now;
        }
        set(&mut c.consumer_key, &self.consumer_key);
        set(&mut c.consumer_secret, &self.consumer_secret);
        if !self.accounts.is_empty() {
            c.accounts = self.accounts.clone();
        }
        if !self.bearer_tokens.is_empty() {
            c.bearer_tokens = self.bearer_tokens.clone();
        }
        if !self.apps.is_empty() {
            c.apps = self.apps.clone();
        }
        if self.rate_limit.is_some() {
            c.rate_limit = self.rate_limit;
        }
        set(&mut c.window_secs, &self.window_secs);
        if self.require_gzip {
            c.require_gzip = true;
        }
        if self.no_require_gzip {
            c.require_gzip = false;
        }
        set(&mut c.deleted, &self.deleted);
        set(&mut c.protected, &self.protected);
        set(&mut c.faults.fail_5xx, &self.fail_5xx);
        set(&mut c.faults.fail_429, &self.fail_429);
        set(&mut c.faults.hang, &self.hang);
        set(&mut c.faults.reset, &self.reset);
        set(&mut c.faults.malformed, &self.malformed);
        set(&mut c.faults.no_gzip, &self.no_gzip);
        set(&mut c.faults.doc_shapes, &self.doc_shapes);
        set(&mut c.faults.latency_ms, &self.latency_ms);
        set(&mut c.hour_without_day, &self.hour_without_day);
        c.validate()?;
        Ok(c)
    }
}

/// Starts the simulator, prints `listening on http://ADDR` as the first stdout line and serves
/// until Ctrl-C.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    serve(args, std::io::stdout(), async {
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")
    })
    .await
}

/// `run` with the output and the stop signal as parameters, so it can be tested.
async fn serve(
    args: SimArgs,
    mut out: impl Write,
    until: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let config = args.to_config()?;
    if !args.addr.ip().is_loopback() && !args.public {
        bail!(
            "--addr {} is not a loopback address; the simulator serves plain HTTP with demo \
             credentials, so pass --public to listen there anyway",
            args.addr
        );
    }
    let handle = crate::start(config.clone(), args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    writeln!(out, "listening on {}", handle.url())?;
    out.flush()?;
    eprintln!("{}", summary(&config));
    let stopped = until.await;
    handle.shutdown().await;
    stopped
}

/// One human line per setting, on stderr, so the stdout contract stays one line.
fn summary(c: &SimConfig) -> String {
    let now = c.now.map_or_else(
        || "real clock".to_string(),
        engagement_api::window::format_time,
    );
    let accounts: Vec<&str> = c.accounts.iter().map(|a| a.name.as_str()).collect();
    let limit = |l: Option<u32>| {
        l.map_or_else(
            || "off".to_string(),
            |n| format!("{n} requests per {} s", c.window_secs),
        )
    };
    let mut rate = limit(c.rate_limit);
    for a in &c.apps {
        rate.push_str(&format!(
            "; app {}: {}, {} bearer tokens",
            a.name,
            limit(a.rate_limit),
            a.bearer_tokens.len()
        ));
    }
    let f = &c.faults;
    format!(
        "seed {}, now {now}\naccounts: {} (account i owns IDs with id % {} == i)\nbearer tokens: {}\n\
         rate limit: {rate}; require gzip: {}\ndeleted {}, protected {}; faults: 5xx {}, 429 {}, hang {}, \
         reset {}, malformed {}, no-gzip {}, doc-shapes {}, latency {} ms\nhour without day: {:?}",
        c.seed,
        accounts.join(", "),
        c.accounts.len(),
        c.bearer_tokens.len(),
        c.require_gzip,
        c.deleted,
        c.protected,
        f.fail_5xx,
        f.fail_429,
        f.hang,
        f.reset,
        f.malformed,
        f.no_gzip,
        f.doc_shapes,
        f.latency_ms,
        c.hour_without_day
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> SimArgs {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .unwrap()
            .sim
    }

    #[test]
    fn flags_override_the_defaults() {
        let a = parse(&[
            "--seed",
            "7",
            "--now",
            "2026-11-20T00:00:00Z",
            "--rate-limit",
            "3",
            "--no-require-gzip",
            "--fail-5xx",
            "0.5",
            "--doc-shapes",
            "0.25",
            "--hour-without-day",
            "by_day",
            "--account",
            "a:t1:s1",
            "--account",
            "b:t2:s2",
        ]);
        let c = a.to_config().unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.rate_limit, Some(3));
        assert!(!c.require_gzip);
        assert_eq!(c.faults.fail_5xx, 0.5);
        assert_eq!(c.faults.doc_shapes, 0.25);
        assert_eq!(c.hour_without_day, HourWithoutDay::ByDay);
        assert_eq!(c.accounts.len(), 2);
        assert_eq!(c.bearer_tokens, SimConfig::default().bearer_tokens);
        assert_eq!(parse(&[]).to_config().unwrap(), SimConfig::default());
        assert_eq!(parse(&[]).addr.to_string(), "127.0.0.1:8787");
    }

    #[test]
    fn apps_and_their_accounts_from_flags() {
        let c = parse(&[
            "--app",
            "b:kb:sb:tb:30",
            "--app",
            "c:kc:sc",
            "--account",
            "b/x:t1:s1",
            "--account",
            "y:t2:s2",
        ])
        .to_config()
        .unwrap();
        assert_eq!(c.apps.len(), 2);
        assert_eq!(
            (c.apps[0].bearer_tokens.clone(), c.apps[0].rate_limit),
            (vec!["tb".to_string()], Some(30))
        );
        assert_eq!(
            (c.apps[1].bearer_tokens.len(), c.apps[1].rate_limit),
            (0, None)
        );
        assert_eq!(c.accounts[0].app.as_deref(), Some("b"));
        assert_eq!(c.accounts[0].name, "x");
        assert_eq!(c.accounts[1].app, None);
        assert!(summary(&c).contains("app b: 30 requests per 60 s, 1 bearer tokens"));
        assert!(Cli::try_parse_from(["sim", "--app", "b:kb"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--app", "b:kb:sb:t:many"]).is_err());
        assert!(parse(&["--account", "nope/x:t:s"]).to_config().is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--hang", "2"]).to_config().is_err());
        assert!(parse(&["--doc-shapes", "1.5"]).to_config().is_err());
        assert!(Cli::try_parse_from(["sim", "--account", "nosecret:x"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--now", "yesterday"]).is_err());
    }

    #[tokio::test]
    async fn first_stdout_line_is_the_url_and_the_server_answers() {
        #[derive(Clone, Default)]
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            parse(&["--addr", "127.0.0.1:0"]),
            out.clone(),
            async move {
                let _ = stopped.await;
                Ok(())
            },
        ));
        let line = loop {
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            if let Some(line) = text.lines().next() {
                break line.to_string();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let addr = line
            .strip_prefix("listening on http://127.0.0.1:")
            .expect(&line);
        assert!(addr.parse::<u16>().unwrap() > 0);
        // Something answers there.
        let stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{addr}")).await;
        assert!(stream.is_ok());
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn non_loopback_needs_public() {
        let err = run(parse(&["--addr", "0.0.0.0:0"])).await.unwrap_err();
        assert!(err.to_string().contains("--public"), "{err}");
    }
}
