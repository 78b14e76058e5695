//! A local simulator of the X Enterprise Engagement API (`POST /insights/engagement/{totals,28hr,historical}`).
//!
//! It answers like the real service as the fact sheet describes it, deterministically from a seed, fast
//! enough to benchmark a bulk client against, and with injectable faults. Components, in the order a
//! request meets them:
//!
//! - [`server`](start): the axum router and handler; the order of checks; gzip and body faults.
//! - [`ratelimit`]: the fixed-window request budget and its `x-per-minute-*` headers.
//! - [`faults`]: per-request fault decisions from (seed, request number).
//! - [`oauth`]: bearer tokens and real OAuth 1.0a HMAC-SHA1 verification.
//! - request rules: [`engagement_api::request::validate`], shared with the client, so both sides
//!   enforce the same rules with the same texts and statuses.
//! - [`metrics`]: every count as a pure function of (seed, Tweet ID, metric, time).
//! - `render`: the response JSON, written by hand from a cube of running counts.
//! - [`config`]: defaults, TOML file, validation; [`cli`]: the `engage sim` flags.
//!
//! Decisions on everything the fact sheet leaves unverified are in `docs/simulator.md`.
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod faults;
pub mod metrics;
pub mod oauth;
pub mod ratelimit;
mod render;
mod server;

pub use config::{Account, App, FaultConfig, HourWithoutDay, SimConfig, SimError, DEMO};
pub use server::{start, SimHandle, GZIP_REQUIRED, NOT_FOUND};
