//! The engage pipeline library.
//!
//! A run ([`run::run`]) is a chain of stages, each in its own file under `run/`:
//! prepare (identity) → ingest → batcher → fetching → writer, with the report pass beside them, and
//! one cancellation token that stops them all. The modules they are built from, in the order data
//! flows through them:
//! - [`ids`]: the streaming, resumable Tweet ID reader (plain, CSV, JSON lines, gzip) with per-line rejects;
//! - [`sorted`]: the external sort that hands the store unique IDs in ascending order;
//! - [`store`]: the SQLite checkpoint store: deduplicated IDs, outcomes, rejects, the run's identity;
//! - [`lock`]: one writer per store (an OS lock beside it);
//! - [`route`]: which credentials (an owner account's user context, or the bearer token) serve which ID;
//! - [`gate`]: the client-side pace and the gate driven by the server's rate-limit headers;
//! - [`health`]: the breaker that holds every batch while the API cannot be reached at all;
//! - [`fetch`]: one batch in, one [`outcome::Settled`] per response out; every retry rule lives there;
//! - [`outcome`], [`series`]: what a fetch settles about an ID, and the time-series buckets: the
//!   vocabulary the fetcher produces and the store and the reports read;
//! - [`topn`]: bounded top-N per metric and grand totals;
//! - [`report`]: `top.json`, `top.md`, `top.csv`, `tweets.csv`, `outcomes.csv`, `rejects.csv`,
//!   `series.csv`, `hourly.csv`, and [`report::html`]: `report.html`, one self-contained page;
//! - [`history`]: the history store of finished runs, night after night, and its movers report;
//! - [`shard`], [`merge`]: a run split over processes by a fixed function of the ID, and the shards
//!   combined into the store and reports of the single run;
//! - [`exit`]: the documented exit codes, which every error type maps itself to;
//! - [`failpoint`], [`fsutil`]: crash-test hooks and file permissions.
#![warn(missing_docs)]

pub mod apps;
pub mod concurrency;
pub mod exit;
pub mod failpoint;
pub mod fetch;
pub mod fsutil;
pub mod gate;
pub mod groups;
pub mod health;
pub mod history;
pub mod ids;
pub mod lock;
pub mod merge;
pub mod outcome;
pub mod report;
pub mod route;
pub mod run;
pub mod series;
pub mod shard;
pub mod sorted;
pub mod store;
pub mod topn;
