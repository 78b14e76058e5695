//! The engage pipeline library.
//!
//! Data flows through these modules in this order:
//! - [`ids`]: streaming, resumable Tweet ID reader (plain, CSV, JSON lines, gzip) with per-line rejects.
//! - [`store`]: the SQLite checkpoint store: deduplicated IDs, outcomes, rejects, the run's identity.
//! - [`gate`]: the client-side pace and the gate driven by the server's rate-limit headers.
//! - [`health`]: the breaker that holds every batch while the API cannot be reached at all.
//! - [`route`]: which credentials (an owner account's user context, or the bearer token) serve which ID.
//! - [`fetch`]: one batch in, one outcome per ID out; every retry rule lives there.
//! - [`topn`]: bounded top-N per metric and grand totals.
//! - [`report`]: `top.json`, `top.md`, `top.csv`, `tweets.csv`, `outcomes.csv`, `rejects.csv`.
//! - [`html`]: `report.html`, one self-contained page with inline SVG charts.
//! - [`run`]: the stages wired together, resumable.
#![warn(missing_docs)]

pub mod failpoint;
pub mod fetch;
pub mod fsutil;
pub mod gate;
pub mod health;
pub mod html;
pub mod ids;
pub mod report;
pub mod route;
pub mod run;
pub mod sorted;
pub mod store;
pub mod topn;
