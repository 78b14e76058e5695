//! Requests: the wire form, the rules, and a builder that refuses invalid requests before they leave.
//!
//! One function, [`validate`], holds every rule. The builder and the simulator both go through it, so
//! the client can never send what the simulator would refuse, and the simulator refuses exactly what the
//! client's rules describe. Decisions on points the fact sheet leaves open are in `docs/simulator.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::endpoint::{AuthKind, Endpoint, GroupBy};
use crate::metric::Metric;
use crate::window::{self, Window, WindowError};

/// The most groupings one request may carry.
pub const MAX_GROUPINGS: usize = 3;

/// Root keys of a response that carry no grouping, so no grouping may be named like them.
pub const RESERVED_KEYS: [&str; 6] = [
    "start",
    "end",
    "errors",
    "unavailable_tweet_ids",
    "unsupported_for_impressions_engagements_tweet_ids",
    "unsupported_for_video_views_tweet_ids",
];

/// The two legal orders of a 4-item `group_by`.
pub const FOUR_ITEM_ORDERS: [[GroupBy; 4]; 2] = [
    [
        GroupBy::TweetId,
        GroupBy::EngagementType,
        GroupBy::EngagementDay,
        GroupBy::EngagementHour,
    ],
    [
        GroupBy::EngagementType,
        GroupBy::TweetId,
        GroupBy::EngagementDay,
        GroupBy::EngagementHour,
    ],
];

/// A request body as it travels: lenient where published clients differ (IDs as strings or numbers,
/// `group_by` values in any case), strict about everything else once validated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireRequest {
    /// Tweet IDs; strings on the wire from us, strings or numbers accepted.
    #[serde(default, deserialize_with = "de_ids", serialize_with = "ser_ids")]
    pub tweet_ids: Vec<u64>,
    /// Metric names.
    #[serde(default)]
    pub engagement_types: Vec<String>,
    /// Grouping name to its `group_by` list.
    #[serde(default)]
    pub groupings: BTreeMap<String, WireGrouping>,
    /// `/historical` window start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// `/historical` window end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// One grouping on the wire.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireGrouping {
    /// The levels, in nesting order.
    #[serde(default)]
    pub group_by: Vec<String>,
}

fn ser_ids<S: serde::Serializer>(ids: &[u64], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(ids.len()))?;
    let mut buf = [0u8; 20];
    for id in ids {
        seq.serialize_element(crate::digits::format_u64(&mut buf, *id))?;
    }
    seq.end()
}

fn de_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    struct Ids;
    impl<'de> Visitor<'de> for Ids {
        type Value = Vec<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of Tweet IDs (strings or integers)")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
            while let Some(WireId(id)) = seq.next_element()? {
                out.push(id);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Ids)
}

/// A Tweet ID as a JSON string of digits or a JSON integer; never through `f64`.
struct WireId(u64);

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Tweet ID as a string of digits or an integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireId, E> {
                Ok(WireId(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireId, E> {
                u64::try_from(v)
                    .map(WireId)
                    .map_err(|_| E::custom(format!("invalid Tweet ID {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireId, E> {
                Err(E::custom(format!(
                    "invalid Tweet ID {v}: not an integer (send IDs as strings)"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireId, E> {
                parse_id(v)
                    .map(WireId)
                    .ok_or_else(|| E::custom(format!("invalid Tweet ID \"{v}\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a Tweet ID string strictly: ASCII digits only, no sign, no whitespace, fits in u64.
pub fn parse_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One grouping of a validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// The name, which becomes a root key of the response.
    pub name: String,
    /// Nesting levels in order.
    pub group_by: Vec<GroupBy>,
}

/// A request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngagementRequest {
    /// Where it goes.
    pub endpoint: Endpoint,
    /// How it is authenticated (which decides the allowed metrics).
    pub auth: AuthKind,
    /// The Tweet IDs, in the order given.
    pub tweet_ids: Vec<u64>,
    /// The metrics, in the order given, without repeats.
    pub metrics: Vec<Metric>,
    /// The groupings.
    pub groupings: Vec<Grouping>,
    /// The effective window for time-series endpoints (`/28hr`: computed at validation time).
    pub window: Option<Window>,
    /// Whether `start`/`end` are sent explicitly (always the resolved, hour-aligned values).
    pub explicit_window: bool,
}

/// A rule a request breaks. The text is what the simulator answers in its `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No Tweet IDs.
    #[error("tweet_ids must list at least one Tweet ID")]
    NoIds,
    /// Over the endpoint's ID limit.
    #[error("too many Tweet IDs: {got} given, /{endpoint} accepts at most {max} per request")]
    TooManyIds {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its limit.
        max: usize,
        /// How many were given.
        got: usize,
    },
    /// No metrics.
    #[error("engagement_types must list at least one engagement type")]
    NoMetrics,
    /// A name that is not a metric, or a metric this endpoint does not serve.
    #[error("Unsupported engagement type(s) for /{endpoint}: {names}")]
    UnsupportedMetric {
        /// The endpoint.
        endpoint: Endpoint,
        /// Comma-separated names.
        names: String,
    },
    /// A metric that needs OAuth 1.0a user context, asked with a bearer token.
    #[error("Forbidden to access metrics: {names}")]
    MetricNeedsUserContext {
        /// Comma-separated names.
        names: String,
    },
    /// An endpoint that needs user context, called with a bearer token.
    #[error("/{0} requires OAuth 1.0a user context; bearer tokens are accepted on /totals only")]
    EndpointNeedsUserContext(Endpoint),
    /// No groupings.
    #[error("groupings must define at least one grouping")]
    NoGroupings,
    /// More than three groupings.
    #[error("too many groupings: {0} given, at most 3 per request")]
    TooManyGroupings(usize),
    /// A grouping named like a reserved response key.
    #[error("grouping name `{0}` is reserved")]
    ReservedName(String),
    /// A grouping with an empty `group_by`.
    #[error("grouping `{0}` has an empty group_by")]
    EmptyGroupBy(String),
    /// A `group_by` value that is unknown or not served by this endpoint.
    #[error("One or more of the groupBys you have specified are not supported: ({0}). Please adjust your request and try again.")]
    UnsupportedGroupBy(String),
    /// A `group_by` with more than four items or a repeated item.
    #[error("grouping `{0}` repeats a group_by value")]
    RepeatedGroupBy(String),
    /// A grouping without `engagement.type`, whose counts would add unlike metrics.
    #[error("grouping `{0}` must include engagement.type")]
    MissingEngagementType(String),
    /// `engagement.hour` placed before `engagement.day`.
    #[error("grouping `{0}` puts engagement.hour before engagement.day")]
    HourBeforeDay(String),
    /// A 4-item `group_by` in neither legal order.
    #[error("grouping `{0}`: a 4-item group_by must be [tweet.id, engagement.type, engagement.day, engagement.hour] or [engagement.type, tweet.id, engagement.day, engagement.hour]")]
    BadFourItemOrder(String),
    /// More than one 4-item grouping.
    #[error("at most one grouping may have 4 group_by items")]
    TooManyFourItemGroupings,
    /// `start`/`end` sent to an endpoint that takes none.
    #[error("start and end are accepted by /historical only")]
    WindowNotAllowed,
    /// A `start`/`end` rule.
    #[error(transparent)]
    Window(#[from] WindowError),
}

impl RequestError {
    /// The HTTP status the API answers for this error.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::MetricNeedsUserContext { .. }
            | RequestError::EndpointNeedsUserContext(_) => 403,
            _ => 400,
        }
    }
}

/// Checks a wire request against every rule and returns its validated form.
/// `now` is the server's (or client's) clock, which decides "in the future" and the `/28hr` window.
pub fn validate(
    endpoint: Endpoint,
    auth: AuthKind,
    wire: &WireRequest,
    now: OffsetDateTime,
) -> Result<EngagementRequest, RequestError> {
    if wire.tweet_ids.is_empty() {
        return Err(RequestError::NoIds);
    }
    if wire.tweet_ids.len() > endpoint.max_ids() {
        return Err(RequestError::TooManyIds {
            endpoint,
            max: endpoint.max_ids(),
            got: wire.tweet_ids.len(),
        });
    }
    if !endpoint.allows_auth(auth) {
        return Err(RequestError::EndpointNeedsUserContext(endpoint));
    }

    if wire.engagement_types.is_empty() {
        return Err(RequestError::NoMetrics);
    }
    let mut metrics: Vec<Metric> = Vec::with_capacity(wire.engagement_types.len());
    let mut unsupported = Vec::new();
    for name in &wire.engagement_types {
        match name.parse::<Metric>() {
            Ok(m) if endpoint.knows_metric(m) => {
                if !metrics.contains(&m) {
                    metrics.push(m)
                }
            }
            _ => unsupported.push(name.as_str()),
        }
    }
    if !unsupported.is_empty() {
        return Err(RequestError::UnsupportedMetric {
            endpoint,
            names: unsupported.join(", "),
        });
    }
    let allowed = endpoint.allowed_metrics(auth);
    let forbidden: Vec<&str> = metrics
        .iter()
        .filter(|m| !allowed.contains(m))
        .map(|m| m.as_str())
        .collect();
    if !forbidden.is_empty() {
        return Err(RequestError::MetricNeedsUserContext {
            names: forbidden.join(", "),
        });
    }

    let groupings = validate_groupings(endpoint, &wire.groupings)?;

    let (window, explicit_window) = match endpoint {
        Endpoint::Totals | Endpoint::Hr28 if wire.start.is_some() || wire.end.is_some() => {
            return Err(RequestError::WindowNotAllowed)
        }
        Endpoint::Totals => (None, false),
        Endpoint::Hr28 => (Some(window::window_28hr(now)), false),
        Endpoint::Historical => {
            let start = wire
                .start
                .as_deref()
                .map(|s| window::parse_time("start", s))
                .transpose()?;
            let end = wire
                .end
                .as_deref()
                .map(|s| window::parse_time("end", s))
                .transpose()?;
            (
                Some(window::resolve_historical(start, end, now)?),
                start.is_some() || end.is_some(),
            )
        }
    };

    Ok(EngagementRequest {
        endpoint,
        auth,
        tweet_ids: wire.tweet_ids.clone(),
        metrics,
        groupings,
        window,
        explicit_window,
    })
}

fn validate_groupings(
    endpoint: Endpoint,
    wire: &BTreeMap<String, WireGrouping>,
) -> Result<Vec<Grouping>, RequestError> {
    if wire.is_empty() {
        return Err(RequestError::NoGroupings);
    }
    if wire.len() > MAX_GROUPINGS {
        return Err(RequestError::TooManyGroupings(wire.len()));
    }
    let mut out = Vec::with_capacity(wire.len());
    let mut four_item = 0;
    for (name, g) in wire {
        if RESERVED_KEYS.contains(&name.as_str()) {
            return Err(RequestError::ReservedName(name.clone()));
        }
        if g.group_by.is_empty() {
            return Err(RequestError::EmptyGroupBy(name.clone()));
        }
        let mut levels = Vec::with_capacity(g.group_by.len());
        for value in &g.group_by {
            match GroupBy::parse(value) {
                Some(level) if endpoint.allowed_group_by().contains(&level) => {
                    if levels.contains(&level) {
                        return Err(RequestError::RepeatedGroupBy(name.clone()));
                    }
                    levels.push(level)
                }
                _ => return Err(RequestError::UnsupportedGroupBy(value.clone())),
            }
        }
        if !levels.contains(&GroupBy::EngagementType) {
            return Err(RequestError::MissingEngagementType(name.clone()));
        }
        let pos = |g| levels.iter().position(|l| *l == g);
        if let (Some(d), Some(h)) = (pos(GroupBy::EngagementDay), pos(GroupBy::EngagementHour)) {
            if h < d {
                return Err(RequestError::HourBeforeDay(name.clone()));
            }
        }
        if levels.len() == 4 {
            if !FOUR_ITEM_ORDERS.iter().any(|o| o[..] == levels[..]) {
                return Err(RequestError::BadFourItemOrder(name.clone()));
            }
            four_item += 1;
        }
        out.push(Grouping {
            name: name.clone(),
            group_by: levels,
        });
    }
    if four_item > 1 {
        return Err(RequestError::TooManyFourItemGroupings);
    }
    Ok(out)
}

impl EngagementRequest {
    /// The wire form we send: IDs as strings, lower-case `group_by`, hour-aligned `start`/`end`
    /// on `/historical` when a window was asked for.
    pub fn to_wire(&self) -> WireRequest {
        let (start, end) = match (self.explicit_window, self.window) {
            (true, Some(w)) => (
                Some(window::format_time(w.start)),
                Some(window::format_time(w.end)),
            ),
            _ => (None, None),
        };
        WireRequest {
            tweet_ids: self.tweet_ids.clone(),
            engagement_types: self
                .metrics
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            groupings: self
                .groupings
                .iter()
                .map(|g| {
                    (
                        g.name.clone(),
                        WireGrouping {
                            group_by: g.group_by.iter().map(|l| l.as_str().to_string()).collect(),
                        },
                    )
                })
                .collect(),
            start,
            end,
        }
    }

    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_wire()).expect("a request always serializes")
    }
}

/// Builds a request and refuses it, naming the rule, before it leaves the process.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    endpoint: Endpoint,
    auth: AuthKind,
    wire: WireRequest,
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
}

impl RequestBuilder {
    /// Starts a request to `endpoint` authenticated as `auth`.
    pub fn new(endpoint: Endpoint, auth: AuthKind) -> Self {
        RequestBuilder {
            endpoint,
            auth,
            wire: WireRequest::default(),
            start: None,
            end: None,
        }
    }

    /// Adds Tweet IDs.
    pub fn tweet_ids(mut self, ids: impl IntoIterator<Item = u64>) -> Self {
        self.wire.tweet_ids.extend(ids);
        self
    }

    /// Adds metrics.
    pub fn metrics(mut self, metrics: impl IntoIterator<Item = Metric>) -> Self {
        self.wire
            .engagement_types
            .extend(metrics.into_iter().map(|m| m.as_str().to_string()));
        self
    }

    /// Adds a grouping.
    pub fn grouping(mut self, name: &str, group_by: &[GroupBy]) -> Self {
        self.wire.groupings.insert(
            name.to_string(),
            WireGrouping {
                group_by: group_by.iter().map(|g| g.as_str().to_string()).collect(),
            },
        );
        self
    }

    /// Sets the `/historical` start.
    pub fn start(mut self, t: OffsetDateTime) -> Self {
        self.start = Some(t);
        self
    }

    /// Sets the `/historical` end.
    pub fn end(mut self, t: OffsetDateTime) -> Self {
        self.end = Some(t);
        self
    }

    /// Validates at time `now`.
    pub fn build_at(mut self, now: OffsetDateTime) -> Result<EngagementRequest, RequestError> {
        self.wire.start = self.start.map(window::format_time);
        self.wire.end = self.end.map(window::format_time);
        validate(self.endpoint, self.auth, &self.wire, now)
    }

    /// Validates against the current time.
    pub fn build(self) -> Result<EngagementRequest, RequestError> {
        self.build_at(OffsetDateTime::now_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-05-02 09:40 UTC);
    use GroupBy::*;

    fn totals(ids: usize) -> RequestBuilder {
        RequestBuilder::new(Endpoint::Totals, AuthKind::User)
            .tweet_ids((1..=ids as u64).map(|i| 1_790_000_000_000_000_000 + i))
            .metrics([Metric::Impressions, Metric::Favorites])
            .grouping("by_tweet", &[TweetId, EngagementType])
    }

    #[test]
    fn id_limits_per_endpoint() {
        assert!(totals(250).build_at(NOW).is_ok());
        assert!(matches!(
            totals(251).build_at(NOW),
            Err(RequestError::TooManyIds {
                max: 250,
                got: 251,
                ..
            })
        ));
        assert!(matches!(totals(0).build_at(NOW), Err(RequestError::NoIds)));
        let hist = RequestBuilder::new(Endpoint::Historical, AuthKind::User)
            .tweet_ids(1..=26)
            .metrics([Metric::Impressions])
            .grouping("g", &[TweetId, EngagementType]);
        assert!(matches!(
            hist.build_at(NOW),
            Err(RequestError::TooManyIds { max: 25, .. })
        ));
    }

    #[test]
    fn grouping_rules() {
        let base = || {
            RequestBuilder::new(Endpoint::Hr28, AuthKind::User)
                .tweet_ids([1])
                .metrics([Metric::Impressions])
        };
        let four_a = [TweetId, EngagementType, EngagementDay, EngagementHour];
        let four_b = [EngagementType, TweetId, EngagementDay, EngagementHour];
        assert!(base().grouping("a", &four_a).build_at(NOW).is_ok());
        assert!(base().grouping("b", &four_b).build_at(NOW).is_ok());
        assert!(matches!(
            base()
                .grouping(
                    "c",
                    &[EngagementDay, TweetId, EngagementType, EngagementHour]
                )
                .build_at(NOW),
            Err(RequestError::BadFourItemOrder(_))
        ));
        assert!(matches!(
            base()
                .grouping("a", &four_a)
                .grouping("b", &four_b)
                .build_at(NOW),
            Err(RequestError::TooManyFourItemGroupings)
        ));
        assert!(matches!(
            base()
                .grouping("a", &[EngagementType])
                .grouping("b", &[TweetId, EngagementType])
                .grouping("c", &[EngagementType, TweetId])
                .grouping("d", &[EngagementType, EngagementDay])
                .build_at(NOW),
            Err(RequestError::TooManyGroupings(4))
        ));
        assert!(matches!(
            base().grouping("a", &[TweetId]).build_at(NOW),
            Err(RequestError::MissingEngagementType(_))
        ));
        assert!(matches!(
            base().grouping("start", &[EngagementType]).build_at(NOW),
            Err(RequestError::ReservedName(_))
        ));
        let day_on_totals = RequestBuilder::new(Endpoint::Totals, AuthKind::User)
            .tweet_ids([1])
            .metrics([Metric::Favorites])
            .grouping("g", &[EngagementType, EngagementHour])
            .build_at(NOW)
            .unwrap_err();
        assert_eq!(day_on_totals.to_string(), "One or more of the groupBys you have specified are not supported: (engagement.hour). Please adjust your request and try again.");
    }

    #[test]
    fn metric_rules_per_auth() {
        let bearer = RequestBuilder::new(Endpoint::Totals, AuthKind::Bearer)
            .tweet_ids([1])
            .grouping("g", &[TweetId, EngagementType]);
        assert!(bearer.clone().metrics(Metric::PUBLIC).build_at(NOW).is_ok());
        let err = bearer
            .metrics([Metric::Impressions])
            .build_at(NOW)
            .unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(err.to_string(), "Forbidden to access metrics: impressions");
        let err = RequestBuilder::new(Endpoint::Hr28, AuthKind::Bearer)
            .tweet_ids([1])
            .metrics([Metric::Favorites])
            .grouping("g", &[TweetId, EngagementType])
            .build_at(NOW)
            .unwrap_err();
        assert_eq!(err.status(), 403);
        let err = RequestBuilder::new(Endpoint::Historical, AuthKind::User)
            .tweet_ids([1])
            .metrics([Metric::QuoteTweets])
            .grouping("g", &[TweetId, EngagementType])
            .build_at(NOW)
            .unwrap_err();
        assert!(matches!(err, RequestError::UnsupportedMetric { .. }));
    }

    #[test]
    fn wire_ids_accept_strings_and_numbers_but_not_floats() {
        let w: WireRequest = serde_json::from_str(
            r#"{"tweet_ids":["1790000000000000001", 1790000000000000002],"engagement_types":["favorites"],"groupings":{"g":{"group_by":["Tweet.id","engagement.type"]}}}"#,
        )
        .unwrap();
        assert_eq!(w.tweet_ids, vec![1790000000000000001, 1790000000000000002]);
        let r = validate(Endpoint::Totals, AuthKind::Bearer, &w, NOW).unwrap();
        assert_eq!(r.groupings[0].group_by, vec![TweetId, EngagementType]);
        assert!(serde_json::from_str::<WireRequest>(r#"{"tweet_ids":[1.79e18]}"#).is_err());
        assert!(serde_json::from_str::<WireRequest>(r#"{"tweet_ids":["12 "]}"#).is_err());
        assert!(serde_json::from_str::<WireRequest>(r#"{"tweet_ids":[-5]}"#).is_err());
        let body = String::from_utf8(r.to_body()).unwrap();
        assert!(
            body.contains(r#""tweet_ids":["1790000000000000001","1790000000000000002"]"#),
            "{body}"
        );
    }

    #[test]
    fn historical_sends_the_rounded_window() {
        let r = RequestBuilder::new(Endpoint::Historical, AuthKind::User)
            .tweet_ids([1])
            .metrics([Metric::Impressions])
            .grouping("g", &[TweetId, EngagementType])
            .start(datetime!(2024-03-01 12:24 UTC))
            .end(datetime!(2024-03-08 08:37 UTC))
            .build_at(NOW)
            .unwrap();
        let w = r.to_wire();
        assert_eq!(w.start.as_deref(), Some("2024-03-01T12:00:00Z"));
        assert_eq!(w.end.as_deref(), Some("2024-03-08T09:00:00Z"));
        let on_totals = RequestBuilder::new(Endpoint::Totals, AuthKind::User)
            .tweet_ids([1])
            .metrics([Metric::Favorites])
            .grouping("g", &[TweetId, EngagementType])
            .start(datetime!(2024-03-01 12:24 UTC))
            .build_at(NOW);
        assert!(matches!(on_totals, Err(RequestError::WindowNotAllowed)));
    }
}
