//! The engage library's integration tests, one binary so they link once:
//! - [`pipeline`]: end-to-end runs against the simulator over real HTTP (outcomes, retries, resume,
//!   time series, accounts);
//! - [`bad_inputs`]: the `fixtures/bad/` corpus through the reader;
//! - [`html_chromium`]: `report.html` rendered in headless Chromium.

mod bad_inputs;
mod html_chromium;
mod pipeline;
