//! Response parsing (fact sheet §6–7).
//!
//! A 200 body is one JSON object. Each requested grouping is a root key whose value nests one
//! object level per `group_by` item, in order; leaves are counts. Other root keys are `start`/`end`,
//! the three Tweet ID lists and `errors`; anything else is ignored.
//!
//! Design notes:
//! - The body is walked once with serde visitors straight into [`Cell`]s, with no intermediate
//!   `serde_json::Value` tree: a full `/totals` answer (250 IDs × 7 metrics) is the common case and
//!   must stay far below a millisecond.
//! - Strict where a mistake would corrupt results (IDs are digit strings or integers, never read
//!   through `f64`; counts are non-negative integers; day and hour keys must be well formed), lenient
//!   where the API is known to vary (counts as strings or numbers, IDs as strings or numbers, error
//!   entries as strings or `{"message": ..}` objects) or may grow (unknown metric names and root
//!   keys are skipped).
//! - A failure inside a grouping records where it happened in a side slot; each level adds its key
//!   while the serde error unwinds, so the success path pays nothing for error paths.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use time::{Date, Month, OffsetDateTime};

use crate::endpoint::GroupBy;
use crate::metric::Metric;
use crate::request::{parse_id, Grouping};
use crate::window;

/// A parsed 200 response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngagementResponse {
    /// The effective window start (`/28hr`, `/historical`).
    pub start: Option<OffsetDateTime>,
    /// The effective window end (`/28hr`, `/historical`).
    pub end: Option<OffsetDateTime>,
    /// One entry per requested grouping, in request order.
    pub groupings: Vec<ParsedGrouping>,
    /// Deleted or no longer public Tweets; the rest were answered.
    pub unavailable_tweet_ids: Vec<u64>,
    /// `/totals` Tweets too old (over 90 days) for impressions and engagements.
    pub unsupported_for_impressions_engagements_tweet_ids: Vec<u64>,
    /// Tweets too old (over 1800 days) for video views.
    pub unsupported_for_video_views_tweet_ids: Vec<u64>,
    /// Messages accompanying a partial result.
    pub errors: Vec<String>,
}

impl EngagementResponse {
    /// Whether the API reported any problem alongside the data: errors or any of the three ID lists.
    pub fn is_partial(&self) -> bool {
        !self.errors.is_empty()
            || !self.unavailable_tweet_ids.is_empty()
            || !self
                .unsupported_for_impressions_engagements_tweet_ids
                .is_empty()
            || !self.unsupported_for_video_views_tweet_ids.is_empty()
    }

    /// The grouping with this name.
    pub fn grouping(&self, name: &str) -> Option<&ParsedGrouping> {
        self.groupings.iter().find(|g| g.name == name)
    }
}

/// One grouping's counts, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedGrouping {
    /// The grouping name (the response root key).
    pub name: String,
    /// The levels, in nesting order.
    pub group_by: Vec<GroupBy>,
    /// One cell per leaf, in body order.
    pub cells: Vec<Cell>,
}

/// One count. A field is `Some` exactly when its level is in the grouping's `group_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// The `tweet.id` level key.
    pub tweet_id: Option<u64>,
    /// The `engagement.type` level key.
    pub metric: Option<Metric>,
    /// The `engagement.day` level key (UTC).
    pub day: Option<Date>,
    /// The `engagement.hour` level key, 0..=23 (UTC).
    pub hour: Option<u8>,
    /// The count.
    pub value: u64,
}

const EMPTY_CELL: Cell = Cell {
    tweet_id: None,
    metric: None,
    day: None,
    hour: None,
    value: 0,
};

/// Why a body could not be read as an answer to the request. The client treats every variant as an
/// undecodable, retryable body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not a JSON object.
    #[error("response is not a JSON object: {0}")]
    Json(String),
    /// A requested grouping is absent (and no Tweet was reported unavailable to explain it).
    #[error("response lacks the requested grouping `{0}`")]
    MissingGrouping(String),
    /// A grouping root key appears twice.
    #[error("response has the grouping `{0}` twice")]
    DuplicateGrouping(String),
    /// A key or leaf inside a grouping is malformed.
    #[error("grouping `{grouping}` at `{path}`: {problem}")]
    Cell {
        /// The grouping name.
        grouping: String,
        /// The keys from the grouping root down to the problem, joined with `/`.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A non-grouping root key (`start`, `end`, an ID list, `errors`) is malformed.
    #[error("`{field}`: {problem}")]
    Field {
        /// The root key.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Parses a 200 body as the answer to a request with these groupings.
///
/// A requested grouping missing from the body is an error, except when the body lists unavailable
/// or unsupported Tweets: if every requested Tweet was unavailable (or too old for every metric
/// asked) there is nothing to group, and this parser cannot tell that case from a partial one, so
/// the grouping is then taken as empty.
pub fn parse_response(
    body: &[u8],
    groupings: &[Grouping],
) -> Result<EngagementResponse, ParseError> {
    let mut out = EngagementResponse {
        groupings: groupings
            .iter()
            .map(|g| ParsedGrouping {
                name: g.name.clone(),
                group_by: g.group_by.clone(),
                cells: Vec::new(),
            })
            .collect(),
        ..EngagementResponse::default()
    };
    let mut seen = vec![false; groupings.len()];
    let mut failure: Option<ParseError> = None;
    let result = match std::str::from_utf8(body) {
        // One validation pass for the whole body; serde_json's slice reader would re-validate
        // every string it borrows, which is most of the body here.
        Ok(text) => walk(
            serde_json::Deserializer::from_str(text),
            groupings,
            &mut out,
            &mut seen,
            &mut failure,
        ),
        // The slice reader keeps serde_json's own error for bad UTF-8 (with its position), and
        // still accepts it inside skipped strings, which it never validates.
        Err(_) => walk(
            serde_json::Deserializer::from_slice(body),
            groupings,
            &mut out,
            &mut seen,
            &mut failure,
        ),
    };
    if let Err(e) = result {
        return Err(failure.unwrap_or_else(|| ParseError::Json(e.to_string())));
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        // A Tweet too old for every metric asked has nothing to group either.
        let explained = !out.unavailable_tweet_ids.is_empty()
            || !out
                .unsupported_for_impressions_engagements_tweet_ids
                .is_empty()
            || !out.unsupported_for_video_views_tweet_ids.is_empty();
        if !explained {
            return Err(ParseError::MissingGrouping(groupings[i].name.clone()));
        }
    }
    Ok(out)
}

/// The whole body through [`Root`], then nothing but whitespace.
fn walk<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    requested: &[Grouping],
    out: &mut EngagementResponse,
    seen: &mut [bool],
    failure: &mut Option<ParseError>,
) -> serde_json::Result<()> {
    Root {
        requested,
        out,
        seen,
        failure,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
}

/// The messages of an error body, tolerantly: the strings of `{"errors": [...]}`, the `message` of
/// error objects (the v1.1 shape `{"errors":[{"message": .., "code": ..}]}`), a lone `"errors"` or
/// `"error"` string. Empty when the body is not such JSON.
pub fn parse_error_body(body: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Object(root)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(errors) = root.get("errors") {
        out.extend(error_messages(errors));
    }
    if let Some(serde_json::Value::String(s)) = root.get("error") {
        out.push(s.clone());
    }
    out
}

/// The messages in an `errors` value: an array of strings or `{"message": ..}` objects, or one such
/// entry on its own. Entries of other shapes keep their JSON text so nothing is silently lost.
fn error_messages(v: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    fn one(v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => match o.get("message") {
                Some(Value::String(m)) => Some(m.clone()),
                _ => Some(v.to_string()),
            },
            other => Some(other.to_string()),
        }
    }
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

/// The Tweet IDs named in `Forbidden to access tweets: 1, 2` messages and in the older
/// `Forbidden to access tweets for author id <uid>: 1, 2` form: the digit runs after the last `:`
/// (so the author ID is not taken for a Tweet ID). In first-seen order, without repeats.
pub fn forbidden_ids(errors: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    for e in errors {
        if !e
            .to_ascii_lowercase()
            .contains("forbidden to access tweets")
        {
            continue;
        }
        let Some((_, list)) = e.rsplit_once(':') else {
            continue;
        };
        for id in list
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(parse_id)
        {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

// ---- the walk ----

/// A map key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The root object.
struct Root<'a> {
    requested: &'a [Grouping],
    out: &'a mut EngagementResponse,
    seen: &'a mut [bool],
    failure: &'a mut Option<ParseError>,
}

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            match key.as_ref() {
                "start" => {
                    self.out.start = map.next_value_seed(TimeField("start", self.failure))?
                }
                "end" => self.out.end = map.next_value_seed(TimeField("end", self.failure))?,
                "unavailable_tweet_ids" => {
                    self.out.unavailable_tweet_ids =
                        map.next_value_seed(IdList("unavailable_tweet_ids", self.failure))?
                }
                "unsupported_for_impressions_engagements_tweet_ids" => {
                    self.out.unsupported_for_impressions_engagements_tweet_ids = map
                        .next_value_seed(IdList(
                            "unsupported_for_impressions_engagements_tweet_ids",
                            self.failure,
                        ))?
                }
                "unsupported_for_video_views_tweet_ids" => {
                    self.out.unsupported_for_video_views_tweet_ids = map.next_value_seed(IdList(
                        "unsupported_for_video_views_tweet_ids",
                        self.failure,
                    ))?
                }
                "errors" => {
                    let v: serde_json::Value = map.next_value()?;
                    self.out.errors = error_messages(&v);
                }
                name => match self.requested.iter().position(|g| g.name == name) {
                    Some(i) => {
                        if self.seen[i] {
                            *self.failure = Some(ParseError::DuplicateGrouping(name.to_string()));
                            return Err(de::Error::custom("duplicate grouping"));
                        }
                        self.seen[i] = true;
                        let mut path = Vec::new();
                        let r = map.next_value_seed(Level {
                            levels: &self.requested[i].group_by,
                            partial: EMPTY_CELL,
                            cells: &mut self.out.groupings[i].cells,
                            failure: &mut path,
                            month: &mut MonthCache::default(),
                        });
                        if let Err(e) = r {
                            if !path.is_empty() {
                                let problem = path.remove(0);
                                path.reverse();
                                *self.failure = Some(ParseError::Cell {
                                    grouping: name.to_string(),
                                    path: path.join("/"),
                                    problem,
                                });
                            }
                            return Err(e);
                        }
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
            }
        }
        Ok(())
    }
}

/// One nesting level of a grouping (or, with no levels left, a leaf count).
///
/// `failure` is empty until something goes wrong; then it holds the problem text first and the keys
/// from the failing level up, pushed while unwinding (reversed by [`Root`]).
struct Level<'a> {
    levels: &'a [GroupBy],
    partial: Cell,
    cells: &'a mut Vec<Cell>,
    failure: &'a mut Vec<String>,
    month: &'a mut MonthCache,
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // A leaf may be a string or a number, a level must be an object; deserialize_any lets the
        // visitor name what it found instead of serde's generic message.
        d.deserialize_any(self)
    }
}

impl Level<'_> {
    fn fail<E: de::Error>(self, problem: String) -> E {
        self.failure.push(problem);
        E::custom("malformed grouping")
    }

    fn not_a_count<E: de::Error>(self, found: &str) -> E {
        let problem = match self.levels.first() {
            None => format!("expected a count, found {found}"),
            Some(l) => format!("expected an object keyed by {l}, found {found}"),
        };
        self.fail(problem)
    }

    fn leaf<E: de::Error>(self, value: Result<u64, String>) -> Result<(), E> {
        if !self.levels.is_empty() {
            let found = match value {
                Ok(v) => format!("the count {v}"),
                Err(_) => "a scalar".to_string(),
            };
            return Err(self.not_a_count(&found));
        }
        match value {
            Ok(v) => {
                self.cells.push(Cell {
                    value: v,
                    ..self.partial
                });
                Ok(())
            }
            Err(problem) => Err(self.fail(problem)),
        }
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.levels.first() {
            None => f.write_str("a count"),
            Some(_) => f.write_str("an object"),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(Ok(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        // serde_json hands non-negative integers to visit_u64, so this is a negative number.
        self.leaf(Err(format!("count {v} is negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.leaf(Err(format!("count {v} is not an integer")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let parsed =
            parse_digits(v).ok_or_else(|| format!("count \"{v}\" is not a base-10 integer"));
        self.leaf(parsed)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.not_a_count(&format!("{v}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_a_count("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        Err(self.not_a_count("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((&level, rest)) = self.levels.split_first() else {
            return Err(self.not_a_count("an object"));
        };
        while let Some(Key(key)) = map.next_key()? {
            let mut partial = self.partial;
            let ok = match level {
                GroupBy::TweetId => parse_digits(&key).map(|id| partial.tweet_id = Some(id)),
                GroupBy::EngagementType => match metric_named(&key) {
                    Some(m) => {
                        partial.metric = Some(m);
                        Some(())
                    }
                    None => {
                        // A metric we do not know (a rename, a new metric): its counts mean nothing
                        // to us, and failing would lose the whole response.
                        tracing::debug!(metric = %key, "skipping unknown metric in response");
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                },
                GroupBy::EngagementDay => {
                    parse_day(&key, self.month).map(|d| partial.day = Some(d))
                }
                GroupBy::EngagementHour => parse_hour(&key).map(|h| partial.hour = Some(h)),
            };
            if ok.is_none() {
                self.failure
                    .push(format!("`{key}` is not a valid {level} key"));
                self.failure.push(key.into_owned());
                return Err(de::Error::custom("malformed grouping"));
            }
            let r = map.next_value_seed(Level {
                levels: rest,
                partial,
                cells: &mut *self.cells,
                failure: &mut *self.failure,
                month: &mut *self.month,
            });
            if let Err(e) = r {
                if !self.failure.is_empty() {
                    self.failure.push(key.into_owned());
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The `YYYY-MM-` of the last day key read in a grouping, already checked. Day keys come in runs
/// within a month, and a calendar date costs more to check than the rest of the key.
#[derive(Default)]
struct MonthCache {
    /// Empty until the first good day key.
    prefix: Option<[u8; 8]>,
    year: i32,
    /// The ordinal of the month's first day.
    first: u16,
    days: u8,
}

/// `YYYY-MM-DD`, exactly.
fn parse_day(s: &str, month: &mut MonthCache) -> Option<Date> {
    let b: &[u8; 10] = s.as_bytes().try_into().ok()?;
    let num = |part: &[u8]| -> Option<u32> {
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let day = u8::try_from(num(&b[8..])?).ok()?;
    let prefix: [u8; 8] = b[..8].try_into().ok()?;
    if month.prefix != Some(prefix) {
        if b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = i32::try_from(num(&b[..4])?).ok()?;
        let m = Month::try_from(u8::try_from(num(&b[5..7])?).ok()?).ok()?;
        let first = Date::from_calendar_date(year, m, 1).ok()?;
        *month = MonthCache {
            prefix: Some(prefix),
            year,
            first: first.ordinal(),
            days: m.length(year),
        };
    }
    if day == 0 || day > month.days {
        return None;
    }
    Date::from_ordinal_date(month.year, month.first + u16::from(day) - 1).ok()
}

/// `00`..`23`; a single digit is accepted too, since nothing else could be meant.
fn parse_hour(s: &str) -> Option<u8> {
    let digit = |d: u8| d.is_ascii_digit().then(|| d - b'0');
    let h = match *s.as_bytes() {
        [u] => digit(u)?,
        [t, u] => digit(t)? * 10 + digit(u)?,
        _ => return None,
    };
    (h <= 23).then_some(h)
}

/// [`parse_id`] in one pass: non-empty ASCII digits that fit a `u64` (leading zeros allowed).
/// Every ID key and string count goes through here.
fn parse_digits(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    if b.len() <= 19 {
        // 19 digits cannot overflow a u64.
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n = n * 10 + u64::from(d);
        }
    } else {
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(d))?;
        }
    }
    Some(n)
}

/// The metric with this wire name, as [`Metric`]'s `FromStr` finds it but without its linear scan
/// (or its error allocation for the unknown names we skip).
fn metric_named(key: &str) -> Option<Metric> {
    use Metric::*;
    let b = key.as_bytes();
    // Length and first byte leave one candidate (two for `e`, split by the second byte); the full
    // comparison against the wire name confirms it.
    let m = match (b.len(), *b.first()?) {
        (7, b'r') => Replies,
        (8, b'r') => Retweets,
        (9, b'f') => Favorites,
        (9, b'a') => AppOpens,
        (10, b'u') => UrlClicks,
        (11, b'i') => Impressions,
        (11, b'e') if b[1] == b'n' => Engagements,
        (11, b'e') => EmailTweet,
        (11, b'v') => VideoViews,
        (11, b'm') => MediaViews,
        (12, b'q') => QuoteTweets,
        (12, b'u') => UserFollows,
        (14, b'h') => HashtagClicks,
        (14, b'd') => DetailExpands,
        (16, b'p') => PermalinkClicks,
        (17, b'm') => MediaEngagements,
        (19, b'u') => UserProfileClicks,
        (20, b'a') => AppInstallAttempts,
        _ => return None,
    };
    (m.as_str() == key).then_some(m)
}

/// `start` / `end`: a time string as [`window::parse_time`] reads it, or null.
struct TimeField<'a>(&'static str, &'a mut Option<ParseError>);

impl<'de> DeserializeSeed<'de> for TimeField<'_> {
    type Value = Option<OffsetDateTime>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let field = self.0;
        let v: Option<Cow<'de, str>> = match Option::<Cow<'de, str>>::deserialize(d) {
            Ok(v) => v,
            Err(e) => {
                *self.1 = Some(ParseError::Field {
                    field,
                    problem: "expected a time string".to_string(),
                });
                return Err(e);
            }
        };
        match v.map(|s| window::parse_time(field, &s)).transpose() {
            Ok(t) => Ok(t),
            Err(e) => {
                *self.1 = Some(ParseError::Field {
                    field,
                    problem: e.to_string(),
                });
                Err(de::Error::custom("bad time"))
            }
        }
    }
}

/// A Tweet ID list: an array of digit strings or integers, or null for none.
struct IdList<'a>(&'static str, &'a mut Option<ParseError>);

impl<'de> DeserializeSeed<'de> for IdList<'_> {
    type Value = Vec<u64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u64>, D::Error> {
        d.deserialize_any(self)
    }
}

impl IdList<'_> {
    fn fail<E: de::Error>(self, problem: String) -> E {
        *self.1 = Some(ParseError::Field {
            field: self.0,
            problem,
        });
        E::custom("bad ID list")
    }
}

impl<'de> Visitor<'de> for IdList<'_> {
    type Value = Vec<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of Tweet IDs")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<u64>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        loop {
            match seq.next_element::<IdItem>() {
                Ok(Some(IdItem(Ok(id)))) => out.push(id),
                Ok(Some(IdItem(Err(problem)))) => return Err(self.fail(problem)),
                Ok(None) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<u64>, E> {
        Err(self.fail("expected an array, found a string".into()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<u64>, E> {
        Err(self.fail("expected an array, found a number".into()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<u64>, E> {
        Err(self.fail("expected an array, found a number".into()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<u64>, E> {
        Err(self.fail("expected an array, found a number".into()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<u64>, E> {
        Err(self.fail("expected an array, found a boolean".into()))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<u64>, A::Error> {
        Err(self.fail("expected an array, found an object".into()))
    }
}

/// One ID list entry; a bad entry is reported as a value so the list can name it.
struct IdItem(Result<u64, String>);

impl<'de> Deserialize<'de> for IdItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Tweet ID")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdItem, E> {
                Ok(IdItem(Ok(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdItem, E> {
                Ok(IdItem(Err(format!("invalid Tweet ID {v}"))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<IdItem, E> {
                Ok(IdItem(Err(format!("invalid Tweet ID {v}: not an integer"))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdItem, E> {
                Ok(IdItem(
                    parse_digits(v).ok_or_else(|| format!("invalid Tweet ID \"{v}\"")),
                ))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<IdItem, E> {
                Ok(IdItem(Err(format!("invalid Tweet ID {v}"))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IdItem, E> {
                Ok(IdItem(Err("invalid Tweet ID null".into())))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{AuthKind, Endpoint};
    use crate::request::{validate, WireRequest};
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use time::macros::{date, datetime};
    use GroupBy::*;

    fn g(name: &str, levels: &[GroupBy]) -> Grouping {
        Grouping {
            name: name.to_string(),
            group_by: levels.to_vec(),
        }
    }

    #[test]
    fn counts_as_strings_or_numbers_and_extra_keys_ignored() {
        let body = br#"{
            "future_key": {"a": [1, 2, {"b": null}]},
            "by_tweet": {
                "1790000000000000001": {"favorites": "812", "retweets": 140, "media_clicks": "9"},
                "18446744073709551615": {"favorites": "0", "retweets": "18446744073709551615"}
            },
            "overall": {"favorites": "812", "retweets": 140}
        }"#;
        let r = parse_response(
            body,
            &[
                g("by_tweet", &[TweetId, EngagementType]),
                g("overall", &[EngagementType]),
            ],
        )
        .unwrap();
        assert!(!r.is_partial());
        let by_tweet = r.grouping("by_tweet").unwrap();
        assert_eq!(by_tweet.cells.len(), 4, "media_clicks is skipped");
        assert_eq!(
            by_tweet.cells[0],
            Cell {
                tweet_id: Some(1790000000000000001),
                metric: Some(Metric::Favorites),
                day: None,
                hour: None,
                value: 812
            }
        );
        assert_eq!(by_tweet.cells[1].value, 140);
        assert_eq!(by_tweet.cells[2].tweet_id, Some(u64::MAX));
        assert_eq!(by_tweet.cells[3].value, u64::MAX);
        let overall = r.grouping("overall").unwrap();
        assert_eq!(overall.cells[0].tweet_id, None);
        assert_eq!(overall.cells[1].metric, Some(Metric::Retweets));
        assert!(r.grouping("nope").is_none());
    }

    #[test]
    fn time_series_levels() {
        let body = br#"{
            "start": "2024-05-01T05:00:00Z", "end": "2024-05-02T10:00:00Z",
            "hourly": {"impressions": {"1790000000000000005": {"2024-05-01": {"05": "900", "23": "16"}, "2024-05-02": {"00": "12"}}}}
        }"#;
        let r = parse_response(
            body,
            &[g(
                "hourly",
                &[EngagementType, TweetId, EngagementDay, EngagementHour],
            )],
        )
        .unwrap();
        assert_eq!(r.start, Some(datetime!(2024-05-01 05:00 UTC)));
        assert_eq!(r.end, Some(datetime!(2024-05-02 10:00 UTC)));
        let cells = &r.groupings[0].cells;
        assert_eq!(cells.len(), 3);
        assert_eq!(
            cells[1],
            Cell {
                tweet_id: Some(1790000000000000005),
                metric: Some(Metric::Impressions),
                day: Some(date!(2024 - 05 - 01)),
                hour: Some(23),
                value: 16
            }
        );
        assert_eq!(cells[2].day, Some(date!(2024 - 05 - 02)));
        assert_eq!(cells[2].hour, Some(0));
    }

    fn err(body: &str, groupings: &[Grouping]) -> ParseError {
        parse_response(body.as_bytes(), groupings).unwrap_err()
    }

    #[test]
    fn malformed_leaves_and_keys_name_the_path() {
        let gs = [g("by_tweet", &[TweetId, EngagementType])];
        for (leaf, needle) in [
            ("\"-1\"", "not a base-10 integer"),
            ("-1", "negative"),
            ("1.5", "not an integer"),
            ("\"1.5\"", "not a base-10 integer"),
            ("\"12 \"", "not a base-10 integer"),
            ("\"\"", "not a base-10 integer"),
            ("\"18446744073709551616\"", "not a base-10 integer"),
            ("null", "expected a count, found null"),
            ("{}", "expected a count, found an object"),
            ("[1]", "expected a count, found an array"),
            ("true", "expected a count"),
        ] {
            let body =
                format!(r#"{{"by_tweet": {{"17": {{"favorites": "1", "retweets": {leaf}}}}}}}"#);
            let e = err(&body, &gs);
            match &e {
                ParseError::Cell {
                    grouping,
                    path,
                    problem,
                } => {
                    assert_eq!(grouping, "by_tweet");
                    assert_eq!(path, "17/retweets", "{leaf}");
                    assert!(problem.contains(needle), "{leaf}: {problem}");
                }
                other => panic!("{leaf}: {other:?}"),
            }
            assert!(e
                .to_string()
                .starts_with("grouping `by_tweet` at `17/retweets`: "));
        }
        let e = err(r#"{"by_tweet": {"17x": {"favorites": "1"}}}"#, &gs);
        assert_eq!(
            e.to_string(),
            "grouping `by_tweet` at `17x`: `17x` is not a valid tweet.id key"
        );
        let e = err(r#"{"by_tweet": {"17": "5"}}"#, &gs);
        assert!(
            e.to_string().contains(
                "at `17`: expected an object keyed by engagement.type, found the count 5"
            ),
            "{e}"
        );
        let e = err(r#"{"by_tweet": ["17"]}"#, &gs);
        assert!(
            matches!(e, ParseError::Cell { ref path, .. } if path.is_empty()),
            "{e:?}"
        );
        let days = [g("d", &[EngagementType, EngagementDay, EngagementHour])];
        for bad in ["2024-02-30", "2024-5-01", "20240501", "2024-05-01T"] {
            let body = format!(r#"{{"d": {{"favorites": {{"{bad}": {{"00": "1"}}}}}}}}"#);
            let e = err(&body, &days);
            assert!(e.to_string().contains("engagement.day key"), "{bad}: {e}");
        }
        for bad in ["24", "-1", "001", "a"] {
            let body = format!(r#"{{"d": {{"favorites": {{"2024-05-01": {{"{bad}": "1"}}}}}}}}"#);
            let e = err(&body, &days);
            assert!(
                e.to_string()
                    .contains(&format!("at `favorites/2024-05-01/{bad}`")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn missing_duplicate_and_non_object() {
        let gs = [g("a", &[EngagementType]), g("b", &[EngagementType])];
        assert_eq!(
            err(r#"{"a": {"favorites": "1"}}"#, &gs),
            ParseError::MissingGrouping("b".into())
        );
        assert_eq!(
            err(r#"{"a": {}, "b": {}, "a": {}}"#, &gs),
            ParseError::DuplicateGrouping("a".into())
        );
        assert!(matches!(err("[]", &gs), ParseError::Json(_)));
        assert!(matches!(err("{\"a\": ", &gs), ParseError::Json(_)));
        assert!(matches!(err("", &gs), ParseError::Json(_)));
        assert!(matches!(err("{} x", &gs), ParseError::Json(_)));
        // Every requested Tweet unavailable: nothing to group, and the groupings are empty.
        let r = parse_response(
            br#"{"errors": ["1 Tweet ID(s) are unavailable"], "unavailable_tweet_ids": ["5"]}"#,
            &gs,
        )
        .unwrap();
        assert!(r.is_partial());
        assert_eq!(r.groupings.len(), 2);
        assert!(r.groupings.iter().all(|g| g.cells.is_empty()));
    }

    /// A request whose every Tweet is too old for every metric asked has nothing to group: the
    /// unsupported lists explain the missing grouping, as `unavailable_tweet_ids` does.
    #[test]
    fn a_grouping_missing_for_unsupported_tweets_is_empty() {
        let g = [Grouping {
            name: "by_tweet".into(),
            group_by: vec![GroupBy::TweetId, GroupBy::EngagementType],
        }];
        let r = parse_response(
            br#"{"errors": ["Impressions & engagements for tweets older than 90 days (x) are not supported"],
                 "unsupported_for_impressions_engagements_tweet_ids": ["20"]}"#,
            &g,
        )
        .unwrap();
        assert!(r.groupings[0].cells.is_empty());
        assert_eq!(
            r.unsupported_for_impressions_engagements_tweet_ids,
            vec![20]
        );
        assert_eq!(
            parse_response(br#"{"errors": ["something"]}"#, &g),
            Err(ParseError::MissingGrouping("by_tweet".into()))
        );
    }

    #[test]
    fn root_fields() {
        let gs = [g("a", &[EngagementType])];
        let r = parse_response(
            br#"{"a": {}, "start": "2024-03-01", "end": null,
                 "unavailable_tweet_ids": ["1", 2],
                 "unsupported_for_impressions_engagements_tweet_ids": null,
                 "unsupported_for_video_views_tweet_ids": [18446744073709551615],
                 "errors": ["one", {"message": "two", "code": 34}, 3]}"#,
            &gs,
        )
        .unwrap();
        assert_eq!(r.start, Some(datetime!(2024-03-01 00:00 UTC)));
        assert_eq!(r.end, None);
        assert_eq!(r.unavailable_tweet_ids, vec![1, 2]);
        assert!(r
            .unsupported_for_impressions_engagements_tweet_ids
            .is_empty());
        assert_eq!(r.unsupported_for_video_views_tweet_ids, vec![u64::MAX]);
        assert_eq!(r.errors, vec!["one", "two", "3"]);
        assert!(r.is_partial());

        let e = err(r#"{"a": {}, "start": "yesterday"}"#, &gs);
        assert!(
            matches!(e, ParseError::Field { field: "start", .. }),
            "{e:?}"
        );
        let e = err(r#"{"a": {}, "end": 5}"#, &gs);
        assert!(matches!(e, ParseError::Field { field: "end", .. }), "{e:?}");
        for bad in [r#"[1.5]"#, r#"["1e3"]"#, r#"[-1]"#, r#""1""#, r#"[null]"#] {
            let e = err(
                &format!(r#"{{"a": {{}}, "unavailable_tweet_ids": {bad}}}"#),
                &gs,
            );
            assert!(
                matches!(
                    e,
                    ParseError::Field {
                        field: "unavailable_tweet_ids",
                        ..
                    }
                ),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            parse_error_body(br#"{"errors":["Forbidden to access tweets: 1, 2"]}"#),
            vec!["Forbidden to access tweets: 1, 2"]
        );
        assert_eq!(
            parse_error_body(
                br#"{"errors":[{"message":"Sorry, that page does not exist","code":34}]}"#
            ),
            vec!["Sorry, that page does not exist"]
        );
        assert_eq!(
            parse_error_body(br#"{"errors":"single", "error":"other"}"#),
            vec!["single", "other"]
        );
        assert!(parse_error_body(b"<html>502 Bad Gateway</html>").is_empty());
        assert!(parse_error_body(b"").is_empty());
        assert!(parse_error_body(b"[\"x\"]").is_empty());
        assert!(parse_error_body(br#"{"data": 1}"#).is_empty());
    }

    #[test]
    fn forbidden_ids_from_both_wordings() {
        let errors = vec![
            "Forbidden to access tweets: 1790000000000000001, 1790000000000000002".to_string(),
            "Forbidden to access tweets for author id 2244994945: 1790000000000000003,1790000000000000001"
                .to_string(),
            "Forbidden to access metrics: retweets".to_string(),
            "1 Tweet ID(s) are unavailable".to_string(),
        ];
        assert_eq!(
            forbidden_ids(&errors),
            vec![
                1790000000000000001,
                1790000000000000002,
                1790000000000000003
            ]
        );
        assert!(forbidden_ids(&["Forbidden to access metrics: impressions".into()]).is_empty());
        assert!(forbidden_ids(&[]).is_empty());
    }

    /// A full `/totals` answer (250 IDs × 7 metrics) parses quickly. The hard bound here is loose
    /// so a debug build on a busy machine passes; the release figure is printed.
    #[test]
    fn full_totals_body_is_fast() {
        let mut body = String::from(r#"{"by_tweet": {"#);
        for i in 0..250u64 {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!("\"{}\": {{", 1_790_000_000_000_000_000 + i));
            let metrics = Endpoint::Totals.allowed_metrics(AuthKind::User);
            for (j, m) in metrics.iter().enumerate() {
                if j > 0 {
                    body.push(',');
                }
                body.push_str(&format!("\"{m}\": \"{}\"", i * 7 + j as u64));
            }
            body.push('}');
        }
        body.push_str("}}");
        let gs = [g("by_tweet", &[TweetId, EngagementType])];
        let t = std::time::Instant::now();
        let rounds = 20;
        for _ in 0..rounds {
            let r = parse_response(body.as_bytes(), &gs).unwrap();
            assert_eq!(r.groupings[0].cells.len(), 1750);
        }
        let per = t.elapsed() / rounds;
        eprintln!("250 × 7 body ({} bytes): {per:?} per parse", body.len());
        assert!(per < std::time::Duration::from_millis(50), "{per:?}");
    }

    #[test]
    fn escapes_and_bad_utf8() {
        let gs = [g("a", &[EngagementType])];
        // Escaped keys and counts decode before they are read.
        let r = parse_response(br#"{"a": {"fav\u006frites": "\u0031\u0032"}}"#, &gs).unwrap();
        assert_eq!(r.groupings[0].cells[0].metric, Some(Metric::Favorites));
        assert_eq!(r.groupings[0].cells[0].value, 12);
        // Bad UTF-8 where nothing reads it is skipped, as serde_json skips it.
        let r = parse_response(b"{\"a\": {\"favorites\": 1}, \"x\": [\"\xff\"]}", &gs).unwrap();
        assert_eq!(r.groupings[0].cells.len(), 1);
        // Where a string is read it is a JSON error, with serde_json's position.
        let e = err_bytes(b"{\"a\": {\"favorites\": \"1\xff\"}}", &gs);
        assert!(
            matches!(&e, ParseError::Json(m) if m.contains("column")),
            "{e:?}"
        );
        let e = err_bytes(b"{\"a\": {\"f\xc3\": 1}}", &gs);
        assert!(matches!(e, ParseError::Json(_)), "{e:?}");
    }

    fn err_bytes(body: &[u8], groupings: &[Grouping]) -> ParseError {
        parse_response(body, groupings).unwrap_err()
    }

    /// The calendar check [`parse_day`] replaces (its earlier body): every key on its own.
    fn reference_day(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = &b[r];
            if !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let year = i32::try_from(num(0..4)?).ok()?;
        let month = Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
        let day = u8::try_from(num(8..10)?).ok()?;
        Date::from_calendar_date(year, month, day).ok()
    }

    #[test]
    fn day_keys_match_the_calendar_across_months() {
        let mut month = MonthCache::default();
        let mut d = date!(1999 - 12 - 25);
        while d < date!(2001 - 03 - 05) {
            let key = d.to_string();
            assert_eq!(parse_day(&key, &mut month), Some(d), "{key}");
            // The day after the month's end, and day 00, in the month just remembered.
            for bad in ["29", "30", "31", "32", "00", "+1", "1 "] {
                let key = format!("{}{bad}", &key[..8]);
                assert_eq!(parse_day(&key, &mut month), reference_day(&key), "{key}");
            }
            d = d.next_day().unwrap();
        }
        for key in [
            "2024-02-29",
            "2023-02-29",
            "2100-02-29",
            "2000-02-29",
            "0000-01-01",
        ] {
            assert_eq!(
                parse_day(key, &mut MonthCache::default()),
                reference_day(key),
                "{key}"
            );
        }
    }

    #[test]
    fn hour_keys_exhaustive() {
        let reference = |s: &str| -> Option<u8> {
            if s.is_empty() || s.len() > 2 {
                return None;
            }
            let h: u8 = parse_id(s)?.try_into().ok()?;
            (h <= 23).then_some(h)
        };
        let alphabet = ["", "0", "1", "2", "3", "9", "a", "-", "+", " ", "\u{e9}"];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let s = format!("{a}{b}{c}");
                    assert_eq!(parse_hour(&s), reference(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn metric_names_match_from_str() {
        for m in Metric::ALL {
            assert_eq!(metric_named(m.as_str()), Some(m));
            // One byte off at each position, and each prefix.
            let name = m.as_str();
            for i in 0..name.len() {
                let mut off = name.as_bytes().to_vec();
                off[i] ^= 1;
                let off = String::from_utf8(off).unwrap();
                assert_eq!(metric_named(&off), off.parse().ok(), "{off}");
                assert_eq!(metric_named(&name[..i]), name[..i].parse().ok());
            }
        }
        assert_eq!(metric_named("media_clicks"), None);
    }

    #[test]
    fn digit_strings_match_parse_id_at_the_edges() {
        let mut cases = vec![String::new(), "0".into(), "00000000".into()];
        for n in [9, 10, 99_999_999, 100_000_000, u64::MAX / 10, u64::MAX] {
            for pad in 0..3 {
                cases.push(format!("{}{n}", "0".repeat(pad)));
            }
        }
        cases.push("18446744073709551616".into());
        cases.push("99999999999999999999".into());
        cases.push(format!("{}1", "0".repeat(40)));
        for len in 1..=9 {
            for pos in 0..len {
                for bad in [b'/', b':', b' ', b'-', b'+', 0x80 | b'0'] {
                    let mut s = vec![b'7'; len];
                    s[pos] = bad;
                    if let Ok(s) = String::from_utf8(s) {
                        cases.push(s);
                    }
                }
            }
        }
        for s in &cases {
            assert_eq!(parse_digits(s), parse_id(s), "{s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn digits_match_parse_id(s in "[0-9]{0,22}|[0-9/:+ -]{0,10}|\\PC{0,10}") {
            proptest::prop_assert_eq!(parse_digits(&s), parse_id(&s));
        }

        #[test]
        fn numbers_match_parse_id(n: u64, zeros in 0usize..4) {
            let s = format!("{}{n}", "0".repeat(zeros));
            proptest::prop_assert_eq!(parse_digits(&s), Some(n));
        }

        #[test]
        fn metrics_match_from_str(s in "[a-z_]{0,21}|\\PC{0,8}") {
            proptest::prop_assert_eq!(metric_named(&s), s.parse().ok());
        }

        /// A run of keys through one remembered month reads as each key alone would.
        #[test]
        fn days_match_the_calendar(
            keys in proptest::collection::vec(
                "(19|20|00|99)[0-9]{2}-(0[0-9]|1[0-3])-[0-3][0-9]|[0-9]{4}.[0-9]{2}.[0-9]{2}|\\PC{0,11}",
                0..40,
            )
        ) {
            let mut month = MonthCache::default();
            for k in &keys {
                proptest::prop_assert_eq!(parse_day(k, &mut month), reference_day(k), "{}", k);
            }
        }
    }

    // ---- fixtures ----

    fn fixtures_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/api")
    }

    /// The endpoint and auth a fixture case is for, from its name: `<endpoint>_<auth>_<rest>`.
    fn case_target(case: &str) -> (Endpoint, AuthKind) {
        let mut parts = case.split('_');
        let endpoint: Endpoint = parts.next().unwrap().parse().unwrap();
        let auth = match parts.next().unwrap() {
            "bearer" => AuthKind::Bearer,
            "user" => AuthKind::User,
            other => panic!("{case}: unknown auth `{other}`"),
        };
        (endpoint, auth)
    }

    /// Sum of a grouping's values, keyed by whatever `key` extracts.
    fn sums<K: Ord>(g: &ParsedGrouping, key: impl Fn(&Cell) -> K) -> BTreeMap<K, u64> {
        let mut out = BTreeMap::new();
        for c in &g.cells {
            *out.entry(key(c)).or_insert(0) += c.value;
        }
        out
    }

    /// Checks that `coarse` equals `fine` summed over the levels `coarse` lacks.
    fn assert_rollup(r: &EngagementResponse, fine: &str, coarse: &str) {
        let fine = r.grouping(fine).unwrap();
        let coarse = r.grouping(coarse).unwrap();
        let has = |l| coarse.group_by.contains(&l);
        let project = |c: &Cell| {
            (
                c.tweet_id.filter(|_| has(TweetId)),
                c.metric.filter(|_| has(EngagementType)),
                c.day.filter(|_| has(EngagementDay)),
                c.hour.filter(|_| has(EngagementHour)),
            )
        };
        assert_eq!(
            sums(fine, project),
            sums(coarse, project),
            "{} does not roll up to {}",
            fine.name,
            coarse.name
        );
    }

    fn value(g: &ParsedGrouping, pred: impl Fn(&Cell) -> bool) -> u64 {
        let found: Vec<_> = g.cells.iter().filter(|c| pred(c)).collect();
        assert_eq!(found.len(), 1, "{}: {found:?}", g.name);
        found[0].value
    }

    #[test]
    fn fixture_pairs_validate_and_parse_consistently() {
        let dir = fixtures_dir();
        let mut cases: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".request.json").map(str::to_string)
            })
            .collect();
        cases.sort();
        let expected = [
            "28hr_user_daily_hourly",
            "historical_user_unavailable",
            "totals_bearer_by_tweet_overall",
            "totals_user_all_unavailable",
            "totals_user_forbidden",
            "totals_user_unsupported_impressions",
        ];
        assert_eq!(cases, expected);
        // After every fixture's window; the /28hr window is computed from it but not sent.
        let now = datetime!(2024-05-02 09:40 UTC);
        for case in &cases {
            let read = |suffix: &str| {
                std::fs::read(dir.join(format!("{case}.{suffix}.json")))
                    .unwrap_or_else(|e| panic!("{case}.{suffix}.json: {e}"))
            };
            let wire: WireRequest = serde_json::from_slice(&read("request")).unwrap();
            let (endpoint, auth) = case_target(case);
            let req = validate(endpoint, auth, &wire, now)
                .unwrap_or_else(|e| panic!("{case}: request invalid: {e}"));
            let body = read("response");
            let parsed = parse_response(&body, &req.groupings);
            check_case(case, &req, &body, parsed);
        }
    }

    fn check_case(
        case: &str,
        req: &crate::request::EngagementRequest,
        body: &[u8],
        parsed: Result<EngagementResponse, ParseError>,
    ) {
        let n_ids = req.tweet_ids.len();
        let n_metrics = req.metrics.len();
        match case {
            "totals_bearer_by_tweet_overall" => {
                let r = parsed.unwrap();
                assert!(!r.is_partial());
                let by_tweet = r.grouping("by_tweet").unwrap();
                assert_eq!(by_tweet.cells.len(), n_ids * n_metrics);
                assert_eq!(r.grouping("overall").unwrap().cells.len(), n_metrics);
                assert_eq!(
                    value(by_tweet, |c| c.tweet_id == Some(1790000000000000002)
                        && c.metric == Some(Metric::VideoViews)),
                    40213
                );
                assert_rollup(&r, "by_tweet", "overall");
            }
            "totals_user_unsupported_impressions" => {
                let r = parsed.unwrap();
                assert!(r.is_partial());
                assert_eq!(
                    r.unsupported_for_impressions_engagements_tweet_ids,
                    vec![1600000000000000004]
                );
                let g = r.grouping("owned_by_tweet").unwrap();
                // The old Tweet lacks impressions and engagements.
                assert_eq!(g.cells.len(), n_ids * n_metrics - 2);
                assert!(!g
                    .cells
                    .iter()
                    .any(|c| c.tweet_id == Some(1600000000000000004)
                        && matches!(c.metric, Some(Metric::Impressions | Metric::Engagements))));
                assert_eq!(
                    value(g, |c| c.tweet_id == Some(1790000000000000003)
                        && c.metric == Some(Metric::Impressions)),
                    5310
                );
                assert_rollup(&r, "owned_by_tweet", "overall");
            }
            "28hr_user_daily_hourly" => {
                let r = parsed.unwrap();
                assert!(!r.is_partial());
                let w = req.window.unwrap();
                assert_eq!((r.start, r.end), (Some(w.start), Some(w.end)));
                let hourly = r.grouping("hourly").unwrap();
                assert_eq!(hourly.cells.len(), n_ids * n_metrics * 29);
                let daily = r.grouping("daily").unwrap();
                assert_eq!(daily.cells.len(), n_ids * n_metrics * 2);
                assert_eq!(
                    value(daily, |c| c.metric == Some(Metric::Impressions)
                        && c.day == Some(date!(2024 - 05 - 01))),
                    4425
                );
                assert_eq!(
                    value(hourly, |c| c.metric == Some(Metric::UrlClicks)
                        && c.day == Some(date!(2024 - 05 - 01))
                        && c.hour == Some(5)),
                    15
                );
                // Every hour lies inside the window.
                for c in &hourly.cells {
                    let t = c
                        .day
                        .unwrap()
                        .with_hms(c.hour.unwrap(), 0, 0)
                        .unwrap()
                        .assume_utc();
                    assert!(w.start <= t && t < w.end, "{c:?}");
                }
                assert_rollup(&r, "hourly", "daily");
            }
            "historical_user_unavailable" => {
                let r = parsed.unwrap();
                assert!(r.is_partial());
                assert_eq!(r.unavailable_tweet_ids, vec![1763000000000000012]);
                assert_eq!(r.errors, vec!["1 Tweet ID(s) are unavailable"]);
                let w = req.window.unwrap();
                assert_eq!((r.start, r.end), (Some(w.start), Some(w.end)));
                let per_tweet = r.grouping("per_type_per_tweet").unwrap();
                assert_eq!(per_tweet.cells.len(), (n_ids - 1) * n_metrics);
                let per_day = r.grouping("per_type_per_day").unwrap();
                assert_eq!(per_day.cells.len(), n_metrics * 7);
                assert_eq!(
                    value(per_tweet, |c| c.tweet_id == Some(1763000000000000011)
                        && c.metric == Some(Metric::Impressions)),
                    2420
                );
                // Per-type totals agree between the per-Tweet and the per-day groupings.
                let by_metric = |g: &ParsedGrouping| sums(g, |c| c.metric);
                assert_eq!(by_metric(per_tweet), by_metric(per_day));
            }
            "totals_user_all_unavailable" => {
                let r = parsed.unwrap();
                assert!(r.is_partial());
                assert_eq!(r.unavailable_tweet_ids.len(), n_ids);
                assert!(r.groupings.iter().all(|g| g.cells.is_empty()));
            }
            "totals_user_forbidden" => {
                // An error body (the API answers 403): not a response to the groupings.
                assert!(matches!(parsed, Err(ParseError::MissingGrouping(_))));
                let errors = parse_error_body(body);
                assert_eq!(errors.len(), 1);
                let ids = forbidden_ids(&errors);
                assert_eq!(ids, vec![1790000000000000008, 1790000000000000009]);
                assert!(ids.iter().all(|id| req.tweet_ids.contains(id)));
            }
            other => panic!("no expectations for fixture `{other}`"),
        }
    }
}
