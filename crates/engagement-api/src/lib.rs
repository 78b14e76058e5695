//! The X Enterprise Engagement API contract, as a library.
//!
//! - [`digits`]: allocation-free decimal formatting of counts and IDs.
//! - [`metric`] and [`endpoint`]: the metric names, the three endpoints, their ID limits, groupings and
//!   per-auth metric allow-lists.
//! - [`window`]: the `/historical` `start`/`end` rules and the `/28hr` window.
//! - [`timefmt`]: every date and time the project prints, in one place.
//! - [`request`]: the wire form and [`request::validate`], the one place every request rule lives; the
//!   builder and the simulator both use it.
//! - [`response`]: the response parser (grouping roots nested in `group_by` order, counts as strings or
//!   numbers, ID lists, `errors`).
//! - [`auth`]: OAuth 1.0a user-context signing and bearer tokens; secrets never print.
//! - [`client`]: the HTTP client; every result is classified into a typed outcome with retryable and
//!   fatal kept apart, plus the rate-limit headers.
#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod digits;
pub mod endpoint;
pub mod metric;
pub mod request;
pub mod response;
pub mod timefmt;
pub mod window;

pub use auth::{BearerToken, Credentials, UserCredentials};
pub use client::{Client, ClientConfig, ClientError, Fatal, Outcome, RateLimit, Reply, Retryable};
pub use endpoint::{AuthKind, Endpoint, GroupBy};
pub use metric::Metric;
pub use request::{EngagementRequest, Grouping, RequestBuilder, RequestError, WireRequest};
pub use response::{Cell, EngagementResponse, ParseError, ParsedGrouping};
pub use window::Window;
