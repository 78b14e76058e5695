//! Metric names (`engagement_types`) exactly as the API spells them.

use std::fmt;
use std::str::FromStr;

/// One engagement metric. The order is the fact sheet's table order, which is also the order reports use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// `impressions` (owned Tweets; on `/totals` only for Tweets under 90 days old).
    Impressions,
    /// `engagements` (owned Tweets; on `/totals` only for Tweets under 90 days old).
    Engagements,
    /// `favorites` (likes).
    Favorites,
    /// `retweets`.
    Retweets,
    /// `replies`.
    Replies,
    /// `video_views` (only for Tweets at most 1800 days old).
    VideoViews,
    /// `quote_tweets` (`/totals` only).
    QuoteTweets,
    /// `media_views`.
    MediaViews,
    /// `media_engagements`.
    MediaEngagements,
    /// `url_clicks`.
    UrlClicks,
    /// `hashtag_clicks`.
    HashtagClicks,
    /// `detail_expands`.
    DetailExpands,
    /// `permalink_clicks`.
    PermalinkClicks,
    /// `app_install_attempts`.
    AppInstallAttempts,
    /// `app_opens`.
    AppOpens,
    /// `email_tweet`.
    EmailTweet,
    /// `user_follows`.
    UserFollows,
    /// `user_profile_clicks`.
    UserProfileClicks,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 18] = [
        Metric::Impressions,
        Metric::Engagements,
        Metric::Favorites,
        Metric::Retweets,
        Metric::Replies,
        Metric::VideoViews,
        Metric::QuoteTweets,
        Metric::MediaViews,
        Metric::MediaEngagements,
        Metric::UrlClicks,
        Metric::HashtagClicks,
        Metric::DetailExpands,
        Metric::PermalinkClicks,
        Metric::AppInstallAttempts,
        Metric::AppOpens,
        Metric::EmailTweet,
        Metric::UserFollows,
        Metric::UserProfileClicks,
    ];

    /// The metrics a bearer token may ask for (on `/totals` only).
    pub const PUBLIC: [Metric; 5] = [
        Metric::Favorites,
        Metric::Retweets,
        Metric::QuoteTweets,
        Metric::Replies,
        Metric::VideoViews,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Impressions => "impressions",
            Metric::Engagements => "engagements",
            Metric::Favorites => "favorites",
            Metric::Retweets => "retweets",
            Metric::Replies => "replies",
            Metric::VideoViews => "video_views",
            Metric::QuoteTweets => "quote_tweets",
            Metric::MediaViews => "media_views",
            Metric::MediaEngagements => "media_engagements",
            Metric::UrlClicks => "url_clicks",
            Metric::HashtagClicks => "hashtag_clicks",
            Metric::DetailExpands => "detail_expands",
            Metric::PermalinkClicks => "permalink_clicks",
            Metric::AppInstallAttempts => "app_install_attempts",
            Metric::AppOpens => "app_opens",
            Metric::EmailTweet => "email_tweet",
            Metric::UserFollows => "user_follows",
            Metric::UserProfileClicks => "user_profile_clicks",
        }
    }

    /// Position in [`Metric::ALL`]; stable, used as a compact index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether a bearer token may read this metric (on `/totals`).
    pub fn is_public(self) -> bool {
        Metric::PUBLIC.contains(&self)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metric name that the API does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric `{0}`")]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;

    /// Exact, case-sensitive wire names only: the API documents lower case, and `media_clicks`
    /// (renamed to `media_engagements` in 2017) is not accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMetric(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_indexes_match_table_order() {
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(m.as_str().parse::<Metric>().unwrap(), *m);
        }
        assert!("media_clicks".parse::<Metric>().is_err());
        assert!("Impressions".parse::<Metric>().is_err());
    }
}
