//! The built-in defaults: `defaults.toml`, compiled in and read with the same struct as a `--config`
//! file ([`FileConfig`]), is the one place each default of `engage run` is written. It is the lowest
//! configuration layer; the flags' help shows its values ([`document`]), and `engage demo` takes the
//! settings it shares with `engage run` from it.

use std::sync::LazyLock;

use crate::config::{EndpointArg, FileConfig};

/// The embedded file.
pub const TEXT: &str = include_str!("defaults.toml");

/// The keys of [`FileConfig`] that have no default, and so are absent from [`TEXT`].
pub const WITHOUT_DEFAULT: &[&str] = &[
    "concurrency",
    "rate",
    "history",
    "credentials",
    "apps",
    "accounts",
];

/// Every default, each one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// `endpoint`.
    pub endpoint: EndpointArg,
    /// `base_url`.
    pub base_url: String,
    /// `top`.
    pub top: usize,
    /// `window_secs`.
    pub window_secs: u64,
    /// `max_attempts`.
    pub max_attempts: u32,
    /// `request_timeout_secs`.
    pub request_timeout_secs: u64,
    /// `outage_limit_secs`.
    pub outage_limit_secs: u64,
    /// `days`.
    pub days: u32,
}

impl Defaults {
    /// Reads a defaults file: a config file that must set every key that has a default, and none
    /// that has not.
    pub fn parse(text: &str) -> Result<Defaults, String> {
        let f: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        fn set<T>(key: &str, v: Option<T>) -> Result<T, String> {
            v.ok_or_else(|| format!("no default for `{key}`"))
        }
        if f.concurrency.is_some()
            || f.rate.is_some()
            || !f.apps.is_empty()
            || !f.accounts.is_empty()
            || f.credentials.is_set()
        {
            return Err(format!("{WITHOUT_DEFAULT:?} have no default"));
        }
        Ok(Defaults {
            endpoint: set("endpoint", f.endpoint)?,
            base_url: set("base_url", f.base_url)?,
            top: set("top", f.top)?,
            window_secs: set("window_secs", f.window_secs)?,
            max_attempts: set("max_attempts", f.max_attempts)?,
            request_timeout_secs: set("request_timeout_secs", f.request_timeout_secs)?,
            outage_limit_secs: set("outage_limit_secs", f.outage_limit_secs)?,
            days: set("days", f.days)?,
        })
    }
}

/// The built-in defaults, read once.
pub fn get() -> &'static Defaults {
    static DEFAULTS: LazyLock<Defaults> = LazyLock::new(|| {
        // The unit tests parse the same text, so this cannot fail in a tested build.
        Defaults::parse(TEXT).unwrap_or_else(|e| panic!("the built-in defaults.toml: {e}"))
    });
    &DEFAULTS
}

/// The subcommands whose flags take a default from the file, and which keys: `engage demo` has its
/// own `--days`.
const DOCUMENTED: &[(&str, Option<&[&str]>)] = &[("run", None), ("demo", Some(&["endpoint"]))];

/// Appends `[default: VALUE]` to the help of each flag named like a key of the defaults file, so the
/// help cannot disagree with the defaults in force.
pub fn document(mut cmd: clap::Command) -> clap::Command {
    let table: toml::Table = toml::from_str(TEXT).expect("the built-in defaults.toml is TOML");
    for (sub, keys) in DOCUMENTED {
        cmd = cmd.mut_subcommand(*sub, |mut c| {
            for (key, value) in &table {
                if keys.is_some_and(|k| !k.contains(&key.as_str()))
                    || !c.get_arguments().any(|a| a.get_id() == key.as_str())
                {
                    continue;
                }
                let value = match value {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                c = c.mut_arg(key.as_str(), |a| {
                    let help = a.get_help().map(|h| format!("{h} [default: {value}]"));
                    let long = a.get_long_help().map(|h| format!("{h} [default: {value}]"));
                    match (help, long) {
                        (Some(h), Some(l)) => a.help(h).long_help(l),
                        (Some(h), None) => a.help(h),
                        (None, Some(l)) => a.long_help(l),
                        (None, None) => a.help(format!("[default: {value}]")),
                    }
                });
            }
            c
        });
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{Deserialize, Deserializer, Visitor};

    /// The field names of a struct, as serde sees them.
    fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Probe<'a>(&'a mut &'static [&'static str]);
        impl<'de> Deserializer<'de> for Probe<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(serde::de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(serde::de::Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut names: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut names));
        names
    }

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn every_key_of_the_config_file_has_a_default_or_is_known_to_have_none() {
        let defaults = Defaults::parse(TEXT).unwrap();
        assert_eq!(get(), &defaults);
        let keys = fields::<FileConfig>();
        assert!(keys.contains(&"concurrency"), "{keys:?}");
        let text = table(TEXT);
        let set: Vec<&str> = text.keys().map(String::as_str).collect();
        for key in keys {
            assert_eq!(
                set.contains(key),
                !WITHOUT_DEFAULT.contains(key),
                "defaults.toml and `{key}`"
            );
        }
        for key in WITHOUT_DEFAULT {
            assert!(keys.contains(key), "{key} is not a config key");
        }
        // A default removed from the file is refused, not silently `None`.
        let without_top: String = TEXT
            .lines()
            .filter(|l| !l.starts_with("top ="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            Defaults::parse(&without_top).unwrap_err(),
            "no default for `top`"
        );
        assert!(Defaults::parse(&format!("{TEXT}\nrate = 5\n")).is_err());
    }

    #[test]
    fn the_example_config_documents_every_key_with_the_default_values() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/engage.toml");
        let text = std::fs::read_to_string(path).unwrap();
        // It is a valid config file.
        toml::from_str::<FileConfig>(&text).unwrap();
        for key in fields::<FileConfig>() {
            let documented = text.lines().any(|l| {
                let l = l.trim_start_matches('#').trim();
                l.starts_with(&format!("{key} ="))
                    || l == format!("[{key}]")
                    || l == format!("[[{key}]]")
            });
            assert!(documented, "config/engage.toml does not mention `{key}`");
        }
        // The values it sets are the defaults, so that copying it changes nothing by accident.
        let (example, defaults) = (table(&text), table(TEXT));
        for (key, value) in &example {
            if let Some(d) = defaults.get(key) {
                assert_eq!(value, d, "config/engage.toml sets `{key}`");
            }
        }
    }

    #[test]
    fn the_readme_states_the_same_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        for (key, value) in &table(TEXT) {
            let value = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let flag = format!("--{}", key.replace('_', "-"));
            // The configuration table's row of the flag: | `--flag ...` | default | notes |
            let row = readme
                .lines()
                .find(|l| {
                    l.starts_with("| ")
                        && l.split(" | ").next().is_some_and(|c| {
                            c.contains(&format!("{flag} ")) || c.contains(&format!("{flag}`"))
                        })
                })
                .unwrap_or_else(|| panic!("README.md has no row for {flag}"));
            let default = row.split(" | ").nth(1).unwrap_or_default();
            let words: Vec<&str> = default
                .split(|c: char| !(c.is_ascii_alphanumeric() || ":/._-".contains(c)))
                .collect();
            assert!(
                words.contains(&value.as_str()),
                "README.md says {default:?} for {flag}, defaults.toml {value}"
            );
        }
    }

    #[test]
    fn the_library_defaults_are_the_files() {
        let d = get();
        let client = engagement_api::ClientConfig::default();
        assert_eq!(client.base_url, d.base_url);
        assert_eq!(client.request_timeout.as_secs(), d.request_timeout_secs);
        let retry = engage::fetch::RetryPolicy::default();
        assert_eq!(retry.max_attempts, d.max_attempts);
        let outage = engage::health::OutagePolicy::default();
        assert_eq!(outage.limit.as_secs(), d.outage_limit_secs);
        // The longest window the API serves is the default period.
        assert_eq!(
            engagement_api::window::MAX_SPAN.whole_days(),
            i64::from(d.days)
        );
    }
}
