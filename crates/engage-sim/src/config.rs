//! Simulator configuration: built-in demo defaults, overridable by a TOML file and then by flags.
//!
//! The defaults are a working demo setup, so `engage sim` runs with no file at all. A file only needs
//! the keys it changes; unknown keys are an error that names the key, because a misspelt fault
//! probability that silently stays 0 makes a fault test pass for the wrong reason.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A configuration that cannot be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config (unknown keys included).
    #[error("invalid simulator config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        source: toml::de::Error,
    },
    /// A value out of range; the message names the key and the allowed values.
    #[error("invalid simulator config: {0}")]
    Invalid(String),
}

/// Fake credentials, documented in the README, that the built-in config accepts. `engage demo`, the
/// tests and the docs' examples use them; spelt here once, so a demo cannot drift from its simulator.
pub struct DemoCredentials {
    /// The App's consumer key.
    pub consumer_key: &'static str,
    /// The App's consumer secret.
    pub consumer_secret: &'static str,
    /// The name of the one user account.
    pub account: &'static str,
    /// That account's access token.
    pub access_token: &'static str,
    /// That account's access token secret.
    pub access_token_secret: &'static str,
    /// The app-only bearer token.
    pub bearer_token: &'static str,
}

/// The simulator's demo credentials (its [`SimConfig::default`]).
pub const DEMO: DemoCredentials = DemoCredentials {
    consumer_key: "demo-consumer-key",
    consumer_secret: "demo-consumer-secret",
    account: "demo",
    access_token: "demo-access-token",
    access_token_secret: "demo-access-token-secret",
    bearer_token: "demo-bearer-token",
};

/// One user account: its OAuth 1.0a access token signs user-context requests for the Tweets it owns.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// A label for logs and docs.
    pub name: String,
    /// `oauth_token`.
    pub access_token: String,
    /// The token secret (second half of the signing key).
    pub access_token_secret: String,
    /// The app (an `[[apps]]` name) that issued the token; its consumer key must sign with it.
    /// `None`: the top-level app.
    #[serde(default)]
    pub app: Option<String>,
}

impl fmt::Debug for Account {
    // Secrets never print, even in a demo config: logs get copied into issues.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("access_token", &self.access_token)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// An app beside the top-level one: its own keys, bearer tokens and rate limit, as the real API
/// counts each app's requests against its own budget.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Its name, which accounts refer to.
    pub name: String,
    /// Its consumer key.
    pub consumer_key: String,
    /// Its consumer secret.
    pub consumer_secret: String,
    /// Its app-only bearer tokens.
    #[serde(default)]
    pub bearer_tokens: Vec<String>,
    /// Its requests per window; `None`: not limited (and no rate-limit headers).
    pub rate_limit: Option<u32>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("consumer_key", &self.consumer_key)
            .field("bearer_tokens", &self.bearer_tokens.len())
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

/// How `engagement.hour` nests when the grouping has no `engagement.day` before it. The fact sheet's
/// sources disagree (§6), so this is a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum HourWithoutDay {
    /// Keys `00`..`23`, each summed over every day of the window (the Ruby client's captured response).
    #[default]
    #[value(name = "hour_of_day", alias = "hour-of-day")]
    HourOfDay,
    /// A date level is inserted above the hours anyway (the docs' grouping guide).
    #[value(name = "by_day", alias = "by-day")]
    ByDay,
}

/// Injected faults. Each probability is decided per request from the seed and the request's sequence
/// number, so a run is reproducible given the order of requests.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Answer 500, 502 or 503 instead of processing.
    pub fail_5xx: f64,
    /// Answer 429 whatever the rate-limit budget says.
    pub fail_429: f64,
    /// Never answer (the client's timeout has to end it).
    pub hang: f64,
    /// Send the status, headers and part of the body, then drop the connection.
    pub reset: f64,
    /// Send a truncated, unparseable JSON body (still gzip-encoded when gzip was asked).
    pub malformed: f64,
    /// Send plain JSON without `Content-Encoding` although gzip was asked.
    pub no_gzip: f64,
    /// Give a 200 body the documentation's variant shapes: some counts as bare JSON numbers, one
    /// metric the request did not name, and an extra `errors` string.
    pub doc_shapes: f64,
    /// Delay every response by this many milliseconds plus up to 20 % jitter.
    pub latency_ms: u64,
}

/// The whole simulator configuration. `Default` is the built-in demo setup.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random choice: metric values, deleted/protected IDs, faults.
    pub seed: u64,
    /// A pinned "now" for reproducible answers; `None` follows the real clock. OAuth timestamps and the
    /// rate-limit window always use the real clock.
    #[serde(deserialize_with = "de_now")]
    pub now: Option<OffsetDateTime>,
    /// The App's consumer key every OAuth 1.0a request must carry.
    pub consumer_key: String,
    /// The App's consumer secret (first half of the signing key).
    pub consumer_secret: String,
    /// User accounts; with n > 1, account i owns the Tweet IDs with `id % n == i`.
    pub accounts: Vec<Account>,
    /// App-only bearer tokens accepted on `/totals`.
    pub bearer_tokens: Vec<String>,
    /// Requests allowed per window over all endpoints, for the top-level app; `None` disables
    /// limiting and its headers.
    pub rate_limit: Option<u32>,
    /// More apps, each with its own keys, bearer tokens and rate limit (the top-level keys are the
    /// first app). Accounts name their app.
    pub apps: Vec<App>,
    /// Length of the fixed rate-limit window, aligned to multiples of it since the Unix epoch.
    pub window_secs: u64,
    /// Answer 406 when `Accept-Encoding` lacks gzip.
    pub require_gzip: bool,
    /// Share of Tweet IDs that are deleted (200 partial, listed in `unavailable_tweet_ids`).
    pub deleted: f64,
    /// Share of Tweet IDs that are protected (400 for the whole request).
    pub protected: f64,
    /// Injected faults.
    pub faults: FaultConfig,
    /// The nesting of `engagement.hour` without `engagement.day`.
    pub hour_without_day: HourWithoutDay,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            now: None,
            consumer_key: DEMO.consumer_key.into(),
            consumer_secret: DEMO.consumer_secret.into(),
            accounts: vec![Account {
                name: DEMO.account.into(),
                access_token: DEMO.access_token.into(),
                access_token_secret: DEMO.access_token_secret.into(),
                app: None,
            }],
            bearer_tokens: vec![DEMO.bearer_token.into()],
            rate_limit: None,
            apps: Vec::new(),
            window_secs: 60,
            require_gzip: true,
            deleted: 0.0,
            protected: 0.0,
            faults: FaultConfig::default(),
            hour_without_day: HourWithoutDay::HourOfDay,
        }
    }
}

impl SimConfig {
    /// Reads a TOML file over the built-in defaults and validates the result.
    pub fn from_toml_file(path: &Path) -> Result<SimConfig, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: SimConfig = toml::from_str(&text).map_err(|source| SimError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency; the message names the key and what is allowed.
    pub fn validate(&self) -> Result<(), SimError> {
        let probabilities = [
            ("deleted", self.deleted),
            ("protected", self.protected),
            ("faults.fail_5xx", self.faults.fail_5xx),
            ("faults.fail_429", self.faults.fail_429),
            ("faults.hang", self.faults.hang),
            ("faults.reset", self.faults.reset),
            ("faults.malformed", self.faults.malformed),
            ("faults.no_gzip", self.faults.no_gzip),
            ("faults.doc_shapes", self.faults.doc_shapes),
        ];
        for (key, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::Invalid(format!(
                    "{key} = {p} is not a probability (0.0 to 1.0)"
                )));
            }
        }
        if self.accounts.is_empty() {
            // Ownership is `id % accounts`, which needs at least one account.
            return Err(SimError::Invalid(
                "accounts must list at least one account".into(),
            ));
        }
        let mut tokens: Vec<&str> = self
            .accounts
            .iter()
            .map(|a| a.access_token.as_str())
            .collect();
        tokens.sort_unstable();
        if tokens.windows(2).any(|w| w[0] == w[1]) {
            return Err(SimError::Invalid(
                "accounts: two accounts share an access_token".into(),
            ));
        }
        if self.window_secs == 0 {
            return Err(SimError::Invalid("window_secs must be at least 1".into()));
        }
        if self.rate_limit == Some(0) {
            return Err(SimError::Invalid(
                "rate_limit must be at least 1 (leave it out to disable limiting)".into(),
            ));
        }
        let mut keys = vec![self.consumer_key.as_str()];
        let mut bearers: Vec<&str> = self.bearer_tokens.iter().map(String::as_str).collect();
        for (i, app) in self.apps.iter().enumerate() {
            let key = format!("apps[{i}] ({})", app.name);
            if app.name.is_empty() || self.apps[..i].iter().any(|a| a.name == app.name) {
                return Err(SimError::Invalid(format!(
                    "{key}: the name must be given and unique"
                )));
            }
            if app.rate_limit == Some(0) {
                return Err(SimError::Invalid(format!(
                    "{key}: rate_limit must be at least 1 (leave it out to disable limiting)"
                )));
            }
            keys.push(&app.consumer_key);
            bearers.extend(app.bearer_tokens.iter().map(String::as_str));
        }
        for (what, list) in [("consumer key", &mut keys), ("bearer token", &mut bearers)] {
            list.sort_unstable();
            if list.windows(2).any(|w| w[0] == w[1]) {
                return Err(SimError::Invalid(format!("apps: two apps share a {what}")));
            }
        }
        for a in &self.accounts {
            if let Some(app) = &a.app {
                if !self.apps.iter().any(|x| &x.name == app) {
                    return Err(SimError::Invalid(format!(
                        "accounts: `{}` names app `{app}`, which apps does not list",
                        a.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The index of the app (0: the top-level one, i + 1: `apps[i]`) named `name` (`None`: the
    /// top-level one).
    pub fn app_index(&self, name: Option<&str>) -> Option<usize> {
        match name {
            None => Some(0),
            Some(n) => self.apps.iter().position(|a| a.name == n).map(|i| i + 1),
        }
    }

    /// Each app's rate limit, by index (see [`Self::app_index`]).
    pub fn rate_limits(&self) -> Vec<Option<u32>> {
        std::iter::once(self.rate_limit)
            .chain(self.apps.iter().map(|a| a.rate_limit))
            .collect()
    }
}

/// Parses an RFC 3339 UTC time such as `2026-11-20T00:00:00Z`.
pub fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time like 2026-11-20T00:00:00Z: {e}"))
}

/// `now` as a quoted string or a bare TOML datetime.
fn de_now<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Toml(toml::value::Datetime),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Text(s) => s,
        Raw::Toml(dt) => dt.to_string(),
    };
    parse_now(&text).map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn empty_file_is_the_demo_config() {
        let c: SimConfig = toml::from_str("").unwrap();
        assert_eq!(c, SimConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<SimConfig>("seed = 1\nfail5xx = 0.5\n").unwrap_err();
        assert!(err.to_string().contains("fail5xx"), "{err}");
        let err = toml::from_str::<SimConfig>("[faults]\nhang_ms = 3\n").unwrap_err();
        assert!(err.to_string().contains("hang_ms"), "{err}");
    }

    #[test]
    fn now_as_string_or_datetime() {
        let a: SimConfig = toml::from_str(r#"now = "2026-11-20T00:00:00Z""#).unwrap();
        let b: SimConfig = toml::from_str("now = 2026-11-20T00:00:00Z").unwrap();
        assert_eq!(a.now, Some(datetime!(2026-11-20 00:00 UTC)));
        assert_eq!(a.now, b.now);
        assert!(toml::from_str::<SimConfig>(r#"now = "tomorrow""#).is_err());
    }

    #[test]
    fn ranges_are_checked() {
        let c = SimConfig {
            deleted: 1.5,
            ..SimConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("deleted"));
        let c = SimConfig {
            accounts: vec![],
            ..SimConfig::default()
        };
        assert!(c.validate().is_err());
        let c: SimConfig = toml::from_str("hour_without_day = \"by_day\"").unwrap();
        assert_eq!(c.hour_without_day, HourWithoutDay::ByDay);
        let c: SimConfig = toml::from_str("[faults]\ndoc_shapes = 1.5").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("faults.doc_shapes"), "{err}");
    }

    #[test]
    fn apps_have_their_own_keys_and_accounts_name_existing_apps() {
        let c: SimConfig = toml::from_str(
            "[[apps]]\nname = \"b\"\nconsumer_key = \"kb\"\nconsumer_secret = \"sb\"\n\
             bearer_tokens = [\"tb\"]\nrate_limit = 30\n\
             [[accounts]]\nname = \"x\"\naccess_token = \"t\"\naccess_token_secret = \"s\"\napp = \"b\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.app_index(Some("b")), Some(1));
        assert_eq!(c.rate_limits(), [None, Some(30)]);
        let mut bad = c.clone();
        bad.accounts[0].app = Some("nope".into());
        assert!(bad.validate().unwrap_err().to_string().contains("nope"));
        let mut bad = c.clone();
        bad.apps[0].consumer_key = bad.consumer_key.clone();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("consumer key"));
        let mut bad = c;
        bad.apps[0].bearer_tokens = bad.bearer_tokens.clone();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("bearer token"));
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/sim.toml");
        let c = SimConfig::from_toml_file(&path).unwrap();
        assert!(c.accounts.len() > 1);
    }
}
