//! What a fetch settles about each Tweet ID: the vocabulary the fetcher produces and the store keeps.
//!
//! Neither side owns it: the fetcher (`crate::fetch`) turns API responses into [`Settled`] records
//! without knowing how they are stored, and the store (`crate::store`) writes them without knowing how
//! they were fetched.

use engagement_api::Metric;

/// The final (or pending) state of one unique Tweet ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Not fetched yet (or its batch was in flight when the process stopped).
    Pending,
    /// Fetched; metrics stored.
    Ok,
    /// Deleted, no longer public, or protected.
    Unavailable,
    /// The credentials used may not read it (`Forbidden to access tweets`).
    Forbidden,
    /// Retries exhausted; the last error is kept.
    Failed,
}

impl Status {
    /// Every final status, in report order.
    pub const FINAL: [Status; 4] = [
        Status::Ok,
        Status::Unavailable,
        Status::Forbidden,
        Status::Failed,
    ];

    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ok => "ok",
            Status::Unavailable => "unavailable",
            Status::Forbidden => "forbidden",
            Status::Failed => "failed",
        }
    }

    /// The status of a stored `outcomes` row (the table's CHECK allows only final ones).
    pub(crate) fn stored(s: &str) -> Status {
        match s {
            "ok" => Status::Ok,
            other => Status::parse(other).unwrap_or(Status::Failed),
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Ok,
            Status::Unavailable,
            Status::Forbidden,
            Status::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One outcome to record.
#[derive(Debug, Clone, PartialEq)]
pub struct IdOutcome {
    /// The Tweet.
    pub id: u64,
    /// Its final status (never `Pending`).
    pub status: Status,
    /// Metric values in the run's metric order (`Ok` only; `None` where the API gave none).
    pub values: Vec<Option<u64>>,
    /// Why, for anything but `Ok` (the last error for `Failed`).
    pub note: Option<String>,
    /// Time-series jobs: this window's non-zero buckets, (metric index in run order, bucket start as
    /// Unix seconds, value).
    pub series: Vec<(usize, i64, u64)>,
    /// The API's age rules that kept some of its metrics from being served (`Ok` only); those
    /// metrics' values are `None`.
    pub not_served: NotServed,
}

impl IdOutcome {
    /// A final outcome other than `Ok`.
    pub fn final_status(id: u64, status: Status, note: impl Into<String>) -> IdOutcome {
        IdOutcome {
            id,
            status,
            values: Vec::new(),
            note: Some(note.into()),
            series: Vec::new(),
            not_served: NotServed::NONE,
        }
    }
}

/// The API's documented reasons for not serving a metric of a Tweet it answered for: a set of
/// [`AgeRule`]s. The metric's value is then unknown (blank), which is neither 0 nor "not requested".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NotServed(u8);

/// One documented age rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgeRule {
    /// `/totals` serves `impressions` and `engagements` only for Tweets created in the last 90 days
    /// (`unsupported_for_impressions_engagements_tweet_ids`).
    Days90,
    /// `video_views` is served only for Tweets at most 1800 days old
    /// (`unsupported_for_video_views_tweet_ids`).
    Days1800,
}

impl AgeRule {
    /// Both rules, in report order.
    pub const ALL: [AgeRule; 2] = [AgeRule::Days90, AgeRule::Days1800];

    /// The name stored and shown: `90-day` or `1800-day`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgeRule::Days90 => "90-day",
            AgeRule::Days1800 => "1800-day",
        }
    }

    /// Why, in words.
    pub fn reason(self) -> &'static str {
        match self {
            AgeRule::Days90 => "older than 90 days",
            AgeRule::Days1800 => "older than 1800 days",
        }
    }

    /// Whether this rule withholds `metric`.
    pub fn covers(self, metric: Metric) -> bool {
        match self {
            AgeRule::Days90 => matches!(metric, Metric::Impressions | Metric::Engagements),
            AgeRule::Days1800 => metric == Metric::VideoViews,
        }
    }

    fn bit(self) -> u8 {
        match self {
            AgeRule::Days90 => 1,
            AgeRule::Days1800 => 2,
        }
    }
}

impl NotServed {
    /// Every metric served.
    pub const NONE: NotServed = NotServed(0);

    /// Whether no rule applies.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// This set with `rule` added.
    pub fn with(self, rule: AgeRule) -> NotServed {
        NotServed(self.0 | rule.bit())
    }

    /// Both sets together.
    pub fn union(self, other: NotServed) -> NotServed {
        NotServed(self.0 | other.0)
    }

    /// Whether `rule` is in the set.
    pub fn has(self, rule: AgeRule) -> bool {
        self.0 & rule.bit() != 0
    }

    /// The rule that withholds `metric`, if any.
    pub fn rule_for(self, metric: Metric) -> Option<AgeRule> {
        AgeRule::ALL
            .into_iter()
            .find(|r| self.has(*r) && r.covers(metric))
    }

    /// The stored form: the rules' names joined by `,` (`None` for the empty set).
    pub fn to_stored(self) -> Option<&'static str> {
        match self.0 {
            0 => None,
            1 => Some("90-day"),
            2 => Some("1800-day"),
            _ => Some("90-day,1800-day"),
        }
    }

    /// Reads the stored form; names it does not know are ignored.
    pub fn from_stored(s: Option<&str>) -> NotServed {
        s.into_iter()
            .flat_map(|s| s.split(','))
            .filter_map(|name| AgeRule::ALL.into_iter().find(|r| r.as_str() == name.trim()))
            .fold(NotServed::NONE, NotServed::with)
    }
}

/// Where a message kept with the results came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageSource {
    /// An `errors` string of a 200 (partial) answer, word for word.
    Api,
    /// engage's own note about an answer, e.g. a metric it returned that the run did not ask for.
    Engage,
}

impl MessageSource {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageSource::Api => "api",
            MessageSource::Engage => "engage",
        }
    }

    /// Reads the stored name.
    pub fn parse(s: &str) -> MessageSource {
        if s == "engage" {
            MessageSource::Engage
        } else {
            MessageSource::Api
        }
    }
}

/// A message that came with one answer, and the IDs of that answer it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The text.
    pub text: String,
    /// Where it came from.
    pub source: MessageSource,
    /// The IDs it names or explains (all of the answer's IDs when it names none).
    pub ids: Vec<u64>,
}

/// What one API response settled: the fetcher's result, which the store writes in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    /// Index of the window the response covers (0 for single-window jobs).
    pub window: usize,
    /// Number of windows of the run: an `Ok` becomes final with the last one.
    pub windows: usize,
    /// One outcome per ID settled by the response.
    pub outcomes: Vec<IdOutcome>,
    /// Sums over the response's Tweets per hour: (metric index, hour start as Unix seconds, value).
    pub hourly: Vec<(usize, i64, u64)>,
    /// Which credentials answered: an account's name, or `bearer` (kept for `ok` IDs).
    pub via: Option<String>,
    /// The lowest ID of the batch the response belongs to (its sub-batches and later windows
    /// included): what the resume watermark is counted by.
    pub origin: u64,
    /// The messages that came with the response (`errors` of a 200) and engage's notes about it.
    pub messages: Vec<Message>,
}
