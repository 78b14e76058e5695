//! The three endpoints, their limits, groupings and metric allow-lists (fact sheet §3–4).

use std::fmt;
use std::str::FromStr;

use crate::metric::Metric;

/// An Engagement API endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/insights/engagement/totals`: lifetime totals at request time.
    Totals,
    /// `/insights/engagement/28hr`: the last 28 hours, by day and hour.
    Hr28,
    /// `/insights/engagement/historical`: a chosen window of at most 28 days since 2014-09-01.
    Historical,
}

/// How a request is authenticated; it decides which metrics and endpoints are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// OAuth 1.0a user context: the Tweet owner's access token signs the request.
    User,
    /// OAuth 2.0 app-only bearer token: `/totals` public metrics only, any public Tweet.
    Bearer,
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthKind::User => "user",
            AuthKind::Bearer => "bearer",
        })
    }
}

/// The metrics `/totals` accepts with user context.
const TOTALS_METRICS: [Metric; 7] = [
    Metric::Impressions,
    Metric::Engagements,
    Metric::Favorites,
    Metric::Retweets,
    Metric::Replies,
    Metric::VideoViews,
    Metric::QuoteTweets,
];

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 3] = [Endpoint::Totals, Endpoint::Hr28, Endpoint::Historical];

    /// The name used in the path and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Totals => "totals",
            Endpoint::Hr28 => "28hr",
            Endpoint::Historical => "historical",
        }
    }

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Totals => "/insights/engagement/totals",
            Endpoint::Hr28 => "/insights/engagement/28hr",
            Endpoint::Historical => "/insights/engagement/historical",
        }
    }

    /// The most Tweet IDs one request may carry.
    pub fn max_ids(self) -> usize {
        match self {
            Endpoint::Totals => 250,
            Endpoint::Hr28 | Endpoint::Historical => 25,
        }
    }

    /// The `group_by` values this endpoint accepts.
    pub fn allowed_group_by(self) -> &'static [GroupBy] {
        match self {
            Endpoint::Totals => &[GroupBy::TweetId, GroupBy::EngagementType],
            Endpoint::Hr28 | Endpoint::Historical => &GroupBy::ALL,
        }
    }

    /// Whether this endpoint can be called with this kind of authentication at all.
    pub fn allows_auth(self, auth: AuthKind) -> bool {
        matches!(
            (self, auth),
            (_, AuthKind::User) | (Endpoint::Totals, AuthKind::Bearer)
        )
    }

    /// The metrics this endpoint accepts with this kind of authentication, in table order.
    /// Empty when the endpoint refuses the authentication kind.
    pub fn allowed_metrics(self, auth: AuthKind) -> Vec<Metric> {
        match (self, auth) {
            (Endpoint::Totals, AuthKind::User) => Metric::ALL
                .iter()
                .copied()
                .filter(|m| TOTALS_METRICS.contains(m))
                .collect(),
            (Endpoint::Totals, AuthKind::Bearer) => Metric::ALL
                .iter()
                .copied()
                .filter(|m| m.is_public())
                .collect(),
            (_, AuthKind::User) => Metric::ALL
                .iter()
                .copied()
                .filter(|m| *m != Metric::QuoteTweets)
                .collect(),
            (_, AuthKind::Bearer) => Vec::new(),
        }
    }

    /// Whether the endpoint knows the metric at all, whatever the authentication.
    pub fn knows_metric(self, metric: Metric) -> bool {
        self.allowed_metrics(AuthKind::User).contains(&metric)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An endpoint name that is not one of `totals`, `28hr`, `historical`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown endpoint `{0}` (expected totals, 28hr or historical)")]
pub struct UnknownEndpoint(pub String);

impl FromStr for Endpoint {
    type Err = UnknownEndpoint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEndpoint(s.to_string()))
    }
}

/// One `group_by` level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// `tweet.id`: keys are Tweet IDs as strings.
    TweetId,
    /// `engagement.type`: keys are metric names.
    EngagementType,
    /// `engagement.day`: keys are `YYYY-MM-DD` (UTC).
    EngagementDay,
    /// `engagement.hour`: keys are `00`..`23` (UTC).
    EngagementHour,
}

impl GroupBy {
    /// Every value.
    pub const ALL: [GroupBy; 4] = [
        GroupBy::TweetId,
        GroupBy::EngagementType,
        GroupBy::EngagementDay,
        GroupBy::EngagementHour,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::TweetId => "tweet.id",
            GroupBy::EngagementType => "engagement.type",
            GroupBy::EngagementDay => "engagement.day",
            GroupBy::EngagementHour => "engagement.hour",
        }
    }

    /// Parses a wire name. Case-insensitive, because the published getting-started example writes
    /// `Tweet.id`; we always send lower case.
    pub fn parse(s: &str) -> Option<GroupBy> {
        GroupBy::ALL
            .iter()
            .copied()
            .find(|g| g.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_allow_lists_match_the_fact_sheet() {
        assert_eq!(Endpoint::Totals.allowed_metrics(AuthKind::User).len(), 7);
        assert_eq!(Endpoint::Totals.allowed_metrics(AuthKind::Bearer).len(), 5);
        assert_eq!(Endpoint::Hr28.allowed_metrics(AuthKind::User).len(), 17);
        assert_eq!(
            Endpoint::Historical.allowed_metrics(AuthKind::User).len(),
            17
        );
        assert!(Endpoint::Hr28.allowed_metrics(AuthKind::Bearer).is_empty());
        assert!(!Endpoint::Historical
            .allowed_metrics(AuthKind::User)
            .contains(&Metric::QuoteTweets));
        assert!(!Endpoint::Totals
            .allowed_metrics(AuthKind::Bearer)
            .contains(&Metric::Impressions));
    }

    #[test]
    fn limits_and_paths() {
        assert_eq!(Endpoint::Totals.max_ids(), 250);
        assert_eq!(Endpoint::Hr28.max_ids(), 25);
        assert_eq!(Endpoint::Historical.max_ids(), 25);
        assert_eq!(
            "28hr".parse::<Endpoint>().unwrap().path(),
            "/insights/engagement/28hr"
        );
        assert_eq!(GroupBy::parse("Tweet.id"), Some(GroupBy::TweetId));
        assert_eq!(GroupBy::parse("tweet"), None);
    }
}
