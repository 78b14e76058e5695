//! The engage library's integration tests, one binary so they link once:
//! - [`pipeline`]: end-to-end runs against the simulator over real HTTP (outcomes, retries, resume,
//!   time series, accounts);
//! - [`bad_inputs`]: the `fixtures/bad/` corpus through the reader;
//! - [`html_chromium`]: `report.html` and `history.html` rendered in headless Chromium;
//! - [`history`]: nights against the simulator added to a history, and its movers report.

mod bad_inputs;
mod history;
mod html_chromium;
mod pipeline;
